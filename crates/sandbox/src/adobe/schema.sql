-- The Adobe sandbox's organization: its users, groups (user groups, product profiles, admin
-- groups), who is in which, the domains it has claimed, its API client and tokens.
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE domains (
    name TEXT PRIMARY KEY COLLATE NOCASE,
    -- federatedID or enterpriseID: the kind of account the domain's users are
    id_type TEXT NOT NULL
);
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    -- case preserved as given, compared case-insensitively (as Adobe does)
    email TEXT NOT NULL UNIQUE COLLATE NOCASE,
    username TEXT NOT NULL COLLATE NOCASE,
    domain TEXT NOT NULL COLLATE NOCASE,
    firstname TEXT,
    lastname TEXT,
    country TEXT,
    type TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active',
    created_ms INTEGER NOT NULL
);
CREATE TABLE groups (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    type TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    product_name TEXT,
    license_quota TEXT,
    -- the Marketo subscription a Marketo Engage product profile gives access to
    marketo_subscription INTEGER,
    read_only INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE members (
    group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    added_ms INTEGER NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX members_by_user ON members(user_id);
-- product profiles a user group gives its members
CREATE TABLE group_profiles (
    usergroup_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    profile_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    PRIMARY KEY (usergroup_id, profile_id)
);
CREATE TABLE clients (
    client_id TEXT PRIMARY KEY,
    client_secret TEXT NOT NULL
);
CREATE TABLE tokens (
    token TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES clients(client_id) ON DELETE CASCADE,
    expires_ms INTEGER NOT NULL
);

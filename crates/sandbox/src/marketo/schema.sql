-- Marketo sandbox state. Timestamps are milliseconds since the Unix epoch.
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS roles (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE COLLATE NOCASE,
    description     TEXT NOT NULL DEFAULT '',
    type            TEXT NOT NULL CHECK (type IN ('system', 'custom')),
    hidden          INTEGER NOT NULL DEFAULT 0,
    only_all_zones  INTEGER NOT NULL DEFAULT 0,
    all_permissions INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS role_permissions (
    role_id    INTEGER NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    permission TEXT NOT NULL,
    PRIMARY KEY (role_id, permission)
);

CREATE TABLE IF NOT EXISTS workspaces (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE COLLATE NOCASE,
    description TEXT NOT NULL DEFAULT '',
    global_viz  INTEGER NOT NULL DEFAULT 0,
    status      TEXT NOT NULL DEFAULT 'active',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS users (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    userid            TEXT NOT NULL UNIQUE COLLATE NOCASE,
    email             TEXT NOT NULL,
    first_name        TEXT NOT NULL,
    last_name         TEXT NOT NULL,
    api_only          INTEGER NOT NULL DEFAULT 0,
    status            TEXT NOT NULL CHECK (status IN ('pending', 'active')),
    expires_at        INTEGER,
    last_login_at     INTEGER,
    failed_logins     INTEGER NOT NULL DEFAULT 0,
    is_locked         INTEGER NOT NULL DEFAULT 0,
    locked_reason     TEXT,
    opted_in          INTEGER NOT NULL DEFAULT 0,
    reason            TEXT,
    password_hash     TEXT,
    invite_token      TEXT UNIQUE,
    invite_expires_at INTEGER,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS user_roles (
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role_id      INTEGER NOT NULL REFERENCES roles(id),
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id),
    PRIMARY KEY (user_id, role_id, workspace_id)
);

CREATE TABLE IF NOT EXISTS services (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    client_id     TEXT NOT NULL UNIQUE,
    -- Kept readable on purpose: the real admin UI shows a service's secret on demand.
    client_secret TEXT NOT NULL,
    user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at    INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS tokens (
    token      TEXT PRIMARY KEY,
    service_id INTEGER NOT NULL REFERENCES services(id) ON DELETE CASCADE,
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS tokens_by_service ON tokens(service_id, expires_at);

CREATE TABLE IF NOT EXISTS mailbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    to_addr      TEXT NOT NULL,
    from_addr    TEXT NOT NULL,
    subject      TEXT NOT NULL,
    body         TEXT NOT NULL,
    invite_token TEXT,
    sent_at      INTEGER NOT NULL
);

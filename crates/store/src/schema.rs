//! The schema, as an ordered list of steps. `PRAGMA user_version` records how many have run,
//! so opening an older state file brings it up to date and a newer one is refused.

pub const STEPS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE quota_usage (
        app TEXT NOT NULL,
        instance TEXT NOT NULL,
        day TEXT NOT NULL,
        calls INTEGER NOT NULL,
        PRIMARY KEY (app, instance, day)
    );
    CREATE TABLE pending_invites (
        app TEXT NOT NULL,
        instance TEXT NOT NULL,
        userid TEXT NOT NULL COLLATE NOCASE,
        email TEXT NOT NULL,
        first_name TEXT NOT NULL,
        last_name TEXT NOT NULL,
        api_only INTEGER NOT NULL,
        roles_json TEXT NOT NULL,
        invited_at INTEGER NOT NULL,
        invited_by TEXT NOT NULL,
        status TEXT NOT NULL,
        status_at INTEGER NOT NULL,
        PRIMARY KEY (app, instance, userid)
    );
    CREATE TABLE tombstones (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        app TEXT NOT NULL,
        instance TEXT NOT NULL,
        userid TEXT NOT NULL,
        email TEXT NOT NULL,
        first_name TEXT NOT NULL,
        last_name TEXT NOT NULL,
        api_only INTEGER NOT NULL,
        roles_json TEXT NOT NULL,
        account_json TEXT NOT NULL,
        deleted_at INTEGER NOT NULL,
        deleted_by TEXT NOT NULL,
        reason TEXT,
        status TEXT NOT NULL,
        restored_at INTEGER
    );
    CREATE INDEX tombstones_by_email ON tombstones (app, instance, email COLLATE NOCASE);",
    // 2: small facts Roster learns about an instance (e.g. the user count of the last audit,
    // used to budget the next one).
    "CREATE TABLE instance_facts (
        app TEXT NOT NULL,
        instance TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (app, instance, key)
    );",
];

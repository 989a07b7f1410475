//! The schema, as ordered lists of steps (SQLite's and PostgreSQL's). `PRAGMA user_version` (SQLite) or the `roster_schema` table (PostgreSQL) records how many have run,
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
    // 3: plans, the journal of their steps, approvals, and the append-only audit log.
    "CREATE TABLE plans (
        id TEXT PRIMARY KEY,
        created_at INTEGER NOT NULL,
        body TEXT NOT NULL,
        approved_by TEXT,
        approved_at INTEGER
    );
    CREATE TABLE journal (
        plan_id TEXT NOT NULL REFERENCES plans (id),
        step INTEGER NOT NULL,
        key TEXT NOT NULL UNIQUE,
        status TEXT NOT NULL,
        detail TEXT,
        started_at INTEGER NOT NULL,
        finished_at INTEGER,
        PRIMARY KEY (plan_id, step)
    );
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        actor TEXT NOT NULL,
        plan_id TEXT,
        step_key TEXT,
        app TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        outcome TEXT NOT NULL,
        detail TEXT
    );
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;",
    // 4: the audit log records the OS account beside the actor and is hash-chained (the
    // hashes of rows written before this step are filled in by `StateStore::migrate`);
    // approvals are bound to a plan's content digest, not its id.
    "ALTER TABLE audit_log ADD COLUMN os_user TEXT NOT NULL DEFAULT '';
    ALTER TABLE audit_log ADD COLUMN prev_hash TEXT;
    ALTER TABLE audit_log ADD COLUMN hash TEXT;
    CREATE TABLE approvals (
        plan_id TEXT NOT NULL,
        digest TEXT NOT NULL,
        approved_by TEXT NOT NULL,
        os_user TEXT NOT NULL,
        approved_at INTEGER NOT NULL,
        PRIMARY KEY (plan_id, digest)
    );",
    // 5: the service: its runs, the plans it holds for approval, API tokens (hashed) and
    // webhook deliveries.
    "CREATE TABLE service_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        instance TEXT NOT NULL,
        trigger TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        finished_at INTEGER,
        outcome TEXT NOT NULL,
        plan_id TEXT,
        summary TEXT,
        error TEXT,
        events TEXT NOT NULL DEFAULT '[]'
    );
    CREATE INDEX service_runs_by_instance ON service_runs (instance, id);
    CREATE TABLE service_plans (
        plan_id TEXT PRIMARY KEY REFERENCES plans (id),
        instance TEXT NOT NULL,
        status TEXT NOT NULL,
        requested_by TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        destructive INTEGER NOT NULL,
        decided_by TEXT,
        decided_at INTEGER,
        comment TEXT,
        outcome TEXT
    );
    CREATE INDEX service_plans_by_status ON service_plans (status, created_at);
    CREATE TABLE api_tokens (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        last_used_at INTEGER,
        revoked_at INTEGER
    );
    CREATE TABLE webhook_deliveries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        hook TEXT NOT NULL,
        event TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL,
        response_status INTEGER,
        last_error TEXT,
        delivered_at INTEGER
    );",
    // 6: restores asked for through the service, each waiting for an approval.
    "CREATE TABLE restore_requests (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        tombstone_id INTEGER NOT NULL REFERENCES tombstones (id),
        instance TEXT NOT NULL,
        status TEXT NOT NULL,
        requested_by TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        decided_by TEXT,
        decided_at INTEGER,
        comment TEXT,
        outcome TEXT
    );",
    // 7: the web console's local accounts (argon2 hashes) and sessions (by the SHA-256 of
    // the cookie's value; the value itself is never stored).
    "CREATE TABLE console_users (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE COLLATE NOCASE,
        role TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        failed_attempts INTEGER NOT NULL DEFAULT 0,
        locked_until INTEGER
    );
    CREATE TABLE console_sessions (
        id_hash TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES console_users (id),
        csrf TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        last_seen_at INTEGER NOT NULL
    );",
    // 8: the last access inventory read from each instance (the access page and its
    // exports search it without calling the app); `version` tells a cache it changed.
    "CREATE TABLE inventories (
        instance TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        read_at INTEGER NOT NULL,
        accounts INTEGER NOT NULL,
        body TEXT NOT NULL
    );",
    // 9: SCIM: the identity-provider connections (by the SHA-256 of their bearer token,
    // each limited to instances or not) and the Users and Groups they push, kept whole as
    // JSON with a version for ETags. Names are unique per connection and kind.
    "CREATE TABLE scim_connections (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE COLLATE NOCASE,
        hash TEXT NOT NULL UNIQUE,
        instances TEXT NOT NULL DEFAULT '[]',
        created_at INTEGER NOT NULL,
        last_used_at INTEGER,
        revoked_at INTEGER
    );
    CREATE TABLE scim_resources (
        id TEXT PRIMARY KEY,
        connection TEXT NOT NULL,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        external_id TEXT,
        version INTEGER NOT NULL,
        body TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX scim_resources_by_name ON scim_resources (connection, kind, name COLLATE NOCASE);
    CREATE INDEX scim_resources_by_external_id ON scim_resources (connection, kind, external_id);",
    // 10: which app instances a plan was applied to (`marketo=acme;magento=shop`): a run of
    // one instance settles only its own interrupted steps.
    "ALTER TABLE plans ADD COLUMN scope TEXT;",
    // 11: the keyed log: each row records its instance (inside its hash) and a signature
    // over its hash; approvals are signed too (see `roster_keys`).
    "ALTER TABLE audit_log ADD COLUMN instance TEXT;
    ALTER TABLE audit_log ADD COLUMN sig TEXT;
    ALTER TABLE approvals ADD COLUMN sig TEXT;",
    // 12: exceptions: an account an approved restore brought back is kept until `until`,
    // whatever the roster says (see `Roster::exceptions`).
    "CREATE TABLE exceptions (
        app TEXT NOT NULL,
        instance TEXT NOT NULL,
        email TEXT NOT NULL COLLATE NOCASE,
        until INTEGER NOT NULL,
        reason TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (app, instance, email)
    );",
    // 13: an API token acts for a console account (its identity, for four-eyes and the
    // log) or, when NULL, as the named service account it is.
    "ALTER TABLE api_tokens ADD COLUMN account TEXT;",
    // 14: a tombstone's content (what a restore brings back) is signed, so roles written
    // into it by hand are refused at restore.
    "ALTER TABLE tombstones ADD COLUMN sig TEXT;",
    // 15: SSH signatures of plans by the approvers a roster lists (`policies.approvers`).
    // Each verifies with the approver's public key alone, so a row needs no other seal.
    "CREATE TABLE plan_signatures (
        plan_id TEXT NOT NULL,
        digest TEXT NOT NULL,
        approver TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        signature TEXT NOT NULL,
        signed_at INTEGER NOT NULL,
        PRIMARY KEY (plan_id, digest, fingerprint)
    );",
    // 16: an API token may expire (`serve token create --expires 90d`).
    "ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER;",
    // 17: access reviews: campaigns with their snapshot, one row per item and its
    // decision, and the revocations closed campaigns made (see `roster_domain::review`).
    "CREATE TABLE reviews (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        instance TEXT NOT NULL,
        app TEXT NOT NULL,
        scope TEXT NOT NULL,
        reviewers TEXT NOT NULL,
        on_due TEXT NOT NULL,
        due_at INTEGER NOT NULL,
        status TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        closed_by TEXT,
        closed_at INTEGER,
        snapshot TEXT,
        snapshot_digest TEXT,
        plan_id TEXT,
        note TEXT
    );
    CREATE TABLE review_items (
        review_id INTEGER NOT NULL,
        id INTEGER NOT NULL,
        body TEXT NOT NULL,
        email TEXT NOT NULL,
        reviewer TEXT NOT NULL,
        decision TEXT,
        keep_roles TEXT,
        comment TEXT,
        decided_by TEXT,
        decided_at INTEGER,
        bulk INTEGER NOT NULL DEFAULT 0,
        seconds INTEGER,
        log_id INTEGER,
        remediation TEXT,
        remediated_at INTEGER,
        PRIMARY KEY (review_id, id)
    );
    CREATE INDEX review_items_by_reviewer ON review_items (review_id, reviewer);
    CREATE TABLE revocations (
        app TEXT NOT NULL,
        instance TEXT NOT NULL,
        email TEXT NOT NULL,
        account_kind TEXT NOT NULL,
        role TEXT NOT NULL,
        scope TEXT NOT NULL,
        review_id INTEGER NOT NULL,
        item_id INTEGER NOT NULL,
        reason TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (instance, email, account_kind, role, scope)
    );",
    // 18: a campaign's reminder and due date are handled once, whichever process sees
    // them first.
    "ALTER TABLE reviews ADD COLUMN reminded_at INTEGER;
    ALTER TABLE reviews ADD COLUMN due_handled_at INTEGER;",
    // 19: who had which access when: one row per account (role '') and per grant, open
    // (`until` NULL) while the stored inventories show it; kept for `access_history`.
    "CREATE TABLE access_history (
        instance TEXT NOT NULL,
        email TEXT NOT NULL,
        name TEXT NOT NULL,
        account_kind TEXT NOT NULL,
        account_id TEXT NOT NULL,
        role TEXT NOT NULL,
        scope TEXT NOT NULL,
        since INTEGER NOT NULL,
        until INTEGER
    );
    CREATE INDEX access_history_open ON access_history (instance, until);
    CREATE INDEX access_history_role ON access_history (instance, role, scope, since);",
    // 20: a campaign's revision (bumped by every change to its items, so a page can keep
    // them until it moves) and its completeness apart from the snapshot (read per page).
    "ALTER TABLE reviews ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE reviews ADD COLUMN completeness TEXT;",
];

/// The same schema on PostgreSQL, as its own ordered list (a `roster_schema` row records how
/// many have run). Step 1 is SQLite's steps 1 to 9 at once. A collation named `nocase`
/// (ICU, case-insensitive) stands for SQLite's built-in `NOCASE`, so the same `COLLATE
/// NOCASE` works in both dialects; instants are milliseconds in `BIGINT`, flags `BIGINT`
/// 0/1, so the same statements read and write both.
pub const PG_STEPS: &[&str] = &[
    // 1: everything SQLite reached in nine steps.
    "CREATE COLLATION IF NOT EXISTS nocase (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
    CREATE TABLE quota_usage (
        app TEXT NOT NULL,
        instance TEXT NOT NULL,
        day TEXT NOT NULL,
        calls BIGINT NOT NULL,
        PRIMARY KEY (app, instance, day)
    );
    CREATE TABLE pending_invites (
        app TEXT NOT NULL,
        instance TEXT NOT NULL,
        userid TEXT COLLATE nocase NOT NULL,
        email TEXT NOT NULL,
        first_name TEXT NOT NULL,
        last_name TEXT NOT NULL,
        api_only BIGINT NOT NULL,
        roles_json TEXT NOT NULL,
        invited_at BIGINT NOT NULL,
        invited_by TEXT NOT NULL,
        status TEXT NOT NULL,
        status_at BIGINT NOT NULL,
        PRIMARY KEY (app, instance, userid)
    );
    CREATE TABLE tombstones (
        id BIGSERIAL PRIMARY KEY,
        app TEXT NOT NULL,
        instance TEXT NOT NULL,
        userid TEXT COLLATE nocase NOT NULL,
        email TEXT COLLATE nocase NOT NULL,
        first_name TEXT NOT NULL,
        last_name TEXT NOT NULL,
        api_only BIGINT NOT NULL,
        roles_json TEXT NOT NULL,
        account_json TEXT NOT NULL,
        deleted_at BIGINT NOT NULL,
        deleted_by TEXT NOT NULL,
        reason TEXT,
        status TEXT NOT NULL,
        restored_at BIGINT
    );
    CREATE INDEX tombstones_by_email ON tombstones (app, instance, email);
    CREATE TABLE instance_facts (
        app TEXT NOT NULL,
        instance TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (app, instance, key)
    );
    CREATE TABLE plans (
        id TEXT PRIMARY KEY,
        created_at BIGINT NOT NULL,
        body TEXT NOT NULL,
        approved_by TEXT,
        approved_at BIGINT
    );
    CREATE TABLE journal (
        plan_id TEXT NOT NULL REFERENCES plans (id),
        step BIGINT NOT NULL,
        key TEXT NOT NULL UNIQUE,
        status TEXT NOT NULL,
        detail TEXT,
        started_at BIGINT NOT NULL,
        finished_at BIGINT,
        PRIMARY KEY (plan_id, step)
    );
    CREATE TABLE audit_log (
        id BIGSERIAL PRIMARY KEY,
        at BIGINT NOT NULL,
        actor TEXT NOT NULL,
        plan_id TEXT,
        step_key TEXT,
        app TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        outcome TEXT NOT NULL,
        detail TEXT,
        os_user TEXT NOT NULL DEFAULT '',
        prev_hash TEXT,
        hash TEXT
    );
    CREATE FUNCTION roster_audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
        FOR EACH ROW EXECUTE FUNCTION roster_audit_log_append_only();
    CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION roster_audit_log_append_only();
    CREATE TABLE approvals (
        plan_id TEXT NOT NULL,
        digest TEXT NOT NULL,
        approved_by TEXT NOT NULL,
        os_user TEXT NOT NULL,
        approved_at BIGINT NOT NULL,
        PRIMARY KEY (plan_id, digest)
    );
    CREATE TABLE service_runs (
        id BIGSERIAL PRIMARY KEY,
        instance TEXT NOT NULL,
        trigger TEXT NOT NULL,
        started_at BIGINT NOT NULL,
        finished_at BIGINT,
        outcome TEXT NOT NULL,
        plan_id TEXT,
        summary TEXT,
        error TEXT,
        events TEXT NOT NULL DEFAULT '[]'
    );
    CREATE INDEX service_runs_by_instance ON service_runs (instance, id);
    CREATE TABLE service_plans (
        plan_id TEXT PRIMARY KEY REFERENCES plans (id),
        instance TEXT NOT NULL,
        status TEXT NOT NULL,
        requested_by TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        destructive BIGINT NOT NULL,
        decided_by TEXT,
        decided_at BIGINT,
        comment TEXT,
        outcome TEXT
    );
    CREATE INDEX service_plans_by_status ON service_plans (status, created_at);
    CREATE TABLE api_tokens (
        id BIGSERIAL PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        created_at BIGINT NOT NULL,
        last_used_at BIGINT,
        revoked_at BIGINT
    );
    CREATE TABLE webhook_deliveries (
        id BIGSERIAL PRIMARY KEY,
        hook TEXT NOT NULL,
        event TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        attempts BIGINT NOT NULL DEFAULT 0,
        status TEXT NOT NULL,
        response_status BIGINT,
        last_error TEXT,
        delivered_at BIGINT
    );
    CREATE TABLE restore_requests (
        id BIGSERIAL PRIMARY KEY,
        tombstone_id BIGINT NOT NULL REFERENCES tombstones (id),
        instance TEXT NOT NULL,
        status TEXT NOT NULL,
        requested_by TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        decided_by TEXT,
        decided_at BIGINT,
        comment TEXT,
        outcome TEXT
    );
    CREATE TABLE console_users (
        id BIGSERIAL PRIMARY KEY,
        name TEXT COLLATE nocase NOT NULL UNIQUE,
        role TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        failed_attempts BIGINT NOT NULL DEFAULT 0,
        locked_until BIGINT
    );
    CREATE TABLE console_sessions (
        id_hash TEXT PRIMARY KEY,
        user_id BIGINT NOT NULL REFERENCES console_users (id),
        csrf TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        last_seen_at BIGINT NOT NULL
    );
    CREATE TABLE inventories (
        instance TEXT PRIMARY KEY,
        version BIGINT NOT NULL,
        read_at BIGINT NOT NULL,
        accounts BIGINT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE TABLE scim_connections (
        id BIGSERIAL PRIMARY KEY,
        name TEXT COLLATE nocase NOT NULL UNIQUE,
        hash TEXT NOT NULL UNIQUE,
        instances TEXT NOT NULL DEFAULT '[]',
        created_at BIGINT NOT NULL,
        last_used_at BIGINT,
        revoked_at BIGINT
    );
    CREATE TABLE scim_resources (
        id TEXT PRIMARY KEY,
        connection TEXT NOT NULL,
        kind TEXT NOT NULL,
        name TEXT COLLATE nocase NOT NULL,
        external_id TEXT,
        version BIGINT NOT NULL,
        body TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    );
    CREATE UNIQUE INDEX scim_resources_by_name ON scim_resources (connection, kind, name);
    CREATE INDEX scim_resources_by_external_id ON scim_resources (connection, kind, external_id);",
    // 2: the calls of each Marketo subscription, counted across processes (see `pacing`).
    "CREATE TABLE pacing_calls (
        id BIGSERIAL PRIMARY KEY,
        instance TEXT NOT NULL,
        owner TEXT NOT NULL,
        sent_ms BIGINT NOT NULL,
        answered_ms BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX pacing_calls_by_instance ON pacing_calls (instance, answered_ms);",
    // 3: SQLite's step 10.
    "ALTER TABLE plans ADD COLUMN scope TEXT;",
    // 4: the last audit log id handed out, kept in a row so a rolled-back append gives its
    // id back. A sequence does not (`nextval` is outside transactions): a process killed
    // while appending left a gap that `roster log verify` reads as a deleted row.
    "CREATE TABLE audit_log_head (
        one BIGINT PRIMARY KEY CHECK (one = 1),
        last_id BIGINT NOT NULL
    );
    INSERT INTO audit_log_head (one, last_id) SELECT 1, COALESCE(MAX(id), 0) FROM audit_log;",
    // 5: SQLite's step 11.
    "ALTER TABLE audit_log ADD COLUMN instance TEXT;
    ALTER TABLE audit_log ADD COLUMN sig TEXT;
    ALTER TABLE approvals ADD COLUMN sig TEXT;",
    // 6: SQLite's step 12.
    "CREATE TABLE exceptions (
        app TEXT NOT NULL,
        instance TEXT NOT NULL,
        email TEXT NOT NULL COLLATE nocase,
        until BIGINT NOT NULL,
        reason TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (app, instance, email)
    );",
    // 7: SQLite's step 13.
    "ALTER TABLE api_tokens ADD COLUMN account TEXT;",
    // 8: SQLite's step 14.
    "ALTER TABLE tombstones ADD COLUMN sig TEXT;",
    // 9: SQLite's step 15.
    "CREATE TABLE plan_signatures (
        plan_id TEXT NOT NULL,
        digest TEXT NOT NULL,
        approver TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        signature TEXT NOT NULL,
        signed_at BIGINT NOT NULL,
        PRIMARY KEY (plan_id, digest, fingerprint)
    );",
    // 10: SQLite's step 16.
    "ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT;",
    // 11: SQLite's step 17.
    "CREATE TABLE reviews (
        id BIGSERIAL PRIMARY KEY,
        instance TEXT NOT NULL,
        app TEXT NOT NULL,
        scope TEXT NOT NULL,
        reviewers TEXT NOT NULL,
        on_due TEXT NOT NULL,
        due_at BIGINT NOT NULL,
        status TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        closed_by TEXT,
        closed_at BIGINT,
        snapshot TEXT,
        snapshot_digest TEXT,
        plan_id TEXT,
        note TEXT
    );
    CREATE TABLE review_items (
        review_id BIGINT NOT NULL,
        id BIGINT NOT NULL,
        body TEXT NOT NULL,
        email TEXT NOT NULL,
        reviewer TEXT NOT NULL,
        decision TEXT,
        keep_roles TEXT,
        comment TEXT,
        decided_by TEXT,
        decided_at BIGINT,
        bulk BIGINT NOT NULL DEFAULT 0,
        seconds BIGINT,
        log_id BIGINT,
        remediation TEXT,
        remediated_at BIGINT,
        PRIMARY KEY (review_id, id)
    );
    CREATE INDEX review_items_by_reviewer ON review_items (review_id, reviewer);
    CREATE TABLE revocations (
        app TEXT NOT NULL,
        instance TEXT NOT NULL,
        email TEXT NOT NULL,
        account_kind TEXT NOT NULL,
        role TEXT NOT NULL,
        scope TEXT NOT NULL,
        review_id BIGINT NOT NULL,
        item_id BIGINT NOT NULL,
        reason TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (instance, email, account_kind, role, scope)
    );",
    // 12: SQLite's step 18.
    "ALTER TABLE reviews ADD COLUMN reminded_at BIGINT;
    ALTER TABLE reviews ADD COLUMN due_handled_at BIGINT;",
    // 13: SQLite's step 19.
    "CREATE TABLE access_history (
        instance TEXT NOT NULL,
        email TEXT NOT NULL,
        name TEXT NOT NULL,
        account_kind TEXT NOT NULL,
        account_id TEXT NOT NULL,
        role TEXT NOT NULL,
        scope TEXT NOT NULL,
        since BIGINT NOT NULL,
        until BIGINT
    );
    CREATE INDEX access_history_open ON access_history (instance, until);
    CREATE INDEX access_history_role ON access_history (instance, role, scope, since);",
    // 14: SQLite's step 20.
    "ALTER TABLE reviews ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE reviews ADD COLUMN completeness TEXT;",
];

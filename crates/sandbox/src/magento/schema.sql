-- The Magento sandbox's state. Timestamps are milliseconds since the Unix epoch (UTC).
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE websites (
    id INTEGER PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    default_group_id INTEGER NOT NULL
);
CREATE TABLE stores (
    id INTEGER PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    website_id INTEGER NOT NULL REFERENCES websites(id),
    store_group_id INTEGER NOT NULL,
    is_active INTEGER NOT NULL
);
CREATE TABLE customer_groups (
    id INTEGER PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    tax_class_id INTEGER NOT NULL,
    tax_class_name TEXT NOT NULL
);
-- Core fields are columns so searchCriteria can filter and sort in SQL; the rest of the
-- customer object (addresses, custom attributes, prefix...) is kept as JSON.
CREATE TABLE customers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    email TEXT NOT NULL COLLATE NOCASE,
    firstname TEXT NOT NULL,
    lastname TEXT NOT NULL,
    middlename TEXT,
    group_id INTEGER NOT NULL,
    website_id INTEGER NOT NULL,
    store_id INTEGER NOT NULL,
    created_in TEXT NOT NULL,
    dob TEXT,
    gender INTEGER,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    password_hash TEXT,
    extra_json TEXT NOT NULL DEFAULT '{}',
    addresses_json TEXT NOT NULL DEFAULT '[]',
    UNIQUE (email, website_id)
);
CREATE INDEX customers_group ON customers (group_id);
CREATE TABLE admins (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE COLLATE NOCASE,
    firstname TEXT NOT NULL,
    lastname TEXT NOT NULL,
    email TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role_id INTEGER NOT NULL,
    is_active INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE admin_roles (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    resources TEXT NOT NULL
);
CREATE TABLE tokens (
    token TEXT PRIMARY KEY,
    kind TEXT NOT NULL,          -- 'admin' or 'customer'
    subject_id INTEGER NOT NULL, -- admins.id or customers.id
    expires_at INTEGER NOT NULL
);
-- Failed sign-ins per account, for the lock after 6 failures.
CREATE TABLE login_failures (
    kind TEXT NOT NULL,
    username TEXT NOT NULL COLLATE NOCASE,
    failures INTEGER NOT NULL,
    locked_until INTEGER,
    PRIMARY KEY (kind, username)
);
CREATE TABLE mailbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    to_address TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    sent_at INTEGER NOT NULL
);
CREATE TABLE bulk_operations (
    bulk_uuid TEXT NOT NULL,
    id INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload TEXT NOT NULL,
    status INTEGER NOT NULL,
    result_message TEXT,
    error_code INTEGER,
    result TEXT,
    scope_website INTEGER,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (bulk_uuid, id)
);

-- The filterdns store schema for SQLite (filterdns/store/sqlite.py).
--
-- Each "-- version: N" line starts one migration. At open, the store applies the ones the
-- database has not seen, in order, in one transaction, and notes them in schema_version.
-- Released migrations are never edited: a change is a new section at the end, mirrored in
-- schema_postgres.sql under the same number.
--
-- Times are unix seconds (REAL); hourly_counts.hour is the UTC hour start (INTEGER).
-- Booleans are 0/1. JSON values (users.groups, audit_log.detail) are TEXT.

-- version: 1
CREATE TABLE query_events (
    id INTEGER PRIMARY KEY,
    time REAL NOT NULL,
    node TEXT NOT NULL,
    client TEXT NOT NULL,
    mac TEXT NOT NULL,
    group_name TEXT NOT NULL,
    name TEXT NOT NULL,
    qtype INTEGER NOT NULL,
    verdict TEXT NOT NULL,
    reason TEXT NOT NULL,
    category TEXT NOT NULL,
    rcode INTEGER NOT NULL,
    latency_ms REAL NOT NULL,
    answered_by TEXT NOT NULL,
    transport TEXT NOT NULL
);
-- Every SQLite index ends in the rowid, so these also serve the (time, id) keyset order.
CREATE INDEX query_events_time ON query_events (time);
CREATE INDEX query_events_group_time ON query_events (group_name, time);
CREATE INDEX query_events_client_time ON query_events (client, time);
CREATE INDEX query_events_blocked_time ON query_events (time) WHERE verdict = 'blocked';

CREATE TABLE hourly_counts (
    hour INTEGER NOT NULL,
    group_name TEXT NOT NULL,
    verdict TEXT NOT NULL,
    category TEXT NOT NULL,
    node TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (hour, group_name, verdict, category, node)
) WITHOUT ROWID;

CREATE TABLE users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('admin', 'teacher', 'viewer', 'parent')),
    password_hash TEXT NOT NULL,
    groups TEXT NOT NULL DEFAULT '[]',
    disabled INTEGER NOT NULL DEFAULT 0,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until REAL,
    created REAL NOT NULL
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE ON UPDATE CASCADE,
    csrf_token TEXT NOT NULL,
    created REAL NOT NULL,
    expires REAL NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_name);
CREATE INDEX sessions_expires ON sessions (expires);

CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    user_name TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE ON UPDATE CASCADE,
    name TEXT NOT NULL,
    created REAL NOT NULL,
    last_used REAL
);
CREATE INDEX api_tokens_user ON api_tokens (user_name);

-- Ids are assigned as max(id) + 1 by the store, never reused: revisions are never deleted.
CREATE TABLE policy_revisions (
    id INTEGER PRIMARY KEY,
    created REAL NOT NULL,
    node TEXT NOT NULL,
    author TEXT NOT NULL,
    comment TEXT NOT NULL,
    yaml_text TEXT NOT NULL
);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    time REAL NOT NULL,
    node TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX audit_log_time ON audit_log (time);

CREATE TABLE overrides (
    id INTEGER PRIMARY KEY,
    group_name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('allow', 'block')),
    domain TEXT NOT NULL,
    category TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0,
    CHECK ((domain = '') <> (category = ''))
);
CREATE INDEX overrides_active ON overrides (expires_at) WHERE NOT revoked;

CREATE TABLE review_requests (
    id INTEGER PRIMARY KEY,
    created REAL NOT NULL,
    node TEXT NOT NULL,
    name TEXT NOT NULL,
    group_name TEXT NOT NULL,
    client TEXT NOT NULL,
    reason TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'declined')),
    decided_by TEXT,
    decided_at REAL
);
CREATE INDEX review_requests_status ON review_requests (status, id);

-- version: 2
-- Parents (issue 5). A parent is a users row with role 'parent' whose name is their email
-- address; users.groups holds the class groups whose reports they may read. The profile
-- adds what only parents have: their children as [child name, group] pairs, and the
-- language of their pages ('' = the browser's).
CREATE TABLE parent_profiles (
    user_name TEXT PRIMARY KEY REFERENCES users (name) ON DELETE CASCADE ON UPDATE CASCADE,
    children TEXT NOT NULL DEFAULT '[]',
    language TEXT NOT NULL DEFAULT ''
);

-- One-time "set your password" links, at most one live link per account. Only the
-- token's SHA-256 is kept; using the link deletes the row.
CREATE TABLE password_tokens (
    user_name TEXT PRIMARY KEY REFERENCES users (name) ON DELETE CASCADE ON UPDATE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    expires REAL NOT NULL
);

-- Server secrets shared by every node, e.g. the key that signs shared report links.
-- A secret is generated once by whichever node needs it first; rotating one replaces it.
CREATE TABLE secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created REAL NOT NULL
);

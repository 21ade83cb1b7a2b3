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

-- version: 3
-- Outgoing mail and webhooks (issue 5: weekly digests, safeguarding alerts). Whoever has
-- something to send adds a row; the node holding the 'outbox' lease delivers it, retrying
-- with backoff. dedup_key makes enqueueing idempotent, so nothing is sent twice after a
-- restart (a digest's key names the week and the parent). body_text is the plain-text
-- part of a mail, or the JSON body of a webhook; headers is a JSON object.
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    dedup_key TEXT NOT NULL UNIQUE,
    channel TEXT NOT NULL CHECK (channel IN ('email', 'webhook')),
    kind TEXT NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    body_text TEXT NOT NULL,
    body_html TEXT NOT NULL,
    headers TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'sending', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL,
    claimed_by TEXT NOT NULL DEFAULT '',
    sent_at REAL,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX outbox_due ON outbox (status, next_attempt);
CREATE INDEX outbox_created ON outbox (created);

-- Which node does a district-wide job (delivering the outbox, evaluating alerts, queueing
-- digests) right now. A holder renews its lease; another node takes over once it expires.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires REAL NOT NULL
);

-- Whether a parent gets the weekly digest (1) or has unsubscribed (0).
ALTER TABLE parent_profiles ADD COLUMN digest INTEGER NOT NULL DEFAULT 1;

-- Safeguarding alerts: one row per burst of matching attempts by one subject (a client
-- address or a group) under one rule (the rule's name in the policy's alerts section).
-- A burst goes on while attempts keep coming within the rule's window of each other.
-- categories is a JSON list. Acknowledging sets acknowledged_by/_at and the note.
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY,
    rule TEXT NOT NULL,
    subject_kind TEXT NOT NULL CHECK (subject_kind IN ('client', 'group')),
    subject TEXT NOT NULL,
    group_name TEXT NOT NULL,
    client TEXT NOT NULL,
    mac TEXT NOT NULL,
    categories TEXT NOT NULL DEFAULT '[]',
    first_time REAL NOT NULL,
    last_time REAL NOT NULL,
    attempts INTEGER NOT NULL,
    created REAL NOT NULL,
    node TEXT NOT NULL,
    acknowledged_by TEXT,
    acknowledged_at REAL,
    note TEXT NOT NULL DEFAULT ''
);
CREATE INDEX alerts_subject ON alerts (rule, subject_kind, subject, last_time);
CREATE INDEX alerts_created ON alerts (created);

-- version: 4
-- The pupil (or device) a DoH/DoT client named through the roster; '' when none did.
ALTER TABLE query_events ADD COLUMN pupil TEXT NOT NULL DEFAULT '';
CREATE INDEX query_events_pupil ON query_events (pupil, time) WHERE pupil <> '';

-- version: 5
-- Which devices stand behind the hourly counts, so that a figure shown to parents can be
-- masked unless enough distinct devices make it (issue 20): one row per hour, group,
-- verdict, category and device. A device is a keyed pseudonym (the 'device-pseudonyms'
-- secret) of the pupil, MAC or address that asked, never the address itself. Rows go
-- with the hourly counts they stand behind (same retention).
CREATE TABLE hourly_devices (
    hour INTEGER NOT NULL,
    group_name TEXT NOT NULL,
    verdict TEXT NOT NULL,
    category TEXT NOT NULL,
    device TEXT NOT NULL,
    PRIMARY KEY (group_name, hour, verdict, category, device)
) WITHOUT ROWID;
CREATE INDEX hourly_devices_hour ON hourly_devices (hour);

-- version: 6
-- Take-home devices (issue 19). The roster pupils (pupil ids) a parent's children are,
-- from the parents' CSV import; and every revision of a pupil's home settings, set by
-- their parents (JSON: block, bedtime, paused_until; see policy/home.py). The newest
-- revision per pupil is in force.
ALTER TABLE parent_profiles ADD COLUMN pupils TEXT NOT NULL DEFAULT '[]';
CREATE TABLE home_settings (
    id INTEGER PRIMARY KEY,
    pupil TEXT NOT NULL,
    settings TEXT NOT NULL,
    author TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX home_settings_pupil ON home_settings (pupil, id);

-- version: 7
-- Notes from parents to the school (issue 19): about a block or a concern, with the child's
-- context (name, group, whether it happened at home or at school) and optionally a site.
-- They wait in the staff's Reviews queue until answered; the parent reads the answer.
CREATE TABLE parent_notes (
    id INTEGER PRIMARY KEY,
    created REAL NOT NULL,
    parent TEXT NOT NULL,
    child TEXT NOT NULL,
    group_name TEXT NOT NULL,
    place TEXT NOT NULL CHECK (place IN ('home', 'school')),
    site TEXT NOT NULL,
    text TEXT NOT NULL,
    answer TEXT,
    answered_by TEXT,
    answered_at REAL
);
CREATE INDEX parent_notes_parent ON parent_notes (parent, id);
CREATE INDEX parent_notes_group ON parent_notes (group_name, id);

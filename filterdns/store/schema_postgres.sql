-- The filterdns store schema for PostgreSQL (filterdns/store/postgres.py).
--
-- Each "-- version: N" line starts one migration. At open, the store takes an advisory
-- lock (so two nodes starting together do not race), applies the migrations the database
-- has not seen, in order, in one transaction, and notes them in schema_version.
-- Released migrations are never edited: a change is a new section at the end, mirrored in
-- schema_sqlite.sql under the same number.
--
-- Times are unix seconds (double precision) as in SQLite, so both backends share their
-- SQL; hourly_counts.hour is the UTC hour start (bigint).

-- version: 1
CREATE TABLE query_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time double precision NOT NULL,
    node text NOT NULL,
    client text NOT NULL,
    mac text NOT NULL,
    group_name text NOT NULL,
    name text NOT NULL,
    qtype integer NOT NULL,
    verdict text NOT NULL,
    reason text NOT NULL,
    category text NOT NULL,
    rcode integer NOT NULL,
    latency_ms double precision NOT NULL,
    answered_by text NOT NULL,
    transport text NOT NULL
);
CREATE INDEX query_events_time ON query_events (time, id);
CREATE INDEX query_events_group_time ON query_events (group_name, time, id);
CREATE INDEX query_events_client_time ON query_events (client, time, id);
CREATE INDEX query_events_blocked_time ON query_events (time) WHERE verdict = 'blocked';

CREATE TABLE hourly_counts (
    hour bigint NOT NULL,
    group_name text NOT NULL,
    verdict text NOT NULL,
    category text NOT NULL,
    node text NOT NULL,
    count bigint NOT NULL,
    PRIMARY KEY (hour, group_name, verdict, category, node)
);

CREATE TABLE users (
    name text PRIMARY KEY,
    role text NOT NULL CHECK (role IN ('admin', 'teacher', 'viewer', 'parent')),
    password_hash text NOT NULL,
    groups jsonb NOT NULL DEFAULT '[]',
    disabled boolean NOT NULL DEFAULT FALSE,
    failed_logins integer NOT NULL DEFAULT 0,
    locked_until double precision,
    created double precision NOT NULL
);

CREATE TABLE sessions (
    token_hash text PRIMARY KEY,
    user_name text NOT NULL REFERENCES users (name) ON DELETE CASCADE ON UPDATE CASCADE,
    csrf_token text NOT NULL,
    created double precision NOT NULL,
    expires double precision NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_name);
CREATE INDEX sessions_expires ON sessions (expires);

CREATE TABLE api_tokens (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_hash text NOT NULL UNIQUE,
    user_name text NOT NULL REFERENCES users (name) ON DELETE CASCADE ON UPDATE CASCADE,
    name text NOT NULL,
    created double precision NOT NULL,
    last_used double precision
);
CREATE INDEX api_tokens_user ON api_tokens (user_name);

-- Ids are assigned as max(id) + 1 under an advisory lock, so they grow in commit order
-- (a sequence would not: a later id can commit first, and a poller would skip the other).
CREATE TABLE policy_revisions (
    id bigint PRIMARY KEY,
    created double precision NOT NULL,
    node text NOT NULL,
    author text NOT NULL,
    comment text NOT NULL,
    yaml_text text NOT NULL
);

CREATE TABLE audit_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time double precision NOT NULL,
    node text NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    target text NOT NULL,
    detail jsonb NOT NULL
);
CREATE INDEX audit_log_time ON audit_log (time);

CREATE TABLE overrides (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    group_name text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('allow', 'block')),
    domain text NOT NULL,
    category text NOT NULL,
    created_by text NOT NULL,
    created_at double precision NOT NULL,
    expires_at double precision NOT NULL,
    revoked boolean NOT NULL DEFAULT FALSE,
    CHECK ((domain = '') <> (category = ''))
);
CREATE INDEX overrides_active ON overrides (expires_at) WHERE NOT revoked;

CREATE TABLE review_requests (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created double precision NOT NULL,
    node text NOT NULL,
    name text NOT NULL,
    group_name text NOT NULL,
    client text NOT NULL,
    reason text NOT NULL,
    status text NOT NULL CHECK (status IN ('pending', 'approved', 'declined')),
    decided_by text,
    decided_at double precision
);
CREATE INDEX review_requests_status ON review_requests (status, id);

-- version: 2
-- Parents (issue 5). A parent is a users row with role 'parent' whose name is their email
-- address; users.groups holds the class groups whose reports they may read. The profile
-- adds what only parents have: their children as [child name, group] pairs, and the
-- language of their pages ('' = the browser's).
CREATE TABLE parent_profiles (
    user_name text PRIMARY KEY REFERENCES users (name) ON DELETE CASCADE ON UPDATE CASCADE,
    children jsonb NOT NULL DEFAULT '[]',
    language text NOT NULL DEFAULT ''
);

-- One-time "set your password" links, at most one live link per account. Only the
-- token's SHA-256 is kept; using the link deletes the row.
CREATE TABLE password_tokens (
    user_name text PRIMARY KEY REFERENCES users (name) ON DELETE CASCADE ON UPDATE CASCADE,
    token_hash text NOT NULL UNIQUE,
    created double precision NOT NULL,
    expires double precision NOT NULL
);

-- Server secrets shared by every node, e.g. the key that signs shared report links.
-- A secret is generated once by whichever node needs it first; rotating one replaces it.
CREATE TABLE secrets (
    name text PRIMARY KEY,
    value text NOT NULL,
    created double precision NOT NULL
);

-- version: 3
-- Outgoing mail and webhooks (issue 5: weekly digests, safeguarding alerts). Whoever has
-- something to send adds a row; the node holding the 'outbox' lease delivers it, retrying
-- with backoff. dedup_key makes enqueueing idempotent, so nothing is sent twice after a
-- restart (a digest's key names the week and the parent). body_text is the plain-text
-- part of a mail, or the JSON body of a webhook; headers is a JSON object.
CREATE TABLE outbox (
    id bigserial PRIMARY KEY,
    dedup_key text NOT NULL UNIQUE,
    channel text NOT NULL CHECK (channel IN ('email', 'webhook')),
    kind text NOT NULL,
    recipient text NOT NULL,
    subject text NOT NULL,
    body_text text NOT NULL,
    body_html text NOT NULL,
    headers jsonb NOT NULL DEFAULT '{}',
    created double precision NOT NULL,
    status text NOT NULL CHECK (status IN ('pending', 'sending', 'sent', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt double precision NOT NULL,
    claimed_by text NOT NULL DEFAULT '',
    sent_at double precision,
    last_error text NOT NULL DEFAULT ''
);
CREATE INDEX outbox_due ON outbox (status, next_attempt);
CREATE INDEX outbox_created ON outbox (created);

-- Which node does a district-wide job (delivering the outbox, evaluating alerts, queueing
-- digests) right now. A holder renews its lease; another node takes over once it expires.
CREATE TABLE leases (
    name text PRIMARY KEY,
    holder text NOT NULL,
    expires double precision NOT NULL
);

-- Whether a parent gets the weekly digest (true) or has unsubscribed (false).
ALTER TABLE parent_profiles ADD COLUMN digest boolean NOT NULL DEFAULT true;

-- Safeguarding alerts: one row per burst of matching attempts by one subject (a client
-- address or a group) under one rule (the rule's name in the policy's alerts section).
-- A burst goes on while attempts keep coming within the rule's window of each other.
-- categories is a JSON list. Acknowledging sets acknowledged_by/_at and the note.
CREATE TABLE alerts (
    id bigserial PRIMARY KEY,
    rule text NOT NULL,
    subject_kind text NOT NULL CHECK (subject_kind IN ('client', 'group')),
    subject text NOT NULL,
    group_name text NOT NULL,
    client text NOT NULL,
    mac text NOT NULL,
    categories jsonb NOT NULL DEFAULT '[]',
    first_time double precision NOT NULL,
    last_time double precision NOT NULL,
    attempts integer NOT NULL,
    created double precision NOT NULL,
    node text NOT NULL,
    acknowledged_by text,
    acknowledged_at double precision,
    note text NOT NULL DEFAULT ''
);
CREATE INDEX alerts_subject ON alerts (rule, subject_kind, subject, last_time);
CREATE INDEX alerts_created ON alerts (created);

-- version: 4
-- The pupil (or device) a DoH/DoT client named through the roster; '' when none did.
ALTER TABLE query_events ADD COLUMN pupil text NOT NULL DEFAULT '';
CREATE INDEX query_events_pupil ON query_events (pupil, time) WHERE pupil <> '';

-- version: 5
-- Which devices stand behind the hourly counts (see schema_sqlite.sql, version 5).
CREATE TABLE hourly_devices (
    hour bigint NOT NULL,
    group_name text NOT NULL,
    verdict text NOT NULL,
    category text NOT NULL,
    device text NOT NULL,
    PRIMARY KEY (group_name, hour, verdict, category, device)
);
CREATE INDEX hourly_devices_hour ON hourly_devices (hour);

-- version: 6
-- Take-home devices (see schema_sqlite.sql, version 6).
ALTER TABLE parent_profiles ADD COLUMN pupils text NOT NULL DEFAULT '[]';
CREATE TABLE home_settings (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pupil text NOT NULL,
    settings text NOT NULL,
    author text NOT NULL,
    created double precision NOT NULL
);
CREATE INDEX home_settings_pupil ON home_settings (pupil, id);

-- version: 7
-- Notes from parents to the school (see schema_sqlite.sql, version 7).
CREATE TABLE parent_notes (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created double precision NOT NULL,
    parent text NOT NULL,
    child text NOT NULL,
    group_name text NOT NULL,
    place text NOT NULL CHECK (place IN ('home', 'school')),
    site text NOT NULL,
    text text NOT NULL,
    answer text,
    answered_by text,
    answered_at double precision
);
CREATE INDEX parent_notes_parent ON parent_notes (parent, id);
CREATE INDEX parent_notes_group ON parent_notes (group_name, id);

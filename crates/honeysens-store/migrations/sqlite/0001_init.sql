-- HoneySens schema, SQLite flavour. Times are BIGINT microseconds since the Unix epoch (UTC)
-- on every backend; booleans are 0/1.

CREATE TABLE divisions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL UNIQUE,
    created_at  BIGINT  NOT NULL
);

CREATE TABLE users (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    name                  TEXT    NOT NULL UNIQUE,
    full_name             TEXT,
    email                 TEXT,
    role                  TEXT    NOT NULL,
    password_hash         TEXT    NOT NULL,
    must_change_password  BOOLEAN NOT NULL DEFAULT 0,
    created_at            BIGINT  NOT NULL
);

CREATE TABLE user_divisions (
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    division_id  BIGINT NOT NULL REFERENCES divisions (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, division_id)
);

CREATE TABLE contacts (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    division_id      BIGINT  NOT NULL REFERENCES divisions (id) ON DELETE CASCADE,
    kind             TEXT    NOT NULL,
    address          TEXT,
    user_id          BIGINT  REFERENCES users (id) ON DELETE CASCADE,
    critical_events  BOOLEAN NOT NULL,
    all_events       BOOLEAN NOT NULL,
    sensor_timeouts  BOOLEAN NOT NULL,
    weekly_summary   BOOLEAN NOT NULL
);
CREATE INDEX contacts_division ON contacts (division_id);

CREATE TABLE platforms (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    name                 TEXT   NOT NULL UNIQUE,
    title                TEXT   NOT NULL,
    description          TEXT   NOT NULL,
    default_firmware_id  BIGINT
);

CREATE TABLE firmware_revisions (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    platform_id  BIGINT NOT NULL REFERENCES platforms (id) ON DELETE CASCADE,
    version      TEXT   NOT NULL,
    description  TEXT   NOT NULL,
    changelog    TEXT   NOT NULL,
    sha256       TEXT   NOT NULL,
    size         BIGINT NOT NULL,
    storage_key  TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    UNIQUE (platform_id, version)
);

CREATE TABLE sensors (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    name             TEXT    NOT NULL,
    location         TEXT    NOT NULL,
    division_id      BIGINT  NOT NULL REFERENCES divisions (id),
    config           TEXT    NOT NULL,
    update_interval  INTEGER,
    firmware_id      BIGINT  REFERENCES firmware_revisions (id) ON DELETE SET NULL,
    auth_mode        TEXT    NOT NULL,
    created_at       BIGINT  NOT NULL,
    last_seen        BIGINT,
    last_state       TEXT,
    UNIQUE (division_id, name)
);

-- HMAC secrets of sensors that authenticate per request (kept apart from the sensor row so
-- listings never carry them).
CREATE TABLE sensor_secrets (
    sensor_id   BIGINT NOT NULL PRIMARY KEY REFERENCES sensors (id) ON DELETE CASCADE,
    secret      TEXT   NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE sensor_status (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    sensor_id         BIGINT  NOT NULL REFERENCES sensors (id) ON DELETE CASCADE,
    sent_at           BIGINT  NOT NULL,
    received_at       BIGINT  NOT NULL,
    state             TEXT    NOT NULL,
    free_memory_mb    BIGINT  NOT NULL,
    disk_total_mb     BIGINT  NOT NULL,
    disk_used_mb      BIGINT  NOT NULL,
    agent_version     TEXT    NOT NULL,
    firmware_version  TEXT,
    spool_depth       BIGINT  NOT NULL,
    addresses         TEXT    NOT NULL,
    services          TEXT    NOT NULL
);
CREATE INDEX sensor_status_sensor ON sensor_status (sensor_id, received_at);
CREATE INDEX sensor_status_received ON sensor_status (received_at);

CREATE TABLE services (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT   NOT NULL UNIQUE,
    repository   TEXT   NOT NULL,
    description  TEXT   NOT NULL,
    created_at   BIGINT NOT NULL
);

CREATE TABLE service_revisions (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    service_id          BIGINT  NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    revision            TEXT    NOT NULL,
    architecture        TEXT    NOT NULL,
    description         TEXT    NOT NULL,
    port_assignment     TEXT    NOT NULL,
    catch_all           BOOLEAN NOT NULL,
    raw_network_access  BOOLEAN NOT NULL,
    image_digest        TEXT    NOT NULL,
    created_at          BIGINT  NOT NULL,
    UNIQUE (service_id, revision, architecture)
);

CREATE TABLE service_assignments (
    sensor_id   BIGINT NOT NULL REFERENCES sensors (id) ON DELETE CASCADE,
    service_id  BIGINT NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    revision    TEXT,
    PRIMARY KEY (sensor_id, service_id)
);

CREATE TABLE events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    uid             BLOB    NOT NULL UNIQUE,
    sensor_id       BIGINT  NOT NULL REFERENCES sensors (id) ON DELETE CASCADE,
    division_id     BIGINT  NOT NULL REFERENCES divisions (id) ON DELETE CASCADE,
    service         TEXT,
    ts              BIGINT  NOT NULL,
    received_at     BIGINT  NOT NULL,
    source_ip       TEXT    NOT NULL,
    source_key      BLOB    NOT NULL,
    source_port     INTEGER,
    dest_ip         TEXT,
    dest_port       INTEGER,
    protocol        TEXT    NOT NULL,
    type_code       TEXT    NOT NULL,
    classification  TEXT    NOT NULL,
    severity        TEXT    NOT NULL,
    summary         TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    comment         TEXT,
    archived        BOOLEAN NOT NULL,
    details         TEXT    NOT NULL,
    packets         TEXT    NOT NULL
);
-- Listings are keyset-paginated by (ts, id); these cover the unscoped list, the division-scoped
-- list (every non-admin query), the per-sensor list and source-address lookups.
CREATE INDEX events_ts ON events (ts, id);
CREATE INDEX events_division_ts ON events (division_id, ts, id);
CREATE INDEX events_sensor_ts ON events (sensor_id, ts, id);
CREATE INDEX events_source ON events (source_key, ts);

CREATE TABLE event_filters (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    division_id  BIGINT  NOT NULL REFERENCES divisions (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    description  TEXT,
    enabled      BOOLEAN NOT NULL,
    action       TEXT    NOT NULL,
    conditions   TEXT    NOT NULL,
    hits         BIGINT  NOT NULL DEFAULT 0,
    created_at   BIGINT  NOT NULL
);
CREATE INDEX event_filters_division ON event_filters (division_id);

CREATE TABLE settings (
    name   TEXT NOT NULL PRIMARY KEY,
    value  TEXT NOT NULL
);

CREATE TABLE ca (
    id          INTEGER PRIMARY KEY,
    cert_pem    TEXT   NOT NULL,
    key_pem     TEXT   NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE certificates (
    serial       TEXT   NOT NULL PRIMARY KEY,
    sensor_id    BIGINT REFERENCES sensors (id) ON DELETE SET NULL,
    fingerprint  TEXT   NOT NULL UNIQUE,
    not_before   BIGINT NOT NULL,
    not_after    BIGINT NOT NULL,
    cert_pem     TEXT   NOT NULL,
    revoked_at   BIGINT
);
CREATE INDEX certificates_sensor ON certificates (sensor_id);

CREATE TABLE jobs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    kind          TEXT    NOT NULL,
    payload       TEXT    NOT NULL,
    state         TEXT    NOT NULL,
    attempts      INTEGER NOT NULL,
    max_attempts  INTEGER NOT NULL,
    run_at        BIGINT  NOT NULL,
    locked_by     TEXT,
    locked_until  BIGINT,
    last_error    TEXT,
    created_at    BIGINT  NOT NULL
);
CREATE INDEX jobs_due ON jobs (state, run_at);

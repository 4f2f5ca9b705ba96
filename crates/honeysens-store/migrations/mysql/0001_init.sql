-- HoneySens schema, MySQL/MariaDB flavour. Times are BIGINT microseconds since the Unix epoch
-- (UTC) on every backend. Binary collation makes names compare exactly, as on the other
-- backends. Foreign keys are table constraints because MySQL ignores inline REFERENCES.

CREATE TABLE divisions (
    id          BIGINT AUTO_INCREMENT PRIMARY KEY,
    name        VARCHAR(255)    NOT NULL UNIQUE,
    created_at  BIGINT  NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE users (
    id                    BIGINT AUTO_INCREMENT PRIMARY KEY,
    name                  VARCHAR(255)    NOT NULL UNIQUE,
    full_name             TEXT,
    email                 TEXT,
    role                  VARCHAR(16)    NOT NULL,
    password_hash         TEXT    NOT NULL,
    must_change_password  BOOLEAN NOT NULL DEFAULT 0,
    created_at            BIGINT  NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE user_divisions (
    user_id      BIGINT NOT NULL,
    division_id  BIGINT NOT NULL,
    PRIMARY KEY (user_id, division_id),
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    FOREIGN KEY (division_id) REFERENCES divisions (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE contacts (
    id               BIGINT AUTO_INCREMENT PRIMARY KEY,
    division_id      BIGINT  NOT NULL,
    kind             VARCHAR(64)    NOT NULL,
    address          TEXT,
    user_id          BIGINT,
    critical_events  BOOLEAN NOT NULL,
    all_events       BOOLEAN NOT NULL,
    sensor_timeouts  BOOLEAN NOT NULL,
    weekly_summary   BOOLEAN NOT NULL,
    FOREIGN KEY (division_id) REFERENCES divisions (id) ON DELETE CASCADE,
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX contacts_division ON contacts (division_id);

CREATE TABLE platforms (
    id                   BIGINT AUTO_INCREMENT PRIMARY KEY,
    name                 VARCHAR(255)   NOT NULL UNIQUE,
    title                TEXT   NOT NULL,
    description          TEXT   NOT NULL,
    default_firmware_id  BIGINT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE firmware_revisions (
    id           BIGINT AUTO_INCREMENT PRIMARY KEY,
    platform_id  BIGINT NOT NULL,
    version      VARCHAR(255)   NOT NULL,
    description  TEXT   NOT NULL,
    changelog    TEXT   NOT NULL,
    sha256       VARCHAR(64)   NOT NULL,
    size         BIGINT NOT NULL,
    storage_key  VARCHAR(255)   NOT NULL,
    created_at   BIGINT NOT NULL,
    UNIQUE (platform_id, version),
    FOREIGN KEY (platform_id) REFERENCES platforms (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE sensors (
    id               BIGINT AUTO_INCREMENT PRIMARY KEY,
    name             VARCHAR(255)    NOT NULL,
    location         TEXT    NOT NULL,
    division_id      BIGINT  NOT NULL,
    config           TEXT    NOT NULL,
    update_interval  INTEGER,
    firmware_id      BIGINT,
    auth_mode        VARCHAR(16)    NOT NULL,
    created_at       BIGINT  NOT NULL,
    last_seen        BIGINT,
    last_state       VARCHAR(16),
    UNIQUE (division_id, name),
    FOREIGN KEY (division_id) REFERENCES divisions (id),
    FOREIGN KEY (firmware_id) REFERENCES firmware_revisions (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- HMAC secrets of sensors that authenticate per request (kept apart from the sensor row so
-- listings never carry them).
CREATE TABLE sensor_secrets (
    sensor_id   BIGINT NOT NULL PRIMARY KEY,
    secret      TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    FOREIGN KEY (sensor_id) REFERENCES sensors (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE sensor_status (
    id                BIGINT AUTO_INCREMENT PRIMARY KEY,
    sensor_id         BIGINT  NOT NULL,
    sent_at           BIGINT  NOT NULL,
    received_at       BIGINT  NOT NULL,
    state             VARCHAR(16)    NOT NULL,
    free_memory_mb    BIGINT  NOT NULL,
    disk_total_mb     BIGINT  NOT NULL,
    disk_used_mb      BIGINT  NOT NULL,
    agent_version     TEXT    NOT NULL,
    firmware_version  TEXT,
    spool_depth       BIGINT  NOT NULL,
    addresses         TEXT    NOT NULL,
    services          TEXT    NOT NULL,
    FOREIGN KEY (sensor_id) REFERENCES sensors (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX sensor_status_sensor ON sensor_status (sensor_id, received_at);
CREATE INDEX sensor_status_received ON sensor_status (received_at);

CREATE TABLE services (
    id           BIGINT AUTO_INCREMENT PRIMARY KEY,
    name         VARCHAR(255)   NOT NULL UNIQUE,
    repository   TEXT   NOT NULL,
    description  TEXT   NOT NULL,
    created_at   BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE service_revisions (
    id                  BIGINT AUTO_INCREMENT PRIMARY KEY,
    service_id          BIGINT  NOT NULL,
    revision            VARCHAR(255)    NOT NULL,
    architecture        VARCHAR(16)    NOT NULL,
    description         TEXT    NOT NULL,
    port_assignment     TEXT    NOT NULL,
    catch_all           BOOLEAN NOT NULL,
    raw_network_access  BOOLEAN NOT NULL,
    image_digest        VARCHAR(80)    NOT NULL,
    created_at          BIGINT  NOT NULL,
    UNIQUE (service_id, revision, architecture),
    FOREIGN KEY (service_id) REFERENCES services (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE service_assignments (
    sensor_id   BIGINT NOT NULL,
    service_id  BIGINT NOT NULL,
    revision    VARCHAR(255),
    PRIMARY KEY (sensor_id, service_id),
    FOREIGN KEY (sensor_id) REFERENCES sensors (id) ON DELETE CASCADE,
    FOREIGN KEY (service_id) REFERENCES services (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE events (
    id              BIGINT AUTO_INCREMENT PRIMARY KEY,
    uid             BINARY(16) NOT NULL UNIQUE,
    sensor_id       BIGINT  NOT NULL,
    division_id     BIGINT  NOT NULL,
    service         VARCHAR(255),
    ts              BIGINT  NOT NULL,
    received_at     BIGINT  NOT NULL,
    source_ip       VARCHAR(64)    NOT NULL,
    source_key      VARBINARY(16) NOT NULL,
    source_port     INTEGER,
    dest_ip         VARCHAR(64),
    dest_port       INTEGER,
    protocol        VARCHAR(16)    NOT NULL,
    type_code       VARCHAR(64)    NOT NULL,
    classification  VARCHAR(32)    NOT NULL,
    severity        VARCHAR(16)    NOT NULL,
    summary         TEXT    NOT NULL,
    status          VARCHAR(16)    NOT NULL,
    comment         TEXT,
    archived        BOOLEAN NOT NULL,
    details         LONGTEXT    NOT NULL,
    packets         LONGTEXT    NOT NULL,
    FOREIGN KEY (sensor_id) REFERENCES sensors (id) ON DELETE CASCADE,
    FOREIGN KEY (division_id) REFERENCES divisions (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
-- Listings are keyset-paginated by (ts, id); these cover the unscoped list, the division-scoped
-- list (every non-admin query), the per-sensor list and source-address lookups.
CREATE INDEX events_ts ON events (ts, id);
CREATE INDEX events_division_ts ON events (division_id, ts, id);
CREATE INDEX events_sensor_ts ON events (sensor_id, ts, id);
CREATE INDEX events_source ON events (source_key, ts);

CREATE TABLE event_filters (
    id           BIGINT AUTO_INCREMENT PRIMARY KEY,
    division_id  BIGINT  NOT NULL,
    name         VARCHAR(255)    NOT NULL,
    description  TEXT,
    enabled      BOOLEAN NOT NULL,
    action       VARCHAR(16)    NOT NULL,
    conditions   TEXT    NOT NULL,
    hits         BIGINT  NOT NULL DEFAULT 0,
    created_at   BIGINT  NOT NULL,
    FOREIGN KEY (division_id) REFERENCES divisions (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX event_filters_division ON event_filters (division_id);

CREATE TABLE settings (
    name   VARCHAR(255) NOT NULL PRIMARY KEY,
    value  TEXT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE ca (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    cert_pem    TEXT   NOT NULL,
    key_pem     TEXT   NOT NULL,
    created_at  BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE certificates (
    serial       VARCHAR(64)   NOT NULL PRIMARY KEY,
    sensor_id    BIGINT,
    fingerprint  VARCHAR(64)   NOT NULL UNIQUE,
    not_before   BIGINT NOT NULL,
    not_after    BIGINT NOT NULL,
    cert_pem     TEXT   NOT NULL,
    revoked_at   BIGINT,
    FOREIGN KEY (sensor_id) REFERENCES sensors (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX certificates_sensor ON certificates (sensor_id);

CREATE TABLE jobs (
    id            BIGINT AUTO_INCREMENT PRIMARY KEY,
    kind          VARCHAR(64)    NOT NULL,
    payload       TEXT    NOT NULL,
    state         VARCHAR(16)    NOT NULL,
    attempts      INTEGER NOT NULL,
    max_attempts  INTEGER NOT NULL,
    run_at        BIGINT  NOT NULL,
    locked_by     VARCHAR(255),
    locked_until  BIGINT,
    last_error    TEXT,
    created_at    BIGINT  NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX jobs_due ON jobs (state, run_at);

-- Incidents: events of one source address in one division, grouped across sensors and
-- services so a scan of the whole network raises one alert. Times are BIGINT microseconds.
-- Foreign keys are table constraints because MySQL ignores inline REFERENCES.

CREATE TABLE incidents (
    id              BIGINT AUTO_INCREMENT PRIMARY KEY,
    division_id     BIGINT  NOT NULL,
    source_ip       VARCHAR(64)    NOT NULL,
    source_key      VARBINARY(16)  NOT NULL,
    first_seen      BIGINT  NOT NULL,
    last_seen       BIGINT  NOT NULL,
    event_count     BIGINT  NOT NULL,
    severity        VARCHAR(16)    NOT NULL,
    classification  VARCHAR(32)    NOT NULL,
    status          VARCHAR(16)    NOT NULL,
    comment         TEXT,
    archived        BOOLEAN NOT NULL DEFAULT 0,
    alert_pending   BOOLEAN NOT NULL DEFAULT 0,
    last_alert_at   BIGINT,
    created_at      BIGINT  NOT NULL,
    FOREIGN KEY (division_id) REFERENCES divisions (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
-- The ingest lookup (newest live incident of a source) and keyset listing.
CREATE INDEX incidents_source ON incidents (division_id, source_key, last_seen);
CREATE INDEX incidents_last_seen ON incidents (last_seen, id);

-- One row per (division, source) with incidents: an ingest locks its sources' rows before it
-- looks for their live incidents, so two replicas cannot both open one for a new source.
CREATE TABLE incident_sources (
    division_id  BIGINT        NOT NULL,
    source_key   VARBINARY(16) NOT NULL,
    PRIMARY KEY (division_id, source_key),
    FOREIGN KEY (division_id) REFERENCES divisions (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

ALTER TABLE events ADD COLUMN incident_id BIGINT NULL;
CREATE INDEX events_incident ON events (incident_id);
ALTER TABLE events ADD CONSTRAINT events_incident_fk
    FOREIGN KEY (incident_id) REFERENCES incidents (id) ON DELETE SET NULL;

ALTER TABLE sensors ADD COLUMN offline BOOLEAN NOT NULL DEFAULT 0;

-- HMAC key of webhook contacts.
ALTER TABLE contacts ADD COLUMN secret TEXT;

-- Incidents: events of one source address in one division, grouped across sensors and
-- services so a scan of the whole network raises one alert. Times are BIGINT microseconds.

CREATE TABLE incidents (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    division_id     BIGINT  NOT NULL REFERENCES divisions (id) ON DELETE CASCADE,
    source_ip       TEXT    NOT NULL,
    source_key      BLOB    NOT NULL,
    first_seen      BIGINT  NOT NULL,
    last_seen       BIGINT  NOT NULL,
    event_count     BIGINT  NOT NULL,
    severity        TEXT    NOT NULL,
    classification  TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    comment         TEXT,
    archived        BOOLEAN NOT NULL DEFAULT 0,
    alert_pending   BOOLEAN NOT NULL DEFAULT 0,
    last_alert_at   BIGINT,
    created_at      BIGINT  NOT NULL
);
-- The ingest lookup (newest live incident of a source) and keyset listing.
CREATE INDEX incidents_source ON incidents (division_id, source_key, last_seen);
CREATE INDEX incidents_last_seen ON incidents (last_seen, id);

-- One row per (division, source) with incidents: an ingest locks its sources' rows before it
-- looks for their live incidents, so two replicas cannot both open one for a new source.
CREATE TABLE incident_sources (
    division_id  BIGINT NOT NULL REFERENCES divisions (id) ON DELETE CASCADE,
    source_key   BLOB NOT NULL,
    PRIMARY KEY (division_id, source_key)
);

-- SQLite allows a REFERENCES clause on an added column when its default is NULL.
ALTER TABLE events ADD COLUMN incident_id BIGINT REFERENCES incidents (id) ON DELETE SET NULL;
CREATE INDEX events_incident ON events (incident_id);

ALTER TABLE sensors ADD COLUMN offline BOOLEAN NOT NULL DEFAULT 0;

-- HMAC key of webhook contacts.
ALTER TABLE contacts ADD COLUMN secret TEXT;

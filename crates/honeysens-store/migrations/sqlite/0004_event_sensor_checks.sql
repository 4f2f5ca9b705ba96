-- The store checks each event batch's sensors once and deletes a sensor's or division's events
-- itself (see the PostgreSQL and MySQL migrations of this name, which drop the per-row foreign
-- keys on events). SQLite keeps its declarative foreign keys: their per-row check is a rowid
-- lookup in the same process, and dropping them would mean rebuilding the events table.
SELECT 1;

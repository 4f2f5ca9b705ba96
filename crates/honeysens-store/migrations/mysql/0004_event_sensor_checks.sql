-- Event ingest checks each batch's sensors once (one locking lookup in the store, which also
-- requires every event's division to be its sensor's) instead of a foreign-key check per row.
-- Deleting a sensor or division deletes its events in the store, in the same transaction.
ALTER TABLE events DROP FOREIGN KEY events_ibfk_1, DROP FOREIGN KEY events_ibfk_2;

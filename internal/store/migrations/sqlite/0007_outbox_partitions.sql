-- The outbox's partition columns, as on PostgreSQL (one SQLite database
-- serves one process, whose single relay reads every partition, so they
-- need no index here).
ALTER TABLE outbox ADD COLUMN parts SMALLINT NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN part SMALLINT NOT NULL DEFAULT 0;

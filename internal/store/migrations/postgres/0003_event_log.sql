-- The database is the event log. Each group's events are numbered in the
-- writing transaction: group_log holds every group's epoch and the offset of
-- its last recorded event, and its row lock orders the group's writes. The
-- outbox keeps each event with its position after it is published, for the
-- history window, so a resume can read what a channel layer lost or never
-- had.
CREATE TABLE group_log (
    grp   TEXT   PRIMARY KEY,
    epoch TEXT   NOT NULL,
    last  BIGINT NOT NULL
);
ALTER TABLE outbox ADD COLUMN epoch TEXT NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN off BIGINT NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN published BOOLEAN NOT NULL DEFAULT FALSE;
-- The relay reads what waits, history reads go by group and offset, and the
-- relay prunes by age.
CREATE INDEX outbox_pending ON outbox (id) WHERE NOT published;
CREATE INDEX outbox_log ON outbox (grp, epoch, off);
CREATE INDEX outbox_age ON outbox (created_at) WHERE published;

-- The outbox is partitioned by group: each event row stores the partition
-- its writer put it in (part, from a hash of grp) and how many partitions
-- that writer had (parts). Relays lock a partition each and publish
-- different partitions at once; a row of a count other than a relay's own
-- (written before the count changed, or by an older herald: 0) is drained
-- under the relays' global lock, in id order, before partitions are
-- published apart again. Adding columns with a constant default rewrites
-- nothing.
ALTER TABLE outbox ADD COLUMN parts SMALLINT NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN part SMALLINT NOT NULL DEFAULT 0;
-- A partition's waiting events in the order a relay publishes them: those
-- numbered already (by a round that failed to publish them) first, then
-- by id.
CREATE INDEX outbox_part_pending ON outbox (parts, part, (epoch = ''), id) WHERE NOT published;

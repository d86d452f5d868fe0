-- A deleted campaign's row stays as a tombstone: its id is never given to
-- another campaign (as on SQLite, where a deleted row's id could be), so
-- nothing that names it (an API key's group campaign_5, a link, a client's
-- stored position in its room) ever reaches a new one. Its title and
-- description are erased, and no read returns it again.
ALTER TABLE campaigns ADD COLUMN deleted_at TIMESTAMPTZ;

-- API keys let other backends publish events into herald's groups
-- (POST /api/publish/). A key is shown once, at creation, as
-- hk_<id>_<secret>; only a SHA-256 of the secret is kept. scopes is a
-- comma-separated list of what the key may publish to: kinds of group
-- (campaign, quest, user) or exact groups (campaign_5). A revoked key stays
-- (its idempotency keys refer to it) and is refused. last_used_at is
-- updated at most once a minute.
CREATE TABLE api_keys (
    id           TEXT        PRIMARY KEY,
    name         TEXT        NOT NULL,
    secret_hash  TEXT        NOT NULL,
    scopes       TEXT        NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    revoked_at   TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ
);

-- Idempotency-Key of publishes, per API key, as idempotency_keys is per
-- user: the row is inserted in the transaction of the publish it guards
-- and the answer stored on it afterwards. Kept 24 hours, at most 10,000
-- per key.
CREATE TABLE api_key_idempotency (
    api_key_id   TEXT        NOT NULL REFERENCES api_keys(id),
    idem_key     TEXT        NOT NULL,
    request_hash TEXT        NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    status       INTEGER,
    content_type TEXT,
    location     TEXT,
    body         BYTEA,
    PRIMARY KEY (api_key_id, idem_key)
);
CREATE INDEX api_key_idempotency_age ON api_key_idempotency (created_at);
CREATE INDEX api_key_idempotency_key_age ON api_key_idempotency (api_key_id, created_at);

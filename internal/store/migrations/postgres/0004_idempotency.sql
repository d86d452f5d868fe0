-- Idempotency-Key of the REST API's writes, per user. A key's row is
-- inserted in the transaction of the write it guards, so it exists exactly
-- when that write is committed; the response is stored on it afterwards
-- (status NULL until then) and replayed to a retry with the same key.
-- Rows are kept 24 hours, at most 10,000 per user.
CREATE TABLE idempotency_keys (
    user_id      BIGINT      NOT NULL REFERENCES users(id),
    idem_key     TEXT        NOT NULL,
    request_hash TEXT        NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    status       INTEGER,
    content_type TEXT,
    location     TEXT,
    body         BYTEA,
    PRIMARY KEY (user_id, idem_key)
);
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);
CREATE INDEX idempotency_keys_user_age ON idempotency_keys (user_id, created_at);

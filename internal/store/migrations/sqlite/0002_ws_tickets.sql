-- One-use tickets for opening a WebSocket or SSE stream without putting a
-- long-lived token in a URL. Only a hash of each ticket is stored.
CREATE TABLE ws_tickets (
    ticket_hash TEXT    PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    expires_at  TIMESTAMP NOT NULL
);
CREATE INDEX ws_tickets_expires ON ws_tickets (expires_at);

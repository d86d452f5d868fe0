-- herald schema, SQLite dialect. Kept in step with ../postgres/0001_init.sql:
-- the same tables, columns and constraints; only types differ.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT    NOT NULL,
    username_key  TEXT    NOT NULL UNIQUE,
    email         TEXT    NOT NULL DEFAULT '',
    password_hash TEXT    NOT NULL,
    created_at    TIMESTAMP NOT NULL
);

CREATE TABLE quests (
    id          INTEGER PRIMARY KEY,
    creator_id  INTEGER NOT NULL REFERENCES users(id),
    title       TEXT    NOT NULL,
    description TEXT    NOT NULL DEFAULT '',
    status      TEXT    NOT NULL CHECK (status IN ('open', 'closed')),
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL
);
CREATE INDEX quests_creator ON quests (creator_id);

CREATE TABLE applications (
    id           INTEGER PRIMARY KEY,
    quest_id     INTEGER NOT NULL REFERENCES quests(id),
    applicant_id INTEGER NOT NULL REFERENCES users(id),
    message      TEXT    NOT NULL DEFAULT '',
    status       TEXT    NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'withdrawn')),
    created_at   TIMESTAMP NOT NULL,
    updated_at   TIMESTAMP NOT NULL,
    UNIQUE (quest_id, applicant_id)
);
CREATE INDEX applications_applicant ON applications (applicant_id);

CREATE TABLE campaigns (
    id           INTEGER PRIMARY KEY,
    owner_id     INTEGER NOT NULL REFERENCES users(id),
    title        TEXT    NOT NULL,
    description  TEXT    NOT NULL DEFAULT '',
    goal_cents   INTEGER NOT NULL CHECK (goal_cents > 0),
    currency     TEXT    NOT NULL,
    raised_cents INTEGER NOT NULL DEFAULT 0 CHECK (raised_cents >= 0),
    status       TEXT    NOT NULL CHECK (status IN ('draft', 'active', 'closed')),
    created_at   TIMESTAMP NOT NULL,
    updated_at   TIMESTAMP NOT NULL
);
CREATE INDEX campaigns_owner ON campaigns (owner_id);

CREATE TABLE contributions (
    id           INTEGER PRIMARY KEY,
    campaign_id  INTEGER NOT NULL REFERENCES campaigns(id),
    user_id      INTEGER NOT NULL REFERENCES users(id),
    amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
    currency     TEXT    NOT NULL,
    created_at   TIMESTAMP NOT NULL
);
CREATE INDEX contributions_campaign ON contributions (campaign_id, id);

CREATE TABLE updates (
    id          INTEGER PRIMARY KEY,
    campaign_id INTEGER NOT NULL REFERENCES campaigns(id),
    title       TEXT    NOT NULL,
    content     TEXT    NOT NULL,
    image       TEXT    NOT NULL DEFAULT '',
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL
);
CREATE INDEX updates_campaign ON updates (campaign_id, id);

CREATE TABLE comments (
    id          INTEGER PRIMARY KEY,
    campaign_id INTEGER NOT NULL REFERENCES campaigns(id),
    user_id     INTEGER NOT NULL REFERENCES users(id),
    content     TEXT    NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL
);
CREATE INDEX comments_campaign ON comments (campaign_id, id);

CREATE TABLE releases (
    id          INTEGER PRIMARY KEY,
    campaign_id INTEGER NOT NULL REFERENCES campaigns(id),
    version     TEXT    NOT NULL,
    title       TEXT    NOT NULL,
    notes       TEXT    NOT NULL DEFAULT '',
    released_at TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL,
    UNIQUE (campaign_id, version)
);

CREATE TABLE milestones (
    id           INTEGER PRIMARY KEY,
    campaign_id  INTEGER NOT NULL REFERENCES campaigns(id),
    title        TEXT    NOT NULL,
    description  TEXT    NOT NULL DEFAULT '',
    target_cents INTEGER NOT NULL CHECK (target_cents > 0),
    reached      BOOLEAN NOT NULL DEFAULT FALSE,
    due_date     DATE,
    created_at   TIMESTAMP NOT NULL,
    updated_at   TIMESTAMP NOT NULL
);
CREATE INDEX milestones_campaign ON milestones (campaign_id, id);

-- Events recorded in the transaction of the write that caused them (data is the
-- exact JSON payload, kept as text so it is published byte for byte); the relay
-- publishes them in id order and deletes them once the channel layer has them.
CREATE TABLE outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    grp        TEXT    NOT NULL,
    type       TEXT    NOT NULL,
    data       TEXT    NOT NULL,
    created_at TIMESTAMP NOT NULL
);

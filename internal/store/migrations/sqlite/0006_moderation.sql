-- Moderation. A comment is removed by its author (deleted) or by the
-- campaign's owner (hidden): its row stays, so its id is never given to
-- another comment and its reports keep pointing at it, but its content is
-- erased and no read returns it again (lists, the detail, announces).
-- removed_by is who removed it.
ALTER TABLE comments ADD COLUMN removed_at TIMESTAMP;
ALTER TABLE comments ADD COLUMN removed_by INTEGER REFERENCES users(id);

-- Reports of comments, one per user per comment, read by the campaign's
-- owner per campaign, most recently reported first.
CREATE TABLE comment_reports (
    comment_id  INTEGER   NOT NULL REFERENCES comments(id),
    user_id     INTEGER   NOT NULL REFERENCES users(id),
    campaign_id INTEGER   NOT NULL REFERENCES campaigns(id),
    reason      TEXT      NOT NULL DEFAULT '',
    created_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (comment_id, user_id)
);
CREATE INDEX comment_reports_campaign ON comment_reports (campaign_id, created_at);

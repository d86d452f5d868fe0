package platform

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/heraldhq/herald/internal/store"
)

// EventCommentRemoved tells a campaign room that a comment is gone: its
// author deleted it or the campaign's owner hid it. Clients drop the
// comment with that id.
const EventCommentRemoved = "comment_removed"

// CommentRemoved is the data of EventCommentRemoved.
type CommentRemoved struct {
	ID       int64 `json:"id"`
	Campaign int64 `json:"campaign"`
}

// DeleteComment removes userID's own comment.
func (p *Platform) DeleteComment(ctx context.Context, userID, campaignID, commentID int64) error {
	return p.removeComment(ctx, userID, campaignID, commentID, false)
}

// HideComment removes a comment from a campaign; only the campaign's owner
// may.
func (p *Platform) HideComment(ctx context.Context, userID, campaignID, commentID int64) error {
	return p.removeComment(ctx, userID, campaignID, commentID, true)
}

// removeComment removes a comment, by its author or (byOwner) the
// campaign's owner: its content is erased, every read leaves it out, and
// the room is told with EventCommentRemoved. A comment already removed is
// not found, like one that never was.
//
// No replay may bring the comment back: in the same transaction every
// comment event of it still in the event log (the outbox, published or not)
// becomes the removal, at its own position, so offsets stay gap-free and a
// client replayed from before the removal is told of it where the comment
// was. The channel layers' windows are caches of the log: the removal's own
// event drops the room's window as it passes (layer.MemoryOptions.Redacts),
// so what came before it is read from the log again. The campaign's row
// lock orders the removal with edits of the comment, and the lock of the
// room's announces (Announce) with announces of it.
func (p *Platform) removeComment(ctx context.Context, userID, campaignID, commentID int64, byOwner bool) error {
	if err := requireUser(userID); err != nil {
		return err
	}
	return p.write(ctx, func(tx *sql.Tx) error {
		if _, err := p.campaignForWrite(ctx, tx, userID, campaignID, byOwner); err != nil {
			return err
		}
		group := CampaignGroup(campaignID)
		if err := p.lockAnnounces(ctx, tx, group); err != nil {
			return err
		}
		c, err := childIn(ctx, tx, campaignID, commentID, "comment", commentSelect, scanComment)
		if err != nil {
			return err
		}
		if !byOwner && c.User.ID != userID {
			return forbidden("only the comment's author may delete it")
		}
		if _, err := tx.ExecContext(ctx, "UPDATE comments SET content = '', removed_at = $1, removed_by = $2 WHERE id = $3",
			p.now(), userID, commentID); err != nil {
			return fmt.Errorf("remove comment %d: %w", commentID, err)
		}
		removed := CommentRemoved{ID: commentID, Campaign: campaignID}
		b, err := json.Marshal(removed)
		if err != nil {
			return fmt.Errorf("remove comment %d: %w", commentID, err)
		}
		// A comment's JSON starts with its id and campaign (Comment), in
		// every event recorded of it: its post, its edits, its announces.
		if _, err := tx.ExecContext(ctx, "UPDATE outbox SET type = $1, data = $2 WHERE grp = $3 AND type = $4 AND data LIKE $5",
			EventCommentRemoved, string(b), group, EventComment, commentPrefix(commentID, campaignID)+"%"); err != nil {
			return fmt.Errorf("remove comment %d from the event log: %w", commentID, err)
		}
		return p.record(ctx, tx, group, EventCommentRemoved, removed)
	})
}

// commentPrefix is how the JSON of comment id of campaign begins.
func commentPrefix(id, campaign int64) string {
	return `{"id":` + strconv.FormatInt(id, 10) + `,"campaign":` + strconv.FormatInt(campaign, 10) + `,`
}

// lockAnnounces takes, on PostgreSQL, the lock of group's announces until
// tx ends (SQLite runs one write at a time).
func (p *Platform) lockAnnounces(ctx context.Context, tx *sql.Tx, group string) error {
	if p.db.Dialect != store.Postgres {
		return nil
	}
	if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", "announce:"+group); err != nil {
		return fmt.Errorf("lock the announces of %s: %w", group, err)
	}
	return nil
}

// commentLive reports, in tx, whether the comment data is the JSON of is
// still there (not removed).
func commentLive(ctx context.Context, tx *sql.Tx, data []byte) (bool, error) {
	var ref struct {
		ID int64 `json:"id"`
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		return false, fmt.Errorf("read the id of a comment: %w", err)
	}
	n, err := count(ctx, tx, "SELECT COUNT(*) FROM comments WHERE id = $1 AND removed_at IS NULL", ref.ID)
	if err != nil {
		return false, fmt.Errorf("look up comment %d: %w", ref.ID, err)
	}
	return n > 0, nil
}

// ReportInput reports a comment; the reason is optional.
type ReportInput struct {
	Reason *string `json:"reason"`
}

// CommentReport is a user's report of a comment, as its reporter sees it.
type CommentReport struct {
	Comment   int64  `json:"comment"`
	Campaign  int64  `json:"campaign"`
	Reason    string `json:"reason"`
	CreatedAt Time   `json:"created_at"`
}

// ReportedComment is a comment and its reports, as the campaign's owner
// sees them. Who reported it is not told.
type ReportedComment struct {
	Comment        Comment `json:"comment"`
	ReportsCount   int64   `json:"reports_count"`
	LastReportedAt Time    `json:"last_reported_at"`
	// Reasons are those the reports gave, newest first, at most
	// MaxReportReasons (reports without a reason give none).
	Reasons []string `json:"reasons"`
}

// MaxReportReasons bounds ReportedComment.Reasons.
const MaxReportReasons = 10

// ReportComment records userID's report of a comment of a campaign they
// can see. A user reports a comment once (a conflict the second time), and
// not their own.
func (p *Platform) ReportComment(ctx context.Context, userID, campaignID, commentID int64, in ReportInput) (CommentReport, error) {
	if err := requireUser(userID); err != nil {
		return CommentReport{}, err
	}
	f := fieldErrors{}
	reason := text(f, "reason", deref(in.Reason), false, 500)
	if err := f.err(); err != nil {
		return CommentReport{}, err
	}
	r := CommentReport{Comment: commentID, Campaign: campaignID, Reason: reason, CreatedAt: Time{p.now()}}
	err := p.write(ctx, func(tx *sql.Tx) error {
		if _, err := p.campaignForNewChild(ctx, tx, userID, campaignID, false); err != nil {
			return err
		}
		c, err := childIn(ctx, tx, campaignID, commentID, "comment", commentSelect, scanComment)
		if err != nil {
			return err
		}
		if c.User.ID == userID {
			return forbidden("you cannot report your own comment")
		}
		_, err = tx.ExecContext(ctx, "INSERT INTO comment_reports (comment_id, user_id, campaign_id, reason, created_at) VALUES ($1, $2, $3, $4, $5)",
			commentID, userID, campaignID, reason, r.CreatedAt.Time)
		if store.IsUniqueViolation(err) {
			return conflict("you have already reported this comment")
		}
		if err != nil {
			return fmt.Errorf("report comment %d: %w", commentID, err)
		}
		return nil
	})
	return r, err
}

// CommentReports lists the comments of a campaign that were reported and
// are still there, most recently reported first; only the campaign's
// owner may read them.
func (p *Platform) CommentReports(ctx context.Context, userID, campaignID int64, page PageRequest) (Page[ReportedComment], error) {
	if err := requireUser(userID); err != nil {
		return Page[ReportedComment]{}, err
	}
	c, err := p.Campaign(ctx, userID, campaignID)
	if err != nil {
		return Page[ReportedComment]{}, err
	}
	if c.Owner.ID != userID {
		return Page[ReportedComment]{}, forbidden("only the campaign's owner may read its reports")
	}
	page = normPage(page)
	n, err := count(ctx, p.db, `SELECT COUNT(DISTINCT r.comment_id) FROM comment_reports r JOIN comments x ON x.id = r.comment_id
		WHERE r.campaign_id = $1 AND x.removed_at IS NULL`, campaignID)
	if err != nil {
		return Page[ReportedComment]{}, fmt.Errorf("count reported comments of campaign %d: %w", campaignID, err)
	}
	// Each comment's latest report, with their number: the rows of t with
	// k = 1.
	out, err := collect(ctx, p.db, func(s scanner) (ReportedComment, error) {
		rc := ReportedComment{Reasons: []string{}}
		c := &rc.Comment
		err := s.Scan(&c.ID, &c.Campaign, &c.User.ID, &c.User.Username, &c.Content, &c.CreatedAt.Time, &c.UpdatedAt.Time,
			&rc.ReportsCount, &rc.LastReportedAt.Time)
		return rc, err
	}, `SELECT x.id, x.campaign_id, x.user_id, u.username, x.content, x.created_at, x.updated_at, t.n, t.created_at
		FROM (SELECT comment_id, created_at, COUNT(*) OVER (PARTITION BY comment_id) AS n,
				ROW_NUMBER() OVER (PARTITION BY comment_id ORDER BY created_at DESC, user_id DESC) AS k
			FROM comment_reports WHERE campaign_id = $1) t
		JOIN comments x ON x.id = t.comment_id JOIN users u ON u.id = x.user_id
		WHERE t.k = 1 AND x.removed_at IS NULL
		ORDER BY t.created_at DESC, x.id DESC LIMIT $2 OFFSET $3`, campaignID, page.Size, page.offset())
	if err != nil {
		return Page[ReportedComment]{}, fmt.Errorf("list reported comments of campaign %d: %w", campaignID, err)
	}
	if err := p.reportReasons(ctx, out); err != nil {
		return Page[ReportedComment]{}, err
	}
	return Page[ReportedComment]{Count: n, Results: out}, nil
}

// reportReasons fills in the reasons of the reported comments rcs.
func (p *Platform) reportReasons(ctx context.Context, rcs []ReportedComment) error {
	if len(rcs) == 0 {
		return nil
	}
	at := make(map[int64]int, len(rcs))
	marks := make([]string, len(rcs))
	args := []any{MaxReportReasons}
	for i, rc := range rcs {
		at[rc.Comment.ID] = i
		args = append(args, rc.Comment.ID)
		marks[i] = "$" + strconv.Itoa(i+2)
	}
	type reason struct {
		comment int64
		text    string
	}
	reasons, err := collect(ctx, p.db, func(s scanner) (reason, error) {
		var r reason
		return r, s.Scan(&r.comment, &r.text)
	}, `SELECT comment_id, reason FROM (
		SELECT comment_id, reason, created_at, ROW_NUMBER() OVER (PARTITION BY comment_id ORDER BY created_at DESC, user_id DESC) AS n
		FROM comment_reports WHERE reason <> '' AND comment_id IN (`+strings.Join(marks, ",")+`)) t
		WHERE n <= $1 ORDER BY comment_id, n`, args...)
	if err != nil {
		return fmt.Errorf("read report reasons: %w", err)
	}
	for _, r := range reasons {
		i := at[r.comment]
		rcs[i].Reasons = append(rcs[i].Reasons, r.text)
	}
	return nil
}

package platform_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/testenv"
)

// outboxRow is an event of the log as the outbox holds it.
type outboxRow struct {
	id          int64
	typ, data   string
	epoch       string
	off         int64
	isPublished bool
}

func outboxOf(t *testing.T, p *platform.Platform, group string) []outboxRow {
	t.Helper()
	rows, err := p.DB().Query("SELECT id, type, data, epoch, off, published FROM outbox WHERE grp = $1 ORDER BY id", group)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []outboxRow
	for rows.Next() {
		var r outboxRow
		if err := rows.Scan(&r.id, &r.typ, &r.data, &r.epoch, &r.off, &r.isPublished); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Removing a comment (its author's delete, the owner's hide) takes it out
// of every read, records comment_removed, and rewrites the comment's events
// already in the log into the removal at their own positions: nothing the
// log replays carries its text any more. Other comments' events stay.
func TestRemoveComment(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		p := open(t, dsn)
		owner, fan, other := mustUser(t, p, "owner"), mustUser(t, p, "fan"), mustUser(t, p, "other")
		cid := activeCampaign(t, p, owner, "100.00")
		group := platform.CampaignGroup(cid)
		c1, err := p.PostComment(ctx, fan, cid, platform.CommentInput{Content: ptr("secret one")})
		if err != nil {
			t.Fatal(err)
		}
		keep, err := p.PostComment(ctx, other, cid, platform.CommentInput{Content: ptr("stays")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.EditComment(ctx, fan, cid, c1.ID, platform.CommentInput{Content: ptr("secret two")}); err != nil {
			t.Fatal(err)
		}
		// Published already, as the relay would mark it.
		if _, err := p.DB().Exec("UPDATE outbox SET published = TRUE WHERE id = (SELECT MIN(id) FROM outbox)"); err != nil {
			t.Fatal(err)
		}
		before := outboxOf(t, p, group)

		if err := p.DeleteComment(ctx, fan, cid, c1.ID); err != nil {
			t.Fatal(err)
		}
		after := outboxOf(t, p, group)
		if len(after) != len(before)+1 {
			t.Fatalf("log after the removal has %d events; want %d", len(after), len(before)+1)
		}
		removed := fmt.Sprintf(`{"id":%d,"campaign":%d}`, c1.ID, cid)
		for i, b := range before {
			a := after[i]
			if a.id != b.id || a.epoch != b.epoch || a.off != b.off || a.isPublished != b.isPublished {
				t.Errorf("event %d moved: %+v, was %+v", i, a, b)
			}
			if strings.Contains(a.data, "secret") {
				t.Errorf("event %d still holds the removed comment: %s %s", i, a.typ, a.data)
			}
			if strings.Contains(b.data, "secret") && (a.typ != platform.EventCommentRemoved || a.data != removed) {
				t.Errorf("event %d = %s %s; want %s %s", i, a.typ, a.data, platform.EventCommentRemoved, removed)
			}
			if !strings.Contains(b.data, "secret") && (a.typ != b.typ || a.data != b.data) {
				t.Errorf("event %d of another object changed: %s %s, was %s %s", i, a.typ, a.data, b.typ, b.data)
			}
		}
		if last := after[len(after)-1]; last.typ != platform.EventCommentRemoved || last.data != removed || last.isPublished {
			t.Errorf("the removal's own event = %+v; want %s %s, to publish", last, platform.EventCommentRemoved, removed)
		}

		// Every read leaves it out.
		if _, err := p.Comment(ctx, owner, cid, c1.ID); platform.KindOf(err) != platform.KindNotFound {
			t.Errorf("read of a removed comment: %v; want not found", err)
		}
		list, err := p.Comments(ctx, 0, cid, platform.PageRequest{})
		if err != nil || list.Count != 1 || len(list.Results) != 1 || list.Results[0].ID != keep.ID {
			t.Errorf("comments after the removal = %+v, %v; want only %d", list, err, keep.ID)
		}
		d, err := p.CampaignDetail(ctx, 0, cid)
		if err != nil || d.CommentsCount != 1 || len(d.Comments) != 1 || d.Comments[0].ID != keep.ID {
			t.Errorf("detail after the removal: %d comments %+v, %v; want only %d", d.CommentsCount, d.Comments, err, keep.ID)
		}
		if _, err := p.ObjectJSON(ctx, fan, cid, platform.EventComment, c1.ID); platform.KindOf(err) != platform.KindNotFound {
			t.Errorf("announce lookup of a removed comment: %v; want not found", err)
		}
		if _, err := p.EditComment(ctx, fan, cid, c1.ID, platform.CommentInput{Content: ptr("back")}); platform.KindOf(err) != platform.KindNotFound {
			t.Errorf("edit of a removed comment: %v; want not found", err)
		}
		// An announce that read the comment before it was removed records
		// nothing.
		recorded, err := p.Announce(ctx, group, platform.EventComment, []byte(jsonOf(t, c1)))
		if platform.KindOf(err) != platform.KindNotFound || recorded {
			t.Errorf("announce of a removed comment's old JSON: recorded %v, %v; want not found", recorded, err)
		}
		var content string
		if err := p.DB().QueryRow("SELECT content FROM comments WHERE id = $1", c1.ID).Scan(&content); err != nil || content != "" {
			t.Errorf("a removed comment's stored content = %q, %v; want it erased", content, err)
		}

		// The owner hides someone else's comment the same way.
		if err := p.HideComment(ctx, owner, cid, keep.ID); err != nil {
			t.Fatal(err)
		}
		log := outboxOf(t, p, group)
		if last := log[len(log)-1]; last.typ != platform.EventCommentRemoved || last.data != fmt.Sprintf(`{"id":%d,"campaign":%d}`, keep.ID, cid) {
			t.Errorf("hide recorded %+v", last)
		}
		for _, r := range log {
			if r.typ == platform.EventComment {
				t.Errorf("a comment event is left in the log: %s", r.data)
			}
		}
		if d, err := p.CampaignDetail(ctx, 0, cid); err != nil || d.CommentsCount != 0 || len(d.Comments) != 0 {
			t.Errorf("detail after both removals: %d comments %+v, %v", d.CommentsCount, d.Comments, err)
		}
	})
}

// Who may remove which comment, and what is not there to remove.
func TestRemoveCommentRefusals(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		p := open(t, dsn)
		owner, fan, stranger := mustUser(t, p, "owner"), mustUser(t, p, "fan"), mustUser(t, p, "stranger")
		cid := activeCampaign(t, p, owner, "100.00")
		otherCampaign := activeCampaign(t, p, stranger, "100.00")
		draft, err := p.CreateCampaign(ctx, owner, platform.CampaignInput{Title: ptr("Draft"), GoalAmount: cents(t, "10.00")})
		if err != nil {
			t.Fatal(err)
		}
		c, err := p.PostComment(ctx, fan, cid, platform.CommentInput{Content: ptr("mine")})
		if err != nil {
			t.Fatal(err)
		}
		ownerComment, err := p.PostComment(ctx, owner, cid, platform.CommentInput{Content: ptr("the owner's")})
		if err != nil {
			t.Fatal(err)
		}
		draftComment, err := p.PostComment(ctx, owner, draft.ID, platform.CommentInput{Content: ptr("draft")})
		if err != nil {
			t.Fatal(err)
		}
		drain(t, p)
		cases := []struct {
			name string
			err  error
			want platform.Kind
		}{
			{"a stranger deletes another's comment", p.DeleteComment(ctx, stranger, cid, c.ID), platform.KindForbidden},
			{"the owner deletes another's comment", p.DeleteComment(ctx, owner, cid, c.ID), platform.KindForbidden},
			{"the author hides the owner's comment", p.HideComment(ctx, fan, cid, ownerComment.ID), platform.KindForbidden},
			{"a stranger hides a comment", p.HideComment(ctx, stranger, cid, c.ID), platform.KindForbidden},
			{"the author hides their own comment", p.HideComment(ctx, fan, cid, c.ID), platform.KindForbidden},
			{"anonymous deletes", p.DeleteComment(ctx, 0, cid, c.ID), platform.KindUnauthorized},
			{"a comment id that does not exist", p.DeleteComment(ctx, fan, cid, c.ID+1000), platform.KindNotFound},
			{"hide of a comment id that does not exist", p.HideComment(ctx, owner, cid, c.ID+1000), platform.KindNotFound},
			{"a campaign that does not exist", p.DeleteComment(ctx, fan, cid+1000, c.ID), platform.KindNotFound},
			{"the comment under another campaign", p.HideComment(ctx, stranger, otherCampaign, c.ID), platform.KindNotFound},
			{"a draft's comment, by someone else", p.HideComment(ctx, fan, draft.ID, draftComment.ID), platform.KindNotFound},
		}
		for _, tc := range cases {
			if platform.KindOf(tc.err) != tc.want {
				t.Errorf("%s: %v; want kind %d", tc.name, tc.err, tc.want)
			}
		}
		if evs := drain(t, p); len(evs) != 0 {
			t.Errorf("refused removals recorded %+v", evs)
		}
		if got, err := p.Comment(ctx, 0, cid, c.ID); err != nil || got.Content != "mine" {
			t.Errorf("comment after refused removals: %+v, %v", got, err)
		}
		// Removed once, it is not there to remove again.
		if err := p.DeleteComment(ctx, fan, cid, c.ID); err != nil {
			t.Fatal(err)
		}
		if err := p.DeleteComment(ctx, fan, cid, c.ID); platform.KindOf(err) != platform.KindNotFound {
			t.Errorf("second delete: %v; want not found", err)
		}
		if err := p.HideComment(ctx, owner, cid, c.ID); platform.KindOf(err) != platform.KindNotFound {
			t.Errorf("hide after delete: %v; want not found", err)
		}
		if evs := drain(t, p); len(evs) != 1 {
			t.Errorf("one removal recorded %d events: %+v", len(evs), evs)
		}
		// The owner deletes their own comment, in a draft too.
		if err := p.DeleteComment(ctx, owner, draft.ID, draftComment.ID); err != nil {
			t.Errorf("the owner deletes their own draft comment: %v", err)
		}
	})
}

// Reports: once per user per comment, not of one's own or of a removed
// comment; the campaign's owner reads them, newest first, with their
// reasons, and a removed comment leaves the list.
func TestCommentReports(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		p := open(t, dsn)
		owner, a, b, c := mustUser(t, p, "owner"), mustUser(t, p, "a"), mustUser(t, p, "b"), mustUser(t, p, "c")
		cid := activeCampaign(t, p, owner, "100.00")
		first, err := p.PostComment(ctx, a, cid, platform.CommentInput{Content: ptr("first")})
		if err != nil {
			t.Fatal(err)
		}
		second, err := p.PostComment(ctx, b, cid, platform.CommentInput{Content: ptr("second")})
		if err != nil {
			t.Fatal(err)
		}
		report := func(user, comment int64, reason string) (platform.CommentReport, error) {
			return p.ReportComment(ctx, user, cid, comment, platform.ReportInput{Reason: &reason})
		}
		r, err := report(b, first.ID, "  spam  ")
		if err != nil {
			t.Fatal(err)
		}
		if r.Comment != first.ID || r.Campaign != cid || r.Reason != "spam" || r.CreatedAt.IsZero() {
			t.Errorf("report = %+v", r)
		}
		if _, err := report(c, first.ID, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := report(c, second.ID, "rude"); err != nil {
			t.Fatal(err)
		}
		if _, err := report(owner, first.ID, "off topic"); err != nil {
			t.Fatal(err)
		}
		refusals := []struct {
			name string
			err  error
			want platform.Kind
		}{
			{"reporting twice", second2(report(c, second.ID, "again")), platform.KindConflict},
			{"reporting one's own comment", second2(report(a, first.ID, "")), platform.KindForbidden},
			{"a comment that does not exist", second2(report(c, second.ID+1000, "")), platform.KindNotFound},
			{"anonymous", second2(report(0, first.ID, "")), platform.KindUnauthorized},
			{"a reason too long", second2(report(a, second.ID, strings.Repeat("x", 501))), platform.KindInvalid},
			{"a campaign that does not exist", second2(p.ReportComment(ctx, a, cid+1000, second.ID, platform.ReportInput{})), platform.KindNotFound},
		}
		for _, tc := range refusals {
			if platform.KindOf(tc.err) != tc.want {
				t.Errorf("%s: %v; want kind %d", tc.name, tc.err, tc.want)
			}
		}
		if evs := drain(t, p); len(evs) != 2 {
			t.Errorf("reports recorded events: %+v; want only the two comments'", evs)
		}

		for _, u := range []int64{a, b, 0} {
			if _, err := p.CommentReports(ctx, u, cid, platform.PageRequest{}); platform.KindOf(err) == 0 {
				t.Errorf("user %d read the owner's reports", u)
			}
		}
		got, err := p.CommentReports(ctx, owner, cid, platform.PageRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Count != 2 || len(got.Results) != 2 {
			t.Fatalf("reports = %+v; want two comments", got)
		}
		// The first comment was reported last (by the owner).
		f, s := got.Results[0], got.Results[1]
		if f.Comment.ID != first.ID || f.ReportsCount != 3 || strings.Join(f.Reasons, "|") != "off topic|spam" || f.Comment.Content != "first" {
			t.Errorf("first reported = %+v; want comment %d, 3 reports, reasons off topic|spam", f, first.ID)
		}
		if s.Comment.ID != second.ID || s.ReportsCount != 1 || strings.Join(s.Reasons, "|") != "rude" {
			t.Errorf("second reported = %+v", s)
		}
		if f.LastReportedAt.Before(s.LastReportedAt.Time) {
			t.Errorf("reported at %v before %v", f.LastReportedAt, s.LastReportedAt)
		}
		page2, err := p.CommentReports(ctx, owner, cid, platform.PageRequest{Number: 2, Size: 1})
		if err != nil || page2.Count != 2 || len(page2.Results) != 1 || page2.Results[0].Comment.ID != second.ID {
			t.Errorf("page 2 of 1 = %+v, %v", page2, err)
		}

		// Hidden, it leaves the reports; and it cannot be reported any more.
		if err := p.HideComment(ctx, owner, cid, first.ID); err != nil {
			t.Fatal(err)
		}
		got, err = p.CommentReports(ctx, owner, cid, platform.PageRequest{})
		if err != nil || got.Count != 1 || len(got.Results) != 1 || got.Results[0].Comment.ID != second.ID {
			t.Errorf("reports after hiding = %+v, %v", got, err)
		}
		if _, err := report(b, second.ID+0, "x"); platform.KindOf(err) != platform.KindForbidden {
			t.Errorf("b reports own comment: %v", err)
		}
		if _, err := report(owner, first.ID, "x"); platform.KindOf(err) != platform.KindNotFound {
			t.Errorf("report of a removed comment: %v; want not found", err)
		}
	})
}

func second2[T any](_ T, err error) error { return err }

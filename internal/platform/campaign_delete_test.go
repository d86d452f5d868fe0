package platform_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/testenv"
)

// Deleting a campaign takes it and its updates, comments (with their
// reports), releases and milestones out of every read and the database,
// returns its updates' images, tells its room (campaign_deleted, then a
// reset) and rewrites every earlier event of the room still in the log
// into the deletion at its own position, resets excepted: nothing the log
// replays carries the campaign any more. Its row stays as a tombstone, so
// its id is never another campaign's.
func TestDeleteCampaign(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		p := open(t, dsn)
		owner, fan, other := mustUser(t, p, "owner"), mustUser(t, p, "fan"), mustUser(t, p, "other")
		funded := activeCampaign(t, p, owner, "100.00")
		if _, err := p.Contribute(ctx, fan, funded, platform.ContributionInput{Amount: cents(t, "5.00")}); err != nil {
			t.Fatal(err)
		}
		// A draft made public, so the room's log holds a reset too.
		d, err := p.CreateCampaign(ctx, owner, platform.CampaignInput{Title: ptr("secret title"), Description: ptr("secret plan"), GoalAmount: cents(t, "50.00")})
		if err != nil {
			t.Fatal(err)
		}
		cid, group := d.ID, platform.CampaignGroup(d.ID)
		image := "/media/campaign_updates/0123456789abcdef0123456789abcdef.png"
		if _, err := p.PostUpdate(ctx, owner, cid, platform.UpdateInput{Title: ptr("secret update"), Content: ptr("c"), Image: platform.UploadedImage(image)}); err != nil {
			t.Fatal(err)
		}
		if _, err := p.PostUpdate(ctx, owner, cid, platform.UpdateInput{Title: ptr("secret words"), Content: ptr("no image")}); err != nil {
			t.Fatal(err)
		}
		if _, err := p.UpdateCampaign(ctx, owner, cid, platform.CampaignInput{Status: ptr(platform.CampaignActive)}); err != nil {
			t.Fatal(err)
		}
		comment, err := p.PostComment(ctx, fan, cid, platform.CommentInput{Content: ptr("secret comment")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.ReportComment(ctx, other, cid, comment.ID, platform.ReportInput{Reason: ptr("secret reason")}); err != nil {
			t.Fatal(err)
		}
		if _, err := p.CreateRelease(ctx, owner, cid, platform.ReleaseInput{Version: ptr("1.0"), Title: ptr("secret release")}); err != nil {
			t.Fatal(err)
		}
		if _, err := p.CreateMilestone(ctx, owner, cid, platform.MilestoneInput{Title: ptr("secret milestone"), TargetAmount: cents(t, "10.00")}); err != nil {
			t.Fatal(err)
		}
		// Published already, as the relay would mark it.
		if _, err := p.DB().Exec("UPDATE outbox SET published = TRUE WHERE id = (SELECT MIN(id) FROM outbox WHERE grp = $1)", group); err != nil {
			t.Fatal(err)
		}
		before := outboxOf(t, p, group)

		// Refusals change nothing: someone else, a campaign with
		// contributions, one that does not exist.
		if _, err := p.DeleteCampaign(ctx, fan, cid); platform.KindOf(err) != platform.KindForbidden {
			t.Errorf("deleted by someone else: %v; want forbidden", err)
		}
		_, err = p.DeleteCampaign(ctx, owner, funded)
		var de *platform.Error
		if !errors.As(err, &de) || de.Kind != platform.KindConflict || de.Code != platform.CodeHasContributions {
			t.Errorf("a campaign with contributions: %v; want a conflict coded %s", err, platform.CodeHasContributions)
		}
		if _, err := p.DeleteCampaign(ctx, owner, cid+1000); platform.KindOf(err) != platform.KindNotFound {
			t.Errorf("an unknown campaign: %v; want not found", err)
		}
		if got := outboxOf(t, p, group); len(got) != len(before) {
			t.Fatalf("refused deletions recorded %d events", len(got)-len(before))
		}

		images, err := p.DeleteCampaign(ctx, owner, cid)
		if err != nil {
			t.Fatal(err)
		}
		if len(images) != 1 || images[0] != image {
			t.Errorf("images = %q; want [%s]", images, image)
		}

		after := outboxOf(t, p, group)
		if len(after) != len(before)+2 {
			t.Fatalf("log after the deletion has %d events; want %d", len(after), len(before)+2)
		}
		deleted := fmt.Sprintf(`{"id":%d}`, cid)
		for i, b := range before {
			a := after[i]
			if a.id != b.id || a.epoch != b.epoch || a.off != b.off || a.isPublished != b.isPublished {
				t.Errorf("event %d moved: %+v, was %+v", i, a, b)
			}
			switch {
			case b.typ == platform.EventRoomReset:
				if a.typ != b.typ || a.data != b.data {
					t.Errorf("reset %d changed: %s %s", i, a.typ, a.data)
				}
			case a.typ != platform.EventCampaignDeleted || a.data != deleted:
				t.Errorf("event %d = %s %s; want %s %s", i, a.typ, a.data, platform.EventCampaignDeleted, deleted)
			}
		}
		if got := after[len(after)-2]; got.typ != platform.EventCampaignDeleted || got.data != deleted || got.isPublished {
			t.Errorf("the deletion's event = %+v; want %s %s, to publish", got, platform.EventCampaignDeleted, deleted)
		}
		if got := after[len(after)-1]; got.typ != platform.EventRoomReset {
			t.Errorf("the deletion's last event = %+v; want the room's reset", got)
		}
		for _, r := range after {
			if strings.Contains(r.data, "secret") {
				t.Errorf("the log still holds the campaign: %s %s", r.typ, r.data)
			}
		}

		// Every read and write finds nothing, the owner's too.
		for who, uid := range map[string]int64{"owner": owner, "fan": fan, "anonymous": 0} {
			if _, err := p.CampaignDetail(ctx, uid, cid); platform.KindOf(err) != platform.KindNotFound {
				t.Errorf("%s reads the deleted campaign: %v; want not found", who, err)
			}
			if _, err := p.Updates(ctx, uid, cid, platform.PageRequest{}); platform.KindOf(err) != platform.KindNotFound {
				t.Errorf("%s lists its updates: %v; want not found", who, err)
			}
			l, err := p.ListCampaigns(ctx, uid, platform.CampaignFilter{OwnerID: owner}, platform.PageRequest{})
			if err != nil || l.Count != 1 || len(l.Results) != 1 || l.Results[0].ID != funded {
				t.Errorf("%s lists the owner's campaigns: %+v, %v; want only %d", who, l, err, funded)
			}
		}
		if _, err := p.DeleteCampaign(ctx, owner, cid); platform.KindOf(err) != platform.KindNotFound {
			t.Errorf("deleted twice: %v; want not found", err)
		}
		if _, err := p.UpdateCampaign(ctx, owner, cid, platform.CampaignInput{Title: ptr("back")}); platform.KindOf(err) != platform.KindNotFound {
			t.Errorf("edit of a deleted campaign: %v; want not found", err)
		}
		if _, err := p.PostComment(ctx, fan, cid, platform.CommentInput{Content: ptr("hello?")}); platform.KindOf(err) != platform.KindNotFound {
			t.Errorf("comment on a deleted campaign: %v; want not found", err)
		}
		// An announce that read the comment before the deletion records
		// nothing.
		if recorded, err := p.Announce(ctx, group, platform.EventComment, []byte(jsonOf(t, comment))); platform.KindOf(err) != platform.KindNotFound || recorded {
			t.Errorf("announce of the deleted campaign's comment: recorded %v, %v; want not found", recorded, err)
		}
		for _, table := range []string{"updates", "comments", "comment_reports", "releases", "milestones"} {
			var n int
			if err := p.DB().QueryRow("SELECT COUNT(*) FROM "+table+" WHERE campaign_id = $1", cid).Scan(&n); err != nil || n != 0 {
				t.Errorf("%s of the deleted campaign: %d rows, %v", table, n, err)
			}
		}
		var title, desc string
		if err := p.DB().QueryRow("SELECT title, description FROM campaigns WHERE id = $1 AND deleted_at IS NOT NULL", cid).Scan(&title, &desc); err != nil || title != "" || desc != "" {
			t.Errorf("the tombstone: %q %q, %v; want the row, its text erased", title, desc, err)
		}
		if again := activeCampaign(t, p, owner, "1.00"); again <= cid {
			t.Errorf("a new campaign got id %d; want one after the deleted %d", again, cid)
		}
		// Only herald records the deletion in a campaign's room.
		if err := p.RecordExternal(ctx, platform.CampaignGroup(funded), platform.EventCampaignDeleted, []byte(`{"id":1}`)); platform.KindOf(err) != platform.KindInvalid {
			t.Errorf("a campaign_deleted event from outside in a campaign's room: %v; want invalid", err)
		}
		if err := p.RecordExternal(ctx, platform.UserGroup(fan), platform.EventCampaignDeleted, []byte(`{}`)); err != nil {
			t.Errorf("a campaign_deleted event from outside in a user's group: %v", err)
		}
	})
}

// A draft is deleted by its owner alone: to anyone else it does not exist.
func TestDeleteDraft(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		p := open(t, dsn)
		owner, fan := mustUser(t, p, "owner"), mustUser(t, p, "fan")
		d, err := p.CreateCampaign(ctx, owner, platform.CampaignInput{Title: ptr("Draft"), GoalAmount: cents(t, "5.00")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.DeleteCampaign(ctx, fan, d.ID); platform.KindOf(err) != platform.KindNotFound {
			t.Errorf("someone else deletes a draft: %v; want not found", err)
		}
		if _, err := p.DeleteCampaign(ctx, 0, d.ID); platform.KindOf(err) != platform.KindUnauthorized {
			t.Errorf("nobody deletes a draft: %v; want unauthorized", err)
		}
		if _, err := p.DeleteCampaign(ctx, owner, d.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Campaign(ctx, owner, d.ID); platform.KindOf(err) != platform.KindNotFound {
			t.Errorf("the deleted draft: %v; want not found", err)
		}
	})
}

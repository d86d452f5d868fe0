package platform_test

import (
	"context"
	"testing"

	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/testenv"
)

// Making a draft public records a reset of its room after the events of
// its draft, in the same transaction; until the relay publishes it,
// RoomResetPending says so. A campaign that stays public records none, and
// none can go back to draft.
func TestPublishingADraftResetsItsRoom(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		p := open(t, dsn)
		owner := mustUser(t, p, "owner")
		for _, next := range []string{platform.CampaignActive, platform.CampaignClosed} {
			d, err := p.CreateCampaign(ctx, owner, platform.CampaignInput{Title: ptr("Draft"), GoalAmount: cents(t, "1.00")})
			if err != nil {
				t.Fatal(err)
			}
			group := platform.CampaignGroup(d.ID)
			if _, err := p.PostComment(ctx, owner, d.ID, platform.CommentInput{Content: ptr("draft")}); err != nil {
				t.Fatal(err)
			}
			if _, err := p.UpdateCampaign(ctx, owner, d.ID, platform.CampaignInput{Title: ptr("Still a draft")}); err != nil {
				t.Fatal(err)
			}
			if pending, err := p.RoomResetPending(ctx, group); err != nil || pending {
				t.Fatalf("a draft's room: reset pending %v, %v", pending, err)
			}
			if _, err := p.UpdateCampaign(ctx, owner, d.ID, platform.CampaignInput{Status: ptr(next)}); err != nil {
				t.Fatal(err)
			}
			if pending, err := p.RoomResetPending(ctx, group); err != nil || !pending {
				t.Fatalf("draft made %s: reset pending %v, %v; want true", next, pending, err)
			}
			evs := drain(t, p)
			if len(evs) != 2 || evs[0].Type != platform.EventComment || evs[1].Type != platform.EventRoomReset || evs[1].Group != group {
				t.Fatalf("draft made %s: events %+v; want the comment, then the room's reset", next, evs)
			}
			if pending, err := p.RoomResetPending(ctx, group); err != nil || pending {
				t.Fatalf("after the relay: reset pending %v, %v", pending, err)
			}
		}
		cid := activeCampaign(t, p, owner, "1.00")
		if _, err := p.UpdateCampaign(ctx, owner, cid, platform.CampaignInput{Status: ptr(platform.CampaignClosed)}); err != nil {
			t.Fatal(err)
		}
		if evs := drain(t, p); len(evs) != 0 {
			t.Fatalf("a public campaign closed: events %+v; want none", evs)
		}
		if _, err := p.UpdateCampaign(ctx, owner, cid, platform.CampaignInput{Status: ptr(platform.CampaignDraft)}); platform.KindOf(err) != platform.KindInvalid {
			t.Fatalf("a closed campaign back to draft: %v; want invalid", err)
		}
		if _, err := p.UpdateCampaign(ctx, owner, activeCampaign(t, p, owner, "1.00"), platform.CampaignInput{Status: ptr(platform.CampaignDraft)}); platform.KindOf(err) != platform.KindInvalid {
			t.Fatalf("an active campaign back to draft: %v; want invalid", err)
		}
	})
}

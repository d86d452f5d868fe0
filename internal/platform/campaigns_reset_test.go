package platform_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/testenv"
)

// Making a draft public records a reset of its room after the events of
// its draft and the campaign's own event, in the same transaction; until
// the relay publishes it, RoomResetPending says so. A campaign that stays
// public records its event and no reset; one back to draft records both
// again, its event first.
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
			if got, want := types(drain(t, p), group), "comment campaign campaign room_reset"; got != want {
				t.Fatalf("draft made %s: events %s; want %s (the comment, the edit, the publication, the reset)", next, got, want)
			}
			if pending, err := p.RoomResetPending(ctx, group); err != nil || pending {
				t.Fatalf("after the relay: reset pending %v, %v", pending, err)
			}
		}
		cid := activeCampaign(t, p, owner, "1.00")
		group := platform.CampaignGroup(cid)
		if _, err := p.UpdateCampaign(ctx, owner, cid, platform.CampaignInput{Status: ptr(platform.CampaignClosed)}); err != nil {
			t.Fatal(err)
		}
		if got := types(drain(t, p), group); got != "campaign" {
			t.Fatalf("a public campaign closed: events %s; want its campaign event alone", got)
		}
		if _, err := p.UpdateCampaign(ctx, owner, cid, platform.CampaignInput{Status: ptr(platform.CampaignActive)}); platform.KindOf(err) != platform.KindInvalid {
			t.Fatalf("a closed campaign active again: %v; want invalid", err)
		}
		for _, from := range []int64{cid, activeCampaign(t, p, owner, "1.00")} {
			drain(t, p)
			group := platform.CampaignGroup(from)
			if _, err := p.UpdateCampaign(ctx, owner, from, platform.CampaignInput{Status: ptr(platform.CampaignDraft)}); err != nil {
				t.Fatalf("back to draft: %v", err)
			}
			if pending, err := p.RoomResetPending(ctx, group); err != nil || !pending {
				t.Fatalf("back to draft: reset pending %v, %v; want true", pending, err)
			}
			if got := types(drain(t, p), group); got != "campaign room_reset" {
				t.Fatalf("back to draft: events %s; want campaign room_reset", got)
			}
			if _, err := p.Campaign(ctx, 0, from); platform.KindOf(err) != platform.KindNotFound {
				t.Fatalf("a campaign back to draft, seen by anyone: %v; want not found", err)
			}
		}
	})
}

// types lists the types of evs, which must all be of group.
func types(evs []platform.OutboxEvent, group string) string {
	var out []string
	for _, e := range evs {
		if e.Group != group {
			return fmt.Sprintf("an event of %s (%s)", e.Group, e.Type)
		}
		out = append(out, e.Type)
	}
	return strings.Join(out, " ")
}

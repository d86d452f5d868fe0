package platform_test

import (
	"context"
	"testing"

	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/testenv"
)

// Every edit of a campaign sends its room the campaign's REST JSON (as
// listed: no nested lists), in the edit's transaction: a write the
// database refuses after the event was recorded leaves neither the change
// nor the event, and a refused edit records nothing. A contribution, which
// moves the raised total, sends no campaign event. Nobody else may record
// one in a campaign's room.
func TestCampaignEditSendsItsJSON(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		p := open(t, dsn)
		owner, fan := mustUser(t, p, "owner"), mustUser(t, p, "fan")
		cid := activeCampaign(t, p, owner, "100.00")
		group := platform.CampaignGroup(cid)
		drain(t, p)

		d, err := p.UpdateCampaign(ctx, owner, cid, platform.CampaignInput{
			Title: ptr("Renamed"), Description: ptr("Now with details"), GoalAmount: cents(t, "250.00")})
		if err != nil {
			t.Fatal(err)
		}
		evs := drain(t, p)
		if got := types(evs, group); got != platform.EventCampaign {
			t.Fatalf("an edit recorded %s; want one campaign event", got)
		}
		rest, err := p.Campaign(ctx, 0, cid)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(evs[0].Data), jsonOf(t, rest); got != want {
			t.Fatalf("campaign event\n%s\nwant the REST JSON\n%s", got, want)
		}
		if got, want := string(evs[0].Data), jsonOf(t, d.Campaign); got != want {
			t.Fatalf("campaign event\n%s\nwant the PATCH answer's campaign\n%s", got, want)
		}

		if _, err := p.Contribute(ctx, fan, cid, platform.ContributionInput{Amount: cents(t, "5.00")}); err != nil {
			t.Fatal(err)
		}
		if got := types(drain(t, p), group); got != platform.EventContribution {
			t.Fatalf("a contribution recorded %s; want its contribution event alone", got)
		}

		if _, err := p.UpdateCampaign(ctx, owner, cid, platform.CampaignInput{GoalAmount: cents(t, "0.00")}); platform.KindOf(err) != platform.KindInvalid {
			t.Fatalf("a goal of 0: %v; want invalid", err)
		}
		if _, err := p.UpdateCampaign(ctx, fan, cid, platform.CampaignInput{Title: ptr("Mine now")}); platform.KindOf(err) != platform.KindForbidden {
			t.Fatalf("an edit by someone else: %v; want forbidden", err)
		}
		if evs := drain(t, p); len(evs) != 0 {
			t.Fatalf("refused edits recorded %+v", evs)
		}

		if err := p.RecordExternal(ctx, group, platform.EventCampaign, []byte(`{"id":1,"status":"draft"}`)); platform.KindOf(err) != platform.KindInvalid {
			t.Fatalf("a campaign event from outside in a campaign's room: %v; want invalid", err)
		}
		if err := p.RecordExternal(ctx, platform.UserGroup(fan), platform.EventCampaign, []byte(`{}`)); err != nil {
			t.Fatalf("a campaign event from outside in a user's group: %v", err)
		}
		// A forged removal would erase a comment on every screen of the
		// room and drop its cached history; unsubscribed is herald's
		// protocol everywhere.
		if err := p.RecordExternal(ctx, group, platform.EventCommentRemoved, []byte(`{"id":1,"campaign":1}`)); platform.KindOf(err) != platform.KindInvalid {
			t.Fatalf("a comment_removed event from outside in a campaign's room: %v; want invalid", err)
		}
		if err := p.RecordExternal(ctx, platform.UserGroup(fan), platform.EventCommentRemoved, []byte(`{}`)); err != nil {
			t.Fatalf("a comment_removed event from outside in a user's group: %v", err)
		}
		if err := p.RecordExternal(ctx, platform.UserGroup(fan), "unsubscribed", []byte(`{}`)); platform.KindOf(err) != platform.KindInvalid {
			t.Fatalf("an unsubscribed event from outside: %v; want invalid", err)
		}
		drain(t, p)

		db := p.DB()
		refuse := []string{`CREATE TRIGGER refuse_campaign AFTER INSERT ON outbox WHEN NEW.type = 'campaign' BEGIN SELECT RAISE(ABORT, 'refused by test'); END`}
		if db.Dialect == store.Postgres {
			refuse = []string{
				`CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'refused by test'; END; $$ LANGUAGE plpgsql`,
				`CREATE TRIGGER refuse_campaign AFTER INSERT ON outbox FOR EACH ROW WHEN (NEW.type = 'campaign') EXECUTE FUNCTION refuse()`,
			}
		}
		for _, s := range refuse {
			if _, err := db.Exec(s); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := p.UpdateCampaign(ctx, owner, cid, platform.CampaignInput{Title: ptr("Lost"), Status: ptr(platform.CampaignDraft)}); err == nil {
			t.Fatal("the edit was written; the trigger should have failed it with its event")
		}
		if evs := drain(t, p); len(evs) != 0 {
			t.Fatalf("a rolled-back edit left events %+v", evs)
		}
		if c, err := p.Campaign(ctx, 0, cid); err != nil || c.Title != "Renamed" || c.Status != platform.CampaignActive {
			t.Fatalf("after a rolled-back edit: %+v, %v; want it unchanged and public", c, err)
		}
	})
}

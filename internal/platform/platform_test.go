package platform_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/money"
	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/testenv"
)

func open(t *testing.T, dsn string) *platform.Platform {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	p, err := platform.New(db, platform.Options{Hasher: auth.Hasher{Params: testenv.CheapPasswords}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func ptr[T any](v T) *T { return &v }

func cents(t *testing.T, s string) *money.Cents {
	t.Helper()
	c, err := money.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return &c
}

func mustUser(t *testing.T, p *platform.Platform, name string) int64 {
	t.Helper()
	u, err := p.Register(context.Background(), platform.Registration{Username: name, Password: "password-" + name})
	if err != nil {
		t.Fatal(err)
	}
	return u.ID
}

func activeCampaign(t *testing.T, p *platform.Platform, owner int64, goal string) int64 {
	t.Helper()
	c, err := p.CreateCampaign(context.Background(), owner, platform.CampaignInput{
		Title: ptr("Campaign"), GoalAmount: cents(t, goal), Status: ptr(platform.CampaignActive)})
	if err != nil {
		t.Fatal(err)
	}
	return c.ID
}

// drain returns and deletes every pending outbox event.
func drain(t *testing.T, p *platform.Platform) []platform.OutboxEvent {
	t.Helper()
	evs, err := p.PendingEvents(context.Background(), 10000)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DB().Exec("DELETE FROM outbox"); err != nil {
		t.Fatal(err)
	}
	return evs
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Every write records exactly the events it causes, with the REST JSON of
// the object, in the group the seeds name.
func TestWritesRecordTheirEvents(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		p := open(t, dsn)
		owner, fan := mustUser(t, p, "owner"), mustUser(t, p, "fan")
		cid := activeCampaign(t, p, owner, "100.00")
		if _, err := p.CreateMilestone(ctx, owner, cid, platform.MilestoneInput{Title: ptr("Half"), TargetAmount: cents(t, "50.00")}); err != nil {
			t.Fatal(err)
		}
		drain(t, p)
		group := platform.CampaignGroup(cid)

		contrib, err := p.Contribute(ctx, fan, cid, platform.ContributionInput{Amount: cents(t, "60.00")})
		if err != nil {
			t.Fatal(err)
		}
		evs := drain(t, p)
		if len(evs) != 2 || evs[0].Type != "contribution" || evs[1].Type != "milestone" {
			t.Fatalf("contribution events = %+v; want contribution then milestone", evs)
		}
		if evs[0].Group != group || string(evs[0].Data) != jsonOf(t, contrib) {
			t.Errorf("contribution event %s %s; want %s %s", evs[0].Group, evs[0].Data, group, jsonOf(t, contrib))
		}
		ms, err := p.Milestones(ctx, owner, cid, platform.PageRequest{})
		if err != nil || len(ms.Results) != 1 {
			t.Fatalf("milestones: %+v, %v", ms, err)
		}
		m := ms.Results[0]
		if !m.Reached || string(evs[1].Data) != jsonOf(t, m) {
			t.Errorf("milestone event %s; want reached milestone %s", evs[1].Data, jsonOf(t, m))
		}

		upd, err := p.PostUpdate(ctx, owner, cid, platform.UpdateInput{Title: ptr("News"), Content: ptr("Body")})
		if err != nil {
			t.Fatal(err)
		}
		com, err := p.PostComment(ctx, fan, cid, platform.CommentInput{Content: ptr("Nice")})
		if err != nil {
			t.Fatal(err)
		}
		// A new comment is not read back: what the write built is what a
		// read finds, author's name included.
		if got, err := p.Comment(ctx, 0, cid, com.ID); err != nil || jsonOf(t, got) != jsonOf(t, com) || com.User.Username != "fan" {
			t.Errorf("read new comment %s; the write said %s (%v)", jsonOf(t, got), jsonOf(t, com), err)
		}
		rel, err := p.CreateRelease(ctx, owner, cid, platform.ReleaseInput{Version: ptr("1.0"), Title: ptr("One")})
		if err != nil {
			t.Fatal(err)
		}
		com2, err := p.EditComment(ctx, fan, cid, com.ID, platform.CommentInput{Content: ptr("Very nice")})
		if err != nil {
			t.Fatal(err)
		}
		want := []struct{ typ, data string }{
			{"update", jsonOf(t, upd)}, {"comment", jsonOf(t, com)}, {"release", jsonOf(t, rel)}, {"comment", jsonOf(t, com2)},
		}
		evs = drain(t, p)
		if len(evs) != len(want) {
			t.Fatalf("got %d events, want %d: %+v", len(evs), len(want), evs)
		}
		for i, w := range want {
			if evs[i].Group != group || evs[i].Type != w.typ || string(evs[i].Data) != w.data {
				t.Errorf("event %d = %s %s %s; want %s %s %s", i, evs[i].Group, evs[i].Type, evs[i].Data, group, w.typ, w.data)
			}
		}
		// The stored JSON equals what a later read serializes: REST and events agree.
		got, err := p.Comment(ctx, 0, cid, com.ID)
		if err != nil || jsonOf(t, got) != jsonOf(t, com2) {
			t.Errorf("read comment %s; event said %s (%v)", jsonOf(t, got), jsonOf(t, com2), err)
		}

		// The quest flow: new_application to the quest group, application_update to the applicant.
		creator, applicant := mustUser(t, p, "creator"), mustUser(t, p, "applicant")
		q, err := p.CreateQuest(ctx, creator, platform.QuestInput{Title: ptr("Map the river")})
		if err != nil {
			t.Fatal(err)
		}
		a, err := p.Apply(ctx, applicant, q.ID, platform.ApplicationInput{Message: "me"})
		if err != nil {
			t.Fatal(err)
		}
		a2, err := p.SetApplicationStatus(ctx, creator, a.ID, platform.ApplicationApproved)
		if err != nil {
			t.Fatal(err)
		}
		evs = drain(t, p)
		wantQ := []struct{ group, typ, data string }{
			{platform.ControlGroup(creator), "quest_created", fmt.Sprintf(`{"quest_id":%d}`, q.ID)},
			{platform.QuestGroup(q.ID), "new_application", fmt.Sprintf(`{"application_id":%d,"applicant":"applicant","quest_title":"Map the river","status":"pending"}`, a.ID)},
			{platform.UserGroup(applicant), "application_update", fmt.Sprintf(`{"application_id":%d,"quest_title":"Map the river","status":"approved","updated_at":%s}`, a.ID, jsonOf(t, a2.UpdatedAt))},
		}
		if len(evs) != len(wantQ) {
			t.Fatalf("quest events = %+v", evs)
		}
		for i, w := range wantQ {
			if evs[i].Group != w.group || evs[i].Type != w.typ || string(evs[i].Data) != w.data {
				t.Errorf("event %d = %s %s %s; want %s %s %s", i, evs[i].Group, evs[i].Type, evs[i].Data, w.group, w.typ, w.data)
			}
		}
		// Setting the same status again changes nothing and tells nobody.
		if _, err := p.SetApplicationStatus(ctx, creator, a.ID, platform.ApplicationApproved); err != nil {
			t.Fatal(err)
		}
		if evs := drain(t, p); len(evs) != 0 {
			t.Errorf("no-op status change recorded %+v", evs)
		}
	})
}

// A write that fails after it recorded its event rolls the event back with
// the row: the database refuses the milestone update that a contribution
// triggers, after the contribution and its event were written.
func TestRolledBackWriteLeavesNoEvent(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		p := open(t, dsn)
		owner, fan := mustUser(t, p, "owner"), mustUser(t, p, "fan")
		cid := activeCampaign(t, p, owner, "100.00")
		if _, err := p.CreateMilestone(ctx, owner, cid, platform.MilestoneInput{Title: ptr("Any"), TargetAmount: cents(t, "1.00")}); err != nil {
			t.Fatal(err)
		}
		drain(t, p)
		db := p.DB()
		var trigger []string
		if db.Dialect == store.Postgres {
			trigger = []string{
				`CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'refused by test'; END; $$ LANGUAGE plpgsql`,
				`CREATE TRIGGER refuse_milestones BEFORE UPDATE ON milestones FOR EACH ROW EXECUTE FUNCTION refuse()`,
			}
		} else {
			trigger = []string{`CREATE TRIGGER refuse_milestones BEFORE UPDATE ON milestones BEGIN SELECT RAISE(ABORT, 'refused by test'); END`}
		}
		for _, s := range trigger {
			if _, err := db.Exec(s); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := p.Contribute(ctx, fan, cid, platform.ContributionInput{Amount: cents(t, "5.00")}); err == nil {
			t.Fatal("contribution succeeded; the trigger should have failed it")
		}
		if evs := drain(t, p); len(evs) != 0 {
			t.Errorf("rolled-back contribution left events: %+v", evs)
		}
		c, err := p.CampaignDetail(ctx, owner, cid)
		if err != nil {
			t.Fatal(err)
		}
		if c.RaisedAmount != 0 || c.ContributionsCount != 0 || len(c.Contributions) != 0 {
			t.Errorf("rolled-back contribution left data: raised %s, %d contributions", c.RaisedAmount, c.ContributionsCount)
		}

		// Refused by the rules before anything is written: no event either.
		if _, err := p.PostUpdate(ctx, fan, cid, platform.UpdateInput{Title: ptr("x"), Content: ptr("y")}); platform.KindOf(err) != platform.KindForbidden {
			t.Fatalf("update by non-owner: %v", err)
		}
		if evs := drain(t, p); len(evs) != 0 {
			t.Errorf("refused update left events: %+v", evs)
		}
	})
}

// The raised total is exact under concurrent contributions.
func TestConcurrentContributionsSumExactly(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		p := open(t, dsn)
		owner := mustUser(t, p, "owner")
		cid := activeCampaign(t, p, owner, "1000.00")
		users := make([]int64, 10)
		for i := range users {
			users[i] = mustUser(t, p, fmt.Sprintf("fan%d", i))
		}
		var wg sync.WaitGroup
		errs := make(chan error, 100)
		for i := 0; i < 100; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := p.Contribute(ctx, users[i%10], cid, platform.ContributionInput{Amount: cents(t, "0.07")})
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		c, err := p.Campaign(ctx, 0, cid)
		if err != nil {
			t.Fatal(err)
		}
		if c.RaisedAmount.String() != "7.00" || c.ContributionsCount != 100 {
			t.Errorf("raised %s from %d contributions; want 7.00 from 100", c.RaisedAmount, c.ContributionsCount)
		}
		if evs := drain(t, p); len(evs) != 100 {
			t.Errorf("%d contribution events; want 100", len(evs))
		}
	})
}

// Lowering a milestone's target to what is already raised reaches it, and
// the event says so.
func TestEditedMilestoneReaches(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		p := open(t, dsn)
		owner, fan := mustUser(t, p, "owner"), mustUser(t, p, "fan")
		cid := activeCampaign(t, p, owner, "100.00")
		m, err := p.CreateMilestone(ctx, owner, cid, platform.MilestoneInput{Title: ptr("Far"), TargetAmount: cents(t, "90.00")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Contribute(ctx, fan, cid, platform.ContributionInput{Amount: cents(t, "40.00")}); err != nil {
			t.Fatal(err)
		}
		drain(t, p)
		m2, err := p.EditMilestone(ctx, owner, cid, m.ID, platform.MilestoneInput{TargetAmount: cents(t, "40.00")})
		if err != nil {
			t.Fatal(err)
		}
		if !m2.Reached {
			t.Fatal("milestone at the raised amount is not reached")
		}
		evs := drain(t, p)
		if len(evs) != 1 || string(evs[0].Data) != jsonOf(t, m2) {
			t.Errorf("events %+v; want the reached milestone", evs)
		}
	})
}

// A ticket works once, and not after TicketTTL.
func TestTicketExpires(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, testenv.SQLite(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	p, err := platform.New(db, platform.Options{Hasher: auth.Hasher{Params: testenv.CheapPasswords}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	uid := mustUser(t, p, "ticketer")
	fresh, err := p.IssueTicket(ctx, uid)
	if err != nil {
		t.Fatal(err)
	}
	stale, err := p.IssueTicket(ctx, uid)
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(platform.TicketTTL - time.Second)
	if got, err := p.RedeemTicket(ctx, fresh); err != nil || got != uid {
		t.Fatalf("a ticket within its lifetime: %d, %v", got, err)
	}
	now = now.Add(2 * time.Second)
	if _, err := p.RedeemTicket(ctx, stale); platform.KindOf(err) != platform.KindUnauthorized {
		t.Fatalf("an expired ticket: %v; want unauthorized", err)
	}
}

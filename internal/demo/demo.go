// Package demo fills an empty database with a small, believable data set so a
// new user of `go run ./cmd/herald` has something to look at and sign in with.
package demo

import (
	"context"
	"fmt"

	"github.com/heraldhq/herald/internal/money"
	"github.com/heraldhq/herald/internal/platform"
)

// Password is every demo user's password (listed in the README).
const Password = "herald-demo"

// Users are the demo accounts.
var Users = []string{"alice", "bob", "carol", "dave"}

// Load adds the demo data unless the database already has users. It reports
// whether it loaded anything.
func Load(ctx context.Context, p *platform.Platform) (bool, error) {
	var n int64
	if err := p.DB().QueryRowContext(ctx, "SELECT COUNT(*) FROM users").Scan(&n); err != nil {
		return false, fmt.Errorf("demo: count users: %w", err)
	}
	if n > 0 {
		return false, nil
	}
	ids := map[string]int64{}
	for _, name := range Users {
		u, err := p.Register(ctx, platform.Registration{Username: name, Email: name + "@example.com", Password: Password})
		if err != nil {
			return false, fmt.Errorf("demo: user %s: %w", name, err)
		}
		ids[name] = u.ID
	}
	s := &seeder{ctx: ctx, p: p}
	alice, bob, carol, dave := ids["alice"], ids["bob"], ids["carol"], ids["dave"]

	solar := s.campaign(alice, "Solar kiosk for the village library", "A solar-powered reading kiosk with e-readers and Wi-Fi for the library in Lakkhi.", "5000.00", platform.CampaignActive)
	s.milestone(alice, solar, "Panels and battery", "Buy the panels and the battery bank.", "1500.00")
	s.milestone(alice, solar, "E-readers", "Twenty e-readers loaded with the library's catalogue.", "3500.00")
	s.milestone(alice, solar, "Opening day", "Install, test and open the kiosk.", "5000.00")
	s.contribute(bob, solar, "250.00")
	s.contribute(carol, solar, "1200.00")
	s.contribute(dave, solar, "75.50")
	s.update(alice, solar, "Site survey done", "The roof faces south and takes the panels well. Ordering next week.")
	s.comment(bob, solar, "Great project! Will the kiosk be open on weekends?")
	s.comment(alice, solar, "Yes — every day from 8 to 20.")
	s.release(alice, solar, "0.1", "Wiring plan", "The wiring plan and the bill of materials.")

	app := s.campaign(alice, "Open-source field notebook app", "An offline-first notebook for field researchers, synced when back online.", "12000.00", platform.CampaignActive)
	s.milestone(alice, app, "Offline storage", "", "4000.00")
	s.contribute(carol, app, "500.00")
	s.update(alice, app, "First prototype", "Notes and photos work offline on Android.")
	s.release(alice, app, "0.9.0", "First beta", "Offline notes, photo attachments, CSV export.")
	s.release(alice, app, "1.0.0", "Stable", "Sync conflict resolution and iOS support.")

	s.campaign(alice, "Community garden tool shed", "Draft: a lockable shed for shared garden tools.", "800.00", platform.CampaignDraft)

	mural := s.campaign(bob, "Harbour mural", "A 30-metre mural along the harbour wall, painted with local schools.", "3000.00", platform.CampaignActive)
	s.milestone(bob, mural, "Paint and scaffolding", "", "1000.00")
	s.contribute(alice, mural, "100.00")
	s.comment(carol, mural, "My class would love to join!")

	quests := []int64{
		s.quest(bob, "Translate the library catalogue", "Translate 300 catalogue entries from English to Bengali."),
		s.quest(bob, "Photograph the harbour wall", "High-resolution photos of the wall before painting starts."),
		s.quest(carol, "Test the notebook beta", "Use the field notebook for a week and report bugs."),
	}
	a1 := s.apply(alice, quests[0], "I am a native Bengali speaker and have translated for NGOs.")
	s.apply(carol, quests[0], "I can take half of the entries.")
	a3 := s.apply(dave, quests[0], "Happy to help on weekends.")
	a4 := s.apply(alice, quests[1], "I have a full-frame camera and a drone licence.")
	a5 := s.apply(dave, quests[2], "I do field work every week.")
	s.status(bob, a1, platform.ApplicationApproved)
	s.status(bob, a3, platform.ApplicationRejected)
	s.status(alice, a4, platform.ApplicationWithdrawn)
	_ = a5 // stays pending
	if s.err != nil {
		return false, fmt.Errorf("demo: %w", s.err)
	}
	return true, nil
}

// seeder keeps the first error so Load reads as a plain list of steps.
type seeder struct {
	ctx context.Context
	p   *platform.Platform
	err error
}

func (s *seeder) campaign(owner int64, title, desc, goal, status string) int64 {
	if s.err != nil {
		return 0
	}
	g := mustCents(goal)
	c, err := s.p.CreateCampaign(s.ctx, owner, platform.CampaignInput{Title: &title, Description: &desc, GoalAmount: &g, Status: &status})
	s.err = err
	return c.ID
}

func (s *seeder) contribute(user, campaign int64, amount string) {
	if s.err != nil {
		return
	}
	a := mustCents(amount)
	_, s.err = s.p.Contribute(s.ctx, user, campaign, platform.ContributionInput{Amount: &a})
}

func (s *seeder) milestone(owner, campaign int64, title, desc, target string) {
	if s.err != nil {
		return
	}
	t := mustCents(target)
	_, s.err = s.p.CreateMilestone(s.ctx, owner, campaign, platform.MilestoneInput{Title: &title, Description: &desc, TargetAmount: &t})
}

func (s *seeder) update(owner, campaign int64, title, content string) {
	if s.err != nil {
		return
	}
	_, s.err = s.p.PostUpdate(s.ctx, owner, campaign, platform.UpdateInput{Title: &title, Content: &content})
}

func (s *seeder) comment(user, campaign int64, content string) {
	if s.err != nil {
		return
	}
	_, s.err = s.p.PostComment(s.ctx, user, campaign, platform.CommentInput{Content: &content})
}

func (s *seeder) release(owner, campaign int64, version, title, notes string) {
	if s.err != nil {
		return
	}
	_, s.err = s.p.CreateRelease(s.ctx, owner, campaign, platform.ReleaseInput{Version: &version, Title: &title, Notes: &notes})
}

func (s *seeder) quest(creator int64, title, desc string) int64 {
	if s.err != nil {
		return 0
	}
	q, err := s.p.CreateQuest(s.ctx, creator, platform.QuestInput{Title: &title, Description: &desc})
	s.err = err
	return q.ID
}

func (s *seeder) apply(user, quest int64, msg string) int64 {
	if s.err != nil {
		return 0
	}
	a, err := s.p.Apply(s.ctx, user, quest, platform.ApplicationInput{Message: msg})
	s.err = err
	return a.ID
}

func (s *seeder) status(user, app int64, status string) {
	if s.err != nil {
		return
	}
	_, s.err = s.p.SetApplicationStatus(s.ctx, user, app, status)
}

func mustCents(s string) money.Cents {
	c, err := money.Parse(s)
	if err != nil {
		panic("demo: bad amount literal " + s)
	}
	return c
}

package app_test

import (
	"context"
	"database/sql"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/config"
	"github.com/heraldhq/herald/internal/money"
	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/testenv"
)

// sample reads the value of the series name (without labels) from base's
// /metrics, and whether it is there.
func sample(t *testing.T, base, name string) (float64, bool) {
	t.Helper()
	code, body := get(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v, true
}

// waitSample waits until the series name satisfies ok, and fails after
// 10 s with what it last was.
func waitSample(t *testing.T, base, name, want string, ok func(float64) bool) {
	t.Helper()
	var v float64
	var there bool
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if v, there = sample(t, base, name); there && ok(v) {
			return
		}
	}
	t.Fatalf("%s is %v (exposed: %v), want %s", name, v, there, want)
}

// herald_ready is /readyz's check: 1 while the database answers, 0 once
// it is gone.
func TestReadyMetric(t *testing.T) {
	dsn := testenv.Postgres(t)
	base := serve(t, dsn, func(c *config.Config) { c.PublicMetrics = true })
	if v, ok := sample(t, base, "herald_ready"); !ok || v != 1 {
		t.Fatalf("herald_ready %v (exposed %v), want 1", v, ok)
	}
	u, _ := url.Parse(dsn)
	admin, err := sql.Open("pgx", testenv.PostgresAdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec("DROP DATABASE " + strings.TrimPrefix(u.Path, "/") + " WITH (FORCE)"); err != nil {
		t.Fatal(err)
	}
	if v, _ := sample(t, base, "herald_ready"); v != 0 {
		t.Fatalf("herald_ready without the database: %v, want 0", v)
	}
	if code, _ := get(t, base+"/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz without the database: %d", code)
	}
}

// The relay reports the outbox's backlog: an event it cannot publish (the
// channel layer is gone) shows as pending, with an age that grows.
func TestOutboxMetrics(t *testing.T) {
	h := testenv.StartHerald(t, testenv.SQLite(t), func(c *config.Config) { c.PublicMetrics = true })
	ctx := context.Background()
	p := h.App.Platform()
	u, err := p.Register(ctx, platform.Registration{Username: "owner", Password: "owner password"})
	if err != nil {
		t.Fatal(err)
	}
	title, goal, active := "Backlog", money.Cents(100_00), platform.CampaignActive
	c, err := p.CreateCampaign(ctx, u.ID, platform.CampaignInput{Title: &title, GoalAmount: &goal, Status: &active})
	if err != nil {
		t.Fatal(err)
	}
	h.App.Relay().Notify()
	waitSample(t, h.Base, "herald_outbox_pending_events", "0 once the relay published the setup's events", func(v float64) bool { return v == 0 })
	if v, ok := sample(t, h.Base, "herald_outbox_oldest_pending_age_seconds"); !ok || v != 0 {
		t.Fatalf("herald_outbox_oldest_pending_age_seconds with nothing pending: %v (exposed %v)", v, ok)
	}
	if err := h.App.Hub().Close(); err != nil { // the channel layer is gone: publishing fails
		t.Fatal(err)
	}
	amount := money.Cents(5)
	if _, err := p.Contribute(ctx, u.ID, c.ID, platform.ContributionInput{Amount: &amount}); err != nil {
		t.Fatal(err)
	}
	h.App.Relay().Notify()
	waitSample(t, h.Base, "herald_outbox_pending_events", "1", func(v float64) bool { return v == 1 })
	first, _ := sample(t, h.Base, "herald_outbox_oldest_pending_age_seconds")
	waitSample(t, h.Base, "herald_outbox_oldest_pending_age_seconds", "growing past its first reading", func(v float64) bool { return v > first })
}

package app_test

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/config"
	"github.com/heraldhq/herald/internal/testenv"
)

func serve(t *testing.T, dsn string, tweak func(*config.Config)) string {
	t.Helper()
	if tweak == nil {
		tweak = func(*config.Config) {}
	}
	return testenv.StartHerald(t, dsn, tweak).Base
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func post(t *testing.T, url, token string, body any) map[string]any {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(res.Body).Decode(&m)
	if res.StatusCode >= 300 {
		t.Fatalf("POST %s: %d %v", url, res.StatusCode, m)
	}
	return m
}

// metric reads one sample from a Prometheus text exposition.
func metric(t *testing.T, text, name string) float64 {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`)
	m := re.FindStringSubmatch(text)
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatalf("metric %s: %v", name, err)
	}
	return v
}

// Health answers, and a delivered event moves the metrics that count it.
func TestHealthAndMetrics(t *testing.T) {
	base := serve(t, testenv.SQLite(t), func(c *config.Config) { c.PublicMetrics = true })
	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("healthz: %d %q", code, body)
	}
	if code, body := get(t, base+"/readyz"); code != 200 {
		t.Fatalf("readyz: %d %q", code, body)
	}
	_, before := get(t, base+"/metrics")
	post(t, base+"/api/auth/register/", "", map[string]string{"username": "m", "password": "metrics password"})
	tok := post(t, base+"/api/auth/token/", "", map[string]string{"username": "m", "password": "metrics password"})["access"].(string)
	c := post(t, base+"/api/campaigns/", tok, map[string]any{"title": "M", "goal_amount": "5.00", "status": "active"})
	cid := int64(c["id"].(float64))
	room := testenv.MustDialWS(t, "ws"+strings.TrimPrefix(base, "http")+fmt.Sprintf("/ws/campaign/%d/", cid), nil)
	room.NextEvent(5 * time.Second)
	post(t, base+fmt.Sprintf("/api/campaigns/%d/comments/", cid), tok, map[string]any{"content": "hi"})
	if ev := room.NextEvent(5 * time.Second); ev.Type != "comment" {
		t.Fatalf("got %s", ev.Type)
	}
	// The relay counts and times an event once its round returned, which
	// may be just after the client read it, and a scrape reads the metrics
	// in no set order: wait until each sample checked here has moved.
	counters := []string{
		"herald_realtime_deliveries_total", "herald_realtime_events_received_total",
		`herald_events_published_total{type="comment"}`, `herald_event_publish_delay_seconds_count{type="comment"}`,
	}
	moved := func(after string) bool {
		for _, m := range counters {
			if metric(t, after, m)-metric(t, before, m) < 1 {
				return false
			}
		}
		return true
	}
	_, after := get(t, base+"/metrics")
	for deadline := time.Now().Add(5 * time.Second); !moved(after) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		_, after = get(t, base+"/metrics")
	}
	for _, m := range counters {
		if d := metric(t, after, m) - metric(t, before, m); d < 1 {
			t.Errorf("%s moved by %v; want ≥ 1", m, d)
		}
	}
	if metric(t, after, `herald_realtime_connections{transport="websocket"}`) != 1 {
		t.Errorf("connections gauge: %v", metric(t, after, `herald_realtime_connections{transport="websocket"}`))
	}
	if !strings.Contains(after, `herald_http_request_duration_seconds_count{code="201",method="POST",route="/api/campaigns/{id}/comments/{$}"}`) {
		t.Error("HTTP histogram lacks the comments route by pattern")
	}
}

// The operations snapshot is for the configured administrators only, and
// counts what happens.
func TestOpsSnapshot(t *testing.T) {
	base := serve(t, testenv.SQLite(t), func(c *config.Config) { c.Admins = []string{"boss"} })
	tokens := map[string]string{}
	for _, name := range []string{"boss", "worker"} {
		post(t, base+"/api/auth/register/", "", map[string]string{"username": name, "password": "password of " + name})
		tokens[name] = post(t, base+"/api/auth/token/", "", map[string]string{"username": name, "password": "password of " + name})["access"].(string)
	}
	getAs := func(tok string) (int, map[string]any) {
		req, _ := http.NewRequest("GET", base+"/api/ops/", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(res.Body).Decode(&m)
		return res.StatusCode, m
	}
	if code, _ := getAs(tokens["worker"]); code != http.StatusForbidden {
		t.Fatalf("non-admin: %d", code)
	}
	c := post(t, base+"/api/campaigns/", tokens["boss"], map[string]any{"title": "Ops", "goal_amount": "1.00", "status": "active"})
	room := testenv.MustDialWS(t, "ws"+strings.TrimPrefix(base, "http")+fmt.Sprintf("/ws/campaign/%d/", int64(c["id"].(float64))), nil)
	room.NextEvent(5 * time.Second)
	post(t, base+fmt.Sprintf("/api/campaigns/%d/comments/", int64(c["id"].(float64))), tokens["worker"], map[string]any{"content": "hi"})
	room.NextEvent(5 * time.Second)
	// The counters move once the relay's round and the write have
	// returned, which may be just after the client read the event.
	counted := func(st map[string]any) bool {
		conns, _ := st["connections"].(map[string]any)
		d, _ := st["deliveries"].(float64)
		p, _ := st["events_published"].(float64)
		return conns["websocket"] == float64(1) && d >= 1 && p >= 1
	}
	code, st := getAs(tokens["boss"])
	for deadline := time.Now().Add(5 * time.Second); code == 200 && !counted(st) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		code, st = getAs(tokens["boss"])
	}
	if code != 200 {
		t.Fatalf("admin: %d %v", code, st)
	}
	if !counted(st) {
		t.Fatalf("snapshot %v", st)
	}
}

// readyz fails, naming the database, when PostgreSQL goes away; healthz
// (the process is alive) still answers.
func TestReadyzFailsWithoutDatabase(t *testing.T) {
	dsn := testenv.Postgres(t)
	base := serve(t, dsn, nil)
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Fatalf("readyz before: %d", code)
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
	code, body := get(t, base+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "database") {
		t.Fatalf("readyz without its database: %d %q", code, body)
	}
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Fatalf("healthz: %d", code)
	}
}

// The admin address serves pprof and metrics; the public one has no pprof.
func TestAdminAddress(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	adminAddr := ln.Addr().String()
	ln.Close()
	base := serve(t, testenv.SQLite(t), func(c *config.Config) { c.AdminAddr = adminAddr })
	var code int
	for i := 0; i < 50; i++ {
		if res, err := http.Get("http://" + adminAddr + "/debug/pprof/"); err == nil {
			code = res.StatusCode
			res.Body.Close()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code != 200 {
		t.Fatalf("admin pprof: %d", code)
	}
	if code, _ := get(t, "http://"+adminAddr+"/metrics"); code != 200 {
		t.Fatalf("admin metrics: %d", code)
	}
	if code, _ := get(t, base+"/debug/pprof/"); code == 200 {
		t.Fatal("pprof is served on the public address")
	}
}

// --db-max-conns bounds the process's database pool; 0 keeps the default.
func TestDBMaxConns(t *testing.T) {
	dsn := testenv.Postgres(t)
	h := testenv.StartHerald(t, dsn, func(c *config.Config) { c.DBMaxConns = 3 })
	if got := h.App.Platform().DB().Stats().MaxOpenConnections; got != 3 {
		t.Errorf("max open connections %d; want 3", got)
	}
	if got := testenv.StartHerald(t, dsn).App.Platform().DB().Stats().MaxOpenConnections; got != 8 {
		t.Errorf("default max open connections %d; want 8", got)
	}
}

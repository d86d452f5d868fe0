package app_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/app"
	"github.com/heraldhq/herald/internal/config"
	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/realtime"
	"github.com/heraldhq/herald/internal/testenv"
)

// logRecords is a slog handler that keeps every record, for tests that
// check what herald logs and at which level.
type logRecords struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logRecords) Enabled(context.Context, slog.Level) bool { return true }

func (l *logRecords) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r.Clone())
	return nil
}

func (l *logRecords) WithAttrs([]slog.Attr) slog.Handler { return l } // herald's loggers add none that matter here
func (l *logRecords) WithGroup(string) slog.Handler      { return l }

// at returns the records at level, as "message attr=value …" lines.
func (l *logRecords) at(level slog.Level) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.recs {
		if r.Level != level {
			continue
		}
		var b strings.Builder
		b.WriteString(r.Message)
		r.Attrs(func(a slog.Attr) bool {
			fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
			return true
		})
		out = append(out, b.String())
	}
	return out
}

// startLogged starts herald on dsn like testenv.StartHerald, logging into
// the returned records.
func startLogged(t *testing.T, dsn string, tweak func(*config.Config)) (*app.App, string, *logRecords) {
	t.Helper()
	cfg := testenv.Config(t, dsn)
	if tweak != nil {
		tweak(&cfg)
	}
	logs := &logRecords{}
	a, err := app.New(context.Background(), cfg, slog.New(logs), app.WithPasswordParams(testenv.CheapPasswords))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := app.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		a.Close()
	})
	return a, "http://" + ln.Addr().String(), logs
}

// activeCampaign registers a user and creates an active campaign; it
// returns the user's token and the campaign's id.
func activeCampaign(t *testing.T, base, name string) (string, int64) {
	t.Helper()
	post(t, base+"/api/auth/register/", "", map[string]string{"username": name, "password": "password of " + name})
	tok := post(t, base+"/api/auth/token/", "", map[string]string{"username": name, "password": "password of " + name})["access"].(string)
	c := post(t, base+"/api/campaigns/", tok, map[string]any{"title": "Robust", "goal_amount": "5.00", "status": "active"})
	return tok, int64(c["id"].(float64))
}

// metricAfter polls base's /metrics until name reaches want (up to 10 s)
// and returns its last value.
func metricAfter(t *testing.T, url, name string, want float64) float64 {
	t.Helper()
	var v float64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		_, text := get(t, url)
		if v = metric(t, text, name); v >= want {
			break
		}
	}
	return v
}

// panicTransport is a connection's transport that panics when woken, as a
// broken one would: queuing an event to it panics in the fan-out.
type panicTransport struct{}

func (panicTransport) Wake() { panic("wake failed") }

// A panic in the fan-out of an event (a member whose transport panics)
// leaves the process serving: the room's real client still gets the event
// and later ones, REST requests still succeed, the panic is logged once at
// ERROR with its stack and counted in herald_panics_total.
func TestPanicInFanOutKeepsServing(t *testing.T) {
	a, base, logs := startLogged(t, testenv.SQLite(t), func(c *config.Config) { c.PublicMetrics = true })
	if v := metricAfter(t, base+"/metrics", `herald_panics_total{where="hub"}`, 0); v != 0 {
		t.Fatalf("panics before the test: %v", v)
	}
	tok, cid := activeCampaign(t, base, "robust")
	// The broken member joins first, so the fan-out meets it before the
	// real client.
	bad := a.Hub().Attach(realtime.ConnConfig{}, panicTransport{}).Conn()
	if err := a.Hub().Join(context.Background(), bad, platform.CampaignGroup(cid)); err != nil {
		t.Fatal(err)
	}
	room := testenv.MustDialWS(t, "ws"+strings.TrimPrefix(base, "http")+fmt.Sprintf("/ws/campaign/%d/", cid), nil)
	if ev := room.NextEvent(5 * time.Second); ev.Type != "campaign_data" {
		t.Fatalf("first event %s", ev.Type)
	}
	for i := range 2 {
		post(t, base+fmt.Sprintf("/api/campaigns/%d/comments/", cid), tok, map[string]any{"content": fmt.Sprintf("comment %d", i)})
		if ev := room.NextEvent(5 * time.Second); ev.Type != "comment" {
			t.Fatalf("event %d: %s", i, ev.Type)
		}
	}
	if code, _ := get(t, base+"/api/campaigns/"); code != http.StatusOK {
		t.Fatalf("REST after the panic: %d", code)
	}
	if v := metricAfter(t, base+"/metrics", `herald_panics_total{where="hub"}`, 1); v != 1 {
		t.Fatalf(`herald_panics_total{where="hub"} = %v, want 1`, v)
	}
	var panicked []string
	for _, l := range logs.at(slog.LevelError) {
		if strings.HasPrefix(l, "panic recovered") {
			panicked = append(panicked, l)
		}
	}
	if len(panicked) != 1 || !strings.Contains(panicked[0], "where=hub") || !strings.Contains(panicked[0], "goroutine ") {
		t.Fatalf("panic log lines %q; want one, at ERROR, with where=hub and the stack", panicked)
	}
}

// A client that goes away while its event stream is being set up is no
// server fault: nothing is logged at ERROR, whether it left before its
// request was handled or in the middle of it.
func TestSSEAbortIsNotAnError(t *testing.T) {
	a, base, logs := startLogged(t, testenv.SQLite(t), nil)
	_, cid := activeCampaign(t, base, "aborter")
	paths := []string{fmt.Sprintf("/sse/campaign/%d/", cid), fmt.Sprintf("/sse/campaign/%d/?resume=campaign_%d:e:0", cid, cid)}
	// Gone before the handler ran: its request's context is canceled.
	for _, p := range paths {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		a.Handler().ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", p, nil).WithContext(ctx))
	}
	// Gone in the middle: the request is sent and the socket closed at once.
	addr := strings.TrimPrefix(base, "http://")
	const aborted = 40
	for i := range aborted {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(nc, "GET "+paths[i%len(paths)]+" HTTP/1.1\r\nHost: "+addr+"\r\nAccept: text/event-stream\r\n\r\n")
		nc.Close()
	}
	// A stream that is read, then dropped.
	sse, _, err := testenv.DialSSE(t, base+paths[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	sse.MustNext(5 * time.Second)
	sse.Close()
	// Every request has been answered (or given up) once it is counted.
	want := float64(len(paths) + aborted + 1)
	for deadline := time.Now().Add(20 * time.Second); handled(t, a, "GET /sse/campaign/{id}/{$}") < want; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%v of %v requests handled", handled(t, a, "GET /sse/campaign/{id}/{$}"), want)
		}
	}
	if errs := logs.at(slog.LevelError); len(errs) > 0 {
		t.Fatalf("clients that went away were logged at ERROR:\n%s", strings.Join(errs, "\n"))
	}
}

// handled is the number of requests herald finished for route, read from
// its metrics.
func handled(t *testing.T, a *app.App, route string) float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	a.Metrics().Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	var n float64
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if strings.HasPrefix(line, "herald_http_request_duration_seconds_count{") && strings.Contains(line, `route="`+route+`"`) {
			var v float64
			if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err == nil {
				n += v
			}
		}
	}
	return n
}

// The per-address connection limit counts WebSocket connections and event
// streams together: N of one kind leave no room for the other.
func TestConnLimitCountsWebSocketAndSSE(t *testing.T) {
	const n = 3
	_, base, _ := startLogged(t, testenv.SQLite(t), func(c *config.Config) { c.MaxConnsPerAddr = n })
	_, cid := activeCampaign(t, base, "limited")
	wsURL := "ws" + strings.TrimPrefix(base, "http") + fmt.Sprintf("/ws/campaign/%d/", cid)
	sseURL := base + fmt.Sprintf("/sse/campaign/%d/", cid)
	var wss []*testenv.WSClient
	for range n {
		c := testenv.MustDialWS(t, wsURL, nil)
		c.NextEvent(5 * time.Second)
		wss = append(wss, c)
	}
	if _, code, err := testenv.DialSSE(t, sseURL, nil); err == nil || code != http.StatusTooManyRequests {
		t.Fatalf("event stream beside %d WebSocket connections: %d %v; want 429", n, code, err)
	}
	for _, c := range wss {
		c.Close()
	}
	var streams []*testenv.SSEClient
	for deadline := time.Now().Add(10 * time.Second); len(streams) < n; time.Sleep(10 * time.Millisecond) {
		// The closed WebSocket connections give their slots back as the
		// server notices them go.
		st, code, err := testenv.DialSSE(t, sseURL, nil)
		if err == nil {
			st.MustNext(5 * time.Second)
			streams = append(streams, st)
			continue
		}
		if code != http.StatusTooManyRequests || time.Now().After(deadline) {
			t.Fatalf("event stream %d: %d %v", len(streams)+1, code, err)
		}
	}
	if _, code, err := testenv.DialWS(t, wsURL, nil); err == nil || code != http.StatusTooManyRequests {
		t.Fatalf("WebSocket beside %d event streams: %d %v; want 429", n, code, err)
	}
}

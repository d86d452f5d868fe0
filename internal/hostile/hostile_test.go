package hostile

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// hcase is one hostile case: a name and what it sends and checks.
type hcase struct {
	name string
	run  func(t *testing.T, h *herald)
}

// Bounds of what the cases may leave behind in the process.
const (
	slackGoroutines = 20
	slackFDs        = 20
	slackRSS        = 64 << 20
)

// TestHostile runs every case against one herald process, then checks that
// it still serves, answered nothing with a server error, logged no error,
// and holds about what it held before.
func TestHostile(t *testing.T) {
	// Each case has a client address of its own: 127.0.x.y, which Linux
	// routes to loopback (macOS only has 127.0.0.1 unless told).
	if ln, err := net.Listen("tcp", "127.0.1.1:0"); err != nil {
		t.Skipf("the suite needs all of 127.0.0.0/8 on loopback: %v", err)
	} else {
		ln.Close()
	}
	h := startHerald(t)
	warmUp(t, h)
	// The baseline is taken once the warm-up's connections are gone and
	// the runtime has given back most of the heap it freed (the sign-in's
	// hashing).
	var before usage
	err := poll(30*time.Second, func() (bool, error) {
		u, err := h.usage()
		before = u
		return err == nil && u.conns == 0 && u.heapIdle < 16<<20, err
	})
	if err != nil && (before.conns != 0 || before.goroutines == 0) {
		t.Fatalf("baseline: %v (%v)", err, before)
	}
	t.Logf("before: %v", before)

	var cases []hcase
	for _, family := range [][]hcase{frameCases(), messageCases(), httpCases(), headerCases(), tokenCases(), resumeCases(), limitCases(), publishCases()} {
		cases = append(cases, family...)
	}
	// The cases mostly wait on the server (for close handshakes, for
	// answers); many run at once, each from its own address.
	runCases(t, h, cases, 24)
	// The storms measure memory: one at a time, alone.
	storms := stormCases()
	for i, s := range storms {
		if !h.alive() {
			break
		}
		if h.overwhelmed.Load() {
			t.Errorf("%d storms not run: herald has not answered the last one yet", len(storms)-i)
			break
		}
		t.Run(s.name, func(t *testing.T) { s.run(t, h) })
	}
	if n := len(cases) + len(storms); n < 100 {
		t.Errorf("only %d cases; the suite promises at least 100", n)
	}

	t.Run("after", func(t *testing.T) { checkAfter(t, h, before) })
	t.Logf("%d cases, %d HTTP answers recorded", len(cases)+len(storms), h.rec.count())
}

// runCases runs each case as a subtest, workers at a time. Subtests run on
// the workers' goroutines rather than with t.Parallel, so how many run at
// once does not depend on -parallel.
func runCases(t *testing.T, h *herald, cases []hcase, workers int) {
	t.Helper()
	seen := map[string]bool{}
	for _, c := range cases {
		if seen[c.name] {
			t.Errorf("two cases are named %q", c.name)
		}
		seen[c.name] = true
	}
	next := make(chan hcase)
	var wg sync.WaitGroup
	var once sync.Once
	for range workers {
		wg.Go(func() {
			for c := range next {
				if !h.alive() {
					continue // reported once below; the rest could only fail to connect
				}
				t.Run(c.name, func(t *testing.T) { c.run(t, h) })
				if !h.alive() {
					once.Do(func() {
						t.Errorf("herald exited (%v) while %s ran, with others; what it wrote last:\n%s", h.err, c.name, crashReport(h))
					})
				}
			}
		})
	}
	for _, c := range cases {
		next <- c
	}
	close(next)
	wg.Wait()
}

// crashReport is the end of the log of a process that exited: its crash
// report, when it wrote one.
func crashReport(h *herald) string {
	problems, _ := h.logProblems()
	if len(problems) > 40 {
		problems = problems[:40]
	}
	return strings.Join(problems, "\n")
}

// warmUp does once what the cases do many times, so that the baseline
// includes what the process sets up on first use.
func warmUp(t *testing.T, h *herald) {
	c := h.client(t)
	r := c.must(t, jsonReq("POST", "/api/auth/token/", "", `{"username":"alice","password":"herald-demo"}`))
	wantStatus(t, r, ok)
	c.must(t, req{path: "/api/campaigns/1/"})
	w := dialOK(t, c, "/ws/campaign/1/?v=2")
	if _, err := w.message(15*time.Second, func(m msg) bool { return m.Type == "campaign_data" }); err != nil {
		t.Fatalf("warm-up: %v", err)
	}
	w.Close()
	if _, err := c.stream("/sse/campaign/1/", nil, 10*time.Second, "event: campaign_data\n"); err != nil {
		t.Fatalf("warm-up: %v", err)
	}
}

// checkAfter checks the process after the cases: alive and serving a
// normal client, back near its baseline, with no server error answered or
// logged, and stopping cleanly.
func checkAfter(t *testing.T, h *herald, before usage) {
	if !h.alive() {
		t.Fatalf("herald exited: %v", h.err)
	}
	t.Run("a normal client", func(t *testing.T) { normalClient(t, h) })
	t.Run("back near the baseline", func(t *testing.T) {
		var after usage
		err := poll(30*time.Second, func() (bool, error) {
			u, err := h.usage()
			after = u
			return err == nil && u.conns == 0 &&
				u.goroutines <= before.goroutines+slackGoroutines &&
				u.fds <= before.fds+slackFDs &&
				u.rss <= before.rss+slackRSS, err
		})
		t.Logf("after: %v", after)
		if err != nil {
			t.Errorf("not back within 30s (%v): before %v; after %v; allowed +%d goroutines, +%d descriptors, +%d MiB",
				err, before, after, slackGoroutines, slackFDs, slackRSS>>20)
		}
	})
	t.Run("no server errors", func(t *testing.T) {
		for _, a := range h.rec.serverErrors() {
			t.Errorf("%s: %s answered %d (Retry-After %q)", a.who, a.what, a.status, a.retryAfter)
		}
		m, err := h.metrics()
		if err != nil {
			t.Fatal(err)
		}
		for series, v := range m {
			if strings.HasPrefix(series, "herald_http_request_duration_seconds_count{") && strings.Contains(series, `code="5`) {
				t.Logf("served: %s %v", series, v)
			}
		}
		if n, found := sum(m, "herald_panics_total"); found && n > 0 {
			t.Errorf("herald_panics_total is %v", n)
		}
	})
	t.Run("stops cleanly", func(t *testing.T) {
		if err := h.stop(15 * time.Second); err != nil {
			t.Error(err)
		}
	})
	t.Run("log", func(t *testing.T) {
		problems, warnings := h.logProblems()
		for i, l := range problems {
			if i == 30 {
				t.Errorf("… and %d more", len(problems)-i)
				break
			}
			t.Errorf("%s", l)
		}
		for i, l := range warnings {
			if i == 10 {
				t.Logf("… and %d more warnings", len(warnings)-i)
				break
			}
			t.Logf("%s", l)
		}
	})
}

// normalClient is a user after the storm: signs in, reads a campaign,
// watches it and her applications.
func normalClient(t *testing.T, h *herald) {
	t.Helper()
	c := h.client(t)
	if r := c.must(t, req{path: "/healthz"}); r.Status != ok {
		t.Fatalf("/healthz: %s", r)
	}
	r := c.must(t, jsonReq("POST", "/api/auth/token/", "", `{"username":"alice","password":"herald-demo"}`))
	var tok struct{ Access string }
	if r.Status != ok || r.json(&tok) != nil || tok.Access == "" {
		t.Fatalf("alice cannot sign in: %s", r)
	}
	if r := c.must(t, req{path: "/api/campaigns/1/"}); r.Status != ok {
		t.Errorf("GET /api/campaigns/1/: %s", r)
	}
	if r := c.must(t, req{path: "/api/auth/me/", bearer: tok.Access}); r.Status != ok {
		t.Errorf("GET /api/auth/me/: %s", r)
	}
	w := dialOK(t, c, "/ws/campaign/1/")
	if m, err := w.message(15*time.Second, nil); err != nil || m.Type != "campaign_data" {
		t.Errorf("campaign room: %v, first message %s", err, clip(string(m.raw), 100))
	}
	w.Close()
	w = dialOK(t, c, "/ws/applications/?token="+tok.Access)
	// The connection is in its groups: a message is answered.
	if err := w.sendText(`{"type":"ping"}`); err != nil {
		t.Fatal(err)
	}
	if got, _, err := firstAnswer(w); err != nil || got != "unknown_type" {
		t.Errorf("applications: answered %q, %v", got, err)
	}
	w.Close()
	r2, err := c.stream("/sse/campaign/1/", nil, 10*time.Second, "event: campaign_data\n")
	if err != nil || r2.Status != ok || !strings.Contains(string(r2.Body), "event: campaign_data\n") {
		t.Errorf("event stream: %v %v", r2, err)
	}
}

package metrics

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// liveHeap returns the bytes of live heap objects after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// series returns the number of series of the metric family name.
func series(t *testing.T, m *Metrics, name string) int {
	t.Helper()
	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			return len(f.GetMetric())
		}
	}
	return 0
}

// Any token is a method to net/http, which hands it over as a substring of
// the whole request line: requests with made-up methods and long URLs (405s
// from the router) must neither add a series each nor keep their request
// lines alive.
func TestMadeUpMethodsKeepNothing(t *testing.T) {
	const n, size = 2000, 8 << 10
	m := New()
	m.ObserveHTTP("/api/x/{$}", "GET", 200, time.Millisecond)
	before := liveHeap()
	for i := range n {
		line := "M" + strconv.Itoa(i) + " /api/x/?q=" + strings.Repeat("a", size) + " HTTP/1.1"
		method, _, _ := strings.Cut(line, " ")
		m.ObserveHTTP("", method, 405, time.Millisecond)
	}
	after := liveHeap()
	var grown uint64
	if after > before {
		grown = after - before
	}
	if limit := uint64(n * size / 10); grown > limit {
		t.Errorf("the live heap grew by %d KiB after %d requests with made-up methods and %d KiB request lines (limit %d KiB)",
			grown>>10, n, size>>10, limit>>10)
	}
	if got := series(t, m, "herald_http_request_duration_seconds"); got != 2 {
		t.Errorf("%d request duration series, want 2 (GET 200, other 405)", got)
	}
}

// The standard methods are labelled as they are; anything else as other.
func TestMethodLabel(t *testing.T) {
	for method, want := range map[string]string{
		"GET": "GET", "HEAD": "HEAD", "POST": "POST", "PUT": "PUT", "PATCH": "PATCH", "DELETE": "DELETE",
		"OPTIONS": "OPTIONS", "CONNECT": "CONNECT", "TRACE": "TRACE",
		"get": "other", "PROPFIND": "other", "": "other",
	} {
		if got := methodLabel(method); got != want {
			t.Errorf("methodLabel(%q) = %q, want %q", method, got, want)
		}
	}
}

// value returns the value of the metric family name's only series, and
// whether it has one.
func value(t *testing.T, m *Metrics, name string) (float64, bool) {
	t.Helper()
	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		if len(f.GetMetric()) != 1 {
			t.Fatalf("%s has %d series, want 1", name, len(f.GetMetric()))
		}
		s := f.GetMetric()[0]
		if g := s.GetGauge(); g != nil {
			return g.GetValue(), true
		}
		return s.GetCounter().GetValue(), true
	}
	return 0, false
}

// The outbox's backlog is what the relay last reported; the oldest
// event's age grows with the clock between reports (a stuck relay reports
// nothing) and is 0 when nothing waits.
func TestOutboxBacklog(t *testing.T) {
	m := New()
	now := time.Unix(1_000_000, 0)
	m.now = func() time.Time { return now }
	for _, name := range []string{"herald_outbox_pending_events", "herald_outbox_oldest_pending_age_seconds"} {
		if v, ok := value(t, m, name); !ok || v != 0 {
			t.Fatalf("%s before any report: %v (exposed %v), want 0", name, v, ok)
		}
	}
	m.OutboxBacklog(42, now.Add(-3*time.Second))
	if v, _ := value(t, m, "herald_outbox_pending_events"); v != 42 {
		t.Errorf("pending %v, want 42", v)
	}
	if v, _ := value(t, m, "herald_outbox_oldest_pending_age_seconds"); v != 3 {
		t.Errorf("oldest pending age %v, want 3", v)
	}
	now = now.Add(time.Minute)
	if v, _ := value(t, m, "herald_outbox_oldest_pending_age_seconds"); v != 63 {
		t.Errorf("oldest pending age a minute later %v, want 63", v)
	}
	m.OutboxBacklog(0, time.Time{})
	for _, name := range []string{"herald_outbox_pending_events", "herald_outbox_oldest_pending_age_seconds"} {
		if v, _ := value(t, m, name); v != 0 {
			t.Errorf("%s with an empty outbox: %v, want 0", name, v)
		}
	}
}

// herald_ready runs the readiness check at each scrape, with a deadline.
func TestReady(t *testing.T) {
	m := New()
	var failing error
	var deadline bool
	m.Watch(Sources{Ready: func(ctx context.Context) error {
		_, deadline = ctx.Deadline()
		return failing
	}})
	if v, ok := value(t, m, "herald_ready"); !ok || v != 1 {
		t.Fatalf("herald_ready %v (exposed %v), want 1", v, ok)
	}
	if !deadline {
		t.Error("the readiness check ran without a deadline")
	}
	failing = errors.New("database: connection refused")
	if v, _ := value(t, m, "herald_ready"); v != 0 {
		t.Errorf("herald_ready while the check fails: %v, want 0", v)
	}
	failing = nil
	if v, _ := value(t, m, "herald_ready"); v != 1 {
		t.Errorf("herald_ready once the check passes again: %v, want 1", v)
	}
}

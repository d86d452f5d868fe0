package metrics

import (
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

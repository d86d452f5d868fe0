package relay

import (
	"testing"
	"time"
)

// A round of some partitions that read none of the events counted as
// waiting elsewhere reports them, with an age from now (not known), and
// does not fail.
func TestPartialRoundReportsWhatWaitsElsewhere(t *testing.T) {
	var pending int
	var oldest time.Time
	r := New(nil, nil, Options{Backlog: func(n int, o time.Time) { pending, oldest = n, o }})
	before := time.Now()
	r.reportLeft(nil, 5, 0)
	if pending != 5 || oldest.Before(before) {
		t.Fatalf("reported %d waiting, the oldest at %v; want 5, from now", pending, oldest)
	}
	r.reportLeft(nil, 0, 0)
	if pending != 0 || !oldest.IsZero() {
		t.Fatalf("reported %d waiting, the oldest at %v; want none", pending, oldest)
	}
}

package transport

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/heraldhq/herald/internal/realtime"
)

// Every count of connections is closed within the period, in batches at
// least minCloseGap apart whose last one is due a gap before the period
// ends: spread over the whole period, never bunched at its start.
func TestCloseBatchesSpreadAnyCountOverThePeriod(t *testing.T) {
	for _, period := range []time.Duration{0, 5 * time.Millisecond, 2400 * time.Millisecond, 8 * time.Second, 24 * time.Second} {
		for _, n := range []int{1, 2, 100, 300, 800, 19000, 1_000_000} {
			b := closeBatches(n, period)
			if b < 1 || b > n {
				t.Fatalf("n=%d period=%v: %d batches", n, period, b)
			}
			covered, smallest, largest := 0, n, 0
			for k := range b {
				size := (k+1)*n/b - k*n/b
				covered += size
				smallest, largest = min(smallest, size), max(largest, size)
			}
			if covered != n || smallest < 1 || largest-smallest > 1 {
				t.Errorf("n=%d period=%v: batches cover %d, sizes %d..%d", n, period, covered, smallest, largest)
			}
			last := batchAt(b-1, b, period)
			if last > period {
				t.Errorf("n=%d period=%v: last batch due at %v, after the period", n, period, last)
			}
			if b == 1 {
				if period >= 2*minCloseGap && n > 1 {
					t.Errorf("n=%d period=%v: one batch, nothing spread", n, period)
				}
				continue
			}
			if gap := batchAt(1, b, period); gap < minCloseGap {
				t.Errorf("n=%d period=%v: batches %v apart, under %v", n, period, gap, minCloseGap)
			}
			if last < period-period/time.Duration(b)-time.Nanosecond {
				t.Errorf("n=%d period=%v: last batch due at %v, the spread stops short of the period", n, period, last)
			}
		}
	}
}

// 300 real clients of a real server, shut down with 3 s to go: the clients
// see their 1012 closes spread over the grace period, the last one after
// half of it and before its end, not one every 10 ms from the start.
func TestShutdownSpreadsClosesOverTheGrace(t *testing.T) {
	const (
		n     = 300
		grace = 3 * time.Second
	)
	// No handshake limit: the clients all come from one address.
	e := newEnv(t, realtime.HubOptions{}, Options{HandshakeRate: -1})
	type closed struct {
		code ws.StatusCode
		at   time.Time
	}
	closes := make(chan closed, n)
	for range n {
		c := dial(t, e.url+"?join=room")
		c.text()
		go func() {
			for {
				// Reads wait up to 5 s each; pings are answered.
				op, p, err := c.next()
				if err != nil {
					closes <- closed{}
					return
				}
				if op == ws.OpClose {
					at := time.Now()
					code, _ := ws.ParseCloseFrameData(p)
					_ = writeClose(c, code)
					closes <- closed{code, at}
					return
				}
			}
		}()
	}
	eventually(t, "joins", func() bool { return e.hub.GroupSize("room") == n })
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	start := time.Now()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	var after []time.Duration
	for range n {
		c := <-closes
		if c.code != ws.StatusCode(realtime.CloseServiceRestart) {
			t.Fatalf("close code %d, want 1012", c.code)
		}
		after = append(after, c.at.Sub(start))
	}
	slices.Sort(after)
	first, last := after[0], after[n-1]
	t.Logf("closes seen from %v to %v after shutdown began", first, last)
	if last < grace/2 || last >= grace {
		t.Errorf("last close seen %v after shutdown began; want it after half the grace (%v) and before its end", last, grace/2)
	}
	if last-first < grace/2 {
		t.Errorf("closes seen within %v; want them spread over at least half the grace (%v)", last-first, grace/2)
	}
	// Even, not bunched: each third of the spread (4/5 of the grace) sees
	// about a third of the closes.
	spread := grace * 4 / 5
	for i := range 3 {
		from, to := spread*time.Duration(i)/3, spread*time.Duration(i+1)/3
		got := 0
		for _, d := range after {
			if d >= from && (d < to || i == 2) {
				got++
			}
		}
		if got < n/6 {
			t.Errorf("%d of %d closes seen from %v to %v after shutdown began; want about a third", got, n, from, to)
		}
	}
}

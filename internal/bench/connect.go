package bench

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// ConnectFigures is how a batch of connections went.
type ConnectFigures struct {
	Requested int `json:"requested"`
	Connected int `json:"connected"`
	Failed    int `json:"failed"`
	// Failures counts the failed attempts by reason (http_429, timeout…);
	// Errors keeps the first few error messages.
	Failures map[string]int `json:"failures,omitempty"`
	Errors   []string       `json:"errors,omitempty"`
	// TargetRate is the pace asked for (0: as fast as DialConcurrency
	// allows); RatePerS is connections established per second, from the
	// first attempt to the last success.
	TargetRate float64 `json:"target_rate"`
	ElapsedS   float64 `json:"elapsed_s"`
	RatePerS   float64 `json:"rate_per_s"`
	// Latency is from the start of the TCP connect to the end of the
	// upgrade, or to the whole campaign_data message where one is expected.
	Latency Latency `json:"latency"`
	// SnapshotBytes is the average size of the campaign_data messages.
	SnapshotBytes int `json:"snapshot_bytes,omitempty"`
	// hist is Latency's histogram, which a generator child sends.
	hist *histWire
}

// connectSpec is a batch of connections to open.
type connectSpec struct {
	label    string
	n        int
	rate     float64          // per second; 0: no pacing
	path     func(int) string // URL path and query of connection i
	id       func(int) int    // client id (source address rotation) of connection i
	snapshot bool             // wait for campaign_data before counting it
	h        handler
	// since, when set, is the moment latencies count from (a mass
	// reconnect measures from the drop, not from each dial).
	since time.Time
}

// connect opens spec.n connections; clients[i] is the i-th (nil when it
// failed). Each success starts the connection's reader goroutine.
func (e *env) connect(ctx context.Context, spec connectSpec) ([]*client, *ConnectFigures) {
	var (
		clients  = make([]*client, spec.n)
		hist     Histogram
		ok, fail atomic.Int64
		snapSum  atomic.Int64
		mu       sync.Mutex
		failures = map[string]int{}
		errs     []string
		lastOK   atomic.Int64 // unix ns
		wg       sync.WaitGroup
	)
	start := time.Now()
	e.setPhase(spec.label, func() string {
		el := time.Since(start).Seconds()
		return fmt.Sprintf("%s: %d/%d connected, %d failed, %.0f/s, open %d", spec.label, ok.Load(), spec.n, fail.Load(), float64(ok.Load())/max(el, 1e-3), e.open.Load())
	})
	one := func(i int) {
		t0 := time.Now()
		id := i
		if spec.id != nil {
			id = spec.id(i)
		}
		c, err := e.dial.dial(spec.path(i), id, spec.h)
		snap := 0
		if err == nil && spec.snapshot {
			var typ string
			typ, snap, err = c.first(e.o.Timeout.D())
			if err == nil && typ != "campaign_data" {
				err = fmt.Errorf("%w (got %q)", errUnexpectedFirst, typ)
			}
			if err != nil {
				c.conn.Close()
				e.open.Add(-1)
			}
		}
		if err != nil {
			fail.Add(1)
			mu.Lock()
			failures[failure(err)]++
			if len(errs) < 5 {
				errs = append(errs, err.Error())
			}
			mu.Unlock()
			return
		}
		now := time.Now()
		from := t0
		if !spec.since.IsZero() {
			from = spec.since
		}
		hist.Record(now.Sub(from))
		snapSum.Add(int64(snap))
		ok.Add(1)
		e.connects.Add(1)
		for {
			l := lastOK.Load()
			if now.UnixNano() <= l || lastOK.CompareAndSwap(l, now.UnixNano()) {
				break
			}
		}
		clients[i] = c
		go c.run(&e.open)
	}
	// DialConcurrency long-lived dialers rather than a goroutine per
	// connection: a dial needs a deep stack, and growing a fresh one for
	// every connection cost the load generator a fifth of its CPU. Each
	// connection then gets a reader goroutine with a shallow stack.
	work := make(chan int)
	for range min(e.o.DialConcurrency, spec.n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				one(i)
			}
		}()
	}
	for i := range spec.n {
		if spec.rate > 0 {
			at := start.Add(time.Duration(float64(i) / spec.rate * float64(time.Second)))
			if d := time.Until(at); d > 0 {
				if sleep(ctx, d) != nil {
					break
				}
			}
		}
		select {
		case work <- i:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(work)
	wg.Wait()
	f := &ConnectFigures{
		Requested: spec.n, Connected: int(ok.Load()), Failed: int(fail.Load()), TargetRate: spec.rate,
		Latency: hist.Summary(true), Errors: errs, hist: hist.wire(),
	}
	if len(failures) > 0 {
		f.Failures = failures
	}
	if l := lastOK.Load(); l > 0 {
		from := start
		if !spec.since.IsZero() {
			from = spec.since
		}
		el := time.Unix(0, l).Sub(from).Seconds()
		f.ElapsedS = round3(el)
		if el > 0 {
			f.RatePerS = round3(float64(f.Connected) / el)
		}
	}
	if f.Connected > 0 && spec.snapshot {
		f.SnapshotBytes = int(snapSum.Load() / int64(f.Connected))
	}
	return clients, f
}

// closeAll drops every client and waits until their reader goroutines
// have seen it.
func (e *env) closeAll(clients []*client) {
	for _, c := range clients {
		if c != nil {
			c.drop()
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.open.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

// connectLine is a one-line summary of a connect batch.
func connectLine(f *ConnectFigures) string {
	s := fmt.Sprintf("%d/%d connected in %.2fs (%.0f/s), connect latency p50 %s p99 %s max %s",
		f.Connected, f.Requested, f.ElapsedS, f.RatePerS, msText(f.Latency.P50Ms), msText(f.Latency.P99Ms), msText(f.Latency.MaxMs))
	if f.Failed > 0 {
		keys := make([]string, 0, len(f.Failures))
		for k := range f.Failures {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		s += fmt.Sprintf("; %d failed:", f.Failed)
		for _, k := range keys {
			s += fmt.Sprintf(" %s×%d", k, f.Failures[k])
		}
	}
	return s
}

// msText prints milliseconds readably.
func msText(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.2fs", v/1000)
	case v >= 10:
		return fmt.Sprintf("%.0fms", v)
	case v >= 1:
		return fmt.Sprintf("%.1fms", v)
	}
	return fmt.Sprintf("%.0fµs", v*1000)
}

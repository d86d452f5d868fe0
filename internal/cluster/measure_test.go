package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testenv"
)

// TestMeasure prints cross-process delivery latency (REST send → WebSocket
// receipt) and deliveries per second for one process (memory layer, Redis
// layer) and three processes on the Redis layer. It runs only with
// HERALD_MEASURE=1 (docs/deployment.md quotes its output):
//
//	HERALD_MEASURE=1 go test -count=1 -run TestMeasure -v ./internal/cluster/
//
// HERALD_MEASURE_SUBS (subscribers, default 600), HERALD_MEASURE_RATE
// (events per second of the latency run, default 100) and
// HERALD_MEASURE_SECONDS (length of each run, default 10) tune it.
func TestMeasure(t *testing.T) {
	if os.Getenv("HERALD_MEASURE") == "" {
		t.Skip("set HERALD_MEASURE=1 to measure")
	}
	subs := envInt("HERALD_MEASURE_SUBS", 600)
	rate := envInt("HERALD_MEASURE_RATE", 100)
	secs := envInt("HERALD_MEASURE_SECONDS", 10)
	type setup struct {
		name   string
		procs  int
		layer  string
		remote bool // subscribers only on the processes the writes do not go through
	}
	setups := []setup{
		{"1 process, memory layer", 1, "memory", false},
		{"1 process, Redis layer", 1, "", false},
		{"3 processes, Redis layer, clients on B and C, writes through A", 3, "", true},
		{"3 processes, Redis layer, clients on A, B and C", 3, "", false},
	}
	var report []string
	for _, s := range setups {
		t.Run(s.name, func(t *testing.T) {
			d := deploy(t, s.procs, s.layer)
			tok := d.user(d.procs[0], "writer")
			camp := d.campaign(d.procs[0], tok)
			on := d.procs
			if s.remote {
				on = d.procs[1:]
			}
			m := newMeter(t, on, camp, subs)
			defer m.close()
			lat := m.run(t, d.procs[0], tok, camp, float64(rate), time.Duration(secs)*time.Second, 4)
			thr := m.run(t, d.procs[0], tok, camp, 0, time.Duration(secs)*time.Second, 16)
			line := fmt.Sprintf("%-62s | %d subs | %4d ev/s: p50 %6.2f ms p99 %7.2f ms, %6.0f deliveries/s | max: %5.0f ev/s, %7.0f deliveries/s, p50 %6.1f ms p99 %7.1f ms, lost %d",
				s.name, subs, rate, lat.p50, lat.p99, lat.dps, thr.evps, thr.dps, thr.p50, thr.p99, lat.lost+thr.lost)
			t.Log(line)
			report = append(report, line)
		})
	}
	t.Logf("\n%s", strings.Join(report, "\n"))
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// meter is a set of WebSocket subscribers of one campaign that time each
// comment from the send time written in its content.
type meter struct {
	clients []*testenv.WSClient
	mu      sync.Mutex
	lat     []time.Duration
	count   atomic.Int64
	last    atomic.Int64 // unix ns of the latest receipt
	wg      sync.WaitGroup
	stop    chan struct{}
}

func newMeter(t *testing.T, on []*proc, camp int64, n int) *meter {
	m := &meter{stop: make(chan struct{})}
	for i := range n {
		p := on[i%len(on)]
		c := testenv.MustDialWS(t, p.ws("/ws/campaign/"+strconv.FormatInt(camp, 10)+"/?v=2"), nil)
		if _, err := c.Next(10 * time.Second); err != nil { // campaign_data
			t.Fatal(err)
		}
		m.clients = append(m.clients, c)
	}
	for _, c := range m.clients {
		m.wg.Add(1)
		go m.read(c)
	}
	time.Sleep(500 * time.Millisecond) // the joins follow the snapshots
	return m
}

func (m *meter) read(c *testenv.WSClient) {
	defer m.wg.Done()
	var local []time.Duration
	flush := func() {
		m.mu.Lock()
		m.lat = append(m.lat, local...)
		m.mu.Unlock()
		local = local[:0]
	}
	defer flush()
	for {
		select {
		case <-m.stop:
			return
		default:
		}
		raw, err := c.Next(200 * time.Millisecond)
		now := time.Now()
		if err != nil {
			if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
				flush()
				continue
			}
			return
		}
		var w struct {
			Type string
			Data struct{ Content string }
		}
		if json.Unmarshal(raw, &w) != nil || w.Type != "comment" {
			continue
		}
		f := strings.Fields(w.Data.Content)
		if len(f) != 2 || f[0] != "m" {
			continue
		}
		sent, _ := strconv.ParseInt(f[1], 10, 64)
		local = append(local, now.Sub(time.Unix(0, sent)))
		m.count.Add(1)
		m.last.Store(now.UnixNano())
		if len(local) >= 256 {
			flush()
		}
	}
}

func (m *meter) close() {
	close(m.stop)
	m.wg.Wait()
	for _, c := range m.clients {
		c.Close()
	}
}

type measured struct {
	p50, p99   float64 // ms
	evps, dps  float64
	lost       int64
	sent, recv int64
}

// run writes comments through p at rate per second (0: as fast as the
// writers go) for d and measures what the subscribers receive.
func (m *meter) run(t *testing.T, p *proc, tok string, camp int64, rate float64, d time.Duration, writers int) measured {
	m.mu.Lock()
	m.lat = m.lat[:0]
	m.mu.Unlock()
	m.count.Store(0)
	var sent atomic.Int64
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := start.Add(time.Duration(float64(w) / max(rate, 1) * float64(time.Second)))
			for ctx.Err() == nil {
				if rate > 0 {
					time.Sleep(time.Until(next))
					next = next.Add(time.Duration(float64(writers) / rate * float64(time.Second)))
				}
				if _, err := comment(p, tok, camp, "m "+strconv.FormatInt(time.Now().UnixNano(), 10)); err != nil {
					if ctx.Err() == nil {
						t.Error(err)
					}
					return
				}
				sent.Add(1)
			}
		}()
	}
	wg.Wait()
	want := sent.Load() * int64(len(m.clients))
	deadline := time.Now().Add(30 * time.Second)
	for m.count.Load() < want && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // the readers flush their samples
	m.mu.Lock()
	lat := slices.Clone(m.lat)
	m.mu.Unlock()
	slices.Sort(lat)
	res := measured{sent: sent.Load(), recv: m.count.Load(), lost: want - m.count.Load()}
	if len(lat) > 0 {
		res.p50 = float64(lat[len(lat)/2]) / 1e6
		res.p99 = float64(lat[len(lat)*99/100]) / 1e6
	}
	elapsed := time.Unix(0, m.last.Load()).Sub(start).Seconds()
	res.evps = float64(res.sent) / elapsed
	res.dps = float64(res.recv) / elapsed
	return res
}

package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"
)

// IdleFigures is the idle scenario's outcome: what connecting cost and what
// an idle connection costs the server in memory.
type IdleFigures struct {
	CampaignID int64           `json:"campaign_id"`
	Token      bool            `json:"token"`
	Connect    *ConnectFigures `json:"connect"`
	// Server VmRSS before connecting (after a warm-up batch was opened and
	// closed), after all were connected and idle for Settle, and after they
	// were closed again; RSSPerConnBytes is (after - before) / connected.
	RSSBeforeKiB    int64   `json:"rss_before_kib,omitempty"`
	RSSAfterKiB     int64   `json:"rss_after_kib,omitempty"`
	RSSClosedKiB    int64   `json:"rss_closed_kib,omitempty"`
	RSSPerConnBytes float64 `json:"rss_per_conn_bytes,omitempty"`
	// RSSSamplesKiB is VmRSS once a second while idle.
	RSSSamplesKiB []int64 `json:"rss_samples_kib,omitempty"`
	ServerThreads int     `json:"server_threads,omitempty"`
	// With the server's admin address known, the same after forcing two
	// garbage collections in it (before and after): what the connections
	// hold, without the garbage their handshakes left behind.
	RSSBeforeGCKiB         int64   `json:"rss_before_gc_kib,omitempty"`
	RSSAfterGCKiB          int64   `json:"rss_after_gc_kib,omitempty"`
	RSSPerConnAfterGCBytes float64 `json:"rss_per_conn_after_gc_bytes,omitempty"`
	// The server's own metrics (/metrics) before connecting and with the
	// connections idle (after the forced GC when there was one), and the
	// Go heap in use per connection from them.
	MetricsBefore     map[string]float64 `json:"server_metrics_before,omitempty"`
	MetricsAfter      map[string]float64 `json:"server_metrics_after,omitempty"`
	HeapPerConnBytes  float64            `json:"heap_inuse_per_conn_bytes,omitempty"`
	GoroutinesPerConn float64            `json:"goroutines_per_conn,omitempty"`
	SettleS           float64            `json:"settle_s"`
	// ServerCPU is the server's CPU use while the connections were made.
	ServerCPU *ProcessFigures `json:"server_cpu_connecting,omitempty"`
	BenchCPU  *ProcessFigures `json:"bench_cpu_connecting,omitempty"`
	// With a Redis channel layer: its memory before connecting and with the
	// connections idle, and the memory per connection of the servers and
	// Redis together (RSS after GC when there was one, Redis's used_memory).
	RedisBefore       *RedisInfo      `json:"redis_before,omitempty"`
	RedisAfter        *RedisInfo      `json:"redis_after,omitempty"`
	AllInPerConnBytes float64         `json:"all_in_per_conn_bytes,omitempty"`
	Generators        int             `json:"generators,omitempty"`
	Restart           *RestartFigures `json:"restart,omitempty"`
}

// campaignPath is the campaign endpoint, with the token when asked for.
func campaignPath(id int64, token string) string {
	p := "/ws/campaign/" + strconv.FormatInt(id, 10) + "/"
	if token != "" {
		p += "?token=" + token
	}
	return p
}

// nopHandler ignores what idle connections receive (the server's pings are
// answered by the reader itself).
type nopHandler struct{}

func (nopHandler) message(*client, []byte, int) {}
func (nopHandler) closed(*client, int, error)   {}

func (e *env) runIdle(ctx context.Context) error {
	o := e.o
	f := &IdleFigures{Token: o.Token, SettleS: o.Settle.D().Seconds()}
	e.res.Idle = f
	owner, tok, err := e.idleSetup(ctx, f)
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	base := campaignPath(f.CampaignID, tok)
	if o.V2 {
		base = withQuery(base, "v=2")
	}
	path := func(int) string { return base }

	// Warm up the server (pools, maps, the first goroutines) so the
	// baseline is not its cold start.
	warm, wf := e.connect(ctx, connectSpec{label: "warm-up", n: min(200, o.Conns), path: path, snapshot: true, h: nopHandler{},
		id: func(i int) int { return i + 100 }})
	if wf.Failed > 0 {
		e.note("warm-up: %s", connectLine(wf))
	}
	e.closeAll(warm)
	if err := sleep(ctx, time.Second); err != nil {
		return err
	}
	if len(e.pids) > 0 {
		st, err := e.serverStatus()
		if err != nil {
			return fmt.Errorf("read the server's memory: %w", err)
		}
		f.RSSBeforeKiB = st.RSSKiB
	}
	gc := e.gcServer(ctx)
	if gc && len(e.pids) > 0 {
		rss, err := e.settledRSS(ctx)
		if err != nil {
			return err
		}
		f.RSSBeforeGCKiB = rss
	}
	f.MetricsBefore = e.metrics(ctx)
	f.RedisBefore = e.redisInfo(ctx)

	srvCPU, benchCPU := e.serverCPU(), startCPU()
	e.profile(ctx, "cpu-connect.pprof", o.ProfileFor.D())
	var clients []*client
	var cf *ConnectFigures
	if o.Generators > 1 {
		f.Generators = o.Generators
		spec := genSpec{N: o.Conns, Path: base, Snapshot: true, Handler: genNop}
		if o.Restart {
			spec.Path, spec.Handler = campaignPath(f.CampaignID, tok), genRoll
			spec.Group, spec.MaxSeq = "campaign_"+strconv.FormatInt(f.CampaignID, 10), 2+len(e.targets)*o.Missed
		}
		o.ConnectRate = o.Rate
		e.o.ConnectRate = o.Rate
		if cf, _, err = e.connectRemote(ctx, "connecting", spec); err != nil {
			return err
		}
	} else {
		clients, cf = e.connect(ctx, connectSpec{label: "connecting", n: o.Conns, rate: o.Rate, path: path, snapshot: true, h: nopHandler{}})
	}
	f.Connect = cf
	f.ServerCPU = srvCPU.stop()
	f.BenchCPU = benchCPU.stop()
	if c, err := cpuTimes(e.gen.pids()); err == nil && f.BenchCPU != nil && e.gen != nil {
		// The children started with the connecting: all their CPU is its.
		f.BenchCPU.CPUSecs = round3(f.BenchCPU.CPUSecs + c.Seconds())
		f.BenchCPU.Cores = round3(f.BenchCPU.CPUSecs / max(f.BenchCPU.WallSecs, 1e-3))
	}
	e.printf("%s\n", connectLine(cf))
	defer e.closeAll(clients)

	e.setPhase("idle", func() string {
		return fmt.Sprintf("idle: %d connections open, waiting %v before reading the server's memory", e.open.Load(), o.Settle)
	})
	if len(e.pids) > 0 {
		deadline := time.Now().Add(o.Settle.D())
		for {
			step := min(time.Second, time.Until(deadline))
			if step > 0 {
				if err := sleep(ctx, step); err != nil {
					return err
				}
			}
			st, err := e.serverStatus()
			if err != nil {
				return fmt.Errorf("read the server's memory: %w", err)
			}
			f.RSSSamplesKiB = append(f.RSSSamplesKiB, st.RSSKiB)
			f.RSSAfterKiB, f.ServerThreads = st.RSSKiB, st.Threads
			if step <= 0 || !time.Now().Before(deadline) {
				break
			}
		}
		if cf.Connected > 0 {
			f.RSSPerConnBytes = round3(float64(f.RSSAfterKiB-f.RSSBeforeKiB) * 1024 / float64(cf.Connected))
		}
	} else if err := sleep(ctx, o.Settle.D()); err != nil {
		return err
	}
	if gc && e.gcServer(ctx) && len(e.pids) > 0 {
		rss, err := e.settledRSS(ctx)
		if err != nil {
			return err
		}
		if cf.Connected > 0 {
			f.RSSAfterGCKiB = rss
			f.RSSPerConnAfterGCBytes = round3(float64(f.RSSAfterGCKiB-f.RSSBeforeGCKiB) * 1024 / float64(cf.Connected))
		}
	}
	f.MetricsAfter = e.metrics(ctx)
	f.RedisAfter = e.redisInfo(ctx)
	if cf.Connected > 0 && f.RedisBefore != nil && f.RedisAfter != nil {
		herald := f.RSSAfterKiB - f.RSSBeforeKiB
		if f.RSSAfterGCKiB > 0 {
			herald = f.RSSAfterGCKiB - f.RSSBeforeGCKiB
		}
		f.AllInPerConnBytes = round3((float64(herald)*1024 + float64(f.RedisAfter.UsedBytes-f.RedisBefore.UsedBytes)) / float64(cf.Connected))
		e.printf("memory per connection, servers and Redis: %.0f B (Redis used_memory %+d B)\n", f.AllInPerConnBytes, f.RedisAfter.UsedBytes-f.RedisBefore.UsedBytes)
	}
	if cf.Connected > 0 && f.MetricsBefore != nil && f.MetricsAfter != nil {
		f.HeapPerConnBytes = round3(delta(f.MetricsBefore, f.MetricsAfter, "go_memstats_heap_inuse_bytes") / float64(cf.Connected))
		f.GoroutinesPerConn = round3(delta(f.MetricsBefore, f.MetricsAfter, "go_goroutines") / float64(cf.Connected))
	}
	if still := e.open.Load(); still < int64(cf.Connected) && e.gen == nil {
		e.note("%d of %d connections were closed while idle", int64(cf.Connected)-still, cf.Connected)
	}
	if o.Hold > 0 {
		e.setPhase("hold", func() string { return fmt.Sprintf("holding %d connections open for %v", e.open.Load(), o.Hold) })
		if err := sleep(ctx, o.Hold.D()); err != nil {
			return err
		}
	}
	if o.Restart {
		f.Restart = &RestartFigures{Clients: cf.Connected}
		if err := e.rollingRestart(ctx, f.Restart, f.CampaignID, owner); err != nil {
			return err
		}
	}
	e.setPhase("closing", func() string { return fmt.Sprintf("closed; %d connections still open", e.open.Load()) })
	e.closeAll(clients)
	e.gen.stop()
	if len(e.pids) > 0 {
		if err := sleep(ctx, 2*time.Second); err != nil {
			return err
		}
		if st, err := e.serverStatus(); err == nil {
			f.RSSClosedKiB = st.RSSKiB
		}
	}

	e.latencyChart("latency.svg", "Connect latency: TCP connect to complete campaign_data", cf.Latency)
	e.timelineChart("throughput.svg", "New connections per second", "connections/s",
		func(p TimelinePoint) float64 { return float64(p.Connects) })
	return nil
}

// idleSetup makes the idle scenario's campaign, and its owner whose token
// the clients send with --token. A bare server has neither: any path
// upgrades, and the token is a placeholder as long as a real one.
func (e *env) idleSetup(ctx context.Context, f *IdleFigures) (owner user, token string, err error) {
	if e.o.Bare {
		f.CampaignID = 1
		if e.o.Token {
			token, err = placeholderToken()
		}
		return user{}, token, err
	}
	owner, err = e.newUser(ctx, "bench"+e.runID+"owner")
	if err != nil {
		return user{}, "", err
	}
	if f.CampaignID, err = e.newCampaign(ctx, owner, "bench idle "+e.runID, e.o.SnapshotBytes); err != nil {
		return user{}, "", err
	}
	if e.o.Token {
		token = owner.Token
	}
	return owner, token, nil
}

// settledRSS waits after a forced GC until the servers' RSS stops falling
// (the Go runtime returns freed memory to the OS in the background, over
// seconds: the setup's password hashes alone leave tens of MiB to return),
// at most rssSettleMax, and returns it.
func (e *env) settledRSS(ctx context.Context) (int64, error) {
	const rssSettleMax = 20 * time.Second
	var last int64 = -1
	steady := 0
	deadline := time.Now().Add(rssSettleMax)
	for {
		if err := sleep(ctx, time.Second); err != nil {
			return 0, err
		}
		st, err := e.serverStatus()
		if err != nil {
			return 0, fmt.Errorf("read the server's memory: %w", err)
		}
		// Settled: not down by more than 0.5% for three seconds running
		// (the release often starts a second or two after the GC).
		if last >= 0 && st.RSSKiB >= last-last/200 {
			steady++
		} else {
			steady = 0
		}
		last = st.RSSKiB
		if steady >= 3 || time.Now().After(deadline) {
			return st.RSSKiB, nil
		}
	}
}

// latencyChart adds latency.svg-style chart of l to the results.
func (e *env) latencyChart(name, title string, l Latency) {
	if len(l.Bins) == 0 {
		return
	}
	sub := fmt.Sprintf("%d samples; p50 %s, p95 %s, p99 %s, max %s", l.Count, msText(l.P50Ms), msText(l.P95Ms), msText(l.P99Ms), msText(l.MaxMs))
	marks := []Mark{{l.P50Ms, "p50"}, {l.P99Ms, "p99"}, {l.MaxMs, "max"}}
	e.res.addChart(name, func(f *os.File) error { return WriteHistogramSVG(f, title, sub, l.Bins, marks) })
}

// timelineChart adds a per-second chart of the run's timeline.
func (e *env) timelineChart(name, title, yLabel string, pick func(TimelinePoint) float64, marks ...Mark) {
	e.res.addChart(name, func(f *os.File) error {
		samples := make([]Sample, len(e.res.Timeline))
		for i, p := range e.res.Timeline {
			samples[i] = Sample{T: p.T, Value: pick(p)}
		}
		sub := fmt.Sprintf("herald bench %s, %s", e.o.Scenario, e.res.StartedAt.Format(time.RFC3339))
		return WriteTimelineSVG(f, title, sub, yLabel, samples, marks)
	})
}

package bench

import (
	"fmt"
	"strings"
)

// summary prints the run's human summary.
func (e *env) summary() {
	r := e.res
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("")
	w("== herald bench %s — summary", r.Scenario)
	w("command:  %s", r.CommandLine)
	w("machine:  %d CPUs, %.1f GiB, Linux %s; herald commit %s", r.Machine.NProc, float64(r.Machine.MemBytes)/(1<<30), r.Machine.Kernel, orUnknown(r.HeraldCommit))
	if len(r.ServerPIDs) > 1 {
		w("servers:  %d processes (pids %s), figures summed over them; connections made to each: %v",
			len(r.ServerPIDs), pidText(r.ServerPIDs), r.ConnectsPerTarget)
	}
	switch {
	case r.Idle != nil:
		f := r.Idle
		if f.Connect != nil {
			auth := "anonymous"
			if f.Token {
				auth = "with ?token="
			}
			w("connect (%s, campaign_data %d bytes): %s", auth, f.Connect.SnapshotBytes, connectLine(f.Connect))
		}
		if f.RSSAfterKiB > 0 {
			w("server RSS: %d KiB before, %d KiB with %d idle connections after %.0fs, %d KiB after closing them",
				f.RSSBeforeKiB, f.RSSAfterKiB, connected(f.Connect), f.SettleS, f.RSSClosedKiB)
			w("server RSS per idle connection: %.0f bytes (%.2f KiB); %d server threads", f.RSSPerConnBytes, f.RSSPerConnBytes/1024, f.ServerThreads)
		}
		if f.RSSAfterGCKiB > 0 {
			w("after forcing GC in the server: RSS %d KiB before, %d KiB with the connections: %.0f bytes (%.2f KiB) per connection",
				f.RSSBeforeGCKiB, f.RSSAfterGCKiB, f.RSSPerConnAfterGCBytes, f.RSSPerConnAfterGCBytes/1024)
		}
		if f.MetricsAfter != nil {
			w("server's own metrics: Go heap in use %.0f bytes per connection, %.3f goroutines per connection, %s connections open",
				f.HeapPerConnBytes, f.GoroutinesPerConn, metricText(f.MetricsAfter, "herald_realtime_connections"))
		}
		if f.ServerCPU != nil {
			w("CPU while connecting: server %.2f cores, bench %.2f cores, machine %.2f cores busy", f.ServerCPU.Cores, coresOf(f.BenchCPU), machineOf(f.BenchCPU))
		}
		if f.RedisAfter != nil && f.RedisBefore != nil {
			w("Redis used_memory %d → %d bytes; servers and Redis together: %.0f bytes per connection", f.RedisBefore.UsedBytes, f.RedisAfter.UsedBytes, f.AllInPerConnBytes)
		}
		if rs := f.Restart; rs != nil {
			for _, st := range rs.Steps {
				w("restart %d/%d: stopped in %.2fs, back in %.2fs, %s", st.Process, rs.Processes, st.StoppedS, st.BackS, tallyLine(st.CurrentS, st.Tally, rs.Clients))
			}
			w("rolling restart of %d processes in %.1fs, %d comments posted: %s", rs.Processes, rs.TotalS, rs.Posted, tallyLine(-1, rs.Final, rs.Clients))
		}
	case r.Fanout != nil:
		f := r.Fanout
		if f.Connect != nil {
			w("subscribers: %s", connectLine(f.Connect))
		}
		w("event size: %d bytes on the wire (payload)", f.EventBytes)
		for i, st := range f.Steps {
			w("%s", stepLine(i, len(f.Steps), st))
		}
		if f.Best >= 0 {
			w("highest passing rate: %.1f events/s = %.0f deliveries/s to %d subscribers (no loss, p99 %s ≤ %v)",
				f.BestRate, f.BestDeliveriesPerS, f.Steps[f.Best].Subscribers, msText(f.Steps[f.Best].Latency.P99Ms), e.o.MaxP99)
		} else if len(f.Steps) > 0 {
			w("no step passed (no loss, no failed write, p99 ≤ %v)", e.o.MaxP99)
		}
		if len(f.CloseCodes) > 0 {
			w("subscribers closed by the server, by close code: %v", f.CloseCodes)
		}
	case r.Personal != nil, r.Apps != nil:
		f := r.Personal
		if f == nil {
			f = r.Apps
			w("clients: %d creators + %d applicants on /ws/applications/", f.Creators, f.Applicants)
		} else {
			w("clients: %d users on /ws/applications/", f.Users)
		}
		if f.Seeded {
			w("setup: %.1fs (users and applications made in the database, one argon2id hash for all)", f.SetupS)
		} else {
			w("setup: %.1fs (accounts are argon2id-hashed on the server)", f.SetupS)
		}
		if f.Connect != nil {
			w("connect: %s", connectLine(f.Connect))
		}
		lim := ""
		if f.RESTLimited {
			lim = " — REST-limited"
		}
		w("writes: %d of %d planned at %g/s over %.0fs (%.1f/s achieved%s), %d failed", f.Writes, f.Planned, f.TargetRate, f.DurationS, f.AchievedRate, lim, f.Failed)
		w("events: %d received of %d expected, %d lost, %d unexpected, %d on the wrong connection", f.Received, f.Expected, f.Lost, f.Unexpected, f.Misrouted)
		w("latency REST send → WebSocket receipt: %s", latLine(f.Latency))
		for _, t := range []string{evNew, evUpdate} {
			if l, ok := f.ByType[t]; ok {
				w("  %s: %s", t, latLine(l))
			}
		}
		w("REST request time: %s", latLine(f.REST))
		if f.ServerCPU != nil {
			w("CPU during the writes: server %.2f cores, bench %.2f cores, machine %.2f cores busy", f.ServerCPU.Cores, coresOf(f.BenchCPU), machineOf(f.BenchCPU))
		}
		if f.RedisCPU != nil || f.PostgresCPU != nil {
			w("and Redis %.3f cores, PostgreSQL %.2f cores", coresOf(f.RedisCPU), coresOf(f.PostgresCPU))
		}
		if f.RedisBefore != nil && f.RedisAfter != nil {
			w("Redis with the users connected: %d pub/sub channels (%+d), used_memory %+d bytes", f.RedisAfter.PubsubChannels,
				f.RedisAfter.PubsubChannels-f.RedisBefore.PubsubChannels, f.RedisAfter.UsedBytes-f.RedisBefore.UsedBytes)
		}
	case r.Resume != nil:
		f := r.Resume
		w("mode: %s", f.Mode)
		if f.Connect != nil {
			w("initial connect: %s", connectLine(f.Connect))
		}
		for i, rd := range f.Rounds {
			w("round %d: %d clients dropped and reconnected at once: %s", i+1, rd.Clients, roundLine(rd))
		}
	case r.SignIn != nil:
		f := r.SignIn
		w("server RSS: fresh %s, after registering %d users %s", mibText(f.RSSFreshKiB), f.Users, mibText(f.RSSRegisteredKiB))
		for _, bu := range f.Bursts {
			what := "known users, right passwords"
			if !bu.KnownUsers {
				what = "unknown users"
			}
			w("burst of %d concurrent sign-ins (%s) in %.2fs: %s; RSS %s, peak so far %s",
				bu.Requests, what, bu.Seconds, codesText(bu.Codes), mibText(bu.RSSKiB), mibText(bu.PeakKiB))
		}
		s := f.Sustained
		w("sustained, %d clients for %.0fs: %.1f sign-ins/s (%s)", s.Clients, s.Seconds, s.PerS, codesText(s.Codes))
		w("server peak RSS (VmHWM) over the run: %s", mibText(f.RSSPeakKiB))
	case r.Publish != nil:
		f := r.Publish
		for _, st := range f.Throughput {
			w("%s", publishStepLine(st))
		}
		if f.BestEventsPerS > 0 {
			w("highest publish rate: %.0f events/s over HTTP, in batches of %d", f.BestEventsPerS, f.BestBatch)
		}
		steps := f.LatencySteps
		if len(steps) == 0 && f.Latency != nil {
			steps = []*PublishLatency{f.Latency}
		}
		for i, l := range steps {
			if i == 0 && l.Connect != nil {
				w("subscribers (%s): %s", f.Protocol, connectLine(l.Connect))
			}
			w("%s", publishLatencyLine(l))
		}
	case r.Writes != nil:
		f := r.Writes
		if f.Connect != nil {
			w("subscribers, one per room: %s", connectLine(f.Connect))
		}
		for i, st := range f.Steps {
			w("%s", writesStepLine(i, len(f.Steps), st))
		}
		w("%s", writesLine(f))
	case r.Django != nil:
		f := r.Django
		w("server: %s; group %s through channels_redis (%s layer, prefix %q); %d sender process(es) calling async_to_sync(group_send)",
			f.Server, f.Group, f.Layer, f.Prefix, f.Senders)
		if f.Connect != nil {
			w("clients: %s", connectLine(f.Connect))
		}
		for i, st := range f.Steps {
			w("%s", djangoStepLine(i, len(f.Steps), st))
		}
	}
	for _, n := range r.Notes {
		w("note: %s", n)
	}
	if r.Error != "" {
		w("stopped early: %s", r.Error)
	}
	e.printf("%s", b.String())
}

func latLine(l Latency) string {
	return fmt.Sprintf("n=%d p50 %s p95 %s p99 %s max %s", l.Count, msText(l.P50Ms), msText(l.P95Ms), msText(l.P99Ms), msText(l.MaxMs))
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func connected(f *ConnectFigures) int {
	if f == nil {
		return 0
	}
	return f.Connected
}

func machineOf(p *ProcessFigures) float64 {
	if p == nil {
		return 0
	}
	return p.MachineCores
}

func coresOf(p *ProcessFigures) float64 {
	if p == nil {
		return 0
	}
	return p.Cores
}

// mibText writes KiB as MiB, or "unknown" for 0 (no server pid).
func mibText(kib int64) string {
	if kib <= 0 {
		return "unknown"
	}
	return fmt.Sprintf("%.0f MiB", float64(kib)/1024)
}

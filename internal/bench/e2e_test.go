package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/config"
	"github.com/heraldhq/herald/internal/realtime/layer/redistest"
	"github.com/heraldhq/herald/internal/testenv"
)

// startHerald runs a whole herald in this process on a loopback port and
// returns its base URL. It serves /metrics there, as a herald the bench
// drives without knowing its admin address must.
func startHerald(t *testing.T) string {
	t.Helper()
	return testenv.StartHerald(t, testenv.SQLite(t), func(c *config.Config) { c.PublicMetrics = true }).Base
}

// runTiny runs one scenario against base and checks what every run must
// produce: no error, a summary, results.json and the charts.
func runTiny(t *testing.T, base string, o Options, charts ...string) (*Results, string) {
	t.Helper()
	var out bytes.Buffer
	o.Target, o.ServerPID, o.Stdout, o.Out = base, os.Getpid(), &out, t.TempDir()
	o.Command = []string{"herald", "bench", o.Scenario, "--conns", "20"}
	o.Drain = Duration(3 * time.Second)
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatalf("%s: %v\n%s", o.Scenario, err, out.String())
	}
	if !strings.Contains(out.String(), "== herald bench "+o.Scenario+" — summary") {
		t.Errorf("no summary:\n%s", out.String())
	}
	back, err := ReadResults(filepath.Join(o.Out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if back.Scenario != o.Scenario || back.CommandLine != "herald bench "+o.Scenario+" --conns 20" || back.Machine.NProc < 1 ||
		back.Target != base || back.StartedAt.IsZero() || back.FinishedAt.Before(back.StartedAt) {
		t.Errorf("results.json header: %+v", back)
	}
	for _, c := range charts {
		b, err := os.ReadFile(filepath.Join(o.Out, c))
		if err != nil {
			t.Errorf("chart %s: %v", c, err)
			continue
		}
		if bars, _ := svgStats(t, b); bars == 0 {
			t.Errorf("chart %s has no bars", c)
		}
	}
	return res, out.String()
}

func checkConnect(t *testing.T, f *ConnectFigures, n int) {
	t.Helper()
	if f == nil || f.Connected != n || f.Failed != 0 || f.RatePerS <= 0 || f.Latency.Count != uint64(n) || f.Latency.MaxMs <= 0 || f.Latency.MaxMs > slowest {
		t.Fatalf("connect figures: %+v", f)
	}
}

// slowest bounds, in ms, the latencies the scenarios measure here: they
// check what is delivered, lost and counted, and only that a latency was
// measured, since a machine busy with other work can take seconds.
const slowest = 60_000

// Every scenario, tiny, against a real herald: nothing lost, figures sane.
func TestScenariosEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	base := startHerald(t)

	t.Run("idle", func(t *testing.T) {
		o := Defaults("idle")
		o.Conns, o.Settle = 20, Duration(time.Second)
		res, _ := runTiny(t, base, o, "latency.svg", "throughput.svg")
		f := res.Idle
		checkConnect(t, f.Connect, 20)
		if f.Connect.SnapshotBytes < 3500 || f.Connect.SnapshotBytes > 4600 {
			t.Errorf("campaign_data of %d bytes, want about 4096", f.Connect.SnapshotBytes)
		}
		if f.RSSBeforeKiB <= 0 || f.RSSAfterKiB <= 0 || len(f.RSSSamplesKiB) == 0 || f.ServerThreads <= 0 {
			t.Errorf("server memory: %+v", f)
		}
	})
	t.Run("idle-token", func(t *testing.T) {
		o := Defaults("idle")
		o.Conns, o.Settle, o.Token, o.Rate = 20, Duration(100*time.Millisecond), true, 200
		res, _ := runTiny(t, base, o)
		checkConnect(t, res.Idle.Connect, 20)
		if !res.Idle.Token || res.Idle.Connect.RatePerS > 400 {
			t.Errorf("token %v, rate %v/s with --rate 200", res.Idle.Token, res.Idle.Connect.RatePerS)
		}
	})
	t.Run("fanout", func(t *testing.T) {
		o := Defaults("fanout")
		o.Conns, o.Steps, o.Duration = 20, []float64{20, 40}, Duration(time.Second)
		o.MaxP99 = Duration(slowest * time.Millisecond) // the ramp goes on however busy the machine
		res, out := runTiny(t, base, o, "latency.svg", "throughput.svg", "latency-step1-20ps.svg", "latency-step2-40ps.svg")
		f := res.Fanout
		checkConnect(t, f.Connect, 20)
		if len(f.Steps) != 2 || f.Best != 1 {
			t.Fatalf("steps %+v best %d\n%s", f.Steps, f.Best, out)
		}
		for i, st := range f.Steps {
			if !st.Pass || st.Lost != 0 || st.Duplicates != 0 || st.Unexpected != 0 || st.Sent < int(st.TargetRate)/2 ||
				st.Delivered != int64(st.Sent)*20 || st.Expected != st.Delivered || st.Latency.Count != uint64(st.Delivered) ||
				st.Latency.P99Ms <= 0 || st.Latency.P99Ms > slowest || st.REST.Count != uint64(st.Sent) {
				t.Errorf("step %d: %+v", i+1, st)
			}
		}
		if f.EventBytes < 270 || f.EventBytes > 330 {
			t.Errorf("events of %d bytes, want about 300", f.EventBytes)
		}
		var delivered uint64
		for _, p := range res.Timeline {
			delivered += p.Deliveries
		}
		if delivered == 0 || delivered > uint64(f.Steps[0].Delivered+f.Steps[1].Delivered) {
			t.Errorf("timeline counts %d deliveries", delivered)
		}
	})
	t.Run("personal", func(t *testing.T) {
		o := Defaults("personal")
		o.Conns, o.Rate, o.Duration = 10, 20, Duration(time.Second)
		res, _ := runTiny(t, base, o, "latency.svg")
		f := res.Personal
		checkConnect(t, f.Connect, 10)
		if f.Writes < 10 || f.Failed != 0 || f.Lost != 0 || f.Received != int64(f.Writes) || f.Unexpected != 0 || f.Misrouted != 0 ||
			f.Latency.P99Ms <= 0 || f.Latency.P99Ms > slowest || f.ByType[evUpdate].Count != uint64(f.Writes) {
			t.Errorf("%+v", f)
		}
	})
	t.Run("apps", func(t *testing.T) {
		o := Defaults("apps")
		o.Creators, o.Applicants, o.Rate, o.Duration = 3, 3, 20, Duration(2*time.Second)
		res, _ := runTiny(t, base, o, "latency.svg")
		f := res.Apps
		checkConnect(t, f.Connect, 6)
		if f.Writes < 20 || f.Failed != 0 || f.Lost != 0 || f.Received != int64(f.Writes) || f.Unexpected != 0 || f.Misrouted != 0 ||
			f.ByType[evNew].Count == 0 || f.ByType[evUpdate].Count == 0 || f.Latency.P99Ms > slowest {
			t.Errorf("%+v", f)
		}
	})
	t.Run("resume", func(t *testing.T) {
		o := Defaults("resume")
		o.Conns, o.Rounds, o.Pause = 20, 2, Duration(100*time.Millisecond)
		res, out := runTiny(t, base, o, "latency.svg")
		f := res.Resume
		checkConnect(t, f.Connect, 20)
		if len(f.Rounds) != 2 || !strings.Contains(out, "protocol v2") {
			t.Fatalf("%+v\n%s", f, out)
		}
		for _, r := range f.Rounds {
			checkConnect(t, r.Connect, 20)
			if r.Clients != 20 || r.AllBackS <= 0 || r.AllBackS > 10 {
				t.Errorf("round %+v", r)
			}
		}
	})
	t.Run("resume-v2", func(t *testing.T) {
		o := Defaults("resume")
		o.Conns, o.Rounds, o.Pause, o.ResumeMode, o.Missed = 20, 2, Duration(100*time.Millisecond), ResumeV2, 5
		res, _ := runTiny(t, base, o, "latency.svg")
		f := res.Resume
		checkConnect(t, f.Connect, 20)
		if len(f.Rounds) != 2 || f.Mode != ResumeV2 {
			t.Fatalf("%+v", f)
		}
		for _, r := range f.Rounds {
			// Every client gets the 5 events it missed replayed, then
			// subscribed with recovered:true, and no snapshot.
			if r.Clients != 20 || r.AllBackS <= 0 || r.Missed != 5 || r.Replayed != 100 || r.ReplayLost != 0 ||
				r.Recovered != 20 || r.NotRecovered != 0 || r.Snapshots != 0 || r.Connect.Latency.Count != 20 {
				t.Errorf("round %+v", r)
			}
		}
	})
	t.Run("signin", func(t *testing.T) {
		o := Defaults("signin")
		o.Conns, o.Publishers, o.Duration = 10, 2, Duration(time.Second)
		res, out := runTiny(t, base, o)
		f := res.SignIn
		if f == nil || f.Users != 10 || len(f.Bursts) != 2 {
			t.Fatalf("%+v\n%s", f, out)
		}
		// Right passwords sign in (or are told to come back); unknown users
		// are refused; every answer is counted once.
		for i, want := range []string{"200", "401"} {
			b := f.Bursts[i]
			n := 0
			for code, k := range b.Codes {
				if code != want && code != "503" {
					t.Errorf("burst %d answered %s %d times", i+1, code, k)
				}
				n += k
			}
			if n != 10 || b.Codes[want] == 0 || b.RSSKiB <= 0 || b.PeakKiB < b.RSSKiB {
				t.Errorf("burst %d: %+v", i+1, b)
			}
		}
		if s := f.Sustained; s.Clients != 2 || s.OK == 0 || s.PerS <= 0 || s.Codes["200"] != int(s.OK) {
			t.Errorf("sustained: %+v", s)
		}
		if f.RSSFreshKiB <= 0 || f.RSSPeakKiB < f.RSSFreshKiB || !strings.Contains(out, "sign-ins/s") {
			t.Errorf("memory %+v\n%s", f, out)
		}
	})
}

// A target off the loopback interface is refused before anything is sent.
func TestRefusesNonLoopback(t *testing.T) {
	o := Defaults("idle")
	o.Target, o.Stdout = "http://192.0.2.1:8000", &bytes.Buffer{}
	if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("error %v", err)
	}
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// heraldBinary builds cmd/herald once for the tests that spawn it.
func heraldBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the herald binary")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "herald-bench-test-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "herald")
		out, err := exec.Command("go", "build", "-o", builtBin, "github.com/heraldhq/herald/cmd/herald").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("build herald: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtBin != "" {
		os.RemoveAll(filepath.Dir(builtBin))
	}
	os.Exit(code)
}

// --spawn starts the real binary on a temporary database and stops it.
func TestSpawn(t *testing.T) {
	bin := heraldBinary(t)
	var out bytes.Buffer
	o := Defaults("idle")
	o.Spawn, o.HeraldBin, o.Conns, o.Settle, o.Stdout, o.Out = true, bin, 10, Duration(100*time.Millisecond), &out, t.TempDir()
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !res.Spawned || res.ServerPID <= 0 || res.ServerPID == os.Getpid() || res.Idle.Connect.Connected != 10 || res.Idle.RSSAfterKiB <= 0 {
		t.Fatalf("%+v\n%s", res, out.String())
	}
	if err := syscall.Kill(res.ServerPID, 0); err == nil {
		t.Errorf("spawned server %d still running", res.ServerPID)
	}
	if _, err := os.Stat(filepath.Join(o.Out, "server.log")); err != nil {
		t.Errorf("server log not kept: %v", err)
	}
}

// --spawn --procs 2 starts two processes on PostgreSQL and Redis and
// spreads the load over them: each gets subscribers, and every event
// reaches every subscriber whichever process took the REST write.
func TestSpawnProcs(t *testing.T) {
	bin := heraldBinary(t)
	var out bytes.Buffer
	o := Defaults("fanout")
	o.Spawn, o.Procs, o.HeraldBin = true, 2, bin
	o.ServeArgs = []string{"--db", testenv.Postgres(t), "--layer", redistest.SharedURL(), "--redis-prefix", redistest.Prefix(t)}
	o.Conns, o.Steps, o.Duration, o.Drain, o.Stdout, o.Out = 20, []float64{10}, Duration(2*time.Second), Duration(5*time.Second), &out, t.TempDir()
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if len(res.ServerPIDs) != 2 || res.ServerPIDs[0] == res.ServerPIDs[1] || len(strings.Split(res.Target, ",")) != 2 {
		t.Fatalf("pids %v target %q\n%s", res.ServerPIDs, res.Target, out.String())
	}
	if len(res.ConnectsPerTarget) != 2 || res.ConnectsPerTarget[0] < 10 || res.ConnectsPerTarget[1] < 10 {
		t.Errorf("connections per process %v: not spread", res.ConnectsPerTarget)
	}
	if len(res.Fanout.Steps) != 1 {
		t.Fatalf("steps %+v", res.Fanout.Steps)
	}
	st := res.Fanout.Steps[0]
	if st.Sent < 10 || st.Lost != 0 || st.Delivered != int64(st.Sent)*int64(st.Subscribers) {
		t.Errorf("step %+v: events lost across processes\n%s", st, out.String())
	}
	if res.Fanout.Steps[0].ServerCPU == nil || len(res.Fanout.Steps[0].ServerCPU.PIDs) != 2 {
		t.Errorf("server CPU %+v: not measured over both processes", res.Fanout.Steps[0].ServerCPU)
	}
	for _, pid := range res.ServerPIDs {
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("spawned server %d still running", pid)
		}
	}
	for _, name := range []string{"server-1.log", "server-2.log"} {
		if _, err := os.Stat(filepath.Join(o.Out, name)); err != nil {
			t.Errorf("server log not kept: %v", err)
		}
	}
}

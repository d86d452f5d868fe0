package bench

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testenv"
)

// startHerald runs a whole herald in this process on a loopback port and
// returns its base URL.
func startHerald(t *testing.T) string {
	t.Helper()
	return testenv.StartHerald(t, testenv.SQLite(t)).Base
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
	if f == nil || f.Connected != n || f.Failed != 0 || f.RatePerS <= 0 || f.Latency.Count != uint64(n) || f.Latency.MaxMs <= 0 || f.Latency.MaxMs > 10000 {
		t.Fatalf("connect figures: %+v", f)
	}
}

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
		res, out := runTiny(t, base, o, "latency.svg", "throughput.svg", "latency-step1-20ps.svg", "latency-step2-40ps.svg")
		f := res.Fanout
		checkConnect(t, f.Connect, 20)
		if len(f.Steps) != 2 || f.Best != 1 {
			t.Fatalf("steps %+v best %d\n%s", f.Steps, f.Best, out)
		}
		for i, st := range f.Steps {
			if !st.Pass || st.Lost != 0 || st.Duplicates != 0 || st.Unexpected != 0 || st.Sent < int(st.TargetRate)/2 ||
				st.Delivered != int64(st.Sent)*20 || st.Expected != st.Delivered || st.Latency.Count != uint64(st.Delivered) ||
				st.Latency.P99Ms <= 0 || st.Latency.P99Ms > 1000 || st.REST.Count != uint64(st.Sent) {
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
			f.Latency.P99Ms <= 0 || f.Latency.P99Ms > 1000 || f.ByType[evUpdate].Count != uint64(f.Writes) {
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
			f.ByType[evNew].Count == 0 || f.ByType[evUpdate].Count == 0 || f.Latency.P99Ms > 1000 {
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
}

// A target off the loopback interface is refused before anything is sent.
func TestRefusesNonLoopback(t *testing.T) {
	o := Defaults("idle")
	o.Target, o.Stdout = "http://192.0.2.1:8000", &bytes.Buffer{}
	if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("error %v", err)
	}
}

// --spawn starts the real binary on a temporary database and stops it.
func TestSpawn(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the herald binary")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go toolchain to build herald with")
	}
	bin := filepath.Join(t.TempDir(), "herald")
	build := exec.Command(gobin, "build", "-o", bin, "github.com/heraldhq/herald/cmd/herald")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build herald: %v\n%s", err, out)
	}
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

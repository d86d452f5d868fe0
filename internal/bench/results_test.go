package bench

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func sampleLatency(seed int) Latency {
	var h Histogram
	for i := 1; i <= 100; i++ {
		h.Record(time.Duration(i*seed) * time.Microsecond)
	}
	return h.Summary(true)
}

// Everything a run can write comes back unchanged from results.json.
func TestResultsRoundTrip(t *testing.T) {
	o := Defaults("fanout")
	o.Steps, o.Spawn, o.ServeArgs, o.Out = []float64{10, 20.5}, true, []string{"--log-level", "error"}, "out"
	cf := &ConnectFigures{Requested: 10, Connected: 9, Failed: 1, Failures: map[string]int{"http_429": 1}, Errors: []string{"boom"},
		TargetRate: 100, ElapsedS: 0.5, RatePerS: 18, Latency: sampleLatency(3), SnapshotBytes: 4096}
	pf := &ProcessFigures{PID: 42, CPUSecs: 1.5, WallSecs: 3, Cores: 0.5, MaxRSS: 1000}
	now := time.Date(2026, 11, 22, 5, 0, 0, 123456789, time.UTC)
	r := &Results{
		Scenario: "fanout", Command: []string{"herald", "bench", "fanout", "--steps", "10,20.5"}, CommandLine: "herald bench fanout --steps 10,20.5",
		Params: o, Machine: ThisMachine(), HeraldCommit: "abc", BinaryCommit: "def", BinaryModified: true, Target: "http://127.0.0.1:1",
		ServerPID: 7, Spawned: true, StartedAt: now, FinishedAt: now.Add(time.Minute), Error: "stopped", Notes: []string{"a note"},
		Idle: &IdleFigures{CampaignID: 1, Token: true, Connect: cf, RSSBeforeKiB: 1, RSSAfterKiB: 2, RSSClosedKiB: 3, RSSPerConnBytes: 4.5,
			RSSSamplesKiB: []int64{1, 2}, ServerThreads: 9, SettleS: 5, ServerCPU: pf, BenchCPU: pf},
		Fanout: &FanoutFigures{CampaignID: 2, Subscribers: 10, Connect: cf, EventBytes: 300, Best: 0, BestRate: 10, BestDeliveriesPerS: 100,
			CloseCodes: map[string]int{"4000": 2}, Other: 1, Steps: []FanoutStep{{
				TargetRate: 10, DurationS: 30, Planned: 300, Sent: 299, Failed: 1, Skipped: 0, AchievedRate: 9.97, RESTLimited: false,
				MaxSendLagMs: 1.5, Subscribers: 10, Expected: 2990, Delivered: 2990, Latency: sampleLatency(5), REST: sampleLatency(1),
				Pass: true, ServerCPU: pf, BenchCPU: pf, Errors: []string{"x"}, DeliveriesPerS: 99.7, DrainS: 0.01}}},
		Personal: &QuestFigures{Users: 3, SetupS: 1, Connect: cf, TargetRate: 5, Writes: 5, Expected: 5, Received: 5,
			Latency: sampleLatency(2), ByType: map[string]Latency{evUpdate: sampleLatency(2)}, REST: sampleLatency(1), Closed: map[string]int{"0": 1}},
		Apps:     &QuestFigures{Creators: 2, Applicants: 2, Connect: cf, Latency: sampleLatency(7)},
		Resume:   &ResumeFigures{Mode: ResumeReconnect, CampaignID: 3, Connect: cf, Rounds: []ResumeRound{{Clients: 9, AllBackS: 0.25, Connect: cf, ServerCPU: pf}}},
		Timeline: []TimelinePoint{{T: 1, Phase: "step 1", Deliveries: 100, Events: 10, Connects: 0, Conns: 10}},
		Server:   pf, Bench: pf,
	}
	dir := t.TempDir()
	files, err := r.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || filepath.Base(files[0]) != "results.json" {
		t.Fatalf("wrote %v", files)
	}
	got, err := ReadResults(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		a, _ := json.MarshalIndent(got, "", " ")
		b, _ := json.MarshalIndent(r, "", " ")
		t.Fatalf("round trip changed the results:\n%s\nwant\n%s", a, b)
	}
	raw, _ := os.ReadFile(files[0])
	for _, want := range []string{`"command_line": "herald bench fanout --steps 10,20.5"`, `"duration": "30s"`, `"nproc":`, `"p99_ms":`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("results.json lacks %s", want)
		}
	}
}

// Charts are written beside results.json.
func TestResultsWriteCharts(t *testing.T) {
	r := &Results{Scenario: "idle"}
	r.addChart("latency.svg", func(f *os.File) error {
		return WriteHistogramSVG(f, "t", "", sampleLatency(1).Bins, nil)
	})
	dir := filepath.Join(t.TempDir(), "new", "dir")
	files, err := r.Write(dir)
	if err != nil || len(files) != 2 {
		t.Fatalf("files %v, err %v", files, err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "latency.svg"))
	if err != nil {
		t.Fatal(err)
	}
	if bars, _ := svgStats(t, b); bars != len(sampleLatency(1).Bins) {
		t.Fatalf("%d bars", bars)
	}
}

func TestShellQuote(t *testing.T) {
	got := ShellQuote([]string{"/tmp/herald", "bench", "fanout", "--steps", "10,20", "--serve-args", "--log-level error", "it's", ""})
	want := `/tmp/herald bench fanout --steps 10,20 --serve-args '--log-level error' 'it'\''s' ''`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestMachine(t *testing.T) {
	m := ThisMachine()
	if m.NProc < 1 || m.OS == "" || m.Go == "" {
		t.Fatalf("%+v", m)
	}
	if _, err := os.Stat("/proc/meminfo"); err == nil && (m.MemBytes <= 0 || m.Kernel == "") {
		t.Fatalf("memory or kernel missing on Linux: %+v", m)
	}
}

// A step's disconnects are counted by close code, from the counts before
// and after it, and named in its summary line.
func TestStepCloseCodes(t *testing.T) {
	before := map[string]int{"4000": 2, "0": 1}
	now := map[string]int{"4000": 255, "0": 1, "1006": 2}
	got := countsSince(now, before)
	if len(got) != 2 || got["4000"] != 253 || got["1006"] != 2 {
		t.Fatalf("countsSince = %v", got)
	}
	if countsSince(before, before) != nil {
		t.Fatal("no new disconnects should give nil")
	}
	line := stepLine(0, 1, FanoutStep{TargetRate: 700, Disconnects: 255, CloseCodes: got})
	if !strings.Contains(line, "255 subscribers disconnected (close codes 1006: 2, 4000: 253)") {
		t.Fatalf("step line: %s", line)
	}
}

package bench

import (
	"bytes"
	"context"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/realtime/layer/redistest"
	"github.com/heraldhq/herald/internal/testenv"
)

// genRun runs a scenario spawning two processes on PostgreSQL and Redis,
// with its clients in two generator children.
func genRun(t *testing.T, o Options) (*Results, string) {
	t.Helper()
	bin := heraldBinary(t)
	var out bytes.Buffer
	o.Spawn, o.Procs, o.Generators, o.HeraldBin = true, 2, 2, bin
	o.ServeArgs = append(o.ServeArgs, "--db", testenv.Postgres(t), "--layer", redistest.SharedURL(), "--redis-prefix", redistest.Prefix(t))
	o.Stdout, o.Out = &out, t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := Run(ctx, o)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if _, err := ReadResults(filepath.Join(o.Out, "results.json")); err != nil {
		t.Fatal(err)
	}
	for _, pid := range res.ServerPIDs {
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("spawned server %d still running", pid)
		}
	}
	return res, out.String()
}

// Each generator's subscribers get every event, whichever process they
// are on; the children's receipts, latencies and losses add up exactly.
func TestGeneratorsFanout(t *testing.T) {
	t.Parallel()
	o := Defaults("fanout")
	o.Conns, o.Steps, o.Duration, o.Drain = 300, []float64{10}, Duration(2*time.Second), Duration(10*time.Second)
	res, out := genRun(t, o)
	checkConnect(t, res.Fanout.Connect, 300)
	if len(res.Fanout.Steps) != 1 {
		t.Fatalf("steps %+v", res.Fanout.Steps)
	}
	st := res.Fanout.Steps[0]
	if st.Subscribers != 300 || st.Sent < 10 || st.Lost != 0 || st.Duplicates != 0 || st.Delivered != int64(st.Sent)*300 ||
		st.Latency.Count != uint64(st.Delivered) || st.Latency.MaxMs <= 0 {
		t.Errorf("step %+v\n%s", st, out)
	}
	if st.RedisCPU == nil {
		t.Errorf("no Redis CPU figures")
	}
}

// Seeded users in two generators: every application_update reaches its
// own user once, through the parent's matching of forwarded receipts.
func TestGeneratorsPersonalSeeded(t *testing.T) {
	t.Parallel()
	o := Defaults("personal")
	o.Conns, o.Rate, o.Duration, o.Seed = 300, 50, Duration(2*time.Second), true
	res, out := genRun(t, o)
	f := res.Personal
	checkConnect(t, f.Connect, 300)
	if !f.Seeded || f.Writes < 50 || f.Received != int64(f.Writes) || f.Lost != 0 || f.Misrouted != 0 || f.Unexpected != 0 || f.Latency.Count != uint64(f.Writes) {
		t.Errorf("personal %+v\n%s", f, out)
	}
	if f.RedisAfter == nil || f.RedisAfter.PubsubChannels < 300 {
		t.Errorf("redis after connecting %+v: want a channel per user", f.RedisAfter)
	}
}

// A rolling restart under two generators' v2 clients: each process goes
// and comes back, every client is current again after each, and nothing
// posted meanwhile is lost or delivered twice.
func TestGeneratorsIdleRollingRestart(t *testing.T) {
	t.Parallel()
	o := Defaults("idle")
	o.Conns, o.Settle, o.V2, o.Restart, o.Missed, o.Duration = 200, Duration(100*time.Millisecond), true, true, 3, Duration(30*time.Second)
	o.ServeArgs = []string{"--shutdown-grace", "1s"}
	res, out := genRun(t, o)
	f := res.Idle
	checkConnect(t, f.Connect, 200)
	r := f.Restart
	if r == nil || len(r.Steps) != 2 || r.Posted != 2+2*3 {
		t.Fatalf("restart %+v\n%s", r, out)
	}
	for _, st := range r.Steps {
		if st.CurrentS <= 0 || st.BackS <= 0 {
			t.Errorf("restart %+v: not all current again\n%s", st, out)
		}
	}
	if fin := r.Final; fin.Current != 200 || fin.Missing != 0 || fin.Duplicates != 0 || fin.Reconnects < 200 {
		t.Errorf("final %+v\n%s", fin, out)
	}
	if f.RedisBefore == nil || f.RedisAfter == nil {
		t.Errorf("no Redis memory figures: %+v", f)
	}
}

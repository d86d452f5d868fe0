package bench

import (
	"context"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/config"
	"github.com/heraldhq/herald/internal/testenv"
)

// The publish scenario with --watchers, --v2 and two latency rates: each
// watcher receives every event committed, and every protocol v2 subscriber
// every single event of each rate, once.
func TestPublishWatchersV2Steps(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	dsn := testenv.SQLite(t)
	h := testenv.StartHerald(t, dsn, func(c *config.Config) { c.PublicMetrics, c.PublishRate = true, -1 })
	o := Defaults("publish")
	o.Conns, o.Batches, o.Steps, o.Duration, o.Publishers = 10, []int{1, 10}, []float64{20, 40}, Duration(time.Second), 4
	o.Watchers, o.V2 = 2, true
	// A key made as --spawn makes one, on the server's database.
	e := &env{o: o, spawnDB: dsn, runID: "watch"}
	key, err := e.apiKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	o.APIKey = key
	res, out := runTiny(t, h.Base, o, "latency-step1-20ps.svg", "latency-step2-40ps.svg", "throughput.svg")
	f := res.Publish
	if f == nil || len(f.Throughput) != 2 || f.Protocol != "v2" {
		t.Fatalf("figures %+v\n%s", f, out)
	}
	for _, st := range f.Throughput {
		if st.Watchers != 2 || st.Events == 0 || st.Delivered != st.Events || st.DeliveredEventsPerS <= 0 || st.WatcherDisconnects != 0 {
			t.Errorf("batches of %d: %+v\n%s", st.Batch, st, out)
		}
	}
	if len(f.LatencySteps) != 2 || f.Latency != f.LatencySteps[0] {
		t.Fatalf("latency steps %+v\n%s", f.LatencySteps, out)
	}
	for i, l := range f.LatencySteps {
		if l.TargetRate != o.Steps[i] || l.Sent < int(o.Steps[i])/2 || l.Failed != 0 || l.Lost != 0 || l.Duplicates != 0 ||
			l.Delivered != int64(l.Sent)*10 || l.Latency.Count != uint64(l.Delivered) {
			t.Errorf("latency at %g/s: %+v\n%s", o.Steps[i], l, out)
		}
	}
}

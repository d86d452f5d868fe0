package bench

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/apikey"
	"github.com/heraldhq/herald/internal/config"
	"github.com/heraldhq/herald/internal/testenv"
)

// The publish scenario, tiny, against a real herald: every batch size
// publishes, every event is numbered in its answer, and every subscriber
// gets every single event once.
func TestPublishScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	h := testenv.StartHerald(t, testenv.SQLite(t), func(c *config.Config) { c.PublicMetrics, c.PublishRate = true, -1 })
	_, key, err := apikey.New(h.App.Platform().DB(), nil, nil).Create(context.Background(), "bench test", []string{"campaign"})
	if err != nil {
		t.Fatal(err)
	}
	o := Defaults("publish")
	o.Conns, o.Batches, o.Rate, o.Duration, o.Publishers, o.APIKey = 20, []int{1, 10}, 20, Duration(time.Second), 4, key
	res, out := runTiny(t, h.Base, o, "latency.svg", "throughput.svg")
	f := res.Publish
	if f == nil || len(f.Throughput) != 2 {
		t.Fatalf("figures %+v\n%s", f, out)
	}
	for i, st := range f.Throughput {
		if st.Batch != o.Batches[i] || st.Events == 0 || st.Events != (st.Requests-st.Failed)*int64(st.Batch) || st.Failed != 0 ||
			st.Unnumbered != 0 || st.EventsPerS <= 0 || st.REST.Count != uint64(st.Requests) {
			t.Errorf("batches of %d: %+v", o.Batches[i], st)
		}
	}
	if b, _ := json.Marshal(res); strings.Contains(string(b), key) || strings.Contains(out, key) {
		t.Error("the API key is in the results or the output")
	}
	if f.BestEventsPerS <= 0 || f.BestBatch == 0 {
		t.Errorf("best %v at %d", f.BestEventsPerS, f.BestBatch)
	}
	l := f.Latency
	if l == nil {
		t.Fatalf("no latency phase\n%s", out)
	}
	checkConnect(t, l.Connect, 20)
	if l.Sent < 10 || l.Failed != 0 || l.Lost != 0 || l.Duplicates != 0 || l.Delivered != int64(l.Sent)*20 ||
		l.Latency.Count != uint64(l.Delivered) || l.Latency.P99Ms <= 0 || l.REST.Count != uint64(l.Sent) {
		t.Errorf("latency phase: %+v\n%s", l, out)
	}
}

// Batch sizes stay within what one request may carry, and without --spawn
// the scenario needs a key before it starts anything.
func TestPublishOptions(t *testing.T) {
	o := Defaults("publish")
	e := &env{o: o}
	if _, err := e.apiKey(context.Background()); err == nil || !strings.Contains(err.Error(), "--api-key") {
		t.Errorf("no key and no --spawn: %v", err)
	}
	for _, b := range [][]int{{0}, {101}, {1, -1}, nil} {
		o.Batches = b
		if err := o.check(0); err == nil {
			t.Errorf("--batches %v accepted", b)
		}
	}
}

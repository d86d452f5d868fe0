package bench

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/apikey"
	"github.com/heraldhq/herald/internal/config"
	"github.com/heraldhq/herald/internal/testenv"
)

// The writes scenario, tiny, against a real herald: REST comments and
// published events alternate, at a rate and then as fast as answered, and
// every committed write reaches its room's subscriber once, in order, with
// consecutive offsets.
func TestWritesScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	h := testenv.StartHerald(t, testenv.SQLite(t), func(c *config.Config) { c.PublicMetrics, c.PublishRate = true, -1 })
	_, key, err := apikey.New(h.App.Platform().DB(), nil, nil).Create(context.Background(), "bench test", []string{"campaign"})
	if err != nil {
		t.Fatal(err)
	}
	o := Defaults("writes")
	o.Groups, o.Publishers, o.Duration, o.APIKey, o.Steps, o.KeepGoing = 8, 4, Duration(2*time.Second), key, []float64{20, 40}, true
	res, out := runTiny(t, h.Base, o, "latency.svg")
	f := res.Writes
	if f == nil || len(f.Steps) != 2 {
		t.Fatalf("figures %+v\n%s", f, out)
	}
	checkConnect(t, f.Connect, 8)
	for i, st := range f.Steps {
		if st.TargetRate != o.Steps[i] || st.Committed < 8 || st.CommittedREST == 0 || st.CommittedPublish == 0 ||
			st.CommittedREST+st.CommittedPublish != st.Committed || st.Failed != 0 {
			t.Errorf("step %d writes: %+v\n%s", i+1, st, out)
		}
		if st.Received != st.Committed || st.Lost != 0 || st.Duplicates != 0 || st.OutOfOrder != 0 || st.OffsetGaps != 0 || st.Unexpected != 0 ||
			st.Latency.Count != uint64(st.Received) || st.ReceivedPerS <= 0 {
			t.Errorf("step %d receipts: %+v\n%s", i+1, st, out)
		}
	}
	if st := f.Steps[0]; st.CommittedPerS > 30 {
		t.Errorf("step 1 at 20 writes/s committed %.1f/s", st.CommittedPerS)
	}
	if f.Best >= 0 && f.CeilingPerS != f.Steps[f.Best].CommittedPerS {
		t.Errorf("ceiling %v, best step %d", f.CeilingPerS, f.Best)
	}
	// As fast as answered (--rate 0).
	o.Steps, o.Duration = nil, Duration(time.Second)
	res, out = runTiny(t, h.Base, o)
	if f := res.Writes; len(f.Steps) != 1 || f.Steps[0].TargetRate != 0 || f.Steps[0].Committed < 8 || f.Steps[0].Lost != 0 || f.Steps[0].RESTLimited {
		t.Errorf("as fast as answered: %+v\n%s", f, out)
	}
}

// The writes scenario's options: a room per writer at least, and a known
// way of writing.
func TestWritesOptions(t *testing.T) {
	o := Defaults("writes")
	if err := o.check(0); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	o.Groups = o.Publishers - 1
	if err := o.check(0); err == nil || !strings.Contains(err.Error(), "--groups") {
		t.Errorf("fewer rooms than writers: %v", err)
	}
	o = Defaults("writes")
	o.Via = "grpc"
	if err := o.check(0); err == nil || !strings.Contains(err.Error(), "--via") {
		t.Errorf("--via grpc: %v", err)
	}
}

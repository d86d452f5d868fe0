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
// published events alternate, and every committed write reaches its room's
// subscriber once, in order, with consecutive offsets.
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
	o.Groups, o.Publishers, o.Duration, o.APIKey = 8, 4, Duration(time.Second), key
	res, out := runTiny(t, h.Base, o, "latency.svg")
	f := res.Writes
	if f == nil {
		t.Fatalf("no figures\n%s", out)
	}
	checkConnect(t, f.Connect, 8)
	if f.Committed < 8 || f.CommittedREST == 0 || f.CommittedPublish == 0 || f.CommittedREST+f.CommittedPublish != f.Committed || f.Failed != 0 {
		t.Errorf("writes: %+v\n%s", f, out)
	}
	if f.Received != f.Committed || f.Lost != 0 || f.Duplicates != 0 || f.OutOfOrder != 0 || f.OffsetGaps != 0 || f.Unexpected != 0 ||
		f.Latency.Count != uint64(f.Received) || f.CeilingPerS <= 0 || f.CeilingPerS > f.CommittedPerS {
		t.Errorf("receipts: %+v\n%s", f, out)
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

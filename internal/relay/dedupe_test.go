package relay

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/realtime"
	"github.com/heraldhq/herald/internal/realtime/layer"
	"github.com/heraldhq/herald/internal/realtime/layer/redistest"
)

// An outbox row published twice (its relay died before marking it) reaches
// the Redis layer once: it comes with its number, which the layer has.
func TestRepublishedRowIsPublishedOnce(t *testing.T) {
	ctx := context.Background()
	hub, err := realtime.NewHub(realtime.HubOptions{Logger: slog.New(slog.DiscardHandler)}, func(d func(layer.Message)) (layer.Layer, error) {
		return layer.NewRedis(ctx, redistest.SharedURL(), d, layer.RedisOptions{Prefix: redistest.Prefix(t)})
	})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	r := New(nil, hub, Options{})
	evs := []event{
		{id: 41, group: "campaign_9", typ: "comment", data: `{"id":1}`, created: time.Now(), epoch: "e", offset: 1},
		{id: 42, group: "campaign_9", typ: "comment", data: `{"id":2}`, created: time.Now(), epoch: "e", offset: 2},
	}
	for round := 0; round < 2; round++ {
		if n, err := r.publish(ctx, evs); err != nil || n != 2 {
			t.Fatalf("round %d: %d published, %v", round, n, err)
		}
	}
	off, epoch, err := hub.Layer().Position(ctx, "campaign_9")
	if err != nil || off != 2 || epoch != "e" {
		t.Fatalf("group at offset %d of %q (%v); want 2 of e", off, epoch, err)
	}
	if st := hub.Layer().(*layer.Redis).Stats(); st.Published != 2 {
		t.Fatalf("%d events published; want 2: the second round published again", st.Published)
	}
}

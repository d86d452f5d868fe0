package relay_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/relay"
	"github.com/heraldhq/herald/internal/testenv"
)

// Numbered is told of every event of a round, by its outbox id, with the
// position the outbox then holds and before the publisher gets it; a round
// that fails to publish tells the same numbers again with its retry.
func TestNumberedTellsEachEventsPosition(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		a := newApp(t, dsn)
		ctx := context.Background()
		recs, err := a.Platform().RecordExternalBatch(ctx, []platform.ExternalEvent{
			{Group: "campaign_1", Type: "a", Data: []byte(`{}`)}, {Group: "quest_2", Type: "b", Data: []byte(`{}`)},
			{Group: "campaign_1", Type: "c", Data: []byte(`{}`)},
		})
		if err != nil {
			t.Fatal(err)
		}
		told := map[int64]string{}
		pub := &recorder{}
		tell := func(id int64, group, epoch string, offset int64) {
			if pub.count() != 0 {
				t.Errorf("event %d told after the publisher got events", id)
			}
			told[id] = fmt.Sprintf("%s:%s:%d", group, epoch, offset)
		}
		if _, err := relay.New(a.Platform().DB(), failing{}, relay.Options{Numbered: tell}).Round(ctx); err == nil {
			t.Fatal("a failing publisher's round succeeded")
		}
		first := fmt.Sprint(told)
		clear(told)
		if _, err := relay.New(a.Platform().DB(), pub, relay.Options{Numbered: tell}).Round(ctx); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(told) != first {
			t.Errorf("the retry told %v, the failed round %v", told, first)
		}
		ids := make([]int64, len(recs))
		for i, r := range recs {
			ids[i] = r.ID
		}
		got, err := a.Platform().Positions(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range recs {
			p := got[r.ID]
			if want := fmt.Sprintf("%s:%s:%d", p.Group, p.Epoch, p.Offset); p.Epoch == "" || told[r.ID] != want {
				t.Errorf("event %d: told %q, the outbox holds %q", i, told[r.ID], want)
			}
		}
		if told[recs[0].ID] == told[recs[2].ID] || got[recs[2].ID].Offset != got[recs[0].ID].Offset+1 {
			t.Errorf("campaign_1's events: %v", told)
		}
	})
}

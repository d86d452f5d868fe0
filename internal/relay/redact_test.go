package relay_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/eventlog"
	"github.com/heraldhq/herald/internal/money"
	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/realtime/layer"
	"github.com/heraldhq/herald/internal/relay"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/testenv"
)

// layerPublisher publishes a relay's rounds to a layer one message at a
// time; before the first round it runs before, once.
type layerPublisher struct {
	l      layer.Layer
	once   sync.Once
	before func()
}

func (p *layerPublisher) PublishBatch(ctx context.Context, msgs []layer.Message, _ []string) ([]uint64, error) {
	p.once.Do(p.before)
	offs := make([]uint64, 0, len(msgs))
	for _, m := range msgs {
		off, err := p.l.Publish(ctx, m)
		if err != nil {
			return offs, err
		}
		offs = append(offs, off)
	}
	return offs, nil
}

// A comment removed while the relay publishes it (its round read the
// comment before the removal committed) reaches the layer's window with
// its text; the removal, published in the next round, drops that window,
// and the log the replay then reads holds the removal at the comment's
// position.
func TestRemovalRacingTheRelay(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		db, err := store.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		if _, err := db.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		p, err := platform.New(db, platform.Options{Hasher: auth.Hasher{Params: testenv.CheapPasswords}})
		if err != nil {
			t.Fatal(err)
		}
		u, err := p.Register(ctx, platform.Registration{Username: "author", Password: "a fine password"})
		if err != nil {
			t.Fatal(err)
		}
		title, active, goal := "Raced", platform.CampaignActive, money.Cents(1000)
		c, err := p.CreateCampaign(ctx, u.ID, platform.CampaignInput{Title: &title, GoalAmount: &goal, Status: &active})
		if err != nil {
			t.Fatal(err)
		}
		text := "raced s3cret"
		com, err := p.PostComment(ctx, u.ID, c.ID, platform.CommentInput{Content: &text})
		if err != nil {
			t.Fatal(err)
		}
		mem := layer.NewMemory(func(layer.Message) {}, layer.MemoryOptions{
			Log:     eventlog.New(db, eventlog.Options{}),
			Logger:  slog.New(slog.DiscardHandler),
			Redacts: func(m layer.Message) bool { return m.Type == platform.EventCommentRemoved },
		})
		defer mem.Close()
		pub := &layerPublisher{l: mem, before: func() {
			if err := p.DeleteComment(ctx, u.ID, c.ID, com.ID); err != nil {
				t.Error(err)
			}
		}}
		r := relay.New(db, pub, relay.Options{Batch: 1, Logger: slog.New(slog.DiscardHandler)})
		if n, err := r.Round(ctx); err != nil || n != 1 {
			t.Fatalf("first round: %d %v", n, err)
		}
		group := platform.CampaignGroup(c.ID)
		msgs, ok, err := mem.History(ctx, group, 0, "")
		if err != nil || !ok || len(msgs) != 1 || !strings.Contains(string(msgs[0].Data), "s3cret") {
			t.Fatalf("before the removal is published the window holds %v (%v %v); want the comment as the round read it", msgs, ok, err)
		}
		if err := r.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		msgs, ok, err = mem.History(ctx, group, 0, "")
		if err != nil || !ok || len(msgs) != 2 {
			t.Fatalf("after the removal: %v %v %v; want its two events", msgs, ok, err)
		}
		for i, m := range msgs {
			if m.Type != platform.EventCommentRemoved || strings.Contains(string(m.Data), "s3cret") || m.Offset != uint64(i+1) {
				t.Errorf("replayed %d: %s at %d %s; want comment_removed at %d", i, m.Type, m.Offset, m.Data, i+1)
			}
		}
	})
}

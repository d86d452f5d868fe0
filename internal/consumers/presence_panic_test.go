package consumers

import (
	"bytes"
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/panics"
	"github.com/heraldhq/herald/internal/realtime"
	"github.com/heraldhq/herald/internal/realtime/layer"
)

// panickyPresence is an in-memory layer counting presence across
// processes, whose first count panics.
type panickyPresence struct {
	*layer.Memory
	armed atomic.Bool
}

func (l *panickyPresence) Presence(_ context.Context, _ string, local int) (int, error) {
	if l.armed.CompareAndSwap(true, false) {
		panic("presence count failed")
	}
	return local, nil
}

type quietTransport struct{}

func (quietTransport) Wake() {}

// A presence tick that panics is counted and the loop goes on: a later
// tick sends the room its count.
func TestPresencePanic(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	hub, err := realtime.NewHub(realtime.HubOptions{Logger: log}, func(deliver func(layer.Message)) (layer.Layer, error) {
		l := &panickyPresence{Memory: layer.NewMemory(deliver, layer.MemoryOptions{})}
		l.armed.Store(true)
		return l, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	var counted atomic.Int64
	c := New(Config{Hub: hub, Logger: log, OnPanic: func(where string) {
		if where == panics.Presence {
			counted.Add(1)
		}
	}})
	link := hub.Attach(realtime.ConnConfig{Version: 2}, quietTransport{})
	if err := hub.Join(ctx, link.Conn(), "campaign_1"); err != nil {
		t.Fatal(err)
	}
	c.presence.watch("campaign_1")
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(rctx)
	}()
	defer func() { cancel(); <-done }()
	sent := false
	for deadline := time.Now().Add(10 * time.Second); !sent; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no presence count was sent after the tick that panicked")
		}
		for b := link.Take(); b != nil; b = link.Take() {
			for _, f := range b.Frames {
				sent = sent || bytes.Contains(f, []byte(`"type":"presence"`))
			}
			link.Release(b)
		}
	}
	if n := counted.Load(); n != 1 {
		t.Fatalf("%d presence panics counted, want 1", n)
	}
}

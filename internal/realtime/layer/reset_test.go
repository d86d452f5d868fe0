package layer

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/realtime/layer/redistest"
)

// A reset starts a group's history over: subscribers receive it in order at
// offset 0 of a new epoch, no position from before it can be resumed, and
// the next event is offset 1 of the new epoch.
func TestReset(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		s := newSink()
		m := NewMemory(s.handle, MemoryOptions{})
		t.Cleanup(func() { m.Close() })
		testReset(t, m, s)
	})
	t.Run("redis", func(t *testing.T) {
		s := newSink()
		r := newTestRedis(t, redistest.SharedURL(), s, RedisOptions{Prefix: redistest.Prefix(t)})
		testReset(t, r, s)
		if lost := s.lostGroups(); len(lost) != 0 {
			t.Fatalf("a reset was taken for lost events: OnLost(%v)", lost)
		}
	})
}

func testReset(t *testing.T, l Layer, s *sink) {
	ctx := context.Background()
	if err := l.Subscribe(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := l.Publish(ctx, Message{Group: "g", Type: "t", Data: fmt.Appendf(nil, `"draft %d"`, i)}); err != nil {
			t.Fatal(err)
		}
	}
	old := s.wait(t, "g", 3, 5*time.Second)
	checkOffsets(t, "before the reset", old, 1)
	off, err := l.Publish(WithPublishKey(ctx, "outbox:7"), Message{Group: "g", Type: TypeReset, Data: []byte(`{}`)})
	if err != nil || off != 0 {
		t.Fatalf("publish a reset: offset %d, %v; want 0", off, err)
	}
	reset := s.wait(t, "g", 4, 5*time.Second)[3]
	if reset.Type != TypeReset || reset.Offset != 0 || reset.Epoch == "" || reset.Epoch == old[0].Epoch {
		t.Fatalf("delivered %+v; want the reset at offset 0 of a new epoch (the old one was %q)", reset, old[0].Epoch)
	}
	epoch := reset.Epoch
	if off, e, err := l.Position(ctx, "g"); err != nil || off != 0 || e != epoch {
		t.Fatalf("position after the reset: %d %q, %v; want 0 %q", off, e, err, epoch)
	}
	for _, since := range []uint64{0, 2, 3} {
		if msgs, ok, err := l.History(ctx, "g", since, old[0].Epoch); err != nil || ok || len(msgs) != 0 {
			t.Fatalf("history after %d of the old epoch: %d messages, %v, %v; want none, false", since, len(msgs), ok, err)
		}
	}
	for _, e := range []string{"", epoch} {
		if msgs, ok, err := l.History(ctx, "g", 0, e); err != nil || !ok || len(msgs) != 0 {
			t.Fatalf("history from the start (epoch %q): %d messages, %v, %v; want none, true", e, len(msgs), ok, err)
		}
	}

	if off, err := l.Publish(ctx, Message{Group: "g", Type: "t", Data: []byte(`"public"`)}); err != nil || off != 1 {
		t.Fatalf("first event after the reset: offset %d, %v; want 1", off, err)
	}
	first := s.wait(t, "g", 5, 5*time.Second)[4]
	if first.Offset != 1 || first.Epoch != epoch {
		t.Fatalf("delivered %+v; want offset 1 of %q", first, epoch)
	}
	msgs, ok, err := l.History(ctx, "g", 0, "")
	if err != nil || !ok || len(msgs) != 1 || string(msgs[0].Data) != `"public"` {
		t.Fatalf("history from the start: %+v, %v, %v; want only the event after the reset", msgs, ok, err)
	}

	// The relay publishes a row again if it could not delete it: a layer
	// that keeps publish keys does not start over a second time.
	if _, ok := l.(*Redis); ok {
		if _, err := l.Publish(WithPublishKey(ctx, "outbox:7"), Message{Group: "g", Type: TypeReset, Data: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
		if off, e, err := l.Position(ctx, "g"); err != nil || off != 1 || e != epoch {
			t.Fatalf("after the same reset again: position %d %q, %v; want 1 %q", off, e, err, epoch)
		}
	}
}

// Sync returns a position that includes every event published before the
// call, on any process, once this process has delivered them: Position,
// which answers from what the subscription delivered, may lag behind.
func TestRedisSync(t *testing.T) {
	ctx := context.Background()
	prefix := redistest.Prefix(t)
	sa := newSink()
	a := newTestRedis(t, redistest.SharedURL(), sa, RedisOptions{Prefix: prefix})
	b := newTestRedis(t, redistest.SharedURL(), newSink(), RedisOptions{Prefix: prefix})
	if err := a.Subscribe(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	const n = 500
	msgs := make([]Message, n)
	keys := make([]string, n)
	for i := range msgs {
		msgs[i] = Message{Group: "g", Type: "t", Data: fmt.Appendf(nil, `%d`, i)}
	}
	msgs[n/2] = Message{Group: "g", Type: TypeReset, Data: []byte(`{}`)}
	if _, err := b.PublishBatch(ctx, msgs, keys); err != nil {
		t.Fatal(err)
	}
	p, err := a.Sync(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	off, epoch, err := b.readPosition(ctx, "g")
	if err != nil || p.Offset != off || p.Epoch != epoch || off != n-n/2-1 {
		t.Fatalf("synced at %+v; redis stands at %d %q (%v); want %d events after the reset", p, off, epoch, err, n-n/2-1)
	}
	if got := sa.get("g"); len(got) != n || got[n-1].Offset != off || got[n-1].Epoch != epoch {
		t.Fatalf("synced with %d events delivered; want all %d", len(got), n)
	}
}

package layer

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/realtime/layer/redistest"
)

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRedisSubscriberCatchesUpAfterItsConnectionDrops(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	sa, sb := newSink(), newSink()
	a := newTestRedis(t, srv.URL(), sa, RedisOptions{})
	b := newTestRedis(t, srv.URL(), sb, RedisOptions{})
	for _, g := range []string{"g", "h"} {
		if err := b.Subscribe(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	publishN(t, a, "g", 5)
	sb.wait(t, "g", 5, 30*time.Second)
	admin := srv.Client()
	for round := range 5 {
		// Redis drops b's subscriber connection; a keeps publishing.
		if err := admin.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
			t.Fatal(err)
		}
		publishN(t, a, "g", 40)
		publishN(t, a, "h", 3)
		want := 5 + 40*(round+1)
		got := sb.wait(t, "g", want, 30*time.Second)
		checkOffsets(t, "g", got, 1)
		checkOffsets(t, "h", sb.wait(t, "h", 3*(round+1), 30*time.Second), 1)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(sb.get("g")); n != 205 {
		t.Fatalf("g: %d messages, want 205 (duplicates?)", n)
	}
	st := b.Stats()
	if st.Reconnects < 5 || st.Lost != 0 || len(sb.lostGroups()) != 0 {
		t.Fatalf("stats = %+v, want ≥5 reconnects and nothing lost", st)
	}
	t.Logf("stats after 5 dropped connections: %+v", st)
}

func TestRedisRestartWithPersistenceLosesNothing(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	sa, sb := newSink(), newSink()
	a := newTestRedis(t, srv.URL(), sa, RedisOptions{})
	b := newTestRedis(t, srv.URL(), sb, RedisOptions{})
	if err := b.Subscribe(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	publishN(t, a, "g", 10)
	sb.wait(t, "g", 10, 30*time.Second)

	srv.Kill()
	if _, err := a.Publish(ctx, Message{Group: "g", Type: "t", Data: []byte(`0`)}); err == nil {
		t.Fatal("publish succeeded with Redis down")
	}
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	if err := b.Ping(pctx); err == nil {
		t.Fatal("ping succeeded with Redis down")
	}
	cancel()
	if err := b.Subscribe(ctx, "other"); err == nil {
		t.Fatal("subscribe succeeded with Redis down")
	}
	time.Sleep(time.Second)
	srv.Restart()

	// The relay retries until the layer takes the event.
	waitFor(t, "publish after the restart", 30*time.Second, func() bool {
		_, err := a.Publish(ctx, Message{Group: "g", Type: "t", Data: []byte(`11`)})
		return err == nil
	})
	publishN(t, a, "g", 9)
	got := sb.wait(t, "g", 20, 30*time.Second)
	checkOffsets(t, "across the restart", got, 1)
	waitFor(t, "ping after the restart", 30*time.Second, func() bool { return b.Ping(ctx) == nil })
	if l := sb.lostGroups(); len(l) != 0 {
		t.Fatalf("OnLost %v after a restart that kept the data", l)
	}
	if err := b.Subscribe(ctx, "other"); err != nil {
		t.Fatalf("subscribe after the restart: %v", err)
	}
}

func TestRedisRestartWithoutPersistenceReportsTheLoss(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t) // no persistence: a restart empties it
	sa, sb := newSink(), newSink()
	a := newTestRedis(t, srv.URL(), sa, RedisOptions{})
	b := newTestRedis(t, srv.URL(), sb, RedisOptions{})
	for _, g := range []string{"g", "quiet"} {
		if err := b.Subscribe(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	publishN(t, a, "g", 4)
	before := sb.wait(t, "g", 4, 30*time.Second)
	srv.Restart()
	waitFor(t, "OnLost for g", 30*time.Second, func() bool { return slices.Contains(sb.lostGroups(), "g") })
	// "quiet" had no events: nothing of it can have been lost.
	if l := sb.lostGroups(); !slices.Equal(l, []string{"g"}) {
		t.Fatalf("OnLost calls = %v, want [g]", l)
	}
	waitFor(t, "publish after the restart", 30*time.Second, func() bool {
		_, err := a.Publish(ctx, Message{Group: "g", Type: "t", Data: []byte(`1`)})
		return err == nil
	})
	got := sb.wait(t, "g", 5, 30*time.Second)
	if got[4].Offset != 1 || got[4].Epoch == before[0].Epoch {
		t.Fatalf("first event after the loss: %+v, want offset 1 in a new epoch", got[4])
	}
	if _, ok, _ := a.History(ctx, "g", 4, before[0].Epoch); ok {
		t.Fatal("a position of the lost epoch resumed")
	}
}

func TestRedisUnansweringServerIsDetected(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	sa, sb := newSink(), newSink()
	a := newTestRedis(t, srv.URL(), sa, RedisOptions{})
	b := newTestRedis(t, srv.URL(), sb, RedisOptions{PingInterval: 200 * time.Millisecond, PingTimeout: 500 * time.Millisecond})
	if err := b.Subscribe(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	publishN(t, a, "g", 3)
	sb.wait(t, "g", 3, 30*time.Second)
	srv.Pause()
	waitFor(t, "the subscriber to notice", 30*time.Second, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return !b.nodes[""].up()
	})
	srv.Resume()
	publishN(t, a, "g", 3)
	got := sb.wait(t, "g", 6, 30*time.Second)
	checkOffsets(t, "after the pause", got, 1)
	if st := b.Stats(); st.Reconnects < 1 || st.Lost != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

// A subscriber connection that drops after a new group's position was read
// and before the group was settled: the group is confirmed again on the new
// connection, and what was published in between is caught up without
// waiting for the group's next event.
func TestRedisSubscriberDropsWhileConfirming(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	sa, sb := newSink(), newSink()
	a := newTestRedis(t, srv.URL(), sa, RedisOptions{})
	b := newTestRedis(t, srv.URL(), sb, RedisOptions{})
	publishN(t, a, "g", 2)
	admin := srv.Client()
	var once sync.Once
	b.testAfterPositions = func(subs []*rsub) {
		once.Do(func() {
			s := subs[0]
			if err := admin.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
				t.Error(err)
				return
			}
			publishN(t, a, "g", 3) // 3–5: after the position, on no connection of b
			waitFor(t, "the group confirmed again", 30*time.Second, func() bool {
				s.mu.Lock()
				defer s.mu.Unlock()
				return s.reacked
			})
		})
	}
	if err := b.Subscribe(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	got := sb.wait(t, "g", 3, 30*time.Second)
	checkOffsets(t, "g", got, 3)
	time.Sleep(100 * time.Millisecond)
	if n := len(sb.get("g")); n != 3 {
		t.Fatalf("g: %d messages, want 3 (offsets %v)", n, offsets(sb.get("g")))
	}
}

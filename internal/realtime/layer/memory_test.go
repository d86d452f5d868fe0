package layer

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func newClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func TestMemoryDeliversSubscribedGroupsOnly(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	var got []Message
	m := NewMemory(func(msg Message) {
		mu.Lock()
		got = append(got, msg)
		mu.Unlock()
	}, MemoryOptions{})
	defer m.Close()

	if err := m.Subscribe(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	for _, g := range []string{"a", "b", "a"} {
		if _, err := m.Publish(ctx, Message{Group: g, Type: "t", Data: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Unsubscribe(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Publish(ctx, Message{Group: "a", Type: "t", Data: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 {
		t.Fatalf(
			"got %d messages, want 2: %+v",
			len(got), got)
	}
	for i, msg := range got {
		if msg.Group != "a" || msg.Offset != uint64(i+1) || msg.Epoch == "" {
			t.Errorf(
				"message %d = %+v",
				i, msg)
		}
	}
}

func TestMemoryOffsetsGapFreeUnderConcurrentPublishers(t *testing.T) {
	ctx := context.Background()
	const publishers, perPublisher = 8, 500
	groups := []string{"g0", "g1", "g2"}
	var mu sync.Mutex
	delivered := map[string][]uint64{}
	m := NewMemory(func(msg Message) {
		mu.Lock()
		delivered[msg.Group] = append(delivered[msg.Group], msg.Offset)
		mu.Unlock()
	}, MemoryOptions{HistorySize: 10000})
	defer m.Close()
	for _, g := range groups {
		if err := m.Subscribe(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perPublisher {
				g := groups[(p+i)%len(groups)]
				if _, err := m.Publish(ctx, Message{Group: g, Type: "t", Data: []byte(`1`)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	total := 0
	for _, g := range groups {
		offs := delivered[g]
		total += len(offs)
		for i, off := range offs {
			if off != uint64(i+1) {
				t.Fatalf(
					"group %s: delivery %d has offset %d (delivery order must follow offsets, without gaps)",
					g, i, off)
			}
		}
		msgs, ok, err := m.History(ctx, g, 0, "")
		if err != nil || !ok || len(msgs) != len(offs) {
			t.Fatalf(
				"history of %s: %d msgs, ok=%v, err=%v; want %d",
				g, len(msgs), ok, err, len(offs))
		}
	}
	if total != publishers*perPublisher {
		t.Fatalf(
			"delivered %d, want %d",
			total, publishers*perPublisher)
	}
}

func TestMemoryHistoryCountWindow(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(func(Message) {}, MemoryOptions{HistorySize: 5})
	defer m.Close()
	var epoch string
	for i := 1; i <= 12; i++ {
		if _, err := m.Publish(ctx, Message{Group: "g", Type: "t", Data: fmt.Appendf(nil, "%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	msgs, ok, _ := m.History(ctx, "g", 11, "")
	if ok {
		t.Fatal("empty epoch with since > 0 must not be accepted")
	}
	// Learn the epoch through a message inside the window.
	msgs, ok, _ = m.History(ctx, "g", 11, epochOf(t, m, "g"))
	if !ok || len(msgs) != 1 || msgs[0].Offset != 12 || string(msgs[0].Data) != "12" {
		t.Fatalf(
			"since 11: ok=%v msgs=%+v",
			ok, msgs)
	}
	epoch = msgs[0].Epoch
	cases := []struct {
		since uint64
		epoch string
		ok    bool
		n     int
	}{
		{
			since: 12,
			epoch: epoch,
			ok:    true,
			n:     0,
		},
		{
			since: 7,
			epoch: epoch,
			ok:    true,
			n:     5,
		},
		{
			since: 6,
			epoch: epoch,
			ok:    false,
		},
		{
			since: 0,
			epoch: "",
			ok:    false,
		},
		{
			since: 13,
			epoch: epoch,
			ok:    false,
		},
		{
			since: 10,
			epoch: "other",
			ok:    false,
		},
	}
	for _, c := range cases {
		msgs, ok, err := m.History(ctx, "g", c.since, c.epoch)
		if err != nil || ok != c.ok || len(msgs) != c.n {
			t.Errorf(
				"History(since=%d, epoch=%q) = %d msgs, ok=%v, err=%v; want %d, %v",
				c.since, c.epoch, len(msgs), ok, err, c.n, c.ok)
		}
		for i, msg := range msgs {
			if msg.Offset != c.since+uint64(i)+1 {
				t.Errorf(
					"History(since=%d)[%d].Offset = %d",
					c.since, i, msg.Offset)
			}
		}
	}
}

func epochOf(t *testing.T, m *Memory, group string) string {
	t.Helper()
	g := m.group(group, false)
	if g == nil {
		t.Fatalf(
			"no group %q",
			group)
	}
	defer g.mu.Unlock()
	return g.epoch
}

func TestMemoryHistoryAgeWindow(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	m := NewMemory(func(Message) {}, MemoryOptions{HistoryAge: time.Minute, Now: clk.now, SweepInterval: time.Hour})
	defer m.Close()
	for range 3 {
		if _, err := m.Publish(ctx, Message{Group: "g", Type: "t", Data: []byte(`1`)}); err != nil {
			t.Fatal(err)
		}
	}
	clk.advance(40 * time.Second)
	for range 2 {
		if _, err := m.Publish(ctx, Message{Group: "g", Type: "t", Data: []byte(`2`)}); err != nil {
			t.Fatal(err)
		}
	}
	epoch := epochOf(t, m, "g")
	if msgs, ok, _ := m.History(ctx, "g", 0, ""); !ok || len(msgs) != 5 {
		t.Fatalf(
			"before expiry: ok=%v n=%d",
			ok, len(msgs))
	}
	clk.advance(30 * time.Second) // first three are now 70 s old
	if _, ok, _ := m.History(ctx, "g", 2, epoch); ok {
		t.Fatal("offset 3 expired, since=2 must be outside the window")
	}
	msgs, ok, _ := m.History(ctx, "g", 3, epoch)
	if !ok || len(msgs) != 2 || msgs[0].Offset != 4 {
		t.Fatalf(
			"since=3 after expiry: ok=%v msgs=%+v",
			ok, msgs)
	}
	clk.advance(time.Minute)
	if msgs, ok, _ := m.History(ctx, "g", 5, epoch); !ok || len(msgs) != 0 {
		t.Fatalf(
			"up to date client after full expiry: ok=%v n=%d",
			ok, len(msgs))
	}
	// An idle, unsubscribed group with an empty window is forgotten; when it
	// comes back it has a new epoch and offsets start again at 1.
	m.sweep()
	if n := m.groupCount(); n != 0 {
		t.Fatalf(
			"groups after sweep = %d, want 0",
			n)
	}
	off, err := m.Publish(ctx, Message{Group: "g", Type: "t", Data: []byte(`3`)})
	if err != nil || off != 1 {
		t.Fatalf(
			"publish after sweep: offset %d, err %v",
			off, err)
	}
	if e := epochOf(t, m, "g"); e == epoch {
		t.Fatal("recreated group kept its old epoch")
	}
	if _, ok, _ := m.History(ctx, "g", 5, epoch); ok {
		t.Fatal("old epoch accepted after history loss")
	}
}

func TestMemorySweepKeepsSubscribedGroups(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(func(Message) {}, MemoryOptions{HistorySize: -1})
	defer m.Close()
	if err := m.Subscribe(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Publish(ctx, Message{Group: "g", Type: "t", Data: []byte(`1`)}); err != nil {
		t.Fatal(err)
	}
	m.sweep()
	off, _ := m.Publish(ctx, Message{Group: "g", Type: "t", Data: []byte(`1`)})
	if off != 2 {
		t.Fatalf(
			"offset = %d, want 2 (subscribed group must keep its counter)",
			off)
	}
}

func TestMemoryClosed(t *testing.T) {
	m := NewMemory(func(Message) {}, MemoryOptions{})
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Publish(context.Background(), Message{Group: "g"}); err != ErrClosed {
		t.Fatalf(
			"Publish after Close: %v",
			err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkMemoryPublish(b *testing.B) {
	ctx := context.Background()
	m := NewMemory(func(Message) {}, MemoryOptions{})
	defer m.Close()
	_ = m.Subscribe(ctx, "g")
	data := []byte(`{"id":1}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Publish(ctx, Message{Group: "g", Type: "t", Data: data}); err != nil {
			b.Fatal(err)
		}
	}
}

// testWindow gives group "a" a window of 3 events and a minute, "b" of
// 1000 events and an hour, "c" a nonsensical 0 events (kept as 1) and
// "d" a minute; other groups get the defaults.
func testWindow(group string) (int, time.Duration) {
	switch group {
	case "a":
		return 3, time.Minute
	case "b":
		return 1000, time.Hour
	case "c":
		return 0, time.Hour
	case "d":
		return 1000, time.Minute
	}
	return DefaultHistorySize, DefaultHistoryAge
}

// Each group keeps its own window, by count and by age.
func TestMemoryWindowPerGroup(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	m := NewMemory(func(Message) {}, MemoryOptions{Window: testWindow, Now: clk.now, SweepInterval: time.Hour})
	defer m.Close()
	for _, g := range []string{"a", "b", "c"} {
		for i := range 10 {
			if _, err := m.Publish(ctx, Message{Group: g, Type: "t", Data: fmt.Appendf(nil, "%d", i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	ea, eb, ec := epochOf(t, m, "a"), epochOf(t, m, "b"), epochOf(t, m, "c")
	for _, c := range []struct {
		group, epoch string
		since        uint64
		ok           bool
		n            int
	}{
		{"a", ea, 7, true, 3},
		{"a", ea, 6, false, 0},
		{"a", "", 0, false, 0},
		{"b", "", 0, true, 10},
		{"b", eb, 1, true, 9},
		{"c", ec, 9, true, 1},
		{"c", ec, 8, false, 0},
	} {
		msgs, ok, err := m.History(ctx, c.group, c.since, c.epoch)
		if err != nil || ok != c.ok || len(msgs) != c.n {
			t.Errorf("History(%s, %d) = %d events, ok=%v, err=%v; want %d, %v", c.group, c.since, len(msgs), ok, err, c.n, c.ok)
		}
	}

	// By age: "d" keeps a minute, "b" an hour.
	for range 2 {
		for _, g := range []string{"b", "d"} {
			if _, err := m.Publish(ctx, Message{Group: g, Type: "t", Data: []byte(`1`)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	ed := epochOf(t, m, "d")
	clk.advance(30 * time.Second)
	if msgs, ok, _ := m.History(ctx, "d", 0, ""); !ok || len(msgs) != 2 {
		t.Fatalf("d after 30 s: %d events, ok=%v; want both", len(msgs), ok)
	}
	clk.advance(time.Minute)
	if _, ok, _ := m.History(ctx, "d", 1, ed); ok {
		t.Fatal("d's events are 90 s old and were still served with a window of a minute")
	}
	if msgs, ok, _ := m.History(ctx, "d", 2, ed); !ok || len(msgs) != 0 {
		t.Fatalf("a client that saw all of d: %d events, ok=%v", len(msgs), ok)
	}
	if msgs, ok, _ := m.History(ctx, "b", 0, ""); !ok || len(msgs) != 12 {
		t.Fatalf("b after 90 s: %d events, ok=%v; want its 12", len(msgs), ok)
	}
	// The sweep drops each group's aged events by its own age: a and d
	// (a minute) are emptied and forgotten, b and c (an hour) stay.
	m.sweep()
	if n := m.groupCount(); n != 2 {
		t.Fatalf("groups after the sweep = %d, want 2 (b and c)", n)
	}
	if msgs, ok, _ := m.History(ctx, "b", 0, ""); !ok || len(msgs) != 12 {
		t.Fatalf("b after the sweep: %d events, ok=%v; want its 12", len(msgs), ok)
	}
}

package realtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/heraldhq/herald/internal/realtime/layer"
)

// nopTransport counts wakes; tests drain the queue themselves.
type nopTransport struct{ wakes atomic.Int64 }

func (t *nopTransport) Wake() { t.wakes.Add(1) }

// recLayer wraps a memory layer and records subscription changes.
type recLayer struct {
	*layer.Memory
	mu  sync.Mutex
	ops []string
}

func (l *recLayer) Subscribe(ctx context.Context, g string) error {
	l.mu.Lock()
	l.ops = append(l.ops, "sub "+g)
	l.mu.Unlock()
	return l.Memory.Subscribe(ctx, g)
}

func (l *recLayer) Unsubscribe(ctx context.Context, g string) error {
	l.mu.Lock()
	l.ops = append(l.ops, "unsub "+g)
	l.mu.Unlock()
	return l.Memory.Unsubscribe(ctx, g)
}

func newTestHub(t testing.TB, opts HubOptions) (*Hub, *recLayer) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	var rl *recLayer
	h, err := NewHub(opts, func(deliver func(layer.Message)) (layer.Layer, error) {
		rl = &recLayer{Memory: layer.NewMemory(deliver, layer.MemoryOptions{})}
		return rl, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h, rl
}

// payloads drains c and returns the text payloads of its frames.
func payloads(t testing.TB, c *Conn) []string {
	t.Helper()
	l := Link{c: c}
	var out []string
	for b := l.Take(); b != nil; b = l.Take() {
		for _, f := range b.Frames {
			fr, err := ws.ReadFrame(bytes.NewReader(f))
			if err != nil {
				t.Fatal(err)
			}
			if fr.Header.OpCode == ws.OpClose {
				code, reason := ws.ParseCloseFrameData(fr.Payload)
				out = append(out, fmt.Sprintf("close %d %s", code, reason))
				continue
			}
			out = append(out, string(fr.Payload))
		}
		l.Release(b)
	}
	return out
}

func TestHubFanOutEncodings(t *testing.T) {
	ctx := context.Background()
	h, _ := newTestHub(t, HubOptions{})
	var tr nopTransport
	v1a := h.Attach(ConnConfig{UserID: 1}, &tr).Conn()
	v1b := h.Attach(ConnConfig{UserID: 2}, &tr).Conn()
	v2 := h.Attach(ConnConfig{UserID: 3, Version: 2}, &tr).Conn()
	for _, c := range []*Conn{v1a, v1b, v2} {
		if err := h.Join(ctx, c, "campaign_1"); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Join(ctx, v1a, "user_1"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Publish(ctx, "campaign_1", "comment", []byte(`{"id":345,"content":"Great project!"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Publish(ctx, "user_1", "application_update", []byte(`{"status":"approved"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Publish(ctx, "campaign_2", "comment", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}

	want1 := `{"type":"comment","data":{"id":345,"content":"Great project!"}}`
	if got := payloads(t, v1a); len(got) != 2 || got[0] != want1 || got[1] != `{"type":"application_update","data":{"status":"approved"}}` {
		t.Errorf(
			"v1a got %q",
			got)
	}
	if got := payloads(t, v1b); len(got) != 1 || got[0] != want1 {
		t.Errorf(
			"v1b got %q",
			got)
	}
	got := payloads(t, v2)
	if len(got) != 1 {
		t.Fatalf(
			"v2 got %q",
			got)
	}
	var m struct {
		Type   string          `json:"type"`
		Data   json.RawMessage `json:"data"`
		Group  string          `json:"group"`
		Offset uint64          `json:"offset"`
		Epoch  string          `json:"epoch"`
	}
	if err := json.Unmarshal([]byte(got[0]), &m); err != nil {
		t.Fatal(err)
	}
	if m.Type != "comment" || m.Group != "campaign_1" || m.Offset != 1 || m.Epoch == "" || string(m.Data) != `{"id":345,"content":"Great project!"}` {
		t.Errorf(
			"v2 frame = %s",
			got[0])
	}
	if !v1a.InGroup("user_1") || len(v1a.Groups()) != 2 {
		t.Errorf(
			"groups = %v",
			v1a.Groups())
	}
}

func TestHubSharesFrameBytes(t *testing.T) {
	ctx := context.Background()
	h, _ := newTestHub(t, HubOptions{})
	var tr nopTransport
	var links []Link
	for i := range 4 {
		l := h.Attach(ConnConfig{UserID: int64(i)}, &tr)
		links = append(links, l)
		if err := h.Join(ctx, l.Conn(), "g"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.Publish(ctx, "g", "t", []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	var first *byte
	for _, l := range links {
		b := l.Take()
		if b == nil || len(b.Frames) != 1 {
			t.Fatal("expected one frame")
		}
		if first == nil {
			first = &b.Frames[0][0]
		} else if &b.Frames[0][0] != first {
			t.Fatal("receivers got different frame buffers; the frame must be built once")
		}
		l.Release(b)
	}
}

func TestHubSubscriptionFollowsMembership(t *testing.T) {
	ctx := context.Background()
	h, rl := newTestHub(t, HubOptions{})
	var tr nopTransport
	a := h.Attach(ConnConfig{}, &tr)
	b := h.Attach(ConnConfig{}, &tr)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(h.Join(ctx, a.Conn(), "g"))
	must(h.Join(ctx, a.Conn(), "g")) // no-op
	must(h.Join(ctx, b.Conn(), "g"))
	must(h.Leave(ctx, a.Conn(), "g"))
	if n := h.GroupSize("g"); n != 1 {
		t.Fatalf(
			"group size = %d",
			n)
	}
	b.Finish()
	if n := h.GroupSize("g"); n != 0 {
		t.Fatalf(
			"group size after Finish = %d",
			n)
	}
	if err := h.Join(ctx, b.Conn(), "g"); !errors.Is(err, ErrClosed) {
		t.Fatalf(
			"Join after Finish: %v",
			err)
	}
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if fmt.Sprint(rl.ops) != "[sub g unsub g]" {
		t.Fatalf(
			"layer ops = %v",
			rl.ops)
	}
	if s := h.Stats(); s.Conns != 1 || s.Groups != 0 {
		t.Fatalf(
			"stats = %+v",
			s)
	}
}

func TestHubConcurrentJoinLeavePublish(t *testing.T) {
	ctx := context.Background()
	h, _ := newTestHub(t, HubOptions{MaxQueueFrames: 1 << 20})
	var tr nopTransport
	const n = 50
	links := make([]Link, n)
	for i := range links {
		links[i] = h.Attach(ConnConfig{UserID: int64(i)}, &tr)
	}
	var wg sync.WaitGroup
	for i := range links {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := links[i].Conn()
			for j := range 200 {
				g := fmt.Sprintf("g%d", j%5)
				if err := h.Join(ctx, c, g); err != nil {
					t.Error(err)
					return
				}
				if _, err := h.Publish(ctx, g, "t", []byte(`1`)); err != nil {
					t.Error(err)
					return
				}
				if j%3 == 0 {
					if err := h.Leave(ctx, c, g); err != nil {
						t.Error(err)
						return
					}
				}
			}
			links[i].Finish()
		}()
	}
	wg.Wait()
	if s := h.Stats(); s.Groups != 0 || s.Conns != 0 {
		t.Fatalf(
			"after all connections finished: %+v",
			s)
	}
}

func TestConnQueueBound(t *testing.T) {
	ctx := context.Background()
	h, _ := newTestHub(t, HubOptions{MaxQueueFrames: 8})
	var tr nopTransport
	l := h.Attach(ConnConfig{}, &tr)
	c := l.Conn()
	if err := h.Join(ctx, c, "g"); err != nil {
		t.Fatal(err)
	}
	// The transport took three frames and is stuck writing them.
	for range 3 {
		if _, err := h.Publish(ctx, "g", "t", []byte(`1`)); err != nil {
			t.Fatal(err)
		}
	}
	inflight := l.Take()
	for range 5 {
		if err := c.SendJSON([]byte(`{"type":"x"}`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.SendJSON([]byte(`{}`)); !errors.Is(err, ErrSlowConsumer) {
		t.Fatalf(
			"9th frame: err = %v, want ErrSlowConsumer",
			err)
	}
	for range 1000 {
		if _, err := h.Publish(ctx, "g", "t", []byte(`1`)); err != nil {
			t.Fatal(err)
		}
	}
	if got := h.SlowConsumers(); got != 1 {
		t.Fatalf(
			"slow consumers = %d",
			got)
	}
	if tr.wakes.Load() != 1 {
		t.Fatalf(
			"wakes = %d, want 1 (drain in progress)",
			tr.wakes.Load())
	}
	l.Release(inflight)
	got := payloads(t, c)
	if len(got) != 1 || got[0] != "close 4000 slow consumer: reconnect and resume" {
		t.Fatalf(
			"after overflow the queue must hold only the close frame, got %q",
			got)
	}
	if s := h.Stats(); s.Dropped < 1000 {
		t.Fatalf(
			"dropped = %d",
			s.Dropped)
	}
}

func TestConnCloseAfterQueued(t *testing.T) {
	h, _ := newTestHub(t, HubOptions{})
	var tr nopTransport
	c := h.Attach(ConnConfig{}, &tr).Conn()
	if err := c.SendJSON([]byte(`{"type":"campaign_data","data":{}}`)); err != nil {
		t.Fatal(err)
	}
	c.Close(CloseNotFound, "campaign not found")
	c.Close(CloseNormal, "again")
	if err := c.SendJSON([]byte(`{}`)); !errors.Is(err, ErrClosed) {
		t.Fatalf(
			"Send after Close: %v",
			err)
	}
	l := Link{c: c}
	b := l.Take()
	if b == nil || !b.Final || len(b.Frames) != 2 {
		t.Fatalf(
			"batch = %+v",
			b)
	}
	l.Release(b)
}

func TestNewCloseFrameLongReason(t *testing.T) {
	f := NewCloseFrame(CloseNormal, string(bytes.Repeat([]byte("é"), 100)))
	fr, err := ws.ReadFrame(bytes.NewReader(f.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if fr.Header.Length > ws.MaxControlFramePayloadSize {
		t.Fatalf(
			"close payload %d bytes",
			fr.Header.Length)
	}
	if _, reason := ws.ParseCloseFrameData(fr.Payload); ws.CheckCloseFrameData(1000, reason) != nil {
		t.Fatal("reason cut inside a rune")
	}
}

func BenchmarkEncode(b *testing.B) {
	msg := layer.Message{Group: "campaign_1", Type: "comment", Data: bytes.Repeat([]byte("x"), 300), Offset: 42, Epoch: "abcdef.1"}
	for _, e := range []Encoding{EncodingWebSocketV1, EncodingWebSocketV2} {
		b.Run(fmt.Sprintf("v%d", e+1), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = e.Encode(&msg)
			}
		})
	}
}

// BenchmarkFanOut delivers one event to a group of 1,000 local connections
// and drains their queues, as a transport would. allocs/op is per event: it
// must not grow with the number of receivers.
func BenchmarkFanOut(b *testing.B) {
	for _, n := range []int{1, 1000} {
		b.Run(fmt.Sprintf("receivers=%d", n), func(b *testing.B) {
			ctx := context.Background()
			h, _ := newTestHub(b, HubOptions{})
			var tr nopTransport
			links := make([]Link, n)
			for i := range links {
				links[i] = h.Attach(ConnConfig{UserID: int64(i), Version: 1 + i%2}, &tr)
				if err := h.Join(ctx, links[i].Conn(), "g"); err != nil {
					b.Fatal(err)
				}
			}
			msg := layer.Message{Group: "g", Type: "comment", Data: []byte(`{"id":1,"content":"hello"}`), Offset: 1, Epoch: "e"}
			b.ReportAllocs()
			for b.Loop() {
				h.deliver(msg)
				for _, l := range links {
					batch := l.Take()
					l.Release(batch)
					l.Take()
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/receiver")
		})
	}
}

func BenchmarkQueuePushTake(b *testing.B) {
	h, _ := newTestHub(b, HubOptions{})
	var tr nopTransport
	l := h.Attach(ConnConfig{}, &tr)
	c := l.Conn()
	f := NewTextFrame([]byte(`{"type":"t","data":1}`))
	b.ReportAllocs()
	for b.Loop() {
		for range 4 {
			if err := c.Send(f); err != nil {
				b.Fatal(err)
			}
		}
		batch := l.Take()
		l.Release(batch)
		l.Take()
	}
}

func offsetsOf(t *testing.T, frames []string) []uint64 {
	t.Helper()
	var out []uint64
	for _, f := range frames {
		var m struct {
			Offset uint64 `json:"offset"`
			Epoch  string `json:"epoch"`
		}
		if err := json.Unmarshal([]byte(f), &m); err != nil {
			t.Fatalf(
				"%v in %s",
				err, f)
		}
		out = append(out, m.Offset)
	}
	return out
}

func TestJoinFromReplaysWithoutGapsOrDuplicates(t *testing.T) {
	ctx := context.Background()
	h, _ := newTestHub(t, HubOptions{MaxQueueFrames: 100000})
	var epoch string
	for i := range 20 {
		if _, err := h.Publish(ctx, "g", "t", fmt.Appendf(nil, `%d`, i)); err != nil {
			t.Fatal(err)
		}
	}
	hist, ok, err := h.Layer().History(ctx, "g", 0, "")
	if err != nil || !ok {
		t.Fatal("history", err, ok)
	}
	epoch = hist[0].Epoch

	for round := range 20 {
		var tr nopTransport
		c := h.Attach(ConnConfig{Version: 2}, &tr).Conn()
		head, err := h.Publish(ctx, "g", "t", []byte(`1`))
		if err != nil {
			t.Fatal(err)
		}
		since := head - uint64(round%15)
		// Publishers race with the resume.
		var wg sync.WaitGroup
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 50 {
					if _, err := h.Publish(ctx, "g", "t", []byte(`1`)); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		recovered, err := h.JoinFrom(ctx, c, "g", since, epoch)
		wg.Wait()
		if err != nil || !recovered {
			t.Fatalf(
				"JoinFrom: recovered=%v err=%v",
				recovered, err)
		}
		offs := offsetsOf(t, payloads(t, c))
		for i, off := range offs {
			if off != since+uint64(i)+1 {
				t.Fatalf(
					"round %d: offsets %v: want consecutive from %d",
					round, offs, since+1)
			}
		}
		last, _ := h.Publish(ctx, "g", "t", []byte(`1`))
		offs = append(offs, offsetsOf(t, payloads(t, c))...)
		if offs[len(offs)-1] != last || len(offs) != int(last-since) {
			t.Fatalf(
				"round %d: got %d events up to %d, want %d up to %d",
				round, len(offs), offs[len(offs)-1], last-since, last)
		}
		Link{c: c}.Finish()
	}
}

func TestJoinFromOutsideWindow(t *testing.T) {
	ctx := context.Background()
	h, _ := newTestHub(t, HubOptions{})
	var tr nopTransport
	if _, err := h.Publish(ctx, "g", "t", []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	c := h.Attach(ConnConfig{Version: 2}, &tr).Conn()
	recovered, err := h.JoinFrom(ctx, c, "g", 1, "an-old-epoch")
	if err != nil || recovered {
		t.Fatalf(
			"recovered=%v err=%v, want false, nil",
			recovered, err)
	}
	if _, err := h.Publish(ctx, "g", "t", []byte(`2`)); err != nil {
		t.Fatal(err)
	}
	if offs := offsetsOf(t, payloads(t, c)); len(offs) != 1 || offs[0] != 2 {
		t.Fatalf(
			"live events after a failed resume: %v",
			offs)
	}
	if _, err := h.JoinFrom(ctx, c, "g", 0, ""); !errors.Is(err, ErrAlreadyJoined) {
		t.Fatalf(
			"second JoinFrom: %v",
			err)
	}
}

// failingHistory is a memory layer whose History first runs during (while
// the join holds the group's live events) and then fails.
type failingHistory struct {
	*layer.Memory
	during func()
}

func (l *failingHistory) History(ctx context.Context, group string, since uint64, epoch string) ([]layer.Message, bool, error) {
	l.during()
	return nil, false, errors.New("history unreadable")
}

// TestJoinFromHistoryFailureQueuesNothing: when the missed events cannot be
// read, the join fails and its caller closes the connection; the live
// events held meanwhile must not reach the client ahead of the close; they
// come after the gap, so a client would resume from past it and never get
// the events it missed.
func TestJoinFromHistoryFailureQueuesNothing(t *testing.T) {
	ctx := context.Background()
	var h *Hub
	var fl *failingHistory
	h, err := NewHub(HubOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, func(deliver func(layer.Message)) (layer.Layer, error) {
		fl = &failingHistory{Memory: layer.NewMemory(deliver, layer.MemoryOptions{})}
		return fl, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	for i := range 5 {
		if _, err := h.Publish(ctx, "g", "t", fmt.Appendf(nil, `%d`, i)); err != nil {
			t.Fatal(err)
		}
	}
	fl.during = func() {
		// Published while the join holds the group: offset 6, past the
		// client's gap (2 to 5).
		if _, err := h.Publish(ctx, "g", "t", []byte(`"live"`)); err != nil {
			t.Error(err)
		}
	}
	_, epoch, err := fl.Position(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	var tr nopTransport
	c := h.Attach(ConnConfig{Version: 2}, &tr).Conn()
	if _, err := h.JoinFrom(ctx, c, "g", 1, epoch); err == nil {
		t.Fatal("JoinFrom succeeded with an unreadable history")
	}
	// Nor what is published before the caller gets to close it.
	if _, err := h.Publish(ctx, "g", "t", []byte(`"later"`)); err != nil {
		t.Fatal(err)
	}
	if c.InGroup("g") {
		t.Error("still a member of the group after a failed join")
	}
	c.Close(CloseInternalError, "cannot join g")
	if got := payloads(t, c); len(got) != 1 || got[0] != "close 1011 cannot join g" {
		t.Fatalf("frames after a failed join: %q, want only the close", got)
	}
}

func TestHubObserveAndMembers(t *testing.T) {
	ctx := context.Background()
	var seen []string
	h, _ := newTestHub(t, HubOptions{Observe: func(m layer.Message) bool {
		seen = append(seen, m.Type)
		return m.Type != "internal"
	}})
	var tr nopTransport
	c := h.Attach(ConnConfig{}, &tr).Conn()
	if err := h.Join(ctx, c, "g"); err != nil {
		t.Fatal(err)
	}
	if m := h.Members("g"); len(m) != 1 || m[0] != c {
		t.Fatalf(
			"members = %v",
			m)
	}
	for _, typ := range []string{"internal", "comment"} {
		if _, err := h.Publish(ctx, "g", typ, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	if got := payloads(t, c); len(got) != 1 || got[0] != `{"type":"comment","data":{}}` {
		t.Fatalf(
			"delivered %q",
			got)
	}
	if fmt.Sprint(seen) != "[internal comment]" {
		t.Fatalf(
			"observed %v",
			seen)
	}
}

// A client cut off as a slow consumer is at most DefaultMaxQueueFrames
// events behind; with room to spare (a quarter of the window) for the
// events published while it reconnects, that must stay inside the default
// history window, or it could not resume without loss.
func TestDefaultQueueBoundFitsTheHistoryWindow(t *testing.T) {
	if spare := layer.DefaultHistorySize - DefaultMaxQueueFrames; spare < layer.DefaultHistorySize/4 {
		t.Fatalf("queue bound %d frames leaves %d events of the %d-event history window for a reconnect",
			DefaultMaxQueueFrames, spare, layer.DefaultHistorySize)
	}
}

// With UnsubscribeDelay, a group whose last member left stays subscribed,
// still receives its events (seen by Observe), is reused by a member that
// comes back in time, and is unsubscribed once it stayed empty for the
// delay.
func TestUnsubscribeDelay(t *testing.T) {
	var seen atomic.Int64
	h, rl := newTestHub(t, HubOptions{
		UnsubscribeDelay: 150 * time.Millisecond,
		Observe:          func(layer.Message) bool { seen.Add(1); return true },
	})
	ctx := context.Background()
	ops := func() string {
		rl.mu.Lock()
		defer rl.mu.Unlock()
		return fmt.Sprint(rl.ops)
	}
	var tr nopTransport
	a := h.Attach(ConnConfig{}, &tr).Conn()
	if err := h.Join(ctx, a, "g"); err != nil {
		t.Fatal(err)
	}
	if err := h.Leave(ctx, a, "g"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Publish(ctx, "g", "t", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if got := ops(); got != "[sub g]" || seen.Load() != 1 || h.Stats().Groups != 0 {
		t.Fatalf("right after the last leave: ops %s, %d events seen, %d groups; want still subscribed, 1 seen, 0 groups counted",
			got, seen.Load(), h.Stats().Groups)
	}
	// Back within the delay: no new subscription, and a later leave waits
	// the whole delay again.
	time.Sleep(100 * time.Millisecond)
	b := h.Attach(ConnConfig{}, &tr).Conn()
	if err := h.Join(ctx, b, "g"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // past the first leave's delay
	if got := ops(); got != "[sub g]" || h.GroupSize("g") != 1 {
		t.Fatalf("a member came back: ops %s, size %d", got, h.GroupSize("g"))
	}
	if err := h.Leave(ctx, b, "g"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ops() != "[sub g unsub g]"; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the idle group was not unsubscribed: ops %s", ops())
		}
	}
	// A join after that subscribes again.
	if err := h.Join(ctx, a, "g"); err != nil {
		t.Fatal(err)
	}
	if got := ops(); got != "[sub g unsub g sub g]" {
		t.Fatalf("join after the unsubscribe: ops %s", got)
	}
}

// Of two joins of one group at once on a connection (a quest announced
// while the connection joins it at connect), one replays the history and
// tells the client where it stands; the other is refused and sends
// nothing, so the client gets each event and one subscribed once.
func TestConcurrentJoinFromOfOneGroupReplaysOnce(t *testing.T) {
	ctx := context.Background()
	h, _ := newTestHub(t, HubOptions{})
	for i := range 3 {
		if _, err := h.Publish(ctx, "g", "t", fmt.Appendf(nil, `%d`, i)); err != nil {
			t.Fatal(err)
		}
	}
	for round := range 200 {
		var tr nopTransport
		c := h.Attach(ConnConfig{Version: 2}, &tr).Conn()
		var told atomic.Int64
		cu := Catchup{Replayed: func(layer.Position) {
			told.Add(1)
			_ = c.SendJSON([]byte(`"subscribed"`))
		}}
		start := make(chan struct{})
		errs := make(chan error, 2)
		for range 2 {
			go func() {
				<-start
				_, err := h.JoinFromWith(ctx, c, "g", layer.Position{}, cu)
				errs <- err
			}()
		}
		close(start)
		var refused int
		for range 2 {
			if err := <-errs; errors.Is(err, ErrAlreadyJoined) {
				refused++
			} else if err != nil {
				t.Fatal(err)
			}
		}
		got := payloads(t, c)
		if refused != 1 || told.Load() != 1 || len(got) != 4 {
			t.Fatalf("round %d: %d joins refused, %d told, frames %q; want 1, 1 and the 3 events then subscribed", round, refused, told.Load(), got)
		}
		c.Close(CloseNormal, "")
		if err := h.Leave(ctx, c, "g"); err != nil {
			t.Fatal(err)
		}
	}
}

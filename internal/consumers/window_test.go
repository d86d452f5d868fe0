package consumers_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/consumers"
	"github.com/heraldhq/herald/internal/money"
	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/realtime"
	"github.com/heraldhq/herald/internal/realtime/layer"
	"github.com/heraldhq/herald/internal/realtime/transport"
	"github.com/heraldhq/herald/internal/relay"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/testenv"
)

const rigWait = 10 * time.Second

// rig serves the real-time endpoints as herald does (SQLite, the outbox
// relay, the in-memory layer) with a history window of a few events, so a
// test can move a room past a position in a moment.
type rig struct {
	t     *testing.T
	p     *platform.Platform
	hub   *realtime.Hub
	c     *consumers.Consumers
	ws    string // ws://host:port
	owner int64

	tokens *auth.Issuer

	mu                      sync.Mutex
	beforeJoin, beforeFresh func(group string)
	announced               func(questID int64)
}

func newRig(t *testing.T, window int) *rig {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	quiet := slog.New(slog.DiscardHandler)
	db, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "rig.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	rg := &rig{t: t}
	var rl *relay.Relay
	rg.p, err = platform.New(db, platform.Options{
		Hasher:    auth.Hasher{Params: testenv.CheapPasswords},
		Committed: func(parts uint64) { rl.NotifyParts(parts) },
	})
	if err != nil {
		t.Fatal(err)
	}
	rg.hub, err = realtime.NewHub(realtime.HubOptions{
		// The tests read a connection only after a writer stopped.
		MaxQueueFrames: 1 << 16,
		Logger:         quiet,
		Observe:        func(m layer.Message) bool { return rg.c.Observe(m) },
	}, func(deliver func(layer.Message)) (layer.Layer, error) {
		// The window is the layer's alone: no log behind it.
		return layer.NewMemory(deliver, layer.MemoryOptions{HistorySize: window, Logger: quiet}), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rl = relay.New(db, rg.hub, relay.Options{Logger: quiet})
	ws, err := transport.NewServer(rg.hub, transport.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	sse := transport.NewSSE(rg.hub, transport.SSEOptions{Logger: quiet})
	hooks := &consumers.Hooks{
		BeforeJoin:  func(g string) { rg.hook(func() func(string) { return rg.beforeJoin }, g) },
		BeforeFresh: func(g string) { rg.hook(func() func(string) { return rg.beforeFresh }, g) },
		Announced: func(id int64) {
			rg.mu.Lock()
			f := rg.announced
			rg.mu.Unlock()
			if f != nil {
				f(id)
			}
		},
	}
	rg.tokens, err = auth.NewIssuer([]byte(testenv.Config(t, "").JWTSecret), time.Hour, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cfg := consumers.Config{Platform: rg.p, Tokens: rg.tokens, Hub: rg.hub, WebSocket: ws, SSE: sse, Logger: quiet}
	hooks.Install(&cfg)
	rg.c = consumers.New(cfg)
	mux := http.NewServeMux()
	rg.c.Register(mux)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = srv.Serve(ln) }()
	go func() { defer wg.Done(); _ = rl.Run(ctx) }()
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = ws.Close(sctx)
		_ = sse.Shutdown(sctx)
		_ = srv.Close()
		cancel()
		wg.Wait()
		_ = rg.hub.Close()
		db.Close()
	})
	rg.ws = "ws://" + ln.Addr().String()
	u, err := rg.p.Register(ctx, platform.Registration{Username: "owner", Password: "a long passphrase"})
	if err != nil {
		t.Fatal(err)
	}
	rg.owner = u.ID
	return rg
}

// hook runs the hook get returns, if the test set one.
func (rg *rig) hook(get func() func(string), group string) {
	rg.mu.Lock()
	f := get()
	rg.mu.Unlock()
	if f != nil {
		f(group)
	}
}

// setHooks sets what runs before a join and before a fresh state is read.
func (rg *rig) setHooks(beforeJoin, beforeFresh func(group string)) {
	rg.mu.Lock()
	defer rg.mu.Unlock()
	rg.beforeJoin, rg.beforeFresh = beforeJoin, beforeFresh
}

// campaign creates a public campaign and returns its id and group.
func (rg *rig) campaign() (int64, string) {
	rg.t.Helper()
	title, active, goal := "Edge", "active", money.Cents(100)
	c, err := rg.p.CreateCampaign(context.Background(), rg.owner, platform.CampaignInput{Title: &title, Status: &active, GoalAmount: &goal})
	if err != nil {
		rg.t.Fatal(err)
	}
	return c.ID, platform.CampaignGroup(c.ID)
}

// comment posts n comments and waits until they are published. It reports
// failures as errors, for the hooks, which run on the server's goroutines.
// It waits for its own events only: with other writers busy the outbox is
// seldom empty.
func (rg *rig) comment(campaign int64, n int) ([]int64, error) {
	ctx := context.Background()
	ids := make([]int64, n)
	for i := range ids {
		content := fmt.Sprint("comment ", i)
		c, err := rg.p.PostComment(ctx, rg.owner, campaign, platform.CommentInput{Content: &content})
		if err != nil {
			return nil, err
		}
		ids[i] = c.ID
	}
	// The outbox row of the last comment, if not yet published: the relay
	// publishes in row order, so once it is gone all of them are.
	pending, err := rg.p.PendingEvents(ctx, 100_000)
	if err != nil {
		return nil, err
	}
	var mark int64
	for _, e := range pending {
		var c struct{ ID int64 }
		if e.Type == "comment" && json.Unmarshal(e.Data, &c) == nil && c.ID == ids[n-1] {
			mark = e.ID
		}
	}
	deadline := time.Now().Add(rigWait)
	for mark != 0 {
		evs, err := rg.p.PendingEvents(ctx, 1)
		if err != nil {
			return nil, err
		}
		if len(evs) == 0 || evs[0].ID > mark {
			break
		}
		if time.Now().After(deadline) {
			return nil, errors.New("the relay did not publish the comments")
		}
		time.Sleep(2 * time.Millisecond)
	}
	return ids, nil
}

func (rg *rig) mustComment(campaign int64, n int) []int64 {
	rg.t.Helper()
	ids, err := rg.comment(campaign, n)
	if err != nil {
		rg.t.Fatal(err)
	}
	return ids
}

// inWindow says whether group can still be resumed from p.
func (rg *rig) inWindow(group string, p layer.Position) (bool, error) {
	_, ok, err := rg.hub.Layer().History(context.Background(), group, p.Offset, p.Epoch)
	return ok, err
}

// dial opens a v2 connection to campaign, resuming from p if given.
func (rg *rig) dial(campaign int64, p *layer.Position) *testenv.WSClient {
	rg.t.Helper()
	u := fmt.Sprintf("%s/ws/campaign/%d/?v=2", rg.ws, campaign)
	if p != nil {
		u += "&resume=" + url.QueryEscape(fmt.Sprintf("%s:%s:%d", platform.CampaignGroup(campaign), p.Epoch, p.Offset))
	}
	c := testenv.MustDialWS(rg.t, u, nil)
	c.Ignore = []string{"presence"}
	return c
}

// told reads a subscribed message for group: whether it was recovered and
// where it leaves the client.
func told(t *testing.T, ev testenv.Event, group string) (bool, layer.Position) {
	t.Helper()
	var d struct {
		Group     string
		Recovered bool
		Epoch     *string
		Offset    *uint64
	}
	if ev.Type != "subscribed" || json.Unmarshal(ev.Data, &d) != nil || d.Group != group || d.Epoch == nil || d.Offset == nil {
		t.Fatalf("got %s %s; want subscribed for %s with its position", ev.Type, ev.Data, group)
	}
	return d.Recovered, layer.Position{Offset: *d.Offset, Epoch: *d.Epoch}
}

// snapshotComments is the ids of the comments in a campaign_data message.
func snapshotComments(t *testing.T, ev testenv.Event) map[int64]bool {
	t.Helper()
	var d struct{ Comments []struct{ ID int64 } }
	if ev.Type != "campaign_data" || json.Unmarshal(ev.Data, &d) != nil {
		t.Fatalf("got %s %s; want campaign_data", ev.Type, ev.Data)
	}
	ids := map[int64]bool{}
	for _, c := range d.Comments {
		ids[c.ID] = true
	}
	return ids
}

// The window moves past a resume's position between the check that found
// it within the window and the join, and events keep coming while the
// server reads the fresh state: the client is told recovered=false, then
// gets campaign_data read after those events, then every later event from
// the position it was told, none before and none missing.
func TestWindowMovesDuringResume(t *testing.T) {
	rg := newRig(t, 20)
	id, group := rg.campaign()
	c := rg.dial(id, nil)
	if ev := c.NextEvent(rigWait); ev.Type != "campaign_data" {
		t.Fatalf("first %s", ev.Type)
	}
	told(t, c.NextEvent(rigWait), group)
	rg.mustComment(id, 1)
	first := c.NextEvent(rigWait)
	c.Close()
	from := layer.Position{Offset: first.Offset, Epoch: first.Epoch}

	// What the hook posted while the join held the room's events, and where
	// the room then stood.
	type heldEvents struct {
		ids []int64
		at  layer.Position
	}
	heldCh := make(chan heldEvents, 1)
	var moved, fresh atomic.Bool
	rg.setHooks(func(g string) {
		if g != group || moved.Swap(true) {
			return
		}
		for range 100 {
			in, err := rg.inWindow(group, from)
			if err != nil || !in {
				if err != nil {
					t.Error(err)
				}
				return
			}
			if _, err := rg.comment(id, 10); err != nil {
				t.Error(err)
				return
			}
		}
		t.Error("the window never moved past the resume's position")
	}, func(g string) {
		if g != group || fresh.Swap(true) {
			return
		}
		ids, err := rg.comment(id, 3)
		if err != nil {
			t.Error(err)
			return
		}
		off, epoch, err := rg.hub.Layer().Position(context.Background(), group)
		if err != nil {
			t.Error(err)
		}
		heldCh <- heldEvents{ids, layer.Position{Offset: off, Epoch: epoch}}
	})
	c = rg.dial(id, &from)
	recovered, at := told(t, c.NextEvent(rigWait), group)
	if recovered || !moved.Load() || !fresh.Load() {
		t.Fatalf("recovered=%v, window moved %v, fresh state read %v; want false, true, true", recovered, moved.Load(), fresh.Load())
	}
	var held heldEvents
	select {
	case held = <-heldCh:
	default:
		t.Fatal("nothing was posted while the join held the room's events")
	}
	if at.Epoch != held.at.Epoch || at.Offset < held.at.Offset {
		t.Fatalf("told %+v; want a position at or after the events held during the join (%+v)", at, held.at)
	}
	snap := snapshotComments(t, c.NextEvent(rigWait))
	for _, h := range held.ids {
		if !snap[h] {
			t.Errorf("comment %d, published while the join held the room's events, is neither in campaign_data nor sent", h)
		}
	}
	live := rg.mustComment(id, 3)
	for i, want := range live {
		ev := c.NextEvent(rigWait)
		var d struct{ ID int64 }
		_ = json.Unmarshal(ev.Data, &d)
		if ev.Type != "comment" || d.ID != want || ev.Epoch != at.Epoch || ev.Offset != at.Offset+uint64(i)+1 {
			t.Fatalf("after campaign_data: %s %s at %s:%d; want comment %d at %s:%d", ev.Type, ev.Data, ev.Epoch, ev.Offset, want, at.Epoch, at.Offset+uint64(i)+1)
		}
	}
	c.NoMessage(100 * time.Millisecond)
}

// Resumes from the oldest position still in the window, from the one before
// it (just out) and the one after it, while a writer keeps posting, each
// lose nothing: a recovered client gets every event after its position, one
// that is not gets subscribed, campaign_data and every event after the
// position it is told, in order and once.
func TestResumeAtTheEdgeOfTheWindow(t *testing.T) {
	rg := newRig(t, 20)
	id, group := rg.campaign()
	rg.mustComment(id, 60)

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// About 250 events a second, as a busy room.
		tick := time.NewTicker(4 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			content := "meanwhile"
			if _, err := rg.p.PostComment(context.Background(), rg.owner, id, platform.CommentInput{Content: &content}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	defer stop()
	// And, every other round, one more at each of the moments where the
	// window moving on matters: between the check that found a position
	// within it and the join, and while a join that could not replay reads
	// the fresh state.
	var squeeze atomic.Bool
	post := func(g string) {
		if g == group && squeeze.Load() {
			if _, err := rg.comment(id, 1); err != nil {
				t.Error(err)
			}
		}
	}
	rg.setHooks(post, post)

	type resume struct {
		c    *testenv.WSClient
		from layer.Position
		edge int // -1 just out of the window, 0 its oldest position, 1 the next
	}
	var all []resume
	for round := range 8 {
		squeeze.Store(round%2 == 1)
		for edge := -1; edge <= 1; edge++ {
			// The oldest position History answers now: it only moves on.
			off, epoch, err := rg.hub.Layer().Position(ctx, group)
			if err != nil {
				t.Fatal(err)
			}
			lo, hi := uint64(0), off
			for lo < hi {
				mid := lo + (hi-lo)/2
				in, err := rg.inWindow(group, layer.Position{Offset: mid, Epoch: epoch})
				if err != nil {
					t.Fatal(err)
				}
				if in {
					hi = mid
				} else {
					lo = mid + 1
				}
			}
			if lo == 0 {
				t.Fatalf("position %d: the whole group is still in the window", off)
			}
			from := layer.Position{Offset: uint64(int64(lo) + int64(edge)), Epoch: epoch}
			all = append(all, resume{rg.dial(id, &from), from, edge})
		}
	}
	stop()
	wg.Wait()
	last := rg.mustComment(id, 1)
	end, _, err := rg.hub.Layer().Position(context.Background(), group)
	if err != nil {
		t.Fatal(err)
	}

	for i, r := range all {
		// Replayed events, if any, then where the client stands; then the
		// live events follow on from there.
		at := r.from
		var recovered bool
		for {
			ev := r.c.NextEvent(rigWait)
			if ev.Type == "subscribed" {
				var where layer.Position
				recovered, where = told(t, ev, group)
				if recovered && where != at {
					t.Fatalf("resume %d from %+v: told %+v after replaying up to %+v", i, r.from, where, at)
				}
				at = where
				break
			}
			if ev.Type != "comment" || ev.Epoch != at.Epoch || ev.Offset != at.Offset+1 {
				t.Fatalf("resume %d from %+v (edge %d): %s at %s:%d before subscribed; want the event after %+v", i, r.from, r.edge, ev.Type, ev.Epoch, ev.Offset, at)
			}
			at = layer.Position{Offset: ev.Offset, Epoch: ev.Epoch}
		}
		if r.edge == -1 && recovered {
			t.Fatalf("resume %d from %+v, out of the window, was recovered", i, r.from)
		}
		if !recovered {
			snapshotComments(t, r.c.NextEvent(rigWait))
		}
		live := false // an event came since campaign_data
		for at.Offset < end {
			ev := r.c.NextEvent(rigWait)
			if ev.Type == "subscribed" && !recovered && !live {
				// The window moved past the snapshot's position too while
				// joining from it: the state was read again.
				var again bool
				if again, at = told(t, ev, group); again {
					t.Fatalf("resume %d from %+v: recovered after recovered=false", i, r.from)
				}
				snapshotComments(t, r.c.NextEvent(rigWait))
				continue
			}
			if ev.Type != "comment" || ev.Epoch != at.Epoch || ev.Offset != at.Offset+1 {
				t.Fatalf("resume %d from %+v (edge %d, recovered %v): %s %s at %s:%d; want the event after %+v", i, r.from, r.edge, recovered, ev.Type, ev.Data, ev.Epoch, ev.Offset, at)
			}
			at.Offset, live = ev.Offset, true
			if ev.Offset == end && commentIDOf(ev) != last[0] {
				t.Fatalf("resume %d: the last event is %s, want comment %d", i, ev.Data, last[0])
			}
		}
	}
}

func commentIDOf(ev testenv.Event) int64 {
	var d struct{ ID int64 }
	_ = json.Unmarshal(ev.Data, &d)
	return d.ID
}

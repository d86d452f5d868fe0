package realtime

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/heraldhq/herald/internal/panics"
	"github.com/heraldhq/herald/internal/realtime/layer"
)

// panicTransport panics when it is woken, as a broken transport would.
type panicTransport struct{}

func (panicTransport) Wake() { panic("wake failed") }

// A panic in Observe ends the fan-out of that event only: the publisher
// does not see it, the panic is counted, and the next events reach every
// member.
func TestDeliverObservePanic(t *testing.T) {
	ctx := context.Background()
	var counted atomic.Int64
	h, _ := newTestHub(t, HubOptions{
		Observe: func(m layer.Message) bool {
			if m.Type == "boom" {
				panic("observe failed")
			}
			return true
		},
		OnPanic: func(where string) {
			if where == panics.Hub {
				counted.Add(1)
			}
		},
	})
	var tr nopTransport
	c := h.Attach(ConnConfig{}, &tr).Conn()
	if err := h.Join(ctx, c, "g"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Publish(ctx, "g", "boom", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Publish(ctx, "g", "comment", []byte(`{"id":1}`)); err != nil {
		t.Fatal(err)
	}
	if got := payloads(t, c); len(got) != 1 || got[0] != `{"type":"comment","data":{"id":1}}` {
		t.Fatalf("got %q", got)
	}
	if n := counted.Load(); n != 1 {
		t.Fatalf("%d hub panics counted, want 1", n)
	}
}

// A member whose queuing panics (its transport's Wake) is closed and
// skipped: the members after it in the group still get the event, and the
// next events do not panic again.
func TestDeliverMemberPanic(t *testing.T) {
	ctx := context.Background()
	var counted atomic.Int64
	h, _ := newTestHub(t, HubOptions{OnPanic: func(string) { counted.Add(1) }})
	var tr nopTransport
	before := h.Attach(ConnConfig{}, &tr).Conn()
	bad := h.Attach(ConnConfig{}, panicTransport{}).Conn()
	after := h.Attach(ConnConfig{}, &tr).Conn()
	for _, c := range []*Conn{before, bad, after} {
		if err := h.Join(ctx, c, "g"); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2 {
		if _, err := h.Publish(ctx, "g", "comment", []byte(`{}`)); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	for _, c := range []*Conn{before, after} {
		if got := payloads(t, c); len(got) != 2 {
			t.Fatalf("a healthy member got %q, want both events", got)
		}
	}
	if !bad.Closed() {
		t.Fatal("the member whose queuing panicked is not closing")
	}
	if n := counted.Load(); n != 1 {
		t.Fatalf("%d panics counted, want 1", n)
	}
}

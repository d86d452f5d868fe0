package realtime

import (
	"context"
	"testing"
	"unsafe"
)

// TestConnSize guards the per-connection footprint, the main cost of an idle
// connection next to the socket itself. 128 is a malloc size class (the
// next is 144); what only a resuming connection needs is in Conn.join.
func TestConnSize(t *testing.T) {
	if n := unsafe.Sizeof(Conn{}); n > 128 {
		t.Fatalf(
			"Conn is %d bytes; keep it small (idle connections are counted in tens of thousands)",
			n)
	}
}

// TestResumeStateIsDropped: a resume's state (its held events, the credit
// of its replay) lives as long as the join and the replay's writing, and is
// dropped after, so an idle connection that resumed costs no more than
// one that did not.
func TestResumeStateIsDropped(t *testing.T) {
	h, _ := newTestHub(t, HubOptions{})
	ctx := context.Background()
	for range 3 {
		if _, err := h.Publish(ctx, "g", "comment", []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	all, ok, err := h.Layer().History(ctx, "g", 0, "")
	if err != nil || !ok || len(all) != 3 {
		t.Fatalf("history: %d events, ok %v, err %v", len(all), ok, err)
	}
	var tr nopTransport
	l := h.Attach(ConnConfig{}, &tr)
	c := l.Conn()
	ok, err = h.JoinFrom(ctx, c, "g", 1, all[0].Epoch)
	if err != nil || !ok {
		t.Fatalf("JoinFrom: recovered %v, err %v", ok, err)
	}
	c.mu.Lock()
	j := c.join
	c.mu.Unlock()
	if j == nil || j.credit != 2 || len(j.holds) != 0 {
		t.Fatalf("after the join: resume state %+v, want the credit of 2 replayed events and nothing held", j)
	}
	n := 0
	for b := l.Take(); b != nil; b = l.Take() {
		n += len(b.Frames)
		l.Release(b)
	}
	c.mu.Lock()
	j = c.join
	c.mu.Unlock()
	if n != 2 || j != nil {
		t.Fatalf("after writing %d frames (want 2): resume state %+v, want none", n, j)
	}
}

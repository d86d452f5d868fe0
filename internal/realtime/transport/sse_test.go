package transport

import (
	"strings"
	"testing"
)

// Rewriting an event's id into the stream's position in every group keeps
// the other groups' positions, and costs no allocation once the stream knows
// its groups.
func TestSSEAppendFrame(t *testing.T) {
	st := &SSEStream{positions: map[string]*[]byte{}}
	st.setPosition([]byte("user_1"), []byte("e1:7"))
	frame := []byte("id: quest_3:e2:5\nevent: new_application\ndata: {}\n\n")
	got := string(st.appendFrame(nil, frame))
	want := "id: user_1:e1:7,quest_3:e2:5\nevent: new_application\ndata: {}\n\n"
	if got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	next := []byte("id: user_1:e1:8\nevent: application_update\ndata: {}\n\n")
	if got := string(st.appendFrame(nil, next)); !strings.HasPrefix(got, "id: user_1:e1:8,quest_3:e2:5\n") {
		t.Fatalf("second event: %q", got)
	}
	if got := string(st.appendFrame(nil, []byte("event: presence\ndata: {}\n\n"))); got != "event: presence\ndata: {}\n\n" {
		t.Fatalf("a message without id changed: %q", got)
	}
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { buf = st.appendFrame(buf[:0], next) }); n != 0 {
		t.Errorf("%v allocations per event", n)
	}
}

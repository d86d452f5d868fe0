package cluster

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testenv"
)

// A comment removed through one process is never replayed by any: each
// process's subscription had delivered it and Redis's window held it, yet a
// client resuming from before it, on either process, before and after a
// restart of one, gets its removal where it was; the live viewers of both
// are told; announcing it again is refused; a fresh snapshot does not hold
// it.
func TestRemovedCommentAcrossProcesses(t *testing.T) {
	d := deploy(t, 2, "")
	a, b := d.procs[0], d.procs[1]
	owner := d.user(a, "alice")
	author := d.user(b, "bob")
	camp := d.campaign(a, owner)
	room := fmt.Sprintf("/ws/campaign/%d/", camp)
	group := fmt.Sprintf("campaign_%d", camp)
	const removedText = "s3cret-words"

	// A viewer on each process from the start: both subscribe to the room.
	viewers := map[string]*testenv.WSClient{}
	var from struct {
		Epoch  string
		Offset uint64
	}
	for _, p := range d.procs {
		c := testenv.MustDialWS(t, p.ws(room+"?v=2"), nil)
		c.Ignore = []string{"presence"}
		if ev := c.NextEvent(10 * time.Second); ev.Type != "campaign_data" {
			t.Fatalf("viewer on %s first got %s", p.name, ev.Type)
		}
		if ev := c.NextEvent(10 * time.Second); ev.Type != "subscribed" || json.Unmarshal(ev.Data, &from) != nil {
			t.Fatalf("viewer on %s then got %s %s", p.name, ev.Type, ev.Data)
		}
		viewers[p.name] = c
	}
	secret, err := comment(a, author, camp, "first "+removedText)
	if err != nil {
		t.Fatal(err)
	}
	kept, err := comment(b, owner, camp, "kept")
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range viewers {
		for range 2 {
			if ev := c.NextEvent(10 * time.Second); ev.Type != "comment" {
				t.Fatalf("viewer on %s got %s %s", name, ev.Type, ev.Data)
			}
		}
	}
	// Removed through the other process than the one it was posted on.
	if status, err := call("DELETE", b.url(fmt.Sprintf("/api/campaigns/%d/comments/%d/", camp, secret)), author, nil, nil); err != nil || status != http.StatusNoContent {
		t.Fatalf("delete: %d %v", status, err)
	}
	gone := fmt.Sprintf(`{"id":%d,"campaign":%d}`, secret, camp)
	for name, c := range viewers {
		if ev := c.NextEvent(10 * time.Second); ev.Type != "comment_removed" || string(ev.Data) != gone {
			t.Fatalf("viewer on %s got %s %s; want comment_removed %s", name, ev.Type, ev.Data, gone)
		}
	}

	resume := func(p *proc) {
		t.Helper()
		q := "&resume=" + url.QueryEscape(fmt.Sprintf("%s:%s:%d", group, from.Epoch, from.Offset))
		c := testenv.MustDialWS(t, p.ws(room+"?v=2"+q), nil)
		c.Ignore = []string{"presence"}
		defer c.Close()
		want := []string{"comment_removed", "comment", "comment_removed"}
		for i, typ := range want {
			ev := c.NextEvent(10 * time.Second)
			if ev.Type != typ || ev.Offset != from.Offset+uint64(i)+1 {
				t.Fatalf("resume on %s, event %d: %s at %d %s; want %s at %d", p.name, i, ev.Type, ev.Offset, ev.Data, typ, from.Offset+uint64(i)+1)
			}
			if strings.Contains(string(ev.Data), removedText) {
				t.Fatalf("resume on %s replays the removed comment: %s", p.name, ev.Data)
			}
			if typ == "comment" && !strings.Contains(string(ev.Data), fmt.Sprintf(`"id":%d,`, kept)) {
				t.Fatalf("resume on %s: %s; want comment %d", p.name, ev.Data, kept)
			}
		}
		if ev := c.NextEvent(10 * time.Second); ev.Type != "subscribed" || !strings.Contains(string(ev.Data), `"recovered":true`) {
			t.Fatalf("resume on %s then got %s %s", p.name, ev.Type, ev.Data)
		}
	}
	resume(a)
	resume(b)

	// Announced again, as the seeds' front end does: refused, nothing sent.
	viewers["A"].Send(map[string]any{"type": "comment", "data": map[string]any{"id": secret}})
	if ev := viewers["A"].NextEvent(10 * time.Second); ev.Type != "error" || !strings.Contains(string(ev.Data), `"not_found"`) {
		t.Fatalf("announce of the removed comment: %s %s", ev.Type, ev.Data)
	}
	viewers["B"].NoMessage(300 * time.Millisecond)

	fresh := testenv.MustDialWS(t, b.ws(room), nil)
	if ev := fresh.NextEvent(10 * time.Second); ev.Type != "campaign_data" || strings.Contains(string(ev.Data), removedText) {
		t.Fatalf("a fresh snapshot: %s %s", ev.Type, ev.Data)
	}

	// B restarted: its subscription is new, Redis's window and the log
	// answer.
	b.stop()
	b.start()
	resume(b)
}

package cluster

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testenv"
)

// A campaign edited through one process reaches its viewers on another as a
// campaign event; made a draft again through the first, its viewers on the
// second are told not_found and closed with 4404 (an event stream ends),
// while its owner's connection there gets the event and then 1012, and
// connecting again finds the draft, on either process, only for its owner.
func TestCampaignStateAcrossProcesses(t *testing.T) {
	const wait = 10 * time.Second
	tp := twoProcessRoom(t)
	d, a, b, owner, fan, camp, room := tp.d, tp.a, tp.b, tp.owner, tp.fan, tp.camp, tp.room
	dial := func(p *proc, query string) *testenv.WSClient { t.Helper(); return tp.dial(t, p, query) }
	// On B: a signed-in viewer (v2), an anonymous one (v1), the owner (v2)
	// and an event stream; B joins the room for the first.
	viewer, anon, own := dial(b, "?v=2&token="+fan), dial(b, ""), dial(b, "?v=2&token="+owner)
	for name, c := range map[string]*testenv.WSClient{"viewer": viewer, "owner": own} {
		for _, want := range []string{"campaign_data", "subscribed"} {
			if ev := c.NextEvent(wait); ev.Type != want {
				t.Fatalf("%s on B got %s %s; want %s", name, ev.Type, ev.Data, want)
			}
		}
	}
	if ev := anon.NextEvent(wait); ev.Type != "campaign_data" {
		t.Fatalf("anonymous on B got %s", ev.Type)
	}
	sse := tp.stream(t, b, wait)

	patch := func(fields map[string]any) {
		t.Helper()
		if _, err := call("PATCH", a.url(fmt.Sprintf("/api/campaigns/%d/", camp)), owner, fields, nil); err != nil {
			t.Fatal(err)
		}
	}
	patch(map[string]any{"title": "Renamed on A"})
	for name, c := range map[string]*testenv.WSClient{"viewer": viewer, "anonymous": anon, "owner": own} {
		if ev := c.NextEvent(wait); ev.Type != "campaign" || !strings.Contains(string(ev.Data), `"title":"Renamed on A"`) {
			t.Fatalf("%s on B got %s %s; want the campaign event", name, ev.Type, ev.Data)
		}
	}
	if ev := sse.MustNext(wait); ev.Event != "campaign" || !strings.Contains(ev.Data, `"title":"Renamed on A"`) {
		t.Fatalf("SSE on B got %s %s; want the campaign event", ev.Event, ev.Data)
	}

	patch(map[string]any{"status": "draft"})
	for name, c := range map[string]*testenv.WSClient{"viewer": viewer, "anonymous": anon} {
		if ev := c.NextEvent(wait); ev.Type != "error" || !strings.Contains(string(ev.Data), `"code":"not_found"`) {
			t.Fatalf("%s on B got %s %s; want not_found", name, ev.Type, ev.Data)
		}
		if code := c.WaitClose(wait); code != 4404 {
			t.Fatalf("%s on B closed with %d; want 4404", name, code)
		}
	}
	if evs := sse.End(wait); len(evs) != 1 || evs[0].Event != "error" {
		t.Fatalf("SSE on B got %+v before it ended; want the not_found error", evs)
	}
	if ev := own.NextEvent(wait); ev.Type != "campaign" || !strings.Contains(string(ev.Data), `"status":"draft"`) {
		t.Fatalf("owner on B got %s %s; want the campaign event", ev.Type, ev.Data)
	}
	if code := own.WaitClose(wait); code != 1012 {
		t.Fatalf("owner on B closed with %d; want 1012", code)
	}

	for _, p := range d.procs {
		if _, status, _ := testenv.DialSSE(t, p.url("/sse"+room[len("/ws"):]), nil); status != http.StatusNotFound {
			t.Errorf("SSE on %s to the draft: status %d; want 404", p.name, status)
		}
		c := dial(p, "?v=2&token="+fan)
		if ev := c.NextEvent(wait); ev.Type != "error" || c.WaitClose(wait) != 4404 {
			t.Fatalf("a viewer on %s back at the draft got %s %s; want not_found and 4404", p.name, ev.Type, ev.Data)
		}
		c = dial(p, "?v=2&token="+owner)
		if ev := c.NextEvent(wait); ev.Type != "campaign_data" || !strings.Contains(string(ev.Data), `"status":"draft"`) {
			t.Fatalf("the owner on %s got %s %s; want the draft's campaign_data", p.name, ev.Type, ev.Data)
		}
	}
}

// A campaign deleted through one process closes its room on another: every
// viewer there, signed in (v2), anonymous (v1), the owner too, and an event
// stream, is told not_found and closed with 4404; connecting again finds
// nothing on either process, and its REST detail answers 404 everywhere.
func TestCampaignDeletedAcrossProcesses(t *testing.T) {
	const wait = 10 * time.Second
	tp := twoProcessRoom(t)
	d, a, b, owner, fan, camp, room := tp.d, tp.a, tp.b, tp.owner, tp.fan, tp.camp, tp.room
	dial := func(p *proc, query string) *testenv.WSClient { t.Helper(); return tp.dial(t, p, query) }
	if _, err := comment(b, fan, camp, "before the end"); err != nil {
		t.Fatal(err)
	}
	// Published before anyone connects, so it is in their campaign_data
	// and not a live event.
	if !waitFor(wait, func() bool { return d.outbox() == 0 }) {
		t.Fatal("the comment was not published")
	}
	viewers := map[string]*testenv.WSClient{
		"viewer": dial(b, "?v=2&token="+fan), "anonymous": dial(b, ""), "owner": dial(b, "?v=2&token="+owner),
	}
	for name, c := range viewers {
		if ev := c.NextEvent(wait); ev.Type != "campaign_data" {
			t.Fatalf("%s on B got %s %s; want campaign_data", name, ev.Type, ev.Data)
		}
	}
	sse := tp.stream(t, b, wait)

	if status, err := call("DELETE", a.url(fmt.Sprintf("/api/campaigns/%d/", camp)), owner, nil, nil); err != nil || status != http.StatusNoContent {
		t.Fatalf("DELETE through A: %d %v; want 204", status, err)
	}
	for name, c := range viewers {
		// A v2 client's subscribed message may come first.
		ev := c.NextEvent(wait)
		if ev.Type == "subscribed" {
			ev = c.NextEvent(wait)
		}
		if ev.Type != "error" || !strings.Contains(string(ev.Data), `"code":"not_found"`) {
			t.Fatalf("%s on B got %s %s; want not_found", name, ev.Type, ev.Data)
		}
		if code := c.WaitClose(wait); code != 4404 {
			t.Fatalf("%s on B closed with %d; want 4404", name, code)
		}
	}
	if evs := sse.End(wait); len(evs) != 1 || evs[0].Event != "error" {
		t.Fatalf("SSE on B got %+v before it ended; want the not_found error", evs)
	}

	for _, p := range d.procs {
		if status, _ := call("GET", p.url(fmt.Sprintf("/api/campaigns/%d/", camp)), owner, nil, nil); status != http.StatusNotFound {
			t.Errorf("GET of the deleted campaign on %s: %d; want 404", p.name, status)
		}
		if _, status, _ := testenv.DialSSE(t, p.url("/sse"+room[len("/ws"):]), nil); status != http.StatusNotFound {
			t.Errorf("SSE on %s to the deleted campaign: status %d; want 404", p.name, status)
		}
		for _, q := range []string{"?v=2&token=" + owner, ""} {
			c := dial(p, q)
			if ev := c.NextEvent(wait); ev.Type != "error" || c.WaitClose(wait) != 4404 {
				t.Fatalf("a client (%q) on %s back at the deleted campaign got %s %s; want not_found and 4404", q, p.name, ev.Type, ev.Data)
			}
		}
	}
}

// twoProcs is two processes, A and B, with alice's campaign made through A
// and bob signed up through B.
type twoProcs struct {
	d          *deployment
	a, b       *proc
	owner, fan string // access tokens
	camp       int64
	room       string // the campaign's WebSocket path
}

func twoProcessRoom(t *testing.T) *twoProcs {
	t.Helper()
	d := deploy(t, 2, "")
	tp := &twoProcs{d: d, a: d.procs[0], b: d.procs[1]}
	tp.owner, tp.fan = d.user(tp.a, "alice"), d.user(tp.b, "bob")
	tp.camp = d.campaign(tp.a, tp.owner)
	tp.room = fmt.Sprintf("/ws/campaign/%d/", tp.camp)
	return tp
}

// stream opens the room's event stream on p and reads its campaign_data
// and subscribed.
func (tp *twoProcs) stream(t *testing.T, p *proc, wait time.Duration) *testenv.SSEClient {
	t.Helper()
	sse, _, err := testenv.DialSSE(t, p.url("/sse"+tp.room[len("/ws"):]), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"campaign_data", "subscribed"} {
		if ev := sse.MustNext(wait); ev.Event != want {
			t.Fatalf("SSE on %s got %s %s; want %s", p.name, ev.Event, ev.Data, want)
		}
	}
	return sse
}

// dial connects to the campaign's room on p, presence ignored.
func (tp *twoProcs) dial(t *testing.T, p *proc, query string) *testenv.WSClient {
	t.Helper()
	c := testenv.MustDialWS(t, p.ws(tp.room+query), nil)
	c.Ignore = []string{"presence"}
	return c
}

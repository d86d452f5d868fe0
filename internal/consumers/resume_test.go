package consumers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/app"
	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/realtime/layer"
	"github.com/heraldhq/herald/internal/testenv"
)

// room is a campaign with an owner, for resume tests.
type room struct {
	s     *server
	uid   int64
	tok   string
	id    int64
	group string
}

func newRoom(t *testing.T, s *server) room {
	uid, tok := s.user("owner")
	c := s.call("POST", "/api/campaigns/", tok, map[string]any{"title": "Room", "goal_amount": "1.00", "status": "active"}, 201)
	return room{s: s, uid: uid, tok: tok, id: id(c), group: fmt.Sprintf("campaign_%d", id(c))}
}

// comment posts n comments straight through the platform (fast) and waits
// until the relay published them; it returns their ids.
func (r room) comment(t *testing.T, n int) []int64 {
	t.Helper()
	ids := make([]int64, n)
	for i := range ids {
		content := fmt.Sprint("comment ", i)
		c, err := r.s.app.Platform().PostComment(context.Background(), r.uid, r.id, platform.CommentInput{Content: &content})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = c.ID
	}
	r.s.settle()
	return ids
}

// dialV2 opens a v2 connection that passes over presence messages.
func dialV2(t *testing.T, url string) *testenv.WSClient {
	t.Helper()
	c := testenv.MustDialWS(t, url, nil)
	c.Ignore = []string{"presence"}
	return c
}

func (r room) url(query string) string {
	return r.s.ws + fmt.Sprintf("/ws/campaign/%d/?v=2", r.id) + query
}

func resumeQuery(group, epoch string, offset uint64) string {
	return "&resume=" + url.QueryEscape(fmt.Sprintf("%s:%s:%d", group, epoch, offset))
}

func commentID(t *testing.T, ev testenv.Event) int64 {
	t.Helper()
	if ev.Type != "comment" {
		t.Fatalf("got %s %s; want a comment", ev.Type, ev.Data)
	}
	var d struct{ ID int64 }
	_ = json.Unmarshal(ev.Data, &d)
	return d.ID
}

func subscribed(t *testing.T, ev testenv.Event, group string) bool {
	t.Helper()
	recovered, _ := subscribedAt(t, ev, group)
	return recovered
}

// subscribedAt reads a subscribed message for group: whether the join
// replayed what the client missed, and where the client then stands.
func subscribedAt(t *testing.T, ev testenv.Event, group string) (bool, layer.Position) {
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

// joined reads what a fresh v2 connection to a campaign room gets first,
// campaign_data and then where it stands, and returns that position.
func joined(t *testing.T, c *testenv.WSClient, group string) layer.Position {
	t.Helper()
	if ev := c.NextEvent(wait); ev.Type != "campaign_data" {
		t.Fatalf("first %s %s; want campaign_data", ev.Type, ev.Data)
	}
	recovered, at := subscribedAt(t, c.NextEvent(wait), group)
	if !recovered {
		t.Fatalf("a fresh connection to %s was not recovered", group)
	}
	return at
}

// A v2 client that drops while 1,000 events are published gets each of them
// on resume exactly once, in order, before any live event, and no snapshot.
func TestResumeAfterDisconnect(t *testing.T) {
	s := start(t, testenv.SQLite(t))
	r := newRoom(t, s)
	c := dialV2(t, r.url(""))
	joined(t, c, r.group)
	r.comment(t, 3)
	var last testenv.Event
	for i := 0; i < 3; i++ {
		last = c.NextEvent(wait)
		if last.Group != r.group || last.Offset == 0 || last.Epoch == "" {
			t.Fatalf("v2 event without its position: %+v", last)
		}
	}
	c.Close()
	missed := r.comment(t, 1000)

	c = dialV2(t, r.url(resumeQuery(r.group, last.Epoch, last.Offset)))
	for i, want := range missed {
		ev := c.NextEvent(wait)
		if got := commentID(t, ev); got != want || ev.Offset != last.Offset+uint64(i)+1 || ev.Epoch != last.Epoch {
			t.Fatalf("replayed event %d: comment %d at offset %d; want comment %d at %d", i, got, ev.Offset, want, last.Offset+uint64(i)+1)
		}
	}
	if !subscribed(t, c.NextEvent(wait), r.group) {
		t.Fatal("resume within the window reported recovered=false")
	}
	live := r.comment(t, 1)
	ev := c.NextEvent(wait)
	if commentID(t, ev) != live[0] || ev.Offset != last.Offset+1001 {
		t.Fatalf("live event after the replay: %+v", ev)
	}
	c.NoMessage(200 * time.Millisecond)
}

// A position from another epoch, or older than the window, is refused with
// recovered=false, and the client gets a fresh snapshot instead.
func TestResumeOutsideWindow(t *testing.T) {
	s := start(t, testenv.SQLite(t))
	r := newRoom(t, s)
	c := dialV2(t, r.url(""))
	joined(t, c, r.group)
	r.comment(t, 1)
	first := c.NextEvent(wait)
	c.Close()

	stale := dialV2(t, r.url(resumeQuery(r.group, "not-this-epoch", first.Offset)))
	if subscribed(t, stale.NextEvent(wait), r.group) {
		t.Fatal("a stale epoch was recovered")
	}
	if ev := stale.NextEvent(wait); ev.Type != "campaign_data" {
		t.Fatalf("after recovered=false: %s; want campaign_data", ev.Type)
	}
	stale.Close()

	r.comment(t, 1100) // more than the 1,000-event window
	old := dialV2(t, r.url(resumeQuery(r.group, first.Epoch, first.Offset)))
	if subscribed(t, old.NextEvent(wait), r.group) {
		t.Fatal("a position beyond the window was recovered")
	}
	if ev := old.NextEvent(wait); ev.Type != "campaign_data" {
		t.Fatalf("after recovered=false: %s; want campaign_data", ev.Type)
	}
	live := r.comment(t, 1)
	if got := commentID(t, old.NextEvent(wait)); got != live[0] {
		t.Fatalf("live event %d; want %d", got, live[0])
	}
}

// Bad resume parameters are refused before the upgrade with a clear 400.
func TestResumeBadInput(t *testing.T) {
	s := start(t, testenv.SQLite(t))
	r := newRoom(t, s)
	for _, q := range []string{
		"&resume=nonsense", "&resume=campaign_1:e", "&resume=campaign_1:e:x", "&resume=Bad-Group:e:1",
		"&resume=" + strings.Repeat("campaign_1:e:1,", 300) + "campaign_1:e:1",
	} {
		if _, status, _ := testenv.DialWS(t, r.url(q), nil); status != 400 {
			t.Errorf("%.60s: status %d; want 400", q, status)
		}
	}
	v1 := s.ws + fmt.Sprintf("/ws/campaign/%d/?resume=%s", r.id, url.QueryEscape(r.group+":e:1"))
	if _, status, _ := testenv.DialWS(t, v1, nil); status != 400 {
		t.Errorf("resume on v1: status %d; want 400", status)
	}
	if _, status, _ := testenv.DialWS(t, r.s.ws+fmt.Sprintf("/ws/campaign/%d/?v=3", r.id), nil); status != 400 {
		t.Errorf("v=3: status %d; want 400", status)
	}
}

// The quest creator's connection resumes its quest group: applications made
// while it was away arrive on reconnect.
func TestResumeApplications(t *testing.T) {
	s := start(t, testenv.SQLite(t))
	creator, creatorTok := s.user("creator")
	q := s.call("POST", "/api/quests/", creatorTok, map[string]string{"title": "Survey"}, 201)
	group := fmt.Sprintf("quest_%d", id(q))
	s.settle()
	c := testenv.MustDialWS(t, s.ws+"/ws/applications/?v=2&token="+creatorTok, nil)
	own := fmt.Sprintf("user_%d", creator)
	_, ownAt := subscribedAt(t, c.NextEvent(wait), own)
	subscribedAt(t, c.NextEvent(wait), group)
	_, tok := s.user("first")
	s.call("POST", fmt.Sprintf("/api/quests/%d/applications/", id(q)), tok, map[string]string{}, 201)
	first := c.NextEvent(wait)
	if first.Type != "new_application" || first.Group != group {
		t.Fatalf("got %+v", first)
	}
	c.Close()
	var want []string
	for i := 0; i < 5; i++ {
		name := fmt.Sprint("later", i)
		_, tok := s.user(name)
		s.call("POST", fmt.Sprintf("/api/quests/%d/applications/", id(q)), tok, map[string]string{}, 201)
		want = append(want, name)
	}
	s.settle()
	resume := url.QueryEscape(fmt.Sprintf("%s:%s:%d,%s:%s:%d", own, ownAt.Epoch, ownAt.Offset, group, first.Epoch, first.Offset))
	c = dialV2(t, s.ws+"/ws/applications/?v=2&token="+creatorTok+"&resume="+resume)
	if !subscribed(t, c.NextEvent(wait), own) {
		t.Fatalf("the creator's own group, quiet all along, was not recovered")
	}
	for i, name := range want {
		ev := c.NextEvent(wait)
		var d struct{ Applicant string }
		_ = json.Unmarshal(ev.Data, &d)
		if ev.Type != "new_application" || d.Applicant != name || ev.Offset != first.Offset+uint64(i)+1 {
			t.Fatalf("replayed %d: %+v %s; want %s's application", i, ev, ev.Data, name)
		}
	}
	if !subscribed(t, c.NextEvent(wait), group) {
		t.Fatal("not recovered")
	}
}

// v1 clients see exactly the seeds' frames: {"type":…,"data":<REST JSON>},
// nothing more, never a v2 message.
func TestV1FramesAreExact(t *testing.T) {
	s := start(t, testenv.SQLite(t))
	r := newRoom(t, s)
	c := testenv.MustDialWS(t, s.ws+fmt.Sprintf("/ws/campaign/%d/", r.id), nil)
	c.NextEvent(wait)
	com := s.call("POST", fmt.Sprintf("/api/campaigns/%d/comments/", r.id), r.tok, map[string]any{"content": "exact"}, 201)
	raw, err := c.Next(wait)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"comment","data":` + strings.TrimSpace(com["_raw"].(string)) + `}`
	if string(raw) != want {
		t.Fatalf("v1 frame\n%s\nwant\n%s", raw, want)
	}
}

// A slow consumer cut off with 4000 resumes from the last event it read and
// misses nothing.
func TestSlowConsumerResumes(t *testing.T) {
	s := startWith(t, testenv.SQLite(t), []app.Option{queueBoundOnly()})
	r := newRoom(t, s)
	c := dialV2(t, r.url(""))
	joined(t, c, r.group)
	big := strings.Repeat("y", 4900)
	var all []int64
	// Publish until the server cuts the unread connection off (its 4 MiB
	// queue holds ~850 of these), then stop: what it lost stays within the
	// 1,000-event window.
	for s.app.Hub().SlowConsumers() == 0 {
		if len(all) > 5000 {
			t.Fatal("never cut off")
		}
		for i := 0; i < 50; i++ {
			content := big
			cm, err := s.app.Platform().PostComment(context.Background(), r.uid, r.id, platform.CommentInput{Content: &content})
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, cm.ID)
		}
		s.settle()
	}
	var last testenv.Event
	got := 0
	for {
		raw, err := c.Next(wait)
		if err != nil {
			break
		}
		var ev testenv.Event
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Type == "comment" {
			last = ev
			got++
		}
	}
	if c.CloseCode != 4000 {
		t.Fatalf("the unread connection ended with %d after %d events; want 4000", c.CloseCode, got)
	}
	if got == 0 || got >= len(all) {
		t.Fatalf("read %d of %d before the cut", got, len(all))
	}
	c2 := dialV2(t, r.url(resumeQuery(r.group, last.Epoch, last.Offset)))
	for _, want := range all[got:] {
		if id := commentID(t, c2.NextEvent(wait)); id != want {
			t.Fatalf("resumed with comment %d; want %d", id, want)
		}
	}
	if !subscribed(t, c2.NextEvent(wait), r.group) {
		t.Fatal("not recovered")
	}
}

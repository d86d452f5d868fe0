package consumers_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/app"
	"github.com/heraldhq/herald/internal/consumers"
	"github.com/heraldhq/herald/internal/realtime/layer"
	"github.com/heraldhq/herald/internal/testenv"
)

// replayed reads the n comments a resume replays after from, then its
// subscribed recovered=true, which must leave the client at the last.
func replayed(t *testing.T, c *testenv.WSClient, group string, from layer.Position, want []int64) layer.Position {
	t.Helper()
	at := from
	for i, id := range want {
		ev := c.NextEvent(wait)
		if got := commentID(t, ev); got != id || ev.Group != group || (i > 0 || from.Epoch != "") && ev.Epoch != at.Epoch || ev.Offset != at.Offset+1 {
			t.Fatalf("replayed %d: comment %d at %s:%d; want comment %d after %+v", i, got, ev.Epoch, ev.Offset, id, at)
		}
		at = layer.Position{Offset: ev.Offset, Epoch: ev.Epoch}
	}
	recovered, told := subscribedAt(t, c.NextEvent(wait), group)
	if !recovered || told != at {
		t.Fatalf("after the replay: subscribed recovered=%v at %+v; want recovered at %+v", recovered, told, at)
	}
	return at
}

func query(group string, p layer.Position) string { return resumeQuery(group, p.Epoch, p.Offset) }

// A v2 client knows where it stands in every group from the moment it
// joins, not from the group's first event: one that heard nothing before
// it was cut off resumes from that position and gets exactly what was
// published meanwhile (a campaign room that never had an event, one quiet
// since, a subscribe, an event stream, the groups of /ws/applications/).
func TestQuietGroupsResume(t *testing.T) {
	s := start(t, testenv.SQLite(t))
	r := newRoom(t, s)

	// A room that never had an event: its position is the start.
	c := dialV2(t, r.url(""))
	at := joined(t, c, r.group)
	if at != (layer.Position{}) {
		t.Fatalf("a room without events is at %+v; want the start", at)
	}
	c.Close()
	missed := r.comment(t, 2)
	c = dialV2(t, r.url(query(r.group, at)))
	at = replayed(t, c, r.group, at, missed)
	c.Close()

	// A room quiet while the client was there.
	c = dialV2(t, r.url(""))
	if quiet := joined(t, c, r.group); quiet != at {
		t.Fatalf("joined at %+v; want %+v, where the room stands", quiet, at)
	}
	c.Close()
	missed = r.comment(t, 3)
	c = dialV2(t, r.url(query(r.group, at)))
	at = replayed(t, c, r.group, at, missed)
	// Nothing else came (no campaign_data): the answer to a message sent
	// now is next.
	c.Send(map[string]any{"type": "subscribe", "id": "sync", "data": map[string]any{"group": r.group}})
	if got := ackID(t, c.NextEvent(wait)); got != `"sync"` {
		t.Fatalf("after the replay: ack %s; want the sync ack", got)
	}
	c.Close()

	// A group subscribed to, told its place with the ack.
	_, otherTok := s.user("other")
	quiet := s.call("POST", "/api/campaigns/", r.tok, map[string]any{"title": "Quiet", "goal_amount": "1.00", "status": "active"}, 201)
	qgroup := fmt.Sprintf("campaign_%d", id(quiet))
	c = dialV2(t, s.ws+"/ws/applications/?v=2&token="+otherTok)
	c.NextEvent(wait) // subscribed to the user's own group
	c.Send(map[string]any{"type": "subscribe", "id": "s", "data": map[string]any{"group": qgroup}})
	ackID(t, c.NextEvent(wait))
	recovered, qat := subscribedAt(t, c.NextEvent(wait), qgroup)
	if !recovered || qat != (layer.Position{}) {
		t.Fatalf("subscribed to a room without events: recovered=%v at %+v; want recovered at the start", recovered, qat)
	}
	c.Close()
	var ids []int64
	for range 2 {
		ids = append(ids, id(s.call("POST", fmt.Sprintf("/api/campaigns/%d/comments/", id(quiet)), r.tok, map[string]any{"content": "while away"}, 201)))
	}
	s.settle()
	c = dialV2(t, s.ws+"/ws/applications/?v=2&token="+otherTok)
	c.NextEvent(wait)
	c.Send(map[string]any{"type": "subscribe", "id": "s", "data": map[string]any{"group": qgroup, "epoch": qat.Epoch, "offset": qat.Offset}})
	// The replay, then the ack and where it leaves the client.
	for i, want := range ids {
		if ev := c.NextEvent(wait); commentID(t, ev) != want || ev.Group != qgroup || ev.Offset != uint64(i)+1 {
			t.Fatalf("replayed %d: %+v; want comment %d at offset %d", i, ev, want, i+1)
		}
	}
	ackID(t, c.NextEvent(wait))
	if recovered, p := subscribedAt(t, c.NextEvent(wait), qgroup); !recovered || p.Offset != uint64(len(ids)) {
		t.Fatalf("subscribed recovered=%v at %+v; want recovered at offset %d", recovered, p, len(ids))
	}

	// An event stream: its id names the room from the start.
	sse := s.base + fmt.Sprintf("/sse/campaign/%d/", r.id)
	st, _, err := testenv.DialSSE(t, sse, nil)
	if err != nil {
		t.Fatal(err)
	}
	st.MustNext(wait) // campaign_data
	if ev := st.MustNext(wait); ev.Event != "subscribed" || st.LastID != fmt.Sprintf("%s:%s:%d", r.group, at.Epoch, at.Offset) {
		t.Fatalf("%+v, id %q; want subscribed with the room's position as its id", ev, st.LastID)
	}
	st.Close()
	missed = r.comment(t, 2)
	st, _, err = testenv.DialSSE(t, sse, http.Header{"Last-Event-ID": {st.LastID}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range missed {
		var d struct{ ID int64 }
		if ev := st.MustNext(wait); ev.Event != "comment" || json.Unmarshal([]byte(ev.Data), &d) != nil || d.ID != want {
			t.Fatalf("%+v; want comment %d replayed", ev, want)
		}
	}
	if ev := st.MustNext(wait); ev.Event != "subscribed" || !strings.Contains(ev.Data, `"recovered":true`) {
		t.Fatalf("after the replay: %+v", ev)
	}

	// /ws/applications/: the creator's own group and a quest without
	// applications yet.
	creator, creatorTok := s.user("creator")
	q := s.call("POST", "/api/quests/", creatorTok, map[string]string{"title": "Quiet quest"}, 201)
	s.settle()
	own, quest := fmt.Sprintf("user_%d", creator), fmt.Sprintf("quest_%d", id(q))
	a := dialV2(t, s.ws+"/ws/applications/?v=2&token="+creatorTok)
	_, ownAt := subscribedAt(t, a.NextEvent(wait), own)
	_, questAt := subscribedAt(t, a.NextEvent(wait), quest)
	a.Close()
	_, applicantTok := s.user("applicant")
	s.call("POST", fmt.Sprintf("/api/quests/%d/applications/", id(q)), applicantTok, map[string]string{"message": "me"}, 201)
	s.settle()
	resume := url.QueryEscape(fmt.Sprintf("%s:%s:%d,%s:%s:%d", own, ownAt.Epoch, ownAt.Offset, quest, questAt.Epoch, questAt.Offset))
	a = dialV2(t, s.ws+"/ws/applications/?v=2&token="+creatorTok+"&resume="+resume)
	if !subscribed(t, a.NextEvent(wait), own) {
		t.Fatal("own group not recovered")
	}
	if ev := a.NextEvent(wait); ev.Type != "new_application" || ev.Group != quest || ev.Offset != questAt.Offset+1 {
		t.Fatalf("%+v; want the application made while away", ev)
	}
	if !subscribed(t, a.NextEvent(wait), quest) {
		t.Fatal("quest group not recovered")
	}
}

// A resume within the window reads no campaign_data from the database,
// however many clients come back, while who may resume what holds: a draft
// only its owner, and anyone else only from after its publication.
func TestResumeReadsNoSnapshot(t *testing.T) {
	hooks := &consumers.Hooks{}
	s := startWith(t, testenv.SQLite(t), []app.Option{app.WithConsumersConfig(hooks.Install)})
	r := newRoom(t, s)
	owner := dialV2(t, r.url("&token="+r.tok))
	joined(t, owner, r.group)
	ids := r.comment(t, 5)
	var evs []testenv.Event
	for range ids {
		evs = append(evs, owner.NextEvent(wait))
	}

	before := hooks.SnapshotLoads()
	for i := range 20 {
		// Anonymous clients, from positions only the owner was told.
		from := evs[i%len(evs)]
		c := dialV2(t, r.url(resumeQuery(r.group, from.Epoch, from.Offset)))
		replayed(t, c, r.group, layer.Position{Offset: from.Offset, Epoch: from.Epoch}, ids[i%len(evs)+1:])
	}
	st, _, err := testenv.DialSSE(t, s.base+fmt.Sprintf("/sse/campaign/%d/", r.id), http.Header{"Last-Event-ID": {fmt.Sprintf("%s:%s:%d", r.group, evs[4].Epoch, evs[4].Offset)}})
	if err != nil {
		t.Fatal(err)
	}
	if ev := st.MustNext(wait); ev.Event != "subscribed" || !strings.Contains(ev.Data, `"recovered":true`) {
		t.Fatalf("SSE resume: %+v", ev)
	}
	if loads := hooks.SnapshotLoads() - before; loads != 0 {
		t.Errorf("21 resumes within the window read campaign_data %d times; want none", loads)
	}

	// A draft: its owner resumes, nobody else, whatever position they name.
	d := s.call("POST", "/api/campaigns/", r.tok, map[string]any{"title": "Draft", "goal_amount": "1.00"}, 201)
	dgroup := fmt.Sprintf("campaign_%d", id(d))
	droom := s.ws + fmt.Sprintf("/ws/campaign/%d/?v=2", id(d))
	o := dialV2(t, droom+"&token="+r.tok)
	joined(t, o, dgroup)
	s.call("POST", fmt.Sprintf("/api/campaigns/%d/comments/", id(d)), r.tok, map[string]any{"content": secret}, 201)
	seen := o.NextEvent(wait)
	o.Close()
	s.call("POST", fmt.Sprintf("/api/campaigns/%d/comments/", id(d)), r.tok, map[string]any{"content": secret}, 201)
	s.settle()
	o = dialV2(t, droom+"&token="+r.tok+resumeQuery(dgroup, seen.Epoch, seen.Offset))
	if ev := o.NextEvent(wait); ev.Type != "comment" || ev.Offset != seen.Offset+1 {
		t.Fatalf("owner resuming the draft: %s %s", ev.Type, ev.Data)
	}
	subscribed(t, o.NextEvent(wait), dgroup)
	_, otherTok := s.user("other")
	for who, q := range map[string]string{"anonymous": "", "another user": "&token=" + otherTok} {
		for _, p := range []string{resumeQuery(dgroup, seen.Epoch, seen.Offset), resumeQuery(dgroup, "", 0)} {
			c := dialV2(t, droom+q+p)
			if code := errorCode(t, c.NextEvent(wait)); code != "not_found" {
				t.Fatalf("%s resuming a draft: %s; want not_found", who, code)
			}
			if code := c.WaitClose(wait); code != 4404 {
				t.Fatalf("%s resuming a draft: closed with %d; want 4404", who, code)
			}
		}
	}
	if _, status, _ := testenv.DialSSE(t, s.base+fmt.Sprintf("/sse/campaign/%d/", id(d)), http.Header{"Last-Event-ID": {fmt.Sprintf("%s:%s:%d", dgroup, seen.Epoch, seen.Offset)}}); status != http.StatusNotFound {
		t.Fatalf("an event stream resuming a draft: status %d; want 404", status)
	}

	// Made public: a position from before is not resumed by anyone else,
	// who gets a fresh campaign_data instead.
	s.call("PATCH", fmt.Sprintf("/api/campaigns/%d/", id(d)), r.tok, map[string]any{"status": "active"}, 200)
	s.settle()
	c := dialV2(t, droom+"&token="+otherTok+resumeQuery(dgroup, seen.Epoch, seen.Offset))
	if subscribed(t, c.NextEvent(wait), dgroup) {
		t.Fatal("a pre-publication position was recovered by another user")
	}
	if ev := c.NextEvent(wait); ev.Type != "campaign_data" {
		t.Fatalf("after recovered=false: %s %s; want campaign_data", ev.Type, ev.Data)
	}
}

package consumers_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testenv"
)

// The campaign room over SSE: retry advice, campaign_data, then each event
// with its REST JSON and a resumable id.
func TestSSECampaignRoom(t *testing.T) {
	s := start(t, testenv.SQLite(t))
	r := newRoom(t, s)
	c, _, err := testenv.DialSSE(t, s.base+fmt.Sprintf("/sse/campaign/%d/", r.id), nil)
	if err != nil {
		t.Fatal(err)
	}
	if ev := c.MustNext(wait); ev.Event != "campaign_data" || ev.ID != "" {
		t.Fatalf("first event %+v", ev)
	}
	// Where the stream stands in the room, as an id before its first event.
	if ev := c.MustNext(wait); ev.Event != "subscribed" || ev.ID != r.group+"::0" || !strings.Contains(ev.Data, `"recovered":true`) {
		t.Fatalf("second event %+v; want subscribed with the id %s::0", ev, r.group)
	}
	if c.Retry == "" {
		t.Error("no retry: advice")
	}
	com := s.call("POST", fmt.Sprintf("/api/campaigns/%d/comments/", r.id), r.tok, map[string]any{"content": "over SSE"}, 201)
	ev := c.MustNext(wait)
	if ev.Event != "comment" || !strings.HasPrefix(ev.ID, r.group+":") {
		t.Fatalf("event %+v", ev)
	}
	sameJSON(t, json.RawMessage(ev.Data), raw(com))

	if _, status, _ := testenv.DialSSE(t, s.base+"/sse/campaign/999999/", nil); status != http.StatusNotFound {
		t.Errorf("unknown campaign: status %d; want 404", status)
	}
}

// The browser's own reconnect with Last-Event-ID resumes without loss: a
// stream dropped while 1,000 events are published gets each exactly once,
// in order.
func TestSSELastEventIDResumes(t *testing.T) {
	s := start(t, testenv.SQLite(t))
	r := newRoom(t, s)
	url := s.base + fmt.Sprintf("/sse/campaign/%d/", r.id)
	c, _, err := testenv.DialSSE(t, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.MustNext(wait) // campaign_data
	c.MustNext(wait) // subscribed
	r.comment(t, 2)
	c.MustNext(wait)
	c.MustNext(wait)
	last := c.LastID
	c.Close()
	missed := r.comment(t, 1000)

	c2, _, err := testenv.DialSSE(t, url, http.Header{"Last-Event-ID": {last}})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range missed {
		ev := c2.MustNext(wait)
		var d struct{ ID int64 }
		_ = json.Unmarshal([]byte(ev.Data), &d)
		if ev.Event != "comment" || d.ID != want {
			t.Fatalf("replayed %d: %s %s; want comment %d", i, ev.Event, ev.Data, want)
		}
	}
	if ev := c2.MustNext(wait); ev.Event != "subscribed" || !strings.Contains(ev.Data, `"recovered":true`) {
		t.Fatalf("after the replay: %+v", ev)
	}
}

// /sse/applications/ needs credentials; its ids carry the position in every
// group of the stream, so one Last-Event-ID resumes them all.
func TestSSEApplicationsResumesAllGroups(t *testing.T) {
	s := start(t, testenv.SQLite(t))
	creatorID, creatorTok := s.user("creator")
	_ = creatorID
	if _, status, _ := testenv.DialSSE(t, s.base+"/sse/applications/", nil); status != http.StatusForbidden {
		t.Fatalf("anonymous: status %d; want 403", status)
	}
	q := s.call("POST", "/api/quests/", creatorTok, map[string]string{"title": "Q"}, 201)
	// The creator also applies elsewhere, so it has events in two groups.
	_, otherTok := s.user("other")
	q2 := s.call("POST", "/api/quests/", otherTok, map[string]string{"title": "Q2"}, 201)
	s.settle()
	auth := http.Header{"Authorization": {"Bearer " + creatorTok}}
	c, _, err := testenv.DialSSE(t, s.base+"/sse/applications/", auth)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the creator's own group and its quest's
		if ev := c.MustNext(wait); ev.Event != "subscribed" {
			t.Fatalf("first events: %+v; want subscribed", ev)
		}
	}
	_, applicantTok := s.user("applicant")
	s.call("POST", fmt.Sprintf("/api/quests/%d/applications/", id(q)), applicantTok, map[string]string{}, 201)
	mine := s.call("POST", fmt.Sprintf("/api/quests/%d/applications/", id(q2)), creatorTok, map[string]string{}, 201)
	s.call("PATCH", fmt.Sprintf("/api/applications/%d/", id(mine)), otherTok, map[string]string{"status": "approved"}, 200)
	got := map[string]bool{}
	for i := 0; i < 2; i++ {
		got[c.MustNext(wait).Event] = true
	}
	if !got["new_application"] || !got["application_update"] {
		t.Fatalf("events %v", got)
	}
	if !strings.Contains(c.LastID, fmt.Sprintf("quest_%d:", id(q))) || !strings.Contains(c.LastID, "user_") {
		t.Fatalf("id %q does not hold both groups' positions", c.LastID)
	}
	c.Close()
	_, lateTok := s.user("late")
	s.call("POST", fmt.Sprintf("/api/quests/%d/applications/", id(q)), lateTok, map[string]string{}, 201)
	s.call("PATCH", fmt.Sprintf("/api/applications/%d/", id(mine)), otherTok, map[string]string{"status": "rejected"}, 200)
	s.settle()
	h := http.Header{"Authorization": {"Bearer " + creatorTok}, "Last-Event-ID": {c.LastID}}
	c2, _, err := testenv.DialSSE(t, s.base+"/sse/applications/", h)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for i := 0; i < 4; i++ { // two replayed events and two subscribed notices
		ev := c2.MustNext(wait)
		seen[ev.Event]++
		if ev.Event == "subscribed" && !strings.Contains(ev.Data, `"recovered":true`) {
			t.Fatalf("not recovered: %s", ev.Data)
		}
	}
	if seen["new_application"] != 1 || seen["application_update"] != 1 || seen["subscribed"] != 2 {
		t.Fatalf("after resume: %v", seen)
	}
	if ev, ok := c2.Next(200 * time.Millisecond); ok {
		t.Fatalf("extra event %+v", ev)
	}
}

// Shutdown ends streams; the browser would reconnect elsewhere.
func TestSSEShutdown(t *testing.T) {
	s := start(t, testenv.SQLite(t))
	r := newRoom(t, s)
	c, _, err := testenv.DialSSE(t, s.base+fmt.Sprintf("/sse/campaign/%d/", r.id), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.MustNext(wait) // campaign_data
	c.MustNext(wait) // subscribed
	done := make(chan struct{})
	go func() { s.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("shutdown waited on the open stream")
	}
	if _, ok := c.Next(wait); ok {
		t.Fatal("stream still delivering after shutdown")
	}
}

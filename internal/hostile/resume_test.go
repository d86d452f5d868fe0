package hostile

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// resumeCase is a resume position string, given as ?resume= on a v2
// WebSocket and on an event stream, and as an event stream's
// Last-Event-ID. want are the WebSocket handshake's allowed statuses (an
// event stream answers 200 where the WebSocket answers 101).
type resumeCase struct {
	name   string
	resume string
	want   []int
}

const switching = http.StatusSwitchingProtocols

func resumeCases() []hcase {
	groups := func(n int, format string) string {
		g := make([]string, n)
		for i := range g {
			g[i] = fmt.Sprintf(format, i+1)
		}
		return strings.Join(g, ",")
	}
	refused := []int{badRequest}
	either := []int{switching, badRequest}
	tooLong := []int{badRequest, http.StatusRequestURITooLong, headerLarge}
	rcs := []resumeCase{
		{"offset 2^63-1 from the start", "campaign_1::9223372036854775807", either},
		{"offset 2^63-1 in another epoch", "campaign_1:x:9223372036854775807", either},
		{"offset 2^64-1", "campaign_1:x:18446744073709551615", either},
		{"offset 2^64-1 from the start", "campaign_1::18446744073709551615", either},
		{"offset 2^64", "campaign_1:x:18446744073709551616", refused},
		{"offset -1", "campaign_1:x:-1", refused},
		{"offset +1", "campaign_1:x:+1", refused},
		{"offset 1e3", "campaign_1:x:1e3", refused},
		{"offset 01", "campaign_1:x:01", either},
		{"10,000 groups", groups(10_000, "campaign_%d:x:1"), tooLong},
		{"3,000 groups", groups(3000, "c_%d:x:1"), tooLong},
		{"257 groups", groups(257, "campaign_%d:x:1"), refused},
		{"256 groups", groups(256, "campaign_%d:x:1"), either},
		{"a group twice", "campaign_1:x:1,campaign_1:y:2", either},
		{"campaign_01", "campaign_01:x:0", either},
		{"campaign_0001 from the start", "campaign_0001::0", either},
		{"another user's group", "user_2::0", []int{switching, badRequest, forbidden}},
		{"a 64-byte epoch", "campaign_1:" + strings.Repeat("e", 64) + ":1", either},
		{"a 65-byte epoch", "campaign_1:" + strings.Repeat("e", 65) + ":1", refused},
		{"a 10k group", strings.Repeat("g", 10_000) + ":x:1", refused},
		{"colons", ":::", refused},
		{"a word", "a", refused},
		{"a group alone", "campaign_1", refused},
		{"no offset", "campaign_1:x", refused},
		{"four fields", "campaign_1:x:1:2", refused},
		{"commas", ",,,", refused},
		{"a trailing comma", "campaign_1:x:1,", refused},
		{"a NUL epoch", "campaign_1:\x00:1", either},
		{"an upper-case group", "Campaign_1:x:1", refused},
		{"unicode", "campaign_１:x:1", refused},
	}
	var out []hcase
	for _, rc := range rcs {
		out = append(out,
			hcase{name: "resume/ws " + rc.name, run: func(t *testing.T, h *herald) {
				resumeWS(t, h, "/ws/campaign/1/?v=2&resume="+url.QueryEscape(rc.resume), rc.want)
			}},
			hcase{name: "resume/sse " + rc.name, run: func(t *testing.T, h *herald) {
				resumeSSE(t, h, "/sse/campaign/1/?resume="+url.QueryEscape(rc.resume), nil, rc.want)
			}},
		)
		if strings.ContainsRune(rc.resume, 0) {
			continue // not a header value
		}
		out = append(out, hcase{name: "resume/Last-Event-ID " + rc.name, run: func(t *testing.T, h *herald) {
			resumeSSE(t, h, "/sse/campaign/1/", http.Header{"Last-Event-Id": {rc.resume}}, rc.want)
		}})
	}
	out = append(out,
		hcase{name: "resume/ws without v=2", run: func(t *testing.T, h *herald) {
			resumeWS(t, h, "/ws/campaign/1/?resume=campaign_1:x:1", []int{badRequest})
		}},
		hcase{name: "resume/ws v=3", run: func(t *testing.T, h *herald) {
			resumeWS(t, h, "/ws/campaign/1/?v=3&resume=campaign_1:x:1", []int{badRequest})
		}},
		hcase{name: "resume/ws v=2 and a NUL", run: func(t *testing.T, h *herald) {
			resumeWS(t, h, "/ws/campaign/1/?v=2%00", []int{badRequest})
		}},
		hcase{name: "resume/another user's groups", run: resumeOthersGroups},
		hcase{name: "resume/another user's groups over SSE", run: resumeOthersGroupsSSE},
		hcase{name: "resume/a draft's room", run: resumeDraftRoom},
		hcase{name: "resume/a draft made public", run: draftReplay},
		hcase{name: "resume/an event stream the client aborts", run: abortedStreams},
	)
	return out
}

// resumeWS opens a v2 campaign room with a resume position: refused with
// one of want, or accepted and then answering as a room does (its state,
// or the resume's outcome), never with a server error.
func resumeWS(t *testing.T, h *herald, path string, want []int) {
	w, err := h.client(t).ws(path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if !slices.Contains(want, w.status) {
		t.Fatalf("handshake answered %d, want one of %v: %s", w.status, want, clip(w.body, 200))
	}
	if !w.upgraded() {
		return
	}
	m, err := w.message(15*time.Second, not("presence"))
	if err != nil {
		t.Fatalf("no first message: %v (close %d)", err, w.closeCode)
	}
	if m.Type != "campaign_data" && m.Type != "subscribed" {
		t.Errorf("first message %s, want campaign_data or subscribed", clip(string(m.raw), 200))
	}
}

// resumeSSE is resumeWS for an event stream.
func resumeSSE(t *testing.T, h *herald, path string, header http.Header, want []int) {
	r, err := h.client(t).stream(path, header, 10*time.Second, "event: campaign_data\n", "event: subscribed\n")
	if err != nil {
		t.Fatal(err)
	}
	status := r.Status
	if status == ok {
		status = switching
	}
	if !slices.Contains(want, status) {
		t.Fatalf("answered %s, want one of %v (200 for 101)", r, want)
	}
	if r.Status == ok && !strings.Contains(string(r.Body), "event: campaign_data") && !strings.Contains(string(r.Body), "event: subscribed") {
		t.Errorf("the stream began %q, want campaign_data or subscribed", clip(string(r.Body), 200))
	}
}

// leaks reports what in b belongs to one of groups.
func leaks(b []byte, groups ...string) []string {
	var out []string
	for _, g := range groups {
		if strings.Contains(string(b), `"`+g+`"`) || strings.Contains(string(b), g+":") {
			out = append(out, g)
		}
	}
	return out
}

// resumeOthersGroups: alice resumes groups that are not hers (dave's user
// group, quests of bob and carol) from their start: nothing of them may
// reach her. The demo data left events in each (applications and their
// decisions).
func resumeOthersGroups(t *testing.T, h *herald) {
	others := []string{"user_4", "quest_1", "quest_3", "user_2"}
	resume := "user_4::0,quest_1::0,quest_3::0,user_2::0"
	w, err := h.client(t).ws("/ws/applications/?v=2&token="+h.fixture.alice+"&resume="+url.QueryEscape(resume), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.status == badRequest || w.status == forbidden {
		return
	}
	if !w.upgraded() {
		t.Fatalf("handshake answered %d", w.status)
	}
	// Whatever the handshake replayed is queued before the answer to the
	// first message.
	if err := w.sendText(`{"type":"probe","id":"probe"}`); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := w.message(15*time.Second, nil)
		if err != nil {
			t.Fatalf("no answer to the probe: %v (close %d)", err, w.closeCode)
		}
		if l := leaks(m.raw, others...); len(l) > 0 {
			t.Errorf("alice got %s: %s", l, clip(string(m.raw), 300))
		}
		if m.replyID() == `"probe"` {
			return
		}
	}
}

// resumeOthersGroupsSSE is resumeOthersGroups as an event stream resuming
// with Last-Event-ID, and an anonymous campaign stream naming the groups
// of a draft and of a user.
func resumeOthersGroupsSSE(t *testing.T, h *herald) {
	c := h.client(t)
	r, err := c.stream("/sse/applications/?token="+h.fixture.alice, http.Header{"Last-Event-Id": {"user_4::0,quest_1::0,quest_3::0,user_1::0"}},
		3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if l := leaks(r.Body, "user_4", "quest_1", "quest_3"); len(l) > 0 {
		t.Errorf("alice's stream holds %s: %s", l, clip(string(r.Body), 500))
	}
	r, err = c.stream("/sse/campaign/1/", http.Header{"Last-Event-Id": {"campaign_3::0,user_1::0,campaign_1::0"}}, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if l := leaks(r.Body, "campaign_3", "user_1"); len(l) > 0 {
		t.Errorf("an anonymous stream holds %s: %s", l, clip(string(r.Body), 500))
	}
}

// resumeDraftRoom: an anonymous client resuming alice's draft from its
// start is told it is not there and closed, with nothing of it.
func resumeDraftRoom(t *testing.T, h *herald) {
	w, err := h.client(t).ws("/ws/campaign/3/?v=2&resume="+url.QueryEscape("campaign_3::0"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if !w.upgraded() {
		return // refusing is fine too
	}
	for {
		m, err := w.message(15*time.Second, not("presence"))
		if err != nil {
			break
		}
		if m.errorCode() != "not_found" {
			t.Errorf("an anonymous client got %s from a draft", clip(string(m.raw), 300))
		}
	}
	if _, err := w.awaitClose(15 * time.Second); err != nil {
		t.Fatal(err)
	}
	if w.closeCode != 4404 {
		t.Errorf("closed with %d, want 4404", w.closeCode)
	}
}

// draftReplay is issue 13's third case: what alice wrote while her
// campaign was a draft must not be replayed to anyone once it is public.
func draftReplay(t *testing.T, h *herald) {
	c := h.client(t)
	f := h.fixture
	var b [6]byte
	_, _ = rand.Read(b[:])
	secret := "SECRET-DRAFT-TEXT-" + hex.EncodeToString(b[:])

	r := c.must(t, jsonReq("POST", "/api/campaigns/", f.alice, `{"title":"Not yet","goal_amount":"10.00","status":"draft"}`))
	var camp struct{ ID int64 }
	if r.Status != created || r.json(&camp) != nil {
		t.Fatalf("create a draft: %s", r)
	}
	room := fmt.Sprintf("/api/campaigns/%d/", camp.ID)
	group := fmt.Sprintf("campaign_%d", camp.ID)
	// alice watches her draft, so she knows when each event is out.
	owner := dialOK(t, c, fmt.Sprintf("/ws/campaign/%d/?v=2&token=%s", camp.ID, f.alice))
	if _, err := owner.message(15*time.Second, func(m msg) bool { return m.Type == "campaign_data" }); err != nil {
		t.Fatalf("alice's room: %v", err)
	}
	r = c.must(t, jsonReq("POST", room+"updates/", f.alice, `{"title":"Plan","content":"`+secret+`"}`))
	var upd struct{ ID int64 }
	if r.Status != created || r.json(&upd) != nil {
		t.Fatalf("post an update to the draft: %s", r)
	}
	ev, err := owner.message(15*time.Second, func(m msg) bool { return m.Type == "update" })
	if err != nil {
		t.Fatalf("alice did not get her update: %v", err)
	}
	r = c.must(t, jsonReq("PATCH", fmt.Sprintf("%supdates/%d/", room, upd.ID), f.alice, `{"content":"Public plan"}`))
	wantStatus(t, r, ok)
	if _, err := owner.message(15*time.Second, func(m msg) bool { return m.Type == "update" }); err != nil {
		t.Fatalf("alice did not get her edit: %v", err)
	}
	r = c.must(t, jsonReq("PATCH", room, f.alice, `{"status":"active"}`))
	wantStatus(t, r, ok)

	for _, resume := range []string{group + "::0", group + ":" + ev.Epoch + ":0"} {
		w := dialOK(t, h.client(t), fmt.Sprintf("/ws/campaign/%d/?v=2&resume=%s", camp.ID, url.QueryEscape(resume)))
		// The replay comes before the resume's outcome; campaign_data
		// follows a failed one.
		for {
			m, err := w.message(15*time.Second, not("presence"))
			if err != nil {
				t.Fatalf("resume %s: %v (close %d)", resume, err, w.closeCode)
			}
			if strings.Contains(string(m.raw), secret) {
				t.Errorf("resume %s: an anonymous client got the draft's text: %s", resume, clip(string(m.raw), 300))
			}
			if m.Type == "campaign_data" || (m.Type == "subscribed" && strings.Contains(string(m.Data), `"recovered":true`)) {
				break
			}
		}
		w.Close()
		for _, s := range []struct {
			path   string
			header http.Header
		}{
			{fmt.Sprintf("/sse/campaign/%d/?resume=%s", camp.ID, url.QueryEscape(resume)), nil},
			{fmt.Sprintf("/sse/campaign/%d/", camp.ID), http.Header{"Last-Event-Id": {resume}}},
		} {
			r, err := h.client(t).stream(s.path, s.header, 10*time.Second, "event: subscribed\n")
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(r.Body), secret) {
				t.Errorf("resume %s over SSE: an anonymous client got the draft's text: %s", resume, clip(string(r.Body), 500))
			}
		}
	}
}

// abortedStreams: clients that give up on an event stream at every moment
// of its start, which herald must take as ordinary (no error logged).
func abortedStreams(t *testing.T, h *herald) {
	c := h.client(t)
	request := "GET /sse/campaign/1/ HTTP/1.1\r\nHost: " + h.addr + "\r\nAccept: text/event-stream\r\n\r\n"
	for _, cut := range []int{len(request) / 2, len(request), -1} {
		nc, err := c.dialer().Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		if cut < 0 {
			_, _ = nc.Write([]byte(request))
			_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, _ = nc.Read(make([]byte, 1)) // the first byte of the answer
		} else {
			_, _ = nc.Write([]byte(request[:cut]))
		}
		nc.Close()
	}
	// And one aborted through the HTTP client while it connects.
	ctx, cancel := ctxTimeout(time.Millisecond)
	defer cancel()
	hr, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.base+"/sse/campaign/1/", nil)
	if res, err := c.hc.Do(hr); err == nil {
		res.Body.Close()
	}
}

package consumers_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/app"
	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/consumers"
	"github.com/heraldhq/herald/internal/testenv"
)

// Groups are named one way only: a v2 subscribe or unsubscribe naming a
// group in another form (which would be joined and never receive anything)
// is answered with invalid_group, and hostile offsets with invalid_message;
// the connection stays in the one canonical group.
func TestNonCanonicalSubscribeRefused(t *testing.T) {
	s := start(t, testenv.SQLite(t))
	r := newRoom(t, s)
	c := dialV2(t, r.url(""))
	joined(t, c, r.group)
	n := fmt.Sprint(r.id)
	for _, g := range []string{
		"campaign_0" + n, "campaign_+" + n, "campaign_ " + n, "campaign_" + n + " ", "Campaign_" + n,
		"campaign_0", "campaign_-1", "campaign_9223372036854775808", "campaign_", "campaign", "campaign_1_1",
		"user_01", "quest_00", "ctl_user_1", "campaign_१", "",
	} {
		for _, typ := range []string{"subscribe", "unsubscribe"} {
			c.Send(map[string]any{"type": typ, "id": g, "data": map[string]any{"group": g}})
			ev := c.NextEvent(wait)
			var d struct{ Code, Message, ID string }
			_ = json.Unmarshal(ev.Data, &d)
			if ev.Type != "error" || d.Code != "invalid_group" || d.ID != g || !strings.Contains(d.Message, "campaign_N") {
				t.Fatalf("%s %q: %s %s; want invalid_group", typ, g, ev.Type, ev.Data)
			}
		}
	}
	for _, off := range []string{"18446744073709551615", "9223372036854775808", "-1", "1.5", "1e3"} {
		c.Send(fmt.Sprintf(`{"type":"subscribe","id":1,"data":{"group":%q,"epoch":"e","offset":%s}}`, r.group, off))
		if code := errorCode(t, c.NextEvent(wait)); code != "invalid_message" {
			t.Fatalf("offset %s: %s; want invalid_message", off, code)
		}
	}
	c.Send(map[string]any{"type": "subscribe", "id": "ok", "data": map[string]any{"group": r.group}})
	if got := ackID(t, c.NextEvent(wait)); got != `"ok"` {
		t.Fatalf("canonical subscribe: ack %s", got)
	}
	ids := r.comment(t, 1)
	if ev := c.NextEvent(wait); commentID(t, ev) != ids[0] || ev.Group != r.group {
		t.Fatalf("event %+v; want comment %d in %s", ev, ids[0], r.group)
	}
	// Nothing else came: the answer to a message sent now is next.
	c.Send(map[string]any{"type": "subscribe", "id": "sync", "data": map[string]any{"group": r.group}})
	if got := ackID(t, c.NextEvent(wait)); got != `"sync"` {
		t.Fatalf("after the comment: ack %s; want the sync ack", got)
	}
}

// ?resume= and Last-Event-ID name groups canonically and offsets within
// int64, or the handshake is refused with 400.
func TestNonCanonicalResumeRefused(t *testing.T) {
	s := start(t, testenv.SQLite(t))
	r := newRoom(t, s)
	n := fmt.Sprint(r.id)
	for _, q := range []string{
		"campaign_0" + n + ":e:1", "campaign_+" + n + ":e:1", "ctl_user_1:e:1", "user_1:e:18446744073709551615",
		"user_1:e:9223372036854775808", "user_1:e:-1", "user_1:e:+1", "user_1:e:", "user_1:e:0x1",
		"user_1:bad epoch:1", "user_1:e;:1",
	} {
		if _, status, _ := testenv.DialWS(t, r.url("&resume="+url.QueryEscape(q)), nil); status != http.StatusBadRequest {
			t.Errorf("resume %q: status %d; want 400", q, status)
		}
		if _, status, _ := testenv.DialSSE(t, s.base+"/sse/campaign/"+n+"/", http.Header{"Last-Event-ID": {q}}); status != http.StatusBadRequest {
			t.Errorf("Last-Event-ID %q: status %d; want 400", q, status)
		}
	}
	if _, status, err := testenv.DialWS(t, r.url("&resume="+url.QueryEscape(r.group+":e:9223372036854775807")), nil); err != nil {
		t.Errorf("resume at the largest offset: status %d, %v; want accepted", status, err)
	}
}

// A campaign room's path names its id canonically, or answers 404, as
// non-numeric ids do.
func TestNonCanonicalCampaignPath(t *testing.T) {
	s := start(t, testenv.SQLite(t))
	r := newRoom(t, s)
	n := fmt.Sprint(r.id)
	for _, path := range []string{"+" + n, "0" + n, "%20" + n, n + "%20", "-" + n, "0", "9223372036854775808"} {
		if _, status, _ := testenv.DialWS(t, s.ws+"/ws/campaign/"+path+"/", nil); status != http.StatusNotFound {
			t.Errorf("/ws/campaign/%s/: status %d; want 404", path, status)
		}
		if _, status, _ := testenv.DialSSE(t, s.base+"/sse/campaign/"+path+"/", nil); status != http.StatusNotFound {
			t.Errorf("/sse/campaign/%s/: status %d; want 404", path, status)
		}
	}
}

// A validly signed token of a user that does not exist (a database reset
// under a kept secret) is no credential: the handshake is refused with 403
// as for an invalid token.
func TestUnknownUserRefused(t *testing.T) {
	s := start(t, testenv.SQLite(t))
	r := newRoom(t, s)
	iss, err := auth.NewIssuer([]byte(testenv.Config(t, "").JWTSecret), time.Minute, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ghost, err := iss.Access(r.uid + 1000)
	if err != nil {
		t.Fatal(err)
	}
	bearer := http.Header{"Authorization": {"Bearer " + ghost}}
	for what, try := range map[string]func() int{
		"ws applications ?token=": func() int { _, st, _ := testenv.DialWS(t, s.ws+"/ws/applications/?token="+ghost, nil); return st },
		"ws applications bearer":  func() int { _, st, _ := testenv.DialWS(t, s.ws+"/ws/applications/", bearer); return st },
		"sse applications":        func() int { _, st, _ := testenv.DialSSE(t, s.base+"/sse/applications/?token="+ghost, nil); return st },
		"sse applications bearer": func() int { _, st, _ := testenv.DialSSE(t, s.base+"/sse/applications/", bearer); return st },
		"ws campaign":             func() int { _, st, _ := testenv.DialWS(t, r.url("&token="+ghost), nil); return st },
		"sse campaign": func() int {
			_, st, _ := testenv.DialSSE(t, s.base+fmt.Sprintf("/sse/campaign/%d/", r.id), bearer)
			return st
		},
	} {
		if st := try(); st != http.StatusForbidden {
			t.Errorf("%s with an unknown user's token: status %d; want 403", what, st)
		}
	}
	if _, status, err := testenv.DialWS(t, s.ws+"/ws/applications/?token="+r.tok, nil); err != nil {
		t.Fatalf("the owner's own token: status %d, %v", status, err)
	}
}

// TestSubscriptionsAreBounded: a v2 connection may be in at most MaxGroups
// groups; one more subscribe is refused with too_many_groups until it
// leaves one.
func TestSubscriptionsAreBounded(t *testing.T) {
	s := startWith(t, testenv.SQLite(t), []app.Option{app.WithConsumersConfig(func(c *consumers.Config) { c.MaxGroups = 2 })})
	r := newRoom(t, s)
	var groups []string
	for range 2 {
		c := s.call("POST", "/api/campaigns/", r.tok, map[string]any{"title": "Other", "goal_amount": "1.00", "status": "active"}, 201)
		groups = append(groups, fmt.Sprintf("campaign_%d", id(c)))
	}
	c := dialV2(t, r.url(""))
	if ev := c.NextEvent(wait); ev.Type != "campaign_data" {
		t.Fatalf("first %s", ev.Type)
	}
	subscribe := func(typ, g string) testenv.Event {
		t.Helper()
		c.Send(map[string]any{"type": typ, "id": g, "data": map[string]any{"group": g}})
		for {
			ev := c.NextEvent(wait)
			if ev.Type == "ack" || ev.Type == "error" {
				return ev
			}
		}
	}
	if ev := subscribe("subscribe", groups[0]); ev.Type != "ack" {
		t.Fatalf("second group: %s %s", ev.Type, ev.Data)
	}
	if code := errorCode(t, subscribe("subscribe", groups[1])); code != "too_many_groups" {
		t.Fatalf("third group: %s; want too_many_groups", code)
	}
	if ev := subscribe("unsubscribe", groups[0]); ev.Type != "ack" {
		t.Fatalf("unsubscribe: %s %s", ev.Type, ev.Data)
	}
	if ev := subscribe("subscribe", groups[1]); ev.Type != "ack" {
		t.Fatalf("third group after leaving one: %s %s", ev.Type, ev.Data)
	}
}

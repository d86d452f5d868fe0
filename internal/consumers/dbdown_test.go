package consumers_test

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/heraldhq/herald/internal/testenv"
)

// A handshake that needs the database while it is unreachable is answered
// 503 with Retry-After, as the REST API answers: a load balancer may pass it
// on and the client tries again. Before, it was a 500.
func TestHandshakesWhileTheDatabaseIsDownAnswer503(t *testing.T) {
	dsn, err := url.Parse(testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.StartProxy(t, dsn.Host)
	dsn.Host = proxy.Addr()
	s := start(t, dsn.String())
	_, tok := s.user("owner")
	camp := id(s.call("POST", "/api/campaigns/", tok, map[string]any{
		"title": "Down", "description": "d", "goal_amount": "10.00", "currency": "USD", "status": "active",
	}, 201))
	s.settle()
	proxy.Cut()

	// A room nobody has joined yet, whose visibility and state come from
	// the database, and a user's quests.
	for name, u := range map[string]string{
		"campaign WebSocket":     fmt.Sprintf("%s/ws/campaign/%d/?v=2", s.ws, camp),
		"applications WebSocket": s.ws + "/ws/applications/?token=" + tok,
	} {
		if c, status, err := testenv.DialWS(t, u, nil); status != http.StatusServiceUnavailable {
			if c != nil {
				c.Close()
			}
			t.Errorf("%s with the database down: %d (%v), want 503", name, status, err)
		}
	}
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/sse/campaign/%d/", s.base, camp), nil)
	req.Header.Set("Accept", "text/event-stream")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") != "1" {
		t.Errorf("event stream with the database down: %d, Retry-After %q; want 503 and 1", res.StatusCode, res.Header.Get("Retry-After"))
	}
}

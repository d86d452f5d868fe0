package consumers_test

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/heraldhq/herald/internal/config"
	"github.com/heraldhq/herald/internal/realtime/layer/redistest"
	"github.com/heraldhq/herald/internal/testenv"
)

// While the process cannot reach Redis, a real-time handshake that needs it
// (a room's position or history) is answered 503 with Retry-After, not 500:
// the process cannot take the client now, another may, and a load balancer
// passes such an answer on to the next process (nginx: proxy_next_upstream
// http_503) where it would hand a 500 to the client.
func TestHandshakesWhileRedisIsDownAnswer503(t *testing.T) {
	redis := redistest.Start(t)
	s := start(t, testenv.SQLite(t), func(c *config.Config) { c.Layer = redis.URL() })
	_, tok := s.user("owner")
	camp := id(s.call("POST", "/api/campaigns/", tok, map[string]any{
		"title": "Down", "description": "d", "goal_amount": "10.00", "currency": "USD", "status": "active",
	}, 201))
	s.call("POST", fmt.Sprintf("/api/campaigns/%d/comments/", camp), tok, map[string]string{"content": "one"}, 201)
	s.settle()
	// Not a room this process serves: one it does, it may join a client
	// to from its own subscription.
	redis.Kill()
	resume := url.QueryEscape(fmt.Sprintf("campaign_%d:someepoch:1", camp))
	for _, h := range []struct{ name, url string }{
		{"campaign WebSocket", fmt.Sprintf("%s/ws/campaign/%d/?v=2", s.ws, camp)},
		{"campaign WebSocket resuming", fmt.Sprintf("%s/ws/campaign/%d/?v=2&resume=%s", s.ws, camp, resume)},
		{"applications WebSocket", s.ws + "/ws/applications/?token=" + tok},
	} {
		if c, status, _ := testenv.DialWS(t, h.url, nil); status != http.StatusServiceUnavailable {
			if c != nil {
				c.Close()
			}
			t.Errorf("%s with Redis down: %d, want 503", h.name, status)
		}
	}
	for _, u := range []string{
		fmt.Sprintf("%s/sse/campaign/%d/", s.base, camp),
		fmt.Sprintf("%s/sse/campaign/%d/?resume=%s", s.base, camp, resume),
	} {
		req, _ := http.NewRequest("GET", u, nil)
		req.Header.Set("Accept", "text/event-stream")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") != "1" {
			t.Errorf("event stream %s with Redis down: %d, Retry-After %q; want 503 and 1", u, res.StatusCode, res.Header.Get("Retry-After"))
		}
	}
}

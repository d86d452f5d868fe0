package consumers_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

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
		if res := getStream(t, u); res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") != "1" {
			t.Errorf("event stream %s with Redis down: %d, Retry-After %q; want 503 and 1", u, res.StatusCode, res.Header.Get("Retry-After"))
		}
	}
}

// While the process's subscriber connection to Redis is down and cannot
// come back (Redis refuses new clients), Redis itself still answers on the
// pool's connections, so a handshake to a room the process does not serve
// would pass its position read and be closed with 1011 when its join
// cannot subscribe. It is refused before the upgrade instead, 503 with
// Retry-After, as /readyz reports; a room the process serves is still
// joined from its own subscription; once the subscriber is back, the
// refused handshake is served.
func TestHandshakesWhileSubscriberReconnectsAnswer503(t *testing.T) {
	ctx := context.Background()
	redis := redistest.Start(t)
	s := start(t, testenv.SQLite(t), func(c *config.Config) { c.Layer = redis.URL() })
	_, tok := s.user("owner")
	campaign := func() int64 {
		return id(s.call("POST", "/api/campaigns/", tok, map[string]any{
			"title": "Sub", "description": "d", "goal_amount": "10.00", "currency": "USD", "status": "active",
		}, 201))
	}
	served, other := campaign(), campaign()
	s.settle()
	room := func(camp int64) string { return fmt.Sprintf("%s/ws/campaign/%d/?v=2", s.ws, camp) }
	first := testenv.MustDialWS(t, room(served), nil) // the process subscribes
	if ev := first.NextEvent(wait); ev.Type != "campaign_data" {
		t.Fatalf("first client got %s", ev.Type)
	}

	admin := redis.Client()
	list, err := admin.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	// One slot fewer than the clients now: the subscriber, killed, cannot
	// connect again, while the pool's connections stay.
	if err := admin.ConfigSet(ctx, "maxclients", strconv.Itoa(strings.Count(list, "\n")-1)).Err(); err != nil {
		t.Fatal(err)
	}
	restore := func() { _ = admin.ConfigSet(ctx, "maxclients", "10000").Err() }
	defer restore()
	if err := admin.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	// untilReady waits for /readyz to answer want.
	untilReady := func(want int) {
		t.Helper()
		for deadline := time.Now().Add(wait); getStream(t, s.base+"/readyz").StatusCode != want; {
			if time.Now().After(deadline) {
				t.Fatalf("/readyz did not answer %d", want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	untilReady(http.StatusServiceUnavailable)
	if c, status, _ := testenv.DialWS(t, room(other), nil); status != http.StatusServiceUnavailable {
		if c != nil {
			c.Close()
		}
		t.Fatalf("WebSocket handshake to a room not served here while the subscriber is down: %d, want 503", status)
	}
	if res := getStream(t, fmt.Sprintf("%s/sse/campaign/%d/", s.base, other)); res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") != "1" {
		t.Fatalf("event stream while the subscriber is down: %d, Retry-After %q; want 503 and 1", res.StatusCode, res.Header.Get("Retry-After"))
	}
	again := testenv.MustDialWS(t, room(served), nil)
	if ev := again.NextEvent(wait); ev.Type != "campaign_data" {
		t.Fatalf("a client of the room served here got %s while the subscriber is down", ev.Type)
	}

	restore()
	untilReady(http.StatusOK)
	back := testenv.MustDialWS(t, room(other), nil)
	if ev := back.NextEvent(wait); ev.Type != "campaign_data" {
		t.Fatalf("after the subscriber came back the client got %s", ev.Type)
	}
}

// getStream sends a GET asking for an event stream and returns the answer,
// its body closed: only the status and headers are looked at.
func getStream(t *testing.T, u string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res
}

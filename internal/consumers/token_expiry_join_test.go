package consumers_test

import (
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/app"
	"github.com/heraldhq/herald/internal/consumers"
	"github.com/heraldhq/herald/internal/testenv"
)

// A subscription token that runs out while its subscribe is joining: its
// end finds nothing to leave yet, so the subscribe, once joined, sees its
// grant gone and takes the client out again, telling it so after where it
// stands. Before, the client stayed in the group for the connection's life.
func TestTokenExpiringDuringSubscribeLeavesTheGroup(t *testing.T) {
	exp := time.Now().Add(2 * time.Second).Truncate(time.Second) // tokens count whole seconds
	if time.Until(exp) < 700*time.Millisecond {
		exp = exp.Add(time.Second)
	}
	var joining atomic.Bool
	hooks := &consumers.Hooks{BeforeJoin: func(g string) {
		if g == "chat:a" && joining.CompareAndSwap(false, true) {
			time.Sleep(time.Until(exp) + 500*time.Millisecond) // the token runs out meanwhile
		}
	}}
	s := startWith(t, testenv.SQLite(t), []app.Option{app.WithConsumersConfig(hooks.Install)}, appNamespaces)
	c := testenv.MustDialWS(t, s.ws+"/ws/?v=2", nil)
	c.Send(map[string]any{"type": "subscribe", "id": "m", "data": map[string]any{"group": "chat:a", "token": subToken(t, "", "chat:a", time.Until(exp))}})
	var got []string
	for subscribed := false; ; {
		ev := c.NextEvent(wait)
		got = append(got, ev.Type)
		if ev.Type == "subscribed" {
			subscribed = true
		}
		if ev.Type == "unsubscribed" && subscribed {
			var d struct{ Group, Code string }
			if json.Unmarshal(ev.Data, &d) != nil || d.Group != "chat:a" || d.Code != "token_expired" {
				t.Fatalf("unsubscribed %s; want chat:a, token_expired", ev.Data)
			}
			break
		}
	}
	if !joining.Load() {
		t.Fatal("the subscribe joined without the hook")
	}
	for deadline := time.Now().Add(wait); len(s.app.Hub().Members("chat:a")) > 0; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after %v the client is still in chat:a, its token expired", got)
		}
	}
}

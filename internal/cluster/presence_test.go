package cluster

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testenv"
)

// Presence is cluster-wide: a room watched through two processes reports
// the total on both, and the total drops when a watcher leaves either.
func TestPresenceAcrossProcesses(t *testing.T) {
	d := deploy(t, 2, "")
	a, b := d.procs[0], d.procs[1]
	tok := d.user(a, "alice")
	camp := d.campaign(a, tok)
	path := fmt.Sprintf("/ws/campaign/%d/?v=2", camp)
	onA := testenv.MustDialWS(t, a.ws(path), nil)
	onB1 := testenv.MustDialWS(t, b.ws(path), nil)
	onB2 := testenv.MustDialWS(t, b.ws(path), nil)
	// until waits until c is told count watchers.
	until := func(c *testenv.WSClient, count int) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		last := -1
		for time.Now().Before(deadline) {
			raw, err := c.Next(time.Until(deadline))
			if err != nil {
				break
			}
			var m struct {
				Type string
				Data struct{ Count int }
			}
			if json.Unmarshal(raw, &m) == nil && m.Type == "presence" {
				if last = m.Data.Count; last == count {
					return
				}
			}
		}
		t.Fatalf("presence never reached %d (last %d)", count, last)
	}
	until(onA, 3)
	until(onB1, 3)
	onB2.Close()
	until(onA, 2)
	until(onB1, 2)
}

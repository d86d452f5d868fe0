package cluster

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testenv"
)

// Events a backend publishes through one process reach the v2 WebSocket
// and SSE clients of another, each once and in order, at the positions
// the publish answered: single events and a batch, to a group of a
// namespace from the config file, with a key made by `herald apikey
// create` as the docs make it.
func TestPublishAcrossProcesses(t *testing.T) {
	const wait = 15 * time.Second
	config := filepath.Join(t.TempDir(), "herald.toml")
	if err := os.WriteFile(config, []byte("[namespaces.chat]\nsubscribe = \"anonymous\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := deploy(t, 2, "", "--config", config)
	a, b := d.procs[0], d.procs[1]
	out, err := exec.Command(heraldBin, "apikey", "create", "--db", d.dsn, "--config", config, "--name", "backend", "--scope", "chat").Output()
	if err != nil {
		t.Fatalf("herald apikey create: %v", err)
	}
	key := strings.TrimSpace(string(out))

	const group = "chat:lobby"
	ws := testenv.MustDialWS(t, b.ws("/ws/?v=2&group="+group), nil)
	var at struct {
		Group  string
		Epoch  string
		Offset uint64
	}
	if m := ws.NextEvent(wait); m.Type != "subscribed" || json.Unmarshal(m.Data, &at) != nil || at.Group != group {
		t.Fatalf("WebSocket first: %+v", m)
	}
	sse, _, err := testenv.DialSSE(t, b.url("/sse/?group="+group), nil)
	if err != nil {
		t.Fatal(err)
	}
	if ev := sse.MustNext(wait); ev.Event != "subscribed" || !strings.Contains(ev.Data, `"`+group+`"`) {
		t.Fatalf("SSE first: %+v", ev)
	}

	// Five single events, a batch of twenty, five more, and then an end
	// marker: whatever came twice would arrive before it.
	type event struct {
		Group string         `json:"group"`
		Type  string         `json:"type"`
		Data  map[string]int `json:"data"`
	}
	type position struct {
		Group  string
		Offset *uint64
		Epoch  *string
	}
	var sent []position
	publish := func(body any) {
		t.Helper()
		var res struct{ Events []position }
		if _, err := call("POST", a.url("/api/publish/"), key, body, &res); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, res.Events...)
	}
	const n = 30
	for i := 1; i <= 5; i++ {
		publish(event{group, "msg", map[string]int{"n": i}})
	}
	var batch []event
	for i := 6; i <= 25; i++ {
		batch = append(batch, event{group, "msg", map[string]int{"n": i}})
	}
	publish(map[string]any{"events": batch})
	for i := 26; i <= n; i++ {
		publish(event{group, "msg", map[string]int{"n": i}})
	}
	publish(event{group, "end", map[string]int{}})

	for i, p := range sent {
		if p.Group != group || p.Offset == nil || p.Epoch == nil || *p.Offset != at.Offset+uint64(i)+1 || (at.Epoch != "" && *p.Epoch != at.Epoch) {
			t.Fatalf("event %d answered %+v; want offset %d after subscribed at %+v", i, p, at.Offset+uint64(i)+1, at)
		}
	}
	for i, p := range sent {
		wantType, wantData := "msg", fmt.Sprintf(`{"n":%d}`, i+1)
		if i == n {
			wantType, wantData = "end", "{}"
		}
		if m := ws.NextEvent(wait); m.Type != wantType || string(m.Data) != wantData || m.Group != group || m.Offset != *p.Offset || m.Epoch != *p.Epoch {
			t.Fatalf("WebSocket on %s, event %d: %s %s at %d; want %s %s at %d", b.name, i, m.Type, m.Data, m.Offset, wantType, wantData, *p.Offset)
		}
		if ev := sse.MustNext(wait); ev.Event != wantType || ev.Data != wantData || ev.ID != fmt.Sprintf("%s:%s:%d", group, *p.Epoch, *p.Offset) {
			t.Fatalf("SSE on %s, event %d: %+v; want %s %s at %d", b.name, i, ev, wantType, wantData, *p.Offset)
		}
	}
}

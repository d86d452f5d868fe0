package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"regexp"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/media/mediatest"
	"github.com/heraldhq/herald/internal/testenv"
)

// An update's image, uploaded through REST, reaches every kind of client
// in the update's event as its /media/ URL (v1 and v2 WebSocket, SSE), is
// served there, and its replacement and removal (null) reach them too.
func TestUpdateImageLive(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		h := testenv.StartHerald(t, dsn)
		owner := signUp(t, h.Base, "owner")
		c := post(t, h.Base+"/api/campaigns/", owner, map[string]any{"title": "Kiosk", "goal_amount": "100.00", "status": "active"})
		id := int64(c["id"].(float64))
		room := fmt.Sprintf("/campaign/%d/", id)

		v1 := testenv.MustDialWS(t, h.WS+"/ws"+room, nil)
		v2 := testenv.MustDialWS(t, h.WS+"/ws"+room+"?v=2", nil)
		sse, _, err := testenv.DialSSE(t, h.Base+"/sse"+room, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, ws := range []*testenv.WSClient{v1, v2} {
			if ev := ws.NextEvent(10 * time.Second); ev.Type != "campaign_data" {
				t.Fatalf("first message %s", ev.Type)
			}
			ws.Ignore = []string{"subscribed", "presence"}
		}
		if ev := sse.MustNext(10 * time.Second); ev.Event != "campaign_data" {
			t.Fatalf("first SSE event %s", ev.Event)
		}
		sse.Ignore = []string{"subscribed", "presence"}

		// every receives the next event on each connection, checks it is
		// the update with this JSON and returns its image.
		every := func(want []byte) {
			t.Helper()
			for name, got := range map[string]json.RawMessage{
				"v1": updateData(t, v1.NextEvent(10*time.Second)), "v2": updateData(t, v2.NextEvent(10*time.Second)),
				"sse": func() json.RawMessage {
					ev := sse.MustNext(10 * time.Second)
					if ev.Event != "update" {
						t.Fatalf("SSE event %s; want update", ev.Event)
					}
					return json.RawMessage(ev.Data)
				}(),
			} {
				if !sameJSON(got, want) {
					t.Errorf("%s received %s; REST answered %s", name, got, want)
				}
			}
		}

		png := mediatest.PNG(t, 24, 16)
		created := upload(t, "POST", h.Base+fmt.Sprintf("/api/campaigns/%d/updates/", id), owner,
			mediatest.Part{Name: "title", Value: "Panels"}, mediatest.Part{Name: "content", Value: "Up."},
			mediatest.Part{Name: "image", File: true, Filename: "panels.png", Data: png})
		var u struct {
			ID    int64
			Image *string
		}
		_ = json.Unmarshal(created, &u)
		if u.Image == nil || !regexp.MustCompile(`^/media/campaign_updates/[0-9a-f]{32}\.png$`).MatchString(*u.Image) {
			t.Fatalf("created %s", created)
		}
		every(created)
		if got := fetch(t, h.Base+*u.Image, ""); !bytes.Equal(got, png) {
			t.Fatalf("GET %s: %d bytes, not the %d uploaded", *u.Image, len(got), len(png))
		}
		if got := fetch(t, h.Base+*u.Image, "bytes=0-7"); !bytes.Equal(got, png[:8]) {
			t.Fatalf("range of %s: %q", *u.Image, got)
		}

		// A client that connects now finds the image in its snapshot.
		late := testenv.MustDialWS(t, h.WS+"/ws"+room, nil)
		snap := late.NextEvent(10 * time.Second)
		var data struct{ Updates []json.RawMessage }
		if snap.Type != "campaign_data" || json.Unmarshal(snap.Data, &data) != nil || len(data.Updates) != 1 || !sameJSON(data.Updates[0], created) {
			t.Fatalf("snapshot %s %s", snap.Type, snap.Data)
		}

		one := h.Base + fmt.Sprintf("/api/campaigns/%d/updates/%d/", id, u.ID)
		replaced := upload(t, "PATCH", one, owner, mediatest.Part{Name: "image", File: true, Filename: "b.webp", Data: mediatest.WebP})
		every(replaced)
		var r struct{ Image *string }
		_ = json.Unmarshal(replaced, &r)
		if r.Image == nil || *r.Image == *u.Image || !bytes.Equal(fetch(t, h.Base+*r.Image, ""), mediatest.WebP) {
			t.Fatalf("replaced: %s", replaced)
		}
		if status := head(t, h.Base+*u.Image); status != http.StatusNotFound {
			t.Errorf("the replaced file is still served: %d", status)
		}

		removed := upload(t, "PATCH", one, owner, mediatest.Part{Name: "image", Value: ""})
		if !bytes.Contains(removed, []byte(`"image":null`)) {
			t.Fatalf("removed: %s", removed)
		}
		every(removed)
	})
}

func updateData(t *testing.T, ev testenv.Event) json.RawMessage {
	t.Helper()
	if ev.Type != "update" {
		t.Fatalf("event %s %s; want update", ev.Type, ev.Data)
	}
	return ev.Data
}

func sameJSON(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}

// upload sends a multipart form and returns the answer's body, failing the
// test unless it is a 2xx.
func upload(t *testing.T, method, url, token string, parts ...mediatest.Part) []byte {
	t.Helper()
	body, ct := mediatest.Form(t, parts...)
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 300 {
		t.Fatalf("%s %s: %d %s", method, url, res.StatusCode, b)
	}
	return b
}

// fetch GETs url (with a Range when rng is set) and returns the body of a
// 200 or 206.
func fetch(t *testing.T, url, rng string) []byte {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if want := map[bool]int{true: 206, false: 200}[rng != ""]; res.StatusCode != want {
		t.Fatalf("GET %s: %d, want %d", url, res.StatusCode, want)
	}
	return b
}

func head(t *testing.T, url string) int {
	t.Helper()
	res, err := http.Head(url)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

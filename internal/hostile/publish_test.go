package hostile

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// publishCases are hostile calls of POST /api/publish/: keys that are not
// ours (or no longer), groups, types and data that break the rules at
// their edges, batches too long or too large, and data that could split an
// SSE frame or break a WebSocket text frame.
func publishCases() []hcase {
	const path = "/api/publish/"
	const tooMany = http.StatusTooManyRequests
	var hcs []httpCase
	codes := func(c ...int) []int { return c }
	ok := `{"group":"campaign_1","type":"hostile","data":{}}`
	withAuth := func(auth func(f fixture) string, body string) func(fixture) req {
		return func(f fixture) req {
			r := jsonReq("POST", path, "", body)
			if a := auth(f); a != "" {
				r.header.Set("Authorization", a)
			}
			return r
		}
	}
	add := func(name string, want []int, r func(fixture) req) {
		hcs = append(hcs, httpCase{name: name, req: r, want: want})
	}
	wantCode := func(code string) func(*testing.T, *herald, *response) {
		return func(t *testing.T, _ *herald, r *response) {
			var p struct{ Code string }
			if err := r.json(&p); err != nil || p.Code != code {
				t.Errorf("code %q (%v), want %q: %s", p.Code, err, code, clip(string(r.Body), 300))
			}
		}
	}

	// Keys that are not, or no longer, ours: one answer for all.
	for _, a := range []struct {
		name string
		auth func(f fixture) string
	}{
		{"the revoked key", func(f fixture) string { return "Bearer " + f.revokedKey }},
		{"a user's access token", func(f fixture) string { return "Bearer " + f.alice }},
		{"the key with a wrong secret", func(f fixture) string { return "Bearer " + flipLast(f.publisher) }},
		{"the key in upper case", func(f fixture) string { return "Bearer " + strings.ToUpper(f.publisher) }},
		{"the key and more", func(f fixture) string { return "Bearer " + f.publisher + "0" }},
		{"the key without its prefix", func(f fixture) string { return "Bearer " + strings.TrimPrefix(f.publisher, "hk_") }},
		{"an id with SQL", func(f fixture) string { return "Bearer hk_'%20OR%201=1--_" + strings.Repeat("0", 64) }},
		{"a 60 KiB key", func(fixture) string { return "Bearer hk_" + strings.Repeat("a", 60<<10) }},
		{"Basic credentials", func(f fixture) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(f.publisher+":")) }},
	} {
		hcs = append(hcs, httpCase{name: "publish with " + a.name, want: codes(unauth), req: withAuth(a.auth, ok), check: wantCode("api_key_not_valid")})
	}
	hcs = append(hcs,
		httpCase{name: "publish without a key", want: codes(unauth), req: withAuth(func(fixture) string { return "" }, ok), check: wantCode("not_authenticated")},
		httpCase{name: "publish with the key in X-API-Key", want: codes(unauth), check: wantCode("not_authenticated"), req: func(f fixture) req {
			r := jsonReq("POST", path, "", ok)
			r.header.Set("X-API-Key", f.publisher)
			return r
		}},
		httpCase{name: "publish with the key twice", want: codes(unauth), check: wantCode("api_key_not_valid"), req: func(f fixture) req {
			r := jsonReq("POST", path, "", ok)
			r.header.Add("Authorization", "Bearer "+f.publisher)
			r.header.Add("Authorization", "Bearer "+f.publisher)
			return r
		}},
		httpCase{name: "publish with bearer in lower case", want: codes(created, tooMany),
			req: withAuth(func(f fixture) string { return "bearer " + f.publisher }, ok)},
		httpCase{name: "publish with a 100 KiB Authorization", want: codes(headerLarge),
			req: withAuth(func(fixture) string { return "Bearer hk_" + strings.Repeat("a", 100<<10) }, ok)},
		httpCase{name: "publish with a control character in the key", want: codes(badRequest, unauth),
			raw: "POST " + path + " HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {publisher}\x01\r\nContent-Type: application/json\r\n" +
				"Content-Length: " + fmt.Sprint(len(ok)) + "\r\nConnection: close\r\n\r\n", rawBody: ok},
	)

	// Groups and types at and past their edges.
	event := func(group, typ, data string) string {
		g, _ := json.Marshal(group)
		ty, _ := json.Marshal(typ)
		return `{"group":` + string(g) + `,"type":` + string(ty) + `,"data":` + data + `}`
	}
	for _, g := range []string{strings.Repeat("g", 100<<10), "campaign_1\x00", "campaign_1 ", "campaign_９", "campaign_-1", "campaign_01",
		"campaign_9223372036854775808", "ctl_user_2", "campaign_1/../user_3", "", "campaign"} {
		add(fmt.Sprintf("publish to the group %s (%d bytes)", clip(fmt.Sprintf("%q", g), 40), len(g)), codes(badRequest), func(f fixture) req {
			return jsonReq("POST", path, f.publisher, event(g, "hostile", "{}"))
		})
	}
	for _, g := range []string{"user_3", "quest_1", "user_22"} {
		hcs = append(hcs, httpCase{name: "publish outside the key's scopes to " + g, want: codes(forbidden), check: wantCode("scope_not_allowed"),
			req: func(f fixture) req { return jsonReq("POST", path, f.publisher, event(g, "hostile", "{}")) }})
	}
	// The last of two groups is the one checked and the one recorded.
	add("publish with the group twice", codes(forbidden), func(f fixture) req {
		return jsonReq("POST", path, f.publisher, `{"group":"campaign_1","group":"quest_1","type":"hostile","data":{}}`)
	})
	for _, ty := range []string{strings.Repeat("t", 100<<10), strings.Repeat("t", 65), "ｔｙｐｅ", "a\nb", "a/b", "room_reset", "quest_created",
		"campaign_data", "subscribed", "presence", "error", "ack", "", "Type"} {
		add(fmt.Sprintf("publish the type %s (%d bytes)", clip(fmt.Sprintf("%q", ty), 40), len(ty)), codes(badRequest), func(f fixture) req {
			return jsonReq("POST", path, f.publisher, event("campaign_1", ty, "{}"))
		})
	}

	// Data.
	// Sent raw: the server may answer before it has read the body, which
	// Go's client takes for a failed request.
	deep := event("campaign_1", "hostile", `{"a":`+strings.Repeat("[", 100_000)+strings.Repeat("]", 100_000)+`}`)
	hcs = append(hcs, httpCase{name: "publish data: 100,000 arrays deep", want: codes(badRequest),
		raw: "POST " + path + " HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {publisher}\r\nContent-Type: application/json\r\n" +
			"Content-Length: " + fmt.Sprint(len(deep)) + "\r\nConnection: close\r\n\r\n", rawBody: deep})
	for _, d := range []struct{ name, data string }{
		{"not UTF-8", "{\"a\":\"\xff\xfe\"}"},
		{"a raw control character in a string", "{\"a\":\"\x01\"}"},
		{"an array", `[1]`},
		{"null", `null`},
		{"a string", `"x"`},
		{"one byte over 64 KiB", `{"a":"` + strings.Repeat("x", 64<<10-7) + `"}`},
		{"a trailing comma", `{"a":1,}`},
	} {
		add("publish data: "+d.name, codes(badRequest), func(f fixture) req {
			return jsonReq("POST", path, f.publisher, event("campaign_1", "hostile", d.data))
		})
	}
	for _, d := range []struct{ name, data string }{
		{"exactly 64 KiB", `{"a":"` + strings.Repeat("x", 64<<10-8) + `"}`},
		{"a lone surrogate", `{"a":"\ud800"}`},
		{"an escaped NUL", `{"a":"\u0000"}`},
		{"1e400", `{"a":1e400}`},
		{"U+2028 and U+2029", "{\"a\":\"\u2028\u2029\"}"},
	} {
		add("publish data: "+d.name, codes(created, tooMany), func(f fixture) req {
			return jsonReq("POST", path, f.publisher, event("campaign_1", "hostile", d.data))
		})
	}

	// Batches.
	batch := func(n int, ev string) string {
		return `{"events":[` + strings.TrimSuffix(strings.Repeat(ev+",", n), ",") + `]}`
	}
	big := event("campaign_1", "hostile", `{"a":"`+strings.Repeat("x", 11<<10)+`"}`)
	for _, b := range []struct {
		name, body string
		want       []int
	}{
		{"101 events", batch(101, ok), codes(badRequest)},
		{"100,000 events", batch(100_000, `{}`), codes(badRequest, tooLarge)},
		{"no events", `{"events":[]}`, codes(badRequest)},
		{"a null event", `{"events":[null]}`, codes(badRequest)},
		{"events as an object", `{"events":{}}`, codes(badRequest)},
		{"events as a string", `{"events":"x"}`, codes(badRequest)},
		{"an event with both forms", `{"group":"campaign_1","type":"x","data":{},"events":[` + ok + `]}`, codes(badRequest)},
		{"a bad last event", `{"events":[` + ok + `,` + event("campaign_1", "Bad", "{}") + `]}`, codes(badRequest)},
	} {
		add("publish "+b.name, b.want, func(f fixture) req { return jsonReq("POST", path, f.publisher, b.body) })
	}
	// Sent raw: the server answers before it has read the body, which Go's
	// client takes for a failed request.
	over := batch(100, big)
	hcs = append(hcs, httpCase{name: "publish 100 events over 1 MiB", want: codes(tooLarge),
		raw: "POST " + path + " HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {publisher}\r\nContent-Type: application/json\r\n" +
			"Content-Length: " + fmt.Sprint(len(over)) + "\r\nConnection: close\r\n\r\n", rawBody: over})

	// Data that tries to split the SSE frame it is sent in: newlines
	// between JSON tokens and a string that reads like SSE fields. It must
	// reach an event stream as one data: line.
	split := "{\n\n\"x\" :\r\n\"event: forged\\ndata: {}\"\n}"
	hcs = append(hcs, httpCase{name: "publish data that would split an SSE frame", want: codes(created, tooMany),
		req: func(f fixture) req {
			return jsonReq("POST", path, f.publisher, event("campaign_1", "hostile-split", split))
		},
		check: func(t *testing.T, h *herald, r *response) {
			if r.Status != created {
				return
			}
			var res struct {
				Events []struct {
					Offset *int64
					Epoch  *string
				}
			}
			if err := r.json(&res); err != nil || len(res.Events) != 1 || res.Events[0].Offset == nil {
				t.Fatalf("answer %s (%v)", clip(string(r.Body), 300), err)
			}
			from := fmt.Sprintf("campaign_1:%s:%d", *res.Events[0].Epoch, *res.Events[0].Offset-1)
			// The event comes replayed before subscribed or, when the relay
			// has not published it yet, live after it: read until it (or a
			// forged event) is there.
			want := "event: hostile-split\ndata: {\"x\":\"event: forged\\ndata: {}\"}\n\n"
			s, err := h.client(t).stream("/sse/campaign/1/?resume="+url.QueryEscape(from), nil, 20*time.Second, want, "\nevent: forged")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(s.Body, []byte(want)) {
				t.Errorf("the stream does not hold the event as one data line:\n%s", clip(string(s.Body), 1000))
			}
			if bytes.Contains(s.Body, []byte("\nevent: forged")) {
				t.Errorf("the data forged an event:\n%s", clip(string(s.Body), 1000))
			}
		}})
	return httpCasesOf("publish", hcs)
}

// flipLast changes a key's last hex digit.
func flipLast(key string) string {
	if key == "" {
		return key
	}
	last := byte('0')
	if key[len(key)-1] == '0' {
		last = '1'
	}
	return key[:len(key)-1] + string(last)
}

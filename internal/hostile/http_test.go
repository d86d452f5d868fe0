package hostile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// httpCase sends one request and checks the answer's status (and, with
// check, more of it).
type httpCase struct {
	name string
	req  func(f fixture) req
	raw  string // instead of req: sent byte for byte; {host} is the server's address, {alice} … {dave} tokens
	// rawBody follows raw as it is.
	rawBody string
	want    []int // nil: any status but a server error (the recorder checks those)
	check   func(t *testing.T, h *herald, r *response)
}

func (hc httpCase) run(t *testing.T, h *herald) {
	c := h.client(t)
	var r *response
	var err error
	if hc.raw != "" {
		f := h.fixture
		head := strings.NewReplacer("{host}", h.addr, "{alice}", f.alice, "{bob}", f.bob, "{carol}", f.carol, "{dave}", f.dave,
			"{publisher}", f.publisher).Replace(hc.raw)
		r, err = c.raw(head+hc.rawBody, 20*time.Second)
	} else {
		r, err = c.do(hc.req(h.fixture))
	}
	if err != nil {
		t.Fatal(err)
	}
	if hc.want != nil {
		wantStatus(t, r, hc.want...)
	}
	if hc.check != nil {
		hc.check(t, h, r)
	}
}

func httpCasesOf(prefix string, hcs []httpCase) []hcase {
	out := make([]hcase, len(hcs))
	for i, hc := range hcs {
		out[i] = hcase{name: prefix + "/" + hc.name, run: hc.run}
	}
	return out
}

const (
	ok          = http.StatusOK
	created     = http.StatusCreated
	noContent   = http.StatusNoContent
	badRequest  = http.StatusBadRequest
	unauth      = http.StatusUnauthorized
	forbidden   = http.StatusForbidden
	conflict    = http.StatusConflict
	notFound    = http.StatusNotFound
	notAllowed  = http.StatusMethodNotAllowed
	tooLarge    = http.StatusRequestEntityTooLarge
	mediaType   = http.StatusUnsupportedMediaType
	headerLarge = http.StatusRequestHeaderFieldsTooLarge
)

// bodyEndpoint is one operation that reads a JSON body, the demo user who
// may call it ("" for anyone) and a body it accepts.
type bodyEndpoint struct {
	method, path string
	who          string
	valid        string
}

// token is the access token of a demo user by name, or the publish API
// key for "publisher" ("" for none).
func (f fixture) token(name string) string {
	return map[string]string{"alice": f.alice, "bob": f.bob, "carol": f.carol, "dave": f.dave, "publisher": f.publisher}[name]
}

// bodyEndpoints are every REST operation with a body, on the demo data
// (campaign 1 and comment 1 are alice's and bob's, quest 3 is carol's,
// application 5 is dave's on it).
func bodyEndpoints() []bodyEndpoint {
	return []bodyEndpoint{
		{"POST", "/api/auth/register/", "", `{"username":"zed","password":"a fine password"}`},
		{"POST", "/api/auth/token/", "", `{"username":"alice","password":"wrong"}`},
		{"POST", "/api/auth/token/refresh/", "", `{"refresh":"x"}`},
		{"POST", "/api/auth/session/", "", `{"username":"alice","password":"wrong"}`},
		{"POST", "/api/campaigns/", "alice", `{"title":"t","goal_amount":"1.00"}`},
		{"PATCH", "/api/campaigns/1/", "alice", `{"description":"d"}`},
		{"POST", "/api/campaigns/1/contributions/", "bob", `{"amount":"1.00"}`},
		{"POST", "/api/campaigns/1/updates/", "alice", `{"title":"u","content":"c"}`},
		{"PATCH", "/api/campaigns/1/updates/1/", "alice", `{"content":"c"}`},
		{"POST", "/api/campaigns/1/comments/", "bob", `{"content":"c"}`},
		{"PATCH", "/api/campaigns/1/comments/1/", "bob", `{"content":"c"}`},
		{"POST", "/api/campaigns/1/releases/", "alice", `{"version":"9","title":"r"}`},
		{"PATCH", "/api/campaigns/1/releases/1/", "alice", `{"notes":"n"}`},
		{"POST", "/api/campaigns/1/milestones/", "alice", `{"title":"m","target_amount":"1.00"}`},
		{"PATCH", "/api/campaigns/1/milestones/1/", "alice", `{"description":"d"}`},
		{"POST", "/api/quests/", "alice", `{"title":"q"}`},
		{"PATCH", "/api/quests/3/", "carol", `{"description":"d"}`},
		{"POST", "/api/quests/3/applications/", "bob", `{"message":"m"}`},
		{"PATCH", "/api/applications/5/", "dave", `{"status":"withdrawn"}`},
		{"POST", "/api/publish/", "publisher", `{"group":"campaign_1","type":"hostile","data":{}}`},
	}
}

// httpCases are the REST request cases.
func httpCases() []hcase {
	var hcs []httpCase
	add := func(name string, want []int, r func(fixture) req) {
		hcs = append(hcs, httpCase{name: name, req: r, want: want})
	}
	codes := func(c ...int) []int { return c }

	// Every operation with a body: malformed JSON, another media type, no
	// media type, a body over the 1 MiB limit (with a length, and chunked
	// without one), and a length that claims far more than is sent.
	big := `{"title":"` + strings.Repeat("a", 1<<20+64<<10) + `"}` // over the 1 MiB limit
	for _, ep := range bodyEndpoints() {
		name := ep.method + " " + ep.path
		with := func(ct, body string) func(fixture) req {
			return func(f fixture) req {
				h := http.Header{}
				if ct != "" {
					h.Set("Content-Type", ct)
				}
				return req{method: ep.method, path: ep.path, bearer: f.token(ep.who), header: h, body: strings.NewReader(body)}
			}
		}
		add(name+" malformed JSON", codes(badRequest), with("application/json", `{"title":`))
		add(name+" text/plain", codes(mediaType), with("text/plain", ep.valid))
		add(name+" form", codes(mediaType), with("application/x-www-form-urlencoded", "title=x"))
		add(name+" no Content-Type", codes(badRequest, mediaType), with("", `{"title":`))
		// Bodies over the limit go out raw: the server answers before it
		// has read them.
		head := ep.method + " " + ep.path + " HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nConnection: close\r\n"
		if ep.who != "" {
			head += "Authorization: Bearer {" + ep.who + "}\r\n"
		}
		hcs = append(hcs,
			httpCase{name: name + " body over 1 MiB", want: codes(tooLarge),
				raw: head + fmt.Sprintf("Content-Length: %d\r\n\r\n", len(big)), rawBody: big},
			httpCase{name: name + " chunked body over 1 MiB", want: codes(tooLarge),
				raw: head + fmt.Sprintf("Transfer-Encoding: chunked\r\n\r\n%x\r\n", len(big)), rawBody: big + "\r\n0\r\n\r\n"},
			httpCase{name: name + " Content-Length 2^63-1", want: codes(tooLarge),
				raw: head + "Content-Length: 9223372036854775807\r\n\r\n{}"},
		)
	}
	for _, cl := range []string{"99999999999999999999", "-1", "1, 2", "0x10", "2 2"} {
		hcs = append(hcs, httpCase{name: "Content-Length " + cl, want: codes(badRequest),
			raw: "POST /api/campaigns/1/comments/ HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n" +
				"Content-Length: " + cl + "\r\nConnection: close\r\n\r\n{}"})
	}
	hcs = append(hcs,
		httpCase{name: "two Content-Lengths", want: codes(badRequest),
			raw: "POST /api/campaigns/1/comments/ HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 3\r\nConnection: close\r\n\r\n{}"},
		httpCase{name: "Content-Length and chunked", want: codes(badRequest, unauth),
			raw: "POST /api/campaigns/1/comments/ HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n"},
		httpCase{name: "a chunk of 2^68 bytes", want: codes(badRequest, unauth),
			raw: "POST /api/campaigns/1/comments/ HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nfffffffffffffffff\r\n{}\r\n0\r\n\r\n"},
		httpCase{name: "a 100 KiB request line", want: codes(headerLarge, http.StatusRequestURITooLong, badRequest),
			raw: "GET /api/campaigns/?q=" + strings.Repeat("a", 100<<10) + " HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"},
		httpCase{name: "10,000 headers", want: codes(headerLarge),
			raw: "GET /api/campaigns/ HTTP/1.1\r\nHost: {host}\r\n" + strings.Repeat("X-A: b\r\n", 10_000) + "Connection: close\r\n\r\n"},
	)

	// Pagination parameters.
	for _, p := range []struct {
		q    string
		want []int
	}{
		{"page=-1", codes(badRequest)}, {"page=0", codes(badRequest)}, {"page=abc", codes(badRequest)},
		{"page=1e3", codes(badRequest)}, {"page=99999999999999999999", codes(badRequest, notFound)},
		{"page=9223372036854775807", codes(notFound, badRequest)}, {"page=4611686018427387904", codes(notFound, badRequest)},
		{"page=2147483648&page_size=100", codes(notFound)}, {"page_size=-1", codes(badRequest)}, {"page_size=0", codes(badRequest)},
		{"page_size=101", codes(badRequest)}, {"page_size=99999999999999999999", codes(badRequest)},
		{"page=%00", codes(badRequest)}, {"page=", codes(ok)}, {"page=1&page=-1", codes(ok, badRequest)},
		{"page=+1", codes(ok, badRequest)}, {"page_size=9223372036854775807&page=2", codes(badRequest)},
	} {
		for _, path := range []string{"/api/campaigns/", "/api/campaigns/1/comments/", "/api/quests/"} {
			add("GET "+path+"?"+p.q, p.want, func(fixture) req { return req{path: path + "?" + p.q} })
		}
		add("GET /api/applications/?"+p.q, p.want, func(f fixture) req { return req{path: "/api/applications/?" + p.q, bearer: f.dave} })
	}

	// Ids: only the canonical decimal form names an object.
	for _, path := range []string{
		"/api/campaigns/+1/", "/api/campaigns/01/", "/api/campaigns/001/", "/api/campaigns/99999999999999999999/",
		"/api/campaigns/-1/", "/api/campaigns/0/", "/api/campaigns/1.0/", "/api/campaigns/%2B1/", "/api/campaigns/1%20/",
		"/api/campaigns/0x1/", "/api/campaigns/1e0/", "/api/campaigns/+1/comments/", "/api/campaigns/1/comments/+1/",
		"/api/campaigns/1/comments/01/", "/api/quests/01/", "/api/campaigns/3/", "/api/campaigns/1/bogus/",
		"/api/campaigns/9223372036854775807/", "/api/campaigns/9223372036854775808/",
	} {
		add("GET "+path, codes(notFound), func(fixture) req { return req{path: path} })
	}
	add("GET /api/applications/+5/", codes(notFound), func(f fixture) req { return req{path: "/api/applications/+5/", bearer: f.dave} })
	add("POST /api/campaigns/+1/comments/", codes(notFound), func(f fixture) req {
		return jsonReq("POST", "/api/campaigns/+1/comments/", f.bob, `{"content":"c"}`)
	})
	add("PATCH /api/campaigns/01/", codes(notFound), func(f fixture) req {
		return jsonReq("PATCH", "/api/campaigns/01/", f.alice, `{"description":"d"}`)
	})
	// Paths that climb out of the web app: never a file from the disk.
	for _, path := range []string{
		"/api/../../etc/passwd", "/..%2f..%2f..%2fetc%2fpasswd", "/%2e%2e/%2e%2e/etc/passwd", "/assets/..%2f..%2f..%2fgo.mod",
		"/static/../../../../etc/passwd", "/index.html/../../go.mod", "//etc/passwd", "/api/campaigns/1/../../../../etc/passwd",
		`/..\..\..\etc\passwd`, "/assets/%2e%2e%2f%2e%2e%2fgo.mod", "/./././etc/passwd",
	} {
		hcs = append(hcs, httpCase{name: "GET " + path, raw: "GET " + path + " HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n",
			check: func(t *testing.T, _ *herald, r *response) {
				for _, leak := range []string{"root:x:0:0", "module github.com/heraldhq"} {
					if bytes.Contains(r.Body, []byte(leak)) {
						t.Errorf("%d answer holds %q", r.Status, leak)
					}
				}
			}})
	}
	// The web app's fallback page must not reflect the path.
	hcs = append(hcs, httpCase{name: "GET a script in the path", want: codes(ok, notFound),
		req: func(fixture) req { return req{path: "/%3Cscript%3Ealert(1)%3C/script%3E"} },
		check: func(t *testing.T, _ *herald, r *response) {
			if bytes.Contains(r.Body, []byte("<script>alert(1)")) {
				t.Errorf("the path is reflected: %s", clip(string(r.Body), 300))
			}
		}})

	// Methods.
	for _, m := range []struct{ method, path string }{
		{"TRACE", "/api/campaigns/"}, {"PUT", "/api/campaigns/1/"}, {"DELETE", "/api/campaigns/"}, {"PATCH", "/api/campaigns/"},
		{"POST", "/api/campaigns/1/"}, {"DELETE", "/api/auth/me/"}, {"BREW", "/api/campaigns/"}, {"PUT", "/api/quests/1/"},
		{"POST", "/api/schema/"}, {"GET", "/api/auth/token/"},
	} {
		add(m.method+" "+m.path, codes(notAllowed), func(f fixture) req { return req{method: m.method, path: m.path, bearer: f.alice} })
	}
	// Campaign 1 is alice's, with contributions: bob may not delete it,
	// and alice may not while it holds other people's money.
	add("DELETE someone else's campaign", codes(forbidden), func(f fixture) req {
		return req{method: "DELETE", path: "/api/campaigns/1/", bearer: f.bob}
	})
	add("DELETE a campaign with contributions", codes(conflict), func(f fixture) req {
		return req{method: "DELETE", path: "/api/campaigns/1/", bearer: f.alice}
	})
	add("OPTIONS /api/campaigns/", codes(noContent, ok), func(fixture) req { return req{method: "OPTIONS", path: "/api/campaigns/"} })
	add("HEAD /api/campaigns/", codes(ok), func(fixture) req { return req{method: "HEAD", path: "/api/campaigns/"} })
	hcs = append(hcs,
		httpCase{name: "a method with a bracket", want: codes(badRequest, notAllowed), raw: "G(T /api/campaigns/ HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"},
		httpCase{name: "CONNECT", raw: "CONNECT {host} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"},
		httpCase{name: "no version", want: codes(badRequest), raw: "GET /api/campaigns/\r\n\r\n"},
	)

	// Money nobody can pay.
	for _, amount := range []string{
		`"1e309"`, `1e309`, `"-0.001"`, `"999999999999999999999"`, `999999999999999999999`, `"NaN"`, `"Infinity"`, `"-0"`,
		`"0.00"`, `"1.005"`, `"１.00"`, `"1e-400"`, `"0x10"`, `"92233720368547758.07"`, `"-92233720368547758.08"`,
		`"1000000000000.00"`, `-1e309`,
	} {
		add("contribution of "+amount, codes(badRequest), func(f fixture) req {
			return jsonReq("POST", "/api/campaigns/2/contributions/", f.bob, `{"amount":`+amount+`}`)
		})
		add("goal of "+amount, codes(badRequest), func(f fixture) req {
			return jsonReq("POST", "/api/campaigns/", f.alice, `{"title":"t","goal_amount":`+amount+`}`)
		})
	}
	// The largest amount twice: the raised total passes the largest amount
	// one may give, and the campaign must still be served.
	hcs = append(hcs, httpCase{name: "the largest contribution twice", req: func(f fixture) req {
		return jsonReq("POST", "/api/campaigns/2/contributions/", f.carol, `{"amount":"999999999999.99"}`)
	}, want: codes(created, badRequest), check: func(t *testing.T, h *herald, r *response) {
		c := h.client(t)
		c.must(t, jsonReq("POST", "/api/campaigns/2/contributions/", h.fixture.dave, `{"amount":"999999999999.99"}`))
		campaignServed(t, c, 2)
	}})

	// Dates at and past the ends of the calendar.
	for _, d := range []string{"0000-01-01", "0001-01-01", "9999-12-31", "10000-01-01", "-0001-01-01", "2024-02-30",
		"2024-13-01", "2024-1-1", "99999-01-01", "2024-02-29T00:00:00Z", ""} {
		hcs = append(hcs, httpCase{name: "milestone due " + d, want: codes(created, badRequest), req: func(f fixture) req {
			return jsonReq("POST", "/api/campaigns/2/milestones/", f.alice, `{"title":"m","target_amount":"1.00","due_date":"`+d+`"}`)
		}, check: func(t *testing.T, h *herald, _ *response) { campaignServed(t, h.client(t), 2) }})
	}
	for _, ts := range []string{"0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z", "9999-12-31T23:59:59-23:59",
		"0001-01-01T00:00:00+23:59", "2024-01-01T25:00:00Z", "2024-01-01T00:00:00", "1e10", "-292277022657-01-27T08:29:52Z",
		"2024-01-01T00:00:00.0000000000000000001Z"} {
		hcs = append(hcs, httpCase{name: "release at " + ts, want: codes(created, badRequest), req: func(f fixture) req {
			return jsonReq("POST", "/api/campaigns/2/releases/", f.alice, `{"version":"x","title":"r","released_at":"`+ts+`"}`)
		}, check: func(t *testing.T, h *herald, _ *response) { campaignServed(t, h.client(t), 2) }})
	}

	// Markup and control characters are data: stored and given back as
	// JSON strings, exactly.
	for _, s := range []string{`<script>alert(1)</script>`, `"><img src=x onerror=alert(1)>`, `javascript:alert(1)`,
		"\u2028\u2029", `{{constructor.constructor('alert(1)')()}}`, `'; DROP TABLE comments; --`, "\u202eevil", "a\x00b"} {
		body, _ := json.Marshal(map[string]string{"content": s})
		hcs = append(hcs, httpCase{name: fmt.Sprintf("comment %q", clip(s, 20)), want: codes(created, badRequest),
			req: func(f fixture) req { return jsonReq("POST", "/api/campaigns/1/comments/", f.bob, string(body)) },
			check: func(t *testing.T, h *herald, r *response) {
				if r.Status != created {
					return
				}
				if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
					t.Errorf("Content-Type %q", ct)
				}
				var made struct{ ID int64 }
				if err := r.json(&made); err != nil {
					t.Fatal(err)
				}
				got := h.client(t).must(t, req{path: fmt.Sprintf("/api/campaigns/1/comments/%d/", made.ID)})
				var back struct{ Content string }
				if err := got.json(&back); err != nil {
					t.Fatal(err)
				}
				if back.Content != s {
					t.Errorf("stored %q, given back %q", s, back.Content)
				}
			}})
	}
	add("a campaign titled with a script", codes(created, badRequest), func(f fixture) req {
		return jsonReq("POST", "/api/campaigns/", f.alice, `{"title":"<script>alert(1)</script>","goal_amount":"1.00"}`)
	})
	add("an update with a javascript: image", codes(created, badRequest), func(f fixture) req {
		return jsonReq("POST", "/api/campaigns/2/updates/", f.alice, `{"title":"u","content":"c","image":"javascript:alert(1)"}`)
	})
	add("an update with a 100k image URL", codes(created, badRequest), func(f fixture) req {
		return jsonReq("POST", "/api/campaigns/2/updates/", f.alice, `{"title":"u","content":"c","image":"https://x/`+strings.Repeat("a", 100_000)+`"}`)
	})
	add("a quest titled with a lone surrogate", codes(created, badRequest), func(f fixture) req {
		return jsonReq("POST", "/api/quests/", f.alice, `{"title":"\ud800"}`)
	})
	out := httpCasesOf("http", hcs)
	// Real-time endpoints take the same canonical ids.
	for _, path := range []string{"/ws/campaign/+1/", "/ws/campaign/01/", "/ws/campaign/99999999999999999999/", "/ws/campaign/-1/"} {
		out = append(out, hcase{name: "http/GET " + path, run: func(t *testing.T, h *herald) {
			w, err := h.client(t).ws(path, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			w.Close()
			if w.status != notFound {
				t.Errorf("handshake answered %d, want 404", w.status)
			}
		}})
	}
	for _, path := range []string{"/sse/campaign/+1/", "/sse/campaign/01/"} {
		out = append(out, hcase{name: "http/GET " + path, run: func(t *testing.T, h *herald) {
			r, err := h.client(t).stream(path, nil, 3*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			wantStatus(t, r, notFound)
		}})
	}
	return out
}

// campaignServed checks that a campaign's detail (the real-time snapshot
// too) and its lists are still served.
func campaignServed(t *testing.T, c *client, id int) {
	t.Helper()
	for _, path := range []string{"/", "/milestones/?page_size=100", "/releases/?page_size=100", "/contributions/"} {
		r := c.must(t, req{path: fmt.Sprintf("/api/campaigns/%d%s", id, path)})
		if r.Status != ok {
			t.Errorf("GET campaign %d%s: %s", id, path, r)
			continue
		}
		var v map[string]any
		if err := r.json(&v); err != nil {
			t.Error(err)
		}
	}
}

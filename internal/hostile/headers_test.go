package hostile

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// headerCases are the cases of hostile request headers: Authorization,
// X-Forwarded-*, Host, cookies and the cross-site checks of cookie
// sessions.
func headerCases() []hcase {
	var hcs []httpCase
	add := func(name string, want []int, r func(fixture) req) {
		hcs = append(hcs, httpCase{name: name, req: r, want: want})
	}
	codes := func(c ...int) []int { return c }
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Add(kv[i], kv[i+1])
		}
		return h
	}

	// Authorization that is not a bearer token of ours.
	for _, a := range []struct {
		name, value string
		public      int // the answer of a public list with it
	}{
		{"a 60 KiB bearer token", "Bearer " + strings.Repeat("a", 60<<10), unauth},
		{"Bearer alone", "Bearer", ok},
		{"Bearer and spaces", "Bearer    ", ok},
		{"three dots", "Bearer a.b.c", unauth},
		{"four segments", "Bearer a.b.c.d", unauth},
		{"empty segments", "Bearer ..", unauth},
		{"base64 garbage", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.AAAA", unauth},
		{"Basic credentials", "Basic YWxpY2U6aGVyYWxkLWRlbW8=", ok},
		{"a 5,000-byte token", "Bearer " + strings.Repeat("x", 5000), unauth},
		{"a token and more", "Bearer a.b.c extra", ok},
		{"unicode", "Bearer ✓.✓.✓", unauth},
	} {
		add("Authorization: "+a.name+" on /api/auth/me/", codes(unauth), func(fixture) req {
			return req{path: "/api/auth/me/", header: hdr("Authorization", a.value)}
		})
		add("Authorization: "+a.name+" on a public list", codes(a.public), func(fixture) req {
			return req{path: "/api/campaigns/", header: hdr("Authorization", a.value)}
		})
	}
	add("Authorization: 100 KiB", codes(headerLarge), func(fixture) req {
		return req{path: "/api/auth/me/", header: hdr("Authorization", "Bearer "+strings.Repeat("a", 100<<10))}
	})
	add("two Authorization headers", codes(unauth), func(f fixture) req {
		return req{path: "/api/auth/me/", header: hdr("Authorization", "Bearer "+f.alice, "Authorization", "Bearer "+f.alice)}
	})
	add("Authorization: bearer in lower case", codes(ok), func(f fixture) req {
		return req{path: "/api/auth/me/", header: hdr("Authorization", "bearer "+f.alice)}
	})
	hcs = append(hcs, httpCase{name: "Authorization with a control character", want: codes(badRequest, unauth),
		raw: "GET /api/auth/me/ HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer a\x01b\r\nConnection: close\r\n\r\n"})

	// Forwarding headers from a client talking to herald directly
	// (--trust-proxy is off): ignored, never echoed.
	xff := strings.TrimSuffix(strings.Repeat("10.0.0.1, ", 5000), ", ")
	add("5,000 X-Forwarded-For entries", codes(ok), func(fixture) req {
		return req{path: "/api/campaigns/", header: hdr("X-Forwarded-For", xff)}
	})
	add("X-Forwarded-For garbage on a sign-in", codes(unauth, http.StatusTooManyRequests), func(fixture) req {
		r := jsonReq("POST", "/api/auth/token/", "", `{"username":"nobody-xff","password":"wrong password"}`)
		r.header.Set("X-Forwarded-For", "<script>, 999.1.1.1, ::ffff:zz, "+strings.Repeat("x", 1000))
		return r
	})
	for _, h := range []struct{ name, key, value string }{
		{"Host", "Host", "evil.example"},
		{"Host with a port", "Host", "evil.example:666"},
		{"X-Forwarded-Host", "X-Forwarded-Host", "evil.example"},
		{"X-Forwarded-Proto", "X-Forwarded-Proto", "javascript"},
	} {
		hcs = append(hcs, httpCase{name: h.name + " in pagination links", want: codes(ok),
			req: func(fixture) req { return req{path: "/api/campaigns/?page_size=1", header: hdr(h.key, h.value)} },
			check: func(t *testing.T, _ *herald, r *response) {
				var pg struct{ Next *string }
				if err := r.json(&pg); err != nil {
					t.Fatal(err)
				}
				if pg.Next == nil {
					t.Fatal("no next link on a page of one")
				}
				if strings.Contains(*pg.Next, "evil.example") || strings.Contains(*pg.Next, "javascript") {
					t.Errorf("next link %q echoes the request's %s", *pg.Next, h.key)
				}
			}})
	}
	// Hosts with a URL in them, or not a host at all: refused, or at least
	// not echoed.
	for _, host := range []string{"http://evil.example/", "evil.example/x?y=", "evil.example:80@x", "a b", "[::1", "evil.example" + strings.Repeat("h", 10_000)} {
		hcs = append(hcs, httpCase{name: "Host " + clip(host, 30), want: codes(badRequest, ok),
			raw: "GET /api/campaigns/?page_size=1 HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n",
			check: func(t *testing.T, _ *herald, r *response) {
				if r.Status == ok && strings.Contains(string(r.Body), "evil.example") {
					t.Errorf("the Host header is echoed: %s", clip(string(r.Body), 300))
				}
			}})
	}
	hcs = append(hcs,
		httpCase{name: "no Host", want: codes(badRequest), raw: "GET /api/campaigns/ HTTP/1.1\r\nConnection: close\r\n\r\n"},
		httpCase{name: "two Hosts", want: codes(badRequest), raw: "GET /api/campaigns/ HTTP/1.1\r\nHost: {host}\r\nHost: evil.example\r\nConnection: close\r\n\r\n"},
	)
	add("a 10 KiB X-Request-Id", codes(ok), func(fixture) req {
		return req{path: "/healthz", header: hdr("X-Request-Id", strings.Repeat("i", 10<<10))}
	})
	add("1,000 cookies", codes(ok), func(fixture) req {
		var b strings.Builder
		for i := range 1000 {
			fmt.Fprintf(&b, "c%d=v; ", i)
		}
		return req{path: "/api/campaigns/", header: hdr("Cookie", b.String())}
	})
	add("a garbage session cookie", codes(unauth), func(fixture) req {
		return req{path: "/api/campaigns/", header: hdr("Cookie", "herald_access=garbage")}
	})
	add("Accept-Encoding bomb", codes(ok), func(fixture) req {
		return req{path: "/api/campaigns/", header: hdr("Accept-Encoding", strings.Repeat("gzip;q=0.5, ", 2000))}
	})
	add("Range", codes(ok, http.StatusPartialContent, http.StatusRequestedRangeNotSatisfiable), func(fixture) req {
		return req{path: "/", header: hdr("Range", "bytes=0-1,"+strings.Repeat("2-3,", 1000)+"9223372036854775806-9223372036854775807")}
	})

	hcs = append(hcs, csrfCases()...)
	hcs = append(hcs, idempotencyKeyCases()...)
	return httpCasesOf("headers", hcs)
}

// idempotencyKeyCases are Idempotency-Key headers on a write: anything but
// 1 to 255 visible ASCII characters, once, is refused before anything is
// written; a good key is replayed, and not taken over by another request.
func idempotencyKeyCases() []httpCase {
	const comments = "/api/campaigns/1/comments/"
	comment := `{"content":"keyed"}`
	keyed := func(f fixture, body string, keys ...string) req {
		r := jsonReq("POST", comments, f.bob, body)
		for _, k := range keys {
			r.header.Add("Idempotency-Key", k)
		}
		return r
	}
	namesTheHeader := func(t *testing.T, _ *herald, r *response) {
		var p struct{ Errors map[string][]string }
		if err := r.json(&p); err != nil || len(p.Errors["Idempotency-Key"]) == 0 {
			t.Errorf("the problem does not name the header (%v): %s", err, clip(string(r.Body), 300))
		}
	}
	var hcs []httpCase
	for _, k := range []struct{ name, value string }{
		{"empty", ""},
		{"256 bytes", strings.Repeat("k", 256)},
		{"60 KiB", strings.Repeat("k", 60<<10)},
		{"with a space", "a b"},
		{"UTF-8", "clé-✓"},
		{"Latin-1 bytes", "cl\xe9"},
	} {
		hcs = append(hcs, httpCase{name: "Idempotency-Key " + k.name, want: []int{badRequest}, check: namesTheHeader,
			req: func(f fixture) req { return keyed(f, comment, k.value) }})
	}
	hcs = append(hcs,
		httpCase{name: "two Idempotency-Keys", want: []int{badRequest}, check: namesTheHeader,
			req: func(f fixture) req { return keyed(f, comment, "one", "two") }},
		httpCase{name: "Idempotency-Key 100 KiB", want: []int{headerLarge},
			req: func(f fixture) req { return keyed(f, comment, strings.Repeat("k", 100<<10)) }},
	)
	for _, c := range []struct{ name, value string }{{"NUL", "\x00"}, {"a control character", "\x01"}, {"DEL", "\x7f"}} {
		hcs = append(hcs, httpCase{name: "Idempotency-Key with " + c.name, want: []int{badRequest},
			raw: "POST " + comments + " HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {bob}\r\nContent-Type: application/json\r\n" +
				"Idempotency-Key: a" + c.value + "b\r\nContent-Length: " + fmt.Sprint(len(comment)) + "\r\nConnection: close\r\n\r\n",
			rawBody: comment})
	}
	// A good key: the retry is the first answer again, another request
	// with it is refused, and a request that failed does not spend it.
	retry := func(key, body string, want int, then func(t *testing.T, first, again *response)) func(*testing.T, *herald, *response) {
		return func(t *testing.T, h *herald, first *response) {
			again := h.client(t).must(t, keyed(h.fixture, body, key))
			wantStatus(t, again, want)
			if then != nil {
				then(t, first, again)
			}
		}
	}
	hcs = append(hcs,
		httpCase{name: "Idempotency-Key sent twice", want: []int{created},
			req: func(f fixture) req { return keyed(f, comment, "hostile-twice") },
			check: retry("hostile-twice", comment, created, func(t *testing.T, first, again *response) {
				if again.Header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(first.Body, again.Body) {
					t.Errorf("the retry is not the first answer replayed: %v %s", again.Header, clip(string(again.Body), 300))
				}
			})},
		httpCase{name: "Idempotency-Key taken over by another body", want: []int{created},
			req:   func(f fixture) req { return keyed(f, comment, "hostile-other") },
			check: retry("hostile-other", `{"content":"another"}`, http.StatusUnprocessableEntity, nil)},
		httpCase{name: "Idempotency-Key of a malformed body", want: []int{badRequest},
			req:   func(f fixture) req { return keyed(f, `{"content":`, "hostile-bad-body") },
			check: retry("hostile-bad-body", comment, created, nil)},
	)
	return hcs
}

// csrfCases are writes authenticated by the session cookie: only the
// server's own origin (or an allowed one) may make them, and only with a
// JSON body, which a cross-site form or a no-cors fetch cannot send.
// Bearer tokens are not sent by browsers on their own and are unaffected.
func csrfCases() []httpCase {
	const own = "{own}" // the server's own origin, known once it runs
	cookieReq := func(f fixture, method, path, ct, origin, body string) req {
		h := http.Header{"Cookie": {"herald_access=" + f.alice}}
		if ct != "" {
			h.Set("Content-Type", ct)
		}
		if origin == own {
			origin = f.origin
		}
		if origin != "" {
			h.Set("Origin", origin)
		}
		return req{method: method, path: path, header: h, body: strings.NewReader(body)}
	}
	comment := `{"content":"forged?"}`
	var hcs []httpCase
	add := func(name string, want []int, method, path, ct, origin, body string) {
		hcs = append(hcs, httpCase{name: name, want: want, req: func(f fixture) req {
			return cookieReq(f, method, path, ct, origin, body)
		}})
	}
	comments := "/api/campaigns/1/comments/"
	add("cookie write from the server's own origin", []int{created}, "POST", comments, "application/json", own, comment)
	add("cookie write from an allowed origin", []int{created}, "POST", comments, "application/json", allowedOrigin, comment)
	add("cookie write from another site", []int{forbidden}, "POST", comments, "application/json", "http://evil.example", comment)
	add("cookie write from another port of the same host", []int{forbidden}, "POST", comments, "application/json", "http://127.0.0.1:1", comment)
	add("cookie write from origin null", []int{forbidden}, "POST", comments, "application/json", "null", comment)
	add("cookie write without Content-Type", []int{mediaType}, "POST", comments, "", own, comment)
	add("cookie write as text/plain", []int{mediaType}, "POST", comments, "text/plain", own, comment)
	add("cookie edit from another site", []int{forbidden}, "PATCH", "/api/campaigns/1/", "application/json", "http://evil.example", `{"description":"forged"}`)
	add("cookie ticket from another site", []int{forbidden}, "POST", "/api/ws-ticket/", "application/json", "http://evil.example", ``)
	add("cookie quest from another site", []int{forbidden}, "POST", "/api/quests/", "application/json", "http://evil.example", `{"title":"forged"}`)
	// The forgery: fetch(…, {mode: 'no-cors', credentials:
	// 'include', body: new Blob([json])}) from another port.
	add("no-cors fetch from another port", []int{forbidden, mediaType}, "POST", comments, "", "http://127.0.0.1:1", comment)
	hcs = append(hcs,
		httpCase{name: "cookie write marked cross-site by Sec-Fetch-Site", want: []int{forbidden}, req: func(f fixture) req {
			r := cookieReq(f, "POST", comments, "application/json", "", comment)
			r.header.Set("Sec-Fetch-Site", "cross-site")
			return r
		}},
		httpCase{name: "bearer write from another site", want: []int{created}, req: func(f fixture) req {
			r := jsonReq("POST", comments, f.bob, comment)
			r.header.Set("Origin", "http://evil.example")
			return r
		}},
	)
	return hcs
}

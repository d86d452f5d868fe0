package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/app"
	"github.com/heraldhq/herald/internal/config"
	"github.com/heraldhq/herald/internal/testenv"
)

// fuzzAPI is herald's whole handler on SQLite, behind a trusted proxy, with
// one of everything: an owner's active campaign 1 (with a contribution, an
// update, a comment, a release and a milestone) and draft campaign 2, the
// owner's quest 1 and another user's application 1 to it.
type fuzzAPI struct {
	h            http.Handler
	owner, other string // access tokens
	refresh      string // the owner's refresh token
}

func newFuzzAPI(f *testing.F, opts ...app.Option) *fuzzAPI {
	cfg := config.Config{
		DB: testenv.SQLite(f), DataDir: f.TempDir(), AccessTTL: 15 * time.Minute, RefreshTTL: 24 * time.Hour,
		JWTSecret: strings.Repeat("s", 32), ShutdownGrace: time.Second, TrustProxy: true,
	}
	a, err := app.New(context.Background(), cfg, slog.New(slog.DiscardHandler), append(opts, app.WithPasswordParams(testenv.CheapPasswords))...)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { a.Close() })
	e := &fuzzAPI{h: a.Handler()}
	setup := func(method, path, token, body string) map[string]any {
		rec := e.do(method, path, token, []byte(body), nil)
		if rec.Code >= 300 {
			f.Fatalf("%s %s: %d %s", method, path, rec.Code, rec.Body)
		}
		var v map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
			f.Fatal(err)
		}
		return v
	}
	for _, name := range []string{"owner", "other"} {
		setup("POST", "/api/auth/register/", "", `{"username":"`+name+`","password":"`+name+` password"}`)
		pair := setup("POST", "/api/auth/token/", "", `{"username":"`+name+`","password":"`+name+` password"}`)
		if name == "owner" {
			e.owner, e.refresh = pair["access"].(string), pair["refresh"].(string)
		} else {
			e.other = pair["access"].(string)
		}
	}
	setup("POST", "/api/campaigns/", e.owner, `{"title":"Active","goal_amount":"100.00","status":"active"}`)
	setup("POST", "/api/campaigns/", e.owner, `{"title":"Draft","goal_amount":"100.00"}`)
	setup("POST", "/api/campaigns/1/contributions/", e.other, `{"amount":"1.00"}`)
	setup("POST", "/api/campaigns/1/updates/", e.owner, `{"title":"News","content":"Text","image":null}`)
	setup("POST", "/api/campaigns/1/comments/", e.other, `{"content":"Hello"}`)
	setup("POST", "/api/campaigns/1/releases/", e.owner, `{"version":"1.0","title":"First","released_at":"2024-01-02T03:04:05Z"}`)
	setup("POST", "/api/campaigns/1/milestones/", e.owner, `{"title":"Half","target_amount":"50.00","due_date":"2030-01-01"}`)
	setup("POST", "/api/quests/", e.owner, `{"title":"Quest","description":"Do it"}`)
	setup("POST", "/api/quests/1/applications/", e.other, `{"message":"Me"}`)
	return e
}

// do sends one request with a JSON body through the handler.
func (e *fuzzAPI) do(method, target, token string, body []byte, header http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "/", bytes.NewReader(body))
	u, err := url.ParseRequestURI(target)
	if err != nil {
		panic(err) // callers send only what a server would take
	}
	req.URL, req.RequestURI, req.Host = u, u.RequestURI(), "herald.example"
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return rec
}

// checkAnswer: never a server error, and a JSON answer (problem+json for
// errors) whenever there is a body.
func checkAnswer(t *testing.T, what string, rec *httptest.ResponseRecorder) {
	t.Helper()
	if rec.Code >= 500 {
		t.Fatalf("%s: status %d: %s", what, rec.Code, rec.Body)
	}
	if rec.Code == http.StatusNoContent || rec.Code == http.StatusMovedPermanently || rec.Code == http.StatusTemporaryRedirect {
		return
	}
	if !json.Valid(rec.Body.Bytes()) {
		t.Fatalf("%s: status %d, not JSON: %.200q", what, rec.Code, rec.Body)
	}
	ct := rec.Header().Get("Content-Type")
	if rec.Code < 300 && ct != "application/json" || rec.Code >= 400 && ct != "application/problem+json" {
		t.Fatalf("%s: status %d with Content-Type %q", what, rec.Code, ct)
	}
}

// bodyEndpoint is a request that decodes a JSON body, and where to read
// what it wrote.
type bodyEndpoint struct {
	method, path string
	as           string // "owner", "other" or "" (anonymous)
	readBack     string
}

var bodyEndpoints = []bodyEndpoint{
	{"POST", "/api/auth/register/", "", ""},
	{"POST", "/api/auth/token/", "", ""},
	{"POST", "/api/auth/token/refresh/", "", ""},
	{"POST", "/api/auth/session/", "", ""},
	{"POST", "/api/campaigns/", "owner", "/api/campaigns/?owner=1&status=draft"},
	{"PATCH", "/api/campaigns/2/", "owner", "/api/campaigns/2/"},
	{"POST", "/api/campaigns/1/contributions/", "other", "/api/campaigns/1/"},
	{"POST", "/api/campaigns/1/updates/", "owner", "/api/campaigns/1/"},
	{"PATCH", "/api/campaigns/1/updates/1/", "owner", "/api/campaigns/1/updates/1/"},
	{"POST", "/api/campaigns/1/comments/", "other", "/api/campaigns/1/comments/"},
	{"PATCH", "/api/campaigns/1/comments/1/", "other", "/api/campaigns/1/comments/1/"},
	{"POST", "/api/campaigns/1/releases/", "owner", "/api/campaigns/1/"},
	{"PATCH", "/api/campaigns/1/releases/1/", "owner", "/api/campaigns/1/releases/1/"},
	{"POST", "/api/campaigns/1/milestones/", "owner", "/api/campaigns/1/"},
	{"PATCH", "/api/campaigns/1/milestones/1/", "owner", "/api/campaigns/1/milestones/"},
	{"POST", "/api/quests/", "owner", "/api/quests/"},
	{"PATCH", "/api/quests/1/", "owner", "/api/quests/1/"},
	{"POST", "/api/quests/1/applications/", "other", "/api/applications/"},
	{"PATCH", "/api/applications/1/", "owner", "/api/quests/1/applications/"},
	{"PATCH", "/api/applications/1/", "other", "/api/applications/1/"},
	{"POST", "/api/ws-ticket/", "owner", ""},
	{"POST", "/api/campaigns/1/comments/1/report/", "owner", "/api/campaigns/1/reports/"},
}

// FuzzEndpointBodies sends arbitrary bodies to every endpoint that decodes
// one (which endpoint: at's value modulo their number), as the user that
// may write there. The answer is never a server error, and whatever was
// written reads back without one: a value that is accepted but cannot be
// stored and read again (a time past year 9999, say) fails here.
func FuzzEndpointBodies(f *testing.F) {
	long := strings.Repeat("x", 25000)
	seeds := [][]string{
		{`{"username":"fuzzer","email":"f@example.com","password":"fuzzer password"}`, `{"username":"` + long + `","password":"p"}`, `{"username":"a\u0000b","password":"12345678"}`},
		{`{"username":"owner","password":"owner password"}`, `{"username":"owner","password":"wrong"}`, `{"username":" ","password":""}`},
		{`{"refresh":"x.y.z"}`, `{"refresh":""}`, `{"refresh":null}`},
		{`{"username":"other","password":"other password"}`, `{"username":"` + long + `","password":"` + long + `"}`},
		{`{"title":"T","goal_amount":"999999999999.99","status":"draft"}`, `{"title":"T","goal_amount":"1000000000000.00"}`, `{"title":"T","goal_amount":-1}`, `{"title":"T","goal_amount":1e400,"currency":"XXX"}`},
		{`{"title":"New","status":"active"}`, `{"goal_amount":"0.01","status":"closed"}`, `{"status":"bogus"}`, `{"description":null}`},
		{`{"amount":"1.00"}`, `{"amount":"999999999999.99"}`, `{"amount":"0.00"}`, `{"amount":9223372036854775807}`, `{"amount":"1.001","currency":"EUR"}`},
		{`{"title":"T","content":"C","image":"https://example.com/a.png"}`, `{"title":"T","content":"C","image":"javascript:alert(1)"}`, `{"title":"T","content":"C","image":"//evil.example/a.png"}`, `{"title":"T","content":"C","image":"https://` + strings.Repeat("a", 600) + `"}`},
		{`{"image":""}`, `{"image":"/\\evil.example"}`, `{"image":"data:image/png;base64,AA"}`, `{"title":""}`},
		{`{"content":"Hi"}`, `{"content":"` + long + `"}`, `{"content":"\ud800"}`},
		{`{"content":"Edited"}`, `{"content":""}`},
		{`{"version":"2","title":"T","released_at":"2024-02-29T12:00:00+01:00"}`, `{"version":"2","title":"T","released_at":"9999-12-31T23:59:59-23:59"}`, `{"version":"2","title":"T","released_at":"0000-01-01T00:00:00+23:59"}`, `{"version":"2","title":"T","released_at":"10000-01-01T00:00:00Z"}`},
		{`{"released_at":"2024-01-01T00:00:00.999999999Z"}`, `{"released_at":null}`, `{"released_at":1}`},
		{`{"title":"M","target_amount":"10.00","due_date":"2024-02-29"}`, `{"title":"M","target_amount":"10.00","due_date":"9999-12-31"}`, `{"title":"M","target_amount":"10.00","due_date":"0000-01-01"}`, `{"title":"M","target_amount":"10.00","due_date":"2023-02-29"}`},
		{`{"reached":true}`, `{"due_date":""}`, `{"target_amount":"999999999999.99"}`},
		{`{"title":"Q","description":"D"}`, `{"title":"Q","status":"closed"}`},
		{`{"status":"open"}`, `{"title":"` + long + `"}`},
		{`{"message":"Me too"}`, `{"message":"` + long + `"}`},
		{`{"status":"approved"}`, `{"status":"rejected"}`, `{"status":"pending"}`},
		{`{"status":"withdrawn"}`, `{"status":"approved"}`},
		{`{}`, ``},
		{`{"reason":"Spam"}`, `{"reason":"` + long + `"}`, `{"reason":null}`, `{"reason":"a\u0000b"}`, `{"reason":1}`},
	}
	for i, bodies := range seeds {
		for _, b := range append(bodies, `null`, `[]`, `{"bogus":1}`, `{`, "\xff") {
			f.Add(uint8(i), []byte(b))
		}
	}
	e := newFuzzAPI(f)
	f.Fuzz(func(t *testing.T, at uint8, body []byte) {
		ep := bodyEndpoints[int(at)%len(bodyEndpoints)]
		token := map[string]string{"owner": e.owner, "other": e.other}[ep.as]
		if ep.path == "/api/auth/token/refresh/" && bytes.Equal(body, []byte(`{"refresh":"x.y.z"}`)) {
			body = []byte(`{"refresh":"` + e.refresh + `"}`)
		}
		what := fmt.Sprintf("%s %s %.200q", ep.method, ep.path, body)
		rec := e.do(ep.method, ep.path, token, body, nil)
		checkAnswer(t, what, rec)
		if rec.Code < 300 && ep.readBack != "" {
			checkAnswer(t, what+", then GET "+ep.readBack, e.do("GET", ep.readBack, token, nil, nil))
		}
	})
}

// requestPaths are the GET endpoints, with {id} where the fuzzed path
// segment goes and {ok} where a valid id does.
var requestPaths = []string{
	"/api/campaigns/", "/api/campaigns/{id}/", "/api/campaigns/{id}/contributions/",
	"/api/campaigns/{ok}/contributions/{id}/", "/api/campaigns/{id}/updates/", "/api/campaigns/{ok}/updates/{id}/",
	"/api/campaigns/{id}/comments/", "/api/campaigns/{ok}/comments/{id}/", "/api/campaigns/{id}/releases/",
	"/api/campaigns/{ok}/releases/{id}/", "/api/campaigns/{id}/milestones/", "/api/campaigns/{ok}/milestones/{id}/",
	"/api/quests/", "/api/quests/{id}/", "/api/quests/{id}/applications/", "/api/applications/",
	"/api/applications/{id}/", "/api/auth/me/", "/api/auth/session/", "/api/ops/", "/api/{id}/",
	"/api/campaigns/{id}/reports/",
}

// FuzzRequestLine sends GET requests with an arbitrary path id, query
// (?page=, ?page_size=, ?status=, ?owner=, ?creator=, anything),
// Authorization header (the owner's token when authz is "owner") and
// proxy headers (X-Forwarded-For and -Proto, trusted here). The answer is
// never a server error and is JSON.
func FuzzRequestLine(f *testing.F) {
	for i, seed := range []struct{ id, query string }{
		{"", "page=2&page_size=1"},
		{"1", "page=0"},
		{"1", "page=-1&page_size=0"},
		{"1", "page=9223372036854775807&page_size=100"},
		{"+1", "page=9223372036854775808&page_size=101"},
		{"01", "page=1e3&page_size=1.5"},
		{"-1", "page=%00&page_size=%zz"},
		{"0", "status=active&owner=1"},
		{"9223372036854775807", "status=draft&owner=9223372036854775807"},
		{"9223372036854775808", "status=bogus&owner=-1&creator=0"},
		{"18446744073709551616", "status=open&creator=1&creator=2"},
		{"1e3", "status=&owner=&creator=&page=&page_size="},
		{"0x1", "page=1&page=2&page=" + strings.Repeat("9", 1000)},
		{" 1", strings.Repeat("a=1&", 5000)},
		{"1 ", "owner=%2B1"},
		{"%2e%2e", ";page=2"},
		{"\u0661", "page=\u0661"},
		{"1/..", "status=ACTIVE"},
		{strings.Repeat("9", 1000), "creator=1e400"},
	} {
		for _, h := range []struct{ authz, xff, proto string }{
			{"", "", ""},
			{"owner", "203.0.113.7", "https"},
			{"Bearer x.y.z", "2001:db8::1, fe80::1%eth0", "HTTPS"},
			{"Basic dXNlcjpwYXNz", strings.Repeat(",", 10000), "javascript"},
		} {
			f.Add(uint8(i), seed.id, seed.query, h.authz, h.xff, h.proto)
		}
	}
	e := newFuzzAPI(f)
	f.Fuzz(func(t *testing.T, at uint8, id, query, authz, xff, proto string) {
		for _, v := range []string{authz, xff, proto} {
			if !validHeaderValue(v) {
				return // an HTTP server refuses such a request itself
			}
		}
		tmpl := requestPaths[int(at)%len(requestPaths)]
		path := strings.ReplaceAll(strings.ReplaceAll(tmpl, "{ok}", "1"), "{id}", url.PathEscape(id))
		header := http.Header{}
		switch authz {
		case "":
		case "owner":
			header.Set("Authorization", "Bearer "+e.owner)
		default:
			header.Set("Authorization", authz)
		}
		if xff != "" {
			header.Set("X-Forwarded-For", xff)
		}
		if proto != "" {
			header.Set("X-Forwarded-Proto", proto)
		}
		target := (&url.URL{Path: path, RawQuery: query}).String()
		if _, err := url.ParseRequestURI(target); err != nil || strings.ContainsAny(target, " \t") {
			return // nor would a server take this request line
		}
		rec := e.do("GET", target, "", nil, header)
		checkAnswer(t, fmt.Sprintf("GET %.300q (Authorization %.60q, X-Forwarded-For %.60q, -Proto %.60q)", target, authz, xff, proto), rec)
	})
}

// validHeaderValue reports whether net/http would take v as a header value:
// no control characters but tab.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

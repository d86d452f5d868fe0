package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// endpoint is one operation that reads a JSON body, with a valid body for it.
type endpoint struct {
	method, path, token string
	valid               string // a body it accepts, as a JSON object
}

func (ep endpoint) String() string { return ep.method + " " + ep.path }

// badInputFixture sets up a campaign, a comment, a quest and an application
// and returns the endpoints that write to them.
func badInputFixture(t *testing.T, e *env) (eps []endpoint, campaign int64, alice, bob string) {
	t.Helper()
	_, toks := e.users("alice", "bob")
	alice, bob = toks[0], toks[1]
	campaign = e.activeCampaign(alice, "Target")
	comment := e.must(http.StatusCreated, "POST", cp(campaign, "comments"), bob, map[string]any{"content": "hello"}).id()
	q := e.quest(alice, "Quest")
	app := e.must(http.StatusCreated, "POST", qp(q, "applications"), bob, map[string]any{"message": "me"}).id()
	q2 := e.quest(alice, "Another quest")
	eps = []endpoint{
		{"POST", "/api/auth/register/", "", `{"username":"zed","password":"a fine password"}`},
		{"POST", "/api/auth/token/", "", `{"username":"alice","password":"correct horse alice"}`},
		{"POST", "/api/auth/token/refresh/", "", `{"refresh":"x"}`},
		{"POST", "/api/campaigns/", alice, `{"title":"t","goal_amount":"1.00"}`},
		{"PATCH", cp(campaign), alice, `{"title":"Target"}`},
		{"POST", cp(campaign, "contributions"), bob, `{"amount":"1.00"}`},
		{"POST", cp(campaign, "milestones"), alice, `{"title":"m","target_amount":"1.00"}`},
		{"POST", cp(campaign, "releases"), alice, `{"version":"1","title":"r"}`},
		{"PATCH", cp(campaign, "comments", comment), bob, `{"content":"hello"}`},
		{"POST", "/api/quests/", alice, `{"title":"t"}`},
		{"POST", qp(q2, "applications"), bob, `{"message":"m"}`},
		{"PATCH", ap(app), alice, `{"status":"approved"}`},
	}
	return eps, campaign, alice, bob
}

func TestMalformedBodies(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, e *env) {
		eps, campaign, _, _ := badInputFixture(t, e)
		for _, ep := range eps {
			t.Run(ep.String(), func(t *testing.T) {
				e := e.on(t)
				for name, body := range map[string]string{
					"cut short":          `{"title":`,
					"unquoted key":       `{title: "x"}`,
					"trailing comma":     `{"a":1,}`,
					"single quotes":      `{'a':1}`,
					"empty":              ``,
					"blank":              " \n\t ",
					"array":              `[]`,
					"string":             `"hello"`,
					"number":             `42`,
					"null":               `null`,
					"trailing garbage":   ep.valid + ` x`,
					"trailing brace":     ep.valid + `}`,
					"two objects":        ep.valid + ep.valid,
					"two objects, space": ep.valid + " " + ep.valid,
					"comment":            ep.valid + ` // note`,
					"invalid escape":     `{"title":"\q"}`,
				} {
					r := e.do(ep.method, ep.path, ep.token, body)
					t.Run(name, func(t *testing.T) { wantParseError(t, r) })
				}
				// A body without a Content-Type is not taken for JSON, even a
				// valid one: a page on another origin can send it without a
				// CORS preflight.
				wantProblem(t, e.raw(ep.method, ep.path, ep.token, "", strings.NewReader(ep.valid)),
					http.StatusUnsupportedMediaType, "unsupported_media_type")
				wantProblem(t, e.raw(ep.method, ep.path, ep.token, "", nil),
					http.StatusUnsupportedMediaType, "unsupported_media_type")

				// The offending unknown field is named, whatever else is right.
				r := e.do(ep.method, ep.path, ep.token, strings.TrimSuffix(ep.valid, "}")+`,"is_admin":true}`)
				wantOnlyFieldError(t, r, "is_admin", "unknown field")
				want(t, "errors.is_admin", fmt.Sprint(r.fieldErrors("is_admin")), "[unknown field]")
				wantOnlyFieldError(t, e.do(ep.method, ep.path, ep.token, `{"Bogus Field":1}`), "Bogus Field", "unknown field")

				for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml", "json", "application/"} {
					wantProblem(t, e.raw(ep.method, ep.path, ep.token, ct, strings.NewReader(ep.valid)),
						http.StatusUnsupportedMediaType, "unsupported_media_type")
				}

				big := `{"title":"` + strings.Repeat("a", 1<<20) + `"}`
				wantProblem(t, e.do(ep.method, ep.path, ep.token, big), http.StatusRequestEntityTooLarge, "too_large")
			})
		}
		// None of that changed the campaign.
		wantTotals(t, e, campaign, "0.00", 0)
		r := e.must(http.StatusOK, "GET", cp(campaign), "", nil)
		want(t, "title", str(r.JSON, "title"), "Target")
		want(t, "comments_count", num(r.JSON, "comments_count"), 1)
		want(t, "milestones", len(list(r.JSON, "milestones")), 0)
	})
}

func TestBodyLimitAndMediaTypes(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, e *env) {
		_, toks := e.users("alice")
		alice := toks[0]
		c := e.activeCampaign(alice, "Limits")
		// Exactly 1 MiB is read (and refused for its content); one byte more is too large.
		body := func(n int) string {
			return `{"content":"` + strings.Repeat("a", n-len(`{"content":""}`)) + `"}`
		}
		r := e.do("POST", cp(c, "comments"), alice, body(1<<20))
		wantOnlyFieldError(t, r, "content", "5000")
		r = e.do("POST", cp(c, "comments"), alice, body(1<<20+1))
		wantProblem(t, r, http.StatusRequestEntityTooLarge, "too_large")
		r = e.do("POST", cp(c, "comments"), alice, body(8<<20))
		wantProblem(t, r, http.StatusRequestEntityTooLarge, "too_large")

		// JSON media types with parameters or a +json suffix are JSON.
		for _, ct := range []string{"application/json; charset=utf-8", "Application/JSON", "application/merge-patch+json", "application/vnd.herald+json"} {
			r := e.raw("POST", cp(c, "comments"), alice, ct, strings.NewReader(`{"content":"typed"}`))
			if r.Status != http.StatusCreated {
				t.Errorf("Content-Type %q: status %d: %s", ct, r.Status, r.Body)
			}
		}
		r = e.must(http.StatusOK, "GET", cp(c), "", nil)
		want(t, "comments_count", num(r.JSON, "comments_count"), 4)
	})
}

func TestWrongTypes(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, e *env) {
		_, toks := e.users("alice", "bob")
		alice, bob := toks[0], toks[1]
		c := e.activeCampaign(alice, "Types")
		m := e.must(http.StatusCreated, "POST", cp(c, "milestones"), alice, map[string]any{"title": "m", "target_amount": "5000.00"}).id()
		q := e.quest(alice, "Types")
		app := e.must(http.StatusCreated, "POST", qp(q, "applications"), bob, map[string]any{}).id()

		for _, tc := range []struct {
			method, path, token, body, field, msg string
		}{
			{"POST", "/api/auth/register/", "", `{"username":true,"password":"a fine password"}`, "username", "must be a string"},
			{"POST", "/api/auth/register/", "", `{"username":"zed","password":12345678}`, "password", "must be a string"},
			{"POST", "/api/auth/token/", "", `{"username":["alice"],"password":"x"}`, "username", "must be a string"},
			{"POST", "/api/campaigns/", alice, `{"title":5,"goal_amount":"1.00"}`, "title", "must be a string"},
			{"POST", "/api/campaigns/", alice, `{"title":"t","goal_amount":{"value":"1.00"}}`, "goal_amount", "decimal amount"},
			{"POST", "/api/campaigns/", alice, `{"title":"t","goal_amount":true}`, "goal_amount", "decimal amount"},
			{"POST", "/api/campaigns/", alice, `{"title":"t","goal_amount":"1.00","status":1}`, "status", "must be a string"},
			{"PATCH", cp(c), alice, `{"description":{"text":"x"}}`, "description", "must be a string"},
			{"PATCH", cp(c), alice, `{"currency":978}`, "currency", "must be a string"},
			{"POST", cp(c, "contributions"), bob, `{"amount":{}}`, "amount", "decimal amount"},
			{"POST", cp(c, "contributions"), bob, `{"amount":["1.00"]}`, "amount", "decimal amount"},
			{"POST", cp(c, "contributions"), bob, `{"amount":false}`, "amount", "decimal amount"},
			{"POST", cp(c, "contributions"), bob, `{"amount":null}`, "amount", "required"},
			{"POST", cp(c, "contributions"), bob, `{"amount":"1.00","currency":840}`, "currency", "must be a string"},
			{"POST", cp(c, "milestones"), alice, `{"title":"m","target_amount":"1.00","reached":"yes"}`, "reached", "must be a boolean"},
			{"PATCH", cp(c, "milestones", m), alice, `{"reached":1}`, "reached", "must be a boolean"},
			{"PATCH", cp(c, "milestones", m), alice, `{"due_date":20250131}`, "due_date", "must be a string"},
			{"POST", cp(c, "releases"), alice, `{"version":1.0,"title":"r"}`, "version", "must be a string"},
			{"POST", cp(c, "releases"), alice, `{"version":"1","title":"r","released_at":1715783400}`, "released_at", "ISO 8601"},
			{"POST", cp(c, "comments"), bob, `{"content":42}`, "content", "must be a string"},
			{"POST", "/api/quests/", alice, `{"title":["a"]}`, "title", "must be a string"},
			{"POST", "/api/quests/", alice, `{"title":"t","status":false}`, "status", "must be a string"},
			{"POST", qp(q, "applications"), alice, `{"message":{}}`, "message", "must be a string"},
			{"PATCH", ap(app), alice, `{"status":true}`, "status", "must be a string"},
		} {
			r := e.do(tc.method, tc.path, tc.token, tc.body)
			t.Run(tc.method+" "+tc.path+" "+tc.body, func(t *testing.T) { wantOnlyFieldError(t, r, tc.field, tc.msg) })
		}
		r := e.must(http.StatusOK, "GET", cp(c, "milestones", m), "", nil)
		want(t, "reached", r.JSON["reached"], any(false))
		r = e.must(http.StatusOK, "GET", ap(app), bob, nil)
		want(t, "status", str(r.JSON, "status"), "pending")
	})
}

func TestBadAmounts(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, e *env) {
		_, toks := e.users("alice", "bob")
		alice, bob := toks[0], toks[1]
		c := e.activeCampaign(alice, "Amounts")
		e.contribute(bob, c, "10.00")

		for _, amount := range []string{
			`"1.234"`, `1.234`, `"0.001"`, `"-5.00"`, `-5`, `-0.01`, `"abc"`, `1e3`, `"1e3"`, `1E2`, `""`, `" 1.00"`,
			`"1.00 "`, `"1,000.00"`, `"+1.00"`, `".5"`, `"5."`, `"0x10"`, `"NaN"`, `"Infinity"`, `"１.00"`,
			`"1000000000000.00"`, `99999999999999999999999`, `"0"`, `0`, `"0.00"`, `-0`,
		} {
			for _, path := range []string{cp(c, "contributions"), "/api/campaigns/"} {
				field, body := "amount", `{"amount":`+amount+`}`
				if path == "/api/campaigns/" {
					field, body = "goal_amount", `{"title":"t","goal_amount":`+amount+`}`
				}
				r := e.do("POST", path, bob, body)
				t.Run(path+" "+amount, func(t *testing.T) { wantOnlyFieldError(t, r, field, "") })
			}
			r := e.do("POST", cp(c, "milestones"), alice, `{"title":"t","target_amount":`+amount+`}`)
			t.Run("milestone "+amount, func(t *testing.T) { wantOnlyFieldError(t, r, "target_amount", "") })
		}
		// Mismatched currencies are refused and leave nothing behind.
		for _, cur := range []string{"EUR", "usd", "US", "USDT"} {
			r := e.do("POST", cp(c, "contributions"), bob, map[string]any{"amount": "5.00", "currency": cur})
			wantOnlyFieldError(t, r, "currency", "")
		}
		wantTotals(t, e, c, "10.00", 1)
		r := e.must(http.StatusOK, "GET", "/api/campaigns/", "", nil)
		want(t, "campaigns", num(r.JSON, "count"), 1)
		r = e.must(http.StatusOK, "GET", cp(c, "milestones"), "", nil)
		want(t, "milestones", num(r.JSON, "count"), 0)
	})
}

func TestBadIDsAndPaths(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, e *env) {
		_, toks := e.users("alice", "bob")
		alice, bob := toks[0], toks[1]
		c := e.activeCampaign(alice, "Paths")
		cm := e.must(http.StatusCreated, "POST", cp(c, "comments"), bob, map[string]any{"content": "hi"}).id()
		q := e.quest(alice, "Paths")
		app := e.must(http.StatusCreated, "POST", qp(q, "applications"), bob, map[string]any{}).id()

		for _, id := range []string{"abc", "0", "-1", "1.5", "1e3", "0x1", "99999999999999999999", "9223372036854775807", "9223372036854775808"} {
			for _, rq := range []struct {
				method, path, token string
				body                any
			}{
				{"GET", "/api/campaigns/" + id + "/", "", nil},
				{"PATCH", "/api/campaigns/" + id + "/", alice, map[string]any{"title": "x"}},
				{"GET", "/api/campaigns/" + id + "/comments/", "", nil},
				{"POST", "/api/campaigns/" + id + "/contributions/", bob, map[string]any{"amount": "1.00"}},
				{"GET", cp(c, "comments") + id + "/", "", nil},
				{"PATCH", cp(c, "comments") + id + "/", bob, map[string]any{"content": "x"}},
				{"GET", cp(c, "contributions") + id + "/", "", nil},
				{"GET", "/api/quests/" + id + "/", "", nil},
				{"PATCH", "/api/quests/" + id + "/", alice, map[string]any{"title": "x"}},
				{"POST", "/api/quests/" + id + "/applications/", bob, map[string]any{}},
				{"GET", "/api/quests/" + id + "/applications/", alice, nil},
				{"GET", "/api/applications/" + id + "/", bob, nil},
				{"PATCH", "/api/applications/" + id + "/", alice, map[string]any{"status": "approved"}},
			} {
				r := e.do(rq.method, rq.path, rq.token, rq.body)
				t.Run(rq.method+" "+rq.path, func(t *testing.T) { wantProblem(t, r, http.StatusNotFound, "not_found") })
			}
		}
		// A child looked up under the wrong campaign does not exist there.
		other := e.activeCampaign(alice, "Other")
		wantProblem(t, e.do("GET", cp(other, "comments", cm), "", nil), http.StatusNotFound, "not_found")
		wantProblem(t, e.do("PATCH", cp(other, "comments", cm), bob, map[string]any{"content": "x"}), http.StatusNotFound, "not_found")

		t.Run("unknown paths", func(t *testing.T) {
			e := e.on(t)
			for _, rq := range []struct{ method, path string }{
				{"GET", "/api/nope/"},
				{"GET", "/api/"},
				{"GET", "/api/campaigns/1/nope/"},
				{"GET", cp(c, "bogus")},
				{"GET", cp(c, "comments", cm, "extra")},
				{"GET", "/api/campaigns/search/recent/"},
				{"GET", qp(q, "applications", itoa(app))},
				{"GET", "/api/applications/" + itoa(app) + "/history/"},
				{"GET", "/api/auth/me/again/"},
				{"POST", "/api/auth/register/extra/"},
				{"POST", "/api/auth/token/x"},
				{"PATCH", cp(c, "bogus")},
			} {
				r := e.do(rq.method, rq.path, alice, map[string]any{"username": "sneaky", "password": "a fine password", "title": "Hijacked"})
				t.Run(rq.method+" "+rq.path, func(t *testing.T) { wantProblem(t, r, http.StatusNotFound, "not_found") })
			}
			// Nothing was done by those requests.
			wantProblem(t, e.do("POST", "/api/auth/token/", "", map[string]any{"username": "sneaky", "password": "a fine password"}),
				http.StatusUnauthorized, "no_active_account")
			r := e.must(http.StatusOK, "GET", cp(c), "", nil)
			want(t, "title", str(r.JSON, "title"), "Paths")
		})

		t.Run("wrong methods", func(t *testing.T) {
			e := e.on(t)
			for _, rq := range []struct{ method, path, allow string }{
				{"PUT", cp(c), "GET, PATCH, DELETE, OPTIONS"},
				{"POST", cp(c), "GET, PATCH, DELETE, OPTIONS"},
				{"DELETE", "/api/campaigns/", "GET, POST, OPTIONS"},
				{"PATCH", cp(c, "contributions"), "GET, POST, OPTIONS"},
				{"PATCH", cp(c, "contributions", 1), "GET, OPTIONS"},
				{"PUT", cp(c, "comments", cm), "GET, PATCH, DELETE, OPTIONS"},
				{"GET", cp(c, "comments", cm, "hide"), "POST, OPTIONS"},
				{"DELETE", cp(c, "reports"), "GET, OPTIONS"},
				{"GET", "/api/auth/register/", "POST, OPTIONS"},
				{"GET", "/api/auth/token/", "POST, OPTIONS"},
				{"PUT", "/api/auth/me/", "GET, OPTIONS"},
				{"DELETE", qp(q), "GET, PATCH, OPTIONS"},
				{"PUT", "/api/applications/", "GET, OPTIONS"},
				{"DELETE", ap(app), "GET, PATCH, OPTIONS"},
			} {
				r := e.do(rq.method, rq.path, alice, nil)
				t.Run(rq.method+" "+rq.path, func(t *testing.T) {
					wantProblem(t, r, http.StatusMethodNotAllowed, "method_not_allowed")
					want(t, "Allow", r.Header.Get("Allow"), rq.allow)
				})
			}
			r := e.do("OPTIONS", cp(c), "", nil)
			want(t, "OPTIONS status", r.Status, http.StatusNoContent)
			want(t, "OPTIONS Allow", r.Header.Get("Allow"), "GET, PATCH, DELETE, OPTIONS")
			r = e.do("HEAD", cp(c), "", nil)
			want(t, "HEAD status", r.Status, http.StatusOK)
			want(t, "HEAD body", len(r.Body), 0)
			// Still there, untouched.
			r = e.must(http.StatusOK, "GET", cp(c), "", nil)
			want(t, "comments_count", num(r.JSON, "comments_count"), 1)
		})
	})
}

// NUL characters cannot be stored in PostgreSQL text; every way in must
// refuse them as bad input rather than fail inside the database.
func TestNULCharacters(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, e *env) {
		_, toks := e.users("alice", "bob")
		alice, bob := toks[0], toks[1]
		c := e.activeCampaign(alice, "NUL")
		q := e.quest(alice, "NUL")
		const nul = `a\u0000b` // JSON text for a NUL between two letters
		for _, tc := range []struct {
			method, path, token, body, field string
		}{
			{"POST", "/api/auth/register/", "", `{"username":"` + nul + `","password":"a fine password"}`, "username"},
			{"POST", "/api/auth/register/", "", `{"username":"nul","email":"` + nul + `@example.com","password":"a fine password"}`, "email"},
			{"POST", "/api/campaigns/", alice, `{"title":"` + nul + `","goal_amount":"1.00"}`, "title"},
			{"POST", "/api/campaigns/", alice, `{"title":"t","description":"` + nul + `","goal_amount":"1.00"}`, "description"},
			{"POST", "/api/campaigns/", alice, `{"title":"t","goal_amount":"1.00","currency":"U` + nul + `"}`, "currency"},
			{"POST", cp(c, "comments"), bob, `{"content":"` + nul + `"}`, "content"},
			{"POST", cp(c, "updates"), alice, `{"title":"t","content":"c","image":"/` + nul + `"}`, "image"},
			{"POST", cp(c, "releases"), alice, `{"version":"` + nul + `","title":"t"}`, "version"},
			{"POST", cp(c, "milestones"), alice, `{"title":"t","target_amount":"1.00","due_date":"2025-01-01` + nul + `"}`, "due_date"},
			{"POST", "/api/quests/", alice, `{"title":"` + nul + `"}`, "title"},
			{"POST", qp(q, "applications"), bob, `{"message":"` + nul + `"}`, "message"},
		} {
			r := e.do(tc.method, tc.path, tc.token, tc.body)
			t.Run(tc.method+" "+tc.path+" "+tc.field, func(t *testing.T) { wantOnlyFieldError(t, r, tc.field, "") })
		}
		// Signing in with such a name is just a failed sign-in.
		wantProblem(t, e.do("POST", "/api/auth/token/", "", `{"username":"`+nul+`","password":"x"}`), http.StatusUnauthorized, "no_active_account")
		wantProblem(t, e.do("POST", "/api/auth/token/refresh/", "", `{"refresh":"`+nul+`"}`), http.StatusUnauthorized, "token_not_valid")
		wantOnlyFieldError(t, e.do("GET", "/api/campaigns/?status=a%00b", "", nil), "status", "")
		wantOnlyFieldError(t, e.do("GET", "/api/quests/?status=open%00", "", nil), "status", "")
	})
}

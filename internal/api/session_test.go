package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/platform"
)

// The web app's cookie session: sign in sets HttpOnly cookies that
// authenticate API calls, refresh renews the access cookie, sign-out clears
// both.
func TestCookieSession(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		e.user("web")
		jar, _ := cookiejar.New(nil)
		client := &http.Client{Jar: jar}
		post := func(path, body string) *http.Response {
			t.Helper()
			req, _ := http.NewRequest("POST", e.srv.URL+path, strings.NewReader(body))
			req.Header.Set("Origin", e.srv.URL) // as the browser says for the web app's own page
			if body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			res, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			return res
		}
		get := func(path string) int {
			t.Helper()
			res, err := client.Get(e.srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			return res.StatusCode
		}
		if get("/api/auth/me/") != http.StatusUnauthorized {
			t.Fatal("me without a session should be 401")
		}
		who := func() string {
			t.Helper()
			res, err := client.Get(e.srv.URL + "/api/auth/session/")
			if err != nil || res.StatusCode != http.StatusOK {
				t.Fatalf("GET session: %v %v", res, err)
			}
			defer res.Body.Close()
			var m struct{ User *struct{ Username string } }
			_ = json.NewDecoder(res.Body).Decode(&m)
			if m.User == nil {
				return ""
			}
			return m.User.Username
		}
		if u := who(); u != "" {
			t.Fatalf("visitor's session names %q", u)
		}
		res := post("/api/auth/session/", `{"username":"web","password":"correct horse web"}`)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("sign in: %d", res.StatusCode)
		}
		var access, refresh *http.Cookie
		for _, c := range res.Cookies() {
			switch c.Name {
			case "herald_access":
				access = c
			case "herald_refresh":
				refresh = c
			}
		}
		if access == nil || !access.HttpOnly || access.SameSite != http.SameSiteLaxMode || refresh == nil || !refresh.HttpOnly || refresh.Path != "/api/auth/session/" {
			t.Fatalf("session cookies: access %+v refresh %+v", access, refresh)
		}
		if get("/api/auth/me/") != http.StatusOK {
			t.Fatal("the access cookie does not authenticate")
		}
		if u := who(); u != "web" {
			t.Fatalf("session names %q; want web", u)
		}
		if res := post("/api/auth/session/refresh/", ""); res.StatusCode != http.StatusOK {
			t.Fatalf("refresh: %d", res.StatusCode)
		}
		if res := post("/api/auth/session/", `{"username":"web","password":"wrong password"}`); res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("bad sign in: %d", res.StatusCode)
		}
		req, _ := http.NewRequest("DELETE", e.srv.URL+"/api/auth/session/", nil)
		req.Header.Set("Origin", e.srv.URL)
		if res, err := client.Do(req); err != nil || res.StatusCode != http.StatusNoContent {
			t.Fatalf("sign out: %v %v", res, err)
		}
		if get("/api/auth/me/") != http.StatusUnauthorized {
			t.Fatal("still signed in after sign-out")
		}
		if res := post("/api/auth/session/refresh/", ""); res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("refresh after sign-out: %d", res.StatusCode)
		}
	})
}

// A ticket opens one connection once, on any process sharing the database,
// and only within its lifetime.
func TestWSTicketIsOneUse(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		uid, tok := e.user("ticketer")
		r := e.must(http.StatusCreated, "POST", "/api/ws-ticket/", tok, nil)
		ticket, _ := r.JSON["ticket"].(string)
		if len(ticket) < 20 || r.JSON["expires_in"] != float64(30) {
			t.Fatalf("ticket answer %s", r.Body)
		}
		p := e.app.Platform()
		ctx := context.Background()
		got, err := p.RedeemTicket(ctx, ticket)
		if err != nil || got != uid {
			t.Fatalf("redeem: %d, %v; want %d", got, err, uid)
		}
		if _, err := p.RedeemTicket(ctx, ticket); platform.KindOf(err) != platform.KindUnauthorized {
			t.Fatalf("second redeem: %v; want unauthorized", err)
		}
		for _, bad := range []string{"", "nope", strings.Repeat("x", 500)} {
			if _, err := p.RedeemTicket(ctx, bad); platform.KindOf(err) != platform.KindUnauthorized {
				t.Errorf("redeem %q: %v", bad, err)
			}
		}
	})
}

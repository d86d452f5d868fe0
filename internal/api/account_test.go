package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/testenv"
)

// The signed-in user says whether they are an administrator (--admins,
// matched without regard to case) as is_staff, on /api/auth/me/ and on every
// session answer, so the web app shows the operations page to them only.
func TestSignedInUserSaysIsStaff(t *testing.T) {
	cfg := testConfig(t, testenv.SQLite(t))
	cfg.Admins = []string{"Boss"}
	e := newEnvConfig(t, cfg)
	_, bossTok := e.user("boss")
	_, workerTok := e.user("worker")

	staff := func(r resp) any {
		t.Helper()
		if u, ok := r.JSON["user"].(map[string]any); ok {
			return u["is_staff"]
		}
		return r.JSON["is_staff"]
	}
	for tok, want := range map[string]bool{bossTok: true, workerTok: false} {
		if got := staff(e.must(http.StatusOK, "GET", "/api/auth/me/", tok, nil)); got != want {
			t.Errorf("me: is_staff %v, want %v", got, want)
		}
		if got := staff(e.must(http.StatusOK, "GET", "/api/auth/session/", tok, nil)); got != want {
			t.Errorf("GET session: is_staff %v, want %v", got, want)
		}
	}
	if u := e.must(http.StatusOK, "GET", "/api/auth/session/", "", nil).JSON["user"]; u != nil {
		t.Errorf("a visitor's session: %v", u)
	}

	// The cookie session: sign in, renew.
	for name, want := range map[string]bool{"boss": true, "worker": false} {
		jar, _ := cookiejar.New(nil)
		client := &http.Client{Jar: jar}
		post := func(path, body string) map[string]any {
			t.Helper()
			req, _ := http.NewRequest("POST", e.srv.URL+path, strings.NewReader(body))
			req.Header.Set("Origin", e.srv.URL)
			req.Header.Set("Content-Type", "application/json")
			res, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Fatalf("POST %s as %s: %d", path, name, res.StatusCode)
			}
			var m map[string]any
			if err := json.NewDecoder(res.Body).Decode(&m); err != nil {
				t.Fatal(err)
			}
			return m
		}
		for _, path := range []string{"/api/auth/session/", "/api/auth/session/refresh/"} {
			body := `{}`
			if path == "/api/auth/session/" {
				body = `{"username":"` + name + `","password":"correct horse ` + name + `"}`
			}
			u, _ := post(path, body)["user"].(map[string]any)
			if u["username"] != name || u["is_staff"] != want {
				t.Errorf("POST %s as %s: user %v, want is_staff %v", path, name, u, want)
			}
		}
	}
}

// The session answer says whether the demo data is on, so the web app's
// sign-in page lists the demo accounts only where they exist.
func TestSessionSaysDemo(t *testing.T) {
	for _, demo := range []bool{false, true} {
		cfg := testConfig(t, testenv.SQLite(t))
		cfg.Demo = demo
		e := newEnvConfig(t, cfg)
		if got := e.must(http.StatusOK, "GET", "/api/auth/session/", "", nil).JSON["demo"]; got != demo {
			t.Errorf("--demo=%v: the session says demo %v", demo, got)
		}
	}
}

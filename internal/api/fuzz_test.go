package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/app"
	"github.com/heraldhq/herald/internal/config"
	"github.com/heraldhq/herald/internal/testenv"
)

// FuzzDecodeBodies sends arbitrary bytes as the body of two endpoints that
// decode JSON, a contribution and a registration, through herald's whole
// handler on SQLite. Whatever arrives, the answer is a client error or a
// success, never a server error, and its body is JSON.
func FuzzDecodeBodies(f *testing.F) {
	cfg := config.Config{
		DB: testenv.SQLite(f), DataDir: f.TempDir(), AccessTTL: 15 * time.Minute, RefreshTTL: 24 * time.Hour,
		JWTSecret: strings.Repeat("s", 32), ShutdownGrace: time.Second,
	}
	a, err := app.New(context.Background(), cfg, slog.New(slog.DiscardHandler), app.WithPasswordParams(testenv.CheapPasswords))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { a.Close() })
	h := a.Handler()

	call := func(method, path, token string, body []byte) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	setup := func(method, path, token, body string, status int) map[string]any {
		rec := call(method, path, token, []byte(body))
		if rec.Code != status {
			f.Fatalf("%s %s: %d %s", method, path, rec.Code, rec.Body)
		}
		var v map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
			f.Fatal(err)
		}
		return v
	}
	setup("POST", "/api/auth/register/", "", `{"username":"owner","password":"owner password"}`, http.StatusCreated)
	tok, _ := setup("POST", "/api/auth/token/", "", `{"username":"owner","password":"owner password"}`, http.StatusOK)["access"].(string)
	setup("POST", "/api/campaigns/", tok, `{"title":"Fuzzed","goal_amount":"100.00","status":"active"}`, http.StatusCreated)

	for _, seed := range []string{
		`{"amount":"1.00"}`,
		`{"amount":"1.00","currency":"USD"}`,
		`{"amount":12.5,"currency":"EUR"}`,
		`{"amount":"999999999999.99"}`,
		`{"amount":1e400}`,
		`{"amount":-0}`,
		`{"amount":"1.001"}`,
		`{"amount":{"nested":[1,2,{"a":null}]}}`,
		`{"username":"fuzzer","email":"f@example.com","password":"fuzzer password"}`,
		`{"username":"a\u0000b","password":"x"}`,
		`{"username":"\ud800","email":"\u00e9@example.com","password":"12345678"}`,
		`{"username":"x","username":"y","password":"duplicate keys"}`,
		`{"amount":"1.00"} {"amount":"1.00"}`,
		`{"amount":"1.00"}}`,
		`{"Amount":"1.00"}`,
		`{"bogus":1}`,
		`null`, `[]`, `""`, `0`, `{}`, ``, ` `, `{`, `}`, `{"`, "\xff\xfe", "{\"amount\":\"1.00\"\x00}",
		strings.Repeat("[", 10000),
		`{"amount":"` + strings.Repeat("9", 5000) + `"}`,
	} {
		f.Add([]byte(seed))
	}

	contributions := "/api/campaigns/1/contributions/"
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, ep := range []struct{ path, token string }{{contributions, tok}, {"/api/auth/register/", ""}} {
			rec := call("POST", ep.path, ep.token, body)
			if rec.Code >= 500 {
				t.Fatalf("POST %s %q: status %d: %s", ep.path, body, rec.Code, rec.Body)
			}
			if !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("POST %s %q: answer is not JSON: %q", ep.path, body, rec.Body)
			}
			ct := rec.Header().Get("Content-Type")
			switch {
			case rec.Code < 300 && ct != "application/json", rec.Code >= 400 && ct != "application/problem+json":
				t.Fatalf("POST %s %q: status %d with Content-Type %q", ep.path, body, rec.Code, ct)
			}
		}
	})
}

package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
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

// env is a herald started on a real database and served over real HTTP.
type env struct {
	t   *testing.T
	srv *httptest.Server
	app *app.App
}

func testConfig(t *testing.T, dsn string) config.Config {
	return config.Config{
		DB: dsn, DataDir: t.TempDir(), AccessTTL: 15 * time.Minute, RefreshTTL: 24 * time.Hour,
		JWTSecret: strings.Repeat("s", 32), ShutdownGrace: time.Second,
		RegistrationsPerHour: -1, // tests register many users from one address
	}
}

func newEnv(t *testing.T, dsn string) *env {
	t.Helper()
	return newEnvConfig(t, testConfig(t, dsn))
}

func newEnvConfig(t *testing.T, cfg config.Config) *env {
	t.Helper()
	a, err := app.New(context.Background(), cfg, slog.New(slog.DiscardHandler), app.WithPasswordParams(testenv.CheapPasswords))
	if err != nil {
		t.Fatalf("start herald on %s: %v", cfg.DB, err)
	}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(func() {
		srv.Close()
		a.Close()
	})
	return &env{t: t, srv: srv, app: a}
}

// forEachDB runs fn against herald on a fresh SQLite and a fresh PostgreSQL.
func forEachDB(t *testing.T, fn func(t *testing.T, e *env)) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) { fn(t, newEnv(t, dsn)) })
}

// resp is an HTTP answer with its body decoded where it is JSON.
type resp struct {
	Status int
	Header http.Header
	Body   []byte
	JSON   map[string]any
}

// field returns the problem's errors for one field.
func (r resp) fieldErrors(name string) []any {
	errs, _ := r.JSON["errors"].(map[string]any)
	v, _ := errs[name].([]any)
	return v
}

// do sends a request; body is marshalled unless it is a string (sent raw).
func (e *env) do(method, path, token string, body any) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := resp{Status: res.StatusCode, Header: res.Header, Body: raw}
	if ct := res.Header.Get("Content-Type"); strings.Contains(ct, "json") && len(raw) > 0 {
		_ = json.Unmarshal(raw, &r.JSON)
	}
	return r
}

// must sends a request and fails the test unless the status is want.
func (e *env) must(want int, method, path, token string, body any) resp {
	e.t.Helper()
	r := e.do(method, path, token, body)
	if r.Status != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, want, r.Body)
	}
	return r
}

// user registers name and signs in, returning its id and access token.
func (e *env) user(name string) (int64, string) {
	e.t.Helper()
	r := e.must(http.StatusCreated, "POST", "/api/auth/register/", "", map[string]string{
		"username": name, "email": name + "@example.com", "password": "correct horse " + name})
	id := int64(r.JSON["id"].(float64))
	tok := e.must(http.StatusOK, "POST", "/api/auth/token/", "", map[string]string{
		"username": name, "password": "correct horse " + name})
	return id, tok.JSON["access"].(string)
}

// id reads the "id" of a JSON answer.
func (r resp) id() int64 {
	v, _ := r.JSON["id"].(float64)
	return int64(v)
}

package api_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/api"
	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/config"
	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/testenv"
)

// turnstileHasher is the real argon2id hasher that counts the hashes in
// progress and, while closed, holds each one until the test opens it.
type turnstileHasher struct {
	auth.Hasher

	mu     sync.Mutex
	gate   chan struct{} // nil while open
	inside int
	most   int
}

func (h *turnstileHasher) enter() {
	h.mu.Lock()
	h.inside++
	h.most = max(h.most, h.inside)
	gate := h.gate
	h.mu.Unlock()
	if gate != nil {
		<-gate
	}
}

func (h *turnstileHasher) leave() {
	h.mu.Lock()
	h.inside--
	h.mu.Unlock()
}

func (h *turnstileHasher) Hash(password string) (string, error) {
	h.enter()
	defer h.leave()
	return h.Hasher.Hash(password)
}

func (h *turnstileHasher) Verify(encoded, password string) (bool, error) {
	h.enter()
	defer h.leave()
	return h.Hasher.Verify(encoded, password)
}

// close holds every hash that starts from now on.
func (h *turnstileHasher) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gate = make(chan struct{})
	h.most = h.inside
}

// open lets every held hash, and those to come, run.
func (h *turnstileHasher) open() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gate != nil {
		close(h.gate)
		h.gate = nil
	}
}

func (h *turnstileHasher) counts() (inside, most int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.inside, h.most
}

// newHashEnv serves the API alone on SQLite with h as its password hasher
// behind gate, configured by tweak.
func newHashEnv(t *testing.T, h *turnstileHasher, gate *auth.HashGate, tweak func(*api.Config)) *env {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, testenv.SQLite(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	h.Params = testenv.CheapPasswords
	p, err := platform.New(db, platform.Options{Hasher: h, HashGate: gate, ValidatePassword: auth.ValidatePassword})
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.NewIssuer([]byte(strings.Repeat("s", 32)), time.Minute, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cfg := api.Config{Platform: p, Tokens: tokens, Logger: slog.New(slog.DiscardHandler), RegistrationsPerHour: -1}
	if tweak != nil {
		tweak(&cfg)
	}
	s, err := api.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	srv.Client().Timeout = time.Minute // a held request fails the test instead of hanging it
	t.Cleanup(srv.Close)
	t.Cleanup(h.open) // first: a failed test must not leave requests held
	return &env{t: t, srv: srv}
}

// eventually polls cond until it holds, failing the test after a generous
// deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 60 s: %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// statuses collects the answers of concurrent requests.
type statuses struct {
	mu  sync.Mutex
	by  map[int]int
	all []resp
	wg  sync.WaitGroup
}

func (s *statuses) send(e *env, method, path string, body any) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		r := e.do(method, path, "", body)
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.by == nil {
			s.by = map[int]int{}
		}
		s.by[r.Status]++
		s.all = append(s.all, r)
	}()
}

func (s *statuses) count(status int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.by[status]
}

// Sign-ins and registrations hash at most as many passwords at once as the
// gate allows; the others wait their turn.
func TestPasswordHashingIsBounded(t *testing.T) {
	t.Parallel()
	h := &turnstileHasher{}
	gate := auth.NewHashGate(2, time.Minute)
	e := newHashEnv(t, h, gate, nil)
	const n = 18
	for i := range n / 3 {
		e.user(fmt.Sprint("known", i))
	}

	h.close()
	var st statuses
	for i := range n {
		switch i % 3 {
		case 0:
			name := fmt.Sprint("known", i/3)
			st.send(e, "POST", "/api/auth/token/", map[string]string{"username": name, "password": "correct horse " + name})
		case 1:
			st.send(e, "POST", "/api/auth/token/", map[string]string{"username": fmt.Sprint("ghost", i), "password": "whatever it is"})
		case 2:
			st.send(e, "POST", "/api/auth/register/", map[string]string{"username": fmt.Sprint("new", i), "password": "a good password"})
		}
	}
	// Every request is either hashing or waiting for a slot.
	eventually(t, "all requests hashing or waiting", func() bool {
		inside, _ := h.counts()
		return inside+gate.Waiting() == n
	})
	if inside, most := h.counts(); most > 2 {
		t.Errorf("%d password hashes ran at once (%d now); want at most 2", most, inside)
	}
	h.open()
	st.wg.Wait()
	if _, most := h.counts(); most > 2 {
		t.Errorf("%d password hashes ran at once; want at most 2", most)
	}
	want(t, "signed in", st.count(http.StatusOK), n/3)
	want(t, "unknown users refused", st.count(http.StatusUnauthorized), n/3)
	want(t, "registered", st.count(http.StatusCreated), n/3)
}

// A request that cannot get a hashing slot within the wait is told to come
// back (503 with Retry-After), and its attempt does not count against the
// throttle.
func TestPasswordHashingBusy(t *testing.T) {
	t.Parallel()
	h := &turnstileHasher{}
	gate := auth.NewHashGate(1, 20*time.Millisecond)
	e := newHashEnv(t, h, gate, nil)
	e.user("alice")

	h.close()
	var st statuses
	st.send(e, "POST", "/api/auth/token/", map[string]string{"username": "bob", "password": "holds the slot"})
	eventually(t, "a sign-in holding the only slot", func() bool { inside, _ := h.counts(); return inside == 1 })

	wantBusy := func(r resp) {
		t.Helper()
		wantProblem(t, r, http.StatusServiceUnavailable, "busy")
		want(t, "Retry-After", r.Header.Get("Retry-After"), "1")
	}
	// More refusals than the account's throttle allows failures.
	for range auth.DefaultMaxPerAccount + 2 {
		wantBusy(e.do("POST", "/api/auth/token/", "", map[string]string{"username": "alice", "password": "correct horse alice"}))
	}
	wantBusy(e.do("POST", "/api/auth/session/", "", map[string]string{"username": "alice", "password": "correct horse alice"}))
	wantBusy(e.do("POST", "/api/auth/register/", "", map[string]string{"username": "carol", "password": "a good password"}))

	h.open()
	st.wg.Wait()
	want(t, "the held sign-in", st.count(http.StatusUnauthorized), 1)
	e.must(http.StatusOK, "POST", "/api/auth/token/", "", map[string]string{"username": "alice", "password": "correct horse alice"})
	e.must(http.StatusCreated, "POST", "/api/auth/register/", "", map[string]string{"username": "carol", "password": "a good password"})
}

// Concurrent failures cannot pass the sign-in throttle: an attempt is
// counted before its password is checked.
func TestConcurrentSignInsAreThrottled(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		n     int
		limit int
		user  func(i int) string
	}{
		{"one account", 15, auth.DefaultMaxPerAccount, func(int) string { return "alice" }},
		{"one address", 40, auth.DefaultMaxPerAddress, func(i int) string { return fmt.Sprint("ghost", i) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &turnstileHasher{}
			e := newHashEnv(t, h, auth.NewHashGate(64, time.Minute), nil)
			e.user("alice")

			h.close()
			var st statuses
			for i := range tc.n {
				st.send(e, "POST", "/api/auth/token/", map[string]string{"username": tc.user(i), "password": "wrong password"})
			}
			eventually(t, "every attempt hashing or refused", func() bool {
				inside, _ := h.counts()
				return inside+st.count(http.StatusTooManyRequests) == tc.n
			})
			if inside, _ := h.counts(); inside > tc.limit {
				t.Errorf("%d of %d concurrent wrong passwords reached the hash; want at most %d", inside, tc.n, tc.limit)
			}
			h.open()
			st.wg.Wait()
			want(t, "refused as wrong", st.count(http.StatusUnauthorized), tc.limit)
			want(t, "throttled", st.count(http.StatusTooManyRequests), tc.n-tc.limit)
			for _, r := range st.all {
				if r.Status == http.StatusTooManyRequests && r.Header.Get("Retry-After") == "" {
					t.Fatal("a 429 without Retry-After")
				}
			}
		})
	}
}

// Correct sign-ins at one moment (a demo account used by a whole room) fill
// the throttle only while they are checked: those refused meanwhile are told
// to come back in a moment, not locked out for the window, and once they
// succeed the account signs in again at once.
func TestConcurrentCorrectSignInsAreNotLocked(t *testing.T) {
	t.Parallel()
	h := &turnstileHasher{}
	e := newHashEnv(t, h, auth.NewHashGate(64, time.Minute), nil)
	e.user("alice")
	alice := map[string]string{"username": "alice", "password": "correct horse alice"}

	h.close()
	var st statuses
	const n = 15
	for range n {
		st.send(e, "POST", "/api/auth/token/", alice)
	}
	eventually(t, "every sign-in hashing or refused", func() bool {
		inside, _ := h.counts()
		return inside+st.count(http.StatusTooManyRequests) == n
	})
	h.open()
	st.wg.Wait()
	want(t, "signed in", st.count(http.StatusOK), auth.DefaultMaxPerAccount)
	for _, r := range st.all {
		if r.Status != http.StatusTooManyRequests {
			continue
		}
		if ra := r.Header.Get("Retry-After"); ra != "1" && ra != "2" {
			t.Fatalf("Retry-After %q for a sign-in refused while others were checked; want a moment", ra)
		}
		if !strings.Contains(string(r.Body), "being checked") {
			t.Fatalf("refused with %s", r.Body)
		}
	}
	for range 2 * auth.DefaultMaxPerAccount {
		e.must(http.StatusOK, "POST", "/api/auth/token/", "", alice)
	}
}

// Registration hashes a password too, so it is throttled per address, with
// attempts counted before the hash; refused registrations do not count.
func TestRegistrationIsThrottled(t *testing.T) {
	t.Parallel()
	h := &turnstileHasher{}
	e := newHashEnv(t, h, auth.NewHashGate(64, time.Minute), func(c *api.Config) {
		c.RegistrationsPerHour = 0 // the default
	})
	register := func(name string) resp {
		return e.do("POST", "/api/auth/register/", "", map[string]string{"username": name, "password": "a good password"})
	}
	// Invalid registrations are refused before any work and do not count.
	for i := range 2 * api.DefaultRegistrationsPerHour {
		wantProblem(t, e.do("POST", "/api/auth/register/", "", map[string]string{"username": fmt.Sprint("bad", i), "password": "short"}),
			http.StatusBadRequest, "invalid")
	}
	e.must(http.StatusCreated, "POST", "/api/auth/register/", "", map[string]string{"username": "first", "password": "a good password"})
	// Nor does a name already taken, refused before the hash.
	for range 2 * api.DefaultRegistrationsPerHour {
		wantFieldError(t, register("first"), "username", "already exists")
	}

	h.close()
	var st statuses
	const n = 15
	for i := range n {
		st.send(e, "POST", "/api/auth/register/", map[string]string{"username": fmt.Sprint("user", i), "password": "a good password"})
	}
	left := api.DefaultRegistrationsPerHour - 1
	eventually(t, "every registration hashing or refused", func() bool {
		inside, _ := h.counts()
		return inside+st.count(http.StatusTooManyRequests) == n
	})
	if inside, _ := h.counts(); inside > left {
		t.Errorf("%d of %d concurrent registrations reached the hash; want at most %d", inside, n, left)
	}
	h.open()
	st.wg.Wait()
	want(t, "registered", st.count(http.StatusCreated), left)
	want(t, "throttled", st.count(http.StatusTooManyRequests), n-left)
	r := register("late")
	wantProblem(t, r, http.StatusTooManyRequests, "throttled")
	if r.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
}

// newEnvWith is newEnv on SQLite with its configuration adjusted.
func newEnvWith(t *testing.T, tweak func(*config.Config)) *env {
	t.Helper()
	cfg := testConfig(t, testenv.SQLite(t))
	tweak(&cfg)
	return newEnvConfig(t, cfg)
}

// browserRequest is a request as a browser sends it with the session cookie.
type browserRequest struct {
	method, path string
	cookie       string            // herald_access value
	header       map[string]string // Origin, Sec-Fetch-Site, Content-Type…
	body         string
}

func (e *env) browser(b browserRequest) resp {
	e.t.Helper()
	var rd io.Reader
	if b.body != "" {
		rd = strings.NewReader(b.body)
	}
	req, err := http.NewRequest(b.method, e.srv.URL+b.path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if b.cookie != "" {
		req.AddCookie(&http.Cookie{Name: auth.CookieName, Value: b.cookie})
	}
	for k, v := range b.header {
		req.Header.Set(k, v)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return decodeResp(res, raw)
}

// A write authenticated by the session cookie must come from an allowed
// origin and, with a body, say it is JSON: a page on another port of the same
// host is same-site, so the browser sends it the Lax cookie, and a no-cors
// fetch can post a JSON text as text/plain or with no type at all.
func TestCookieWritesAreSameOrigin(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, func(c *config.Config) { c.AllowedOrigins = []string{"http://app.example", "https://*.herald.example"} })
	_, tok := e.user("web")
	c := e.activeCampaign(tok, "CSRF")
	self := e.srv.URL
	otherPort := "http://" + strings.Split(strings.TrimPrefix(self, "http://"), ":")[0] + ":1"
	comment := `{"content":"posted"}`
	path := cp(c, "comments")
	posted := 0
	check := func(what string, header map[string]string, status int, code string) {
		t.Helper()
		r := e.browser(browserRequest{method: "POST", path: path, cookie: tok, header: header, body: comment})
		if status == http.StatusCreated {
			if r.Status != status {
				t.Errorf("%s: status %d, want %d: %s", what, r.Status, status, r.Body)
			}
			posted++
			return
		}
		t.Run(what, func(t *testing.T) { wantProblem(t, r, status, code) })
	}
	const json, text = "application/json", "text/plain;charset=UTF-8"

	check("another port, no type", map[string]string{"Origin": otherPort}, http.StatusForbidden, "origin_not_allowed")
	check("another port, text", map[string]string{"Origin": otherPort, "Content-Type": text}, http.StatusForbidden, "origin_not_allowed")
	check("another port, JSON", map[string]string{"Origin": otherPort, "Content-Type": json}, http.StatusForbidden, "origin_not_allowed")
	check("null origin", map[string]string{"Origin": "null", "Content-Type": json}, http.StatusForbidden, "origin_not_allowed")
	check("same-site fetch", map[string]string{"Sec-Fetch-Site": "same-site", "Content-Type": json}, http.StatusForbidden, "origin_not_allowed")
	check("cross-site fetch", map[string]string{"Sec-Fetch-Site": "cross-site", "Content-Type": json}, http.StatusForbidden, "origin_not_allowed")
	check("no origin at all", map[string]string{"Content-Type": json}, http.StatusForbidden, "origin_not_allowed")
	check("own origin, no type", map[string]string{"Origin": self}, http.StatusUnsupportedMediaType, "unsupported_media_type")
	check("own origin, text", map[string]string{"Origin": self, "Content-Type": text}, http.StatusUnsupportedMediaType, "unsupported_media_type")

	check("own origin, JSON", map[string]string{"Origin": self, "Content-Type": json}, http.StatusCreated, "")
	check("same-origin fetch without Origin", map[string]string{"Sec-Fetch-Site": "same-origin", "Content-Type": json}, http.StatusCreated, "")
	check("allowed origin", map[string]string{"Origin": "http://app.example", "Content-Type": json}, http.StatusCreated, "")
	check("allowed subdomain", map[string]string{"Origin": "https://eu.herald.example", "Content-Type": json}, http.StatusCreated, "")

	// A bearer token is not sent by the browser on its own: no origin check.
	r := e.raw("POST", path, tok, json, strings.NewReader(comment))
	want(t, "bearer write", r.Status, http.StatusCreated)
	posted++

	// Signing out, with no body, needs the origin only.
	wantProblem(t, e.browser(browserRequest{method: "DELETE", path: "/api/auth/session/", cookie: tok, header: map[string]string{"Origin": otherPort}}),
		http.StatusForbidden, "origin_not_allowed")
	want(t, "sign out", e.browser(browserRequest{method: "DELETE", path: "/api/auth/session/", cookie: tok, header: map[string]string{"Origin": self}}).Status,
		http.StatusNoContent)

	r = e.must(http.StatusOK, "GET", cp(c), "", nil)
	want(t, "comments posted", num(r.JSON, "comments_count"), int64(posted))
}

// A validly signed token whose user is not in the database (a reset
// database with a kept secret) is refused like an invalid token everywhere,
// not a foreign-key failure.
func TestTokenOfMissingUser(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, e *env) {
		_, tok := e.user("alice")
		c := e.activeCampaign(tok, "Ghosts")
		issuer, err := auth.NewIssuer([]byte(strings.Repeat("s", 32)), time.Minute, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		ghost, err := issuer.Access(987654)
		if err != nil {
			t.Fatal(err)
		}
		for _, rq := range []struct {
			method, path string
			body         any
		}{
			{"POST", cp(c, "comments"), map[string]any{"content": "boo"}},
			{"POST", cp(c, "contributions"), map[string]any{"amount": "1.00"}},
			{"POST", "/api/ws-ticket/", nil},
			{"POST", "/api/quests/", map[string]any{"title": "Haunt", "description": "d"}},
			{"POST", "/api/campaigns/", map[string]any{"title": "Haunted", "description": "d", "goal_amount": "10.00"}},
			{"GET", "/api/auth/me/", nil},
			{"GET", "/api/applications/", nil},
			{"GET", "/api/campaigns/", nil},
			{"GET", "/api/auth/session/", nil},
		} {
			r := e.do(rq.method, rq.path, ghost, rq.body)
			t.Run(rq.method+" "+rq.path, func(t *testing.T) {
				wantProblem(t, r, http.StatusUnauthorized, "token_not_valid")
			})
		}
		// The same through the session cookie.
		r := e.browser(browserRequest{method: "POST", path: cp(c, "comments"), cookie: ghost,
			header: map[string]string{"Origin": e.srv.URL, "Content-Type": "application/json"}, body: `{"content":"boo"}`})
		wantProblem(t, r, http.StatusUnauthorized, "token_not_valid")
		r = e.must(http.StatusOK, "GET", cp(c), "", nil)
		want(t, "comments", num(r.JSON, "comments_count"), 0)
	})
}

// Pagination links name the request's host only if it is herald's own (the
// address it was reached on, or an allowed origin's); a forged Host header
// gets relative links.
func TestPageLinksIgnoreForgedHost(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, func(c *config.Config) { c.AllowedOrigins = []string{"https://herald.example"} })
	_, tok := e.user("alice")
	for range 2 {
		e.activeCampaign(tok, "Linked")
	}
	page := func(host string) string {
		t.Helper()
		req, _ := http.NewRequest("GET", e.srv.URL+"/api/campaigns/?page_size=1", nil)
		if host != "" {
			req.Host = host
		}
		res, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return string(b)
	}
	for _, host := range []string{"evil.example", "evil.example:8000", "herald.example.evil.example"} {
		body := page(host)
		if strings.Contains(body, "evil") || !strings.Contains(body, `"next":"/api/campaigns/?page=2\u0026page_size=1"`) {
			t.Errorf("Host %s: %s", host, body)
		}
	}
	if body := page(""); !strings.Contains(body, `"next":"`+e.srv.URL+`/api/campaigns/?page=2`) {
		t.Errorf("own host: %s", body)
	}
	if body := page("herald.example"); !strings.Contains(body, `"next":"http://herald.example/api/campaigns/?page=2`) {
		t.Errorf("allowed host: %s", body)
	}
}

// An id is written one way: "+1" and "01" are not campaign 1, in paths
// (404) and in query parameters (400).
func TestNonCanonicalIDs(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, func(*config.Config) {})
	uid, tok := e.user("alice")
	c := e.activeCampaign(tok, "Canonical")
	cm := e.must(http.StatusCreated, "POST", cp(c, "comments"), tok, map[string]any{"content": "hi"}).id()
	e.must(http.StatusOK, "GET", cp(c), "", nil)
	for _, id := range []string{"+" + itoa(c), "0" + itoa(c), "00" + itoa(c), " " + itoa(c), itoa(c) + " "} {
		for _, path := range []string{
			"/api/campaigns/" + id + "/",
			"/api/campaigns/" + id + "/comments/",
			cp(c, "comments") + strings.Replace(id, itoa(c), itoa(cm), 1) + "/",
			"/api/quests/" + id + "/",
		} {
			r := e.do("GET", strings.ReplaceAll(path, " ", "%20"), tok, nil)
			t.Run(path, func(t *testing.T) { wantProblem(t, r, http.StatusNotFound, "not_found") })
		}
	}
	for _, q := range []string{"page=%2B1", "page=01", "page_size=%2B5", "page_size=05", "owner=%2B" + itoa(uid), "owner=0" + itoa(uid)} {
		r := e.do("GET", "/api/campaigns/?"+q, "", nil)
		t.Run(q, func(t *testing.T) { want(t, q+" status", r.Status, http.StatusBadRequest) })
	}
	for _, q := range []string{"creator=%2B" + itoa(uid), "creator=0" + itoa(uid), "page=%2B1"} {
		r := e.do("GET", "/api/quests/?"+q, "", nil)
		t.Run(q, func(t *testing.T) { want(t, q+" status", r.Status, http.StatusBadRequest) })
	}
}

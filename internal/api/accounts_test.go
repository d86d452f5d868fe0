package api_test

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Helpers shared by the API test files.

// on returns a copy of e that reports to t, for use inside subtests.
func (e *env) on(t *testing.T) *env {
	c := *e
	c.t = t
	return &c
}

// raw sends body as is with the given Content-Type ("" for none).
func (e *env) raw(method, path, token, contentType string, body io.Reader) resp {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return decodeResp(res, b)
}

func decodeResp(res *http.Response, b []byte) resp {
	r := resp{Status: res.StatusCode, Header: res.Header, Body: b}
	if ct := res.Header.Get("Content-Type"); strings.Contains(ct, "json") && len(b) > 0 {
		_ = json.Unmarshal(b, &r.JSON)
	}
	return r
}

// post is a request that may run on any goroutine: it never calls t.Fatal.
func (e *env) post(path, token, body string) (resp, error) {
	req, err := http.NewRequest("POST", e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		return resp{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		return resp{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return resp{}, err
	}
	return decodeResp(res, b), nil
}

// users registers and signs in each name, in parallel.
func (e *env) users(names ...string) (ids []int64, tokens []string) {
	e.t.Helper()
	ids, tokens = make([]int64, len(names)), make([]string, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() {
			pw := "correct horse " + name
			r, err := e.post("/api/auth/register/", "", fmt.Sprintf(`{"username":%q,"email":"%s@example.com","password":%q}`, name, name, pw))
			if err == nil && r.Status != http.StatusCreated {
				err = fmt.Errorf("register %s: %d %s", name, r.Status, r.Body)
			}
			if err != nil {
				errs[i] = err
				return
			}
			ids[i] = r.id()
			r, err = e.post("/api/auth/token/", "", fmt.Sprintf(`{"username":%q,"password":%q}`, name, pw))
			if err == nil && r.Status != http.StatusOK {
				err = fmt.Errorf("sign in %s: %d %s", name, r.Status, r.Body)
			}
			if err != nil {
				errs[i] = err
				return
			}
			tokens[i], _ = r.JSON["access"].(string)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			e.t.Fatal(err)
		}
	}
	return ids, tokens
}

// wantProblem checks that r is an application/problem+json error document
// with the given status and code.
func wantProblem(t *testing.T, r resp, status int, code string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	if r.JSON == nil {
		t.Fatalf("problem body is not a JSON object: %q", r.Body)
	}
	if got := r.JSON["code"]; got != code {
		t.Errorf("code %v, want %q: %s", got, code, r.Body)
	}
	if got, _ := r.JSON["status"].(float64); int(got) != status {
		t.Errorf("problem status %v, want %d", r.JSON["status"], status)
	}
	if got := r.JSON["title"]; got != http.StatusText(status) {
		t.Errorf("title %v, want %q", got, http.StatusText(status))
	}
	if got := r.JSON["type"]; got != "about:blank" {
		t.Errorf("type %v, want about:blank", got)
	}
	if d, _ := r.JSON["detail"].(string); d == "" {
		t.Errorf("problem without a detail: %s", r.Body)
	}
}

// wantFieldError checks for a 400 "invalid" problem naming field, with a
// message containing msg (if msg is not empty).
func wantFieldError(t *testing.T, r resp, field, msg string) {
	t.Helper()
	wantProblem(t, r, http.StatusBadRequest, "invalid")
	msgs := r.fieldErrors(field)
	if len(msgs) == 0 {
		t.Fatalf("no errors for field %q: %s", field, r.Body)
	}
	if msg == "" {
		return
	}
	for _, m := range msgs {
		if s, _ := m.(string); strings.Contains(s, msg) {
			return
		}
	}
	t.Errorf("errors[%q] = %v, want one containing %q", field, msgs, msg)
}

// wantOnlyFieldError is wantFieldError where field is the only one named.
func wantOnlyFieldError(t *testing.T, r resp, field, msg string) {
	t.Helper()
	wantFieldError(t, r, field, msg)
	if errs, _ := r.JSON["errors"].(map[string]any); len(errs) != 1 {
		t.Errorf("errors name %d fields, want only %q: %s", len(errs), field, r.Body)
	}
}

// wantParseError checks for a 400 "parse_error" problem.
func wantParseError(t *testing.T, r resp) {
	t.Helper()
	wantProblem(t, r, http.StatusBadRequest, "parse_error")
}

// wantKeys checks that the JSON object v has exactly the given keys.
func wantKeys(t *testing.T, v any, keys ...string) {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%v is not a JSON object", v)
	}
	got := make([]string, 0, len(m))
	for k := range m {
		got = append(got, k)
	}
	sort.Strings(got)
	want := slices.Clone(keys)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("keys %v, want %v", got, want)
	}
}

// get walks a decoded JSON value by object keys (string) and array indexes (int).
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			a, _ := v.([]any)
			if k < 0 || k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

func num(v any, path ...any) int64 {
	f, _ := get(v, path...).(float64)
	return int64(f)
}

func str(v any, path ...any) string {
	s, _ := get(v, path...).(string)
	return s
}

func list(v any, path ...any) []any {
	a, _ := get(v, path...).([]any)
	return a
}

// want compares a value read from JSON with what it should be.
func want[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

var utcTime = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z$`)

// wantTime checks an ISO 8601 UTC time as the API writes it and returns it.
func wantTime(t *testing.T, what string, v any) time.Time {
	t.Helper()
	s, _ := v.(string)
	if !utcTime.MatchString(s) {
		t.Fatalf("%s = %v, want an ISO 8601 UTC time ending in Z", what, v)
	}
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("%s = %q: %v", what, s, err)
	}
	return tm
}

// ids lists the "id" of each object of a page's results.
func ids(r resp) []int64 {
	var out []int64
	for _, v := range list(r.JSON, "results") {
		out = append(out, num(v, "id"))
	}
	return out
}

func itoa(id int64) string { return strconv.FormatInt(id, 10) }

// testSecret is the signing secret testConfig gives herald.
var testSecret = []byte(strings.Repeat("s", 32))

// signToken makes a token the way herald does, with chosen claims.
func signToken(t *testing.T, secret []byte, typ string, userID int64, exp time.Time) string {
	t.Helper()
	jti := make([]byte, 16)
	_, _ = rand.Read(jti)
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"token_type": typ, "user_id": userID, "exp": exp.Unix(), "iat": exp.Add(-15 * time.Minute).Unix(),
		"jti": hex.EncodeToString(jti),
	}).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestRegister(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, e *env) {
		r := e.must(http.StatusCreated, "POST", "/api/auth/register/", "", map[string]string{
			"username": "Alice", "email": "alice@example.com", "password": "correct horse battery"})
		wantKeys(t, r.JSON, "id", "username", "email", "created_at")
		if r.id() <= 0 {
			t.Errorf("id = %v", r.JSON["id"])
		}
		want(t, "username", str(r.JSON, "username"), "Alice")
		want(t, "email", str(r.JSON, "email"), "alice@example.com")
		created := wantTime(t, "created_at", r.JSON["created_at"])
		if d := time.Since(created); d < -time.Minute || d > time.Minute {
			t.Errorf("created_at %v is not now", created)
		}
		if strings.Contains(strings.ToLower(string(r.Body)), "password") || strings.Contains(string(r.Body), "correct horse") {
			t.Errorf("registration answer shows the password: %s", r.Body)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}

		t.Run("duplicate username, any case", func(t *testing.T) {
			e := e.on(t)
			for _, name := range []string{"Alice", "alice", "ALICE", " alice "} {
				r := e.do("POST", "/api/auth/register/", "", map[string]string{
					"username": name, "email": "other@example.com", "password": "another fine password"})
				wantOnlyFieldError(t, r, "username", "already exists")
			}
		})

		t.Run("email is optional and the username is trimmed", func(t *testing.T) {
			e := e.on(t)
			r := e.must(http.StatusCreated, "POST", "/api/auth/register/", "", map[string]string{
				"username": "  bob.b+b-b_b@x  ", "password": "a password of bob"})
			want(t, "username", str(r.JSON, "username"), "bob.b+b-b_b@x")
			want(t, "email", str(r.JSON, "email"), "")
		})

		t.Run("field errors", func(t *testing.T) {
			e := e.on(t)
			for _, c := range []struct {
				name                      string
				username, email, password string
				field, msg                string
			}{
				{"blank username", "", "x@example.com", "a long password", "username", "may not be blank"},
				{"spaces only", "   ", "x@example.com", "a long password", "username", "may not be blank"},
				{"space inside", "carol smith", "x@example.com", "a long password", "username", "letters, digits"},
				{"punctuation", "carol!", "x@example.com", "a long password", "username", "letters, digits"},
				{"non-ASCII", "carolé", "x@example.com", "a long password", "username", "letters, digits"},
				{"too long", strings.Repeat("c", 151), "x@example.com", "a long password", "username", "150"},
				{"blank password", "carol", "x@example.com", "", "password", "may not be blank"},
				{"short password", "carol", "x@example.com", "abc1234", "password", "at least 8"},
				{"numeric password", "carol", "x@example.com", "1234567890", "password", "digits only"},
				{"long password", "carol", "x@example.com", strings.Repeat("p", 129), "password", "at most 128"},
				{"bad email", "carol", "not-an-email", "a long password", "email", "valid email"},
				{"display name email", "carol", "Carol <carol@example.com>", "a long password", "email", "valid email"},
				{"email without domain", "carol", "carol@", "a long password", "email", "valid email"},
			} {
				r := e.do("POST", "/api/auth/register/", "", map[string]string{
					"username": c.username, "email": c.email, "password": c.password})
				t.Run(c.name, func(t *testing.T) { wantOnlyFieldError(t, r, c.field, c.msg) })
			}
			r := e.do("POST", "/api/auth/register/", "", map[string]string{"username": "", "email": "nope", "password": "123"})
			wantFieldError(t, r, "username", "")
			wantFieldError(t, r, "email", "")
			wantFieldError(t, r, "password", "")
			// None of those made an account.
			r = e.do("POST", "/api/auth/token/", "", map[string]string{"username": "carol", "password": "a long password"})
			wantProblem(t, r, http.StatusUnauthorized, "no_active_account")
		})

		t.Run("concurrent sign-ups of one name", func(t *testing.T) {
			e := e.on(t)
			var wg sync.WaitGroup
			statuses := make([]int, 8)
			for i := range statuses {
				wg.Go(func() {
					r, err := e.post("/api/auth/register/", "", fmt.Sprintf(`{"username":"Dora","password":"password number %d"}`, i))
					if err == nil {
						statuses[i] = r.Status
					}
				})
			}
			wg.Wait()
			created := 0
			for _, s := range statuses {
				switch s {
				case http.StatusCreated:
					created++
				case http.StatusBadRequest:
				default:
					t.Errorf("status %d, want 201 or 400", s)
				}
			}
			want(t, "accounts created", created, 1)
		})
	})
}

func TestTokenRefreshAndMe(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, e *env) {
		reg := e.must(http.StatusCreated, "POST", "/api/auth/register/", "", map[string]string{
			"username": "alice", "email": "alice@example.com", "password": "correct horse battery"})
		aliceID := reg.id()

		r := e.must(http.StatusOK, "POST", "/api/auth/token/", "", map[string]string{"username": "alice", "password": "correct horse battery"})
		wantKeys(t, r.JSON, "access", "refresh")
		access, refresh := str(r.JSON, "access"), str(r.JSON, "refresh")
		if strings.Count(access, ".") != 2 || strings.Count(refresh, ".") != 2 || access == refresh {
			t.Fatalf("tokens do not look like two JWTs: %s", r.Body)
		}

		t.Run("me", func(t *testing.T) {
			e := e.on(t)
			r := e.must(http.StatusOK, "GET", "/api/auth/me/", access, nil)
			wantKeys(t, r.JSON, "id", "username", "email", "created_at", "is_staff")
			want(t, "id", r.id(), aliceID)
			want(t, "username", str(r.JSON, "username"), "alice")
			want(t, "email", str(r.JSON, "email"), "alice@example.com")
			want(t, "created_at", str(r.JSON, "created_at"), str(reg.JSON, "created_at"))
		})

		t.Run("sign-in is case-insensitive", func(t *testing.T) {
			e := e.on(t)
			r := e.must(http.StatusOK, "POST", "/api/auth/token/", "", map[string]string{"username": "ALICE", "password": "correct horse battery"})
			me := e.must(http.StatusOK, "GET", "/api/auth/me/", str(r.JSON, "access"), nil)
			want(t, "id", me.id(), aliceID)
		})

		t.Run("wrong password and unknown user look the same", func(t *testing.T) {
			e := e.on(t)
			bad := e.do("POST", "/api/auth/token/", "", map[string]string{"username": "alice", "password": "correct horse battery!"})
			wantProblem(t, bad, http.StatusUnauthorized, "no_active_account")
			if bad.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			unknown := e.do("POST", "/api/auth/token/", "", map[string]string{"username": "nobody", "password": "correct horse battery"})
			wantProblem(t, unknown, http.StatusUnauthorized, "no_active_account")
			want(t, "detail", unknown.JSON["detail"], bad.JSON["detail"])
			if strings.Contains(string(bad.Body), "access") {
				t.Errorf("failed sign-in carries a token: %s", bad.Body)
			}
		})

		t.Run("blank credentials", func(t *testing.T) {
			e := e.on(t)
			r := e.do("POST", "/api/auth/token/", "", map[string]string{"username": "", "password": ""})
			wantFieldError(t, r, "username", "may not be blank")
			wantFieldError(t, r, "password", "may not be blank")
			r = e.do("POST", "/api/auth/token/", "", map[string]string{"username": "alice"})
			wantOnlyFieldError(t, r, "password", "may not be blank")
		})

		t.Run("refresh", func(t *testing.T) {
			e := e.on(t)
			r := e.must(http.StatusOK, "POST", "/api/auth/token/refresh/", "", map[string]string{"refresh": refresh})
			wantKeys(t, r.JSON, "access")
			me := e.must(http.StatusOK, "GET", "/api/auth/me/", str(r.JSON, "access"), nil)
			want(t, "id", me.id(), aliceID)
		})

		t.Run("refresh refuses what is not a refresh token", func(t *testing.T) {
			e := e.on(t)
			for name, tok := range map[string]string{
				"access token":   access,
				"garbage":        "not.a.token",
				"expired":        signToken(t, testSecret, "refresh", aliceID, time.Now().Add(-time.Hour)),
				"foreign secret": signToken(t, []byte(strings.Repeat("x", 32)), "refresh", aliceID, time.Now().Add(time.Hour)),
				"unknown user":   signToken(t, testSecret, "refresh", 987654, time.Now().Add(time.Hour)),
			} {
				r := e.do("POST", "/api/auth/token/refresh/", "", map[string]string{"refresh": tok})
				t.Run(name, func(t *testing.T) { wantProblem(t, r, http.StatusUnauthorized, "token_not_valid") })
			}
			wantOnlyFieldError(t, e.do("POST", "/api/auth/token/refresh/", "", map[string]string{"refresh": ""}), "refresh", "may not be blank")
		})

		t.Run("me without a token", func(t *testing.T) {
			e := e.on(t)
			r := e.do("GET", "/api/auth/me/", "", nil)
			wantProblem(t, r, http.StatusUnauthorized, "not_authenticated")
			want(t, "WWW-Authenticate", r.Header.Get("WWW-Authenticate"), `Bearer realm="api"`)
			// A non-Bearer scheme carries no token at all.
			req, _ := http.NewRequest("GET", e.srv.URL+"/api/auth/me/", nil)
			req.Header.Set("Authorization", "Basic YWxpY2U6cGFzc3dvcmQ=")
			res, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			wantProblem(t, decodeResp(res, b), http.StatusUnauthorized, "not_authenticated")
		})

		t.Run("me with a bad token", func(t *testing.T) {
			e := e.on(t)
			for name, tok := range map[string]string{
				"garbage":        "garbage",
				"three garbage":  "a.b.c",
				"refresh token":  refresh,
				"foreign secret": signToken(t, []byte(strings.Repeat("x", 32)), "access", aliceID, time.Now().Add(time.Hour)),
				"tampered":       access[:len(access)-2] + "xx",
			} {
				r := e.do("GET", "/api/auth/me/", tok, nil)
				t.Run(name, func(t *testing.T) {
					wantProblem(t, r, http.StatusUnauthorized, "token_not_valid")
					want(t, "WWW-Authenticate", r.Header.Get("WWW-Authenticate"), `Bearer realm="api"`)
				})
			}
			expired := e.do("GET", "/api/auth/me/", signToken(t, testSecret, "access", aliceID, time.Now().Add(-time.Hour)), nil)
			wantProblem(t, expired, http.StatusUnauthorized, "token_not_valid")
			if !strings.Contains(str(expired.JSON, "detail"), "expired") {
				t.Errorf("an expired token's detail should say so: %s", expired.Body)
			}
			// Still within the 30 s leeway for clock skew: accepted.
			e.must(http.StatusOK, "GET", "/api/auth/me/", signToken(t, testSecret, "access", aliceID, time.Now().Add(-5*time.Second)), nil)
			// A genuine token of a user that does not exist.
			wantProblem(t, e.do("GET", "/api/auth/me/", signToken(t, testSecret, "access", 987654, time.Now().Add(time.Hour)), nil),
				http.StatusUnauthorized, "token_not_valid")
		})

		t.Run("a bad token is refused on public reads too", func(t *testing.T) {
			e := e.on(t)
			e.must(http.StatusOK, "GET", "/api/campaigns/", "", nil)
			e.must(http.StatusOK, "GET", "/api/campaigns/", access, nil)
			for _, path := range []string{"/api/campaigns/", "/api/quests/", "/api/campaigns/1/"} {
				r := e.do("GET", path, "garbage", nil)
				wantProblem(t, r, http.StatusUnauthorized, "token_not_valid")
			}
			expired := signToken(t, testSecret, "access", aliceID, time.Now().Add(-time.Hour))
			wantProblem(t, e.do("GET", "/api/campaigns/", expired, nil), http.StatusUnauthorized, "token_not_valid")
		})
	})
}

func TestSignInThrottle(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, e *env) {
		e.users("alice", "bob")
		login := func(name, password string) resp {
			e.t.Helper()
			return e.do("POST", "/api/auth/token/", "", map[string]string{"username": name, "password": password})
		}
		wantThrottled := func(t *testing.T, r resp) {
			t.Helper()
			wantProblem(t, r, http.StatusTooManyRequests, "throttled")
			secs, err := strconv.Atoi(r.Header.Get("Retry-After"))
			if err != nil || secs < 1 || secs > 15*60+1 {
				t.Errorf("Retry-After %q, want whole seconds up to the 15 minute window", r.Header.Get("Retry-After"))
			}
		}
		failures := 0
		fail := func(name string) {
			e.t.Helper()
			wantProblem(e.t, login(name, "wrong password"), http.StatusUnauthorized, "no_active_account")
			failures++
		}

		for range 5 {
			fail("alice")
		}
		wantThrottled(t, login("alice", "correct horse alice"))
		wantThrottled(t, login("ALICE", "correct horse alice"))
		wantThrottled(t, login("alice", "wrong password"))
		// Padding the name reaches the same account, so it is the same lock.
		wantThrottled(t, login("  Alice ", "wrong password"))

		// Another account from the same address is unaffected.
		bob := login("bob", "correct horse bob")
		want(t, "bob's sign-in", bob.Status, http.StatusOK)

		// Unknown names count against the address like any failure.
		for _, ghost := range []string{"ghost1", "ghost2", "ghost3"} {
			for range 5 {
				if failures == 19 {
					break
				}
				fail(ghost)
			}
		}
		want(t, "failures so far", failures, 19)
		want(t, "bob's sign-in at 19 failures", login("bob", "correct horse bob").Status, http.StatusOK)
		fail("ghost4")
		wantThrottled(t, login("bob", "correct horse bob"))
		wantThrottled(t, login("carol", "anything"))
	})
}

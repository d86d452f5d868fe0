package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/api"
	"github.com/heraldhq/herald/internal/testenv"
)

// doKey sends a request with the Idempotency-Key header values keys (none
// when empty); body is marshalled unless it is a string.
func (e *env) doKey(method, path, token string, body any, keys ...string) resp {
	e.t.Helper()
	raw, ok := body.(string)
	if !ok && body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		raw = string(b)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(raw))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for _, k := range keys {
		req.Header.Add("Idempotency-Key", k)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	r := resp{Status: res.StatusCode, Header: res.Header, Body: b}
	if strings.Contains(res.Header.Get("Content-Type"), "json") && len(b) > 0 {
		_ = json.Unmarshal(b, &r.JSON)
	}
	return r
}

// count reads the count of a list endpoint.
func (e *env) count(path string) int {
	e.t.Helper()
	r := e.must(http.StatusOK, "GET", path, "", nil)
	return int(r.JSON["count"].(float64))
}

func replayed(r resp) bool { return r.Header.Get("Idempotent-Replayed") == "true" }

// campaignOf creates an active campaign owned by tok's user.
func (e *env) campaignOf(tok string) string {
	e.t.Helper()
	c := e.must(http.StatusCreated, "POST", "/api/campaigns/", tok, map[string]any{"title": "Keys", "goal_amount": "500.00", "status": "active"})
	return fmt.Sprintf("/api/campaigns/%d/", c.id())
}

// A POST sent again with its Idempotency-Key writes nothing and gets the
// first answer again, marked Idempotent-Replayed; the same key with another
// request is refused (422); another user's key of the same name is theirs.
func TestIdempotencyKeyReplaysTheFirstAnswer(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		sc := newSpecChecker(t, e)
		_, alice := e.user("alice")
		_, bob := e.user("bob")
		cp := e.campaignOf(alice)
		comment := map[string]any{"content": "Once"}

		first := e.doKey("POST", cp+"comments/", alice, comment, "comment-1")
		if first.Status != http.StatusCreated || replayed(first) {
			t.Fatalf("first: %d replayed=%v %s", first.Status, replayed(first), first.Body)
		}
		again := e.doKey("POST", cp+"comments/", alice, comment, "comment-1")
		sc.check("POST", cp+"comments/", again)
		if again.Status != first.Status || !bytes.Equal(again.Body, first.Body) ||
			again.Header.Get("Content-Type") != first.Header.Get("Content-Type") || !replayed(again) {
			t.Fatalf("retry: %d %q replayed=%v %s; want the first answer again (%d %s), replayed",
				again.Status, again.Header.Get("Content-Type"), replayed(again), again.Body, first.Status, first.Body)
		}
		if n := e.count(cp + "comments/"); n != 1 {
			t.Fatalf("%d comments after a retry, want 1", n)
		}

		for name, r := range map[string]resp{
			"another body": e.doKey("POST", cp+"comments/", alice, map[string]any{"content": "Twice"}, "comment-1"),
			"another path": e.doKey("POST", "/api/quests/", alice, map[string]any{"title": "Once"}, "comment-1"),
		} {
			sc.check("POST", "/api/quests/", r)
			if r.Status != http.StatusUnprocessableEntity || r.JSON["code"] != "idempotency_key_reused" || replayed(r) {
				t.Errorf("the key with %s: %d %s; want 422 idempotency_key_reused", name, r.Status, r.Body)
			}
		}

		// Keys are per user.
		theirs := e.doKey("POST", cp+"comments/", bob, comment, "comment-1")
		if theirs.Status != http.StatusCreated || replayed(theirs) || theirs.id() == first.id() {
			t.Fatalf("bob with alice's key: %d replayed=%v %s", theirs.Status, replayed(theirs), theirs.Body)
		}
		if n := e.count(cp + "comments/"); n != 2 {
			t.Fatalf("%d comments, want alice's and bob's", n)
		}
		// Without a key, the same request writes again.
		e.must(http.StatusCreated, "POST", cp+"comments/", alice, comment)
		if n := e.count(cp + "comments/"); n != 3 {
			t.Fatalf("%d comments, want 3", n)
		}
	})
}

// A first attempt that failed committed nothing and leaves the key unused:
// the retry runs.
func TestIdempotencyKeyOfAFailedRequestIsNotSpent(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		_, owner := e.user("owner")
		_, fan := e.user("fan")
		c := e.must(http.StatusCreated, "POST", "/api/campaigns/", owner, map[string]any{"title": "Draft", "goal_amount": "10.00"})
		cp := fmt.Sprintf("/api/campaigns/%d/", c.id())
		// The draft is not found by others: 404, nothing written.
		pay := map[string]any{"amount": "5.00"}
		if r := e.doKey("POST", cp+"contributions/", fan, pay, "pay-1"); r.Status != http.StatusNotFound {
			t.Fatalf("contribution to a draft: %d %s", r.Status, r.Body)
		}
		e.must(http.StatusOK, "PATCH", cp, owner, map[string]any{"status": "active"})
		r := e.doKey("POST", cp+"contributions/", fan, pay, "pay-1")
		if r.Status != http.StatusCreated || replayed(r) {
			t.Fatalf("retry once the campaign is active: %d replayed=%v %s", r.Status, replayed(r), r.Body)
		}
		if again := e.doKey("POST", cp+"contributions/", fan, pay, "pay-1"); !replayed(again) || again.id() != r.id() {
			t.Fatalf("third send: %d replayed=%v %s", again.Status, replayed(again), again.Body)
		}
		if n := e.count(cp + "contributions/"); n != 1 {
			t.Fatalf("%d contributions, want 1", n)
		}
		if got := e.must(http.StatusOK, "GET", cp, "", nil).JSON["raised_amount"]; got != "5.00" {
			t.Fatalf("raised %v, want 5.00", got)
		}
	})
}

// Concurrent sends of one request with one key write once: one answer is
// the write's, the others its replay or 409 request_in_progress with
// Retry-After.
func TestIdempotencyKeyConcurrentRequestsWriteOnce(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		sc := newSpecChecker(t, e)
		_, alice := e.user("alice")
		cp := e.campaignOf(alice)
		const n = 12
		results := make([]resp, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				results[i] = e.doKey("POST", cp+"contributions/", alice, map[string]any{"amount": "1.00"}, "together")
			}()
		}
		close(start)
		wg.Wait()
		var created, replays, busy int
		var body []byte
		for _, r := range results {
			sc.check("POST", cp+"contributions/", r)
			switch {
			case r.Status == http.StatusCreated && !replayed(r):
				created++
				body = r.Body
			case r.Status == http.StatusCreated:
				replays++
			case r.Status == http.StatusConflict && r.JSON["code"] == "request_in_progress" && r.Header.Get("Retry-After") == "1":
				busy++
			default:
				t.Errorf("concurrent send: %d %v %s", r.Status, r.Header, r.Body)
			}
		}
		t.Logf("%d written, %d replayed, %d told to retry", created, replays, busy)
		if created != 1 {
			t.Fatalf("%d sends wrote, want exactly 1", created)
		}
		for _, r := range results {
			if replayed(r) && !bytes.Equal(r.Body, body) {
				t.Errorf("a replay differs from the answer: %s vs %s", r.Body, body)
			}
		}
		if c := e.count(cp + "contributions/"); c != 1 {
			t.Fatalf("%d contributions, want 1", c)
		}
		if got := e.must(http.StatusOK, "GET", cp, "", nil).JSON["raised_amount"]; got != "1.00" {
			t.Fatalf("raised %v, want 1.00", got)
		}
		if r := e.doKey("POST", cp+"contributions/", alice, map[string]any{"amount": "1.00"}, "together"); !replayed(r) || !bytes.Equal(r.Body, body) {
			t.Fatalf("a later retry: %d %s", r.Status, r.Body)
		}
	})
}

// A key whose write committed but whose answer was never stored (the
// process died in between) answers 409: request_in_progress while the
// write is recent, then already_applied, telling the client to read the
// resource. Nothing is written again.
func TestIdempotencyKeyCommittedWithoutAnswer(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		sc := newSpecChecker(t, e)
		_, alice := e.user("alice")
		cp := e.campaignOf(alice)
		comment := map[string]any{"content": "Lost answer"}
		e.doKey("POST", cp+"comments/", alice, comment, "lost")
		db := e.app.Platform().DB()
		if _, err := db.Exec("UPDATE idempotency_keys SET status = NULL, content_type = NULL, location = NULL, body = NULL"); err != nil {
			t.Fatal(err)
		}
		r := e.doKey("POST", cp+"comments/", alice, comment, "lost")
		sc.check("POST", cp+"comments/", r)
		if r.Status != http.StatusConflict || r.JSON["code"] != "request_in_progress" || r.Header.Get("Retry-After") != "1" {
			t.Fatalf("retry right after the write: %d %v %s; want 409 request_in_progress with Retry-After: 1", r.Status, r.Header, r.Body)
		}
		if _, err := db.Exec("UPDATE idempotency_keys SET created_at = $1", time.Now().UTC().Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
		r = e.doKey("POST", cp+"comments/", alice, comment, "lost")
		sc.check("POST", cp+"comments/", r)
		detail, _ := r.JSON["detail"].(string)
		if r.Status != http.StatusConflict || r.JSON["code"] != "already_applied" || !strings.Contains(detail, "read the resource") {
			t.Fatalf("retry an hour later: %d %s; want 409 already_applied", r.Status, r.Body)
		}
		if n := e.count(cp + "comments/"); n != 1 {
			t.Fatalf("%d comments, want 1", n)
		}
		// Another request with the key is still refused as such.
		if r := e.doKey("POST", cp+"comments/", alice, map[string]any{"content": "Other"}, "lost"); r.Status != http.StatusUnprocessableEntity {
			t.Fatalf("another request with the key: %d %s", r.Status, r.Body)
		}
	})
}

// Keys are 1 to 255 visible ASCII characters, sent once; anything else is
// 400 invalid naming the header, on every POST, and writes nothing.
func TestIdempotencyKeyValues(t *testing.T) {
	e := newEnv(t, testenv.SQLite(t))
	sc := newSpecChecker(t, e)
	_, alice := e.user("alice")
	cp := e.campaignOf(alice)
	for _, keys := range [][]string{
		{""}, {strings.Repeat("k", 256)}, {"a b"}, {"clé"}, {"a\tb"}, {"one", "two"},
	} {
		for _, path := range []string{cp + "comments/", "/api/auth/token/"} {
			r := e.doKey("POST", path, alice, map[string]any{"content": "Nope"}, keys...)
			sc.check("POST", path, r)
			errs, _ := r.JSON["errors"].(map[string]any)
			if r.Status != http.StatusBadRequest || r.JSON["code"] != "invalid" || errs["Idempotency-Key"] == nil ||
				!strings.Contains(fmt.Sprint(r.JSON["detail"]), "Idempotency-Key") {
				t.Errorf("POST %s with Idempotency-Key %q: %d %s; want 400 invalid naming the header", path, keys, r.Status, r.Body)
			}
		}
	}
	if n := e.count(cp + "comments/"); n != 0 {
		t.Fatalf("%d comments written with bad keys", n)
	}
	// The longest key, every visible character.
	var b strings.Builder
	for c := byte(0x21); c <= 0x7e; c++ {
		b.WriteByte(c)
	}
	long := (b.String() + strings.Repeat("z", 255))[:255]
	for range 2 {
		if r := e.doKey("POST", cp+"comments/", alice, map[string]any{"content": "Long key"}, long); r.Status != http.StatusCreated {
			t.Fatalf("a 255-character key: %d %s", r.Status, r.Body)
		}
	}
	if n := e.count(cp + "comments/"); n != 1 {
		t.Fatalf("%d comments with a 255-character key sent twice, want 1", n)
	}
}

// Sign-ins, refreshes, registration and tickets take a valid key but do
// not record it: their answers hold credentials, which are never stored,
// and each send runs (a new token, a new ticket).
func TestIdempotencyKeyNotRecordedWhereAnswersHoldCredentials(t *testing.T) {
	e := newEnv(t, testenv.SQLite(t))
	reg := map[string]string{"username": "carol", "password": "a long password"}
	if r := e.doKey("POST", "/api/auth/register/", "", reg, "reg"); r.Status != http.StatusCreated {
		t.Fatalf("register: %d %s", r.Status, r.Body)
	}
	if r := e.doKey("POST", "/api/auth/register/", "", reg, "reg"); r.Status != http.StatusBadRequest || replayed(r) {
		t.Fatalf("register again with the key: %d %s; want 400 (the name is taken)", r.Status, r.Body)
	}
	creds := map[string]string{"username": "carol", "password": "a long password"}
	var tokens []string
	for range 2 {
		r := e.doKey("POST", "/api/auth/token/", "", creds, "signin")
		if r.Status != http.StatusOK || replayed(r) {
			t.Fatalf("sign-in with a key: %d %s", r.Status, r.Body)
		}
		tokens = append(tokens, r.JSON["access"].(string))
	}
	var tickets []any
	for range 2 {
		r := e.doKey("POST", "/api/ws-ticket/", tokens[0], nil, "ticket")
		if r.Status != http.StatusCreated || replayed(r) {
			t.Fatalf("ticket with a key: %d %s", r.Status, r.Body)
		}
		tickets = append(tickets, r.JSON["ticket"])
	}
	if tickets[0] == tickets[1] {
		t.Fatal("the same ticket twice")
	}
	var n int
	if err := e.app.Platform().DB().QueryRow("SELECT COUNT(*) FROM idempotency_keys").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d keys recorded (%v), want none", n, err)
	}
}

// Every signed-in POST records its key: sent twice, each writes once and
// replays its answer. A POST route added without being listed here fails.
func TestEveryWritingPostReplays(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		sc := newSpecChecker(t, e)
		ownerID, owner := e.user("owner")
		_, fan := e.user("fan")
		cp := e.campaignOf(owner)
		q := e.must(http.StatusCreated, "POST", "/api/quests/", owner, map[string]any{"title": "Quest"})
		qp := fmt.Sprintf("/api/quests/%d/", q.id())
		reported := e.must(http.StatusCreated, "POST", cp+"comments/", fan, map[string]any{"content": "Reported"}).id()
		hidden := e.must(http.StatusCreated, "POST", cp+"comments/", fan, map[string]any{"content": "Hidden"}).id()
		type call struct {
			path, token string
			body        any
			list        string // what lists the objects it makes, if anyone may read it
		}
		calls := map[string]call{
			"/api/campaigns/":                            {"/api/campaigns/", owner, map[string]any{"title": "Another", "goal_amount": "5.00", "status": "active"}, fmt.Sprintf("/api/campaigns/?owner=%d", ownerID)},
			"/api/campaigns/{id}/contributions/":         {cp + "contributions/", fan, map[string]any{"amount": "2.50"}, cp + "contributions/"},
			"/api/campaigns/{id}/updates/":               {cp + "updates/", owner, map[string]any{"title": "News", "content": "Body"}, cp + "updates/"},
			"/api/campaigns/{id}/comments/":              {cp + "comments/", fan, map[string]any{"content": "Hi"}, cp + "comments/"},
			"/api/campaigns/{id}/releases/":              {cp + "releases/", owner, map[string]any{"version": "1.0", "title": "One"}, cp + "releases/"},
			"/api/campaigns/{id}/milestones/":            {cp + "milestones/", owner, map[string]any{"title": "Half", "target_amount": "250.00"}, cp + "milestones/"},
			"/api/quests/":                               {"/api/quests/", owner, map[string]any{"title": "Another quest"}, "/api/quests/"},
			"/api/quests/{id}/applications/":             {qp + "applications/", fan, map[string]any{"message": "Me"}, ""},
			"/api/campaigns/{id}/comments/{oid}/report/": {fmt.Sprintf("%scomments/%d/report/", cp, reported), owner, map[string]any{"reason": "Spam"}, ""},
			"/api/campaigns/{id}/comments/{oid}/hide/":   {fmt.Sprintf("%scomments/%d/hide/", cp, hidden), owner, nil, ""},
		}
		for _, rt := range e.app.API().Routes() {
			if rt.Method != "POST" || rt.Auth != api.AuthRequired || rt.Credentials {
				continue
			}
			c, ok := calls[rt.Path]
			if !ok {
				t.Errorf("POST %s records keys but is not exercised here", rt.Path)
				continue
			}
			before := 0
			if c.list != "" {
				before = e.count(c.list)
			}
			key := "key-for-" + rt.Path
			first := e.doKey("POST", c.path, c.token, c.body, key)
			again := e.doKey("POST", c.path, c.token, c.body, key)
			sc.check("POST", c.path, first)
			sc.check("POST", c.path, again)
			if first.Status != rt.Status || again.Status != first.Status || !bytes.Equal(again.Body, first.Body) || replayed(first) || !replayed(again) {
				t.Errorf("POST %s twice with a key: %d %s, then %d replayed=%v %s", c.path, first.Status, first.Body, again.Status, replayed(again), again.Body)
			}
			if c.list != "" {
				if after := e.count(c.list); after != before+1 {
					t.Errorf("POST %s twice with a key made %d objects, want 1", c.path, after-before)
				}
			}
		}
	})
}

package api_test

import (
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
)

var (
	questKeys       = []string{"id", "creator", "title", "description", "status", "applications_count", "created_at", "updated_at"}
	applicationKeys = []string{"id", "quest", "quest_title", "applicant", "message", "status", "created_at", "updated_at"}
)

func qp(id int64, sub ...string) string {
	p := fmt.Sprintf("/api/quests/%d/", id)
	for _, s := range sub {
		p += s + "/"
	}
	return p
}

func ap(id int64) string { return fmt.Sprintf("/api/applications/%d/", id) }

// quest posts a quest and returns its id.
func (e *env) quest(tok, title string) int64 {
	e.t.Helper()
	return e.must(http.StatusCreated, "POST", "/api/quests/", tok, map[string]any{"title": title}).id()
}

func TestQuests(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, e *env) {
		uids, toks := e.users("alice", "bob")
		alice, bob := toks[0], toks[1]

		wantProblem(t, e.do("POST", "/api/quests/", "", map[string]any{"title": "x"}), http.StatusUnauthorized, "not_authenticated")
		r := e.must(http.StatusCreated, "POST", "/api/quests/", alice, map[string]any{"title": " Fix the fence ", "description": "Two posts are loose."})
		q := r.id()
		wantKeys(t, r.JSON, questKeys...)
		wantUserRef(t, "creator", r.JSON["creator"], uids[0], "alice")
		want(t, "title", str(r.JSON, "title"), "Fix the fence")
		want(t, "description", str(r.JSON, "description"), "Two posts are loose.")
		want(t, "status", str(r.JSON, "status"), "open")
		want(t, "applications_count", num(r.JSON, "applications_count"), 0)
		wantTime(t, "created_at", r.JSON["created_at"])
		want(t, "updated_at", str(r.JSON, "updated_at"), str(r.JSON, "created_at"))

		// Quests are public.
		got := e.must(http.StatusOK, "GET", qp(q), "", nil)
		if !reflect.DeepEqual(got.JSON, r.JSON) {
			t.Errorf("GET differs from POST:\n%s\n%s", got.Body, r.Body)
		}
		wantProblem(t, e.do("GET", qp(q+1000), "", nil), http.StatusNotFound, "not_found")

		// Anyone signed in may post one, closed from the start if they like.
		r = e.must(http.StatusCreated, "POST", "/api/quests/", bob, map[string]any{"title": "Walk the dog", "status": "closed"})
		want(t, "status", str(r.JSON, "status"), "closed")
		want(t, "description", str(r.JSON, "description"), "")

		wantOnlyFieldError(t, e.do("POST", "/api/quests/", alice, map[string]any{}), "title", "may not be blank")
		wantOnlyFieldError(t, e.do("POST", "/api/quests/", alice, map[string]any{"title": " "}), "title", "may not be blank")
		wantOnlyFieldError(t, e.do("POST", "/api/quests/", alice, map[string]any{"title": strings.Repeat("q", 201)}), "title", "200")
		wantOnlyFieldError(t, e.do("POST", "/api/quests/", alice, map[string]any{"title": "t", "status": "archived"}), "status", "not a valid choice")
		wantOnlyFieldError(t, e.do("POST", "/api/quests/", alice, map[string]any{"title": "t", "description": strings.Repeat("d", 10001)}), "description", "10000")

		t.Run("only the creator edits", func(t *testing.T) {
			e := e.on(t)
			wantProblem(t, e.do("PATCH", qp(q), "", map[string]any{"title": "x"}), http.StatusUnauthorized, "not_authenticated")
			wantProblem(t, e.do("PATCH", qp(q), bob, map[string]any{"title": "Mine"}), http.StatusForbidden, "permission_denied")
			wantProblem(t, e.do("PATCH", qp(q+1000), bob, map[string]any{"title": "x"}), http.StatusNotFound, "not_found")
			r := e.must(http.StatusOK, "PATCH", qp(q), alice, map[string]any{"title": "Fix the garden fence"})
			want(t, "title", str(r.JSON, "title"), "Fix the garden fence")
			want(t, "description", str(r.JSON, "description"), "Two posts are loose.")
			want(t, "status", str(r.JSON, "status"), "open")
			want(t, "created_at", str(r.JSON, "created_at"), str(got.JSON, "created_at"))
			wantOnlyFieldError(t, e.do("PATCH", qp(q), alice, map[string]any{"title": ""}), "title", "may not be blank")
			wantOnlyFieldError(t, e.do("PATCH", qp(q), alice, map[string]any{"status": "done"}), "status", "not a valid choice")
			r = e.must(http.StatusOK, "GET", qp(q), "", nil)
			want(t, "title after refused edits", str(r.JSON, "title"), "Fix the garden fence")
		})
	})
}

func TestQuestApplications(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, e *env) {
		uids, toks := e.users("alice", "bob", "carol", "dave")
		alice, bob, carol, dave := toks[0], toks[1], toks[2], toks[3]
		q := e.quest(alice, "Paint the shed")

		wantProblem(t, e.do("POST", qp(q, "applications"), "", map[string]any{"message": "me"}), http.StatusUnauthorized, "not_authenticated")
		wantProblem(t, e.do("POST", qp(q, "applications"), alice, map[string]any{"message": "me"}), http.StatusForbidden, "permission_denied")
		wantProblem(t, e.do("POST", qp(q+1000, "applications"), bob, map[string]any{}), http.StatusNotFound, "not_found")
		wantOnlyFieldError(t, e.do("POST", qp(q, "applications"), bob, map[string]any{"message": strings.Repeat("m", 2001)}), "message", "2000")

		r := e.must(http.StatusCreated, "POST", qp(q, "applications"), bob, map[string]any{"message": " I have brushes. "})
		bobApp := r.id()
		wantKeys(t, r.JSON, applicationKeys...)
		want(t, "quest", num(r.JSON, "quest"), q)
		want(t, "quest_title", str(r.JSON, "quest_title"), "Paint the shed")
		wantUserRef(t, "applicant", r.JSON["applicant"], uids[1], "bob")
		want(t, "message", str(r.JSON, "message"), "I have brushes.")
		want(t, "status", str(r.JSON, "status"), "pending")
		created := wantTime(t, "created_at", r.JSON["created_at"])
		want(t, "updated_at", str(r.JSON, "updated_at"), str(r.JSON, "created_at"))
		bobAppJSON := r.JSON

		wantProblem(t, e.do("POST", qp(q, "applications"), bob, map[string]any{"message": "again"}), http.StatusConflict, "conflict")
		carolApp := e.must(http.StatusCreated, "POST", qp(q, "applications"), carol, map[string]any{}).id()
		r = e.must(http.StatusOK, "GET", qp(q), "", nil)
		want(t, "applications_count", num(r.JSON, "applications_count"), 2)

		t.Run("who sees what", func(t *testing.T) {
			e := e.on(t)
			for _, c := range []struct {
				who, tok string
				want     []int64
			}{
				{"alice", alice, []int64{carolApp, bobApp}},
				{"bob", bob, []int64{bobApp}},
				{"carol", carol, []int64{carolApp}},
				{"dave", dave, nil},
			} {
				r := e.must(http.StatusOK, "GET", qp(q, "applications"), c.tok, nil)
				want(t, c.who+"'s view", fmt.Sprint(ids(r)), fmt.Sprint(c.want))
				want(t, c.who+"'s count", num(r.JSON, "count"), int64(len(c.want)))
				for _, v := range list(r.JSON, "results") {
					wantKeys(t, v, applicationKeys...)
				}
			}
			wantProblem(t, e.do("GET", qp(q, "applications"), "", nil), http.StatusUnauthorized, "not_authenticated")
			wantProblem(t, e.do("GET", qp(q+1000, "applications"), bob, nil), http.StatusNotFound, "not_found")

			// /api/applications/ is always one's own.
			for _, c := range []struct {
				who, tok string
				want     []int64
			}{
				{"alice", alice, nil},
				{"bob", bob, []int64{bobApp}},
				{"carol", carol, []int64{carolApp}},
			} {
				r := e.must(http.StatusOK, "GET", "/api/applications/", c.tok, nil)
				want(t, c.who+"'s applications", fmt.Sprint(ids(r)), fmt.Sprint(c.want))
			}
			wantProblem(t, e.do("GET", "/api/applications/", "", nil), http.StatusUnauthorized, "not_authenticated")

			r := e.must(http.StatusOK, "GET", ap(bobApp), bob, nil)
			if !reflect.DeepEqual(r.JSON, bobAppJSON) {
				t.Errorf("GET differs from POST:\n%s", r.Body)
			}
			e.must(http.StatusOK, "GET", ap(bobApp), alice, nil)
			wantProblem(t, e.do("GET", ap(bobApp), carol, nil), http.StatusNotFound, "not_found")
			wantProblem(t, e.do("GET", ap(bobApp), dave, nil), http.StatusNotFound, "not_found")
			wantProblem(t, e.do("GET", ap(bobApp), "", nil), http.StatusUnauthorized, "not_authenticated")
			wantProblem(t, e.do("GET", ap(bobApp+1000), alice, nil), http.StatusNotFound, "not_found")
		})

		t.Run("status changes", func(t *testing.T) {
			e := e.on(t)
			set := func(tok string, app int64, status string) resp {
				e.t.Helper()
				return e.do("PATCH", ap(app), tok, map[string]any{"status": status})
			}
			wantProblem(t, set("", bobApp, "approved"), http.StatusUnauthorized, "not_authenticated")
			// The applicant cannot judge their own application…
			wantProblem(t, set(bob, bobApp, "approved"), http.StatusForbidden, "permission_denied")
			wantProblem(t, set(bob, bobApp, "rejected"), http.StatusForbidden, "permission_denied")
			// …the creator cannot withdraw it…
			wantProblem(t, set(alice, bobApp, "withdrawn"), http.StatusForbidden, "permission_denied")
			// …and to anyone else it does not exist.
			wantProblem(t, set(dave, bobApp, "approved"), http.StatusNotFound, "not_found")
			wantProblem(t, set(carol, bobApp, "withdrawn"), http.StatusNotFound, "not_found")
			wantProblem(t, set(alice, bobApp+1000, "approved"), http.StatusNotFound, "not_found")

			wantOnlyFieldError(t, set(alice, bobApp, "pending"), "status", "back to pending")
			wantOnlyFieldError(t, set(bob, bobApp, "pending"), "status", "back to pending")
			wantOnlyFieldError(t, set(alice, bobApp, "accepted"), "status", "not a valid choice")
			wantOnlyFieldError(t, set(alice, bobApp, ""), "status", "required")
			wantOnlyFieldError(t, e.do("PATCH", ap(bobApp), alice, map[string]any{}), "status", "required")
			r := e.must(http.StatusOK, "GET", ap(bobApp), bob, nil)
			want(t, "status after refusals", str(r.JSON, "status"), "pending")
			want(t, "updated_at after refusals", str(r.JSON, "updated_at"), str(bobAppJSON, "updated_at"))

			r = e.must(http.StatusOK, "PATCH", ap(bobApp), alice, map[string]any{"status": "approved"})
			wantKeys(t, r.JSON, applicationKeys...)
			want(t, "status", str(r.JSON, "status"), "approved")
			want(t, "created_at", str(r.JSON, "created_at"), str(bobAppJSON, "created_at"))
			if wantTime(t, "updated_at", r.JSON["updated_at"]).Before(created) {
				t.Error("updated_at before created_at")
			}
			want(t, "message", str(r.JSON, "message"), "I have brushes.")
			// Saying it again changes nothing.
			r2 := e.must(http.StatusOK, "PATCH", ap(bobApp), alice, map[string]any{"status": "approved"})
			want(t, "updated_at of a repeat", str(r2.JSON, "updated_at"), str(r.JSON, "updated_at"))

			r = e.must(http.StatusOK, "PATCH", ap(carolApp), alice, map[string]any{"status": "rejected"})
			want(t, "status", str(r.JSON, "status"), "rejected")
			// The creator may change their mind.
			r = e.must(http.StatusOK, "PATCH", ap(carolApp), alice, map[string]any{"status": "approved"})
			want(t, "status", str(r.JSON, "status"), "approved")

			// Withdrawal is final, even for an approved application.
			r = e.must(http.StatusOK, "PATCH", ap(bobApp), bob, map[string]any{"status": "withdrawn"})
			want(t, "status", str(r.JSON, "status"), "withdrawn")
			for _, c := range []struct {
				tok, status string
			}{{alice, "approved"}, {alice, "rejected"}, {bob, "withdrawn"}, {bob, "pending"}, {alice, "withdrawn"}} {
				wantProblem(t, set(c.tok, bobApp, c.status), http.StatusConflict, "conflict")
			}
			r = e.must(http.StatusOK, "GET", ap(bobApp), alice, nil)
			want(t, "final status", str(r.JSON, "status"), "withdrawn")
			// A withdrawn application still counts as applied.
			wantProblem(t, e.do("POST", qp(q, "applications"), bob, map[string]any{}), http.StatusConflict, "conflict")

			l := e.must(http.StatusOK, "GET", "/api/applications/", carol, nil)
			want(t, "carol's status in her list", str(l.JSON, "results", 0, "status"), "approved")
		})

		t.Run("closed quests take no applications", func(t *testing.T) {
			e := e.on(t)
			r := e.must(http.StatusOK, "PATCH", qp(q), alice, map[string]any{"status": "closed"})
			want(t, "status", str(r.JSON, "status"), "closed")
			wantProblem(t, e.do("POST", qp(q, "applications"), dave, map[string]any{"message": "late"}), http.StatusConflict, "conflict")
			r = e.must(http.StatusOK, "GET", qp(q), "", nil)
			want(t, "applications_count", num(r.JSON, "applications_count"), 2)
			// Reopened, it does again.
			e.must(http.StatusOK, "PATCH", qp(q), alice, map[string]any{"status": "open"})
			e.must(http.StatusCreated, "POST", qp(q, "applications"), dave, map[string]any{"message": "now"})
		})

		t.Run("one application per person, even at once", func(t *testing.T) {
			e := e.on(t)
			q2 := e.quest(alice, "Race")
			statuses := make([]int, 8)
			var wg sync.WaitGroup
			for i := range statuses {
				wg.Go(func() {
					if r, err := e.post(qp(q2, "applications"), dave, fmt.Sprintf(`{"message":"try %d"}`, i)); err == nil {
						statuses[i] = r.Status
					}
				})
			}
			wg.Wait()
			n := 0
			for _, s := range statuses {
				switch s {
				case http.StatusCreated:
					n++
				case http.StatusConflict:
				default:
					t.Errorf("status %d, want 201 or 409", s)
				}
			}
			want(t, "applications made", n, 1)
			r := e.must(http.StatusOK, "GET", qp(q2), "", nil)
			want(t, "applications_count", num(r.JSON, "applications_count"), 1)
		})
	})
}

func TestQuestListFilters(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, e *env) {
		uids, toks := e.users("alice", "bob")
		alice, bob := toks[0], toks[1]
		a1 := e.quest(alice, "a1")
		a2 := e.quest(alice, "a2")
		e.must(http.StatusOK, "PATCH", qp(a2), alice, map[string]any{"status": "closed"})
		b1 := e.quest(bob, "b1")
		b2 := e.must(http.StatusCreated, "POST", "/api/quests/", bob, map[string]any{"title": "b2", "status": "closed"}).id()
		e.must(http.StatusCreated, "POST", qp(a1, "applications"), bob, map[string]any{})

		for _, c := range []struct {
			query string
			want  []int64
		}{
			{"", []int64{b2, b1, a2, a1}},
			{"?status=open", []int64{b1, a1}},
			{"?status=closed", []int64{b2, a2}},
			{"?creator=" + itoa(uids[0]), []int64{a2, a1}},
			{"?creator=" + itoa(uids[1]) + "&status=open", []int64{b1}},
			{"?creator=987654", nil},
			{"?page_size=3&page=2", []int64{a1}},
		} {
			r := e.must(http.StatusOK, "GET", "/api/quests/"+c.query, "", nil)
			want(t, "quests"+c.query, fmt.Sprint(ids(r)), fmt.Sprint(c.want))
			for _, v := range list(r.JSON, "results") {
				wantKeys(t, v, questKeys...)
			}
		}
		r := e.must(http.StatusOK, "GET", "/api/quests/?creator="+itoa(uids[0]), bob, nil)
		want(t, "applications_count of a1", num(r.JSON, "results", 1, "applications_count"), 1)
		r = e.must(http.StatusOK, "GET", "/api/quests/?page_size=3", "", nil)
		want(t, "count", num(r.JSON, "count"), 4)
		want(t, "next", str(r.JSON, "next"), e.srv.URL+"/api/quests/?page=2&page_size=3")
		wantProblem(t, e.do("GET", "/api/quests/?page=3&page_size=3", "", nil), http.StatusNotFound, "not_found")

		for _, q := range []string{"draft", "OPEN", "any"} {
			wantOnlyFieldError(t, e.do("GET", "/api/quests/?status="+q, "", nil), "status", "not a valid choice")
		}
		for _, q := range []string{"alice", "0", "-3"} {
			wantOnlyFieldError(t, e.do("GET", "/api/quests/?creator="+q, "", nil), "creator", "positive integer")
		}
		wantOnlyFieldError(t, e.do("GET", "/api/applications/?page_size=0", bob, nil), "page_size", "")
		r = e.must(http.StatusOK, "GET", "/api/applications/?page_size=1", bob, nil)
		want(t, "count", num(r.JSON, "count"), 1)
		wantProblem(t, e.do("GET", "/api/applications/?page=2", bob, nil), http.StatusNotFound, "not_found")
	})
}

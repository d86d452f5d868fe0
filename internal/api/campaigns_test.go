package api_test

import (
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/money"
)

var (
	campaignKeys = []string{"id", "owner", "title", "description", "goal_amount", "raised_amount", "currency", "status",
		"contributions_count", "created_at", "updated_at"}
	campaignDetailKeys = append(slices.Clone(campaignKeys),
		"updates_count", "comments_count", "contributions", "updates", "comments", "releases", "milestones")
	contributionKeys = []string{"id", "campaign", "user", "amount", "currency", "created_at"}
	updateKeys       = []string{"id", "campaign", "title", "content", "image", "created_at", "updated_at"}
	commentKeys      = []string{"id", "campaign", "user", "content", "created_at", "updated_at"}
	releaseKeys      = []string{"id", "campaign", "version", "title", "notes", "released_at", "updated_at"}
	milestoneKeys    = []string{"id", "campaign", "title", "description", "target_amount", "reached", "due_date", "created_at", "updated_at"}
)

// cp is the path of a campaign or of something under it:
// cp(3) is /api/campaigns/3/, cp(3, "comments", 7) is /api/campaigns/3/comments/7/.
func cp(id int64, sub ...any) string {
	p := fmt.Sprintf("/api/campaigns/%d/", id)
	for _, s := range sub {
		p += fmt.Sprint(s) + "/"
	}
	return p
}

// campaign starts a campaign and returns the answer.
func (e *env) campaign(tok string, fields map[string]any) resp {
	e.t.Helper()
	return e.must(http.StatusCreated, "POST", "/api/campaigns/", tok, fields)
}

// activeCampaign starts an active USD campaign and returns its id.
func (e *env) activeCampaign(tok, title string) int64 {
	e.t.Helper()
	return e.campaign(tok, map[string]any{"title": title, "goal_amount": "1000.00", "status": "active"}).id()
}

// contribute gives amount (a JSON value: "1.00" or a number) and returns the answer.
func (e *env) contribute(tok string, campaign int64, amount any) resp {
	e.t.Helper()
	return e.must(http.StatusCreated, "POST", cp(campaign, "contributions"), tok, map[string]any{"amount": amount})
}

func wantUserRef(t *testing.T, what string, v any, id int64, name string) {
	t.Helper()
	wantKeys(t, v, "id", "username")
	want(t, what+".id", num(v, "id"), id)
	want(t, what+".username", str(v, "username"), name)
}

// wantTotals checks a campaign's raised amount and contribution count as
// its detail, the campaign list and its contribution list report them.
func wantTotals(t *testing.T, e *env, id int64, raised string, n int64) {
	t.Helper()
	d := e.must(http.StatusOK, "GET", cp(id), "", nil)
	want(t, "raised_amount", str(d.JSON, "raised_amount"), raised)
	want(t, "contributions_count", num(d.JSON, "contributions_count"), n)
	l := e.must(http.StatusOK, "GET", cp(id, "contributions"), "", nil)
	want(t, "contributions count", num(l.JSON, "count"), n)
	all := e.must(http.StatusOK, "GET", "/api/campaigns/?page_size=100", "", nil)
	for _, c := range list(all.JSON, "results") {
		if num(c, "id") == id {
			want(t, "listed raised_amount", str(c, "raised_amount"), raised)
			want(t, "listed contributions_count", num(c, "contributions_count"), n)
		}
	}
}

func TestCampaignLifecycle(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, e *env) {
		uids, toks := e.users("alice", "bob")
		alice, bob := toks[0], toks[1]

		wantProblem(t, e.do("POST", "/api/campaigns/", "", map[string]any{"title": "x", "goal_amount": "1.00"}),
			http.StatusUnauthorized, "not_authenticated")

		r := e.campaign(alice, map[string]any{"title": "  Solar kiln  ", "description": "Dry timber with sunlight.",
			"goal_amount": "1500.50", "currency": "EUR"})
		id := r.id()
		wantKeys(t, r.JSON, campaignDetailKeys...)
		wantUserRef(t, "owner", r.JSON["owner"], uids[0], "alice")
		want(t, "title", str(r.JSON, "title"), "Solar kiln")
		want(t, "description", str(r.JSON, "description"), "Dry timber with sunlight.")
		want(t, "goal_amount", str(r.JSON, "goal_amount"), "1500.50")
		want(t, "raised_amount", str(r.JSON, "raised_amount"), "0.00")
		want(t, "currency", str(r.JSON, "currency"), "EUR")
		want(t, "status", str(r.JSON, "status"), "draft")
		for _, k := range []string{"contributions_count", "updates_count", "comments_count"} {
			want(t, k, num(r.JSON, k), 0)
		}
		for _, k := range []string{"contributions", "updates", "comments", "releases", "milestones"} {
			if l, ok := r.JSON[k].([]any); !ok || len(l) != 0 {
				t.Errorf("%s = %v, want []", k, r.JSON[k])
			}
		}
		created := wantTime(t, "created_at", r.JSON["created_at"])
		want(t, "updated_at", str(r.JSON, "updated_at"), str(r.JSON, "created_at"))

		got := e.must(http.StatusOK, "GET", cp(id), alice, nil)
		if !reflect.DeepEqual(got.JSON, r.JSON) {
			t.Errorf("detail differs from the creation answer:\n%s\n%s", got.Body, r.Body)
		}

		t.Run("create validation", func(t *testing.T) {
			e := e.on(t)
			r := e.do("POST", "/api/campaigns/", alice, map[string]any{})
			wantFieldError(t, r, "title", "may not be blank")
			wantFieldError(t, r, "goal_amount", "required")
			for _, c := range []struct {
				name       string
				body       map[string]any
				field, msg string
			}{
				{"blank title", map[string]any{"title": "   ", "goal_amount": "1.00"}, "title", "may not be blank"},
				{"long title", map[string]any{"title": strings.Repeat("t", 201), "goal_amount": "1.00"}, "title", "200"},
				{"NUL in title", map[string]any{"title": "a\x00b", "goal_amount": "1.00"}, "title", "NUL"},
				{"zero goal", map[string]any{"title": "t", "goal_amount": "0.00"}, "goal_amount", "greater than 0.00"},
				{"negative goal", map[string]any{"title": "t", "goal_amount": "-1.00"}, "goal_amount", ""},
				{"goal over the maximum", map[string]any{"title": "t", "goal_amount": "1000000000000.00"}, "goal_amount", ""},
				{"lower-case currency", map[string]any{"title": "t", "goal_amount": "1.00", "currency": "usd"}, "currency", "ISO 4217"},
				{"four-letter currency", map[string]any{"title": "t", "goal_amount": "1.00", "currency": "EURO"}, "currency", "ISO 4217"},
				{"closed at birth", map[string]any{"title": "t", "goal_amount": "1.00", "status": "closed"}, "status", "draft or active"},
				{"unknown status", map[string]any{"title": "t", "goal_amount": "1.00", "status": "live"}, "status", "draft or active"},
			} {
				r := e.do("POST", "/api/campaigns/", alice, c.body)
				t.Run(c.name, func(t *testing.T) { wantOnlyFieldError(t, r, c.field, c.msg) })
			}
			// A goal may be a JSON number; it is read exactly.
			r = e.campaign(alice, map[string]any{"title": "Numbers", "goal_amount": 250.5, "status": "active"})
			want(t, "goal_amount", str(r.JSON, "goal_amount"), "250.50")
			want(t, "status", str(r.JSON, "status"), "active")
			want(t, "currency", str(r.JSON, "currency"), "USD")
		})

		t.Run("only the owner edits", func(t *testing.T) {
			e := e.on(t)
			wantProblem(t, e.do("PATCH", cp(id), "", map[string]any{"title": "x"}), http.StatusUnauthorized, "not_authenticated")
			// A draft does not exist for anyone else.
			wantProblem(t, e.do("PATCH", cp(id), bob, map[string]any{"title": "x"}), http.StatusNotFound, "not_found")

			r := e.must(http.StatusOK, "PATCH", cp(id), alice, map[string]any{"status": "active"})
			want(t, "status", str(r.JSON, "status"), "active")
			want(t, "title", str(r.JSON, "title"), "Solar kiln")
			want(t, "created_at", str(r.JSON, "created_at"), str(got.JSON, "created_at"))
			if u := wantTime(t, "updated_at", r.JSON["updated_at"]); u.Before(created) {
				t.Errorf("updated_at %v before created_at %v", u, created)
			}

			wantProblem(t, e.do("PATCH", cp(id), bob, map[string]any{"title": "Mine now"}), http.StatusForbidden, "permission_denied")
			wantProblem(t, e.do("PATCH", cp(id), bob, map[string]any{"status": "closed"}), http.StatusForbidden, "permission_denied")
			r = e.must(http.StatusOK, "GET", cp(id), bob, nil)
			want(t, "title after bob's attempt", str(r.JSON, "title"), "Solar kiln")
			want(t, "status after bob's attempt", str(r.JSON, "status"), "active")

			r = e.must(http.StatusOK, "PATCH", cp(id), alice, map[string]any{"description": "Now with a fan."})
			want(t, "description", str(r.JSON, "description"), "Now with a fan.")
			want(t, "title", str(r.JSON, "title"), "Solar kiln")
			want(t, "goal_amount", str(r.JSON, "goal_amount"), "1500.50")

			wantOnlyFieldError(t, e.do("PATCH", cp(id), alice, map[string]any{"title": ""}), "title", "may not be blank")
			wantOnlyFieldError(t, e.do("PATCH", cp(id), alice, map[string]any{"goal_amount": "0"}), "goal_amount", "greater than 0.00")
			wantOnlyFieldError(t, e.do("PATCH", cp(id), alice, map[string]any{"currency": "eur"}), "currency", "ISO 4217")
			wantOnlyFieldError(t, e.do("PATCH", cp(id), alice, map[string]any{"status": "paused"}), "status", "cannot move")
			// A refused edit changes nothing, not even its valid parts.
			r = e.do("PATCH", cp(id), alice, map[string]any{"title": "Half done", "status": "paused"})
			wantOnlyFieldError(t, r, "status", "")
			r = e.must(http.StatusOK, "GET", cp(id), alice, nil)
			want(t, "title after a refused edit", str(r.JSON, "title"), "Solar kiln")
		})

		t.Run("currency is fixed once money came in", func(t *testing.T) {
			e := e.on(t)
			r := e.must(http.StatusOK, "PATCH", cp(id), alice, map[string]any{"currency": "USD"})
			want(t, "currency", str(r.JSON, "currency"), "USD")
			e.contribute(bob, id, "5.00")
			wantOnlyFieldError(t, e.do("PATCH", cp(id), alice, map[string]any{"currency": "GBP"}), "currency", "cannot change")
			// Restating the same currency is no change.
			r = e.must(http.StatusOK, "PATCH", cp(id), alice, map[string]any{"currency": "USD", "title": "Solar kiln v2"})
			want(t, "currency", str(r.JSON, "currency"), "USD")
			want(t, "title", str(r.JSON, "title"), "Solar kiln v2")
			wantTotals(t, e, id, "5.00", 1)
		})

		t.Run("closing", func(t *testing.T) {
			e := e.on(t)
			r := e.must(http.StatusOK, "PATCH", cp(id), alice, map[string]any{"status": "closed"})
			want(t, "status", str(r.JSON, "status"), "closed")
			wantOnlyFieldError(t, e.do("PATCH", cp(id), alice, map[string]any{"status": "active"}), "status", "cannot move")
			wantProblem(t, e.do("POST", cp(id, "contributions"), bob, map[string]any{"amount": "1.00"}), http.StatusConflict, "conflict")
			wantProblem(t, e.do("POST", cp(id, "comments"), bob, map[string]any{"content": "late"}), http.StatusConflict, "conflict")
			wantProblem(t, e.do("POST", cp(id, "comments"), alice, map[string]any{"content": "late"}), http.StatusConflict, "conflict")
			wantTotals(t, e, id, "5.00", 1)
			// Closed campaigns stay public.
			e.must(http.StatusOK, "GET", cp(id), "", nil)

			// A draft may be closed directly, after which others see it.
			d := e.campaign(alice, map[string]any{"title": "Abandoned", "goal_amount": "10.00"}).id()
			wantProblem(t, e.do("GET", cp(d), bob, nil), http.StatusNotFound, "not_found")
			r = e.must(http.StatusOK, "PATCH", cp(d), alice, map[string]any{"status": "closed"})
			want(t, "status", str(r.JSON, "status"), "closed")
			e.must(http.StatusOK, "GET", cp(d), bob, nil)
		})

		t.Run("back to draft", func(t *testing.T) {
			e := e.on(t)
			// A closed campaign, contributions and all, is hidden again
			// from all but its owner, and may then be published again.
			r := e.must(http.StatusOK, "PATCH", cp(id), alice, map[string]any{"status": "draft"})
			want(t, "status", str(r.JSON, "status"), "draft")
			wantProblem(t, e.do("GET", cp(id), bob, nil), http.StatusNotFound, "not_found")
			wantProblem(t, e.do("GET", cp(id), "", nil), http.StatusNotFound, "not_found")
			wantProblem(t, e.do("GET", cp(id, "contributions"), bob, nil), http.StatusNotFound, "not_found")
			r = e.must(http.StatusOK, "GET", "/api/campaigns/?status=draft", alice, nil)
			want(t, "alice's drafts", fmt.Sprint(ids(r)), fmt.Sprint([]int64{id}))
			r = e.must(http.StatusOK, "PATCH", cp(id), alice, map[string]any{"status": "active"})
			want(t, "status", str(r.JSON, "status"), "active")
			wantTotals(t, e, id, "5.00", 1)
			e.must(http.StatusOK, "GET", cp(id), bob, nil)
		})
	})
}

func TestCampaignDraftsAreHidden(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, e *env) {
		uids, toks := e.users("alice", "bob")
		alice, bob := toks[0], toks[1]
		public := e.activeCampaign(alice, "Public")
		draft := e.campaign(alice, map[string]any{"title": "Secret", "goal_amount": "10.00"}).id()

		// The owner may prepare a draft's content.
		children := map[string]int64{
			"updates":    e.must(http.StatusCreated, "POST", cp(draft, "updates"), alice, map[string]any{"title": "t", "content": "c"}).id(),
			"comments":   e.must(http.StatusCreated, "POST", cp(draft, "comments"), alice, map[string]any{"content": "note to self"}).id(),
			"releases":   e.must(http.StatusCreated, "POST", cp(draft, "releases"), alice, map[string]any{"version": "0.1", "title": "t"}).id(),
			"milestones": e.must(http.StatusCreated, "POST", cp(draft, "milestones"), alice, map[string]any{"title": "t", "target_amount": "5.00"}).id(),
		}
		// …but nobody can give to it yet, the owner included.
		wantProblem(t, e.do("POST", cp(draft, "contributions"), alice, map[string]any{"amount": "1.00"}), http.StatusConflict, "conflict")

		for who, tok := range map[string]string{"anonymous": "", "bob": bob} {
			t.Run(who, func(t *testing.T) {
				e := e.on(t)
				wantProblem(t, e.do("GET", cp(draft), tok, nil), http.StatusNotFound, "not_found")
				for _, sub := range []string{"contributions", "updates", "comments", "releases", "milestones"} {
					wantProblem(t, e.do("GET", cp(draft, sub), tok, nil), http.StatusNotFound, "not_found")
				}
				for sub, cid := range children {
					wantProblem(t, e.do("GET", cp(draft, sub, cid), tok, nil), http.StatusNotFound, "not_found")
				}
				r := e.must(http.StatusOK, "GET", "/api/campaigns/", tok, nil)
				want(t, "count", num(r.JSON, "count"), 1)
				want(t, "ids", fmt.Sprint(ids(r)), fmt.Sprint([]int64{public}))
				r = e.must(http.StatusOK, "GET", "/api/campaigns/?status=draft", tok, nil)
				want(t, "drafts count", num(r.JSON, "count"), 0)
				r = e.must(http.StatusOK, "GET", "/api/campaigns/?owner="+itoa(uids[0]), tok, nil)
				want(t, "alice's campaigns", fmt.Sprint(ids(r)), fmt.Sprint([]int64{public}))
				if tok == "" {
					return
				}
				comment := map[string]any{"content": "x"}
				titled := map[string]any{"title": "x", "content": "x"}
				for _, c := range []struct {
					method, path string
					body         map[string]any
				}{
					{"PATCH", cp(draft), map[string]any{"title": "x"}},
					{"POST", cp(draft, "contributions"), map[string]any{"amount": "1.00"}},
					{"POST", cp(draft, "comments"), comment},
					{"POST", cp(draft, "updates"), titled},
					{"POST", cp(draft, "releases"), map[string]any{"title": "x", "version": "9"}},
					{"POST", cp(draft, "milestones"), map[string]any{"title": "x", "target_amount": "1.00"}},
					{"PATCH", cp(draft, "updates", children["updates"]), titled},
					{"PATCH", cp(draft, "comments", children["comments"]), comment},
					{"PATCH", cp(draft, "releases", children["releases"]), map[string]any{"title": "x"}},
					{"PATCH", cp(draft, "milestones", children["milestones"]), map[string]any{"reached": true}},
				} {
					r := e.do(c.method, c.path, tok, c.body)
					t.Run(c.method+" "+c.path, func(t *testing.T) { wantProblem(t, r, http.StatusNotFound, "not_found") })
				}
			})
		}

		t.Run("owner", func(t *testing.T) {
			e := e.on(t)
			r := e.must(http.StatusOK, "GET", cp(draft), alice, nil)
			want(t, "status", str(r.JSON, "status"), "draft")
			want(t, "updates_count", num(r.JSON, "updates_count"), 1)
			want(t, "comments_count", num(r.JSON, "comments_count"), 1)
			for _, sub := range []string{"updates", "comments", "releases", "milestones"} {
				r := e.must(http.StatusOK, "GET", cp(draft, sub), alice, nil)
				want(t, sub+" count", num(r.JSON, "count"), 1)
				e.must(http.StatusOK, "GET", cp(draft, sub, children[sub]), alice, nil)
			}
			e.must(http.StatusOK, "GET", cp(draft, "contributions"), alice, nil)
			r = e.must(http.StatusOK, "GET", "/api/campaigns/", alice, nil)
			want(t, "ids", fmt.Sprint(ids(r)), fmt.Sprint([]int64{draft, public}))
			r = e.must(http.StatusOK, "GET", "/api/campaigns/?status=draft", alice, nil)
			want(t, "drafts", fmt.Sprint(ids(r)), fmt.Sprint([]int64{draft}))
			// Once active, everyone sees it and may give.
			e.must(http.StatusOK, "PATCH", cp(draft), alice, map[string]any{"status": "active"})
			e.must(http.StatusOK, "GET", cp(draft, "comments", children["comments"]), bob, nil)
			e.contribute(bob, draft, "1.00")
		})
	})
}

func TestCampaignChildren(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, e *env) {
		uids, toks := e.users("alice", "bob", "carol")
		alice, bob, carol := toks[0], toks[1], toks[2]
		c := e.activeCampaign(alice, "Kiln")
		other := e.activeCampaign(alice, "Other")

		var contribs [2]resp
		t.Run("contributions", func(t *testing.T) {
			e := e.on(t)
			wantProblem(t, e.do("POST", cp(c, "contributions"), "", map[string]any{"amount": "1.00"}), http.StatusUnauthorized, "not_authenticated")
			r := e.contribute(bob, c, "25.00")
			wantKeys(t, r.JSON, contributionKeys...)
			want(t, "campaign", num(r.JSON, "campaign"), c)
			wantUserRef(t, "user", r.JSON["user"], uids[1], "bob")
			want(t, "amount", str(r.JSON, "amount"), "25.00")
			want(t, "currency", str(r.JSON, "currency"), "USD")
			wantTime(t, "created_at", r.JSON["created_at"])
			contribs[0] = r
			got := e.must(http.StatusOK, "GET", cp(c, "contributions", r.id()), "", nil)
			if !reflect.DeepEqual(got.JSON, r.JSON) {
				t.Errorf("GET differs from POST:\n%s\n%s", got.Body, r.Body)
			}
			wantProblem(t, e.do("GET", cp(other, "contributions", r.id()), "", nil), http.StatusNotFound, "not_found")
			wantProblem(t, e.do("GET", cp(c, "contributions", r.id()+1000), "", nil), http.StatusNotFound, "not_found")

			contribs[1] = e.must(http.StatusCreated, "POST", cp(c, "contributions"), carol, map[string]any{"amount": "0.75", "currency": "USD"})
			wantFieldError(t, e.do("POST", cp(c, "contributions"), carol, map[string]any{}), "amount", "required")
			wantOnlyFieldError(t, e.do("POST", cp(c, "contributions"), carol, map[string]any{"amount": "0.00"}), "amount", "greater than 0.00")
			wantOnlyFieldError(t, e.do("POST", cp(c, "contributions"), carol, map[string]any{"amount": "1.00", "currency": "usd"}), "currency", "ISO 4217")
			l := e.must(http.StatusOK, "GET", cp(c, "contributions"), "", nil)
			want(t, "count", num(l.JSON, "count"), 2)
			want(t, "newest first", fmt.Sprint(ids(l)), fmt.Sprint([]int64{contribs[1].id(), contribs[0].id()}))
		})

		var update resp
		t.Run("updates", func(t *testing.T) {
			e := e.on(t)
			body := map[string]any{"title": "Week 1", "content": "The frame is up."}
			wantProblem(t, e.do("POST", cp(c, "updates"), "", body), http.StatusUnauthorized, "not_authenticated")
			wantProblem(t, e.do("POST", cp(c, "updates"), bob, body), http.StatusForbidden, "permission_denied")
			update = e.must(http.StatusCreated, "POST", cp(c, "updates"), alice, body)
			r := update
			wantKeys(t, r.JSON, updateKeys...)
			want(t, "campaign", num(r.JSON, "campaign"), c)
			want(t, "title", str(r.JSON, "title"), "Week 1")
			want(t, "content", str(r.JSON, "content"), "The frame is up.")
			if v, ok := r.JSON["image"]; !ok || v != nil {
				t.Errorf("image %v, want null", v)
			}
			wantTime(t, "created_at", r.JSON["created_at"])
			want(t, "updated_at", str(r.JSON, "updated_at"), str(r.JSON, "created_at"))

			r2 := e.must(http.StatusCreated, "POST", cp(c, "updates"), alice, map[string]any{"title": "Week 2", "content": "Glass.", "image": nil})
			if v, ok := r2.JSON["image"]; !ok || v != nil {
				t.Errorf("image %v, want null", v)
			}
			// An image is uploaded (updates_image_test.go), never linked.
			for _, img := range []string{"https://example.com/w1.png", "/media/w2.png", "/media/campaign_updates/0123456789abcdef0123456789abcdef.png",
				"javascript:alert(1)", "//evil.example/x.png", "ftp://example.com/x", "https://"} {
				wantOnlyFieldError(t, e.do("POST", cp(c, "updates"), alice, map[string]any{"title": "t", "content": "c", "image": img}), "image", "multipart/form-data")
			}
			wantOnlyFieldError(t, e.do("POST", cp(c, "updates"), alice, map[string]any{"title": "t", "content": "c", "image": 1}), "image", "string")
			wantOnlyFieldError(t, e.do("POST", cp(c, "updates"), alice, map[string]any{"title": "t"}), "content", "may not be blank")
			wantOnlyFieldError(t, e.do("POST", cp(c, "updates"), alice, map[string]any{"content": "c"}), "title", "may not be blank")

			wantProblem(t, e.do("PATCH", cp(c, "updates", r.id()), bob, map[string]any{"title": "x"}), http.StatusForbidden, "permission_denied")
			wantProblem(t, e.do("PATCH", cp(other, "updates", r.id()), alice, map[string]any{"title": "x"}), http.StatusNotFound, "not_found")
			p := e.must(http.StatusOK, "PATCH", cp(c, "updates", r.id()), alice, map[string]any{"title": "Week one"})
			want(t, "title", str(p.JSON, "title"), "Week one")
			want(t, "content", str(p.JSON, "content"), "The frame is up.")
			if v, ok := p.JSON["image"]; !ok || v != nil {
				t.Errorf("image %v, want null", v)
			}
			want(t, "created_at", str(p.JSON, "created_at"), str(r.JSON, "created_at"))
			if wantTime(t, "updated_at", p.JSON["updated_at"]).Before(wantTime(t, "created_at", r.JSON["created_at"])) {
				t.Error("updated_at went back")
			}
			update = p
			got := e.must(http.StatusOK, "GET", cp(c, "updates", r.id()), "", nil)
			if !reflect.DeepEqual(got.JSON, p.JSON) {
				t.Errorf("GET differs from PATCH:\n%s\n%s", got.Body, p.Body)
			}
			l := e.must(http.StatusOK, "GET", cp(c, "updates"), "", nil)
			want(t, "updates", fmt.Sprint(ids(l)), fmt.Sprint([]int64{r2.id(), r.id()}))
		})

		var comment resp
		t.Run("comments", func(t *testing.T) {
			e := e.on(t)
			wantProblem(t, e.do("POST", cp(c, "comments"), "", map[string]any{"content": "hi"}), http.StatusUnauthorized, "not_authenticated")
			r := e.must(http.StatusCreated, "POST", cp(c, "comments"), bob, map[string]any{"content": "  Love it  "})
			wantKeys(t, r.JSON, commentKeys...)
			want(t, "campaign", num(r.JSON, "campaign"), c)
			wantUserRef(t, "user", r.JSON["user"], uids[1], "bob")
			want(t, "content", str(r.JSON, "content"), "Love it")
			wantTime(t, "created_at", r.JSON["created_at"])
			want(t, "updated_at", str(r.JSON, "updated_at"), str(r.JSON, "created_at"))
			wantOnlyFieldError(t, e.do("POST", cp(c, "comments"), bob, map[string]any{"content": " "}), "content", "may not be blank")
			wantOnlyFieldError(t, e.do("POST", cp(c, "comments"), bob, map[string]any{"content": strings.Repeat("é", 5001)}), "content", "5000")
			e.must(http.StatusCreated, "POST", cp(c, "comments"), bob, map[string]any{"content": strings.Repeat("é", 5000)})

			// Only the author edits a comment, not even the campaign's owner.
			wantProblem(t, e.do("PATCH", cp(c, "comments", r.id()), alice, map[string]any{"content": "moderated"}), http.StatusForbidden, "permission_denied")
			wantProblem(t, e.do("PATCH", cp(c, "comments", r.id()), carol, map[string]any{"content": "hijacked"}), http.StatusForbidden, "permission_denied")
			wantProblem(t, e.do("PATCH", cp(c, "comments", r.id()), "", map[string]any{"content": "x"}), http.StatusUnauthorized, "not_authenticated")
			wantOnlyFieldError(t, e.do("PATCH", cp(c, "comments", r.id()), bob, map[string]any{"content": ""}), "content", "may not be blank")
			p := e.must(http.StatusOK, "PATCH", cp(c, "comments", r.id()), bob, map[string]any{"content": "Love it, edited"})
			want(t, "content", str(p.JSON, "content"), "Love it, edited")
			want(t, "created_at", str(p.JSON, "created_at"), str(r.JSON, "created_at"))
			wantUserRef(t, "user", p.JSON["user"], uids[1], "bob")
			comment = p
			got := e.must(http.StatusOK, "GET", cp(c, "comments", r.id()), "", nil)
			want(t, "stored content", str(got.JSON, "content"), "Love it, edited")
			// The owner comments like anyone.
			e.must(http.StatusCreated, "POST", cp(c, "comments"), alice, map[string]any{"content": "Thanks!"})
		})

		var releases []resp
		t.Run("releases", func(t *testing.T) {
			e := e.on(t)
			body := map[string]any{"version": "1.0.0", "title": "First light", "notes": "It works.", "released_at": "2024-05-15T14:30:00Z"}
			wantProblem(t, e.do("POST", cp(c, "releases"), bob, body), http.StatusForbidden, "permission_denied")
			r := e.must(http.StatusCreated, "POST", cp(c, "releases"), alice, body)
			wantKeys(t, r.JSON, releaseKeys...)
			want(t, "campaign", num(r.JSON, "campaign"), c)
			want(t, "version", str(r.JSON, "version"), "1.0.0")
			want(t, "title", str(r.JSON, "title"), "First light")
			want(t, "notes", str(r.JSON, "notes"), "It works.")
			want(t, "released_at", str(r.JSON, "released_at"), "2024-05-15T14:30:00Z")
			wantTime(t, "updated_at", r.JSON["updated_at"])

			// An offset is converted to UTC.
			early := e.must(http.StatusCreated, "POST", cp(c, "releases"), alice,
				map[string]any{"version": "0.9.0", "title": "Beta", "released_at": "2024-05-01T16:30:00.5+02:00"})
			want(t, "released_at", str(early.JSON, "released_at"), "2024-05-01T14:30:00.500000Z")
			// Without a date it is released now.
			now := e.must(http.StatusCreated, "POST", cp(c, "releases"), alice, map[string]any{"version": "1.1.0", "title": "Now"})
			if d := time.Since(wantTime(t, "released_at", now.JSON["released_at"])); d < -time.Minute || d > time.Minute {
				t.Errorf("released_at %v is not now", now.JSON["released_at"])
			}
			want(t, "notes", str(now.JSON, "notes"), "")

			wantOnlyFieldError(t, e.do("POST", cp(c, "releases"), alice, map[string]any{"version": "1.0.0", "title": "Again"}), "version", "already has")
			wantOnlyFieldError(t, e.do("POST", cp(c, "releases"), alice, map[string]any{"version": "2", "title": "t", "released_at": "yesterday"}), "released_at", "ISO 8601")
			wantOnlyFieldError(t, e.do("POST", cp(c, "releases"), alice, map[string]any{"version": "2", "title": "t", "released_at": "2024-05-15"}), "released_at", "ISO 8601")
			wantOnlyFieldError(t, e.do("POST", cp(c, "releases"), alice, map[string]any{"title": "t"}), "version", "may not be blank")
			// The same version on another campaign is fine.
			e.must(http.StatusCreated, "POST", cp(other, "releases"), alice, map[string]any{"version": "1.0.0", "title": "t"})

			wantProblem(t, e.do("PATCH", cp(c, "releases", r.id()), bob, map[string]any{"notes": "x"}), http.StatusForbidden, "permission_denied")
			wantOnlyFieldError(t, e.do("PATCH", cp(c, "releases", r.id()), alice, map[string]any{"version": "0.9.0"}), "version", "already has")
			p := e.must(http.StatusOK, "PATCH", cp(c, "releases", r.id()), alice, map[string]any{"notes": "It works, mostly."})
			want(t, "notes", str(p.JSON, "notes"), "It works, mostly.")
			want(t, "version", str(p.JSON, "version"), "1.0.0")
			want(t, "released_at", str(p.JSON, "released_at"), "2024-05-15T14:30:00Z")
			l := e.must(http.StatusOK, "GET", cp(c, "releases"), "", nil)
			want(t, "newest release first", fmt.Sprint(ids(l)), fmt.Sprint([]int64{now.id(), r.id(), early.id()}))
			releases = []resp{now, p, early}
		})

		var milestones []resp
		t.Run("milestones", func(t *testing.T) {
			e := e.on(t)
			body := map[string]any{"title": "Shell", "description": "Walls and roof", "target_amount": "500.00", "due_date": "2025-01-31"}
			wantProblem(t, e.do("POST", cp(c, "milestones"), bob, body), http.StatusForbidden, "permission_denied")
			r := e.must(http.StatusCreated, "POST", cp(c, "milestones"), alice, body)
			wantKeys(t, r.JSON, milestoneKeys...)
			want(t, "campaign", num(r.JSON, "campaign"), c)
			want(t, "title", str(r.JSON, "title"), "Shell")
			want(t, "description", str(r.JSON, "description"), "Walls and roof")
			want(t, "target_amount", str(r.JSON, "target_amount"), "500.00")
			want(t, "reached", r.JSON["reached"], any(false))
			want(t, "due_date", str(r.JSON, "due_date"), "2025-01-31")
			wantTime(t, "created_at", r.JSON["created_at"])

			small := e.must(http.StatusCreated, "POST", cp(c, "milestones"), alice, map[string]any{"title": "Seed", "target_amount": "20"})
			if v, ok := small.JSON["due_date"]; !ok || v != nil {
				t.Errorf("due_date = %v, want null", v)
			}
			want(t, "already reached", small.JSON["reached"], any(true))
			want(t, "target_amount", str(small.JSON, "target_amount"), "20.00")

			wantOnlyFieldError(t, e.do("POST", cp(c, "milestones"), alice, map[string]any{"title": "t", "target_amount": "1.00", "due_date": "31/01/2025"}), "due_date", "YYYY-MM-DD")
			wantOnlyFieldError(t, e.do("POST", cp(c, "milestones"), alice, map[string]any{"title": "t"}), "target_amount", "required")
			wantOnlyFieldError(t, e.do("POST", cp(c, "milestones"), alice, map[string]any{"title": "t", "target_amount": "0"}), "target_amount", "greater than 0.00")

			wantProblem(t, e.do("PATCH", cp(c, "milestones", r.id()), bob, map[string]any{"reached": true}), http.StatusForbidden, "permission_denied")
			p := e.must(http.StatusOK, "PATCH", cp(c, "milestones", r.id()), alice, map[string]any{"due_date": ""})
			if v, ok := p.JSON["due_date"]; !ok || v != nil {
				t.Errorf("cleared due_date = %v, want null", v)
			}
			want(t, "target_amount", str(p.JSON, "target_amount"), "500.00")
			want(t, "title", str(p.JSON, "title"), "Shell")
			l := e.must(http.StatusOK, "GET", cp(c, "milestones"), "", nil)
			want(t, "milestones by target", fmt.Sprint(ids(l)), fmt.Sprint([]int64{small.id(), r.id()}))
			milestones = []resp{small, p}
		})

		t.Run("detail nests everything", func(t *testing.T) {
			e := e.on(t)
			d := e.must(http.StatusOK, "GET", cp(c), carol, nil)
			want(t, "raised_amount", str(d.JSON, "raised_amount"), "25.75")
			want(t, "contributions_count", num(d.JSON, "contributions_count"), 2)
			want(t, "updates_count", num(d.JSON, "updates_count"), 2)
			want(t, "comments_count", num(d.JSON, "comments_count"), 3)
			nested := func(key string, keys []string, n int) []any {
				l := list(d.JSON, key)
				if len(l) != n {
					t.Fatalf("%s has %d items, want %d", key, len(l), n)
				}
				for _, v := range l {
					wantKeys(t, v, keys...)
					want(t, key+" campaign", num(v, "campaign"), c)
				}
				return l
			}
			cs := nested("contributions", contributionKeys, 2)
			if !reflect.DeepEqual(cs[0], contribs[1].JSON) || !reflect.DeepEqual(cs[1], contribs[0].JSON) {
				t.Errorf("nested contributions %v, want newest first %s %s", cs, contribs[1].Body, contribs[0].Body)
			}
			us := nested("updates", updateKeys, 2)
			if !reflect.DeepEqual(us[1], update.JSON) {
				t.Errorf("nested update %v, want %s", us[1], update.Body)
			}
			cm := nested("comments", commentKeys, 3)
			if !reflect.DeepEqual(cm[2], comment.JSON) {
				t.Errorf("nested comment %v, want %s", cm[2], comment.Body)
			}
			wantUserRef(t, "comment user", get(cm, 0, "user"), uids[0], "alice")
			rs := nested("releases", releaseKeys, 3)
			for i := range rs {
				if !reflect.DeepEqual(rs[i], releases[i].JSON) {
					t.Errorf("nested release %d = %v, want %s", i, rs[i], releases[i].Body)
				}
			}
			ms := nested("milestones", milestoneKeys, 2)
			want(t, "first milestone", num(ms[0], "id"), milestones[0].id())
			want(t, "second milestone", num(ms[1], "id"), milestones[1].id())
			want(t, "second milestone reached", get(ms[1], "reached"), any(false))
		})
	})
}

func TestContributionAmountsAreExact(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, e *env) {
		_, toks := e.users("alice", "bob")
		alice, bob := toks[0], toks[1]
		c := e.activeCampaign(alice, "Cents")

		want(t, "amount", str(e.contribute(bob, c, "0.10").JSON, "amount"), "0.10")
		want(t, "amount", str(e.contribute(bob, c, "0.20").JSON, "amount"), "0.20")
		wantTotals(t, e, c, "0.30", 2)
		want(t, "amount", str(e.contribute(bob, c, 7).JSON, "amount"), "7.00")
		want(t, "amount", str(e.contribute(bob, c, "1234.5").JSON, "amount"), "1234.50")
		want(t, "amount", str(e.contribute(bob, c, 0.05).JSON, "amount"), "0.05")
		want(t, "amount", str(e.contribute(alice, c, "0000.01").JSON, "amount"), "0.01")
		wantTotals(t, e, c, "1241.86", 6)

		t.Run("a refused contribution leaves no trace", func(t *testing.T) {
			e := e.on(t)
			wantOnlyFieldError(t, e.do("POST", cp(c, "contributions"), bob, map[string]any{"amount": "5.00", "currency": "EUR"}), "currency", "collects USD")
			wantOnlyFieldError(t, e.do("POST", cp(c, "contributions"), bob, map[string]any{"amount": "1000000000000.00"}), "amount", "")
			wantTotals(t, e, c, "1241.86", 6)
		})

		t.Run("the total is bounded", func(t *testing.T) {
			e := e.on(t)
			big := e.campaign(alice, map[string]any{"title": "Big", "goal_amount": "1000.00", "currency": "JPY", "status": "active"}).id()
			r := e.must(http.StatusCreated, "POST", cp(big, "contributions"), bob, map[string]any{"amount": money.Max.String(), "currency": "JPY"})
			want(t, "amount", str(r.JSON, "amount"), "999999999999.99")
			want(t, "currency", str(r.JSON, "currency"), "JPY")
			wantOnlyFieldError(t, e.do("POST", cp(big, "contributions"), bob, map[string]any{"amount": "0.01"}), "amount", "exceed")
			wantTotals(t, e, big, "999999999999.99", 1)
		})
	})
}

func TestConcurrentContributions(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, e *env) {
		names := make([]string, 10)
		for i := range names {
			names[i] = fmt.Sprintf("backer%d", i)
		}
		_, toks := e.users(append([]string{"owner"}, names...)...)
		c := e.activeCampaign(toks[0], "Crowd")

		var wg sync.WaitGroup
		var mu sync.Mutex
		var failures []string
		seen := map[int64]bool{}
		for i := range 100 {
			wg.Go(func() {
				r, err := e.post(cp(c, "contributions"), toks[1+i%10], `{"amount":"1.01"}`)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err != nil:
					failures = append(failures, err.Error())
				case r.Status != http.StatusCreated || str(r.JSON, "amount") != "1.01":
					failures = append(failures, fmt.Sprintf("%d %s", r.Status, r.Body))
				default:
					seen[r.id()] = true
				}
			})
		}
		wg.Wait()
		if len(failures) > 0 {
			t.Fatalf("%d of 100 contributions failed, first: %s", len(failures), failures[0])
		}
		want(t, "distinct contribution ids", len(seen), 100)
		wantTotals(t, e, c, "101.00", 100)

		d := e.must(http.StatusOK, "GET", cp(c), "", nil)
		want(t, "nested contributions (capped)", len(list(d.JSON, "contributions")), 50)
		l := e.must(http.StatusOK, "GET", cp(c, "contributions")+"?page_size=100", "", nil)
		var sum money.Cents
		perUser := map[string]int{}
		for _, v := range list(l.JSON, "results") {
			a, err := money.Parse(str(v, "amount"))
			if err != nil {
				t.Fatal(err)
			}
			sum += a
			perUser[str(v, "user", "username")]++
		}
		want(t, "sum of listed amounts", sum.String(), "101.00")
		for _, n := range names {
			want(t, n+"'s contributions", perUser[n], 10)
		}
	})
}

func TestMilestonesReachedAutomatically(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, e *env) {
		_, toks := e.users("alice", "bob")
		alice, bob := toks[0], toks[1]
		c := e.activeCampaign(alice, "Milestones")
		m := map[string]int64{}
		for _, target := range []string{"200.00", "50.00", "80.00"} {
			r := e.must(http.StatusCreated, "POST", cp(c, "milestones"), alice, map[string]any{"title": "at " + target, "target_amount": target})
			want(t, "reached at creation", r.JSON["reached"], any(false))
			m[target] = r.id()
		}
		reached := func(t *testing.T, wantReached ...string) {
			t.Helper()
			l := e.must(http.StatusOK, "GET", cp(c, "milestones"), "", nil)
			var got []string
			for _, v := range list(l.JSON, "results") {
				if get(v, "reached") == true {
					got = append(got, str(v, "target_amount"))
				}
			}
			want(t, "reached milestones", fmt.Sprint(got), fmt.Sprint(wantReached))
		}

		e.contribute(bob, c, "30.00")
		reached(t)
		e.contribute(bob, c, "19.99")
		reached(t)
		e.contribute(bob, c, "0.01") // exactly 50.00
		reached(t, "50.00")
		e.contribute(bob, c, "30.00") // exactly 80.00
		reached(t, "50.00", "80.00")
		r := e.must(http.StatusOK, "GET", cp(c, "milestones", m["80.00"]), "", nil)
		want(t, "reached", r.JSON["reached"], any(true))
		if wantTime(t, "updated_at", r.JSON["updated_at"]).Before(wantTime(t, "created_at", r.JSON["created_at"])) {
			t.Error("updated_at before created_at")
		}

		// Targets already raised are reached on creation; others are not.
		for target, wantReached := range map[string]bool{"10.00": true, "80.00": true, "80.01": false} {
			r := e.must(http.StatusCreated, "POST", cp(c, "milestones"), alice, map[string]any{"title": "late " + target, "target_amount": target})
			want(t, "reached at creation of "+target, r.JSON["reached"], any(wantReached))
		}
		reached(t, "10.00", "50.00", "80.00", "80.00")

		// The owner may mark one by hand; nobody else may.
		wantProblem(t, e.do("PATCH", cp(c, "milestones", m["200.00"]), bob, map[string]any{"reached": true}), http.StatusForbidden, "permission_denied")
		r = e.must(http.StatusOK, "PATCH", cp(c, "milestones", m["200.00"]), alice, map[string]any{"reached": true})
		want(t, "reached", r.JSON["reached"], any(true))
		reached(t, "10.00", "50.00", "80.00", "80.00", "200.00")
	})
}

func TestPagination(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, e *env) {
		_, toks := e.users("alice", "bob")
		alice, bob := toks[0], toks[1]
		c := e.activeCampaign(alice, "Chatty")
		for i := 1; i <= 25; i++ {
			e.must(http.StatusCreated, "POST", cp(c, "comments"), bob, map[string]any{"content": fmt.Sprintf("comment %d", i)})
		}
		base := cp(c, "comments")

		p1 := e.must(http.StatusOK, "GET", base, "", nil)
		wantKeys(t, p1.JSON, "count", "next", "previous", "results")
		want(t, "count", num(p1.JSON, "count"), 25)
		want(t, "page 1 size", len(list(p1.JSON, "results")), 20)
		want(t, "newest first", str(p1.JSON, "results", 0, "content"), "comment 25")
		want(t, "next", str(p1.JSON, "next"), e.srv.URL+base+"?page=2")
		if v, ok := p1.JSON["previous"]; !ok || v != nil {
			t.Errorf("previous = %v, want null", v)
		}

		next := strings.TrimPrefix(str(p1.JSON, "next"), e.srv.URL)
		p2 := e.must(http.StatusOK, "GET", next, "", nil)
		want(t, "count", num(p2.JSON, "count"), 25)
		want(t, "page 2 size", len(list(p2.JSON, "results")), 5)
		want(t, "last on page 2", str(p2.JSON, "results", 4, "content"), "comment 1")
		if v, ok := p2.JSON["next"]; !ok || v != nil {
			t.Errorf("next = %v, want null", v)
		}
		want(t, "previous", str(p2.JSON, "previous"), e.srv.URL+base+"?page=1")
		all := append(ids(p1), ids(p2)...)
		if !slices.IsSortedFunc(all, func(a, b int64) int { return int(b - a) }) || len(slices.Compact(slices.Clone(all))) != 25 {
			t.Errorf("pages 1 and 2 are not 25 distinct comments newest first: %v", all)
		}

		wantProblem(t, e.do("GET", base+"?page=3", "", nil), http.StatusNotFound, "not_found")

		p := e.must(http.StatusOK, "GET", base+"?page_size=5", "", nil)
		want(t, "page_size=5", len(list(p.JSON, "results")), 5)
		want(t, "next keeps page_size", str(p.JSON, "next"), e.srv.URL+base+"?page=2&page_size=5")
		p = e.must(http.StatusOK, "GET", base+"?page=5&page_size=5", "", nil)
		want(t, "last page", fmt.Sprint(ids(p)), fmt.Sprint(all[20:]))
		if p.JSON["next"] != nil {
			t.Errorf("next on the last page = %v", p.JSON["next"])
		}
		want(t, "previous keeps page_size", str(p.JSON, "previous"), e.srv.URL+base+"?page=4&page_size=5")
		wantProblem(t, e.do("GET", base+"?page=6&page_size=5", "", nil), http.StatusNotFound, "not_found")
		p = e.must(http.StatusOK, "GET", base+"?page_size=100", "", nil)
		want(t, "page_size=100", len(list(p.JSON, "results")), 25)
		if p.JSON["next"] != nil {
			t.Errorf("next = %v, want null", p.JSON["next"])
		}

		for _, v := range []string{"0", "101", "abc", "-1", "1.5", "99999999999999999999"} {
			wantOnlyFieldError(t, e.do("GET", base+"?page_size="+v, "", nil), "page_size", "1 to 100")
		}
		for _, v := range []string{"0", "abc", "-1", "99999999999999999999"} {
			wantOnlyFieldError(t, e.do("GET", base+"?page="+v, "", nil), "page", "positive integer")
		}
		// Pages too far out to compute an offset for are simply not there.
		for _, v := range []string{"9223372036854775807", "4611686018427387904", "461168601842738792"} {
			wantProblem(t, e.do("GET", base+"?page="+v, "", nil), http.StatusNotFound, "not_found")
			wantProblem(t, e.do("GET", "/api/campaigns/?page_size=100&page="+v, "", nil), http.StatusNotFound, "not_found")
		}

		// An empty list has one empty page.
		empty := e.must(http.StatusOK, "GET", cp(c, "updates"), "", nil)
		want(t, "count", num(empty.JSON, "count"), 0)
		if l, ok := empty.JSON["results"].([]any); !ok || len(l) != 0 {
			t.Errorf("results = %v, want []", empty.JSON["results"])
		}
		if empty.JSON["next"] != nil || empty.JSON["previous"] != nil {
			t.Errorf("links on an empty list: %s", empty.Body)
		}
		wantProblem(t, e.do("GET", cp(c, "updates")+"?page=2", "", nil), http.StatusNotFound, "not_found")

		// The campaign list pages the same way, keeping its filters in the links.
		for range 2 {
			e.activeCampaign(alice, "more")
		}
		l := e.must(http.StatusOK, "GET", "/api/campaigns/?status=active&page_size=2", "", nil)
		want(t, "count", num(l.JSON, "count"), 3)
		want(t, "next", str(l.JSON, "next"), e.srv.URL+"/api/campaigns/?page=2&page_size=2&status=active")
		l = e.must(http.StatusOK, "GET", strings.TrimPrefix(str(l.JSON, "next"), e.srv.URL), "", nil)
		want(t, "last campaign", fmt.Sprint(ids(l)), fmt.Sprint([]int64{c}))
	})
}

func TestCampaignListFilters(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, e *env) {
		uids, toks := e.users("alice", "bob")
		alice, bob := toks[0], toks[1]
		a1 := e.activeCampaign(alice, "A1")
		a2 := e.campaign(alice, map[string]any{"title": "A2", "goal_amount": "1.00"}).id()
		e.must(http.StatusOK, "PATCH", cp(a2), alice, map[string]any{"status": "closed"})
		a3 := e.campaign(alice, map[string]any{"title": "A3", "goal_amount": "1.00"}).id()
		b1 := e.activeCampaign(bob, "B1")

		for _, c := range []struct {
			who, query string
			want       []int64
		}{
			{"", "", []int64{b1, a2, a1}},
			{"", "?status=active", []int64{b1, a1}},
			{"", "?status=closed", []int64{a2}},
			{"", "?status=draft", nil},
			{"", "?owner=" + itoa(uids[0]), []int64{a2, a1}},
			{"", "?owner=" + itoa(uids[0]) + "&status=active", []int64{a1}},
			{"", "?owner=" + itoa(uids[1]) + "&status=closed", nil},
			{"", "?owner=987654", nil},
			{alice, "", []int64{b1, a3, a2, a1}},
			{alice, "?status=draft", []int64{a3}},
			{alice, "?owner=" + itoa(uids[0]), []int64{a3, a2, a1}},
			{bob, "?owner=" + itoa(uids[0]), []int64{a2, a1}},
			{bob, "?status=draft", nil},
		} {
			r := e.must(http.StatusOK, "GET", "/api/campaigns/"+c.query, c.who, nil)
			want(t, "campaigns"+c.query, fmt.Sprint(ids(r)), fmt.Sprint(c.want))
			want(t, "count"+c.query, num(r.JSON, "count"), int64(len(c.want)))
			for _, v := range list(r.JSON, "results") {
				wantKeys(t, v, campaignKeys...)
			}
		}
		for _, q := range []string{"bogus", "Active", "draft,active"} {
			wantOnlyFieldError(t, e.do("GET", "/api/campaigns/?status="+q, "", nil), "status", "not a valid choice")
		}
		for _, q := range []string{"abc", "0", "-1", "1.0", "99999999999999999999"} {
			wantOnlyFieldError(t, e.do("GET", "/api/campaigns/?owner="+q, "", nil), "owner", "positive integer")
		}
	})
}

// Amounts up to money.Max are valid everywhere, on every database.
func TestLargeAmounts(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, e *env) {
		_, toks := e.users("alice", "bob")
		alice, bob := toks[0], toks[1]
		for _, goal := range []string{"21474836.47", "21474836.48", "999999999999.99"} {
			r := e.do("POST", "/api/campaigns/", alice, map[string]any{"title": "Big " + goal, "goal_amount": goal, "status": "active"})
			if r.Status != http.StatusCreated {
				t.Errorf("goal %s: status %d: %s", goal, r.Status, r.Body)
				continue
			}
			want(t, "goal_amount", str(r.JSON, "goal_amount"), goal)
			d := e.must(http.StatusOK, "GET", cp(r.id()), bob, nil)
			want(t, "stored goal_amount", str(d.JSON, "goal_amount"), goal)
		}
		c := e.activeCampaign(alice, "Grows")
		r := e.do("PATCH", cp(c), alice, map[string]any{"goal_amount": "50000000.00"})
		if r.Status != http.StatusOK {
			t.Errorf("raising the goal to 50000000.00: status %d: %s", r.Status, r.Body)
		} else {
			want(t, "goal_amount", str(r.JSON, "goal_amount"), "50000000.00")
		}
		r = e.contribute(bob, c, "50000000.00")
		want(t, "amount", str(r.JSON, "amount"), "50000000.00")
		ms := e.must(http.StatusCreated, "POST", cp(c, "milestones"), alice, map[string]any{"title": "far", "target_amount": "999999999999.99"})
		want(t, "target_amount", str(ms.JSON, "target_amount"), "999999999999.99")
		want(t, "reached", ms.JSON["reached"], any(false))
	})
}

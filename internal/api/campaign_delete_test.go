package api_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/heraldhq/herald/internal/media/mediatest"
	"github.com/heraldhq/herald/internal/testenv"
)

// DELETE /api/campaigns/<id>/: its owner deletes it (204) with everything
// under it, the images of its updates included; anyone else is refused as
// an edit is (403 for a public campaign, 404 for a draft), and so is a
// campaign with contributions (409 has_contributions). Once deleted, it is
// not found, by its owner either, and deleting it again is 404.
func TestDeleteCampaignREST(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		e := newImageEnv(t, dsn, 0)
		_, toks := e.users("alice", "bob")
		alice, bob := toks[0], toks[1]
		funded := e.activeCampaign(alice, "Funded")
		e.contribute(bob, funded, "5.00")
		draft := e.campaign(alice, map[string]any{"title": "Draft", "goal_amount": "10.00"}).id()
		c := e.activeCampaign(alice, "Doomed")
		png := mediatest.PNG(t, 8, 8)
		u := e.form("POST", cp(c, "updates"), alice, []mediatest.Part{text("title", "Week 1"), text("content", "c"), file(png, "a.png")})
		if u.Status != http.StatusCreated {
			t.Fatalf("post an update: %d %s", u.Status, u.Body)
		}
		image := str(u.JSON, "image")
		comment := e.must(http.StatusCreated, "POST", cp(c, "comments"), bob, map[string]any{"content": "Go!"}).id()

		wantProblem(t, e.do("DELETE", cp(c), "", nil), http.StatusUnauthorized, "not_authenticated")
		wantProblem(t, e.do("DELETE", cp(c), bob, nil), http.StatusForbidden, "permission_denied")
		wantProblem(t, e.do("DELETE", cp(draft), bob, nil), http.StatusNotFound, "not_found")
		wantProblem(t, e.do("DELETE", cp(999999), alice, nil), http.StatusNotFound, "not_found")
		r := e.do("DELETE", cp(funded), alice, nil)
		wantProblem(t, r, http.StatusConflict, "has_contributions")
		if d := str(r.JSON, "detail"); d != "a campaign with contributions cannot be deleted; close it instead" {
			t.Errorf("detail %q", d)
		}
		e.must(http.StatusOK, "GET", cp(funded), "", nil)
		e.must(http.StatusOK, "GET", cp(c), "", nil)

		if r := e.must(http.StatusNoContent, "DELETE", cp(c), alice, nil); len(r.Body) != 0 {
			t.Errorf("204 with a body: %q", r.Body)
		}
		for _, path := range []string{cp(c), cp(c, "updates"), cp(c, "comments", comment), cp(c, "contributions")} {
			for who, tok := range map[string]string{"alice": alice, "bob": bob} {
				t.Run(who+" GET "+path, func(t *testing.T) {
					wantProblem(t, e.on(t).do("GET", path, tok, nil), http.StatusNotFound, "not_found")
				})
			}
		}
		wantProblem(t, e.do("DELETE", cp(c), alice, nil), http.StatusNotFound, "not_found")
		wantProblem(t, e.do("PATCH", cp(c), alice, map[string]any{"title": "Back"}), http.StatusNotFound, "not_found")
		e.gone(image)
		l := e.must(http.StatusOK, "GET", "/api/campaigns/", alice, nil)
		want(t, "alice's campaigns", fmt.Sprint(ids(l)), fmt.Sprint([]int64{draft, funded}))
		want(t, "count", num(l.JSON, "count"), 2)

		// Her draft goes the same way.
		e.must(http.StatusNoContent, "DELETE", cp(draft), alice, nil)
		wantProblem(t, e.do("GET", cp(draft), alice, nil), http.StatusNotFound, "not_found")
	})
}

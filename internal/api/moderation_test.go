package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// Comments are removed through REST by their author (DELETE) or the
// campaign's owner (POST …/hide/), and reported once per user; the owner
// reads the reports. Every refusal answers its problem and changes nothing.
func TestCommentModeration(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, e *env) {
		_, toks := e.users("owner", "author", "reader", "stranger")
		owner, author, reader, stranger := toks[0], toks[1], toks[2], toks[3]
		c := e.activeCampaign(owner, "Moderated")
		other := e.activeCampaign(stranger, "Elsewhere")
		post := func(tok, content string) int64 {
			return e.must(http.StatusCreated, "POST", cp(c, "comments"), tok, map[string]any{"content": content}).id()
		}
		first, second, third := post(author, "first"), post(author, "second"), post(reader, "third")
		ownerComment := post(owner, "from the owner")
		comment := func(id int64, sub ...any) string { return cp(c, append([]any{"comments", id}, sub...)...) }

		t.Run("refusals", func(t *testing.T) {
			e := e.on(t)
			// Deleting another's comment: a reader, the campaign's owner.
			wantProblem(t, e.do("DELETE", comment(first), reader, nil), http.StatusForbidden, "permission_denied")
			wantProblem(t, e.do("DELETE", comment(first), owner, nil), http.StatusForbidden, "permission_denied")
			// Hiding: only the campaign's owner, not the author, nor anyone else.
			wantProblem(t, e.do("POST", comment(first, "hide"), author, nil), http.StatusForbidden, "permission_denied")
			wantProblem(t, e.do("POST", comment(ownerComment, "hide"), reader, nil), http.StatusForbidden, "permission_denied")
			wantProblem(t, e.do("DELETE", comment(first), "", nil), http.StatusUnauthorized, "not_authenticated")
			wantProblem(t, e.do("POST", comment(first, "hide"), "", nil), http.StatusUnauthorized, "not_authenticated")
			wantProblem(t, e.do("POST", comment(first, "report"), "", map[string]any{}), http.StatusUnauthorized, "not_authenticated")
			// Ids that do not exist, or not under this campaign.
			wantProblem(t, e.do("DELETE", comment(third+1000), author, nil), http.StatusNotFound, "not_found")
			wantProblem(t, e.do("POST", comment(third+1000, "hide"), owner, nil), http.StatusNotFound, "not_found")
			wantProblem(t, e.do("POST", comment(third+1000, "report"), reader, map[string]any{}), http.StatusNotFound, "not_found")
			wantProblem(t, e.do("DELETE", cp(c+1000, "comments", first), author, nil), http.StatusNotFound, "not_found")
			wantProblem(t, e.do("GET", cp(c+1000, "reports"), owner, nil), http.StatusNotFound, "not_found")
			wantProblem(t, e.do("POST", cp(other, "comments", first, "hide"), stranger, nil), http.StatusNotFound, "not_found")
			wantProblem(t, e.do("DELETE", "/api/campaigns/1/comments/01/", author, nil), http.StatusNotFound, "not_found")
			// Reports: not one's own, a reason within bounds, JSON only.
			wantProblem(t, e.do("POST", comment(first, "report"), author, map[string]any{}), http.StatusForbidden, "permission_denied")
			wantOnlyFieldError(t, e.do("POST", comment(first, "report"), reader, map[string]any{"reason": strings.Repeat("x", 501)}), "reason", "500")
			wantOnlyFieldError(t, e.do("POST", comment(first, "report"), reader, map[string]any{"reason": "x", "severity": 9}), "severity", "unknown field")
			wantProblem(t, e.raw("POST", comment(first, "report"), reader, "text/plain", strings.NewReader(`{}`)), http.StatusUnsupportedMediaType, "unsupported_media_type")
			// The reports are the owner's.
			wantProblem(t, e.do("GET", cp(c, "reports"), reader, nil), http.StatusForbidden, "permission_denied")
			wantProblem(t, e.do("GET", cp(c, "reports"), "", nil), http.StatusUnauthorized, "not_authenticated")
			want(t, "comments after the refusals", e.count(cp(c, "comments")), 4)
			want(t, "reports after the refusals", num(e.must(http.StatusOK, "GET", cp(c, "reports"), owner, nil).JSON, "count"), 0)
		})

		t.Run("reports", func(t *testing.T) {
			e := e.on(t)
			r := e.must(http.StatusCreated, "POST", comment(first, "report"), reader, map[string]any{"reason": " Spam "})
			wantKeys(t, r.JSON, "comment", "campaign", "reason", "created_at")
			want(t, "comment", num(r.JSON, "comment"), first)
			want(t, "campaign", num(r.JSON, "campaign"), c)
			want(t, "reason", str(r.JSON, "reason"), "Spam")
			wantTime(t, "created_at", r.JSON["created_at"])
			// Reporting twice: 409, whatever the reason.
			wantProblem(t, e.do("POST", comment(first, "report"), reader, map[string]any{"reason": "again"}), http.StatusConflict, "conflict")
			e.must(http.StatusCreated, "POST", comment(second, "report"), stranger, map[string]any{})
			e.must(http.StatusCreated, "POST", comment(first, "report"), stranger, map[string]any{"reason": "Rude"})

			l := e.must(http.StatusOK, "GET", cp(c, "reports"), owner, nil)
			want(t, "reported comments", num(l.JSON, "count"), 2)
			items := list(l.JSON, "results")
			wantKeys(t, items[0], "comment", "reports_count", "last_reported_at", "reasons")
			want(t, "most recently reported first", num(items[0], "comment", "id"), first)
			want(t, "its content", str(items[0], "comment", "content"), "first")
			want(t, "its reports", num(items[0], "reports_count"), 2)
			want(t, "its reasons", fmt.Sprint(get(items[0], "reasons")), "[Rude Spam]")
			want(t, "then", num(items[1], "comment", "id"), second)
			want(t, "without a reason", fmt.Sprint(get(items[1], "reasons")), "[]")
		})

		t.Run("removals", func(t *testing.T) {
			e := e.on(t)
			// The author deletes their own comment.
			r := e.must(http.StatusNoContent, "DELETE", comment(first), author, nil)
			if len(r.Body) != 0 {
				t.Errorf("204 with a body: %s", r.Body)
			}
			wantProblem(t, e.do("GET", comment(first), "", nil), http.StatusNotFound, "not_found")
			wantProblem(t, e.do("PATCH", comment(first), author, map[string]any{"content": "back"}), http.StatusNotFound, "not_found")
			// Again, or hidden after: it is not there any more.
			wantProblem(t, e.do("DELETE", comment(first), author, nil), http.StatusNotFound, "not_found")
			wantProblem(t, e.do("POST", comment(first, "hide"), owner, nil), http.StatusNotFound, "not_found")
			// Reporting a removed comment.
			wantProblem(t, e.do("POST", comment(first, "report"), owner, map[string]any{}), http.StatusNotFound, "not_found")

			// The owner hides another's comment, with an Idempotency-Key: a
			// retry gets the same answer and changes nothing.
			h := e.doKey("POST", comment(second, "hide"), owner, nil, "hide-1")
			if h.Status != http.StatusNoContent || replayed(h) {
				t.Fatalf("hide: %d %s (replayed %v)", h.Status, h.Body, replayed(h))
			}
			h = e.doKey("POST", comment(second, "hide"), owner, nil, "hide-1")
			if h.Status != http.StatusNoContent || !replayed(h) {
				t.Errorf("hide sent again: %d %s (replayed %v); want the first answer replayed", h.Status, h.Body, replayed(h))
			}
			// The owner deletes their own comment too.
			e.must(http.StatusNoContent, "DELETE", comment(ownerComment), owner, nil)

			l := e.must(http.StatusOK, "GET", cp(c, "comments"), "", nil)
			want(t, "comments left", fmt.Sprint(ids(l)), fmt.Sprint([]int64{third}))
			want(t, "count", num(l.JSON, "count"), 1)
			d := e.must(http.StatusOK, "GET", cp(c), "", nil)
			want(t, "detail's count", num(d.JSON, "comments_count"), 1)
			if n := len(list(d.JSON, "comments")); n != 1 {
				t.Errorf("detail lists %d comments: %s", n, d.Body)
			}
			if strings.Contains(string(d.Body), `"first"`) || strings.Contains(string(d.Body), `"second"`) {
				t.Errorf("the detail still holds a removed comment: %s", d.Body)
			}
			// Removed comments leave the reports.
			want(t, "reports after the removals", num(e.must(http.StatusOK, "GET", cp(c, "reports"), owner, nil).JSON, "count"), 0)
		})
	})
}

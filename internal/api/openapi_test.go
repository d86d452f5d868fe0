package api_test

import (
	"bytes"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/media/mediatest"
	"github.com/heraldhq/herald/internal/testenv"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// specChecker validates real responses against the OpenAPI document that
// the server itself serves at /api/schema/.
type specChecker struct {
	t        *testing.T
	doc      map[string]any
	compiler *jsonschema.Compiler
	ops      map[string]*regexp.Regexp // "GET /api/campaigns/{id}/" → path matcher
	seen     map[string]bool
}

func newSpecChecker(t *testing.T, e *env) *specChecker {
	r := e.must(http.StatusOK, "GET", "/api/schema/", "", nil)
	raw, err := jsonschema.UnmarshalJSON(bytes.NewReader(r.Body))
	if err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("file:///openapi.json", raw); err != nil {
		t.Fatal(err)
	}
	sc := &specChecker{t: t, doc: r.JSON, compiler: c, ops: map[string]*regexp.Regexp{}, seen: map[string]bool{}}
	if v := r.JSON["openapi"]; v != "3.1.0" {
		t.Fatalf("openapi version %v", v)
	}
	for path, item := range r.JSON["paths"].(map[string]any) {
		re := regexp.MustCompile("^" + regexp.MustCompile(`\\\{\w+\\\}`).ReplaceAllString(regexp.QuoteMeta(path), `[^/]+`) + "$")
		for method := range item.(map[string]any) {
			sc.ops[strings.ToUpper(method)+" "+path] = re
		}
	}
	return sc
}

func pointer(parts ...string) string {
	for i, p := range parts {
		parts[i] = strings.NewReplacer("~", "~0", "/", "~1").Replace(p)
	}
	return "file:///openapi.json#/" + strings.Join(parts, "/")
}

// check finds the documented operation for a request that was really served
// and validates the answer's status and body against it.
func (sc *specChecker) check(method, path string, r resp) {
	sc.t.Helper()
	path, _, _ = strings.Cut(path, "?")
	var op, tmpl string
	for key, re := range sc.ops {
		m, p, _ := strings.Cut(key, " ")
		if m == method && re.MatchString(path) && (tmpl == "" || len(p) < len(tmpl)) {
			op, tmpl = key, p
		}
	}
	if op == "" {
		sc.t.Errorf("%s %s answered %d but is not in the OpenAPI document", method, path, r.Status)
		return
	}
	sc.seen[op] = true
	status := fmt.Sprint(r.Status)
	responses := sc.doc["paths"].(map[string]any)[tmpl].(map[string]any)[strings.ToLower(method)].(map[string]any)["responses"].(map[string]any)
	if _, ok := responses[status]; !ok {
		sc.t.Errorf("%s %s answered %d, which %s does not document: %s", method, path, r.Status, op, r.Body)
		return
	}
	var loc string
	if r.Status >= 400 {
		loc = pointer("components", "schemas", "Problem")
	} else if ct := responses[status].(map[string]any)["content"]; ct != nil {
		loc = pointer("paths", tmpl, strings.ToLower(method), "responses", status, "content", "application/json", "schema")
	} else {
		return
	}
	sch, err := sc.compiler.Compile(loc)
	if err != nil {
		sc.t.Fatalf("compile %s: %v", loc, err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(r.Body))
	if err != nil {
		sc.t.Errorf("%s %s: body is not JSON: %s", method, path, r.Body)
		return
	}
	if err := sch.Validate(inst); err != nil {
		sc.t.Errorf("%s %s (%d): body does not match the document: %v\n%s", method, path, r.Status, err, r.Body)
	}
}

// The OpenAPI document describes the real routes: a walk through every
// operation finds each one served, with every status and body it answers
// documented and matching its schema, and no served route left out.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	forEachDB(t, func(t *testing.T, e *env) {
		sc := newSpecChecker(t, e)
		call := func(want int, method, path, token string, body any) resp {
			t.Helper()
			r := e.must(want, method, path, token, body)
			sc.check(method, path, r)
			return r
		}
		owner, ownerTok := e.user("owner")
		_, fanTok := e.user("fan")
		_ = owner
		call(201, "POST", "/api/auth/register/", "", map[string]string{"username": "third", "password": "a long password"})
		call(400, "POST", "/api/auth/register/", "", map[string]string{"username": "bad name!", "password": "x"})
		tok := call(200, "POST", "/api/auth/token/", "", map[string]string{"username": "third", "password": "a long password"})
		call(401, "POST", "/api/auth/token/", "", map[string]string{"username": "third", "password": "wrong password"})
		call(200, "POST", "/api/auth/token/refresh/", "", map[string]string{"refresh": tok.JSON["refresh"].(string)})
		call(401, "POST", "/api/auth/token/refresh/", "", map[string]string{"refresh": "nope"})
		call(200, "GET", "/api/auth/session/", "", nil)
		call(200, "GET", "/api/auth/session/", ownerTok, nil)
		call(200, "POST", "/api/auth/session/", "", map[string]string{"username": "third", "password": "a long password"})
		call(401, "POST", "/api/auth/session/refresh/", "", nil)
		call(204, "DELETE", "/api/auth/session/", "", nil)
		call(201, "POST", "/api/ws-ticket/", ownerTok, nil)
		call(401, "POST", "/api/ws-ticket/", "", nil)
		call(200, "GET", "/api/auth/me/", ownerTok, nil)
		call(403, "GET", "/api/ops/", ownerTok, nil) // no administrators configured
		call(401, "GET", "/api/auth/me/", "", nil)

		c := call(201, "POST", "/api/campaigns/", ownerTok, map[string]any{"title": "Kiosk", "goal_amount": "500.00", "status": "active"})
		cid := c.id()
		cp := fmt.Sprintf("/api/campaigns/%d/", cid)
		call(200, "GET", "/api/campaigns/", "", nil)
		call(400, "GET", "/api/campaigns/?status=nope", "", nil)
		call(200, "PATCH", cp, ownerTok, map[string]any{"description": "Solar"})
		call(403, "PATCH", cp, fanTok, map[string]any{"description": "Mine"})
		call(404, "GET", "/api/campaigns/999999/", "", nil)

		x := call(201, "POST", cp+"contributions/", fanTok, map[string]any{"amount": "25.50"})
		call(200, "GET", cp+"contributions/", "", nil)
		call(200, "GET", fmt.Sprintf("%scontributions/%d/", cp, x.id()), "", nil)
		call(400, "POST", cp+"contributions/", fanTok, map[string]any{"amount": "1.234"})
		u := call(201, "POST", cp+"updates/", ownerTok, map[string]any{"title": "News", "content": "Body", "image": nil})
		form := func(want int, method, path string, parts ...mediatest.Part) {
			t.Helper()
			r := e.form(method, path, ownerTok, parts)
			if r.Status != want {
				t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, want, r.Body)
			}
			sc.check(method, path, r)
		}
		form(201, "POST", cp+"updates/", text("title", "Pic"), text("content", "Body"), file(mediatest.PNG(t, 4, 4), "a.png"))
		form(200, "PATCH", fmt.Sprintf("%supdates/%d/", cp, u.id()), file(mediatest.GIF(t, 4, 4, 1), "a.gif"))
		form(400, "POST", cp+"updates/", text("title", "Pic"), text("content", "Body"), file([]byte("not an image"), "a.png"))
		sc.check("POST", cp+"updates/", e.send("POST", cp+"updates/", ownerTok, "text/plain", []byte("x")))
		call(200, "GET", cp+"updates/", "", nil)
		call(200, "GET", fmt.Sprintf("%supdates/%d/", cp, u.id()), "", nil)
		call(200, "PATCH", fmt.Sprintf("%supdates/%d/", cp, u.id()), ownerTok, map[string]any{"title": "More news"})
		call(403, "POST", cp+"updates/", fanTok, map[string]any{"title": "News", "content": "Body"})
		cm := call(201, "POST", cp+"comments/", fanTok, map[string]any{"content": "Great"})
		call(200, "GET", cp+"comments/", "", nil)
		call(200, "GET", fmt.Sprintf("%scomments/%d/", cp, cm.id()), "", nil)
		call(200, "PATCH", fmt.Sprintf("%scomments/%d/", cp, cm.id()), fanTok, map[string]any{"content": "Greater"})
		call(201, "POST", fmt.Sprintf("%scomments/%d/report/", cp, cm.id()), ownerTok, map[string]any{"reason": "Spam"})
		call(409, "POST", fmt.Sprintf("%scomments/%d/report/", cp, cm.id()), ownerTok, map[string]any{})
		call(200, "GET", cp+"reports/", ownerTok, nil)
		call(403, "GET", cp+"reports/", fanTok, nil)
		call(403, "DELETE", fmt.Sprintf("%scomments/%d/", cp, cm.id()), ownerTok, nil)
		call(403, "POST", fmt.Sprintf("%scomments/%d/hide/", cp, cm.id()), fanTok, nil)
		hidden := call(201, "POST", cp+"comments/", fanTok, map[string]any{"content": "Spam"})
		call(204, "POST", fmt.Sprintf("%scomments/%d/hide/", cp, hidden.id()), ownerTok, nil)
		call(204, "DELETE", fmt.Sprintf("%scomments/%d/", cp, cm.id()), fanTok, nil)
		call(404, "DELETE", fmt.Sprintf("%scomments/%d/", cp, cm.id()), fanTok, nil)
		rl := call(201, "POST", cp+"releases/", ownerTok, map[string]any{"version": "1.0", "title": "One"})
		call(200, "GET", cp+"releases/", "", nil)
		call(200, "GET", fmt.Sprintf("%sreleases/%d/", cp, rl.id()), "", nil)
		call(200, "PATCH", fmt.Sprintf("%sreleases/%d/", cp, rl.id()), ownerTok, map[string]any{"notes": "Notes"})
		ms := call(201, "POST", cp+"milestones/", ownerTok, map[string]any{"title": "Half", "target_amount": "250.00", "due_date": "2030-01-31"})
		call(200, "GET", cp+"milestones/", "", nil)
		call(200, "GET", fmt.Sprintf("%smilestones/%d/", cp, ms.id()), "", nil)
		call(200, "PATCH", fmt.Sprintf("%smilestones/%d/", cp, ms.id()), ownerTok, map[string]any{"reached": true, "due_date": ""})
		call(200, "GET", cp, "", nil)
		call(409, "DELETE", cp, ownerTok, nil) // it has a contribution
		call(403, "DELETE", cp, fanTok, nil)
		gone := fmt.Sprintf("/api/campaigns/%d/", call(201, "POST", "/api/campaigns/", ownerTok, map[string]any{"title": "Gone", "goal_amount": "5.00"}).id())
		call(204, "DELETE", gone, ownerTok, nil)
		call(404, "DELETE", gone, ownerTok, nil)

		q := call(201, "POST", "/api/quests/", ownerTok, map[string]any{"title": "Translate"})
		qp := fmt.Sprintf("/api/quests/%d/", q.id())
		call(200, "GET", "/api/quests/", "", nil)
		call(200, "GET", qp, "", nil)
		call(200, "PATCH", qp, ownerTok, map[string]any{"description": "300 entries"})
		a := call(201, "POST", qp+"applications/", fanTok, map[string]any{"message": "Me"})
		call(409, "POST", qp+"applications/", fanTok, map[string]any{"message": "Me again"})
		call(200, "GET", qp+"applications/", ownerTok, nil)
		call(200, "GET", "/api/applications/", fanTok, nil)
		ap := fmt.Sprintf("/api/applications/%d/", a.id())
		call(200, "GET", ap, fanTok, nil)
		call(403, "PATCH", ap, fanTok, map[string]any{"status": "approved"})
		call(200, "PATCH", ap, ownerTok, map[string]any{"status": "approved"})

		runRelay(t, e) // a publish answers once the relay has numbered its events
		_, pubKey := newAPIKey(t, e.app.Platform().DB(), "campaign")
		pub := map[string]any{"group": "campaign_1", "type": "score", "data": map[string]any{"home": 1}}
		call(201, "POST", "/api/publish/", pubKey, pub)
		call(201, "POST", "/api/publish/", pubKey, map[string]any{"events": []any{pub, pub}})
		call(400, "POST", "/api/publish/", pubKey, map[string]any{"group": "campaign_1", "type": "Score", "data": map[string]any{}})
		call(401, "POST", "/api/publish/", "hk_unknown", pub)
		call(403, "POST", "/api/publish/", pubKey, map[string]any{"group": "quest_1", "type": "score", "data": map[string]any{}})

		var missing []string
		for op := range sc.ops {
			if !sc.seen[op] && op != "GET /api/schema/" {
				missing = append(missing, op)
			}
		}
		sort.Strings(missing)
		if len(missing) > 0 {
			t.Errorf("documented operations never reached in the walk (is each really served?): %v", missing)
		}
	})
}

// The publish body's schema takes one event or a batch, and neither an
// event without its fields, nor both forms, nor a batch over 100.
func TestOpenAPIPublishBody(t *testing.T) {
	e := newEnv(t, testenv.SQLite(t))
	r := e.must(http.StatusOK, "GET", "/api/schema/", "", nil)
	raw, err := jsonschema.UnmarshalJSON(bytes.NewReader(r.Body))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("file:///openapi.json", raw); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(pointer("paths", "/api/publish/", "post", "requestBody", "content", "application/json", "schema"))
	if err != nil {
		t.Fatal(err)
	}
	ev := `{"group":"campaign_1","type":"t","data":{"a":1}}`
	for body, valid := range map[string]bool{
		ev:                                   true,
		`{"events":[` + ev + `,` + ev + `]}`: true,
		`{"group":"campaign_1","type":"t"}`:  false,
		`{"group":"campaign_1","type":"t","data":[]}`: false,
		`{"group":"campaign_1","type":"T","data":{}}`: false,
		`{"events":[]}`: false,
		`{"events":[` + strings.Repeat(ev+",", 100) + ev + `]}`:             false,
		`{"group":"campaign_1","type":"t","data":{},"events":[` + ev + `]}`: false,
		`{"group":"campaign_1","type":"t","data":{},"ttl":1}`:               false,
	} {
		inst, err := jsonschema.UnmarshalJSON(strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if err := sch.Validate(inst); (err == nil) != valid {
			t.Errorf("%s: valid %v, want %v (%v)", clipBody(body), err == nil, valid, err)
		}
	}
}

func clipBody(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

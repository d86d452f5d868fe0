package api_test

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/testenv"
	"github.com/heraldhq/herald/internal/version"
)

// camelWords splits a schema name into its words: CampaignInput is
// Campaign and Input.
var camelWords = regexp.MustCompile(`[A-Z][a-z0-9]*|[a-z0-9]+`)

// No schema name repeats a word (CampaignInputInput), and every $ref names
// a schema the document has.
func TestOpenAPISchemaNames(t *testing.T) {
	e := newEnv(t, testenv.SQLite(t))
	doc := e.must(http.StatusOK, "GET", "/api/schema/", "", nil)
	schemas, _ := doc.JSON["components"].(map[string]any)["schemas"].(map[string]any)
	if len(schemas) < 10 {
		t.Fatalf("%d schemas", len(schemas))
	}
	for _, want := range []string{"CampaignInput", "Campaign", "UpdateInput", "UpdateFormInput", "PublishEventInput", "Problem"} {
		if schemas[want] == nil {
			t.Errorf("no schema %s", want)
		}
	}
	for name := range schemas {
		words := camelWords.FindAllString(name, -1)
		if strings.Join(words, "") != name {
			t.Errorf("schema name %q is not CamelCase words", name)
		}
		for i := 1; i < len(words); i++ {
			if words[i] == words[i-1] {
				t.Errorf("schema name %q repeats %q", name, words[i])
			}
		}
	}
	for _, ref := range regexp.MustCompile(`"\$ref":"#/components/schemas/([^"]+)"`).FindAllStringSubmatch(string(doc.Body), -1) {
		if schemas[ref[1]] == nil {
			t.Errorf("$ref to a missing schema %s", ref[1])
		}
	}
}

// An administrator's snapshot says which herald is running, as the
// document describes it.
func TestOpsReportsVersion(t *testing.T) {
	cfg := testConfig(t, testenv.SQLite(t))
	cfg.Admins = []string{"boss"}
	e := newEnvConfig(t, cfg)
	sc := newSpecChecker(t, e)
	_, tok := e.user("boss")
	r := e.must(http.StatusOK, "GET", "/api/ops/", tok, nil)
	sc.check("GET", "/api/ops/", r)
	v, _ := r.JSON["version"].(map[string]any)
	want := version.Get()
	if v["version"] != want.Version || v["commit"] != want.Commit || v["commit_time"] != want.Time || v["modified"] != want.Modified {
		t.Errorf("version %v, want %+v", r.JSON["version"], want)
	}
	ops, _ := sc.doc["components"].(map[string]any)["schemas"].(map[string]any)["OpsStats"].(map[string]any)
	props, _ := ops["properties"].(map[string]any)
	if ref, _ := props["version"].(map[string]any); ref["$ref"] != "#/components/schemas/Build" || !slices.Contains(ops["required"].([]any), any("version")) {
		t.Errorf("OpsStats documents no required version: %v", ops)
	}
}

package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testenv"
)

// fence is one fenced code block of a Markdown document.
type fence struct{ lang, body string }

// examples returns the fenced blocks of docs/publish.md's Examples
// section, in order.
func examples(t *testing.T) []fence {
	t.Helper()
	doc, err := os.ReadFile("../../docs/publish.md")
	if err != nil {
		t.Fatal(err)
	}
	var out []fence
	var cur *fence
	in := false
	for _, line := range strings.Split(string(doc), "\n") {
		switch {
		case strings.HasPrefix(line, "## "):
			in = line == "## Examples"
		case !in:
		case cur != nil && line == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.body += line + "\n"
		case strings.HasPrefix(line, "```"):
			cur = &fence{lang: strings.TrimPrefix(line, "```")}
		}
	}
	return out
}

// needTool returns the path of the program name, which the examples run.
// Where it is missing the test is skipped, saying what to install, except
// in CI (CI=true), where .ci/run installs it: there the test fails.
func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		msg := fmt.Sprintf("the publish.md examples need %s: apt-get install -y %s", name, pkg)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return path
}

// exampleHerald starts herald with campaign 1, which the examples publish
// to, and returns the environment they read and a v2 client of the room.
func exampleHerald(t *testing.T) ([]string, *testenv.WSClient) {
	t.Helper()
	h := testenv.StartHerald(t, testenv.SQLite(t))
	post(t, h.Base+"/api/auth/register/", "", map[string]string{"username": "owner", "password": "correct horse owner"})
	tok := post(t, h.Base+"/api/auth/token/", "", map[string]string{"username": "owner", "password": "correct horse owner"})
	access, _ := tok.JSON["access"].(string)
	if c := post(t, h.Base+"/api/campaigns/", access, map[string]any{"title": "Live", "goal_amount": "10.00", "status": "active"}); c.Status != http.StatusCreated || c.id() != 1 {
		t.Fatalf("campaign: %d %s; want campaign 1", c.Status, c.Body)
	}
	_, key := newAPIKey(t, h.App.Platform().DB(), "campaign")
	ws := testenv.MustDialWS(t, h.WS+"/ws/campaign/1/?v=2", nil)
	ws.Ignore = []string{"presence"}
	if m := ws.NextEvent(deliveryWait); m.Type != "campaign_data" {
		t.Fatalf("first message %+v", m)
	}
	if m := ws.NextEvent(deliveryWait); m.Type != "subscribed" {
		t.Fatalf("second message %+v", m)
	}
	return append(os.Environ(), "HERALD_URL="+h.Base, "HERALD_API_KEY="+key), ws
}

// runExample runs an example's program with env and returns what it
// printed.
func runExample(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("%s: %v\n%s%s", name, err, out, stderr)
	}
	return string(out)
}

var (
	epochs  = regexp.MustCompile(`[0-9a-f]{16}`)
	numbers = regexp.MustCompile(`[0-9]+`)
)

// shape is text with its epochs and numbers blanked, to compare an answer
// with the one a document shows.
func shape(s string) string {
	return numbers.ReplaceAllString(epochs.ReplaceAllString(strings.TrimSpace(s), "E"), "N")
}

// wantEvent reads the next event of ws, which must be typ with data at
// offset.
func wantEvent(t *testing.T, ws *testenv.WSClient, typ, data string, offset uint64) {
	t.Helper()
	if m := ws.NextEvent(deliveryWait); m.Type != typ || string(m.Data) != data || m.Group != "campaign_1" || m.Offset != offset {
		t.Fatalf("the room got %s %s in %s at %d; want %s %s at %d", m.Type, m.Data, m.Group, m.Offset, typ, data, offset)
	}
}

// The Python example of docs/publish.md, run as written against herald,
// publishes its batch: it prints the answer's positions, shaped as the
// page shows them, and a client of the room receives both events there.
func TestPublishDocPython(t *testing.T) {
	python := needTool(t, "/usr/bin/python3", "python3")
	var code string
	for _, f := range examples(t) {
		if f.lang == "python" {
			code = f.body
		}
	}
	if code == "" {
		t.Fatal("docs/publish.md has no Python example")
	}
	env, ws := exampleHerald(t)
	out := runExample(t, env, python, "-c", code)
	comment := code[strings.LastIndex(code, "\n# ")+3:]
	if shape(out) != shape(comment) {
		t.Errorf("the example printed\n%s\nthe page shows\n%s", out, comment)
	}
	m := regexp.MustCompile(`'offset': ([0-9]+)`).FindAllStringSubmatch(out, -1)
	if len(m) != 2 {
		t.Fatalf("printed %q; want two positions", out)
	}
	first, _ := strconv.ParseUint(m[0][1], 10, 64)
	second, _ := strconv.ParseUint(m[1][1], 10, 64)
	wantEvent(t, ws, "score.update", `{"home":2,"away":1}`, first)
	wantEvent(t, ws, "match.end", `{"winner":"home"}`, second)
}

// The curl example of docs/publish.md, run as written against herald,
// publishes its event: it prints the answer the page shows, and a client
// of the room receives the event at the answered position.
func TestPublishDocCurl(t *testing.T) {
	sh := needTool(t, "sh", "dash")
	needTool(t, "curl", "curl")
	needTool(t, "uuidgen", "uuid-runtime")
	var code, answer string
	blocks := examples(t)
	for i, f := range blocks {
		if f.lang == "sh" && strings.HasPrefix(f.body, "curl ") && i+1 < len(blocks) {
			code, answer = f.body, blocks[i+1].body
		}
	}
	if code == "" {
		t.Fatal("docs/publish.md has no curl example followed by its answer")
	}
	env, ws := exampleHerald(t)
	out := runExample(t, env, sh, "-c", code)
	if shape(out) != shape(answer) {
		t.Errorf("curl printed\n%s\nthe page shows\n%s", out, answer)
	}
	var res struct{ Events []struct{ Offset uint64 } }
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Events) != 1 {
		t.Fatalf("curl printed %q; want one position", out)
	}
	wantEvent(t, ws, "score.update", `{"home":2,"away":1}`, res.Events[0].Offset)
}

package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/apikey"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/testenv"
)

// herald apikey create prints the key once and alone on standard output,
// list shows every key with its scopes and state but never a secret, and
// revoke (with the id before or after the flags) makes the key unusable.
func TestAPIKeyCommand(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		cmd := func(args ...string) (string, string, error) {
			var out, errOut bytes.Buffer
			err := run(ctx, append([]string{"apikey"}, args...), &out, &errOut, env(map[string]string{"HERALD_DB": dsn}))
			return out.String(), errOut.String(), err
		}
		out, errOut, err := cmd("create", "--name", "billing backend", "--scope", "campaign, user_5")
		if err != nil {
			t.Fatalf("create: %v\n%s", err, errOut)
		}
		token := strings.TrimSpace(out)
		id, secret, ok := apikey.ParseToken(token)
		if !ok || strings.Count(out, "\n") != 1 {
			t.Fatalf("create printed %q; want the key alone", out)
		}
		if !strings.Contains(errOut, id) || !strings.Contains(errOut, "only time") {
			t.Errorf("create said %q", errOut)
		}
		if _, _, err := cmd("create", "--db", dsn, "--name", "quests", "--scope", "quest"); err != nil {
			t.Fatal(err)
		}

		db, err := store.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		keys := apikey.New(db, nil, nil)
		k, err := keys.Authenticate(ctx, token)
		if err != nil || k.Name != "billing backend" || strings.Join(k.Scopes, ",") != "campaign,user_5" {
			t.Fatalf("the created key: %+v, %v", k, err)
		}

		out, _, err = cmd("list")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, secret) || strings.Contains(out, token) {
			t.Errorf("list shows a secret:\n%s", out)
		}
		row := regexp.MustCompile(`(?m)^` + id + `\s+billing backend\s+campaign,user_5\s+\S+Z\s+\S+Z\s+-$`)
		if !row.MatchString(out) || !strings.Contains(out, "quests") {
			t.Errorf("list:\n%s", out)
		}

		if out, _, err = cmd("revoke", id, "--db", dsn); err != nil || !strings.Contains(out, "revoked") {
			t.Fatalf("revoke: %q, %v", out, err)
		}
		if _, err := keys.Authenticate(ctx, token); !errors.Is(err, apikey.ErrNotValid) {
			t.Errorf("a revoked key authenticates: %v", err)
		}
		out, _, _ = cmd("list")
		if !regexp.MustCompile(`(?m)^` + id + `.*\dZ$`).MatchString(out) {
			t.Errorf("list does not show the revocation:\n%s", out)
		}
		if _, _, err := cmd("revoke", "0123456789abcdef"); err == nil || !strings.Contains(err.Error(), "no API key") {
			t.Errorf("revoking an unknown id: %v", err)
		}
	})
}

// Bad uses are refused with what is wrong, and nothing is stored.
func TestAPIKeyCommandRefuses(t *testing.T) {
	dsn := testenv.SQLite(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "create, list or revoke"},
		{[]string{"rotate"}, "unknown command"},
		{[]string{"create", "--scope", "campaign"}, "--name"},
		{[]string{"create", "--name", "x"}, "--scope"},
		{[]string{"create", "--name", "x", "--scope", "lobby"}, `scope "lobby"`},
		{[]string{"create", "--name", "x", "--scope", "campaign_01"}, `scope "campaign_01"`},
		{[]string{"create", "--name", "x\x1b[2J", "--scope", "campaign"}, "control characters"},
		{[]string{"create", "--name", "x", "--scope", "campaign", "extra"}, "argument"},
		{[]string{"revoke"}, "argument"},
		{[]string{"revoke", "a", "b"}, "argument"},
		{[]string{"list", "--db", "mysql://x"}, "--db"},
	} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), append([]string{"apikey"}, c.args...), &out, &errOut, env(map[string]string{"HERALD_DB": dsn}))
		if err == nil || !strings.Contains(err.Error()+errOut.String(), c.want) {
			t.Errorf("apikey %q: %v (stderr %q); want an error naming %q", c.args, err, errOut.String(), c.want)
		}
	}
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"apikey", "list"}, &out, &errOut, env(map[string]string{"HERALD_DB": dsn})); err != nil {
		t.Fatal(err)
	}
	if strings.Count(strings.TrimSpace(out.String()), "\n") != 0 {
		t.Errorf("refused keys were stored:\n%s", out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"help", "apikey"}, &out, &out, env(nil)); !errors.Is(err, flag.ErrHelp) || !strings.Contains(out.String(), "--scope") {
		t.Errorf("help apikey: %v\n%s", err, out.String())
	}
}

// The bench's command line, written to results.json, never holds the key.
func TestBenchRedactsTheKey(t *testing.T) {
	for _, c := range []struct{ in, want []string }{
		{[]string{"publish", "--api-key", "hk_secret", "--conns", "5"}, []string{"publish", "--api-key", "hk_…", "--conns", "5"}},
		{[]string{"publish", "-api-key=hk_secret"}, []string{"publish", "-api-key=hk_…"}},
		{[]string{"publish", "--api-key"}, []string{"publish", "--api-key"}},
		{[]string{"fanout", "--rate", "5"}, []string{"fanout", "--rate", "5"}},
	} {
		if got := redactKey(c.in); strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("redactKey(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// The config file's namespaces are scopes: a key for chat is granted with
// --config naming the file, and refused without it.
func TestAPIKeyScopesFromConfig(t *testing.T) {
	dsn := testenv.SQLite(t)
	file := filepath.Join(t.TempDir(), "herald.toml")
	if err := os.WriteFile(file, []byte("[namespaces.chat]\nsubscribe = \"user\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	e := env(map[string]string{"HERALD_DB": dsn})
	if err := run(context.Background(), []string{"apikey", "create", "--name", "chat", "--scope", "chat,chat:lobby"}, &out, &errOut, e); err == nil || !strings.Contains(err.Error(), `scope "chat"`) {
		t.Fatalf("without the config file: %v", err)
	}
	if err := run(context.Background(), []string{"apikey", "create", "--config", file, "--name", "chat", "--scope", "chat,chat:lobby"}, &out, &errOut, e); err != nil {
		t.Fatalf("with the config file: %v\n%s", err, errOut.String())
	}
}

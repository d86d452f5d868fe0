package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/groups"
)

// writeConfig writes a config file into a fresh directory and returns its path.
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "herald.toml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConfigFileValues(t *testing.T) {
	path := writeConfig(t, `
addr = "127.0.0.1:9000"
layer = "redis://r:6379/1"
db-max-conns = 8
max-conns-per-addr = -1
demo = false
trust-proxy = true
access-ttl = "30m"
allowed-origins = ["https://a.example", "https://b.example"]
admins = "alice, bob"
connect-url = "https://app.example/herald/connect?v=2"
connect-timeout = "500ms"
app-token-secret = "0123456789abcdef0123456789abcdef"
app-token-issuer = "https://app.example"
app-token-audience = "herald"
`)
	c, err := parseArgs(t, []string{"--config", path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:9000" || c.Layer != "redis://r:6379/1" || c.DBMaxConns != 8 || c.MaxConnsPerAddr != -1 ||
		c.Demo || !c.TrustProxy || c.AccessTTL != 30*time.Minute {
		t.Errorf("scalars: %+v", c)
	}
	if want := []string{"https://a.example", "https://b.example"}; !slices.Equal(c.AllowedOrigins, want) {
		t.Errorf("allowed-origins from an array: %q, want %q", c.AllowedOrigins, want)
	}
	if want := []string{"alice", "bob"}; !slices.Equal(c.Admins, want) {
		t.Errorf("admins from a string: %q, want %q", c.Admins, want)
	}
	if c.ConnectURL != "https://app.example/herald/connect?v=2" || c.ConnectTimeout != 500*time.Millisecond ||
		c.AppTokenSecret != "0123456789abcdef0123456789abcdef" || c.AppTokenIssuer != "https://app.example" || c.AppTokenAudience != "herald" {
		t.Errorf("app settings: %+v", c)
	}
	// Untouched flags keep their defaults.
	if c.RedisPrefix != "herald:" || c.RefreshTTL != 168*time.Hour || c.ConnectURL == "" {
		t.Errorf("defaults: %+v", c)
	}
}

func TestConfigFileDefaults(t *testing.T) {
	c, err := parseArgs(t, nil, nil)
	if err != nil || c.Namespaces != nil || c.ConnectURL != "" || c.ConnectTimeout != 2*time.Second ||
		c.AppTokenSecret != "" || c.AppTokenKey != "" || c.AppTokenKeyPEM != nil || c.AppTokenIssuer != "" || c.AppTokenAudience != "" {
		t.Fatalf("without a file: %+v, %v", c, err)
	}
}

// A flag beats its environment variable, which beats the file, which
// beats the default; HERALD_CONFIG names the file unless --config does.
func TestConfigFilePrecedence(t *testing.T) {
	path := writeConfig(t, `addr = ":1001"`)
	other := writeConfig(t, `addr = ":1002"`)
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, nil, ":8000"},
		{[]string{"--config", path}, nil, ":1001"},
		{nil, map[string]string{"HERALD_CONFIG": path}, ":1001"},
		{[]string{"--config", other}, map[string]string{"HERALD_CONFIG": path}, ":1002"},
		{[]string{"--config", path}, map[string]string{"HERALD_ADDR": ":2000"}, ":2000"},
		{[]string{"--config", path, "--addr", ":3000"}, map[string]string{"HERALD_ADDR": ":2000"}, ":3000"},
	} {
		c, err := parseArgs(t, tc.args, tc.env)
		if err != nil || c.Addr != tc.want {
			t.Errorf("%v %v: addr %q, want %q (%v)", tc.args, tc.env, c.Addr, tc.want, err)
		}
	}
}

func TestConfigFileNamespaces(t *testing.T) {
	path := writeConfig(t, `
[namespaces.orders]

[namespaces.chat]
separator = "_"
subscribe = "anonymous"
publish = "user"
history-size = 10000
history-ttl = "5m"
presence = true

[namespaces.feed]
subscribe = "user"
publish = "token"
`)
	c, err := parseArgs(t, []string{"--config", path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []groups.Namespace{
		{Name: "chat", Sep: '_', Subscribe: groups.Anyone, Publish: groups.SignedIn, HistorySize: 10000, HistoryAge: 5 * time.Minute, Presence: true},
		{Name: "feed", Sep: ':', Subscribe: groups.SignedIn, Publish: groups.TokenHolder, HistorySize: 1000, HistoryAge: 10 * time.Minute},
		{Name: "orders", Sep: ':', Subscribe: groups.TokenHolder, Publish: groups.Nobody, HistorySize: 1000, HistoryAge: 10 * time.Minute},
	}
	if !slices.Equal(c.Namespaces, want) {
		t.Errorf("namespaces:\n got %+v\nwant %+v", c.Namespaces, want)
	}
	r, err := groups.New(c.Namespaces)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Valid("chat_lobby"); err != nil {
		t.Errorf("chat_lobby: %v", err)
	}
}

// Every mistake in a file is an error naming the file, the key, and the
// line where the decoder knows it.
func TestConfigFileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, content string
		want          []string
	}{
		{"unknown key", "addr = \":1\"\nadress = \":2\"", []string{`unknown key "adress"`}},
		{"config key", `config = "other.toml"`, []string{`unknown key "config"`}},
		{"unknown table", "[server]\naddr = \":1\"", []string{`unknown key "server"`}},
		{"syntax", "addr = \":1\"\ndemo = \n", []string{"herald.toml:2:"}},
		{"duplicate key", "demo = true\ndemo = false", []string{"herald.toml:2:", "demo"}},
		{"table for a string", "demo = true\n[db]\npath = \"x\"", []string{"herald.toml:2: db: want a string, integer or boolean, found a table"}},
		{"array for a scalar", "\naddr = [\":1\"]", []string{"herald.toml:2: addr: want a string, integer or boolean, found an array"}},
		{"float", "access-ttl = 1.5", []string{"herald.toml:1: access-ttl:", "found a float"}},
		{"array of numbers", `admins = ["alice", 7]`, []string{"herald.toml:1: admins: want an array of strings, found an integer"}},
		{"bad flag value", `access-ttl = "forever"`, []string{`--access-ttl "forever"`}},
		{"unknown namespace key", "[namespaces.chat]\nhistory = 5", []string{`namespace "chat": unknown key "history"`}},
		{"namespace key case", "[namespaces.chat]\nPresence = true", []string{`namespace "chat": unknown key "Presence"`}},
		{"bad subscribe", "[namespaces.chat]\nsubscribe = \"everyone\"", []string{`namespace "chat": subscribe "everyone"`}},
		{"subscribe none", "[namespaces.chat]\nsubscribe = \"none\"", []string{`namespace "chat": subscribe "none"`}},
		{"bad publish", "[namespaces.chat]\npublish = \"admins\"", []string{`namespace "chat": publish "admins"`}},
		{"bad separator", "[namespaces.chat]\nseparator = \"/\"", []string{`namespace "chat": separator "/"`}},
		{"empty separator", "[namespaces.chat]\nseparator = \"\"", []string{`namespace "chat": separator ""`}},
		{"history-size 0", "[namespaces.chat]\nhistory-size = 0", []string{`namespace "chat": history-size 0`}},
		{"history-size too big", "[namespaces.chat]\nhistory-size = 10001", []string{`namespace "chat": history-size 10001`}},
		{"bad history-ttl", "[namespaces.chat]\nhistory-ttl = \"10\"", []string{`namespace "chat": history-ttl "10"`}},
		{"history-ttl 0", "[namespaces.chat]\nhistory-ttl = \"0s\"", []string{`namespace "chat": history-ttl "0s"`}},
		{"history-ttl too long", "[namespaces.chat]\nhistory-ttl = \"25h\"", []string{`namespace "chat": history-ttl "25h"`}},
		{"wrong namespace type", "[namespaces.chat]\n\nhistory-size = \"100\"", []string{"herald.toml:3: namespaces.chat.history-size: want an integer, found a string"}},
		{"namespace not a table", "[namespaces]\nchat = 5", []string{"herald.toml", "namespaces.chat"}},
		{"namespaces not a table", "namespaces = 5", []string{"herald.toml", "namespaces"}},
		{"reserved name", "[namespaces.campaign]", []string{`namespace "campaign": the name is herald's own`}},
		{"bad name", "[namespaces.Chat]", []string{`namespace "Chat"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, tc.content)
			_, err := parseArgs(t, []string{"--config", path}, nil)
			if err == nil {
				t.Fatalf("%q accepted", tc.content)
			}
			msg := err.Error()
			// Errors from the file name it; a bad flag value names the flag.
			if !strings.Contains(msg, path) && tc.name != "bad flag value" {
				t.Errorf("error does not name %s: %v", path, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
		})
	}
}

// Every bad namespace is reported, not only the first.
func TestConfigFileAllNamespaceErrors(t *testing.T) {
	path := writeConfig(t, "[namespaces.quest]\n[namespaces.a]\nseparator = \"-\"\n[namespaces.b]\nbogus = 1\n[namespaces.c]\npresence = \"yes\"\n")
	_, err := parseArgs(t, []string{"--config", path}, nil)
	for _, w := range []string{`namespace "quest"`, `namespace "a"`, `namespace "b"`, "herald.toml:7: namespaces.c.presence: want a boolean, found a string"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %s: %v", w, err)
		}
	}
}

func TestConfigFileUnreadable(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.toml")
	big := filepath.Join(t.TempDir(), "big.toml")
	// Valid TOML, a comment, just over the limit.
	if err := os.WriteFile(big, []byte("#"+strings.Repeat("x", maxConfigFile)), 0o600); err != nil {
		t.Fatal(err)
	}
	atLimit := filepath.Join(t.TempDir(), "limit.toml")
	if err := os.WriteFile(atLimit, []byte("#"+strings.Repeat("x", maxConfigFile-1)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{missing, missing},
		{t.TempDir(), "is a directory"},
		{big, big + ": larger than 1024 KiB"},
	} {
		if _, err := parseArgs(t, []string{"--config", tc.path}, nil); err == nil || !strings.Contains(err.Error(), "--config") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--config %s: %v, want an error with %q", tc.path, err, tc.want)
		}
	}
	if _, err := parseArgs(t, []string{"--config", atLimit}, nil); err != nil {
		t.Errorf("a file of exactly 1 MiB: %v", err)
	}
}

func TestConnectURL(t *testing.T) {
	for _, good := range []string{"http://app:8080/connect", "https://app.example/herald/connect?x=1", "https://[::1]:8443/c"} {
		c, err := parseArgs(t, []string{"--connect-url", good}, nil)
		if err != nil || c.ConnectURL != good {
			t.Errorf("%s: %q, %v", good, c.ConnectURL, err)
		}
	}
	for _, bad := range []string{
		"ftp://app/connect",
		"https:///connect",
		"http://:8080/connect",
		"/connect",
		"app.example/connect",
		"https:app.example",
		"https://user:pass@app.example/connect",
		"https://app.example/connect#x",
		"https://app.example/connect#",
		"https://app.example/%zz",
	} {
		if _, err := parseArgs(t, []string{"--connect-url", bad}, nil); err == nil || !strings.Contains(err.Error(), "--connect-url") {
			t.Errorf("%s accepted (%v)", bad, err)
		}
	}
	for _, bad := range []string{"99ms", "31s", "2", "soon"} {
		if _, err := parseArgs(t, []string{"--connect-timeout", bad}, nil); err == nil || !strings.Contains(err.Error(), "--connect-timeout") {
			t.Errorf("--connect-timeout %s accepted (%v)", bad, err)
		}
	}
	c, err := parseArgs(t, nil, map[string]string{"HERALD_CONNECT_TIMEOUT": "30s"})
	if err != nil || c.ConnectTimeout != 30*time.Second {
		t.Errorf("HERALD_CONNECT_TIMEOUT=30s: %v, %v", c.ConnectTimeout, err)
	}
}

func TestAppTokenFlags(t *testing.T) {
	if _, err := parseArgs(t, []string{"--app-token-secret", strings.Repeat("s", 31)}, nil); err == nil || !strings.Contains(err.Error(), "--app-token-secret") {
		t.Errorf("a 31-byte secret accepted (%v)", err)
	}
	c, err := parseArgs(t, nil, map[string]string{"HERALD_APP_TOKEN_SECRET": strings.Repeat("s", 32)})
	if err != nil || c.AppTokenSecret != strings.Repeat("s", 32) {
		t.Errorf("a 32-byte secret: %q, %v", c.AppTokenSecret, err)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "app.pem")
	pemData := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	if err := os.WriteFile(keyFile, pemData, 0o600); err != nil {
		t.Fatal(err)
	}
	path := writeConfig(t, "app-token-key = '"+keyFile+"'")
	c, err = parseArgs(t, []string{"--config", path}, nil)
	if err != nil || c.AppTokenKey != keyFile || string(c.AppTokenKeyPEM) != string(pemData) {
		t.Errorf("app-token-key from the file: %q, %q, %v", c.AppTokenKey, c.AppTokenKeyPEM, err)
	}

	notPEM := filepath.Join(dir, "key.txt")
	big := filepath.Join(dir, "big.pem")
	if err := os.WriteFile(notPEM, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(big, append(pemData, strings.Repeat("\n", maxKeyFile)...), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	for _, tc := range []struct{ path, want string }{
		{missing, missing},
		{dir, dir},
		{notPEM, "no PEM block"},
		{big, big + ": larger than 64 KiB"},
	} {
		if _, err := parseArgs(t, []string{"--app-token-key", tc.path}, nil); err == nil || !strings.Contains(err.Error(), "--app-token-key") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--app-token-key %s: %v, want an error with %q", tc.path, err, tc.want)
		}
	}
}

// The documentation's example file stays one herald accepts.
func TestExampleConfigFile(t *testing.T) {
	c, err := parseArgs(t, []string{"--config", filepath.Join("..", "..", "docs", "herald.example.toml")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Demo || len(c.AllowedOrigins) != 2 || c.ConnectURL == "" || len(c.Namespaces) != 2 {
		t.Errorf("example: %+v", c)
	}
	chat := groups.Namespace{Name: "chat", Sep: ':', Subscribe: groups.SignedIn, Publish: groups.SignedIn, HistorySize: 500, HistoryAge: 30 * time.Minute, Presence: true}
	if len(c.Namespaces) > 0 && c.Namespaces[0] != chat {
		t.Errorf("example's chat: %+v, want %+v", c.Namespaces[0], chat)
	}
}

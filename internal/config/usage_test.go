package config

import (
	"bytes"
	"encoding/pem"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// --help names each flag's value by its kind, and a boolean's by nothing,
// as the flag package does for its own booleans.
func TestPrintDefaults(t *testing.T) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	FlagSet(fs, func(string) string { return "" })
	var out bytes.Buffer
	fs.SetOutput(&out)
	PrintDefaults(fs)
	help := out.String()
	for _, line := range []string{
		"  -demo\n", "  -trust-proxy\n", "  -public-metrics\n", "  -redis-sharded\n",
		"  -addr addr\n", "  -admin-addr addr\n", "  -access-ttl duration\n", "  -shutdown-grace duration\n",
		"  -db-max-conns int\n", "  -max-image-bytes bytes\n", "  -publish-max-data bytes\n",
		"  -connect-url url\n", "  -channels-redis url\n", "  -config file\n", "  -db dsn\n",
	} {
		if !strings.Contains(help, line) {
			t.Errorf("--help lacks %q", line)
		}
	}
	// Every flag is listed, none as a bare "string" or "value" but the
	// two free texts, and with its default.
	flags := regexp.MustCompile(`(?m)^  -(\S+)(?: (\S+))?$`).FindAllStringSubmatch(help, -1)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if len(flags) != n {
		t.Errorf("%d flags in --help, want %d:\n%s", len(flags), n, help)
	}
	for _, f := range flags {
		if f[2] == "value" || f[2] == "string" && !strings.HasPrefix(f[1], "app-token-") {
			t.Errorf("-%s is shown taking a %q", f[1], f[2])
		}
	}
	for _, def := range []string{`(default ":8000")`, "(default 15m)", "(default true)", "(default 5242880)"} {
		if !strings.Contains(help, def) {
			t.Errorf("--help lacks %s", def)
		}
	}
	if strings.Contains(help, "(default false)") || strings.Contains(help, `(default "")`) {
		t.Errorf("--help shows zero defaults:\n%s", help)
	}
}

// A boolean flag stands alone or takes its value after =; the environment
// and the config file still set it.
func TestBooleanFlags(t *testing.T) {
	c, err := parseArgs(t, []string{"--trust-proxy", "--demo=false", "-public-metrics=true"}, nil)
	if err != nil || !c.TrustProxy || c.Demo || !c.PublicMetrics {
		t.Fatalf("flags: trust proxy %v, demo %v, public metrics %v, %v", c.TrustProxy, c.Demo, c.PublicMetrics, err)
	}
	c, err = parseArgs(t, nil, map[string]string{"HERALD_DEMO": "false", "HERALD_TRUST_PROXY": "1"})
	if err != nil || !c.TrustProxy || c.Demo {
		t.Fatalf("environment: trust proxy %v, demo %v, %v", c.TrustProxy, c.Demo, err)
	}
	path := writeConfig(t, "demo = false\ntrust-proxy = true\n")
	c, err = parseArgs(t, []string{"--config", path}, nil)
	if err != nil || !c.TrustProxy || c.Demo {
		t.Fatalf("config file: trust proxy %v, demo %v, %v", c.TrustProxy, c.Demo, err)
	}
	c, err = parseArgs(t, []string{"--config", path, "--demo"}, map[string]string{"HERALD_TRUST_PROXY": "false"})
	if err != nil || c.TrustProxy || !c.Demo {
		t.Fatalf("flag over environment over file: trust proxy %v, demo %v, %v", c.TrustProxy, c.Demo, err)
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	FlagSet(fs, func(string) string { return "" })
	if err := fs.Parse([]string{"--demo", "false"}); err != nil || fs.NArg() != 1 {
		t.Errorf("--demo false: %v, %v left; want the false left over, as for any boolean flag", err, fs.Args())
	}
}

// Every address and URL is checked, and the error names its flag: a port
// out of range is refused before anything is opened.
func TestAddressesAndPorts(t *testing.T) {
	for _, good := range [][]string{
		{"--addr", ":0"},
		{"--addr", ":65535"},
		{"--addr", "127.0.0.1:8000"},
		{"--addr", "[::1]:8000"},
		{"--addr", "[fe80::1%eth0]:8000"},
		{"--addr", "localhost:8000"},
		{"--addr", "herald-1.internal.example:80"},
		{"--admin-addr", "127.0.0.1:6060"},
		{"--addr", "127.0.0.1:8000", "--admin-addr", "127.0.0.2:8000"},
		{"--addr", ":0", "--admin-addr", ":0"},
		{"--db", "postgres://u@db:5432/herald"},
		{"--layer", "redis://r:6379/0"},
		{"--layer", "redis://a:7000?addr=b:7000", "--redis-sharded"},
		{"--channels-redis", "redis://r:6379/1"},
		{"--connect-url", "https://app.example:8443/connect"},
	} {
		if _, err := parseArgs(t, good, nil); err != nil {
			t.Errorf("%v refused: %v", good, err)
		}
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"--addr", ":99999"}, `--addr ":99999": port 99999 is out of range`},
		{[]string{"--addr", ":65536"}, "--addr"},
		{[]string{"--addr", "[::1]:70000"}, "--addr"},
		{[]string{"--addr", ":-1"}, "--addr"},
		{[]string{"--addr", ":http"}, `port "http" is not a number`},
		{[]string{"--addr", "127.0.0.1:"}, "--addr"},
		{[]string{"--addr", "8000"}, "--addr"},
		{[]string{"--addr", "bad host:80"}, "neither an IP address nor a host name"},
		{[]string{"--addr", "a..b:80"}, "--addr"},
		{[]string{"--admin-addr", ":99999"}, "--admin-addr"},
		{[]string{"--admin-addr", "localhost"}, "--admin-addr"},
		{[]string{"--admin-addr", ":8000"}, "the same address as --addr"},
		{[]string{"--addr", "127.0.0.1:9000", "--admin-addr", "127.0.0.1:9000"}, "--admin-addr"},
		{[]string{"--db", "postgres://u@db:99999/herald"}, "--db"},
		{[]string{"--layer", "redis://r:70000/0"}, "--layer"},
		{[]string{"--layer", "redis://a:7000?addr=b:99999", "--redis-sharded"}, "--layer"},
		{[]string{"--channels-redis", "redis://r:65536/0"}, "--channels-redis"},
		{[]string{"--connect-url", "https://app.example:100000/connect"}, "--connect-url"},
	} {
		_, err := parseArgs(t, bad.args, nil)
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%v: %v; want an error with %q", bad.args, err, bad.want)
		}
	}
	// The environment's values are checked the same way.
	if _, err := parseArgs(t, nil, map[string]string{"HERALD_ADDR": ":99999"}); err == nil || !strings.Contains(err.Error(), "--addr") {
		t.Errorf("HERALD_ADDR=:99999: %v", err)
	}
}

// A PEM file whose block is no public key is refused with the flag's
// name, not when the first token arrives.
func TestAppTokenKeyChecked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("not DER")}), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := parseArgs(t, []string{"--app-token-key", path}, nil); err == nil || !strings.Contains(err.Error(), "--app-token-key "+path) {
		t.Errorf("a PEM block that is no key: %v", err)
	}
}

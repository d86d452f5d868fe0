package config

import (
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/groups"
)

// FuzzParseFile: no config file panics the reader; what it accepts names
// only known flags, and the namespaces it returns have a separator and a
// window set (a zero would make groups.New take the default silently;
// names and bounds are groups.New's to check).
func FuzzParseFile(f *testing.F) {
	for _, s := range []string{
		"", "addr = \":8000\"\n", "allowed-origins = [\"https://a.example\", \"https://b.example\"]\n",
		"demo = false\nmax-conns-per-addr = 5\n", "nope = 1\n", "addr = [1, 2]\n", "namespaces = 5\n",
		"[namespaces.chat]\nsubscribe = \"user\"\npublish = \"token\"\nhistory-size = 10\nhistory-ttl = \"5m\"\npresence = true\n",
		"[namespaces.chat]\nseparator = \"_\"\nPresence = true\npresence = false\n",
		"[namespaces.campaign]\n", "[namespaces.a]\nhistory-size = 99999999999999999999\n",
		"[namespaces]\nx = 1\n", "[[namespaces.a]]\n", "a = \"\\ud800\"\n", strings.Repeat("[", 10000),
		"x = " + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + "\n",
	} {
		f.Add([]byte(s))
	}
	flags := map[string]bool{"addr": false, "allowed-origins": true, "demo": false, "max-conns-per-addr": false}
	f.Fuzz(func(t *testing.T, data []byte) {
		values, namespaces, errs := parseFile("fuzz.toml", data, flags)
		for k := range values {
			if _, ok := flags[k]; !ok {
				t.Fatalf("value for unknown flag %q", k)
			}
		}
		for _, ns := range namespaces {
			if ns.Sep != ':' && ns.Sep != '_' || ns.HistorySize == 0 || ns.HistoryAge == 0 {
				t.Fatalf("namespace %+v taken (errors %v)", ns, errs)
			}
		}
		_, _ = groups.New(namespaces)
	})
}

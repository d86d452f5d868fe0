package version

import (
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	vcs := &debug.BuildInfo{
		Main: debug.Module{Path: "github.com/heraldhq/herald", Version: "v0.0.0-20250102030405-0123456789ab+dirty"},
		Settings: []debug.BuildSetting{
			{Key: "-compiler", Value: "gc"},
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
			{Key: "vcs.time", Value: "2025-01-02T03:04:05Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	devel := &debug.BuildInfo{Main: debug.Module{Path: "github.com/heraldhq/herald", Version: "(devel)"}}
	for _, c := range []struct {
		name             string
		info             *debug.BuildInfo
		ldVersion, ldRev string
		want             Build
		str              string
	}{
		{"recorded by go build", vcs, "", "",
			Build{"v0.0.0-20250102030405-0123456789ab+dirty", "0123456789abcdef0123456789abcdef01234567", "2025-01-02T03:04:05Z", true},
			"v0.0.0-20250102030405-0123456789ab+dirty (commit 0123456789ab, 2025-01-02T03:04:05Z, modified)"},
		{"a release's ldflags win", vcs, "v1.2.3", "fedcba9876543210fedcba9876543210fedcba98",
			Build{"v1.2.3", "fedcba9876543210fedcba9876543210fedcba98", "", false},
			"v1.2.3 (commit fedcba987654)"},
		{"the ldflags' commit is the recorded one", vcs, "v1.2.3", "0123456789abcdef0123456789abcdef01234567",
			Build{"v1.2.3", "0123456789abcdef0123456789abcdef01234567", "2025-01-02T03:04:05Z", true},
			"v1.2.3 (commit 0123456789ab, 2025-01-02T03:04:05Z, modified)"},
		{"go run, outside git", devel, "", "", Build{Version: "devel"}, "devel"},
		{"no build information", nil, "", "", Build{Version: "devel"}, "devel"},
		{"a version alone", nil, "v2.0.0", "", Build{Version: "v2.0.0"}, "v2.0.0"},
	} {
		got := resolve(c.info, c.ldVersion, c.ldRev)
		if got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
		if got.String() != c.str {
			t.Errorf("%s: %q, want %q", c.name, got.String(), c.str)
		}
	}
}

// The -ldflags of the package comment set what Get reports.
func TestLinkerFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	bin := filepath.Join(t.TempDir(), "printversion")
	const pkg = "github.com/heraldhq/herald/internal/version"
	build := exec.Command(gobin, "build", "-o", bin,
		"-ldflags", "-X "+pkg+".version=v9.8.7 -X "+pkg+".commit=abcdef0123456789abcdef0123456789abcdef01",
		"./testdata/printversion")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", bin, err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "v9.8.7 (commit abcdef012345)" {
		t.Errorf("built with -ldflags, Get() is %q", got)
	}
}

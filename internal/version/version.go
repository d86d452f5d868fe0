// Package version says which build of herald is running: its version and
// the commit it was built from.
//
// `go build` records both in the binary (runtime/debug.ReadBuildInfo): the
// module's version (v1.2.3 when built as a tagged module, a pseudo-version
// such as v0.0.0-20250102030405-0123456789ab+dirty, or (devel)) and, in a
// git checkout, the commit (vcs.revision), its time (vcs.time) and whether
// the tree had uncommitted changes (vcs.modified). A release build names its
// version and commit explicitly, which wins over what Go recorded:
//
//	go build -ldflags "-X github.com/heraldhq/herald/internal/version.version=v1.2.3 -X github.com/heraldhq/herald/internal/version.commit=$(git rev-parse HEAD)" ./cmd/herald
package version

import (
	"runtime/debug"
	"strings"
)

// Set by the linker only (-ldflags -X, above); nothing assigns them.
var (
	version string
	commit  string
)

// Build is the build of the running binary.
type Build struct {
	// Version is the release or module version; "devel" when unknown.
	Version string `json:"version"`
	// Commit is the full revision built; "" when unknown.
	Commit string `json:"commit"`
	// Time is the commit's time (RFC 3339); "" when unknown.
	Time string `json:"commit_time"`
	// Modified says the tree had changes not committed.
	Modified bool `json:"modified"`
}

// Get returns the running binary's build.
func Get() Build {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		info = nil
	}
	return resolve(info, version, commit)
}

// resolve combines what Go recorded (info, nil when nothing) with the
// version and commit the linker set (empty when not).
func resolve(info *debug.BuildInfo, ldVersion, ldCommit string) Build {
	var b Build
	if info != nil {
		if v := info.Main.Version; v != "" && v != "(devel)" {
			b.Version = v
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Commit = s.Value
			case "vcs.time":
				b.Time = s.Value
			case "vcs.modified":
				b.Modified = s.Value == "true"
			}
		}
	}
	if ldVersion != "" {
		b.Version = ldVersion
	}
	if ldCommit != "" && ldCommit != b.Commit {
		// The recorded time and state were another commit's.
		b.Commit, b.Time, b.Modified = ldCommit, "", false
	}
	if b.Version == "" {
		b.Version = "devel"
	}
	return b
}

// String is the build in one line: "v1.2.3 (commit 0123456789ab,
// 2025-01-02T03:04:05Z, modified)", with what is known.
func (b Build) String() string {
	var parts []string
	if b.Commit != "" {
		parts = append(parts, "commit "+b.Commit[:min(len(b.Commit), 12)])
	}
	if b.Time != "" {
		parts = append(parts, b.Time)
	}
	if b.Modified {
		parts = append(parts, "modified")
	}
	if len(parts) == 0 {
		return b.Version
	}
	return b.Version + " (" + strings.Join(parts, ", ") + ")"
}

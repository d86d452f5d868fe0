package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// Results is what one run writes to results.json.
type Results struct {
	Scenario string `json:"scenario"`
	// Command is the exact command line, argument by argument, and
	// CommandLine the same quoted for a shell.
	Command     []string `json:"command"`
	CommandLine string   `json:"command_line"`
	Params      Options  `json:"params"`
	Machine     Machine  `json:"machine"`
	// HeraldCommit is `git rev-parse HEAD` where the bench ran; BinaryCommit
	// is the revision the running binary was built from (with --spawn, the
	// server's too) and BinaryModified whether its tree had local changes.
	HeraldCommit   string `json:"herald_commit,omitempty"`
	BinaryCommit   string `json:"binary_commit,omitempty"`
	BinaryModified bool   `json:"binary_modified,omitempty"`
	// Target is the base URL driven, several separated by commas; the
	// server's figures (memory, CPU, metrics) are then the processes' sums.
	Target     string `json:"target"`
	ServerPID  int    `json:"server_pid,omitempty"`
	ServerPIDs []int  `json:"server_pids,omitempty"` // all of them, with several targets
	// ConnectsPerTarget counts the WebSocket connections made to each of
	// several targets, in --target order.
	ConnectsPerTarget []int64   `json:"connects_per_target,omitempty"`
	Spawned           bool      `json:"spawned"`
	StartedAt         time.Time `json:"started_at"`
	FinishedAt        time.Time `json:"finished_at"`
	// Error is set when the run stopped early; the figures are what was
	// measured until then.
	Error string `json:"error,omitempty"`
	// Profiles are the server CPU profiles taken (files in the out
	// directory; `go tool pprof -top <file>`).
	Profiles []string `json:"profiles,omitempty"`
	Notes    []string `json:"notes,omitempty"`

	Idle     *IdleFigures    `json:"idle,omitempty"`
	Fanout   *FanoutFigures  `json:"fanout,omitempty"`
	Personal *QuestFigures   `json:"personal,omitempty"`
	Apps     *QuestFigures   `json:"apps,omitempty"`
	Resume   *ResumeFigures  `json:"resume,omitempty"`
	SignIn   *SignInFigures  `json:"signin,omitempty"`
	Publish  *PublishFigures `json:"publish,omitempty"`
	Django   *DjangoFigures  `json:"django,omitempty"`
	Writes   *WritesFigures  `json:"writes,omitempty"`
	Timeline []TimelinePoint `json:"timeline,omitempty"`
	Server   *ProcessFigures `json:"server_process,omitempty"`
	Bench    *ProcessFigures `json:"bench_process,omitempty"`
	charts   []chart         // written beside results.json
}

// TimelinePoint is one second of a run.
type TimelinePoint struct {
	T          float64 `json:"t_s"`
	Phase      string  `json:"phase,omitempty"`
	Deliveries uint64  `json:"deliveries,omitempty"`
	Events     uint64  `json:"events,omitempty"`
	Connects   uint64  `json:"connects,omitempty"`
	Conns      int64   `json:"open_conns"`
}

// ProcessFigures is the CPU a process used during the measured phase(s).
type ProcessFigures struct {
	PID      int     `json:"pid,omitempty"`
	PIDs     []int   `json:"pids,omitempty"` // all of them, when several are measured together
	CPUSecs  float64 `json:"cpu_s"`
	WallSecs float64 `json:"wall_s"`
	// Cores is CPU time over wall time: 1.0 is one core fully busy.
	Cores float64 `json:"cores"`
	// MachineCores is how many cores the whole machine kept busy meanwhile
	// (both processes, the kernel's loopback work, anything else running).
	MachineCores float64 `json:"machine_cores,omitempty"`
	MaxRSS       int64   `json:"max_rss_kib,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	NProc    int    `json:"nproc"`
	MemBytes int64  `json:"mem_total_bytes"`
	Kernel   string `json:"kernel"`
	CPU      string `json:"cpu,omitempty"`
	OS       string `json:"os"`
	Arch     string `json:"arch"`
	Go       string `json:"go"`
	FileLim  uint64 `json:"nofile_limit,omitempty"`
	// LoadAvg is /proc/loadavg when the run started: other work on the
	// machine skews every figure.
	LoadAvg string `json:"loadavg_at_start,omitempty"`
}

// ThisMachine reads the machine's description from /proc.
func ThisMachine() Machine {
	m := Machine{NProc: runtime.NumCPU(), OS: runtime.GOOS, Arch: runtime.GOARCH, Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				m.MemBytes = kb * 1024
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.LoadAvg = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// gitHead is `git rev-parse HEAD` in the working directory, if that works.
func gitHead(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "git", "rev-parse", "HEAD").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// binaryRevision is the VCS revision the running binary was built from.
func binaryRevision() (rev string, modified bool) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "", false
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	return rev, modified
}

// ShellQuote joins args into one line a POSIX shell reads back as args.
func ShellQuote(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=,@+%", r))
		}) < 0 {
			out[i] = a
			continue
		}
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}

// chart is an SVG file written beside results.json.
type chart struct {
	name  string
	write func(f *os.File) error
}

func (r *Results) addChart(name string, write func(f *os.File) error) {
	r.charts = append(r.charts, chart{name, write})
}

// Write writes results.json and the charts into dir and returns the files
// written.
func (r *Results) Write(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	p := filepath.Join(dir, "results.json")
	if err := os.WriteFile(p, append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	files := []string{p}
	for _, c := range r.charts {
		p := filepath.Join(dir, c.name)
		f, err := os.Create(p)
		if err != nil {
			return files, err
		}
		err = c.write(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return files, fmt.Errorf("%s: %w", c.name, err)
		}
		files = append(files, p)
	}
	return files, nil
}

// ReadResults reads a results.json.
func ReadResults(path string) (*Results, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Results
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

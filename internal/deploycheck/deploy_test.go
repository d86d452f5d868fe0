package deploycheck

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/config"
	"github.com/heraldhq/herald/internal/testenv"
)

// The files under test, from this package's directory.
var (
	deployDir     = filepath.Join("..", "..", "deploy")
	unitFile      = filepath.Join(deployDir, "herald.service")
	envFile       = filepath.Join(deployDir, "herald.env.example")
	rulesFile     = filepath.Join(deployDir, "prometheus", "herald.rules.yml")
	rulesTests    = filepath.Join(deployDir, "prometheus", "herald.rules.test.yml")
	dashboard     = filepath.Join(deployDir, "grafana", "herald-dashboard.json")
	operationsDoc = filepath.Join("..", "..", "docs", "operations.md")
	promtoolHint  = "promtool not found: apt-get install prometheus"
)

// prometheusOwn are the series Prometheus makes itself for each target;
// herald does not expose them.
var prometheusOwn = map[string]bool{"up": true}

// ---- the systemd unit ----

// unitSettings are a unit file's assignments: section, key, and its values
// in order (a key may be assigned several times; an empty value resets a
// list in systemd).
type unitSettings map[string]map[string][]string

// last is the last value assigned to key in section, and whether it is.
func (u unitSettings) last(section, key string) (string, bool) {
	vs := u[section][key]
	if len(vs) == 0 {
		return "", false
	}
	return vs[len(vs)-1], true
}

// parseUnit reads a systemd unit file: [Section] lines, Key=Value lines
// (a trailing backslash continues one), comments starting with # or ;.
func parseUnit(text string) (unitSettings, error) {
	u := unitSettings{}
	section := ""
	var pending string
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if pending != "" {
			line = pending + " " + line
			pending = ""
		}
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			pending = strings.TrimSuffix(line, `\`)
			continue
		}
		if line[0] == '[' {
			if !strings.HasSuffix(line, "]") {
				return nil, fmt.Errorf("line %d: %q", n+1, line)
			}
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			return nil, fmt.Errorf("line %d: %q is not Key=Value in a section", n+1, line)
		}
		key = strings.TrimSpace(key)
		u[section][key] = append(u[section][key], strings.TrimSpace(value))
	}
	return u, nil
}

// timeSpan parses a systemd time span such as "45s", "1min 30s" or "90"
// (seconds).
func timeSpan(s string) (time.Duration, error) {
	units := map[string]time.Duration{
		"": time.Second, "us": time.Microsecond, "ms": time.Millisecond, "s": time.Second, "sec": time.Second,
		"m": time.Minute, "min": time.Minute, "h": time.Hour, "hr": time.Hour,
	}
	re := regexp.MustCompile(`^\s*(\d+)\s*([a-z]*)`)
	var d time.Duration
	rest := strings.TrimSpace(s)
	if rest == "" {
		return 0, errors.New("empty time span")
	}
	for rest != "" {
		m := re.FindStringSubmatch(rest)
		if m == nil {
			return 0, fmt.Errorf("time span %q", s)
		}
		unit, ok := units[m[2]]
		if !ok {
			return 0, fmt.Errorf("time span %q: unit %q", s, m[2])
		}
		n, _ := strconv.Atoi(m[1])
		d += time.Duration(n) * unit
		rest = strings.TrimSpace(rest[len(m[0]):])
	}
	return d, nil
}

// envAssignments reads an EnvironmentFile: KEY=VALUE lines, comments and
// blank lines.
func envAssignments(t *testing.T, text string) map[string]string {
	t.Helper()
	env := map[string]string{}
	assign := regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)=(\S*)$`)
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		m := assign.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("%s:%d: %q is not KEY=VALUE (no spaces, no quotes)", envFile, n+1, line)
			continue
		}
		env[m[1]] = m[2]
	}
	return env
}

// serveFlags declares herald serve's flags on a new flag set and returns
// it, the function that resolves them into a Config, and every flag's
// environment variable.
func serveFlags(getenv func(string) string) (*flag.FlagSet, func() (config.Config, error), map[string]string) {
	fs := flag.NewFlagSet("herald serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	resolve := config.FlagSet(fs, getenv)
	vars := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) {
		vars["HERALD_"+strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))] = f.Name
	})
	return fs, resolve, vars
}

// under reports whether path is dir or inside it.
func under(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// The unit is hardened as documented, runs `herald serve` with flags herald
// has, with a configuration (its flags and the example env file) herald
// accepts, writes only where ProtectSystem=strict lets it, and gives the
// shutdown grace time to finish before systemd kills the process.
func TestSystemdUnit(t *testing.T) {
	text, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	u, err := parseUnit(string(text))
	if err != nil {
		t.Fatalf("%s: %v", unitFile, err)
	}
	for _, want := range []struct{ key, value string }{
		{"DynamicUser", "yes"},
		{"StateDirectory", "herald"},
		{"ProtectSystem", "strict"},
		{"ProtectHome", "yes"},
		{"PrivateTmp", "yes"},
		{"NoNewPrivileges", "yes"},
		{"CapabilityBoundingSet", ""},
		{"AmbientCapabilities", ""},
		{"Restart", "on-failure"},
		{"EnvironmentFile", "-/etc/herald/herald.env"},
	} {
		if got, ok := u.last("Service", want.key); !ok || got != want.value {
			t.Errorf("[Service] %s=%q (set: %v), want %q", want.key, got, ok, want.value)
		}
	}
	if got, _ := u.last("Service", "RestrictAddressFamilies"); !sameSet(strings.Fields(got), []string{"AF_INET", "AF_INET6", "AF_UNIX"}) {
		t.Errorf("RestrictAddressFamilies=%q, want AF_INET AF_INET6 AF_UNIX", got)
	}
	if !slices.Contains(u["Service"]["SystemCallFilter"], "@system-service") {
		t.Errorf("SystemCallFilter=%q, want @system-service among them", u["Service"]["SystemCallFilter"])
	}
	if got, _ := u.last("Service", "LimitNOFILE"); !atLeast(got, 65536) {
		t.Errorf("LimitNOFILE=%q, want at least 65536 (one descriptor per client)", got)
	}
	if got, _ := u.last("Install", "WantedBy"); got != "multi-user.target" {
		t.Errorf("[Install] WantedBy=%q", got)
	}

	// ExecStart: herald serve with its real flags, each --name=value (a
	// boolean flag as --name value would take the next word).
	execStart, _ := u.last("Service", "ExecStart")
	args := strings.Fields(execStart)
	if len(args) < 2 || !filepath.IsAbs(args[0]) || filepath.Base(args[0]) != "herald" || args[1] != "serve" {
		t.Fatalf("ExecStart=%q, want /path/to/herald serve …", execStart)
	}
	flags := args[2:]
	for _, a := range flags {
		if !strings.HasPrefix(a, "--") || !strings.Contains(a, "=") {
			t.Errorf("ExecStart argument %q: want --flag=value", a)
		}
	}
	envText, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatal(err)
	}
	env := envAssignments(t, string(envText))
	fs, resolve, vars := serveFlags(func(k string) string { return env[k] })
	if err := fs.Parse(flags); err != nil {
		t.Fatalf("ExecStart's flags are not herald serve's: %v", err)
	}
	if fs.NArg() > 0 {
		t.Fatalf("ExecStart has arguments herald serve does not take: %q", fs.Args())
	}
	// Every HERALD_ name in the env file, commented out or not, is one of
	// herald's variables; none set there is overridden by ExecStart.
	for _, name := range regexp.MustCompile(`HERALD_[A-Z0-9_]+`).FindAllString(string(envText), -1) {
		if _, ok := vars[name]; !ok {
			t.Errorf("%s names %s, which is not a herald variable", envFile, name)
		}
	}
	for name := range env {
		flagName, ok := vars[name]
		if !ok {
			t.Errorf("%s sets %s, which is not a herald variable", envFile, name)
			continue
		}
		fs.Visit(func(f *flag.Flag) {
			if f.Name == flagName {
				t.Errorf("%s sets %s, but ExecStart's --%s overrides it", envFile, name, flagName)
			}
		})
	}
	cfg, err := resolve()
	if err != nil {
		t.Fatalf("herald serve refuses the unit's configuration (ExecStart and %s): %v", envFile, err)
	}
	if cfg.Demo {
		t.Error("the unit would load demo data (want --demo=false)")
	}
	// Writes: only the state directory and ReadWritePaths are writable.
	state, _ := u.last("Service", "StateDirectory")
	writable := []string{filepath.Join("/var/lib", state)}
	for _, v := range u["Service"]["ReadWritePaths"] {
		for _, p := range strings.Fields(v) {
			writable = append(writable, strings.TrimLeft(p, "-+"))
		}
	}
	paths := map[string]string{"--data-dir": cfg.DataDir, "--media-dir": cfg.MediaPath()}
	if db, ok := strings.CutPrefix(cfg.DB, "sqlite:"); ok {
		paths["--db"] = db
	}
	for what, p := range paths {
		if !filepath.IsAbs(p) {
			if wd, _ := u.last("Service", "WorkingDirectory"); wd != "" {
				p = filepath.Join(wd, p)
			}
		}
		if !slices.ContainsFunc(writable, func(dir string) bool { return under(p, dir) }) {
			t.Errorf("%s is %s, which ProtectSystem=strict leaves read-only (writable: %q)", what, p, writable)
		}
	}
	// systemd's stop timeout leaves the grace period, the relay's last
	// flush (2 s) and closing to finish.
	stop, _ := u.last("Service", "TimeoutStopSec")
	timeout, err := timeSpan(stop)
	if err != nil {
		t.Fatalf("TimeoutStopSec: %v", err)
	}
	if timeout < cfg.ShutdownGrace+10*time.Second {
		t.Errorf("TimeoutStopSec=%s, want at least --shutdown-grace (%s) + 10s", stop, cfg.ShutdownGrace)
	}

	t.Run("systemd-analyze", func(t *testing.T) {
		analyze, err := exec.LookPath("systemd-analyze")
		if err != nil {
			t.Skip("systemd-analyze not found (Debian's systemd package); the unit was checked in Go only")
		}
		// verify wants ExecStart's binary: a stand-in at another path.
		dir := t.TempDir()
		stub := filepath.Join(dir, "herald")
		if err := os.WriteFile(stub, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		copyText := strings.Replace(string(text), "ExecStart="+args[0]+" ", "ExecStart="+stub+" ", 1)
		if copyText == string(text) {
			t.Fatal("could not point the unit's ExecStart at a stand-in")
		}
		unit := filepath.Join(dir, "herald.service")
		if err := os.WriteFile(unit, []byte(copyText), 0o644); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(analyze, "verify", unit)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil || stderr.Len() > 0 || stdout.Len() > 0 {
			t.Errorf("systemd-analyze verify: %v\n%s%s", err, stdout.String(), stderr.String())
		}
		// Its exposure score (0 safe … 10 exposed, x10 for --threshold):
		// 1.4 as shipped; above 2 something was dropped.
		out, err := exec.Command(analyze, "security", "--offline=true", "--threshold=20", unit).CombinedOutput()
		if err != nil {
			overall := regexp.MustCompile(`Overall exposure level[^\n]*`).Find(out)
			t.Errorf("systemd-analyze security --threshold=20: %v: %s\n%s", err, overall, out)
		}
	})
}

// atLeast reports whether s is a number of at least n.
func atLeast(s string, n int) bool {
	v, err := strconv.Atoi(s)
	return err == nil && v >= n
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// ---- the alert rules ----

// ruleExprs reads a rules file's alerts and their expr: values (inline,
// quoted or not, or a | or > block). It fails on an alert without one.
func ruleExprs(t *testing.T, text string) (alerts []string, exprs map[string]string) {
	t.Helper()
	exprs = map[string]string{}
	lines := strings.Split(text, "\n")
	alertRe := regexp.MustCompile(`^\s*- alert:\s*(\S+)\s*$`)
	exprRe := regexp.MustCompile(`^(\s*)(?:- )?expr:\s*(.*)$`)
	current := ""
	for i := 0; i < len(lines); i++ {
		if m := alertRe.FindStringSubmatch(lines[i]); m != nil {
			current = m[1]
			alerts = append(alerts, current)
			continue
		}
		m := exprRe.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		if current == "" {
			t.Fatalf("%s:%d: an expr: before any alert", rulesFile, i+1)
		}
		indent, v := len(m[1]), strings.TrimSpace(m[2])
		switch {
		case strings.HasPrefix(v, "|") || strings.HasPrefix(v, ">"):
			var block []string
			for i+1 < len(lines) {
				next := lines[i+1]
				if strings.TrimSpace(next) != "" && len(next)-len(strings.TrimLeft(next, " ")) <= indent {
					break
				}
				block = append(block, strings.TrimSpace(next))
				i++
			}
			v = strings.TrimSpace(strings.Join(block, "\n"))
		case strings.HasPrefix(v, `"`):
			s, err := strconv.Unquote(v)
			if err != nil {
				t.Fatalf("%s:%d: %v", rulesFile, i+1, err)
			}
			v = s
		case strings.HasPrefix(v, "'"):
			v = strings.ReplaceAll(strings.TrimSuffix(strings.TrimPrefix(v, "'"), "'"), "''", "'")
		}
		if _, dup := exprs[current]; dup || v == "" {
			t.Fatalf("%s:%d: alert %s has a second or empty expr", rulesFile, i+1, current)
		}
		exprs[current] = v
	}
	for _, a := range alerts {
		if exprs[a] == "" {
			t.Fatalf("%s: alert %s has no expr", rulesFile, a)
		}
	}
	return alerts, exprs
}

// promtool returns the path of promtool, failing the test without it.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal(promtoolHint)
	}
	return p
}

// The rules pass promtool's check and their unit tests, which test every
// alert both firing and quiet.
func TestAlertRules(t *testing.T) {
	tool := promtool(t)
	text, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	alerts, _ := ruleExprs(t, string(text))
	out, err := exec.Command(tool, "check", "rules", rulesFile).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	found := "no"
	if m := regexp.MustCompile(`SUCCESS: (\d+) rules found`).FindSubmatch(out); m != nil {
		found = string(m[1])
	}
	if found != strconv.Itoa(len(alerts)) {
		t.Fatalf("promtool found %s rules, this test read %d alerts (%q): a rule it cannot see goes unchecked\n%s", found, len(alerts), alerts, out)
	}
	cmd := exec.Command(tool, "test", "rules", filepath.Base(rulesTests))
	cmd.Dir = filepath.Dir(rulesTests)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
	// Each alert is tested firing (exp_alerts with an alert) and quiet
	// (exp_alerts: []).
	tests, err := os.ReadFile(rulesTests)
	if err != nil {
		t.Fatal(err)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	name := ""
	for _, line := range strings.Split(string(tests), "\n") {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "alertname:"); ok {
			name = strings.TrimSpace(v)
		} else if v, ok := strings.CutPrefix(line, "exp_alerts:"); ok && name != "" {
			if strings.TrimSpace(v) == "[]" {
				quiet[name] = true
			} else {
				fires[name] = true
			}
		}
	}
	// Each alert's runbook_url is its section of docs/operations.md.
	ops, err := os.ReadFile(operationsDoc)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range alerts {
		if !strings.Contains(string(ops), "\n### "+a+"\n") {
			t.Errorf("%s has no section ### %s", operationsDoc, a)
		}
		url := "https://github.com/heraldhq/herald/blob/main/docs/operations.md#" + strings.ToLower(a)
		if !strings.Contains(string(text), `runbook_url: "`+url+`"`) {
			t.Errorf("alert %s: no runbook_url %s", a, url)
		}
	}
	for _, a := range alerts {
		if !fires[a] || !quiet[a] {
			t.Errorf("alert %s: tested firing %v, quiet %v; want both in %s", a, fires[a], quiet[a], rulesTests)
		}
	}
}

// ---- the dashboard ----

// dashboardPanel is what the test reads of a Grafana panel.
type dashboardPanel struct {
	ID         int              `json:"id"`
	Title      string           `json:"title"`
	Type       string           `json:"type"`
	Datasource *datasource      `json:"datasource"`
	Targets    []panelTarget    `json:"targets"`
	Panels     []dashboardPanel `json:"panels"` // a collapsed row's
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panelTarget struct {
	Expr       string      `json:"expr"`
	RefID      string      `json:"refId"`
	Datasource *datasource `json:"datasource"`
}

type dashboardJSON struct {
	Inputs []struct {
		Name     string `json:"name"`
		Type     string `json:"type"`
		PluginID string `json:"pluginId"`
	} `json:"__inputs"`
	SchemaVersion int              `json:"schemaVersion"`
	UID           string           `json:"uid"`
	Title         string           `json:"title"`
	Panels        []dashboardPanel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

// query is a PromQL expression of the dashboard or the rules, and where it
// is.
type query struct{ where, expr string }

// readDashboard parses the dashboard and returns its PromQL queries: the
// panels' targets and the query variables' label_values(…) selectors.
func readDashboard(t *testing.T) (dashboardJSON, []query) {
	t.Helper()
	b, err := os.ReadFile(dashboard)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboardJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboard, err)
	}
	var qs []query
	var walk func([]dashboardPanel)
	walk = func(ps []dashboardPanel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				qs = append(qs, query{fmt.Sprintf("panel %q target %s", p.Title, tg.RefID), tg.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	labelValues := regexp.MustCompile(`^label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			if err := json.Unmarshal(v.Query, &q.Query); err != nil {
				t.Fatalf("variable %s: query %s", v.Name, v.Query)
			}
		}
		m := labelValues.FindStringSubmatch(q.Query)
		if m == nil {
			t.Fatalf("variable %s: query %q is not label_values(selector, label)", v.Name, q.Query)
		}
		qs = append(qs, query{"variable " + v.Name, m[1]})
	}
	return d, qs
}

// The dashboard imports with a Prometheus data source chosen at import,
// every panel queries through it, and it shows what operators need.
func TestDashboard(t *testing.T) {
	d, qs := readDashboard(t)
	if d.SchemaVersion < 36 || d.UID == "" || d.Title == "" {
		t.Errorf("schemaVersion %d, uid %q, title %q", d.SchemaVersion, d.UID, d.Title)
	}
	if len(d.Inputs) != 1 || d.Inputs[0].Name != "DS_PROMETHEUS" || d.Inputs[0].PluginID != "prometheus" {
		t.Errorf("__inputs %+v, want DS_PROMETHEUS, a prometheus data source", d.Inputs)
	}
	hasDS := false
	for _, v := range d.Templating.List {
		if v.Type == "datasource" && v.Name == "datasource" && string(v.Query) == `"prometheus"` {
			hasDS = true
		}
	}
	if !hasDS {
		t.Error("no datasource variable of type prometheus")
	}
	ids := map[int]string{}
	var walk func([]dashboardPanel)
	walk = func(ps []dashboardPanel) {
		for _, p := range ps {
			if other, dup := ids[p.ID]; dup {
				t.Errorf("panels %q and %q share id %d", other, p.Title, p.ID)
			}
			ids[p.ID] = p.Title
			if p.Type != "row" {
				if len(p.Targets) == 0 {
					t.Errorf("panel %q has no query", p.Title)
				}
				for _, ds := range append([]*datasource{p.Datasource}, targetSources(p.Targets)...) {
					if ds == nil || ds.Type != "prometheus" || ds.UID != "${datasource}" {
						t.Errorf("panel %q queries data source %+v, want the ${datasource} variable", p.Title, ds)
					}
				}
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	used := map[string]bool{}
	for _, q := range qs {
		names, err := MetricNames(q.expr)
		if err != nil {
			t.Errorf("%s: %v", q.where, err)
		}
		if len(names) == 0 {
			t.Errorf("%s: %q selects no metric", q.where, q.expr)
		}
		for _, n := range names {
			used[n] = true
		}
	}
	for _, want := range []string{
		"herald_ready", "herald_realtime_connections", "herald_realtime_deliveries_total",
		"herald_events_published_total", "herald_event_publish_delay_seconds_bucket",
		"herald_outbox_pending_events", "herald_outbox_oldest_pending_age_seconds",
		"herald_realtime_slow_consumers_total", "herald_realtime_dropped_total",
		"herald_realtime_handshakes_refused_total", "herald_realtime_rate_limited_total",
		"herald_http_request_duration_seconds_count", "herald_http_request_duration_seconds_bucket",
		"herald_panics_total", "go_goroutines", "process_resident_memory_bytes",
	} {
		if !used[want] {
			t.Errorf("no panel shows %s", want)
		}
	}
}

func targetSources(ts []panelTarget) []*datasource {
	var out []*datasource
	for _, tg := range ts {
		out = append(out, tg.Datasource)
	}
	return out
}

// ---- every query names a metric herald exposes ----

// exposedSeries scrapes base's /metrics and returns the names of its
// samples (a histogram's _bucket, _sum and _count).
func exposedSeries(t *testing.T, base string) map[string]bool {
	t.Helper()
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d", res.StatusCode)
	}
	names := map[string]bool{}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return names
}

// Every metric the dashboard, the alert rules and the rules' unit tests
// name is one a running herald exposes (or up, which Prometheus makes):
// a query of a metric that was renamed or never existed shows nothing and
// never alerts.
func TestQueriesNameExposedMetrics(t *testing.T) {
	_, qs := readDashboard(t)
	for i := range qs {
		qs[i].where = "dashboard " + qs[i].where
	}
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	alerts, exprs := ruleExprs(t, string(rules))
	for _, a := range alerts {
		qs = append(qs, query{"alert " + a, exprs[a]})
	}
	tests, err := os.ReadFile(rulesTests)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?m)^\s*- series:\s*'([^']*)'`).FindAllStringSubmatch(string(tests), -1) {
		qs = append(qs, query{"rules test series", m[1]})
	}
	if len(qs) < 20 {
		t.Fatalf("only %d queries read", len(qs))
	}

	// herald with demo data: its writes' events are published, so the
	// per-type publish metrics exist; a request makes the HTTP ones.
	h := testenv.StartHerald(t, testenv.SQLite(t), func(c *config.Config) {
		c.PublicMetrics = true
		c.Demo = true
	})
	if res, err := http.Get(h.Base + "/healthz"); err != nil {
		t.Fatal(err)
	} else {
		res.Body.Close()
	}
	var exposed map[string]bool
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		exposed = exposedSeries(t, h.Base)
		if exposed["herald_events_published_total"] && exposed["herald_event_publish_delay_seconds_bucket"] &&
			exposed["herald_http_request_duration_seconds_count"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("herald exposed no published events or HTTP requests within 30 s of loading its demo data")
		}
	}
	checked := 0
	for _, q := range qs {
		names, err := MetricNames(q.expr)
		if err != nil {
			t.Errorf("%s: %v", q.where, err)
			continue
		}
		for _, n := range names {
			checked++
			if !exposed[n] && !prometheusOwn[n] {
				t.Errorf("%s names %s, which herald does not expose (query %q)", q.where, n, q.expr)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no metric name was checked")
	}
}

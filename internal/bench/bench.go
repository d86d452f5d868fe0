// Package bench is herald's load generator (`herald bench`): it drives a
// running herald — a separate process, or one it spawns — over loopback
// with real WebSocket clients and REST writes, and measures connection
// cost, connect rate, fan-out throughput and latency, the quest flow's
// REST-to-WebSocket latency and mass reconnects.
//
// Every run is bounded in time and in count, refuses any target that is not
// on this machine's loopback interface, spreads its client connections over
// the source addresses 127.0.0.2–127.0.0.254, and writes its figures as
// results.json plus SVG charts.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/internal/store"
)

// Scenarios are the workloads `herald bench` runs.
var Scenarios = []string{"idle", "fanout", "personal", "apps", "resume", "signin", "publish", "django", "writes"}

// Duration is a time.Duration written as "30s" in results.
type Duration time.Duration

// D is d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes d as "1m30s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads "1m30s".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}

// Options configure one run. Zero fields take the scenario's defaults
// (Defaults); results.json records them as run.
type Options struct {
	Scenario string `json:"scenario"`
	// Target is the base URL of a running herald (loopback only), or
	// several separated by commas: processes sharing a database and a Redis
	// channel layer, which the clients and REST writes are spread over in
	// turn. With Spawn, Procs `herald serve` children are started instead
	// (HeraldBin, default this executable, on a temporary SQLite database
	// unless ServeArgs, appended to their flags, name another) and stopped
	// at the end.
	Target    string   `json:"target,omitempty"`
	Spawn     bool     `json:"spawn"`
	Procs     int      `json:"procs,omitempty"`
	HeraldBin string   `json:"herald_bin,omitempty"`
	ServeArgs []string `json:"serve_args,omitempty"`
	// ServeEnv adds KEY=VALUE variables to the children's environment
	// (GOMAXPROCS=1 for several processes sharing few cores).
	ServeEnv []string `json:"serve_env,omitempty"`
	// ServerPID is the process whose memory and CPU are reported (one
	// target only); found from the listening sockets when zero.
	ServerPID int    `json:"server_pid,omitempty"`
	Out       string `json:"out,omitempty"`

	// Conns is the number of WebSocket clients: connections (idle, resume),
	// subscribers (fanout), users (personal).
	Conns int `json:"conns,omitempty"`
	// Rate is connections per second (idle; 0: as fast as DialConcurrency
	// allows), events per second (fanout) or REST writes per second
	// (personal, apps).
	Rate float64 `json:"rate"`
	// Steps ramps the fanout's event rate, one Duration per step.
	Steps []float64 `json:"steps,omitempty"`
	// Duration bounds each phase: connecting (idle), each step (fanout),
	// the writes (personal, apps), each reconnect round (resume).
	Duration Duration `json:"duration"`

	Token         bool     `json:"token,omitempty"`          // campaign clients authenticate with ?token=
	Settle        Duration `json:"settle,omitempty"`         // idle: quiet time before reading RSS
	Hold          Duration `json:"hold,omitempty"`           // idle: keep the connections open this much longer
	SnapshotBytes int      `json:"snapshot_bytes,omitempty"` // campaign_data size the campaign is padded to
	EventBytes    int      `json:"event_bytes,omitempty"`    // fanout: size of one comment event
	Publishers    int      `json:"publishers,omitempty"`     // concurrent REST writers
	Drain         Duration `json:"drain,omitempty"`          // wait for late deliveries after a step
	MaxP99        Duration `json:"max_p99,omitempty"`        // fanout: a step passes with p99 at most this
	KeepGoing     bool     `json:"keep_going,omitempty"`     // fanout: run every step even after one fails
	Creators      int      `json:"creators,omitempty"`       // apps
	Applicants    int      `json:"applicants,omitempty"`     // apps
	Rounds        int      `json:"rounds,omitempty"`         // resume
	Pause         Duration `json:"pause,omitempty"`          // resume: between rounds
	ResumeMode    string   `json:"resume_mode,omitempty"`    // resume: how clients come back
	Missed        int      `json:"missed,omitempty"`         // resume v2: events published while the clients are away
	// Batches are the publish scenario's batch sizes, --duration each.
	Batches []int `json:"batches,omitempty"`
	// APIKey is the key the publish scenario publishes with (made on the
	// spawned server's database with --spawn). Never written to results.
	APIKey string `json:"-"`
	// Watchers are the publish scenario's WebSocket clients of the
	// throughput phase's group, to see its events delivered (0: nobody
	// watches it); V2 makes them and the latency phase's subscribers speak
	// protocol v2.
	Watchers int  `json:"watchers,omitempty"`
	V2       bool `json:"v2,omitempty"`
	// Groups are the writes scenario's campaign rooms, each with one
	// subscriber; Via is how it writes (ViaREST, ViaPublish or ViaBoth).
	Groups int    `json:"groups,omitempty"`
	Via    string `json:"via,omitempty"`

	// The django scenario: Server is what the clients connect to, "herald"
	// (--channels-redis) or "daphne" (the test project's Channels consumer;
	// with Spawn, DaphneBin serving DjangoDir's ASGI application). Senders
	// processes of Python run DjangoDir's manage.py bench_send, calling
	// async_to_sync(channel_layer.group_send) at Rate (or each of Steps) in
	// all, through the channels_redis layer at ChannelsRedis with
	// ChannelsPrefix (when empty: with Spawn, a new one for the run, deleted
	// after; without, "asgi", channels_redis's default) and ChannelsLayer
	// ("core" or "pubsub").
	Server         string `json:"server,omitempty"`
	Senders        int    `json:"senders,omitempty"`
	ChannelsRedis  string `json:"channels_redis,omitempty"`
	ChannelsPrefix string `json:"channels_prefix,omitempty"`
	ChannelsLayer  string `json:"channels_layer,omitempty"`
	DjangoDir      string `json:"django_dir,omitempty"`
	Python         string `json:"python,omitempty"`
	DaphneBin      string `json:"daphne_bin,omitempty"`
	// ConnectRate paces the clients a scenario connects before measuring
	// (subscribers, users, resume clients); 0 is as fast as allowed.
	ConnectRate         float64  `json:"connect_rate"`
	DialConcurrency     int      `json:"dial_concurrency"`     // connection attempts in flight
	RegisterConcurrency int      `json:"register_concurrency"` // account sign-ups in flight
	Timeout             Duration `json:"timeout"`              // one connect, one request
	ReadBuffer          int      `json:"read_buffer"`          // per-connection read buffer
	Progress            Duration `json:"progress"`             // progress line interval
	// Profile takes CPU profiles of the server (net/http/pprof on its admin
	// address: AdminAddr, or one --spawn sets up) during each measured
	// phase, into Out; ProfileFor is their length where a phase has no
	// fixed one (connecting, reconnecting).
	Profile    bool     `json:"profile,omitempty"`
	AdminAddr  string   `json:"admin_addr,omitempty"`
	ProfileFor Duration `json:"profile_for,omitempty"`
	// Bare makes the idle scenario's target the bare server (ServeBare,
	// herald bench bare-server; started with Spawn): no accounts or
	// campaign are set up, and with Token the clients send a placeholder
	// token as long as a real one.
	Bare bool `json:"bare,omitempty"`
	// Generators runs the clients of idle, fanout and personal in that many
	// child processes (one process may hold about 20,000 descriptors),
	// each on its own source addresses; their figures are merged.
	Generators int `json:"generators,omitempty"`
	// Restart: after its idle phase, the idle scenario restarts every
	// spawned process in turn under v2 clients (V2) that reconnect and
	// resume, posting Missed comments while each is down.
	Restart bool `json:"restart,omitempty"`
	// Seed makes the personal scenario's users and applications straight
	// in the spawned servers' PostgreSQL database, with one argon2id hash
	// of the bench password for all, and signs their access tokens with the
	// servers' JWT secret, instead of registering each through REST.
	Seed bool `json:"seed,omitempty"`

	Stdout  io.Writer `json:"-"` // progress and summary (default os.Stdout)
	Command []string  `json:"-"` // the command line, recorded in results
}

// Defaults are a scenario's options before flags.
func Defaults(scenario string) Options {
	o := Options{
		Scenario: scenario, Target: "http://127.0.0.1:8000", Procs: 1, Duration: Duration(30 * time.Second),
		DialConcurrency: 512, RegisterConcurrency: max(2, runtime.NumCPU()), Timeout: Duration(10 * time.Second),
		ReadBuffer: 1024, Progress: Duration(time.Second), ConnectRate: 5000, Publishers: 64,
		Drain: Duration(5 * time.Second), SnapshotBytes: 4096, ProfileFor: Duration(10 * time.Second),
	}
	switch scenario {
	case "idle":
		o.Conns, o.Rate, o.Duration, o.Settle, o.Missed = 1000, 0, Duration(60*time.Second), Duration(5*time.Second), 10
	case "fanout":
		o.Conns, o.Rate, o.EventBytes, o.MaxP99, o.ReadBuffer, o.SnapshotBytes = 1000, 20, 300, Duration(time.Second), 4096, 0
	case "personal":
		o.Conns, o.Rate, o.ReadBuffer = 200, 50, 2048
	case "apps":
		o.Creators, o.Applicants, o.Rate, o.ReadBuffer = 50, 50, 20, 2048
	case "resume":
		o.Conns, o.Rounds, o.Pause, o.ResumeMode, o.Missed = 1000, 3, Duration(2*time.Second), ResumeReconnect, 10
	case "signin":
		o.Conns, o.Publishers, o.Duration = 200, 8, Duration(20*time.Second)
	case "publish":
		o.Conns, o.Rate, o.Batches, o.Publishers, o.Duration = 1000, 50, []int{1, 10, 100}, 16, Duration(10*time.Second)
	case "writes":
		o.Groups, o.Via, o.Duration, o.ReadBuffer, o.MaxP99 = 256, ViaBoth, Duration(20*time.Second), 2048, Duration(time.Second)
	case "django":
		o.Conns, o.Rate, o.Duration, o.Server, o.Senders = 100, 50, Duration(10*time.Second), "herald", 1
		o.ChannelsRedis, o.ChannelsLayer = "redis://127.0.0.1:6379/0", "core"
		o.DjangoDir, o.Python, o.DaphneBin = "internal/channelsredis/testdata/djangoapp", "/usr/bin/python3", "/usr/bin/daphne"
	}
	return o
}

// Limits on a run, so that a typo cannot start an endless or unbounded one.
const (
	MaxDuration  = 10 * time.Minute // one phase
	MaxTotal     = time.Hour        // all the steps of a fanout
	reservedFDs  = 500              // descriptors kept for REST, the server child, files
	MaxEventRate = 100_000
)

// check validates o against the limits; nofile is the descriptor limit.
func (o *Options) check(nofile uint64) error {
	var errs []error
	bad := func(f string, a ...any) { errs = append(errs, fmt.Errorf(f, a...)) }
	if !containsStr(Scenarios, o.Scenario) {
		bad("unknown scenario %q; want one of %s", o.Scenario, strings.Join(Scenarios, ", "))
	}
	conns := o.Conns
	if o.Scenario == "writes" {
		conns = o.Groups
		if o.Groups < o.Publishers || o.Groups > 10000 {
			bad("--groups %d: want at least --publishers (%d; each writer owns its rooms) and at most 10000", o.Groups, o.Publishers)
		}
		if o.Via != ViaREST && o.Via != ViaPublish && o.Via != ViaBoth {
			bad("--via %q: want %s, %s or %s", o.Via, ViaREST, ViaPublish, ViaBoth)
		}
	} else if o.Scenario == "apps" {
		conns = o.Creators + o.Applicants
		if o.Creators < 1 || o.Applicants < 1 {
			bad("--creators and --applicants must be at least 1")
		}
	} else if o.Conns < 1 && !(o.Scenario == "publish" && o.Conns == 0) {
		bad("--conns must be at least 1 (publish: 0 leaves out the latency phase)")
	}
	if o.Generators > 1 {
		conns = (conns + o.Generators - 1) / o.Generators
	}
	if nofile > 0 && uint64(conns)+reservedFDs > nofile {
		bad("%d connections need more descriptors than this process may open (%d, %d kept in reserve); lower --conns or raise --generators", conns, nofile, reservedFDs)
	}
	if o.Generators < 0 || o.Generators > MaxGenerators {
		bad("--generators %d: want 0 to %d", o.Generators, MaxGenerators)
	}
	if o.Generators > 1 && o.Scenario != "idle" && o.Scenario != "fanout" && o.Scenario != "personal" {
		bad("--generators: only idle, fanout and personal run their clients in several processes")
	}
	if o.Generators > 1 && o.Bare {
		bad("--generators and --bare exclude each other")
	}
	if o.Restart && (o.Scenario != "idle" || !o.Spawn || o.Procs < 2 || o.Generators < 2 || !o.V2) {
		bad("--restart: idle with --spawn, --procs 2 or more, --generators 2 or more and --v2 (the clients resume)")
	}
	if o.Restart && (o.Missed < 0 || o.Missed > 500) {
		bad("--missed %d: want 0 to 500", o.Missed)
	}
	if o.Seed {
		db, _ := flagValue(o.ServeArgs, "db")
		if o.Scenario != "personal" || !o.Spawn || !(strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")) {
			bad("--seed: personal with --spawn on PostgreSQL (--serve-args '--db postgres://…')")
		}
		if _, ok := flagValue(o.ServeArgs, "jwt-secret"); ok {
			bad("--seed signs tokens with the secret the spawned servers keep in their data directory; leave out --jwt-secret")
		}
	}
	if o.V2 && o.Scenario != "publish" && o.Scenario != "idle" {
		bad("--v2: publish and idle only")
	}
	if o.Duration.D() <= 0 || o.Duration.D() > MaxDuration {
		bad("--duration %v: want more than 0 and at most %v", o.Duration, MaxDuration)
	}
	if o.Rate < 0 || o.Rate > MaxEventRate {
		bad("--rate %v: want 0 to %d", o.Rate, MaxEventRate)
	}
	if (o.Scenario == "fanout" || o.Scenario == "personal" || o.Scenario == "apps" || o.Scenario == "django") && o.Rate <= 0 && len(o.Steps) == 0 {
		bad("--rate must be positive for %s", o.Scenario)
	}
	for _, s := range o.Steps {
		if s <= 0 || s > MaxEventRate {
			bad("--steps: %v is not a rate from 0 to %d", s, MaxEventRate)
		}
	}
	if n := max(len(o.Steps), 1); time.Duration(n)*o.Duration.D() > MaxTotal {
		bad("%d steps of %v is longer than %v", n, o.Duration, MaxTotal)
	}
	if len(o.Steps) > maxGenSteps {
		bad("--steps: %d rates; want at most %d", len(o.Steps), maxGenSteps)
	}
	if o.Drain < 0 || o.Drain.D() > MaxTotal {
		bad("--drain %v: want 0 to %v", o.Drain, MaxTotal)
	}
	if o.Scenario == "signin" && (o.Conns > 2000 || o.Publishers > 1000) {
		bad("signin: --conns %d, --publishers %d: want at most 2000 sign-ins in a burst and 1000 clients", o.Conns, o.Publishers)
	}
	if o.Scenario == "publish" {
		if o.Rate <= 0 && len(o.Steps) == 0 {
			bad("--rate must be positive for publish (the latency phase's events/s)")
		}
		if len(o.Batches) == 0 || len(o.Batches) > 10 {
			bad("--batches: want 1 to 10 batch sizes")
		}
		for _, b := range o.Batches {
			if b < 1 || b > 100 {
				bad("--batches: %d is not a batch size from 1 to 100", b)
			}
		}
		if n := len(o.Batches) + max(len(o.Steps), 1); time.Duration(n)*o.Duration.D() > MaxTotal {
			bad("%d phases of %v is longer than %v", n, o.Duration, MaxTotal)
		}
		if o.Watchers < 0 || o.Watchers > 1000 {
			bad("--watchers %d: want 0 to 1000", o.Watchers)
		}
	}
	if o.Scenario == "django" {
		if o.Server != "herald" && o.Server != "daphne" {
			bad("--server %q: want herald or daphne", o.Server)
		}
		if o.Senders < 1 || o.Senders > 16 {
			bad("--senders %d: want 1 to 16", o.Senders)
		}
		if o.ChannelsLayer != "core" && o.ChannelsLayer != "pubsub" {
			bad("--channels-layer %q: want core or pubsub", o.ChannelsLayer)
		}
		if err := loopbackRedis(o.ChannelsRedis); err != nil {
			bad("--channels-redis: %v", err)
		}
		if o.Server == "daphne" && o.Procs > 1 {
			bad("--procs: the daphne server is one process")
		}
	}
	if o.Bare && (o.Scenario != "idle" || o.Procs > 1) {
		bad("--bare: the bare server is one process, for the idle scenario")
	}
	if o.Scenario == "resume" {
		if o.Rounds < 1 || o.Rounds > 100 {
			bad("--rounds %d: want 1 to 100", o.Rounds)
		}
		if o.ResumeMode != ResumeReconnect && o.ResumeMode != ResumeV2 {
			bad("--resume %q: want %q or %q", o.ResumeMode, ResumeReconnect, ResumeV2)
		}
		if o.Missed < 0 || o.Missed > 500 {
			bad("--missed %d: want 0 to 500 (the server keeps 1,000 events of history per group)", o.Missed)
		}
	}
	if o.DialConcurrency < 1 || o.Publishers < 1 || o.RegisterConcurrency < 1 {
		bad("--dial-concurrency, --publishers and --register-concurrency must be at least 1")
	}
	if o.ReadBuffer < 512 || o.ReadBuffer > 1<<20 {
		bad("--read-buffer %d: want 512 to 1048576 bytes", o.ReadBuffer)
	}
	if o.Timeout.D() <= 0 {
		bad("--timeout must be positive")
	}
	if o.Profile && o.Out == "" {
		bad("--profile needs --out for the profiles")
	}
	if o.Profile && !o.Spawn && o.AdminAddr == "" {
		bad("--profile needs the server's --admin-addr (pprof), or --spawn")
	}
	if o.Spawn && o.ServerPID != 0 {
		bad("--server-pid and --spawn exclude each other (--spawn measures its own child)")
	}
	for _, kv := range o.ServeEnv {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" || strings.ContainsAny(k, " \t") {
			bad("--serve-env %q: want KEY=VALUE", kv)
		}
	}
	if len(o.ServeEnv) > 0 && !o.Spawn {
		bad("--serve-env needs --spawn")
	}
	// --spawn chooses each child's addresses; the bench would wait on the
	// wrong port, and several children cannot share one.
	for _, f := range []string{"addr", "admin-addr"} {
		if _, ok := flagValue(o.ServeArgs, f); ok {
			bad("--serve-args: leave out --%s, --spawn gives each process its own", f)
		}
	}
	if o.Procs < 1 || o.Procs > MaxTargets {
		bad("--procs %d: want 1 to %d", o.Procs, MaxTargets)
	}
	if o.Procs > 1 {
		db, _ := flagValue(o.ServeArgs, "db")
		layer, _ := flagValue(o.ServeArgs, "layer")
		switch {
		case !o.Spawn:
			bad("--procs needs --spawn; to drive running processes, give them all in --target, comma-separated")
		case !strings.HasPrefix(db, "postgres://") && !strings.HasPrefix(db, "postgresql://"):
			bad("--procs %d: processes must share a PostgreSQL database; add --serve-args '--db postgres://…'", o.Procs)
		case !strings.HasPrefix(layer, "redis://") && !strings.HasPrefix(layer, "rediss://"):
			bad("--procs %d: processes must share a Redis channel layer; add --serve-args '--layer redis://…'", o.Procs)
		}
		if o.AdminAddr != "" {
			bad("--admin-addr names one process; with --procs, --spawn gives each its own")
		}
	}
	if !o.Spawn && o.ServerPID != 0 && strings.Contains(o.Target, ",") {
		bad("--server-pid names one process; with several targets their pids are found from the listening sockets")
	}
	return errors.Join(errs...)
}

func containsStr(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// env is one run's shared machinery.
type env struct {
	o       Options
	targets []Target // every server process
	src     *Sources
	rest    *restClient
	dial    *dialer
	out     io.Writer
	res     *Results
	runID   string
	// spawnDB is the spawned servers' database, when --spawn made them.
	spawnDB string
	cluster *cluster    // the spawned servers
	gen     *generators // generator children, with --generators
	pids    []int       // server processes, none when unknown
	start   time.Time
	nofile  uint64
	prof    *profiler
	// admins are the servers' admin addresses (pprof), when known.
	admins []string

	open       atomic.Int64  // open client connections
	deliveries atomic.Uint64 // messages received that a scenario counts
	events     atomic.Uint64 // REST writes that succeeded
	connects   atomic.Uint64 // connections established

	mu       sync.Mutex
	status   func() string // progress line of the current phase
	phase    string
	timeline []TimelinePoint
	tty      bool
	printed  bool
}

// Run runs one scenario and returns its results; with o.Out set it also
// writes them. On an error after the measurement started, the results so
// far are returned with the error.
func Run(ctx context.Context, o Options) (*Results, error) {
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	nofile, err := RaiseFileLimit()
	if err != nil {
		return nil, fmt.Errorf("raise the open-file limit: %w", err)
	}
	if err := o.check(nofile); err != nil {
		return nil, err
	}
	e := &env{o: o, out: o.Stdout, start: time.Now(), nofile: nofile, tty: isTerminal(o.Stdout)}
	var idb [4]byte
	_, _ = rand.Read(idb[:])
	e.runID = hex.EncodeToString(idb[:])
	rev, modified := binaryRevision()
	e.res = &Results{
		Scenario: o.Scenario, Command: o.Command, CommandLine: ShellQuote(o.Command), Params: o,
		Machine: ThisMachine(), HeraldCommit: gitHead(ctx), BinaryCommit: rev, BinaryModified: modified,
		StartedAt: time.Now().UTC().Round(0),
	}
	e.res.Machine.FileLim = nofile
	if e.res.HeraldCommit == "" {
		e.res.HeraldCommit = rev // not run from a checkout: the binary's own revision
	}

	if o.Spawn {
		serveArgs := o.ServeArgs
		if o.Scenario == "publish" || o.Scenario == "writes" {
			// The bench measures the API, not the per-key limit; --serve-args
			// come later and win.
			serveArgs = append([]string{"--publish-rate", "-1"}, serveArgs...)
		}
		if o.Scenario == "django" && o.ChannelsPrefix == "" {
			// The run's own keys in the layer's Redis, deleted once the
			// servers stopped.
			o.ChannelsPrefix = "hbench" + e.runID
			e.o.ChannelsPrefix, e.res.Params.ChannelsPrefix = o.ChannelsPrefix, o.ChannelsPrefix
			defer func(o Options) {
				if err := dropPrefix(o); err != nil {
					fmt.Fprintf(e.out, "deleting the layer prefix %s: %v\n", o.ChannelsPrefix, err)
				}
			}(o)
		}
		if o.Scenario == "django" && o.Server == "herald" {
			serveArgs = append([]string{"--channels-redis", o.ChannelsRedis, "--channels-prefix", o.ChannelsPrefix,
				"--channels-layer", o.ChannelsLayer}, serveArgs...)
		}
		var cl *cluster
		switch {
		case o.Bare:
			cl, err = spawnBare(ctx, o.HeraldBin, o.SnapshotBytes, o.ServeEnv, o.Timeout.D())
		case o.Scenario == "django" && o.Server == "daphne":
			cl, err = spawnDaphne(ctx, o, o.Timeout.D())
		default:
			cl, err = spawnCluster(ctx, o.HeraldBin, serveArgs, o.ServeEnv, o.Procs, o.Timeout.D())
		}
		if err != nil {
			return nil, err
		}
		defer func() {
			if err := cl.stop(o.Out); err != nil {
				fmt.Fprintf(e.out, "stopping the spawned server: %v\n", err)
			}
		}()
		var bases, admins []string
		for _, s := range cl.servers {
			bases = append(bases, s.base)
			if s.admin != "" {
				admins = append(admins, s.admin)
			}
			e.pids = append(e.pids, s.pid)
			if cl.daphne {
				fmt.Fprintf(e.out, "spawned daphne (pid %d) on %s\n", s.pid, s.base)
				continue
			}
			if o.Bare {
				fmt.Fprintf(e.out, "spawned bare-server (pid %d) on %s, admin %s\n", s.pid, s.base, s.admin)
				continue
			}
			fmt.Fprintf(e.out, "spawned herald serve (pid %d) on %s, admin %s, database %s\n", s.pid, s.base, s.admin, store.Redact(cl.db))
		}
		o.Target, o.AdminAddr = strings.Join(bases, ","), strings.Join(admins, ",")
		e.spawnDB, e.cluster = cl.db, cl
		e.res.Params.AdminAddr = o.AdminAddr
		e.res.Spawned = true
	}
	if o.Scenario == "django" && o.ChannelsPrefix == "" {
		// A running server's layer: channels_redis's default prefix.
		o.ChannelsPrefix = "asgi"
		e.o.ChannelsPrefix, e.res.Params.ChannelsPrefix = o.ChannelsPrefix, o.ChannelsPrefix
	}
	if e.targets, err = ParseTargets(o.Target); err != nil {
		return nil, err
	}
	var bases []string
	for _, t := range e.targets {
		bases = append(bases, t.HTTP)
	}
	e.res.Target = strings.Join(bases, ",")
	e.res.Params.Target = e.res.Target
	if len(e.pids) == 0 && o.ServerPID != 0 {
		e.pids = []int{o.ServerPID}
	}
	if len(e.pids) == 0 {
		for _, t := range e.targets {
			pid, err := FindListener(t.Addr)
			if err != nil {
				e.note("server process of %s unknown (%v): no server memory or CPU figures", t.HTTP, err)
				e.pids = nil
				break
			}
			if !slices.Contains(e.pids, pid) { // one process may listen on several
				e.pids = append(e.pids, pid)
			}
		}
	}
	if len(e.pids) > 0 {
		e.res.ServerPID = e.pids[0]
	}
	if len(e.pids) > 1 {
		e.res.ServerPIDs = e.pids
	}
	if o.AdminAddr != "" {
		for _, a := range strings.Split(o.AdminAddr, ",") {
			admin, err := ParseTarget(strings.TrimSpace(a))
			if err != nil {
				return nil, fmt.Errorf("--admin-addr: %w", err)
			}
			e.admins = append(e.admins, admin.HTTP)
		}
	}
	if o.Profile {
		e.prof = &profiler{e: e, admins: e.admins, done: make(chan struct{})}
	}
	e.src = NewSources(e.targets[0].Addr.Addr()) // all of one family (ParseTargets)
	e.rest = newREST(bases, o.Publishers+o.RegisterConcurrency+8, o.Timeout.D())
	defer e.rest.close()
	e.dial = &dialer{targets: e.targets, perTarget: make([]atomic.Int64, len(e.targets)), src: e.src, timeout: o.Timeout.D(), bufSize: o.ReadBuffer, open: &e.open}
	if err := e.rest.waitReady(ctx, 30*time.Second); err != nil {
		return nil, err
	}
	fmt.Fprintf(e.out, "herald bench %s against %s (server pid %s, %d source addresses, open-file limit %d)\n",
		o.Scenario, e.res.Target, pidText(e.pids), max(e.src.Len(), 1), nofile)

	defer func() { e.gen.stop() }()
	stopTicker := e.startTicker()
	switch o.Scenario {
	case "idle":
		err = e.runIdle(ctx)
	case "fanout":
		err = e.runFanout(ctx)
	case "personal":
		err = e.runPersonal(ctx)
	case "apps":
		err = e.runApps(ctx)
	case "resume":
		err = e.runResume(ctx)
	case "signin":
		err = e.runSignIn(ctx)
	case "publish":
		err = e.runPublish(ctx)
	case "django":
		err = e.runDjango(ctx)
	case "writes":
		err = e.runWrites(ctx)
	}
	stopTicker()
	if e.prof != nil && e.prof.n > 0 {
		fmt.Fprintf(e.out, "waiting for %d CPU profile(s) of the server\n", e.prof.n)
		e.prof.wait()
	}
	e.res.FinishedAt = time.Now().UTC().Round(0)
	if len(e.targets) > 1 {
		for k := range e.dial.perTarget {
			e.res.ConnectsPerTarget = append(e.res.ConnectsPerTarget, e.dial.perTarget[k].Load())
		}
	}
	e.mu.Lock()
	e.res.Timeline = e.timeline
	e.mu.Unlock()
	if err != nil {
		e.res.Error = err.Error()
	}
	e.summary()
	if o.Out != "" {
		files, werr := e.res.Write(o.Out)
		if werr != nil {
			return e.res, errors.Join(err, fmt.Errorf("write results: %w", werr))
		}
		fmt.Fprintf(e.out, "wrote %s\n", strings.Join(files, ", "))
	}
	return e.res, err
}

func pidText(pids []int) string {
	if len(pids) == 0 {
		return "unknown"
	}
	s := make([]string, len(pids))
	for i, p := range pids {
		s[i] = fmt.Sprint(p)
	}
	return strings.Join(s, ",")
}

// serverCPU starts measuring the server processes' CPU; its stop returns
// nil when they are unknown.
func (e *env) serverCPU() cpuMeter {
	if len(e.pids) == 0 {
		return cpuMeter{}
	}
	return startCPU(e.pids...)
}

// serverStatus is the server processes' memory, summed.
func (e *env) serverStatus() (ProcStatus, error) { return sumStatus(e.pids) }

// note adds a line to the results' notes and prints it.
func (e *env) note(format string, a ...any) {
	s := fmt.Sprintf(format, a...)
	e.mu.Lock()
	e.res.Notes = append(e.res.Notes, s)
	e.mu.Unlock()
}

// setPhase names the current phase and its progress line.
func (e *env) setPhase(name string, status func() string) {
	e.mu.Lock()
	e.phase, e.status = name, status
	e.mu.Unlock()
}

// startTicker samples the counters once a second into the timeline and
// prints the progress line every Progress interval.
func (e *env) startTicker() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		var lastD, lastE, lastC uint64
		lastPrint := time.Now()
		for {
			select {
			case <-done:
				e.endLine()
				return
			case now := <-tick.C:
				d, ev, c := e.deliveries.Load(), e.events.Load(), e.connects.Load()
				e.mu.Lock()
				e.timeline = append(e.timeline, TimelinePoint{
					T: round3(now.Sub(e.start).Seconds()), Phase: e.phase,
					Deliveries: d - lastD, Events: ev - lastE, Connects: c - lastC, Conns: e.open.Load(),
				})
				status := e.status
				e.mu.Unlock()
				lastD, lastE, lastC = d, ev, c
				if status != nil && now.Sub(lastPrint) >= e.o.Progress.D()-50*time.Millisecond {
					lastPrint = now
					e.progress(fmt.Sprintf("[%4.0fs] %s", now.Sub(e.start).Seconds(), status()))
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// progress shows a progress line: in place on a terminal, one line each
// otherwise.
func (e *env) progress(line string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.tty {
		fmt.Fprintf(e.out, "\r%s\x1b[K", line)
		e.printed = true
		return
	}
	fmt.Fprintln(e.out, line)
}

// endLine ends an in-place progress line before other output.
func (e *env) endLine() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.tty && e.printed {
		fmt.Fprintln(e.out)
		e.printed = false
	}
}

// printf prints a line of the run's log (after ending a progress line).
func (e *env) printf(format string, a ...any) {
	e.endLine()
	e.mu.Lock()
	defer e.mu.Unlock()
	fmt.Fprintf(e.out, format, a...)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

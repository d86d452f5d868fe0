package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/heraldhq/herald/internal/bench"
	"github.com/heraldhq/herald/internal/config"
)

const benchUsage = `Usage: herald bench <scenario> [flags]

Drives a running herald over loopback (127.0.0.0/8 or ::1 only) with real
WebSocket clients and REST writes, and reports what it measured. Client
connections come from 127.0.0.2–127.0.0.254. With --spawn, a 'herald serve'
child on a temporary SQLite database is started and stopped around the run.

Scenarios:
  idle      open --conns connections to /ws/campaign/<id>/ at --rate per
            second (0: as fast as possible); connect rate, failures and the
            server's RSS per idle connection (add --token to authenticate)
  fanout    --conns subscribers in one campaign room; comments posted through
            REST at --rate per second (or each of --steps for --duration);
            deliveries/s, losses, latency from send to receipt
  personal  --conns users on /ws/applications/; the quest's creator approves
            and rejects their applications at --rate writes/s;
            application_update latency
  apps      the quest flow: --creators and --applicants on /ws/applications/,
            applying and deciding at --rate writes/s; REST-to-WebSocket latency
  resume    --conns clients drop at once and reconnect, --rounds times; time
            until all have campaign_data again (--resume v2: until all have
            the missed events replayed through protocol v2 resume)
  signin    password sign-ins: a burst of --conns at once (right passwords,
            then unknown users) and --publishers clients signing in for
            --duration; the server's peak RSS and the sign-in rate
  publish   POST /api/publish/ with an API key (--api-key, or one made on
            the spawned server's database): --publishers clients publishing
            as fast as answered for --duration per batch size of --batches,
            into a group nobody watches (events/s over HTTP); then single
            events at --rate to --conns subscribers of a campaign room
            (publish-to-receipt latency; each of --steps for several
            rates). --watchers clients of the throughput phase's group
            count its events delivered; --v2 makes every client speak
            protocol v2. --spawn runs the server with --publish-rate -1
  django    a Django process's async_to_sync(channel_layer.group_send) at
            --rate (or each of --steps) messages/s, from --senders Python
            processes running the test project's manage.py bench_send,
            through channels_redis to --conns WebSocket clients of one
            campaign room served by herald (--server herald: its
            --channels-redis) or by Daphne running the project's Channels
            consumer (--server daphne); group_send-to-receipt latency,
            deliveries/s, losses. --spawn starts the server on a new
            layer prefix
  writes    the cluster's write ceiling: --publishers writers write over
            --groups campaign rooms (REST comments, POST /api/publish/
            events or both: --via), as fast as answered or at each rate of
            --steps, --duration each; one v2 subscriber per room checks
            that every committed write arrives once, in order; committed
            and received writes/s, losses, write-to-receipt latency, and
            the highest rate that passed (nothing lost, p99 ≤ --max-p99)

Not a scenario:
  bare-server  the floor the idle figures are compared with: a WebSocket
            server of epoll and gobwas/ws alone (no state but the socket;
            no token check, database or pings) that answers every upgrade
            with a campaign_data of --snapshot-bytes. 'herald bench idle
            --spawn --bare' starts one and measures it like herald

Examples:
  herald bench idle --spawn --conns 10000
  herald bench fanout --spawn --conns 1000 --steps 10,20,50,100,200,400
  herald bench apps --target http://127.0.0.1:8000 --out results/apps
  herald bench signin --spawn --conns 200
  herald bench publish --spawn --conns 1000 --batches 1,10,100 --rate 50
  herald bench django --spawn --server daphne --conns 100 --steps 50,200
  herald bench writes --spawn --procs 3 --serve-args '--db postgres://… --layer redis://…'
  herald bench idle --spawn --procs 6 --generators 6 --conns 100000 --serve-args '--db postgres://… --layer redis://…'

Run 'herald bench <scenario> --help' for the flags, with that scenario's defaults.
`

// benchCommand runs `herald bench`.
func benchCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" || args[0] == "help" {
		fmt.Fprint(stdout, benchUsage)
		if len(args) == 0 {
			return &usageError{err: fmt.Errorf("bench: name a scenario: %s", strings.Join(bench.Scenarios, ", "))}
		}
		return flag.ErrHelp
	}
	scenario := args[0]
	if scenario == "bare-server" {
		return bareServerCommand(ctx, args[1:], stdout)
	}
	if scenario == bench.GeneratorCommand { // a child of --generators
		return bench.RunGenerator(ctx, os.Stdin, stdout)
	}
	known := false
	for _, s := range bench.Scenarios {
		known = known || s == scenario
	}
	if !known {
		return &usageError{fmt.Errorf("bench: unknown scenario %q; want one of %s", scenario, strings.Join(bench.Scenarios, ", ")), "run 'herald bench --help' for the scenarios"}
	}
	o := bench.Defaults(scenario)
	fs := benchFlags(scenario, &o)
	if asksHelp(args[1:]) {
		fmt.Fprintf(stdout, "Usage: herald bench %s [flags]\n\nFlags (defaults are this scenario's):\n", scenario)
		fs.SetOutput(stdout)
		config.PrintDefaults(fs)
		return flag.ErrHelp
	}
	if err := parseFlags(fs, args[1:]); err != nil {
		return &usageError{fmt.Errorf("bench %s: %w", scenario, err), flagsHint("herald bench " + scenario)}
	}
	o.Stdout = stdout
	o.Command = append([]string{os.Args[0], "bench"}, redactKey(args)...)
	_, err := bench.Run(ctx, o)
	return err
}

// redactKey returns args with the value of --api-key hidden: the command
// line is written to results.json and printed.
func redactKey(args []string) []string {
	out := append([]string(nil), args...)
	for i, a := range out {
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name != "api-key" || !strings.HasPrefix(a, "-") {
			continue
		}
		if hasValue {
			out[i] = a[:strings.Index(a, "=")+1] + "hk_…"
		} else if i+1 < len(out) {
			out[i+1] = "hk_…"
		}
	}
	return out
}

// asksHelp reports whether args ask for --help.
func asksHelp(args []string) bool {
	for _, a := range args {
		if a == "-h" || a == "--help" || a == "-help" {
			return true
		}
	}
	return false
}

// durationFlag is a bench.Duration flag, which --help shows as a
// duration with its default.
type durationFlag struct{ p *bench.Duration }

func (d durationFlag) String() string {
	if d.p == nil { // the zero value flag.PrintDefaults compares with
		return ""
	}
	return d.p.String()
}

func (d durationFlag) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d.p = bench.Duration(v)
	return nil
}

func (durationFlag) Placeholder() string { return "duration" }

// benchFlags declares the flags of one scenario, bound to o. A list flag
// names its value in its usage, between backquotes, as package flag reads
// it.
func benchFlags(scenario string, o *bench.Options) *flag.FlagSet {
	fs := flag.NewFlagSet("herald bench "+scenario, flag.ContinueOnError)
	dur := func(p *bench.Duration, name, usage string) { fs.Var(durationFlag{p}, name, usage) }
	fs.StringVar(&o.Target, "target", o.Target, "base URL of the herald to drive (loopback only); several comma-separated (processes sharing PostgreSQL and Redis) get the clients and REST writes in turn")
	fs.BoolVar(&o.Spawn, "spawn", o.Spawn, "start 'herald serve' on a temporary SQLite database (no demo data) for the run, and stop it after")
	fs.IntVar(&o.Procs, "procs", o.Procs, "with --spawn: start this many processes, spread over like several --target (needs --serve-args '--db postgres://… --layer redis://…')")
	fs.StringVar(&o.HeraldBin, "herald-bin", o.HeraldBin, "with --spawn: the herald binary to start (default: this one)")
	fs.Func("serve-args", "with --spawn: extra `flags` for 'herald serve', space-separated", func(s string) error {
		o.ServeArgs = append(o.ServeArgs, strings.Fields(s)...)
		return nil
	})
	fs.Func("serve-env", "with --spawn: `KEY=VALUE` added to the servers' environment (repeatable), e.g. GOMAXPROCS=1", func(s string) error {
		o.ServeEnv = append(o.ServeEnv, s)
		return nil
	})
	fs.IntVar(&o.ServerPID, "server-pid", o.ServerPID, "pid of the server whose memory and CPU to read (default: the process listening on the target port)")
	fs.StringVar(&o.Out, "out", o.Out, "directory for results.json and the SVG charts")
	fs.IntVar(&o.Conns, "conns", o.Conns, "WebSocket clients: connections (idle, resume), subscribers (fanout, publish, django; publish: 0 for no latency phase), users (personal); signin: sign-ins in the burst")
	fs.Float64Var(&o.Rate, "rate", o.Rate, "connections/s (idle; 0 = as fast as possible), events/s (fanout, publish's latency phase), REST writes/s (personal, apps), group_sends/s (django), writes/s in all (writes; 0 = as fast as answered)")
	fs.Func("batches", "publish: comma-separated batch `sizes` (1 to 100) to measure throughput with, --duration each", func(s string) error {
		o.Batches = nil
		for _, f := range strings.Split(s, ",") {
			v, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				return fmt.Errorf("%q is not a whole number", f)
			}
			o.Batches = append(o.Batches, v)
		}
		return nil
	})
	fs.StringVar(&o.APIKey, "api-key", o.APIKey, "publish: the API key to publish with (scope campaign); with --spawn one is made")
	fs.IntVar(&o.Watchers, "watchers", o.Watchers, "publish: WebSocket clients of the throughput phase's group (spread over the processes), to count its events delivered")
	fs.BoolVar(&o.V2, "v2", o.V2, "publish: subscribers and watchers speak protocol v2 (?v=2); idle: the clients do")
	fs.IntVar(&o.Generators, "generators", o.Generators, "idle, fanout, personal: run the clients in this many child processes, each on its own source addresses (one process may hold about 20,000 connections); their figures are merged")
	fs.BoolVar(&o.Restart, "restart", o.Restart, "idle: after the idle phase, restart every spawned process in turn (SIGTERM, start again) while --v2 clients reconnect and resume, posting --missed comments while each is down; time until every client is current again, losses (needs --procs and --generators 2 or more)")
	fs.BoolVar(&o.Seed, "seed", o.Seed, "personal: make the users and their applications straight in the spawned servers' PostgreSQL database (one argon2id hash for all) and sign their tokens with the servers' JWT secret, instead of registering each through REST")
	fs.StringVar(&o.Server, "server", o.Server, "django: what the clients connect to: herald (its --channels-redis) or daphne (the test project's Channels consumer)")
	fs.IntVar(&o.Senders, "senders", o.Senders, "django: Python processes calling group_send, sharing --rate")
	fs.StringVar(&o.ChannelsRedis, "channels-redis", o.ChannelsRedis, "django: the channels_redis layer's Redis (loopback only)")
	fs.StringVar(&o.ChannelsPrefix, "channels-prefix", o.ChannelsPrefix, "django: the layer's prefix (default: with --spawn a new one for the run, deleted after; without, asgi, channels_redis's default)")
	fs.StringVar(&o.ChannelsLayer, "channels-layer", o.ChannelsLayer, "django: core (RedisChannelLayer) or pubsub (RedisPubSubChannelLayer)")
	fs.StringVar(&o.DjangoDir, "django-dir", o.DjangoDir, "django: the Django project with manage.py bench_send and djangoapp.asgi (relative to the repository root, or a path)")
	fs.StringVar(&o.Python, "python", o.Python, "django: the python3 with Django Channels and channels_redis")
	fs.StringVar(&o.DaphneBin, "daphne-bin", o.DaphneBin, "django: the daphne to start with --spawn --server daphne")
	fs.IntVar(&o.Groups, "groups", o.Groups, "writes: campaign rooms written to, one subscriber each (at least --publishers)")
	fs.StringVar(&o.Via, "via", o.Via, "writes: rest (comments), publish (POST /api/publish/, an API key: --api-key, or one made with --spawn) or both (each writer alternates)")
	fs.Func("steps", "fanout, publish's latency phase, django, writes: comma-separated event `rates` to ramp through, --duration each (e.g. 10,20,50,100)", func(s string) error {
		o.Steps = nil
		for _, f := range strings.Split(s, ",") {
			v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil {
				return fmt.Errorf("%q is not a number", f)
			}
			o.Steps = append(o.Steps, v)
		}
		return nil
	})
	dur(&o.Duration, "duration", "bound of a phase: connecting (idle), each step (fanout, django, writes), the writes (personal, apps), each round (resume), the sustained sign-ins (signin), each batch size and the latency phase (publish)")
	fs.BoolVar(&o.Token, "token", o.Token, "campaign clients authenticate with ?token= (idle, fanout, resume)")
	fs.BoolVar(&o.Bare, "bare", o.Bare, "idle: the target is a bare-server (with --spawn, one is started): no accounts or campaign are set up; --token sends a placeholder token as long as a real one")
	dur(&o.Settle, "settle", "idle: quiet time before reading the server's memory")
	dur(&o.Hold, "hold", "idle: keep the connections open this much longer")
	fs.IntVar(&o.SnapshotBytes, "snapshot-bytes", o.SnapshotBytes, "pad the campaign so campaign_data is about this size (0: no padding)")
	fs.IntVar(&o.EventBytes, "event-bytes", o.EventBytes, "fanout: size of one comment event message")
	fs.IntVar(&o.Publishers, "publishers", o.Publishers, "concurrent REST writers (keep-alive connections); signin: clients signing in for --duration")
	dur(&o.Drain, "drain", "after the writes, wait at most this long for the last events")
	dur(&o.MaxP99, "max-p99", "fanout, writes: a step passes with no loss and p99 latency at most this")
	fs.BoolVar(&o.KeepGoing, "keep-going", o.KeepGoing, "fanout, writes: run every step even after one fails")
	fs.IntVar(&o.Creators, "creators", o.Creators, "apps: quest creators")
	fs.IntVar(&o.Applicants, "applicants", o.Applicants, "apps: applicants")
	fs.IntVar(&o.Rounds, "rounds", o.Rounds, "resume: drop-and-reconnect rounds")
	dur(&o.Pause, "pause", "resume: wait between rounds")
	fs.StringVar(&o.ResumeMode, "resume", o.ResumeMode, "resume: how clients come back: 'reconnect' (v1, a fresh campaign_data) or 'v2' (protocol v2 resume positions, missed events replayed)")
	fs.IntVar(&o.Missed, "missed", o.Missed, "resume v2, idle --restart: comments published while the clients are away, replayed on resume")
	fs.Float64Var(&o.ConnectRate, "connect-rate", o.ConnectRate, "connections/s when connecting the clients a scenario needs (0 = as fast as possible)")
	fs.IntVar(&o.DialConcurrency, "dial-concurrency", o.DialConcurrency, "connection attempts in flight at once")
	fs.IntVar(&o.RegisterConcurrency, "register-concurrency", o.RegisterConcurrency, "account sign-ups in flight at once (each costs the server two argon2id hashes)")
	dur(&o.Timeout, "timeout", "bound of one connection attempt or REST request")
	fs.IntVar(&o.ReadBuffer, "read-buffer", o.ReadBuffer, "read buffer per client connection, bytes")
	dur(&o.Progress, "progress", "interval of the progress line")
	fs.BoolVar(&o.Profile, "profile", o.Profile, "take CPU profiles of the server during each measured phase into --out (needs --spawn or --admin-addr)")
	fs.StringVar(&o.AdminAddr, "admin-addr", o.AdminAddr, "the server's admin address (herald serve --admin-addr): pprof for --profile, a forced GC before reading memory and its /metrics (without it they are read from the main address, which serves them only with --public-metrics); --spawn sets one up")
	dur(&o.ProfileFor, "profile-for", "length of a CPU profile of a phase without a fixed length (connecting, reconnecting)")
	return fs
}

// bareServerCommand runs `herald bench bare-server` until it is stopped.
func bareServerCommand(ctx context.Context, args []string, stdout io.Writer) error {
	const called = "herald bench bare-server"
	o := bench.BareOptions{Addr: "127.0.0.1:8100", SnapshotBytes: 4096, Pollers: 1}
	fs := flag.NewFlagSet(called, flag.ContinueOnError)
	fs.StringVar(&o.Addr, "addr", o.Addr, "loopback `host:port` to serve WebSocket upgrades (any path) and GET /healthz on")
	fs.StringVar(&o.AdminAddr, "admin-addr", o.AdminAddr, "`host:port` for /metrics and /debug/pprof/ (none when empty)")
	fs.IntVar(&o.SnapshotBytes, "snapshot-bytes", o.SnapshotBytes, "size of the campaign_data message sent with each handshake response")
	fs.IntVar(&o.Pollers, "pollers", o.Pollers, "epoll loops")
	if asksHelp(args) {
		fmt.Fprintf(stdout, "Usage: %s [flags]\n\nA WebSocket server of epoll and gobwas/ws alone, the floor the idle figures\nare compared with (see 'herald bench --help').\n\nFlags:\n", called)
		fs.SetOutput(stdout)
		config.PrintDefaults(fs)
		return flag.ErrHelp
	}
	if err := parseFlags(fs, args); err != nil {
		return &usageError{fmt.Errorf("bench bare-server: %w", err), flagsHint(called)}
	}
	return bench.ServeBare(ctx, o, func(addr string) {
		fmt.Fprintf(stdout, "bare-server on %s\n", addr)
	})
}

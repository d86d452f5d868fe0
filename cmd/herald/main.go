// Command herald is the herald real-time server: `herald serve` (the default)
// runs it, `herald migrate` applies database migrations, `herald apikey`
// manages the API keys other backends publish with, `herald bench`
// load-tests a running server.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/heraldhq/herald/internal/app"
	"github.com/heraldhq/herald/internal/config"
	"github.com/heraldhq/herald/internal/version"
)

const usage = `herald — real-time campaigns and quests: REST API, WebSocket and SSE updates.

Usage:
  herald [serve] [flags]   run the server (the default command)
  herald migrate [flags]   apply database migrations and exit
  herald apikey create|list|revoke
                           manage the API keys other backends publish events
                           with (POST /api/publish/)
  herald bench <scenario>  load-test a running herald over loopback (idle,
                           fanout, personal, apps, resume, signin, publish)
  herald version           print the version and commit herald was built from
  herald help [command]    show help for a command

Every flag can also be set with an environment variable HERALD_<FLAG>, e.g.
HERALD_DB=postgres://localhost/herald, or a key of the TOML file --config names.
`

const serveSummary = "Runs herald: the REST API, the real-time endpoints and the web app."

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(report(err, os.Stderr))
}

// usageError is a mistake in how herald was called: an unknown command or
// flag, a value the configuration refuses. It is printed with where to find
// help, and herald exits with status 2.
type usageError struct {
	err error
	// hint says where to read about what was wrong, as in "run 'herald
	// serve --help' for the flags"; empty when the usage was just printed.
	hint string
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// flagsHint points to the --help of the command called, "herald migrate".
func flagsHint(called string) string { return "run '" + called + " --help' for the flags" }

// report prints err, if any, to stderr and returns herald's exit status:
// 0, 2 for a usage error, 1 for any other.
func report(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintln(stderr, "herald:", err)
	var ue *usageError
	if errors.As(err, &ue) {
		if ue.hint != "" {
			fmt.Fprintln(stderr, ue.hint)
		}
		return 2
	}
	return 1
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cmd := "serve"
	// What the user typed to run the command, for the hint after a
	// mistake: "herald" alone runs serve.
	called := "herald"
	if len(args) > 0 && !(len(args[0]) > 0 && args[0][0] == '-') {
		cmd, args = args[0], args[1:]
		called = "herald " + cmd
	} else if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
		return topHelp(stdout, getenv)
	} else if len(args) > 0 && (args[0] == "--version" || args[0] == "-version") {
		cmd, args = "version", args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, called, args, stdout, stderr, getenv)
	case "migrate":
		return migrate(ctx, args, stdout, stderr, getenv)
	case "apikey":
		return apikeyCommand(ctx, args, stdout, stderr, getenv)
	case "bench":
		return benchCommand(ctx, args, stdout, stderr)
	case "version":
		if len(args) > 0 {
			return &usageError{fmt.Errorf("version: unexpected argument %q", args[0]), "run 'herald --help' for the commands"}
		}
		fmt.Fprintln(stdout, "herald", version.Get())
		return nil
	case "help":
		if len(args) > 0 {
			return run(ctx, []string{args[0], "--help"}, stdout, stderr, getenv)
		}
		return topHelp(stdout, getenv)
	default:
		return &usageError{fmt.Errorf("unknown command %q", cmd), "run 'herald --help' for the commands"}
	}
}

// topHelp prints herald's commands and the flags of serve, the default one.
func topHelp(stdout io.Writer, getenv func(string) string) error {
	fmt.Fprint(stdout, usage)
	fs := flag.NewFlagSet("herald", flag.ContinueOnError)
	fs.SetOutput(stdout)
	config.FlagSet(fs, getenv)
	fmt.Fprint(stdout, "\nFlags of herald serve (each also an environment variable):\n")
	config.PrintDefaults(fs)
	return flag.ErrHelp
}

// parse parses the flags of the command called (as "herald migrate");
// --help prints to stdout and stops.
func parse(called, summary string, args []string, stdout io.Writer, getenv func(string) string) (config.Config, error) {
	fs := flag.NewFlagSet(called, flag.ContinueOnError)
	resolve := config.FlagSet(fs, getenv)
	for _, a := range args {
		if a == "-h" || a == "--help" || a == "-help" {
			fs.SetOutput(stdout)
			fmt.Fprintf(stdout, "Usage: %s [flags]\n\n%s\n\nFlags (each also an environment variable):\n", called, summary)
			config.PrintDefaults(fs)
			return config.Config{}, flag.ErrHelp
		}
	}
	if err := parseFlags(fs, args); err != nil {
		return config.Config{}, &usageError{err, flagsHint(called)}
	}
	cfg, err := resolve()
	if err != nil {
		return config.Config{}, &usageError{err, flagsHint(called)}
	}
	return cfg, nil
}

// parseFlags parses args into fs, which prints nothing: the caller reports
// the error. An argument left over is an error too, which says how to give
// a boolean flag its value when that is the mistake (--demo false).
func parseFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return nil
	}
	extra := fs.Arg(0)
	if i := len(args) - fs.NArg(); i > 0 && strings.HasPrefix(args[i-1], "-") {
		name := strings.TrimLeft(args[i-1], "-")
		if f := fs.Lookup(name); f != nil && isBoolFlag(f) {
			if _, err := strconv.ParseBool(extra); err == nil {
				return fmt.Errorf("unexpected argument %q: a boolean flag takes its value after =, as in --%s=%s", extra, name, extra)
			}
		}
	}
	return fmt.Errorf("unexpected argument %q", extra)
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func serve(ctx context.Context, called string, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cfg, err := parse(called, serveSummary, args, stdout, getenv)
	if err != nil {
		return err
	}
	log := cfg.Logger(stderr)
	// Listen first: an address in use is refused before the database is
	// opened, migrated and seeded. Connections wait in the backlog until
	// Serve accepts them.
	ln, err := app.Listen(ctx, cfg.Addr)
	if err != nil {
		return err
	}
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		ln.Close()
		return err
	}
	defer a.Close()
	return a.Serve(ctx, ln)
}

func migrate(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cfg, err := parse("herald migrate", "Applies the database migrations herald has not yet applied, then exits.", args, stdout, getenv)
	if err != nil {
		return err
	}
	db, err := app.OpenDB(ctx, cfg, cfg.Logger(stderr))
	if err != nil {
		return err
	}
	defer db.Close()
	applied, err := db.Migrate(ctx)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintln(stdout, "database is up to date")
	}
	for _, m := range applied {
		fmt.Fprintln(stdout, "applied", m)
	}
	return nil
}

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
	"syscall"

	"github.com/heraldhq/herald/internal/app"
	"github.com/heraldhq/herald/internal/config"
	"github.com/heraldhq/herald/internal/store"
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
  herald help [command]    show help for a command

Every flag can also be set with an environment variable HERALD_<FLAG>, e.g.
HERALD_DB=postgres://localhost/herald. Run 'herald serve --help' for the flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "herald:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cmd := "serve"
	if len(args) > 0 && !(len(args[0]) > 0 && args[0][0] == '-') {
		cmd, args = args[0], args[1:]
	} else if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
		fmt.Fprint(stdout, usage)
		return flag.ErrHelp
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, stdout, stderr, getenv)
	case "migrate":
		return migrate(ctx, args, stdout, stderr, getenv)
	case "apikey":
		return apikeyCommand(ctx, args, stdout, stderr, getenv)
	case "bench":
		return benchCommand(ctx, args, stdout, stderr)
	case "help":
		if len(args) > 0 {
			return run(ctx, []string{args[0], "--help"}, stdout, stderr, getenv)
		}
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
}

// parse parses a command's flags; --help prints to stdout and stops.
func parse(name, summary string, args []string, stdout, stderr io.Writer, getenv func(string) string) (config.Config, error) {
	fs := flag.NewFlagSet("herald "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	resolve := config.FlagSet(fs, getenv)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: herald %s [flags]\n\n%s\n\nFlags (each also an environment variable):\n", name, summary)
		fs.PrintDefaults()
	}
	for _, a := range args {
		if a == "-h" || a == "--help" || a == "-help" {
			fs.SetOutput(stdout)
			fs.Usage()
			return config.Config{}, flag.ErrHelp
		}
	}
	if err := fs.Parse(args); err != nil {
		return config.Config{}, err
	}
	if fs.NArg() > 0 {
		return config.Config{}, fmt.Errorf("%s: unexpected argument %q", name, fs.Arg(0))
	}
	return resolve()
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cfg, err := parse("serve", "Runs herald: the REST API, the real-time endpoints and the web app.", args, stdout, stderr, getenv)
	if err != nil {
		return err
	}
	log := cfg.Logger(stderr)
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	ln, err := app.Listen(ctx, cfg.Addr)
	if err != nil {
		return err
	}
	return a.Serve(ctx, ln)
}

func migrate(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cfg, err := parse("migrate", "Applies the database migrations herald has not yet applied, then exits.", args, stdout, stderr, getenv)
	if err != nil {
		return err
	}
	db, err := store.Open(ctx, cfg.DB)
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

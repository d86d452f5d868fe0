package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/heraldhq/herald/internal/apikey"
	"github.com/heraldhq/herald/internal/app"
	"github.com/heraldhq/herald/internal/config"
	"github.com/heraldhq/herald/internal/groups"
)

const apikeyUsage = `Usage:
  herald apikey create --name NAME --scope SCOPE[,SCOPE…] [--db …]
  herald apikey list [--db …]
  herald apikey revoke ID [--db …]

API keys let another backend publish events to herald's groups with
POST /api/publish/ (docs/publish.md). A scope is a namespace (campaign,
quest, user, or one of the config file's: every group in it) or one group
(campaign_5, chat:lobby). create
prints the key once, on standard output: only a hash of it is kept. list
never shows keys. revoke refuses a key from then on.

The database is --db (or HERALD_DB), as for 'herald serve'; migrations not
yet applied are applied first.
`

// apikeyCommand runs `herald apikey`.
func apikeyCommand(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" || args[0] == "help" {
		fmt.Fprint(stdout, apikeyUsage)
		if len(args) == 0 {
			return &usageError{err: errors.New("apikey: name a command: create, list or revoke")}
		}
		return flag.ErrHelp
	}
	sub, args := args[0], args[1:]
	called := "herald apikey " + sub
	fs := flag.NewFlagSet(called, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	resolve := config.FlagSet(fs, getenv)
	var name, scopes string
	switch sub {
	case "create":
		fs.StringVar(&name, "name", "", "what the key is for, e.g. the backend that uses it")
		fs.StringVar(&scopes, "scope", "", "comma-separated scopes: namespaces (campaign, quest, user, the config file's) or groups like campaign_5")
	case "list", "revoke":
	default:
		return &usageError{fmt.Errorf("apikey: unknown command %q; want create, list or revoke", sub), "run 'herald apikey --help' for its commands"}
	}
	for _, a := range args {
		if a == "-h" || a == "--help" || a == "-help" {
			fs.SetOutput(stdout)
			fmt.Fprint(stdout, apikeyUsage, "\nFlags (each also an environment variable):\n")
			config.PrintDefaults(fs)
			return flag.ErrHelp
		}
	}
	// Flags may come before or after revoke's ID.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return &usageError{err, flagsHint(called)}
		}
		if fs.NArg() == 0 {
			break
		}
		pos, args = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
	want := 0
	if sub == "revoke" {
		want = 1
	}
	if len(pos) != want {
		return &usageError{fmt.Errorf("apikey %s: want %d argument(s), got %q", sub, want, pos), flagsHint(called)}
	}
	if sub == "create" && (name == "" || scopes == "") {
		return &usageError{errors.New("apikey create: --name and --scope are required"), flagsHint(called)}
	}
	cfg, err := resolve()
	if err != nil {
		return &usageError{err, flagsHint(called)}
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
	for _, m := range applied {
		fmt.Fprintln(stderr, "applied", m)
	}
	// The config file's namespaces are scopes too.
	reg, err := groups.New(cfg.Namespaces)
	if err != nil {
		return err
	}
	keys := apikey.New(db, reg, nil)
	switch sub {
	case "create":
		return createKey(ctx, keys, name, scopes, stdout, stderr)
	case "list":
		return listKeys(ctx, keys, stdout)
	default:
		return revokeKey(ctx, keys, pos[0], stdout)
	}
}

func createKey(ctx context.Context, keys *apikey.Store, name, scopes string, stdout, stderr io.Writer) error {
	var list []string
	for _, s := range strings.Split(scopes, ",") {
		list = append(list, strings.TrimSpace(s))
	}
	k, token, err := keys.Create(ctx, name, list)
	if err != nil {
		return fmt.Errorf("apikey create: %w", err)
	}
	// The key alone on standard output, so a script can capture it.
	fmt.Fprintln(stdout, token)
	fmt.Fprintf(stderr, "created API key %s (%s) for %s\nThis is the only time the key is shown: store it now.\n",
		k.ID, printable(k.Name), strings.Join(k.Scopes, ","))
	return nil
}

func listKeys(ctx context.Context, keys *apikey.Store, stdout io.Writer) error {
	list, err := keys.List(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSCOPES\tCREATED\tLAST USED\tREVOKED")
	at := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.Format(time.RFC3339)
	}
	for _, k := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, printable(k.Name), strings.Join(k.Scopes, ","),
			k.CreatedAt.Format(time.RFC3339), at(k.LastUsedAt), at(k.RevokedAt))
	}
	return tw.Flush()
}

func revokeKey(ctx context.Context, keys *apikey.Store, id string, stdout io.Writer) error {
	k, err := keys.Revoke(ctx, id)
	if errors.Is(err, apikey.ErrNotFound) {
		return fmt.Errorf("apikey revoke: no API key has the id %q (see herald apikey list)", printable(id))
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "API key %s (%s) is revoked since %s\n", k.ID, printable(k.Name), k.RevokedAt.Format(time.RFC3339))
	return nil
}

// printable keeps a stored or typed value from driving the terminal it is
// printed on.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.In(r, unicode.Bidi_Control) {
			return '?'
		}
		return r
	}, s)
}

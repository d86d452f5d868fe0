package config

import (
	"flag"
	"fmt"
	"strings"
)

// flagOption is one of serve's flags: the value given (by the flag, the
// environment or the config file; FlagSet's function checks it) and the
// kind of value it takes, which --help names.
type flagOption struct {
	p    *string
	kind string
}

func (o flagOption) String() string {
	if o.p == nil { // the zero value flag.PrintDefaults compares with
		return ""
	}
	return *o.p
}

// Set keeps the value as given: FlagSet's function checks it like the
// environment's and the file's, with the same message.
func (o flagOption) Set(v string) error {
	*o.p = v
	return nil
}

// IsBoolFlag lets a boolean flag stand alone (--demo) or take its value
// after = (--demo=false), as the flag package's own booleans do.
func (o flagOption) IsBoolFlag() bool { return o.kind == "bool" }

// Placeholder is the name --help gives the flag's value: none for a
// boolean.
func (o flagOption) Placeholder() string {
	if o.IsBoolFlag() {
		return ""
	}
	return o.kind
}

// PrintDefaults writes the flags of fs to its output like
// fs.PrintDefaults, but names the value of each of serve's flags by its
// kind (addr, url, duration, int, bytes…; nothing for a boolean) where the
// flag package would only say "value". Other flags are printed as the flag
// package would.
func PrintDefaults(fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		_, ours := f.Value.(flagOption)
		if p, ok := f.Value.(interface{ Placeholder() string }); ok {
			name = p.Placeholder()
		}
		var b strings.Builder
		fmt.Fprintf(&b, "  -%s", f.Name)
		if name != "" {
			b.WriteString(" " + name)
		}
		// The layout of flag.PrintDefaults: a one-letter boolean's usage on
		// its line, any other's indented on the next.
		if b.Len() <= 4 {
			b.WriteString("\t")
		} else {
			b.WriteString("\n    \t")
		}
		b.WriteString(strings.ReplaceAll(usage, "\n", "\n    \t"))
		switch def := f.DefValue; {
		case def == "" || def == "0" || def == "false":
			// the zero value goes without saying
		case name == "string" || (ours && quoted(name)):
			fmt.Fprintf(&b, " (default %q)", def)
		default:
			fmt.Fprintf(&b, " (default %v)", def)
		}
		fmt.Fprintln(fs.Output(), b.String())
	})
}

// quoted reports whether the default of a flag of this kind is printed in
// quotes: a text, rather than a number, duration or boolean.
func quoted(kind string) bool {
	switch kind {
	case "", "int", "bytes", "duration":
		return false
	}
	return true
}

package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"strings"
	"testing"
)

// herald bench's --help names every flag's value by its kind, a duration
// as a duration and a list by what it lists, never "value", and shows the
// scenario's defaults; bare-server's too.
func TestBenchHelp(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"bench", "writes", "--help"}, []string{
			"\n  -duration duration\n", "(default 20s)", "\n  -max-p99 duration\n", "\n  -steps rates\n", "\n  -batches sizes\n",
			"\n  -serve-args flags\n", "\n  -serve-env KEY=VALUE\n", "\n  -spawn\n", "\n  -groups int\n", "(default 256)",
		}},
		{[]string{"bench", "bare-server", "--help"}, []string{"\n  -addr host:port\n", "(default 127.0.0.1:8100)", "\n  -pollers int\n"}},
	} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), c.args, &out, &errOut, env(nil)); !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("herald %v: %v", c.args, err)
		}
		for _, want := range c.want {
			if !strings.Contains(out.String(), want) {
				t.Errorf("herald %v lacks %q:\n%s", c.args, want, out.String())
			}
		}
		if strings.Contains(out.String(), " value\n") {
			t.Errorf("herald %v names a flag's value \"value\":\n%s", c.args, out.String())
		}
		if errOut.Len() != 0 {
			t.Errorf("herald %v wrote to standard error: %q", c.args, errOut.String())
		}
	}
}

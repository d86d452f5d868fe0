package bench

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/config"
	"github.com/heraldhq/herald/internal/realtime/layer/redistest"
	"github.com/heraldhq/herald/internal/testenv"
)

// djangoDir is the test project, from this package's directory.
const djangoDir = "../channelsredis/testdata/djangoapp"

// requireDaphne skips t, in one line saying what to install, when Debian's
// python3 lacks Django Channels or channels_redis or daphne is missing,
// except in CI (CI=true), whose .ci/run installs them: there it fails.
func requireDaphne(t *testing.T) {
	t.Helper()
	out, err := exec.Command("/usr/bin/python3", "-c", "import django, channels, channels_redis, daphne").CombinedOutput()
	if err == nil {
		_, err = exec.LookPath("/usr/bin/daphne")
	}
	if err != nil {
		msg := "the django scenario needs apt-get install -y daphne python3-django python3-channels-redis (" +
			strings.TrimSpace(string(bytes.TrimSpace(out))) + ")"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// The django scenario, tiny, against both servers on the same Redis: a
// Python group_send reaches every client of herald (--channels-redis) and
// of Daphne running the test project's consumer, once each.
func TestDjangoScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	requireDaphne(t)
	check := func(t *testing.T, res *Results, out string, server string) {
		t.Helper()
		f := res.Django
		if f == nil || f.Server != server || len(f.Steps) != 1 || f.Senders != 2 || !strings.HasPrefix(f.Group, "campaign_") {
			t.Fatalf("figures %+v\n%s", f, out)
		}
		checkConnect(t, f.Connect, 10)
		st := f.Steps[0]
		if st.Planned != 20 || st.Sent < 15 || st.Expected != int64(st.Sent)*10 || st.Delivered != st.Expected || st.Lost != 0 ||
			st.Duplicates != 0 || st.Disconnects != 0 || st.Latency.Count != uint64(st.Delivered) || st.Latency.P99Ms <= 0 ||
			st.DeliveriesPerS <= 0 || len(st.Errors) != 0 {
			t.Errorf("%s step: %+v\n%s", server, st, out)
		}
	}
	o := Defaults("django")
	o.Conns, o.Rate, o.Duration, o.Senders, o.DjangoDir = 10, 20, Duration(time.Second), 2, djangoDir
	o.ChannelsRedis = redistest.SharedURL()

	t.Run("herald", func(t *testing.T) {
		o := o
		o.ChannelsPrefix = redistest.Prefix(t)
		h := testenv.StartHerald(t, testenv.SQLite(t), func(c *config.Config) {
			c.PublicMetrics = true
			c.ChannelsRedis, c.ChannelsPrefix, c.ChannelsLayer = o.ChannelsRedis, o.ChannelsPrefix, "core"
		})
		res, out := runTiny(t, h.Base, o, "latency.svg", "throughput.svg")
		check(t, res, out, "herald")
	})
	t.Run("daphne", func(t *testing.T) {
		var out bytes.Buffer
		o := o
		o.Server, o.Spawn, o.Stdout, o.Out = "daphne", true, &out, t.TempDir()
		res, err := Run(context.Background(), o)
		if err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		check(t, res, out.String(), "daphne")
		if res.Params.ChannelsPrefix == "" || res.ServerPID <= 0 {
			t.Errorf("prefix %q, server pid %d", res.Params.ChannelsPrefix, res.ServerPID)
		}
		if err := syscall.Kill(res.ServerPID, 0); err == nil {
			t.Errorf("spawned daphne %d still running", res.ServerPID)
		}
		if _, err := os.Stat(filepath.Join(o.Out, "daphne.log")); err != nil {
			t.Errorf("daphne's log not kept: %v", err)
		}
	})
}

// The django scenario's options are checked before anything starts.
func TestDjangoOptions(t *testing.T) {
	for _, c := range []struct {
		set  func(*Options)
		want string
	}{
		{func(o *Options) { o.Server = "gunicorn" }, "--server"},
		{func(o *Options) { o.Senders = 0 }, "--senders"},
		{func(o *Options) { o.ChannelsLayer = "rabbit" }, "--channels-layer"},
		{func(o *Options) { o.ChannelsRedis = "redis://192.0.2.1:6379/0" }, "loopback"},
		{func(o *Options) { o.Rate = 0 }, "--rate"},
	} {
		o := Defaults("django")
		o.Spawn = true
		c.set(&o)
		if err := o.check(0); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("want an error about %s, got %v", c.want, err)
		}
	}
	o := Defaults("django")
	o.Server = "daphne"
	if err := o.check(0); err != nil {
		t.Errorf("defaults with --server daphne: %v", err)
	}
}

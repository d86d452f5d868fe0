package bench

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

func TestParseTargetLoopbackOnly(t *testing.T) {
	ok := map[string]string{
		"http://127.0.0.1:8000":       "http://127.0.0.1:8000",
		"127.0.0.1:8000":              "http://127.0.0.1:8000",
		"http://127.1.2.3:9/":         "http://127.1.2.3:9",
		"http://localhost:8000":       "http://127.0.0.1:8000",
		"http://LOCALHOST:8000":       "http://127.0.0.1:8000",
		"http://[::1]:8000":           "http://[::1]:8000",
		"ws://127.0.0.1:8000":         "http://127.0.0.1:8000",
		"http://[::ffff:127.0.0.1]:1": "http://127.0.0.1:1",
		"http://127.0.0.1":            "http://127.0.0.1:80",
	}
	for in, want := range ok {
		tg, err := ParseTarget(in)
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if tg.HTTP != want || tg.WS != "ws://"+strings.TrimPrefix(want, "http://") {
			t.Errorf("%s: got %s / %s, want %s", in, tg.HTTP, tg.WS, want)
		}
	}
	bad := []string{
		"http://10.0.0.1:8000", "http://192.168.1.5:8000", "http://0.0.0.0:8000", "http://[::]:8000",
		"http://[::2]:8000", "http://example.com:8000", "http://127.0.0.1.nip.io:8000", "https://127.0.0.1:8443",
		"http://128.0.0.1:80", "http://127.0.0.1:8000/api/", "http://user@127.0.0.1:8000", "http://127.0.0.1:99999",
		"http://[fe80::1]:80", "http://8.8.8.8",
	}
	for _, in := range bad {
		if tg, err := ParseTarget(in); err == nil {
			t.Errorf("%s accepted as %+v", in, tg)
		}
	}
}

func TestParseTargets(t *testing.T) {
	ts, err := ParseTargets(" http://127.0.0.1:8001, 127.0.0.1:8002 ,,localhost:8003")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tg := range ts {
		got = append(got, tg.HTTP)
	}
	if strings.Join(got, " ") != "http://127.0.0.1:8001 http://127.0.0.1:8002 http://127.0.0.1:8003" {
		t.Fatalf("targets %v", got)
	}
	bad := map[string]string{
		"":                                      "no target",
		"http://127.0.0.1:1,http://192.0.2.1:2": "loopback",
		"127.0.0.1:1,http://127.0.0.1:1/":       "twice",
		"http://127.0.0.1:1,http://[::1]:2":     "IPv4 or all IPv6",
		"127.0.0.1:1,x:y":                       "invalid port",
	}
	many := make([]string, MaxTargets+1)
	for i := range many {
		many[i] = fmt.Sprintf("127.0.0.1:%d", 9000+i)
	}
	bad[strings.Join(many, ",")] = "at most"
	for in, want := range bad {
		if _, err := ParseTargets(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseTargets(%q): %v; want an error naming %q", in, err, want)
		}
	}
}

func TestFlagValue(t *testing.T) {
	args := []string{"--trust-proxy", "--db", "postgres://a/x", "-layer=redis://r", "---db", "nope", "--db=postgres://b/y", "--addr"}
	if v, ok := flagValue(args, "db"); !ok || v != "postgres://b/y" {
		t.Errorf("db %q %v: the last one wins", v, ok)
	}
	if v, ok := flagValue(args, "layer"); !ok || v != "redis://r" {
		t.Errorf("layer %q %v", v, ok)
	}
	if _, ok := flagValue(args, "addr"); ok {
		t.Error("a flag without its value was found")
	}
	if _, ok := flagValue([]string{"db", "x"}, "db"); ok {
		t.Error("an argument without a dash is not a flag")
	}
}

func TestIsLoopback(t *testing.T) {
	for s, want := range map[string]bool{"127.0.0.1": true, "127.255.255.254": true, "::1": true, "::ffff:127.0.0.9": true,
		"126.255.255.255": false, "128.0.0.0": false, "::": false, "10.1.1.1": false} {
		if got := IsLoopback(netip.MustParseAddr(s)); got != want {
			t.Errorf("IsLoopback(%s) = %v", s, got)
		}
	}
}

// Source addresses rotate over 127.0.0.2–127.0.0.254, never 127.0.0.1
// (the server's) nor .255.
func TestSourcesRotate(t *testing.T) {
	s := NewSources(netip.MustParseAddr("127.0.0.1"))
	if s.Len() != 253 {
		t.Fatalf("%d source addresses, want 253", s.Len())
	}
	seen := map[string]int{}
	for i := range 253 * 4 {
		a := s.At(i)
		ip := netip.MustParseAddr(a.IP.String())
		if !ip.Is4() || ip.As4()[0] != 127 || ip.As4()[3] < 2 || ip.As4()[3] > 254 || a.Port != 0 {
			t.Fatalf("connection %d from %v", i, a)
		}
		seen[a.IP.String()]++
	}
	if len(seen) != 253 {
		t.Fatalf("%d distinct addresses", len(seen))
	}
	for ip, n := range seen {
		if n != 4 {
			t.Fatalf("%s used %d times in 4 rotations", ip, n)
		}
	}
	if got := s.At(0).IP.String(); got != "127.0.0.2" {
		t.Errorf("first source %s", got)
	}
	if got := s.At(252).IP.String(); got != "127.0.0.254" {
		t.Errorf("253rd source %s", got)
	}
	if s.Next().IP.String() != "127.0.0.2" || s.Next().IP.String() != "127.0.0.3" {
		t.Error("Next does not rotate from the first address")
	}
	if v6 := NewSources(netip.IPv6Loopback()); v6.Len() != 0 || v6.At(5) != nil {
		t.Error("an IPv6 target should let the kernel pick ::1")
	}
}

// The rotated addresses really are usable source addresses on this host.
func TestSourcesDial(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = fmt.Fprint(c, c.RemoteAddr().String())
			c.Close()
		}
	}()
	s := NewSources(netip.MustParseAddr("127.0.0.1"))
	for _, i := range []int{0, 100, 252} {
		d := net.Dialer{LocalAddr: s.At(i), Timeout: 2 * time.Second}
		c, err := d.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatalf("dial from %v: %v", s.At(i), err)
		}
		b, _ := io.ReadAll(c)
		c.Close()
		host, _, _ := net.SplitHostPort(string(b))
		if host != s.At(i).IP.String() {
			t.Errorf("server saw %s, want %s", host, s.At(i).IP)
		}
	}
}

func TestOptionLimits(t *testing.T) {
	cases := []struct {
		mod  func(*Options)
		want string
	}{
		{func(o *Options) { o.Scenario = "nope" }, "unknown scenario"},
		{func(o *Options) { o.Conns = 19600 }, "descriptors"},
		{func(o *Options) { o.Duration = Duration(time.Hour) }, "--duration"},
		{func(o *Options) { o.Duration = 0 }, "--duration"},
		{func(o *Options) { o.Rate = -1 }, "--rate"},
		{func(o *Options) { o.Steps = []float64{10, 0} }, "--steps"},
		{func(o *Options) { o.Steps = make([]float64, 200); o.Steps[0] = 1 }, "longer than"},
		{func(o *Options) {
			o.Duration = Duration(time.Millisecond)
			o.Steps = make([]float64, maxGenSteps+1)
			for i := range o.Steps {
				o.Steps[i] = 1
			}
		}, "rates; want at most"},
		{func(o *Options) { o.Drain = -1 }, "--drain"},
		{func(o *Options) { o.Drain = Duration(MaxTotal + 1) }, "--drain"},
		{func(o *Options) { o.Conns = 0 }, "--conns"},
		{func(o *Options) { o.ReadBuffer = 100 }, "--read-buffer"},
		{func(o *Options) { o.Spawn, o.ServerPID = true, 5 }, "--server-pid"},
		{func(o *Options) { o.Procs = 0 }, "--procs"},
		{func(o *Options) { o.Spawn, o.ServeArgs = true, []string{"--addr=127.0.0.1:9"} }, "leave out --addr"},
		{func(o *Options) { o.Spawn, o.ServeArgs = true, []string{"--admin-addr", "127.0.0.1:9"} }, "leave out --admin-addr"},
		{func(o *Options) { o.Spawn, o.ServeEnv = true, []string{"GOMAXPROCS"} }, "KEY=VALUE"},
		{func(o *Options) { o.ServeEnv = []string{"GOMAXPROCS=1"} }, "--serve-env needs --spawn"},
		{func(o *Options) { o.Procs = 3 }, "needs --spawn"},
		{func(o *Options) { o.Spawn, o.Procs = true, 3 }, "PostgreSQL"},
		{func(o *Options) {
			o.Spawn, o.Procs, o.ServeArgs = true, 3, []string{"--db", "postgres://127.0.0.1/test"}
		}, "Redis"},
		{func(o *Options) {
			o.Spawn, o.Procs, o.ServeArgs = true, 2, []string{"--db", "postgres://127.0.0.1/test", "--layer", "redis://127.0.0.1"}
			o.AdminAddr = "127.0.0.1:6060"
		}, "--admin-addr"},
		{func(o *Options) { o.Target, o.ServerPID = "127.0.0.1:1,127.0.0.1:2", 5 }, "--server-pid"},
	}
	for i, c := range cases {
		o := Defaults("fanout")
		c.mod(&o)
		err := o.check(20000)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("case %d: error %v; want one naming %q", i, err, c.want)
		}
	}
	for _, s := range Scenarios {
		o := Defaults(s)
		if err := o.check(20000); err != nil {
			t.Errorf("defaults of %s: %v", s, err)
		}
	}
	o := Defaults("fanout")
	o.Spawn, o.Procs, o.ServeArgs = true, 3, []string{"--db=postgres://127.0.0.1/test", "--layer", "redis://127.0.0.1:6379"}
	if err := o.check(20000); err != nil {
		t.Errorf("three processes on PostgreSQL and Redis: %v", err)
	}
	o = Defaults("resume")
	o.ResumeMode = "v3"
	if err := o.check(20000); err == nil || !strings.Contains(err.Error(), "reconnect") {
		t.Errorf("unknown resume mode: %v", err)
	}
	o = Defaults("idle")
	o.Conns = 19500
	if err := o.check(20000); err != nil {
		t.Errorf("19,500 connections under a 20,000 limit: %v", err)
	}
}

func TestMessageParsing(t *testing.T) {
	msg := []byte(`{"type":"comment","data":{"id":345,"campaign":1,"user":{"id":2,"username":"bob"},"content":"hb 3 1700000000123456789 filler","created_at":"x"}}`)
	if msgType(msg) != "comment" || !isType(msg, "comment") || isType(msg, "comm") || isType(msg, "comments") {
		t.Fatal("type detection")
	}
	if msgType([]byte(`[1]`)) != "" || isType([]byte(`{"type":"`), "comment") {
		t.Fatal("non-messages")
	}
	if id, ok := intAfter(msg, `"id":`); !ok || id != 345 {
		t.Fatalf("id %d %v", id, ok)
	}
	if _, ok := intAfter(msg, `"nope":`); ok {
		t.Fatal("missing key found")
	}
	upd := []byte(`{"type":"application_update","data":{"application_id":17,"quest_title":"bench1q0","status":"approved","updated_at":"t"}}`)
	if s, ok := strAfter(upd, `"status":"`); !ok || s != "approved" {
		t.Fatalf("status %q", s)
	}
	if id, ok := intAfter(upd, `"application_id":`); !ok || id != 17 {
		t.Fatalf("application id %d", id)
	}
}

func TestFailureNames(t *testing.T) {
	cases := map[error]string{
		ws.StatusError(429): "http_429",
		errClosed{4404}:     "closed_4404",
		fmt.Errorf("dial: %w", syscall.ECONNREFUSED):           "refused",
		fmt.Errorf("bind: %w", syscall.EADDRNOTAVAIL):          "no_source_port",
		fmt.Errorf("x: %w", syscall.EMFILE):                    "too_many_open_files",
		io.ErrUnexpectedEOF:                                    "eof",
		os.ErrDeadlineExceeded:                                 "timeout",
		fmt.Errorf("%w (got %q)", errUnexpectedFirst, "error"): "unexpected_first_message",
		errors.New("strange"):                                  "other",
	}
	for err, want := range cases {
		if got := failure(err); got != want {
			t.Errorf("failure(%v) = %s, want %s", err, got, want)
		}
	}
}

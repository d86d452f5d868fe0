//go:build linux

package bench

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// TestBareServer: the bare server answers /healthz, upgrades any path and
// sends campaign_data of the size asked for with the handshake, counts its
// open connections in /metrics, and stops with its context.
func TestBareServer(t *testing.T) {
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	aport, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	addr, admin := "127.0.0.1:"+strconv.Itoa(port), "127.0.0.1:"+strconv.Itoa(aport)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- ServeBare(ctx, BareOptions{Addr: addr, AdminAddr: admin, SnapshotBytes: 4096, Pollers: 2}, func(a string) { ready <- a })
	}()
	select {
	case a := <-ready:
		if a != addr {
			t.Fatalf("serving on %s, want %s", a, addr)
		}
	case err := <-done:
		t.Fatal(err)
	case <-time.After(5 * time.Second):
		t.Fatal("not ready")
	}
	res, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || string(body) != "ok\n" {
		t.Fatalf("/healthz: %d %q", res.StatusCode, body)
	}

	target, err := ParseTarget("http://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	d := &dialer{targets: []Target{target}, src: NewSources(target.Addr.Addr()), timeout: 5 * time.Second, bufSize: 1024, open: new(atomic.Int64)}
	var clients []*client
	for i := range 3 {
		c, err := d.dial(campaignPath(1, "some.token.here"), i, nopHandler{})
		if err != nil {
			t.Fatal(err)
		}
		typ, n, err := c.first(5 * time.Second)
		if err != nil || typ != "campaign_data" || n != 4096 {
			t.Fatalf("first message: %q of %d bytes, %v; want campaign_data of 4096", typ, n, err)
		}
		clients = append(clients, c)
		t.Cleanup(func() { c.conn.Close() })
	}
	open := func() float64 {
		m := scrape(context.Background(), http.DefaultClient, "http://"+admin+"/metrics")
		return m["herald_realtime_connections"]
	}
	if n := open(); n != 3 {
		t.Fatalf("%v connections in /metrics, want 3", n)
	}
	for _, c := range clients {
		c.write(ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))))
	}
	deadline := time.Now().Add(5 * time.Second)
	for open() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%v connections still open after the clients closed", open())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ServeBare did not return after its context ended")
	}
}

// idle --spawn --bare starts a bare-server child, measures it without
// making accounts or a campaign (a placeholder token in every request),
// keeps its log and stops it.
func TestSpawnBare(t *testing.T) {
	bin := heraldBinary(t)
	var out bytes.Buffer
	o := Defaults("idle")
	o.Spawn, o.Bare, o.Token, o.HeraldBin = true, true, true, bin
	o.Conns, o.Settle, o.Stdout, o.Out = 10, Duration(100*time.Millisecond), &out, t.TempDir()
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	f := res.Idle
	if !res.Spawned || res.ServerPID <= 0 || res.ServerPID == os.Getpid() || f.Connect.Connected != 10 || f.Connect.Failed != 0 ||
		f.Connect.SnapshotBytes != o.SnapshotBytes || f.RSSAfterKiB <= 0 || !strings.Contains(out.String(), "spawned bare-server") {
		t.Fatalf("%+v\n%s", res, out.String())
	}
	if err := syscall.Kill(res.ServerPID, 0); err == nil {
		t.Errorf("spawned bare-server %d still running", res.ServerPID)
	}
	if _, err := os.Stat(filepath.Join(o.Out, "bare-server.log")); err != nil {
		t.Errorf("bare-server log not kept: %v", err)
	}
}

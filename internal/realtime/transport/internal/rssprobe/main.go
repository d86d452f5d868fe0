// Command rssprobe measures the resident memory an idle WebSocket connection
// costs the server. It starts itself as a child process running a hub and a
// transport server, opens -n connections to it from 127.0.0.x source
// addresses (each joins its own user group and one shared group, and gets a
// snapshot message, as a campaign or applications client does) and reports
// the child's VmRSS growth per connection. Loopback only.
//
//	go run ./internal/realtime/transport/internal/rssprobe -n 10000
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/heraldhq/herald/internal/realtime"
	"github.com/heraldhq/herald/internal/realtime/layer"
	"github.com/heraldhq/herald/internal/realtime/transport"
)

func main() {
	n := flag.Int("n", 10000, "connections to open (each side holds one descriptor per connection)")
	serve := flag.Bool("serve", false, "run as the measured server (internal)")
	flag.Parse()
	if *serve {
		if err := runServer(); err != nil {
			log.Fatal(err)
		}
		return
	}
	if err := runProbe(*n); err != nil {
		log.Fatal(err)
	}
}

type nopHandler struct{}

func (nopHandler) OnMessage(*realtime.Conn, []byte) {}
func (nopHandler) OnClose(*realtime.Conn)           {}

// runServer serves on a loopback port, prints it, then answers each line of
// stdin with a measurement of itself.
func runServer() error {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	hub, err := realtime.NewHub(realtime.HubOptions{Logger: logger}, func(deliver func(layer.Message)) (layer.Layer, error) {
		return layer.NewMemory(deliver, layer.MemoryOptions{}), nil
	})
	if err != nil {
		return err
	}
	srv, err := transport.NewServer(hub, transport.Options{Logger: logger})
	if err != nil {
		return err
	}
	var next atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/ws/", func(w http.ResponseWriter, r *http.Request) {
		uid := next.Add(1)
		c, err := srv.Upgrade(w, r, transport.ConnConfig{UserID: uid, Handler: nopHandler{}})
		if err != nil {
			return
		}
		_ = c.SendJSON([]byte(`{"type":"campaign_data","data":{"id":1,"title":"My Campaign"}}`))
		ctx := context.Background()
		_ = hub.Join(ctx, c, "user_"+strconv.FormatInt(uid, 10))
		_ = hub.Join(ctx, c, "campaign_1")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	fmt.Println(ln.Addr().String())

	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		switch sc.Text() {
		case "heap":
			f, err := os.Create(os.Getenv("RSSPROBE_HEAP"))
			if err == nil {
				runtime.GC()
				_ = pprof.WriteHeapProfile(f)
				f.Close()
			}
			fmt.Println("ok")
		case "broadcast":
			_, _ = hub.Publish(context.Background(), "campaign_1", "comment", []byte(`{"id":345,"content":"Great project!"}`))
			fmt.Println("ok")
		default:
			// Two cycles: sync.Pool keeps what it held for one more GC.
			runtime.GC()
			runtime.GC()
			debug.FreeOSMemory()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			fmt.Printf("rss_kib=%d conns=%d goroutines=%d heap_inuse_kib=%d stack_inuse_kib=%d\n",
				vmRSS("self"), srv.Conns(), runtime.NumGoroutine(), ms.HeapInuse>>10, ms.StackInuse>>10)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = hs.Shutdown(ctx)
	return srv.Close(ctx)
}

func vmRSS(pid string) int {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return kb
		}
	}
	return -1
}

type child struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func (c *child) ask(cmd string) (string, error) {
	if _, err := fmt.Fprintln(c.in, cmd); err != nil {
		return "", err
	}
	if !c.out.Scan() {
		return "", errors.New("server exited")
	}
	return c.out.Text(), nil
}

func field(line, key string) int {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}

func runProbe(n int) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(exe, "-serve")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	c := &child{cmd: cmd, in: in, out: bufio.NewScanner(outPipe)}
	defer func() {
		in.Close()
		_ = cmd.Wait()
	}()
	if !c.out.Scan() {
		return errors.New("server did not start")
	}
	addr := c.out.Text()

	// Warm up (pools, maps, first goroutines), then take the baseline.
	warm := dialMany(addr, 200, 0)
	for _, conn := range warm.conns {
		conn.Close()
	}
	time.Sleep(500 * time.Millisecond)
	base, err := c.ask("measure")
	if err != nil {
		return err
	}
	fmt.Println("baseline:", base)

	start := time.Now()
	res := dialMany(addr, n, 200)
	if res.err != nil {
		return res.err
	}
	fmt.Printf("opened %d connections in %v\n", len(res.conns), time.Since(start).Round(time.Millisecond))
	time.Sleep(time.Second)
	after, err := c.ask("measure")
	if err != nil {
		return err
	}
	fmt.Println("idle:    ", after)
	report := func(label, line string) {
		conns := field(line, "conns")
		d := field(line, "rss_kib") - field(base, "rss_kib")
		fmt.Printf("%s: %.0f bytes RSS per connection (%d connections, %d goroutines)\n",
			label, float64(d)*1024/float64(max(conns, 1)), conns, field(line, "goroutines"))
	}
	report("idle", after)

	if _, err := c.ask("broadcast"); err != nil {
		return err
	}
	time.Sleep(time.Second)
	bc, err := c.ask("measure")
	if err != nil {
		return err
	}
	fmt.Println("after 1 broadcast:", bc)
	report("after a broadcast to all", bc)
	if os.Getenv("RSSPROBE_HEAP") != "" {
		if _, err := c.ask("heap"); err != nil {
			return err
		}
	}
	for _, conn := range res.conns {
		conn.Close()
	}
	return nil
}

type dialResult struct {
	conns []net.Conn
	err   error
}

// dialMany opens n connections, spreading source addresses over
// 127.0.0.2-127.0.0.201 so no source runs out of ephemeral ports.
func dialMany(addr string, n, offset int) dialResult {
	var (
		mu  sync.Mutex
		res dialResult
		wg  sync.WaitGroup
		sem = make(chan struct{}, 64)
	)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			conn, err := dialOne(addr, i+offset)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if res.err == nil {
					res.err = fmt.Errorf("connection %d: %w", i, err)
				}
				return
			}
			res.conns = append(res.conns, conn)
		}()
	}
	wg.Wait()
	return res
}

func dialOne(addr string, i int) (net.Conn, error) {
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%200))}
	d := ws.Dialer{
		Timeout: 10 * time.Second,
		NetDial: func(ctx context.Context, network, a string) (net.Conn, error) {
			nd := net.Dialer{LocalAddr: local}
			return nd.DialContext(ctx, network, a)
		},
	}
	conn, br, _, err := d.Dial(context.Background(), "ws://"+addr+"/ws/")
	if err != nil {
		return nil, err
	}
	// Read the snapshot so the connection is fully set up, then stay idle.
	var r io.Reader = conn
	if br != nil {
		r = br
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	h, err := ws.ReadHeader(r)
	if err == nil {
		_, err = io.CopyN(io.Discard, r, h.Length)
	}
	if br != nil {
		ws.PutReader(br)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("read snapshot: %w", err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	return conn, nil
}

package cluster

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/heraldhq/herald/internal/realtime/layer/redistest"
	"github.com/heraldhq/herald/internal/testenv"
)

// The nginx configuration of docs/deployment.md is deploy/nginx.conf, and
// these tests run Debian's nginx with it in front of herald processes.

// nginxConf is the file docs/deployment.md shows, relative to this package.
const (
	nginxConf      = "../../deploy/nginx.conf"
	deploymentDocs = "../../docs/deployment.md"
)

// nginxPath finds the nginx binary; without one the test fails (it is not
// skipped): Debian's nginx package provides it, and .ci/run installs it.
func nginxPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	t.Fatal("nginx is needed for this test: install Debian's nginx (apt-get install nginx; .ci/run does)")
	return ""
}

// fencedBlocks returns the ```nginx blocks of a Markdown document, each with
// the heading (## …) it is under.
func fencedBlocks(doc string) (blocks, headings []string) {
	var cur []string
	in := false
	heading := ""
	for _, line := range strings.SplitAfter(doc, "\n") {
		trimmed := strings.TrimRight(line, "\n")
		switch {
		case in && trimmed == "```":
			blocks = append(blocks, strings.Join(cur, ""))
			headings = append(headings, heading)
			in, cur = false, nil
		case in:
			cur = append(cur, line)
		case trimmed == "```nginx":
			in = true
		case strings.HasPrefix(trimmed, "## "):
			heading = strings.TrimPrefix(trimmed, "## ")
		}
	}
	return blocks, headings
}

// The nginx section of docs/deployment.md shows deploy/nginx.conf exactly,
// every other nginx block of it is a piece of that file, and nginx loads the
// file as it is (nginx -t, with a certificate given in the http block).
func TestNginxConfigMatchesDocs(t *testing.T) {
	conf, err := os.ReadFile(nginxConf)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(deploymentDocs)
	if err != nil {
		t.Fatal(err)
	}
	blocks, headings := fencedBlocks(string(doc))
	shown := -1
	for i, h := range headings {
		if h == "nginx" {
			shown = i
			break
		}
	}
	if shown < 0 {
		t.Fatalf("%s has no ```nginx block under \"## nginx\"", deploymentDocs)
	}
	if blocks[shown] != string(conf) {
		t.Errorf("the nginx block of %s differs from %s; show the file as it is:\n%s",
			deploymentDocs, nginxConf, lineDiff(blocks[shown], string(conf)))
	}
	for i, b := range blocks {
		if i != shown && !strings.Contains(string(conf), b) {
			t.Errorf("the nginx block under %q of %s is not a part of %s:\n%s", headings[i], deploymentDocs, nginxConf, b)
		}
	}
	// The file as it is: nginx -t.
	bin := nginxPath(t)
	dir := t.TempDir()
	writeTestCert(t, dir)
	main := writeNginxMain(t, dir, filepath.Join(dir, "herald.conf"))
	if err := os.WriteFile(filepath.Join(dir, "herald.conf"), conf, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-t", "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", main,
		"-g", "pid "+filepath.Join(dir, "nginx.pid")+"; error_log "+filepath.Join(dir, "error.log")+";").CombinedOutput()
	if err != nil {
		t.Errorf("nginx -t with %s: %v\n%s", nginxConf, err, out)
	}
}

// lineDiff lists the lines where a and b differ.
func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for i := range max(len(al), len(bl)) {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			out = append(out, fmt.Sprintf("line %d:\n  doc:  %q\n  file: %q", i+1, x, y))
		}
	}
	return strings.Join(out, "\n")
}

// writeTestCert writes a self-signed certificate for nginx -t to load.
func writeTestCert(t *testing.T, dir string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "herald.example.com"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"herald.example.com"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// writeNginxMain writes the main configuration the tests run nginx with: what
// nginx.conf gives a conf.d file on a server (here only the paths of a
// non-root run, an access log that names the upstream of each request and,
// when dir has one, a certificate), and the file included in its http block.
func writeNginxMain(t *testing.T, dir, include string) string {
	t.Helper()
	var b strings.Builder
	if os.Geteuid() == 0 {
		b.WriteString("user root;\n") // the workers must reach the test's temporary directory
	}
	fmt.Fprintf(&b, `worker_processes 2;
events {
    worker_connections 1024;
}
http {
    log_format upstreams '$remote_addr "$request" $status rid=$http_x_request_id up=[$upstream_addr] st=[$upstream_status]';
    access_log %[1]s/access.log upstreams;
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
`, dir)
	if _, err := os.Stat(filepath.Join(dir, "cert.pem")); err == nil {
		fmt.Fprintf(&b, "    ssl_certificate %[1]s/cert.pem;\n    ssl_certificate_key %[1]s/key.pem;\n", dir)
	}
	fmt.Fprintf(&b, "    include %s;\n}\n", include)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

var (
	upstreamServer = regexp.MustCompile(`^(\s*server\s+)(\S+)(\s.*)$`)
	listenLine     = regexp.MustCompile(`^(\s*listen\s+)[^;]*(;.*)$`)
)

// rewriteNginx is the one change the test makes to deploy/nginx.conf: the
// upstream's server addresses become the processes' (in order), and the
// listen directive becomes a free loopback port, without TLS (the test's
// clients speak plain HTTP/1.1). It returns the lines it changed; every
// other line stays as it is.
func rewriteNginx(conf string, listen int, servers []int) (string, []int, error) {
	lines := strings.Split(conf, "\n")
	var changed []int
	inUpstream, nServer, nListen := false, 0, 0
	for i, line := range lines {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "upstream herald {"):
			inUpstream = true
		case inUpstream && trimmed == "}":
			inUpstream = false
		case inUpstream && upstreamServer.MatchString(line):
			if nServer == len(servers) {
				return "", nil, fmt.Errorf("more than %d servers in the upstream", len(servers))
			}
			m := upstreamServer.FindStringSubmatch(line)
			lines[i] = m[1] + "127.0.0.1:" + strconv.Itoa(servers[nServer]) + m[3]
			nServer++
			changed = append(changed, i)
		case listenLine.MatchString(line):
			m := listenLine.FindStringSubmatch(line)
			lines[i] = m[1] + "127.0.0.1:" + strconv.Itoa(listen) + m[2]
			nListen++
			changed = append(changed, i)
		}
	}
	if nServer != len(servers) || nListen != 1 {
		return "", nil, fmt.Errorf("found %d upstream servers and %d listen directives; want %d and 1", nServer, nListen, len(servers))
	}
	return strings.Join(lines, "\n"), changed, nil
}

// nginxFront is nginx running deploy/nginx.conf in front of a deployment.
type nginxFront struct {
	t   *testing.T
	dir string
	// p is nginx as the harness's clients see a process: they connect to
	// it with p.url and p.ws, and it is always running.
	p *proc
	// via is a deployment of nginx alone, for the harness's writers.
	via *deployment
}

// startNginx runs nginx with deploy/nginx.conf rewritten for d's processes.
func startNginx(t *testing.T, d *deployment) *nginxFront {
	t.Helper()
	bin := nginxPath(t)
	conf, err := os.ReadFile(nginxConf)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	port := redistest.FreePort(t)
	var ports []int
	for _, p := range d.procs {
		ports = append(ports, p.port)
	}
	rewritten, changed, err := rewriteNginx(string(conf), port, ports)
	if err != nil {
		t.Fatalf("%s: %v", nginxConf, err)
	}
	// Everything but the changed lines is the file verbatim.
	orig, now := strings.Split(string(conf), "\n"), strings.Split(rewritten, "\n")
	if len(orig) != len(now) {
		t.Fatalf("the rewrite changed the number of lines")
	}
	for i := range orig {
		if orig[i] != now[i] && !slices.Contains(changed, i) {
			t.Fatalf("line %d changed by the rewrite: %q", i+1, now[i])
		}
	}
	for _, i := range changed {
		t.Logf("%s line %d: %q → %q", nginxConf, i+1, strings.TrimSpace(orig[i]), strings.TrimSpace(now[i]))
	}
	if err := os.WriteFile(filepath.Join(dir, "herald.conf"), []byte(rewritten), 0o644); err != nil {
		t.Fatal(err)
	}
	main := writeNginxMain(t, dir, filepath.Join(dir, "herald.conf"))
	errLog := filepath.Join(dir, "error.log")
	cmd := exec.Command(bin, "-p", dir, "-e", errLog, "-c", main,
		"-g", "daemon off; pid "+filepath.Join(dir, "nginx.pid")+"; error_log "+errLog+" warn;")
	out, err := os.Create(filepath.Join(dir, "nginx.out"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		out.Close()
		t.Fatalf("start nginx: %v", err)
	}
	out.Close()
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	n := &nginxFront{t: t, dir: dir}
	n.p = &proc{name: "nginx", port: port, dir: dir, log: errLog, cmd: cmd, done: done}
	n.via = &deployment{t: t, dsn: d.dsn, procs: []*proc{n.p}}
	n.p.d = n.via
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM) // the master stops its workers
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("--- nginx error log (last lines)\n%s", tail(errLog, 60))
		}
	})
	if !waitFor(10*time.Second, func() bool {
		select {
		case <-done:
			return true
		default:
		}
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}) {
		t.Fatalf("nginx does not listen on %d after 10 s:\n%s", port, tail(errLog, 20))
	}
	select {
	case <-done:
		b, _ := os.ReadFile(filepath.Join(dir, "nginx.out"))
		t.Fatalf("nginx exited at start:\n%s%s", b, tail(errLog, 20))
	default:
	}
	return n
}

// accessLine is one request in nginx's access log (writeNginxMain's format):
// the processes it was passed to, in order, and what each answered.
type accessLine struct {
	request   string
	status    int
	rid       string
	upstreams []string
	statuses  []string
}

var accessRE = regexp.MustCompile(`^\S+ "([^"]*)" (\d+) rid=(\S*) up=\[([^\]]*)\] st=\[([^\]]*)\]$`)

// accessLog reads nginx's access log.
func (n *nginxFront) accessLog() []accessLine {
	b, err := os.ReadFile(filepath.Join(n.dir, "access.log"))
	if err != nil {
		n.t.Fatal(err)
	}
	var out []accessLine
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		m := accessRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		status, _ := strconv.Atoi(m[2])
		split := func(s string) []string { return strings.Split(s, ", ") }
		out = append(out, accessLine{request: m[1], status: status, rid: m[3], upstreams: split(m[4]), statuses: split(m[5])})
	}
	return out
}

// fromAddr is an HTTP client whose connections come from the loopback
// address src (127.0.0.x), one connection per request.
func fromAddr(src string) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

// dialWSFrom opens a WebSocket from the loopback address src with extra
// request headers and returns the connection once the server upgraded it.
func dialWSFrom(src, u string, header http.Header) (net.Conn, error) {
	nd := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	d := ws.Dialer{Timeout: 5 * time.Second, NetDial: nd.DialContext, Header: ws.HandshakeHeaderHTTP(header)}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, _, err := d.Dial(ctx, u)
	return conn, err
}

// TestNginx runs nginx with deploy/nginx.conf (only the upstream addresses
// and the listen port rewritten) in front of three herald processes on
// PostgreSQL and Redis, and checks through it: REST, a WebSocket, an event
// stream that is not buffered, the client's address as herald sees it, a
// rolling restart that v2 clients ride out without losing or repeating an
// event, and a process whose Redis link is down being kept out of the
// real-time traffic.
func TestNginx(t *testing.T) {
	nginxPath(t) // before starting anything
	began := time.Now()
	d := deploy(t, 3, "", "--trust-proxy=true", "--log-level", "debug")
	ng := startNginx(t, d)
	np := ng.p
	run := randomTag()

	// REST: an account, a sign-in and a campaign, all through nginx.
	tok := d.user(np, "alice")
	camp := d.campaign(np, tok)
	var got struct {
		ID    int64
		Title string
	}
	if _, err := call("GET", np.url("/api/campaigns/"+itoa(camp)+"/"), "", nil, &got); err != nil || got.ID != camp {
		t.Fatalf("GET the campaign through nginx: %v (%+v)", err, got)
	}

	nginxWebSocket(t, np, tok, camp)
	nginxSSE(t, np, tok, camp)
	nginxClientAddress(t, d, np, camp, run)

	// B comes back from the rolling restart with its Redis link through a
	// proxy the test can cut.
	redisURL, err := url.Parse(redistest.SharedURL())
	if err != nil {
		t.Fatal(err)
	}
	link := testenv.StartProxy(t, redisURL.Host)
	linked := *redisURL
	linked.Host = link.Addr()
	nginxRollingRestart(t, d, ng, began, map[*proc]string{d.procs[1]: linked.String()})

	nginxRedisLinkDown(t, d, ng, tok, link, run)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func randomTag() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x", b)
}

// nextOf reads c's messages until one of type typ, failing t after timeout.
func nextOf(t *testing.T, c *testenv.WSClient, typ string, timeout time.Duration) testenv.Event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("no %s message within %v", typ, timeout)
		}
		e := c.NextEvent(left)
		if e.Type == typ {
			return e
		}
	}
}

// A v2 WebSocket through nginx: the upgrade, the room's state, and a
// comment written through nginx arriving live with its position.
func nginxWebSocket(t *testing.T, np *proc, tok string, camp int64) {
	c, status, err := testenv.DialWS(t, np.ws("/ws/campaign/"+itoa(camp)+"/?v=2"), nil)
	if err != nil {
		t.Fatalf("WebSocket upgrade through nginx: status %d: %v", status, err)
	}
	defer c.Close()
	c.Ignore = []string{"presence"}
	nextOf(t, c, "campaign_data", 10*time.Second)
	nextOf(t, c, "subscribed", 10*time.Second)
	id, err := comment(np, tok, camp, "live through nginx")
	if err != nil {
		t.Fatal(err)
	}
	e := nextOf(t, c, "comment", 10*time.Second)
	var data struct{ ID int64 }
	_ = json.Unmarshal(e.Data, &data)
	if data.ID != id || e.Group != "campaign_"+itoa(camp) || e.Offset == 0 || e.Epoch == "" {
		t.Errorf("comment event through nginx: %+v, want comment %d with its group, offset and epoch", e, id)
	}
}

// sseEvent is one event of a stream and when it arrived.
type sseEvent struct {
	typ, data string
	at        time.Time
}

// readSSE dispatches the events of a stream to the returned channel, each
// stamped with the time its last line was read, until the stream ends.
func readSSE(body io.Reader) <-chan sseEvent {
	out := make(chan sseEvent, 64)
	go func() {
		defer close(out)
		br := bufio.NewReader(body)
		var typ string
		var data []string
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\r\n")
			switch {
			case line == "":
				if len(data) > 0 {
					out <- sseEvent{typ: typ, data: strings.Join(data, "\n"), at: time.Now()}
				}
				typ, data = "", nil
			case strings.HasPrefix(line, "event:"):
				typ = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
			case strings.HasPrefix(line, "data:"):
				data = append(data, strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
			}
		}
	}()
	return out
}

// An event stream through nginx is not buffered: a comment written through
// nginx reaches it at once, not when a buffer fills (a small event on a
// buffered proxy waits for the next ones, or for the 15 s heartbeat).
func nginxSSE(t *testing.T, np *proc, tok string, camp int64) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", np.url("/sse/campaign/"+itoa(camp)+"/"), nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := sseHTTP.Do(req)
	if err != nil {
		t.Fatalf("event stream through nginx: %v", err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("event stream through nginx: %d %s", resp.StatusCode, ct)
	}
	events := readSSE(resp.Body)
	next := func(typ string, id int64) sseEvent {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case e, ok := <-events:
				if !ok {
					t.Fatalf("the event stream ended before %s %d", typ, id)
				}
				if e.typ != typ {
					continue
				}
				var v struct{ ID int64 }
				_ = json.Unmarshal([]byte(e.data), &v)
				if id == 0 || v.ID == id {
					return e
				}
			case <-timeout:
				t.Fatalf("no %s %d on the event stream within 10 s", typ, id)
			}
		}
	}
	next("campaign_data", 0)
	var lat []time.Duration
	for i := range 5 {
		sent := time.Now()
		id, err := comment(np, tok, camp, fmt.Sprintf("streamed %d", i))
		if err != nil {
			t.Fatal(err)
		}
		lat = append(lat, next("comment", id).at.Sub(sent))
	}
	slices.Sort(lat)
	t.Logf("SSE through nginx, POST sent → event read, 5 comments: min %v, median %v, max %v",
		lat[0].Round(100*time.Microsecond), lat[2].Round(100*time.Microsecond), lat[4].Round(100*time.Microsecond))
	if lat[4] > time.Second {
		t.Errorf("an event took %v to come through nginx: the stream is buffered", lat[4])
	}
}

// herald sees the client's address through nginx (X-Forwarded-For, with
// --trust-proxy), not nginx's, and not one the client made up: a REST call
// from 127.0.0.2 and a WebSocket from 127.0.0.3 are logged with theirs.
func nginxClientAddress(t *testing.T, d *deployment, np *proc, camp int64, run string) {
	logged := func(rid string) string {
		t.Helper()
		var line string
		if !waitFor(10*time.Second, func() bool {
			for _, p := range d.procs {
				if l := p.lines("id=" + rid + " "); len(l) > 0 {
					line = l[0]
					return true
				}
			}
			return false
		}) {
			t.Fatalf("no process logged request %s", rid)
		}
		m := regexp.MustCompile(` client=(\S+)`).FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("request %s logged without the client's address: %s", rid, line)
		}
		return m[1]
	}
	rid := run + "-rest"
	req, _ := http.NewRequest("GET", np.url("/api/campaigns/"+itoa(camp)+"/"), nil)
	req.Header.Set("X-Request-Id", rid)
	req.Header.Set("X-Forwarded-For", "203.0.113.9") // made up by the client
	resp, err := fromAddr("127.0.0.2").Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET from 127.0.0.2 through nginx: %d", resp.StatusCode)
	}
	if got := logged(rid); got != "127.0.0.2" {
		t.Errorf("a REST call from 127.0.0.2 through nginx was logged from %s", got)
	}
	rid = run + "-ws"
	conn, err := dialWSFrom("127.0.0.3", np.ws("/ws/campaign/"+itoa(camp)+"/?v=2"), http.Header{"X-Request-Id": {rid}})
	if err != nil {
		t.Fatalf("WebSocket from 127.0.0.3 through nginx: %v", err)
	}
	conn.Close()
	if got := logged(rid); got != "127.0.0.3" {
		t.Errorf("a WebSocket from 127.0.0.3 through nginx was logged from %s", got)
	}
}

// All three processes are restarted in turn (SIGTERM, start) behind nginx
// while writers post comments through it (each POST with an
// Idempotency-Key, sent again when it got no answer) and v2 WebSocket and
// SSE clients follow the room through it, reconnecting and resuming: each
// gets every comment once, every offset in order. layers gives processes
// another channel layer to come back with.
func nginxRollingRestart(t *testing.T, d *deployment, ng *nginxFront, began time.Time, layers map[*proc]string) {
	token, camp := room(t, ng.via)
	var subs []*subscriber
	for i := range 10 {
		sse := i >= 8
		kind := "ws"
		if sse {
			kind = "sse"
		}
		subs = append(subs, newSubscriber(t, fmt.Sprintf("%s %d through nginx", kind, i), sse, camp, func(int) *proc { return ng.p }))
	}
	stop := startSubscribers(t, subs)
	w := startWriters(t, ng.via, token, camp, writerConfig{rate: 40, workers: 4, retry: true})
	more(t, w, 30, "before the restarts")
	rolling := time.Now()
	var back []string
	for _, p := range d.procs {
		p.stop()
		served := len(p.lines("path=/api/"))
		if l, ok := layers[p]; ok {
			shared := d.layer
			d.layer = l // read by start alone
			p.start()
			d.layer = shared
		} else {
			p.start()
		}
		if t.Failed() {
			t.FailNow()
		}
		// nginx sends a process that failed nothing for fail_timeout (5 s),
		// however soon it is back; stopping the next one before nginx has
		// taken this one back can leave it none it deems up ("no live
		// upstreams": 502). A deploy waits fail_timeout; the test, for the
		// process's first request through nginx.
		started := time.Now()
		if !waitFor(30*time.Second, func() bool { return len(p.lines("path=/api/")) > served }) {
			t.Fatalf("nginx passed no request to process %s within 30 s of its restart", p.name)
		}
		back = append(back, fmt.Sprintf("%s %v", p.name, time.Since(started).Round(100*time.Millisecond)))
		more(t, w, 20, "after restarting process "+p.name)
	}
	took := time.Since(rolling)
	f := finish(t, ng.via, token, camp, w, subs, stop, began)
	t.Logf("rolling restart of 3 processes behind nginx in %v (nginx took each back after its /readyz answered 200: %s): %v; outcomes of the requests sent again: %v",
		took.Round(time.Millisecond), strings.Join(back, ", "), f, w.stats().outcomes)
	assertInvariant(t, f)
	assertWritesKept(t, f, w)
	for _, s := range subs {
		if st := s.stats(); st.connects < 2 {
			t.Errorf("%s connected %d times; every process it was on restarted", s.name, st.connects)
		}
	}
}

// One process's link to Redis is cut. Its /readyz answers 503, it refuses
// real-time handshakes with 503, and nginx (passive checks: max_fails,
// fail_timeout, proxy_next_upstream http_503) passes them to the others and
// then sends it none for fail_timeout; every client gets its room and the
// room's events. Once the link is back, nginx sends it clients again.
func nginxRedisLinkDown(t *testing.T, d *deployment, ng *nginxFront, tok string, link *testenv.Proxy, run string) {
	b := d.procs[1]
	np := ng.p
	camp := d.campaign(np, tok) // a room no process serves yet
	path := "/ws/campaign/" + itoa(camp) + "/?v=2"
	if code := b.ready(); code != http.StatusOK {
		t.Fatalf("process B /readyz = %d before the cut", code)
	}
	link.Cut()
	cut := time.Now()
	if !waitFor(15*time.Second, func() bool { return b.ready() == http.StatusServiceUnavailable }) {
		t.Fatalf("process B /readyz = %d 15 s after its Redis link was cut, want 503", b.ready())
	}
	t.Logf("process B's /readyz answered 503 %v after its Redis link was cut", time.Since(cut).Round(time.Millisecond))
	// B itself refuses a real-time client it cannot serve, with a status
	// nginx passes on to the next process.
	if c, status, _ := testenv.DialWS(t, b.ws(path), nil); status != http.StatusServiceUnavailable {
		if c != nil {
			c.Close()
		}
		t.Errorf("a WebSocket handshake to process B with its Redis link down: %d, want 503", status)
	}
	if _, status, _ := testenv.DialSSE(t, b.url("/sse/campaign/"+itoa(camp)+"/"), nil); status != http.StatusServiceUnavailable {
		t.Errorf("an event stream from process B with its Redis link down: %d, want 503", status)
	}

	// Through nginx, every client gets its room.
	const nWS, nSSE = 12, 2
	var wsc []*testenv.WSClient
	var ssec []*testenv.SSEClient
	opened := time.Now()
	for i := range nWS {
		rid := fmt.Sprintf("%s-down-ws-%d", run, i)
		c, status, err := testenv.DialWS(t, np.ws(path), http.Header{"X-Request-Id": {rid}})
		if err != nil {
			t.Fatalf("WebSocket %d through nginx while B's Redis link is down: %d %v", i, status, err)
		}
		c.Ignore = []string{"presence"}
		nextOf(t, c, "campaign_data", 10*time.Second)
		wsc = append(wsc, c)
	}
	for i := range nSSE {
		rid := fmt.Sprintf("%s-down-sse-%d", run, i)
		c, status, err := testenv.DialSSE(t, np.url("/sse/campaign/"+itoa(camp)+"/"), http.Header{"X-Request-Id": {rid}})
		if err != nil {
			t.Fatalf("event stream %d through nginx while B's Redis link is down: %d %v", i, status, err)
		}
		if e := c.MustNext(10 * time.Second); e.Event != "campaign_data" {
			t.Fatalf("event stream %d through nginx began with %s", i, e.Event)
		}
		ssec = append(ssec, c)
	}
	took := time.Since(opened)
	id, err := comment(np, tok, camp, "while B's Redis link is down")
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range wsc {
		e := nextOf(t, c, "comment", 10*time.Second)
		var v struct{ ID int64 }
		_ = json.Unmarshal(e.Data, &v)
		if v.ID != id {
			t.Errorf("WebSocket %d: comment %d, want %d", i, v.ID, id)
		}
		c.Close()
	}
	for i, c := range ssec {
		for {
			e := c.MustNext(10 * time.Second)
			if e.Event == "comment" {
				if !strings.Contains(e.Data, fmt.Sprintf(`"id":%d,`, id)) {
					t.Errorf("event stream %d: %s, want comment %d", i, e.Data, id)
				}
				break
			}
		}
		c.Close()
	}
	// nginx logs each connection when it ends: which processes it was
	// passed to, and what each answered.
	bAddr := "127.0.0.1:" + strconv.Itoa(b.port)
	var lines []accessLine
	if !waitFor(10*time.Second, func() bool {
		lines = lines[:0]
		for _, l := range ng.accessLog() {
			if strings.HasPrefix(l.rid, run+"-down-") {
				lines = append(lines, l)
			}
		}
		return len(lines) == nWS+nSSE
	}) {
		t.Fatalf("nginx logged %d of the %d connections", len(lines), nWS+nSSE)
	}
	triedB := 0
	for _, l := range lines {
		for i, u := range l.upstreams {
			if u != bAddr {
				continue
			}
			triedB++
			if i == len(l.upstreams)-1 || l.statuses[i] != "503" {
				t.Errorf("%s: passed to B (%v answered %v), which served it", l.rid, l.upstreams, l.statuses)
			}
		}
	}
	// least_conn prefers B, which has no connection: without max_fails
	// nginx would try it first every time. With max_fails=2 fail_timeout=5s
	// it tries it at most twice per 5 s.
	bound := 2 * int((took+time.Second)/(5*time.Second)+1)
	t.Logf("%d real-time clients through nginx in %v while B's Redis link was down: B was tried %d times (503 each), all served by A and C",
		nWS+nSSE, took.Round(time.Millisecond), triedB)
	if triedB > bound {
		t.Errorf("nginx passed %d handshakes to B in %v; with max_fails=2 fail_timeout=5s, want at most %d", triedB, took, bound)
	}

	// The link is back: B is ready again and nginx sends it clients again.
	link.Restore()
	if !waitFor(20*time.Second, func() bool { return b.ready() == http.StatusOK }) {
		t.Fatalf("process B /readyz = %d 20 s after its Redis link came back", b.ready())
	}
	back := time.Now()
	var held []*testenv.WSClient
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	// B logs a handshake once it has answered it, so a line may come after
	// the client has its 101: every client opened here is looked for, not
	// only the last.
	servedByB := func() bool {
		for _, l := range b.lines("id=" + run + "-back-") {
			if strings.Contains(l, " status=101 ") {
				return true
			}
		}
		return false
	}
	// Nothing shows when nginx takes B back (fail_timeout after its last
	// failure) but a client it passes there: one is opened every 100 ms
	// until B has served one, each held open (least_conn then prefers B,
	// which has none).
	for i := 0; !servedByB(); i++ {
		if time.Since(back) > 20*time.Second {
			t.Fatalf("nginx passed no WebSocket to B within 20 s of its Redis link coming back")
		}
		rid := fmt.Sprintf("%s-back-%d", run, i)
		c, status, err := testenv.DialWS(t, np.ws(path), http.Header{"X-Request-Id": {rid}})
		if err != nil {
			t.Fatalf("WebSocket through nginx after B's Redis link came back: %d %v", status, err)
		}
		held = append(held, c)
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("nginx passed a WebSocket to B again %v after its /readyz answered 200", time.Since(back).Round(time.Millisecond))
}

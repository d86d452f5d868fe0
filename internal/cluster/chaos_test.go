package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/heraldhq/herald/internal/realtime/layer/redistest"
	"github.com/heraldhq/herald/internal/testenv"
)

// The chaos suite: real herald processes, real WebSocket v2 and SSE
// clients that reconnect and resume, steady writes, and one fault per
// scenario; then the invariant of invariant_test.go for every subscriber.
// docs/reliability.md lists the scenarios and the figures they measured.

// room registers a user and starts an active campaign through the first
// process.
func room(t *testing.T, d *deployment) (token string, campaign int64) {
	t.Helper()
	token = d.user(d.procs[0], "writer")
	return token, d.campaign(d.procs[0], token)
}

// more waits until n more writes than now were acknowledged.
func more(t *testing.T, w *writers, n int, what string) {
	t.Helper()
	target := w.count() + n
	if !waitFor(60*time.Second, func() bool { return w.count() >= target }) {
		st := w.stats()
		t.Fatalf("%s: %d writes acknowledged, want %d within 60 s (outcomes %v, failures %v)", what, st.ok, target, st.outcomes, st.failures)
	}
}

// Redis is killed with SIGKILL and comes back empty (no persistence). The
// REST API goes on writing (the database is the log); clients cut off
// during the outage and after it resume, and every subscriber gets every
// comment once, without recovered:false: what Redis lost, the database
// still has.
func TestChaosRedisRestartEmpty(t *testing.T) {
	began := time.Now()
	srv := redistest.Start(t)
	d := deploy(t, 3, srv.URL())
	token, camp := room(t, d)
	subs := subscribers(t, d, camp, 36, 4)
	stop := startSubscribers(t, subs)
	w := startWriters(t, d, token, camp, writerConfig{rate: 50, workers: 4, retry: true})
	more(t, w, 60, "before the fault")
	srv.Kill()
	down := time.Now()
	// Some clients lose their connections during the outage and some
	// after it, and resume.
	for _, s := range append(slices.Clone(subs[:10]), subs[36]) {
		s.drop()
	}
	more(t, w, 100, "while Redis is down")
	srv.Restart()
	outage := time.Since(down)
	more(t, w, 50, "after Redis came back")
	for _, s := range append(slices.Clone(subs[10:20]), subs[37]) {
		s.drop()
	}
	more(t, w, 50, "after Redis came back")
	f := finish(t, d, token, camp, w, subs, stop, began)
	t.Logf("Redis SIGKILLed, restarted empty %v later: %v", outage.Round(time.Millisecond), f)
	assertInvariant(t, f)
	if f.reloads > 0 {
		t.Errorf("%d resumes answered recovered:false; want none: the database keeps what Redis lost", f.reloads)
	}
	if f.failed > 0 {
		t.Errorf("%d writes failed: %v", f.failed, w.stats().failures)
	}
	if f.connects < f.subs+22 {
		t.Errorf("%d connections for %d subscribers: the 22 cut off did not all come back", f.connects, f.subs)
	}
}

// One of three processes is killed with SIGKILL under steady writes: its
// clients move to the others and resume, every comment once.
func TestChaosKilledProcess(t *testing.T) {
	began := time.Now()
	d := deploy(t, 3, "")
	token, camp := room(t, d)
	subs := subscribers(t, d, camp, 36, 4)
	stop := startSubscribers(t, subs)
	w := startWriters(t, d, token, camp, writerConfig{rate: 50, workers: 4, retry: true})
	more(t, w, 60, "before the fault")
	d.procs[0].kill()
	killed := time.Now()
	more(t, w, 150, "after process A was killed")
	f := finish(t, d, token, camp, w, subs, stop, began)
	t.Logf("process A SIGKILLed, writes went on for %v: %v", time.Since(killed).Round(time.Millisecond), f)
	assertInvariant(t, f)
	assertWritesKept(t, f, w)
	if f.connects < f.subs+14 {
		t.Errorf("%d connections for %d subscribers: process A's clients did not all move", f.connects, f.subs)
	}
}

// Every process is restarted in turn (SIGTERM, wait, start) under steady
// writes. Writers send every POST with an Idempotency-Key and send it again
// when it got no answer: no write fails, none is committed twice, and every
// subscriber gets every comment once.
func TestChaosRollingRestart(t *testing.T) {
	began := time.Now()
	d := deploy(t, 3, "")
	token, camp := room(t, d)
	subs := subscribers(t, d, camp, 36, 4)
	stop := startSubscribers(t, subs)
	w := startWriters(t, d, token, camp, writerConfig{rate: 50, workers: 4, retry: true})
	more(t, w, 50, "before the restarts")
	rolling := time.Now()
	for _, p := range d.procs {
		p.stop()
		p.start()
		if t.Failed() {
			t.FailNow()
		}
		more(t, w, 25, "after restarting process "+p.name)
	}
	took := time.Since(rolling)
	more(t, w, 50, "after the restarts")
	f := finish(t, d, token, camp, w, subs, stop, began)
	t.Logf("rolling restart of 3 processes in %v: %v; outcomes of the requests sent again: %v",
		took.Round(time.Millisecond), f, w.stats().outcomes)
	assertInvariant(t, f)
	assertWritesKept(t, f, w)
}

// Clients resume 990 to 1,010 events behind, at the edge of the 1,000-event
// history window. A resume within the window replays every missed event in
// order; one beyond it answers recovered:false and a campaign_data that,
// with what follows, holds every comment. campaign_data nests the newest 50
// comments (platform.NestedLimit), so most events here are updates and one
// in 30 a comment: the comments among 1,010 events fit in the snapshot, and
// the updates still show every gap by their offsets.
//
// First with the writes paused at the edge, so that each client is an exact
// number of events behind, 24 numbers around 1,000 (the writes in flight
// when they pause decide which), and a resume up to 1,000 behind must
// recover;
// then while writes go on at up to 250 events/s, each client let go
// when one that stays connected has seen the room move 975 to 1,005 events
// past it (that client trails the server by a relay round, so the resumes
// land around the edge; how far behind each really was, subscribed tells).
func TestChaosResumeAtWindowEdge(t *testing.T) {
	began := time.Now()
	d := deploy(t, 2, "")
	token, camp := room(t, d)
	normal := subscribers(t, d, camp, 8, 2)
	var edge []*subscriber
	var target []uint64
	for i := range 21 {
		n := uint64(975 + i*3/2)
		edge = append(edge, newSubscriber(t, fmt.Sprintf("ws edge %d", i), false, camp, d.fixed(d.procs[i%2])))
		target = append(target, n)
	}
	for i, n := range []uint64{985, 992, 998, 1004} {
		edge = append(edge, newSubscriber(t, fmt.Sprintf("sse edge %d", i), true, camp, d.fixed(d.procs[i%2])))
		target = append(target, n)
	}
	all := append(slices.Clone(normal), edge...)
	for _, s := range all {
		s.restReload = false // campaign_data must do
	}
	stop := startSubscribers(t, all)
	monitor := normal[0]
	w := startWriters(t, d, token, camp, writerConfig{rate: 250, workers: 12, retry: true, next: func(i int64) writeReq {
		if i%30 == 0 {
			return writeReq{path: "comments/", body: map[string]string{"content": "comment " + strconv.FormatInt(i, 10)}, comment: true}
		}
		return writeReq{path: "updates/", body: map[string]string{"title": "update " + strconv.FormatInt(i, 10), "content": "news"}}
	}})
	writing := time.Now()
	answered := func(n int) bool {
		return waitFor(60*time.Second, func() bool {
			for _, s := range edge {
				if len(s.stats().resumes) < n {
					return false
				}
			}
			return true
		})
	}

	// Writes paused: exact distances.
	_, head := monitor.position()
	first := head + 40
	from := make([]uint64, len(edge))
	parked := make([]<-chan struct{}, len(edge))
	for i, s := range edge {
		from[i] = first + uint64(i)
		parked[i] = s.parkAfter(from[i])
	}
	for i, s := range edge {
		select {
		case <-parked[i]:
		case <-time.After(60 * time.Second):
			t.Fatalf("%s did not reach offset %d", s.name, from[i])
		}
		if _, at := s.position(); at != from[i] {
			t.Fatalf("%s stopped at %d, want %d", s.name, at, from[i])
		}
	}
	if !waitFor(60*time.Second, func() bool { _, head := monitor.position(); return head >= first+1000 }) {
		t.Fatal("the room did not move 1,000 events within 60 s")
	}
	w.pause()
	// Every write is one event of the room.
	last := uint64(w.count())
	if !waitFor(30*time.Second, func() bool { _, head := monitor.position(); return head == last }) {
		_, head := monitor.position()
		t.Fatalf("the room stands at %d after %d writes; want one event per write", head, last)
	}
	for _, s := range edge {
		s.release()
	}
	if !answered(1) {
		t.Fatal("not every client was answered its resume within 60 s")
	}
	w.resume()
	var exact []string
	for i, s := range edge {
		r := s.stats().resumes[0]
		behind := last - from[i]
		if behind <= 1000 && !r.recovered {
			t.Errorf("%s resumed %d events behind with the writes paused: recovered:false, want the window's events", s.name, behind)
		}
		exact = append(exact, fmt.Sprintf("%d:%v", behind, r.recovered))
	}

	// Writes going on.
	const flowing = 1
	for wave := range flowing {
		if !waitFor(30*time.Second, func() bool {
			for _, s := range edge {
				if e, _ := s.position(); e == "" {
					return false
				}
			}
			return true
		}) {
			t.Fatalf("wave %d: not every client had a position within 30 s", wave)
		}
		for i, s := range edge {
			if !s.park(30 * time.Second) {
				t.Fatalf("%s did not stop reading", s.name)
			}
			_, from[i] = s.position()
		}
		released := make([]bool, len(edge))
		if !waitFor(60*time.Second, func() bool {
			_, head := monitor.position()
			pending := 0
			for i, s := range edge {
				switch {
				case released[i]:
				case head >= from[i]+target[i]:
					s.release()
					released[i] = true
				default:
					pending++
				}
			}
			return pending == 0
		}) {
			t.Fatalf("wave %d: the room did not move 1,005 events in 60 s", wave)
		}
		if !answered(wave + 2) {
			t.Fatalf("wave %d: not every client was answered its resume within 60 s", wave)
		}
	}
	_, head = monitor.position()
	rate := float64(head) / time.Since(writing).Seconds()
	f := finish(t, d, token, camp, w, all, stop, began)
	// How the resumes under writes were answered, and how far behind each
	// was when the server answered it (resumeOutcome).
	var resumes []resumeOutcome
	for _, s := range edge {
		resumes = append(resumes, s.stats().resumes[1:]...)
	}
	slices.SortFunc(resumes, func(a, b resumeOutcome) int { return a.behind() - b.behind() })
	var under []string
	for _, r := range resumes {
		under = append(under, fmt.Sprintf("%d:%v", r.behind(), r.recovered))
	}
	t.Logf("%d resumes with the writes paused (behind:recovered): %s", len(edge), strings.Join(exact, " "))
	t.Logf("%d resumes under writes at %.0f events/s (behind:recovered): %s", len(under), rate, strings.Join(under, " "))
	t.Logf("%v", f)
	assertInvariant(t, f)
}

// Clients that connect and never read are closed as slow consumers (4000)
// and cost the server a bounded amount of memory; the clients that do read
// are not disturbed.
func TestChaosNeverReadingClients(t *testing.T) {
	began := time.Now()
	d := deploy(t, 1, "")
	p := d.procs[0]
	token, camp := room(t, d)
	subs := subscribers(t, d, camp, 8, 4)
	stop := startSubscribers(t, subs)
	base := rss(t, p)
	peak := base
	var peakMu sync.Mutex
	sampling, stopSampling := context.WithCancel(context.Background())
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for sampling.Err() == nil {
			if v := rss(t, p); v > 0 {
				peakMu.Lock()
				peak = max(peak, v)
				peakMu.Unlock()
			}
			select {
			case <-sampling.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	defer func() {
		stopSampling()
		<-sampled
	}()
	slowBefore := metric(t, p, "herald_realtime_slow_consumers_total")
	const nWS, nSSE = 30, 4
	var idle []idleClient
	for range nWS {
		c, err := dialIdleWS(p.ws("/ws/campaign/" + strconv.FormatInt(camp, 10) + "/?v=2"))
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	for range nSSE {
		c, err := dialIdleSSE(p.url("/sse/campaign/" + strconv.FormatInt(camp, 10) + "/"))
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	// Large updates fill a stalled client's socket and queue in seconds; the
	// comments between them are what the invariant counts.
	news := strings.Repeat("news ", 3200)
	w := startWriters(t, d, token, camp, writerConfig{rate: 80, workers: 8, retry: true, next: func(i int64) writeReq {
		if i%4 == 0 {
			return writeReq{path: "comments/", body: map[string]string{"content": "comment " + strconv.FormatInt(i, 10)}, comment: true}
		}
		return writeReq{path: "updates/", body: map[string]string{"title": "update " + strconv.FormatInt(i, 10), "content": news}}
	}})
	writing := time.Now()
	if !waitFor(90*time.Second, func() bool {
		return metric(t, p, "herald_realtime_slow_consumers_total")-slowBefore >= nWS+nSSE
	}) {
		t.Errorf("%v slow consumers closed after 90 s, want %d", metric(t, p, "herald_realtime_slow_consumers_total")-slowBefore, nWS+nSSE)
	}
	cutAfter := time.Since(writing)
	slow := metric(t, p, "herald_realtime_slow_consumers_total") - slowBefore
	// Each idle client, reading at last, finds its stream ended by the
	// server: a close frame (4000) if it still fitted, else the end of the
	// connection.
	ends := map[string]int{}
	var endMu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range idle {
		wg.Add(1)
		go func() {
			defer wg.Done()
			end := c.drain(30 * time.Second)
			endMu.Lock()
			ends[end]++
			endMu.Unlock()
		}()
	}
	wg.Wait()
	f := finish(t, d, token, camp, w, subs, stop, began)
	stopSampling()
	<-sampled
	peakMu.Lock()
	top := peak
	peakMu.Unlock()
	t.Logf("%d never-reading clients (%d ws, %d sse): %v closed as slow consumers within %v of the first write; "+
		"what they found when read at last: %v; RSS %d MiB before, peak %d MiB: %v",
		nWS+nSSE, nWS, nSSE, slow, cutAfter.Round(time.Millisecond), ends, base>>20, top>>20, f)
	assertInvariant(t, f)
	if n := ends["still open"]; n > 0 {
		t.Errorf("%d never-reading clients were still connected", n)
	}
	for _, s := range subs {
		if n := s.stats().closeCodes[4000]; n > 0 {
			t.Errorf("%s reads and was closed as a slow consumer %d times", s.name, n)
		}
	}
	if f.reloads > 0 {
		t.Errorf("%d resumes answered recovered:false; want none", f.reloads)
	}
	// Each connection's queue is bounded (512 frames, 4 MiB) and its
	// frames are shared: the stalled clients must not cost a queue of
	// copies each.
	if limit := base + 96<<20; top > limit {
		t.Errorf("RSS peaked at %d MiB, more than 96 MiB over the %d MiB it started at", top>>20, base>>20)
	}
}

// One herald on SQLite is restarted twice under steady writes, gracefully
// (SIGTERM) and then killed (SIGKILL). Clients resume after each restart
// and get what they missed from the database: recovered:true, nothing lost.
func TestChaosSQLiteRestart(t *testing.T) {
	began := time.Now()
	d := deployOn(t, testenv.SQLite(t), 1, "memory")
	p := d.procs[0]
	token, camp := room(t, d)
	subs := subscribers(t, d, camp, 20, 4)
	stop := startSubscribers(t, subs)
	w := startWriters(t, d, token, camp, writerConfig{rate: 40, workers: 4, retry: true})
	more(t, w, 40, "before the restarts")
	p.stop()
	p.start()
	more(t, w, 60, "after the SIGTERM restart")
	p.kill()
	p.start()
	if t.Failed() {
		t.FailNow()
	}
	more(t, w, 60, "after the SIGKILL restart")
	f := finish(t, d, token, camp, w, subs, stop, began)
	t.Logf("SQLite process restarted with SIGTERM, then SIGKILL: %v", f)
	assertInvariant(t, f)
	assertWritesKept(t, f, w) // the events are in the database
}

// rss is p's resident set size in bytes (0 if it cannot be read).
func rss(t *testing.T, p *proc) int64 {
	pid := p.pid()
	if pid == 0 {
		return 0
	}
	fh, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			f := strings.Fields(v)
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				t.Errorf("VmRSS: %v", err)
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// idleClient is a connection that is never read until drain.
type idleClient interface {
	// drain reads everything the server sent and says how the stream
	// ended: "close 4000", "end of stream", "still open", ….
	drain(timeout time.Duration) string
	Close()
}

// smallWindow shrinks a client socket's receive buffer before it connects,
// so the server's writes block after a few KB instead of the megabytes
// loopback would otherwise buffer.
func smallWindow(_, _ string, c syscall.RawConn) error {
	var err error
	if cerr := c.Control(func(fd uintptr) {
		err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
	}); cerr != nil {
		return cerr
	}
	return err
}

type idleWS struct {
	conn net.Conn
	br   *bufio.Reader
}

func dialIdleWS(u string) (*idleWS, error) {
	nd := net.Dialer{Timeout: 5 * time.Second, Control: smallWindow}
	d := ws.Dialer{Timeout: 5 * time.Second, NetDial: nd.DialContext}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, br, _, err := d.Dial(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", u, err)
	}
	if br == nil {
		br = bufio.NewReader(conn)
	}
	return &idleWS{conn: conn, br: br}, nil
}

func (c *idleWS) Close() { c.conn.Close() }

func (c *idleWS) drain(timeout time.Duration) string {
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	for {
		h, err := ws.ReadHeader(c.br)
		if err != nil {
			return endOf(err)
		}
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(c.br, payload); err != nil {
			return endOf(err)
		}
		if h.OpCode == ws.OpClose {
			if h.Masked {
				ws.Cipher(payload, h.Mask, 0)
			}
			code, _ := ws.ParseCloseFrameData(payload)
			return "close " + strconv.Itoa(int(code))
		}
	}
}

// endOf names how a read ended.
func endOf(err error) string {
	var ne net.Error
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return "end of stream"
	case errors.As(err, &ne) && ne.Timeout():
		return "still open"
	default:
		return "connection reset"
	}
}

type idleSSE struct {
	resp   *http.Response
	cancel context.CancelFunc
}

func dialIdleSSE(u string) (*idleSSE, error) {
	nd := net.Dialer{Timeout: 5 * time.Second, Control: smallWindow}
	hc := &http.Client{Transport: &http.Transport{DialContext: nd.DialContext, DisableKeepAlives: true}}
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := hc.Do(req)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("open %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("open %s: status %d", u, resp.StatusCode)
	}
	return &idleSSE{resp: resp, cancel: cancel}, nil
}

func (c *idleSSE) Close() {
	c.cancel()
	c.resp.Body.Close()
}

func (c *idleSSE) drain(timeout time.Duration) string {
	t := time.AfterFunc(timeout, c.cancel)
	defer t.Stop()
	_, err := io.Copy(io.Discard, c.resp.Body)
	switch {
	case err == nil:
		return "end of stream"
	case !t.Stop():
		return "still open"
	default:
		return "connection reset"
	}
}

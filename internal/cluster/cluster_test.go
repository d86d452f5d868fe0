package cluster

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/realtime/layer/redistest"
	"github.com/heraldhq/herald/internal/store"
)

// metric sums the samples of a Prometheus counter or gauge on p's /metrics.
func metric(t *testing.T, p *proc, name string) float64 {
	t.Helper()
	resp, err := http.Get(p.url("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

// fixed picks p first, then the other running processes in turn.
func (d *deployment) fixed(p *proc) func(int) *proc {
	i := slices.Index(d.procs, p)
	return func(attempt int) *proc {
		for k := range len(d.procs) {
			q := d.procs[(i+attempt+k)%len(d.procs)]
			if q.running() {
				return q
			}
		}
		return p
	}
}

func outage() time.Duration {
	if v := os.Getenv("HERALD_TEST_OUTAGE"); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return 5 * time.Second
}

// A write through process A reaches clients on B and C (and A) once each,
// with offsets 1..n, and each event crosses Redis once per process.
func TestCrossProcessDelivery(t *testing.T) {
	d := deploy(t, 3, "")
	a, b, c := d.procs[0], d.procs[1], d.procs[2]
	tok := d.user(a, "alice")
	camp := d.campaign(a, tok)
	fs := []*follower{
		newFollower(t, "on C", camp, d.fixed(c)),
		newFollower(t, "on B", camp, d.fixed(b)),
		newFollower(t, "on A", camp, d.fixed(a)),
	}
	stop := startFollowers(t, fs)
	defer stop()
	// A first event, once everybody receives it, shows every process is
	// subscribed; the counters start from there.
	var w writer
	id, err := comment(a, tok, camp, "warm-up")
	if err != nil {
		t.Fatal(err)
	}
	w.add(id)
	awaitAll(t, fs, w.written(), 10*time.Second)
	received := map[string]float64{}
	for _, p := range d.procs {
		received[p.name] = metric(t, p, "herald_realtime_events_received_total")
	}
	const n = 60
	for i := 1; i < n; i++ {
		id, err := comment(a, tok, camp, fmt.Sprintf("comment %d", i))
		if err != nil {
			t.Fatal(err)
		}
		w.add(id)
	}
	awaitAll(t, fs, w.written(), 15*time.Second)
	markComment(t, a, tok, camp, fs, &w, 15*time.Second)
	stop()
	const all = n + 1 // and the marker
	for _, f := range fs {
		st := f.stats()
		if st.events != all || st.last != all || st.reconnects != 0 || st.notRecovered != 0 {
			t.Errorf("%s: %+v, want %d events, offsets 1..%d on one connection", f.name, st, all, all)
		}
	}
	var published float64
	for _, p := range d.procs {
		if got := metric(t, p, "herald_realtime_events_received_total") - received[p.name]; got != all-1 {
			t.Errorf("process %s received %v events from the layer, want %d (once each)", p.name, got, all-1)
		}
		published += metric(t, p, "herald_events_published_total")
	}
	if published != all {
		t.Errorf("the relays published %v events, want %d", published, all)
	}
}

// Three processes write concurrently to nine campaigns, whose groups fall
// in several partitions of the outbox; the three relays publish
// partitions at once. Each campaign's comments are written one after
// another, in turn through each process, so their commit order is known.
// Every event is published once, by one relay, and every client sees its
// campaign's comments in the order committed, at offsets 1..n with no gap
// and no comment twice.
func TestRelaysPublishEachEventOnce(t *testing.T) {
	d := deploy(t, 3, "")
	toks := make([]string, 3)
	for i, p := range d.procs {
		toks[i] = d.user(p, "writer"+strconv.Itoa(i))
	}
	const campaigns, perCampaign = 9, 30
	camps := make([]int64, campaigns)
	parts := map[int]bool{}
	for ci := range camps {
		camps[ci] = d.campaign(d.procs[ci%3], toks[ci%3])
		parts[store.OutboxPartition("campaign_"+strconv.FormatInt(camps[ci], 10), store.DefaultOutboxPartitions)] = true
	}
	if len(parts) < 3 {
		t.Logf("the campaigns fell in %d partitions only", len(parts))
	}
	var fs []*follower
	for ci, camp := range camps {
		for _, p := range d.procs {
			fs = append(fs, newFollower(t, fmt.Sprintf("campaign %d on %s", ci, p.name), camp, d.fixed(p)))
		}
	}
	stop := startFollowers(t, fs)
	defer stop()
	writers := make([]writer, len(camps))
	var wg sync.WaitGroup
	for ci := range camps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range perCampaign {
				k := (ci + j) % len(d.procs)
				id, err := comment(d.procs[k], toks[k], camps[ci], fmt.Sprintf("c%d-%d", ci, j))
				if err != nil {
					t.Error(err)
					return
				}
				writers[ci].add(id)
			}
		}()
	}
	wg.Wait()
	for ci := range camps {
		awaitAll(t, fs[ci*3:ci*3+3], writers[ci].written(), 30*time.Second)
		markComment(t, d.procs[ci%len(d.procs)], toks[ci%len(d.procs)], camps[ci], fs[ci*3:ci*3+3], &writers[ci], 30*time.Second)
	}
	stop()
	total := 0
	for ci := range camps {
		want := writers[ci].written()
		total += len(want)
		for _, f := range fs[ci*3 : ci*3+3] {
			st := f.stats()
			if st.events != len(want) || st.last != uint64(len(want)) || st.reconnects != 0 {
				t.Errorf("%s: %d events, last offset %d, %d reconnects; want %d and %d on one connection", f.name, st.events, st.last, st.reconnects, len(want), len(want))
			}
			if got := f.received(); !slices.Equal(got, want) {
				t.Errorf("%s: comments in the order %v; committed in the order %v", f.name, got, want)
			}
		}
	}
	if n := d.outbox(); n != 0 {
		t.Errorf("%d events left in the outbox", n)
	}
	var published float64
	relays := 0
	for _, p := range d.procs {
		v := metric(t, p, "herald_events_published_total")
		published += v
		if v > 0 {
			relays++
		}
		t.Logf("process %s published %v events", p.name, v)
	}
	if published != float64(total) {
		t.Errorf("the relays published %v events in all, want %d (each once)", published, total)
	}
	if relays < 2 {
		t.Errorf("the relays of %d process(es) published; want several publishing partitions at once", relays)
	}
}

// Redis goes away for a while and comes back with its data (AOF). The
// processes keep serving, committed events wait in the outbox, and then
// everything is delivered in order; a client that lost its connection
// meanwhile resumes on another process without loss.
func TestRedisOutageWithPersistence(t *testing.T) {
	srv := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	d := deploy(t, 3, srv.URL())
	a, b, c := d.procs[0], d.procs[1], d.procs[2]
	tok := d.user(a, "alice")
	camp := d.campaign(a, tok)
	fs := []*follower{
		newFollower(t, "on A", camp, d.fixed(a)),
		newFollower(t, "on B", camp, d.fixed(b)),
		newFollower(t, "on C, cut off during the outage", camp, d.fixed(c)),
	}
	stop := startFollowers(t, fs)
	defer stop()
	var w writer
	write := func(p *proc, n int, tag string) {
		t.Helper()
		for i := range n {
			id, err := comment(p, tok, camp, fmt.Sprintf("%s %d", tag, i))
			if err != nil {
				t.Fatal(err)
			}
			w.add(id)
		}
	}
	write(a, 10, "before")
	awaitAll(t, fs, w.written(), 10*time.Second)

	srv.Kill()
	down := time.Now()
	fs[2].dropConn()
	// Writes go on: the REST API only needs PostgreSQL.
	for time.Since(down) < outage() {
		write(b, 1, "during")
		time.Sleep(100 * time.Millisecond)
	}
	if n := d.outbox(); n == 0 {
		t.Error("no events waiting in the outbox during the outage")
	}
	for _, p := range d.procs {
		if code := p.ready(); code != http.StatusServiceUnavailable {
			t.Errorf("process %s /readyz = %d during the outage, want 503", p.name, code)
		}
	}
	if got := fs[0].stats().events; got != 10 {
		t.Errorf("a client got %d events during the outage, want the 10 from before", got)
	}
	srv.Restart()
	t.Logf("redis was down for %v; %d comments written meanwhile", time.Since(down).Round(time.Millisecond), len(w.written())-10)
	write(c, 10, "after")
	awaitAll(t, fs, w.written(), 30*time.Second)
	markComment(t, c, tok, camp, fs, &w, 30*time.Second)
	stop()
	n := len(w.written())
	for i, f := range fs {
		st := f.stats()
		if st.events != n || st.last != uint64(n) || st.notRecovered != 0 {
			t.Errorf("%s: %+v; want all %d events once, without recovered=false", f.name, st, n)
		}
		if i == 2 && st.recovered < 1 {
			t.Errorf("%s did not resume (stats %+v)", f.name, st)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for d.outbox() != 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := d.outbox(); n != 0 {
		t.Errorf("%d events left in the outbox", n)
	}
	// A process whose subscriber connection is still in its reconnect
	// backoff (up to 5 s) is not ready yet; each must become ready.
	for _, p := range d.procs {
		code := p.ready()
		for ready := time.Now().Add(15 * time.Second); code != http.StatusOK && time.Now().Before(ready); code = p.ready() {
			time.Sleep(100 * time.Millisecond)
		}
		if code != http.StatusOK {
			t.Errorf("process %s /readyz = %d 15 s after the outage", p.name, code)
		}
	}
}

// Redis restarts empty (no persistence): its history is gone, but not the
// database's, which is the event log. No client is told to reload: each
// resumes or catches up from the log, in order, missing nothing.
func TestRedisRestartWithoutPersistence(t *testing.T) {
	srv := redistest.Start(t)
	d := deploy(t, 3, srv.URL())
	a, b, c := d.procs[0], d.procs[1], d.procs[2]
	tok := d.user(a, "alice")
	camp := d.campaign(a, tok)
	fs := []*follower{
		newFollower(t, "on A", camp, d.fixed(a)),
		newFollower(t, "on B", camp, d.fixed(b)),
		newFollower(t, "on C", camp, d.fixed(c)),
	}
	stop := startFollowers(t, fs)
	defer stop()
	var w writer
	for i := range 10 {
		id, err := comment(a, tok, camp, fmt.Sprintf("before %d", i))
		if err != nil {
			t.Fatal(err)
		}
		w.add(id)
	}
	awaitAll(t, fs, w.written(), 10*time.Second)
	srv.Kill()
	for i := range 10 {
		id, err := comment(b, tok, camp, fmt.Sprintf("during %d", i))
		if err != nil {
			t.Fatal(err)
		}
		w.add(id)
	}
	time.Sleep(time.Second)
	srv.Restart()
	for i := range 10 {
		id, err := comment(c, tok, camp, fmt.Sprintf("after %d", i))
		if err != nil {
			t.Fatal(err)
		}
		w.add(id)
		time.Sleep(20 * time.Millisecond)
	}
	awaitAll(t, fs, w.written(), 30*time.Second)
	stop()
	for _, f := range fs {
		st := f.stats()
		if st.notRecovered != 0 || len(st.problems) != 0 || st.events != len(w.written()) {
			t.Errorf("%s: %+v; want every event once and no reload", f.name, st)
		}
		if slices.Contains(st.closeCodes, 1012) {
			t.Errorf("%s: close codes %v; nothing was lost, so no client is sent away", f.name, st.closeCodes)
		}
	}
}

// A process is killed with SIGKILL: its clients reconnect to the others
// and resume without loss, and the other relays take over.
func TestKilledProcess(t *testing.T) {
	d := deploy(t, 3, "")
	a, b := d.procs[0], d.procs[1]
	tok := d.user(b, "alice")
	camp := d.campaign(b, tok)
	var fs []*follower
	for i := range 4 {
		fs = append(fs, newFollower(t, "client "+strconv.Itoa(i)+" of A", camp, d.fixed(a)))
	}
	fs = append(fs, newFollower(t, "client of C", camp, d.fixed(d.procs[2])))
	stop := startFollowers(t, fs)
	defer stop()
	var w writer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ctx.Err() == nil; i++ {
			id, err := comment(b, tok, camp, fmt.Sprintf("steady %d", i))
			if err != nil {
				t.Error(err)
				return
			}
			w.add(id)
			time.Sleep(10 * time.Millisecond)
		}
	}()
	time.Sleep(time.Second)
	a.kill()
	time.Sleep(2 * time.Second)
	cancel()
	<-done
	awaitAll(t, fs, w.written(), 20*time.Second)
	markComment(t, b, tok, camp, fs, &w, 20*time.Second)
	ids := w.written()
	stop()
	for i, f := range fs {
		st := f.stats()
		if st.events != len(ids) || st.last != uint64(len(ids)) || st.notRecovered != 0 {
			t.Errorf("%s: %+v; want all %d events once", f.name, st, len(ids))
		}
		if i < 4 && st.recovered < 1 {
			t.Errorf("%s did not resume elsewhere: %+v", f.name, st)
		}
	}
	t.Logf("%d events; process A killed after about a second", len(ids))
}

// All three processes are restarted one after the other (SIGTERM, start)
// while comments keep coming: no client misses or repeats an event.
func TestRollingRestart(t *testing.T) {
	d := deploy(t, 3, "")
	tok := d.user(d.procs[0], "alice")
	camp := d.campaign(d.procs[0], tok)
	var fs []*follower
	for i := range 6 {
		p := d.procs[i%3]
		fs = append(fs, newFollower(t, fmt.Sprintf("client %d (starts on %s)", i, p.name), camp, d.fixed(p)))
	}
	stop := startFollowers(t, fs)
	defer stop()
	var w writer
	var failed sync.Map
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ctx.Err() == nil; i++ {
			content := fmt.Sprintf("steady %d", i)
			for k := 0; ; k++ {
				p := d.procs[(i+k)%3]
				if !p.running() {
					continue
				}
				id, err := comment(p, tok, camp, content)
				if err == nil {
					w.add(id)
					break
				}
				failed.Store(content, err.Error())
				if k > 30 {
					t.Errorf("cannot write %q: %v", content, err)
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(15 * time.Millisecond)
		}
	}()
	time.Sleep(500 * time.Millisecond)
	for _, p := range d.procs {
		p.stop()
		p.start()
		time.Sleep(300 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	cancel()
	<-done
	awaitAll(t, fs, w.written(), 30*time.Second)
	markComment(t, d.procs[0], tok, camp, fs, &w, 30*time.Second)
	ids := w.written()
	stop()
	for _, f := range fs {
		st := f.stats()
		if st.events != len(ids) || st.last != uint64(len(ids)) || st.notRecovered != 0 {
			t.Errorf("%s: %+v; want all %d events once", f.name, st, len(ids))
		}
		if st.reconnects < 1 {
			t.Errorf("%s never reconnected: %+v", f.name, st)
		}
	}
	failed.Range(func(k, v any) bool {
		t.Logf("a write was retried: %v: %v", k, v)
		return true
	})
	t.Logf("%d events during the rolling restart", len(ids))
}

// The same deployment on a three-master Redis Cluster with sharded pub/sub
// (--redis-sharded=true): campaigns spread over the masters, writes through one
// process reach clients of the others once each, in offset order.
func TestShardedRedisCluster(t *testing.T) {
	cl, err := redistest.StartCluster(t, 3)
	if err != nil {
		t.Fatalf("a local Redis Cluster is needed: %v", err)
	}
	d := deploy(t, 3, cl.URL(), "--redis-sharded=true")
	a := d.procs[0]
	tok := d.user(a, "alice")
	var camps []int64
	for range 6 {
		camps = append(camps, d.campaign(a, tok))
	}
	var fs []*follower
	for i, camp := range camps {
		p := d.procs[1+i%2]
		fs = append(fs, newFollower(t, fmt.Sprintf("campaign %d on %s", camp, p.name), camp, d.fixed(p)))
	}
	stop := startFollowers(t, fs)
	defer stop()
	const per = 15
	writers := make([]writer, len(camps))
	for j := range per {
		for i, camp := range camps {
			id, err := comment(d.procs[j%3], tok, camp, fmt.Sprintf("c%d", j))
			if err != nil {
				t.Fatal(err)
			}
			writers[i].add(id)
		}
	}
	for i, f := range fs {
		awaitAll(t, []*follower{f}, writers[i].written(), 15*time.Second)
		markComment(t, a, tok, camps[i], []*follower{f}, &writers[i], 15*time.Second)
	}
	stop()
	for _, f := range fs {
		if st := f.stats(); st.events != per+1 || st.last != per+1 {
			t.Errorf("%s: %+v, want offsets 1..%d (and the marker)", f.name, st, per+1)
		}
	}
	// The campaigns' keys are spread over more than one master.
	used := 0
	for _, n := range cl.Nodes {
		if keys, _ := n.Client().DBSize(context.Background()).Result(); keys > 0 {
			used++
		}
	}
	if used < 2 {
		t.Errorf("the groups' keys are on %d master(s); want them spread", used)
	}
}

// markComment posts one more comment to camp through p and waits until
// every follower in fs has it: each group's events are delivered in order,
// so a copy of any earlier event, published or delivered twice, would
// have come before it.
func markComment(t *testing.T, p *proc, tok string, camp int64, fs []*follower, w *writer, timeout time.Duration) {
	t.Helper()
	id, err := comment(p, tok, camp, "marker")
	if err != nil {
		t.Fatal(err)
	}
	w.add(id)
	awaitAll(t, fs, w.written(), timeout)
}

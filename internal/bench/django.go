package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/internal/redisprefix"
)

// The django scenario: a Django process's group_send, through a
// channels_redis layer, to the WebSocket clients of one campaign room,
// served either by herald (--channels-redis) or by Daphne running the test
// project's Channels consumer. The clients, the senders and the figures are
// the same for both; only the server differs.

// DjangoFigures is the django scenario's outcome.
type DjangoFigures struct {
	// Server is "herald" or "daphne"; Group the campaign room sent to;
	// Layer and Prefix the channels_redis layer's kind and prefix.
	Server  string          `json:"server"`
	Group   string          `json:"group"`
	Layer   string          `json:"layer"`
	Prefix  string          `json:"prefix"`
	Senders int             `json:"senders"`
	Clients int             `json:"clients"`
	Connect *ConnectFigures `json:"connect"`
	Steps   []DjangoStep    `json:"steps"`
}

// DjangoStep is one group_send rate, --duration long.
type DjangoStep struct {
	TargetRate float64 `json:"target_rate"`
	DurationS  float64 `json:"duration_s"`
	// Planned group_sends at the target rate over the step; Sent of them
	// returned before the step ended; SendRate is Sent over the duration.
	// SendBehindMs is how far the latest send was behind its schedule:
	// large when the senders, not the server, were the limit.
	Planned      int     `json:"planned"`
	Sent         int     `json:"sent"`
	SendRate     float64 `json:"send_rate"`
	SendBehindMs float64 `json:"send_behind_ms"`
	// SenderCPUS is the senders' CPU time (user + system) over the step,
	// their start-up left out.
	SenderCPUS float64 `json:"sender_cpu_s"`
	// Every client connected at the step's start should receive every
	// message sent (Expected); Delivered counts distinct (client, message)
	// receipts, Lost the ones missing after a drain of up to --drain.
	Subscribers int   `json:"subscribers"`
	Expected    int64 `json:"expected"`
	Delivered   int64 `json:"delivered"`
	Lost        int64 `json:"lost"`
	Duplicates  int64 `json:"duplicates"`
	Disconnects int   `json:"disconnects"`
	// DeliveriesPerS is Delivered over the time from the first scheduled
	// send to the last receipt.
	DeliveriesPerS float64 `json:"deliveries_per_s"`
	DrainS         float64 `json:"drain_s"`
	// Latency is from the sender's clock just before group_send to the
	// client's read of the message.
	Latency   Latency         `json:"latency"`
	ServerCPU *ProcessFigures `json:"server_cpu,omitempty"`
	BenchCPU  *ProcessFigures `json:"bench_cpu,omitempty"`
	Errors    []string        `json:"errors,omitempty"`
}

// djangoType is what the clients receive: the campaign consumer's
// contribution_message handler sends type "contribution", and herald maps
// the layer type the same way.
const (
	djangoLayerType  = "contribution_message"
	djangoClientType = "contribution"
)

// djangoSubs counts what the clients received of the current step.
type djangoSubs struct {
	subs     []fanSub
	nbits    atomic.Int64
	step     atomic.Int64
	hist     atomic.Pointer[Histogram]
	received atomic.Int64
	dups     atomic.Int64
	closes   atomic.Int64
	last     atomic.Int64 // unix ns of the latest receipt
	e        *env
}

// message reads {"type":"contribution","data":{"s": S, "n": N, "t": T}…},
// spaced as Python's json.dumps writes it or not.
func (d *djangoSubs) message(c *client, head []byte, _ int) {
	now := time.Now().UnixNano()
	if msgType(head) != djangoClientType {
		return
	}
	step, ok0 := numAfter(head, `"s":`)
	seq, ok1 := numAfter(head, `"n":`)
	sent, ok2 := numAfter(head, `"t":`)
	if !ok0 || !ok1 || !ok2 || step != d.step.Load() || seq < 0 || seq >= d.nbits.Load() {
		return
	}
	mask := uint64(1) << (seq & 63)
	if d.subs[c.id].bits[seq>>6].Or(mask)&mask != 0 {
		d.dups.Add(1)
		return
	}
	d.received.Add(1)
	d.hist.Load().Record(time.Duration(now - sent))
	d.e.deliveries.Add(1)
	for {
		l := d.last.Load()
		if now <= l || d.last.CompareAndSwap(l, now) {
			break
		}
	}
}

func (d *djangoSubs) closed(c *client, _ int, _ error) {
	if c.shut.Load() {
		return
	}
	d.subs[c.id].gone.Store(true)
	d.closes.Add(1)
}

// numAfter parses the unsigned integer after the first key in head,
// skipping the spaces json.dumps puts after a colon.
func numAfter(head []byte, key string) (int64, bool) {
	i := bytes.Index(head, []byte(key))
	if i < 0 {
		return 0, false
	}
	rest := head[i+len(key):]
	for len(rest) > 0 && rest[0] == ' ' {
		rest = rest[1:]
	}
	return parseUint(rest)
}

func (e *env) runDjango(ctx context.Context) error {
	o := e.o
	dir, err := findDjangoDir(o.DjangoDir)
	if err != nil {
		return err
	}
	rates := o.Steps
	if len(rates) == 0 {
		rates = []float64{o.Rate}
	}
	f := &DjangoFigures{Server: o.Server, Layer: o.ChannelsLayer, Prefix: o.ChannelsPrefix, Senders: o.Senders, Clients: o.Conns}
	e.res.Django = f
	opt, err := redis.ParseURL(o.ChannelsRedis)
	if err != nil {
		return fmt.Errorf("--channels-redis: %w", err)
	}
	rc := redis.NewClient(opt)
	defer rc.Close()
	if err := rc.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("the channel layer's Redis at %s: %w", o.ChannelsRedis, err)
	}

	// herald serves the rooms of its own campaigns; the Channels consumer
	// joins campaign_<id> for any id.
	var id int64
	if o.Server == "herald" {
		owner, err := e.newUser(ctx, "bench"+e.runID+"dj")
		if err != nil {
			return fmt.Errorf("setup: %w", err)
		}
		if id, err = e.newCampaign(ctx, owner, "bench django "+e.runID, 0); err != nil {
			return fmt.Errorf("setup: %w", err)
		}
	} else {
		var b [4]byte
		_, _ = rand.Read(b[:])
		id = 1e9 + int64(binary.BigEndian.Uint32(b[:])%1e9)
	}
	f.Group = "campaign_" + strconv.FormatInt(id, 10)
	path := campaignPath(id, "")
	if o.Server == "herald" {
		path += "?v=2"
	}

	ds := &djangoSubs{subs: make([]fanSub, o.Conns), e: e}
	ds.step.Store(-1)
	ds.hist.Store(&Histogram{})
	clients, cf := e.connect(ctx, connectSpec{label: "connecting", n: o.Conns, rate: o.ConnectRate,
		path: func(int) string { return path }, snapshot: true, h: ds})
	f.Connect = cf
	e.printf("clients of %s: %s\n", f.Group, connectLine(cf))
	defer e.closeAll(clients)
	if cf.Connected == 0 {
		return fmt.Errorf("no client could connect: %v", cf.Errors)
	}
	for i, c := range clients {
		if c == nil {
			ds.subs[i].gone.Store(true)
		}
	}
	// In the layer: the core layer stores a group_send only for the
	// channels in the group's sorted set (herald: one channel for all its
	// clients; Daphne: one per consumer), pub/sub publishes to subscribers.
	if err := e.waitFor(ctx, "joining the layer's group", 30*time.Second, func() (bool, string) {
		if o.ChannelsLayer == "pubsub" {
			var n int64
			if o.Server == "herald" {
				n, _ = rc.PubSubNumPat(ctx).Result()
			} else {
				m, _ := rc.PubSubNumSub(ctx, o.ChannelsPrefix+"__group__"+f.Group).Result()
				n = m[o.ChannelsPrefix+"__group__"+f.Group]
			}
			return n >= 1, fmt.Sprintf("%d subscribers", n)
		}
		want := int64(1)
		if o.Server == "daphne" {
			want = int64(cf.Connected)
		}
		n, _ := rc.ZCard(ctx, o.ChannelsPrefix+":group:"+f.Group).Result()
		return n >= want, fmt.Sprintf("%d/%d channels in %s", n, want, f.Group)
	}); err != nil {
		return err
	}

	for si, rate := range rates {
		st, err := e.djangoStep(ctx, dir, f.Group, si, rate, ds)
		f.Steps = append(f.Steps, st)
		e.printf("%s\n", djangoStepLine(si, len(rates), st))
		name := "latency.svg"
		if len(rates) > 1 {
			name = fmt.Sprintf("latency-step%d-%gps.svg", si+1, rate)
		}
		e.latencyChart(name, fmt.Sprintf("group_send → %s client, %d clients, %g group_sends/s", o.Server, st.Subscribers, rate), st.Latency)
		if err != nil {
			return err
		}
	}
	e.timelineChart("throughput.svg", "Messages received per second", "deliveries/s",
		func(p TimelinePoint) float64 { return float64(p.Deliveries) })
	return nil
}

// senderReport is the line manage.py bench_send prints when it is done.
type senderReport struct {
	Sent     int   `json:"sent"`
	Planned  int   `json:"planned"`
	BehindNS int64 `json:"behind_ns"`
}

// djangoStep runs --senders processes of manage.py bench_send that
// group_send rate messages a second to group in all, for --duration, and
// counts what the clients received.
func (e *env) djangoStep(ctx context.Context, dir, group string, si int, rate float64, ds *djangoSubs) (DjangoStep, error) {
	o := e.o
	dur := o.Duration.D()
	planned := int(math.Ceil(rate * dur.Seconds()))
	st := DjangoStep{TargetRate: rate, DurationS: dur.Seconds(), Planned: planned, Subscribers: o.Conns}
	nbits := int64(planned) + 64
	alive := 0
	for i := range ds.subs {
		if int64(len(ds.subs[i].bits)) < (nbits+63)/64 {
			ds.subs[i].bits = make([]atomic.Uint64, (nbits+63)/64)
		} else {
			clear(ds.subs[i].bits)
		}
		if !ds.subs[i].gone.Load() {
			alive++
		}
	}
	hist := &Histogram{}
	ds.hist.Store(hist)
	ds.nbits.Store(nbits)
	ds.received.Store(0)
	ds.dups.Store(0)
	ds.last.Store(0)
	closes0 := ds.closes.Load()
	ds.step.Store(int64(si))

	// Python and Django take a while to start: each sender says when it is
	// ready, then all are given the same start.
	sctx, cancel := context.WithTimeout(ctx, dur+2*time.Minute)
	defer cancel()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		sent    atomic.Int64
		cpu     time.Duration
		reports []senderReport
		stdins  []io.WriteCloser
		pids    []int
		ready   = make(chan bool, o.Senders)
		start   = time.Now().Add(time.Hour) // set once all are ready
		started atomic.Bool
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if len(st.Errors) < 5 {
			st.Errors = append(st.Errors, err.Error())
		}
	}
	e.setPhase(fmt.Sprintf("step %d", si+1), func() string {
		if !started.Load() {
			return fmt.Sprintf("step %d, %g group_sends/s: senders starting", si+1, rate)
		}
		el := time.Since(start).Seconds()
		return fmt.Sprintf("step %d, %g group_sends/s: %3.0fs delivered %d (%.0f/s) p99 %s clients %d", si+1, rate, el,
			ds.received.Load(), float64(ds.received.Load())/max(el, 1e-3), msText(ms(hist.Quantile(0.99))), e.open.Load())
	})
	for k := range o.Senders {
		cmd := exec.CommandContext(sctx, o.Python, "manage.py", "bench_send", group,
			"--type", djangoLayerType, "--step", strconv.Itoa(si), "--count", strconv.Itoa(planned),
			"--rate", strconv.FormatFloat(rate, 'g', -1, 64), "--index", strconv.Itoa(k), "--of", strconv.Itoa(o.Senders))
		cmd.Dir = dir
		cmd.Env = djangoEnv(o)
		var errb bytes.Buffer
		cmd.Stderr = &errb
		in, err1 := cmd.StdinPipe()
		out, err2 := cmd.StdoutPipe()
		if err := errors.Join(err1, err2); err != nil {
			fail(err)
			ready <- false
			continue
		}
		dieWithParent(cmd)
		if err := cmd.Start(); err != nil {
			fail(fmt.Errorf("start sender: %w", err))
			ready <- false
			continue
		}
		stdins, pids = append(stdins, in), append(pids, cmd.Process.Pid)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var rep senderReport
			found, said := false, false
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				line := bytes.TrimSpace(sc.Bytes())
				if !said && string(line) == "ready" {
					said = true
					ready <- true
					continue
				}
				if json.Unmarshal(line, &rep) == nil && rep.Planned > 0 {
					found = true
				}
			}
			if !said {
				ready <- false
			}
			err := cmd.Wait()
			mu.Lock()
			if ps := cmd.ProcessState; ps != nil {
				cpu += ps.UserTime() + ps.SystemTime()
			}
			mu.Unlock()
			if err != nil || !found {
				tail := errb.String()
				if len(tail) > 600 {
					tail = tail[len(tail)-600:]
				}
				fail(fmt.Errorf("sender %d: %v: %s", k+1, err, strings.TrimSpace(tail)))
			}
			if found {
				sent.Add(int64(rep.Sent))
				mu.Lock()
				reports = append(reports, rep)
				mu.Unlock()
			}
		}()
	}
	allReady := true
	for range o.Senders {
		select {
		case ok := <-ready:
			allReady = allReady && ok
		case <-time.After(time.Minute):
			allReady = false
			fail(errors.New("a sender was not ready within a minute"))
		case <-ctx.Done():
			allReady = false
		}
		if !allReady {
			break
		}
	}
	srvCPU, benchCPU := e.serverCPU(), startCPU()
	// What the senders used starting up is not the step's.
	var cpu0 time.Duration
	if len(pids) > 0 {
		cpu0, _ = cpuTimes(pids)
	}
	start = time.Now().Add(100 * time.Millisecond)
	until := start.Add(dur)
	started.Store(true)
	for _, in := range stdins {
		if allReady {
			_, _ = fmt.Fprintf(in, "%d %d\n", start.UnixNano(), until.UnixNano())
		}
		in.Close() // a sender not told when exits
	}
	wg.Wait()
	st.Sent = int(sent.Load())
	st.SendRate = round3(float64(st.Sent) / dur.Seconds())
	for _, r := range reports {
		st.SendBehindMs = max(st.SendBehindMs, ms(time.Duration(r.BehindNS)))
	}
	st.SenderCPUS = round3(max(0, cpu-cpu0).Seconds())
	want := int64(st.Sent) * int64(alive)
	drain0 := time.Now()
	for ds.received.Load() < want && time.Since(drain0) < o.Drain.D() && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	st.DrainS = round3(time.Since(drain0).Seconds())
	st.BenchCPU, st.ServerCPU = benchCPU.stop(), srvCPU.stop()
	st.Expected, st.Delivered = want, ds.received.Load()
	st.Lost = max(0, want-st.Delivered)
	st.Duplicates = ds.dups.Load()
	st.Disconnects = int(ds.closes.Load() - closes0)
	if last := ds.last.Load(); last > start.UnixNano() {
		st.DeliveriesPerS = round3(float64(st.Delivered) / time.Duration(last-start.UnixNano()).Seconds())
	}
	st.Latency = hist.Summary(true)
	if st.Sent == 0 && len(st.Errors) > 0 {
		return st, fmt.Errorf("step %d: no group_send: %s", si+1, st.Errors[0])
	}
	return st, ctx.Err()
}

func djangoStepLine(si, n int, st DjangoStep) string {
	s := fmt.Sprintf("step %d/%d, %g group_sends/s for %.0fs: sent %d of %d (%.1f/s, the last %s behind schedule), delivered %d/%d (%.0f/s), lost %d, duplicates %d; group_send → receipt %s",
		si+1, n, st.TargetRate, st.DurationS, st.Sent, st.Planned, st.SendRate, msText(st.SendBehindMs),
		st.Delivered, st.Expected, st.DeliveriesPerS, st.Lost, st.Duplicates, latLine(st.Latency))
	if st.Disconnects > 0 {
		s += fmt.Sprintf("; %d clients disconnected", st.Disconnects)
	}
	if st.ServerCPU != nil {
		s += fmt.Sprintf("; server %.2f cores", st.ServerCPU.Cores)
	}
	if st.BenchCPU != nil {
		s += fmt.Sprintf(", bench %.2f, senders %.2f, machine %.2f cores busy", st.BenchCPU.Cores,
			st.SenderCPUS/max(st.BenchCPU.WallSecs, 1e-3), st.BenchCPU.MachineCores)
	}
	for _, err := range st.Errors {
		s += "\n  error: " + err
	}
	return s
}

// djangoEnv is the environment of the test project's processes (senders
// and Daphne): its settings read the layer from it.
func djangoEnv(o Options) []string {
	return append(os.Environ(), "DJANGO_SETTINGS_MODULE=djangoapp.settings", "PYTHONDONTWRITEBYTECODE=1",
		"CHANNELS_REDIS_URL="+o.ChannelsRedis, "CHANNELS_PREFIX="+o.ChannelsPrefix, "CHANNELS_LAYER="+o.ChannelsLayer)
}

// findDjangoDir finds the test project: dir as given, or relative to the
// module's root (the first parent of the working directory with go.mod).
func findDjangoDir(dir string) (string, error) {
	ok := func(d string) bool {
		_, err := os.Stat(filepath.Join(d, "manage.py"))
		return err == nil
	}
	if ok(dir) || filepath.IsAbs(dir) {
		if !ok(dir) {
			return "", fmt.Errorf("--django-dir %s: no manage.py there", dir)
		}
		return filepath.Abs(dir)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			if p := filepath.Join(d, dir); ok(p) {
				return p, nil
			}
			break
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	return "", fmt.Errorf("--django-dir %s: no manage.py there (run from the repository, or give the path)", dir)
}

// loopbackRedis checks that raw is a redis:// URL of this machine's
// loopback interface.
func loopbackRedis(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if u.Scheme != "redis" {
		return fmt.Errorf("%q: want redis://127.0.0.1:6379/0", raw)
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !IsLoopback(ip.Unmap()) {
		return fmt.Errorf("%q: the bench uses a Redis on this machine's loopback interface only", raw)
	}
	return nil
}

// dropPrefix deletes the keys of the layer prefix the run made for itself
// (--spawn without --channels-prefix), once the servers have stopped.
func dropPrefix(o Options) error {
	opt, err := redis.ParseURL(o.ChannelsRedis)
	if err != nil {
		return err
	}
	rc := redis.NewClient(opt)
	defer rc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	redisprefix.Delete(ctx, rc, o.ChannelsPrefix)
	return ctx.Err()
}

// spawnDaphne starts Daphne serving the test project's ASGI application
// (o.DjangoDir, djangoapp.asgi:application) on a free loopback port, with
// the layer of o in its environment, and waits until it answers /healthz.
func spawnDaphne(ctx context.Context, o Options, timeout time.Duration) (*cluster, error) {
	dir, err := findDjangoDir(o.DjangoDir)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "herald-bench-daphne-")
	if err != nil {
		return nil, err
	}
	c := &cluster{dir: tmp, daphne: true}
	port, err := freePort()
	if err != nil {
		_ = c.stop("")
		return nil, err
	}
	// -v 0: no access log line per connection.
	cmd := exec.Command(o.DaphneBin, "-b", "127.0.0.1", "-p", strconv.Itoa(port), "-v", "0", "djangoapp.asgi:application")
	cmd.Dir = dir
	cmd.Env = djangoEnv(o)
	s, err := startServer(ctx, "daphne", cmd, filepath.Join(tmp, "daphne.log"), "http://127.0.0.1:"+strconv.Itoa(port), "", timeout)
	if err != nil {
		_ = c.stop("")
		return nil, err
	}
	c.servers = []*server{s}
	return c, nil
}

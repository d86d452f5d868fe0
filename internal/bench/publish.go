package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/internal/apikey"
	"github.com/heraldhq/herald/internal/store"
)

// PublishFigures is the publish scenario's outcome: the publish API's
// throughput at each batch size into a group nobody watches (or only
// --watchers), then the time from a publish to its receipt by every
// subscriber of a room.
type PublishFigures struct {
	Throughput []PublishBatchStep `json:"throughput"`
	// Best is the highest rate of events accepted, and its batch size.
	BestEventsPerS float64 `json:"best_events_per_s"`
	BestBatch      int     `json:"best_batch"`
	// Protocol is the subscribers' and watchers' WebSocket protocol: "v1"
	// or "v2" (--v2).
	Protocol string `json:"protocol,omitempty"`
	// Latency is the latency phase at the first (or only) rate;
	// LatencySteps holds every rate's when --steps names several.
	Latency      *PublishLatency   `json:"latency,omitempty"`
	LatencySteps []*PublishLatency `json:"latency_steps,omitempty"`
}

// PublishBatchStep is --duration of publishing as fast as --publishers
// concurrent clients can, each request a batch of Batch events.
type PublishBatchStep struct {
	Batch      int     `json:"batch"`
	Publishers int     `json:"publishers"`
	DurationS  float64 `json:"duration_s"`
	Requests   int64   `json:"requests"`
	Events     int64   `json:"events"`
	Failed     int64   `json:"failed"`
	// Unnumbered counts events answered without a position (the relay had
	// not numbered them within the answer's wait).
	Unnumbered   int64   `json:"unnumbered"`
	RequestsPerS float64 `json:"requests_per_s"`
	EventsPerS   float64 `json:"events_per_s"`
	// Watchers (--watchers) are WebSocket clients of the group, spread over
	// the processes like every client; Delivered is the fewest events one
	// of them received of the Events committed (waiting while events keep
	// coming, until none came for --drain), DeliveredEventsPerS that count
	// over the time from the step's start to the last watcher's last
	// receipt, and DeliveryLagMs how long after the publishing stopped that
	// last receipt came.
	Watchers            int             `json:"watchers,omitempty"`
	Delivered           int64           `json:"delivered,omitempty"`
	DeliveredEventsPerS float64         `json:"delivered_events_per_s,omitempty"`
	DeliveryLagMs       float64         `json:"delivery_lag_ms,omitempty"`
	WatcherDisconnects  int             `json:"watcher_disconnects,omitempty"`
	REST                Latency         `json:"request_latency"`
	ServerCPU           *ProcessFigures `json:"server_cpu,omitempty"`
	BenchCPU            *ProcessFigures `json:"bench_cpu,omitempty"`
	Errors              []string        `json:"errors,omitempty"`
}

// PublishLatency is single events published at Rate a second into a room
// of Subscribers, each expected by every one of them.
type PublishLatency struct {
	CampaignID  int64           `json:"campaign_id"`
	Subscribers int             `json:"subscribers"`
	Connect     *ConnectFigures `json:"connect"`
	TargetRate  float64         `json:"target_rate"`
	DurationS   float64         `json:"duration_s"`
	Sent        int             `json:"sent"`
	Failed      int             `json:"failed"`
	Skipped     int             `json:"skipped"`
	Expected    int64           `json:"expected"`
	Delivered   int64           `json:"delivered"`
	Lost        int64           `json:"lost"`
	Duplicates  int64           `json:"duplicates"`
	Disconnects int             `json:"disconnects"`
	// CloseCodes counts this step's disconnects by the server's close code
	// (4000: slow consumer; 0: no close frame).
	CloseCodes map[string]int `json:"close_codes,omitempty"`
	DrainS     float64        `json:"drain_s"`
	// Latency is from just before the publish request was sent to the
	// subscriber's read of the event; REST is the request's own time
	// (its answer waits for the relay to number the event).
	Latency   Latency         `json:"latency"`
	REST      Latency         `json:"rest"`
	ServerCPU *ProcessFigures `json:"server_cpu,omitempty"`
	BenchCPU  *ProcessFigures `json:"bench_cpu,omitempty"`
	Errors    []string        `json:"errors,omitempty"`
}

// publishType is the type of the bench's events.
const publishType = "bench.publish"

// apiKey returns the key to publish with: --api-key, or with --spawn a
// key made on the spawned server's database, as `herald apikey create`
// makes it.
func (e *env) apiKey(ctx context.Context) (string, error) {
	if e.o.APIKey != "" {
		return e.o.APIKey, nil
	}
	if e.spawnDB == "" {
		return "", fmt.Errorf("publish: --api-key is needed without --spawn (herald apikey create --scope campaign; the server's --publish-rate must allow the load)")
	}
	db, err := store.Open(ctx, e.spawnDB)
	if err != nil {
		return "", fmt.Errorf("publish: open the spawned server's database for a key: %w", err)
	}
	defer db.Close()
	_, token, err := apikey.New(db, nil, nil).Create(ctx, "herald bench "+e.runID, []string{"campaign"})
	if err != nil {
		return "", fmt.Errorf("publish: create an API key: %w", err)
	}
	return token, nil
}

func (e *env) runPublish(ctx context.Context) error {
	o := e.o
	fig := &PublishFigures{Protocol: "v1"}
	if o.V2 {
		fig.Protocol = "v2"
	}
	e.res.Publish = fig
	key, err := e.apiKey(ctx)
	if err != nil {
		return err
	}
	// The campaigns' owner, made once for the watched group and the room.
	var owner *user
	owned := func() (user, error) {
		if owner == nil {
			u, err := e.newUser(ctx, "bench"+e.runID+"pub")
			if err != nil {
				return user{}, fmt.Errorf("setup: %w", err)
			}
			owner = &u
		}
		return *owner, nil
	}
	// A group nobody joins: the throughput of the API, the database and
	// the relay, without a fan-out. With --watchers, a campaign's room that
	// they join, so what was committed is also seen delivered.
	var r [4]byte
	_, _ = rand.Read(r[:])
	quiet := "campaign_" + strconv.FormatUint(8e18+uint64(binary.BigEndian.Uint32(r[:])), 10)
	var w *publishWatchers
	if o.Watchers > 0 {
		u, err := owned()
		if err != nil {
			return err
		}
		id, err := e.newCampaign(ctx, u, "bench publish throughput "+e.runID, 0)
		if err != nil {
			return fmt.Errorf("setup: %w", err)
		}
		quiet = "campaign_" + strconv.FormatInt(id, 10)
		w = &publishWatchers{got: make([]atomic.Int64, o.Watchers), gone: make([]atomic.Bool, o.Watchers), e: e}
		clients, cf := e.connect(ctx, connectSpec{label: "watchers", n: o.Watchers, rate: o.ConnectRate,
			path: func(int) string { return e.subscribePath(id) }, snapshot: true, h: w})
		e.printf("watchers of %s: %s\n", quiet, connectLine(cf))
		defer e.closeAll(clients)
		if cf.Connected < o.Watchers {
			return fmt.Errorf("watchers: %d of %d connected: %v", cf.Connected, o.Watchers, cf.Errors)
		}
		// The server joins a connection to the room right after its snapshot.
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
	for _, batch := range o.Batches {
		st := e.publishStep(ctx, key, quiet, batch, w)
		fig.Throughput = append(fig.Throughput, st)
		e.printf("%s\n", publishStepLine(st))
		if st.EventsPerS > fig.BestEventsPerS {
			fig.BestEventsPerS, fig.BestBatch = st.EventsPerS, st.Batch
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	if o.Conns == 0 {
		return nil // --conns 0: no latency phase
	}
	u, err := owned()
	if err != nil {
		return err
	}
	rates := o.Steps
	if len(rates) == 0 {
		rates = []float64{o.Rate}
	}
	steps, err := e.publishLatency(ctx, key, u, rates)
	if len(steps) > 0 {
		fig.Latency = steps[0]
		if len(rates) > 1 {
			fig.LatencySteps = steps
		}
	}
	for i, lat := range steps {
		e.printf("%s\n", publishLatencyLine(lat))
		name := "latency.svg"
		if len(steps) > 1 {
			name = fmt.Sprintf("latency-step%d-%gps.svg", i+1, lat.TargetRate)
		}
		e.latencyChart(name, fmt.Sprintf("Publish latency, %d subscribers (%s), %g events/s (POST /api/publish/ → WebSocket receipt)",
			lat.Subscribers, fig.Protocol, lat.TargetRate), lat.Latency)
	}
	e.timelineChart("throughput.svg", "Events published per second", "events/s",
		func(p TimelinePoint) float64 { return float64(p.Events) })
	return err
}

// subscribePath is the path a publish subscriber or watcher of campaign id
// connects to: protocol v2 with --v2.
func (e *env) subscribePath(id int64) string {
	p := campaignPath(id, "")
	if e.o.V2 {
		p += "?v=2"
	}
	return p
}

// publishWatchers count the bench events each watcher of the throughput
// phase's group received.
type publishWatchers struct {
	got    []atomic.Int64
	gone   []atomic.Bool
	last   atomic.Int64 // unix ns of the latest receipt
	closes atomic.Int64
	e      *env
}

func (w *publishWatchers) message(c *client, head []byte, _ int) {
	if !isType(head, publishType) {
		return
	}
	w.got[c.id].Add(1)
	now := time.Now().UnixNano()
	for {
		l := w.last.Load()
		if now <= l || w.last.CompareAndSwap(l, now) {
			break
		}
	}
	w.e.deliveries.Add(1)
}

func (w *publishWatchers) closed(c *client, _ int, _ error) {
	if c.shut.Load() {
		return
	}
	w.gone[c.id].Store(true)
	w.closes.Add(1)
}

// counts is what each watcher has received so far.
func (w *publishWatchers) counts() []int64 {
	out := make([]int64, len(w.got))
	for i := range w.got {
		out[i] = w.got[i].Load()
	}
	return out
}

// publishStep publishes batches of batch events to group for --duration
// with --publishers concurrent clients, as fast as they are answered; with
// watchers, it then waits up to --drain for each to have every event
// committed.
func (e *env) publishStep(ctx context.Context, key, group string, batch int, w *publishWatchers) PublishBatchStep {
	o := e.o
	st := PublishBatchStep{Batch: batch, Publishers: o.Publishers, DurationS: o.Duration.D().Seconds()}
	var (
		hist             Histogram
		reqs, evs, fails atomic.Int64
		unnumbered       atomic.Int64
		mu               sync.Mutex
		wg               sync.WaitGroup
		before           []int64
		closes0          int64
	)
	if w != nil {
		before, closes0 = w.counts(), w.closes.Load()
		st.Watchers = len(before)
	}
	body := publishBody(group, batch, 0)
	srvCPU, benchCPU := e.serverCPU(), startCPU()
	start := time.Now()
	e.setPhase(fmt.Sprintf("batch %d", batch), func() string {
		el := max(time.Since(start).Seconds(), 1e-3)
		s := fmt.Sprintf("batches of %d: %3.0fs %d events (%.0f/s), %d requests failed, request p99 %s",
			batch, el, evs.Load(), float64(evs.Load())/el, fails.Load(), msText(ms(hist.Quantile(0.99))))
		if w != nil {
			s += fmt.Sprintf(", watcher 1 got %d", w.got[0].Load()-before[0])
		}
		return s
	})
	e.profile(ctx, fmt.Sprintf("cpu-batch%d.pprof", batch), o.Duration.D())
	sctx, cancel := context.WithTimeout(ctx, o.Duration.D())
	defer cancel()
	for range o.Publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for sctx.Err() == nil {
				t0 := time.Now()
				raw, err := e.rest.call(ctx, "POST", "/api/publish/", key, body, http.StatusCreated)
				hist.Record(time.Since(t0))
				reqs.Add(1)
				if err != nil {
					fails.Add(1)
					mu.Lock()
					if len(st.Errors) < 5 {
						st.Errors = append(st.Errors, err.Error())
					}
					mu.Unlock()
					if ctx.Err() != nil {
						return
					}
					continue
				}
				evs.Add(int64(batch))
				e.events.Add(uint64(batch))
				unnumbered.Add(int64(bytes.Count(raw, []byte(`"offset":null`))))
			}
		}()
	}
	wg.Wait()
	end := time.Now()
	el := end.Sub(start).Seconds()
	st.Requests, st.Events, st.Failed, st.Unnumbered = reqs.Load(), evs.Load(), fails.Load(), unnumbered.Load()
	st.RequestsPerS = round3(float64(st.Requests-st.Failed) / el)
	st.EventsPerS = round3(float64(st.Events) / el)
	st.REST = hist.Summary(false)
	if w != nil {
		fewest := func() int64 {
			now, least := w.counts(), int64(math.MaxInt64)
			for i := range now {
				if !w.gone[i].Load() {
					least = min(least, now[i]-before[i])
				}
			}
			if least == math.MaxInt64 {
				return 0
			}
			return least
		}
		// The relay may publish slower than the API commits: wait as long as
		// events keep arriving, until none came for --drain.
		_ = e.waitFor(ctx, fmt.Sprintf("batches of %d: watchers draining", batch), MaxDuration, func() (bool, string) {
			n := fewest()
			if n >= st.Events {
				return true, ""
			}
			if time.Since(time.Unix(0, max(w.last.Load(), end.UnixNano()))) > o.Drain.D() {
				return true, ""
			}
			return false, fmt.Sprintf("%d/%d delivered", n, st.Events)
		})
		st.Delivered = fewest()
		st.WatcherDisconnects = int(w.closes.Load() - closes0)
		if last := w.last.Load(); last > start.UnixNano() {
			st.DeliveredEventsPerS = round3(float64(st.Delivered) / time.Duration(last-start.UnixNano()).Seconds())
			st.DeliveryLagMs = ms(max(0, time.Duration(last-end.UnixNano())))
		}
	}
	st.BenchCPU, st.ServerCPU = benchCPU.stop(), srvCPU.stop()
	return st
}

// publishBody is a batch of n events to group; seq numbers the first.
func publishBody(group string, n int, seq int64) []byte {
	var b bytes.Buffer
	b.WriteString(`{"events":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"group":"` + group + `","type":"` + publishType + `","data":{"n":`)
		b.WriteString(strconv.FormatInt(seq+int64(i), 10))
		b.WriteString(`,"pad":"` + fillText(100) + `"}}`)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// publishSubs is what the latency phase's subscribers received.
type publishSubs struct {
	subs  []fanSub
	nbits int64
	step  atomic.Int64 // the step whose events count
	hist  atomic.Pointer[Histogram]
	// received, dups: this step's.
	received atomic.Int64
	dups     atomic.Int64
	closes   atomic.Int64
	e        *env

	mu    sync.Mutex
	codes map[string]int // disconnects by close code, over the run
}

// message reads {"type":"bench.publish","data":{"s":S,"n":N,"t":T}…}.
func (p *publishSubs) message(c *client, head []byte, n int) {
	now := time.Now().UnixNano()
	if !isType(head, publishType) {
		return
	}
	step, ok0 := intAfter(head, `"s":`)
	seq, ok1 := intAfter(head, `"n":`)
	sent, ok2 := intAfter(head, `"t":`)
	if !ok0 || !ok1 || !ok2 || step != p.step.Load() || seq < 0 || seq >= p.nbits {
		return
	}
	mask := uint64(1) << (seq & 63)
	if p.subs[c.id].bits[seq>>6].Or(mask)&mask != 0 {
		p.dups.Add(1)
		return
	}
	p.received.Add(1)
	p.hist.Load().Record(time.Duration(now - sent))
	p.e.deliveries.Add(1)
}

func (p *publishSubs) closed(c *client, code int, _ error) {
	if c.shut.Load() {
		return
	}
	p.subs[c.id].gone.Store(true)
	p.closes.Add(1)
	p.mu.Lock()
	p.codes[strconv.Itoa(code)]++
	p.mu.Unlock()
}

// closeCodes is a copy of the disconnects by close code.
func (p *publishSubs) closeCodes() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.codes)
}

// publishLatency connects --conns subscribers to a new campaign's room of
// owner and publishes single events to it at each of rates for --duration.
func (e *env) publishLatency(ctx context.Context, key string, owner user, rates []float64) ([]*PublishLatency, error) {
	o := e.o
	id, err := e.newCampaign(ctx, owner, "bench publish "+e.runID, 0)
	if err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	dur := o.Duration.D()
	most := 0
	for _, r := range rates {
		most = max(most, int(math.Ceil(r*dur.Seconds())))
	}
	ps := &publishSubs{subs: make([]fanSub, o.Conns), nbits: int64(most) + 64, e: e, codes: map[string]int{}}
	ps.step.Store(-1)
	ps.hist.Store(&Histogram{})
	for i := range ps.subs {
		ps.subs[i].bits = make([]atomic.Uint64, (ps.nbits+63)/64)
	}
	clients, cf := e.connect(ctx, connectSpec{label: "subscribing", n: o.Conns, rate: o.ConnectRate,
		path: func(int) string { return e.subscribePath(id) }, snapshot: true, h: ps})
	e.printf("subscribers: %s\n", connectLine(cf))
	defer e.closeAll(clients)
	if cf.Connected == 0 {
		return []*PublishLatency{{CampaignID: id, Subscribers: o.Conns, Connect: cf}}, fmt.Errorf("no subscriber could connect: %v", cf.Errors)
	}
	for i, c := range clients {
		if c == nil {
			ps.subs[i].gone.Store(true)
		}
	}
	// The server joins a connection to the room right after its snapshot;
	// give the last joins a moment before the first event.
	if err := sleep(ctx, 500*time.Millisecond); err != nil {
		return nil, err
	}
	var out []*PublishLatency
	for si, rate := range rates {
		lat, err := e.publishLatencyStep(ctx, key, id, si, rate, ps)
		lat.Connect = cf
		out = append(out, lat)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// publishLatencyStep publishes single events to campaign id's room at rate
// for --duration, each to be received by every subscriber still connected.
func (e *env) publishLatencyStep(ctx context.Context, key string, id int64, si int, rate float64, ps *publishSubs) (*PublishLatency, error) {
	o := e.o
	group := "campaign_" + strconv.FormatInt(id, 10)
	dur := o.Duration.D()
	planned := int(math.Ceil(rate * dur.Seconds()))
	lat := &PublishLatency{CampaignID: id, Subscribers: o.Conns, TargetRate: rate, DurationS: dur.Seconds()}
	alive := 0
	for i := range ps.subs {
		clear(ps.subs[i].bits)
		if !ps.subs[i].gone.Load() {
			alive++
		}
	}
	hist := &Histogram{}
	ps.hist.Store(hist)
	ps.received.Store(0)
	ps.dups.Store(0)
	closes0, codes0 := ps.closes.Load(), ps.closeCodes()
	ps.step.Store(int64(si))

	var (
		rest   Histogram
		sent   atomic.Int64
		mu     sync.Mutex
		wg     sync.WaitGroup
		jobs   = make(chan int64, o.Publishers)
		failed int
	)
	srvCPU, benchCPU := e.serverCPU(), startCPU()
	start := time.Now()
	e.setPhase("latency", func() string {
		return fmt.Sprintf("latency %g ev/s: %3.0fs sent %d delivered %d/%d p99 %s subs %d", rate, time.Since(start).Seconds(),
			sent.Load(), ps.received.Load(), sent.Load()*int64(alive), msText(ms(hist.Quantile(0.99))), e.open.Load())
	})
	e.profile(ctx, fmt.Sprintf("cpu-latency-%gps.pprof", rate), dur)
	for range o.Publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := range jobs {
				now := time.Now()
				body := `{"group":"` + group + `","type":"` + publishType + `","data":{"s":` + strconv.Itoa(si) +
					`,"n":` + strconv.FormatInt(seq, 10) + `,"t":` + strconv.FormatInt(now.UnixNano(), 10) + `}}`
				_, err := e.rest.call(ctx, "POST", "/api/publish/", key, []byte(body), http.StatusCreated)
				rest.Record(time.Since(now))
				mu.Lock()
				if err != nil {
					failed++
					if len(lat.Errors) < 5 {
						lat.Errors = append(lat.Errors, err.Error())
					}
				} else {
					sent.Add(1)
					e.events.Add(1)
				}
				mu.Unlock()
			}
		}()
	}
	end := start.Add(dur)
	scheduled := 0
schedule:
	for k := 0; k < planned; k++ {
		at := start.Add(time.Duration(float64(k) / rate * float64(time.Second)))
		if !at.Before(end) {
			break
		}
		if d := time.Until(at); d > 0 {
			if sleep(ctx, d) != nil {
				break
			}
		}
		select {
		case jobs <- int64(k):
			scheduled++
		case <-time.After(time.Until(end)):
			break schedule
		case <-ctx.Done():
			break schedule
		}
	}
	close(jobs)
	wg.Wait()
	lat.Skipped = planned - scheduled
	lat.Sent, lat.Failed = int(sent.Load()), failed
	want := int64(lat.Sent) * int64(alive)
	drainStart := time.Now()
	for ps.received.Load() < want && time.Since(drainStart) < o.Drain.D() && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	lat.DrainS = round3(time.Since(drainStart).Seconds())
	lat.BenchCPU, lat.ServerCPU = benchCPU.stop(), srvCPU.stop()
	lat.Expected, lat.Delivered = want, ps.received.Load()
	lat.Lost = max(0, want-lat.Delivered)
	lat.Duplicates = ps.dups.Load()
	lat.Disconnects = int(ps.closes.Load() - closes0)
	if lat.Disconnects > 0 {
		lat.CloseCodes = countsSince(ps.closeCodes(), codes0)
	}
	lat.Latency, lat.REST = hist.Summary(true), rest.Summary(false)
	return lat, ctx.Err()
}

func publishStepLine(st PublishBatchStep) string {
	s := fmt.Sprintf("batches of %d, %d publishers, %.0fs: %.0f events/s (%.0f requests/s), request p50 %s p99 %s",
		st.Batch, st.Publishers, st.DurationS, st.EventsPerS, st.RequestsPerS, msText(st.REST.P50Ms), msText(st.REST.P99Ms))
	if st.Failed > 0 || st.Unnumbered > 0 {
		s += fmt.Sprintf("; %d requests failed, %d events answered without a position", st.Failed, st.Unnumbered)
	}
	if st.Watchers > 0 {
		s += fmt.Sprintf("; each of %d watchers got ≥ %d of %d (%.0f events/s delivered, the last %s after the publishing stopped)",
			st.Watchers, st.Delivered, st.Events, st.DeliveredEventsPerS, msText(st.DeliveryLagMs))
		if st.WatcherDisconnects > 0 {
			s += fmt.Sprintf(", %d watchers disconnected", st.WatcherDisconnects)
		}
	}
	if st.ServerCPU != nil {
		s += fmt.Sprintf("; server %.2f cores", st.ServerCPU.Cores)
	}
	if st.BenchCPU != nil {
		s += fmt.Sprintf(", bench %.2f, machine %.2f cores busy", st.BenchCPU.Cores, st.BenchCPU.MachineCores)
	}
	return s
}

func publishLatencyLine(l *PublishLatency) string {
	s := fmt.Sprintf("latency at %g events/s to %d subscribers: sent %d, delivered %d/%d, lost %d, duplicates %d; publish → receipt %s; request %s",
		l.TargetRate, l.Subscribers, l.Sent, l.Delivered, l.Expected, l.Lost, l.Duplicates, latLine(l.Latency), latLine(l.REST))
	if l.Failed > 0 || l.Skipped > 0 || l.Disconnects > 0 {
		s += fmt.Sprintf("; %d publishes failed, %d not sent in time, %d subscribers disconnected", l.Failed, l.Skipped, l.Disconnects)
	}
	if len(l.CloseCodes) > 0 {
		s += " (by close code: " + codesText(l.CloseCodes) + ")"
	}
	if l.ServerCPU != nil {
		s += fmt.Sprintf("; server %.2f cores", l.ServerCPU.Cores)
	}
	return s
}

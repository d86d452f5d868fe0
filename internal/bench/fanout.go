package bench

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// FanoutStep is one event rate of the fanout scenario.
type FanoutStep struct {
	TargetRate float64 `json:"target_rate"`
	DurationS  float64 `json:"duration_s"`
	// Events: scheduled at the target rate over the step (Planned), created
	// through REST (Sent), refused or failed (Failed), not sent before the
	// step ended because every writer was busy (Skipped).
	Planned      int     `json:"planned"`
	Sent         int     `json:"sent"`
	Failed       int     `json:"failed"`
	Skipped      int     `json:"skipped"`
	AchievedRate float64 `json:"achieved_rate"`
	// RESTLimited: the REST writes could not keep up with the target rate,
	// so the step measured a lower rate than asked.
	RESTLimited  bool    `json:"rest_limited"`
	MaxSendLagMs float64 `json:"max_send_lag_ms"`
	// Deliveries: each subscriber connected at the step's start should get
	// every event sent (Expected); Delivered counts distinct (subscriber,
	// comment id) receipts of those, Lost the ones missing after the drain,
	// Duplicates repeated receipts, Unexpected receipts of comments whose
	// REST answer never came back.
	Subscribers    int     `json:"subscribers"`
	Expected       int64   `json:"expected"`
	Delivered      int64   `json:"delivered"`
	Lost           int64   `json:"lost"`
	Duplicates     int64   `json:"duplicates"`
	Unexpected     int64   `json:"unexpected"`
	DeliveriesPerS float64 `json:"deliveries_per_s"`
	Disconnects    int     `json:"disconnects"`
	// CloseCodes counts this step's disconnects by the server's close code
	// (4000: slow consumer; 0: no close frame).
	CloseCodes map[string]int `json:"close_codes,omitempty"`
	DrainS     float64        `json:"drain_s"`
	// Latency is from just before the REST request was sent to the moment
	// the subscriber read the event; REST is the REST request's own time.
	Latency   Latency         `json:"latency"`
	REST      Latency         `json:"rest"`
	Pass      bool            `json:"pass"`
	ServerCPU *ProcessFigures `json:"server_cpu,omitempty"`
	BenchCPU  *ProcessFigures `json:"bench_cpu,omitempty"`
	// RedisCPU is the channel layer's Redis's, with one; PostgresCPU is
	// every postgres process's on this machine.
	RedisCPU    *ProcessFigures `json:"redis_cpu,omitempty"`
	PostgresCPU *ProcessFigures `json:"postgres_cpu,omitempty"`
	Errors      []string        `json:"errors,omitempty"`
}

// FanoutFigures is the fanout scenario's outcome.
type FanoutFigures struct {
	CampaignID  int64           `json:"campaign_id"`
	Subscribers int             `json:"subscribers"`
	Connect     *ConnectFigures `json:"connect"`
	// EventBytes is the average size of the comment messages received.
	EventBytes int          `json:"event_bytes"`
	Steps      []FanoutStep `json:"steps"`
	// Best is the index of the highest-rate step that passed (no loss, no
	// failed write, p99 within MaxP99), -1 when none did; BestRate and
	// BestDeliveriesPerS are its figures.
	Best               int     `json:"best_step"`
	BestRate           float64 `json:"best_rate"`
	BestDeliveriesPerS float64 `json:"best_deliveries_per_s"`
	// CloseCodes counts subscribers the server closed, by close code ("0":
	// the connection ended without a close frame).
	CloseCodes map[string]int `json:"close_codes,omitempty"`
	Other      int64          `json:"other_messages,omitempty"`
}

// fanout is a running fanout scenario.
type fanout struct {
	e      *env
	base   int64 // comment ids above base are this run's events
	nbits  int64
	subs   []fanSub
	steps  []*fanStep
	other  atomic.Int64 // messages that are not this run's comments
	outOf  atomic.Int64 // comment ids outside the bitset
	evN    atomic.Int64
	evSize atomic.Int64

	mu     sync.Mutex
	closes map[string]int
}

type fanSub struct {
	bits []atomic.Uint64 // bit (id-base-1): comment id received
	gone atomic.Bool
}

type fanStep struct {
	hist     Histogram
	rest     Histogram
	received atomic.Int64 // first receipts of this step's events
	dups     atomic.Int64
	lag      atomic.Int64 // max ns between the scheduled and the actual send
	mu       sync.Mutex
	ids      []int64
	failed   int
	errs     []string
}

// contentTag starts every event's content: "hb <step> <send unix ns> ".
const contentTag = `"content":"hb `

func (f *fanout) message(c *client, head []byte, n int) {
	now := time.Now().UnixNano()
	if !isType(head, "comment") {
		f.other.Add(1)
		return
	}
	i := bytes.Index(head, []byte(`"data":`))
	if i < 0 {
		f.other.Add(1)
		return
	}
	id, ok := intAfter(head[i:], `"id":`)
	j := bytes.Index(head, []byte(contentTag))
	if !ok || j < 0 {
		f.other.Add(1)
		return
	}
	rest := head[j+len(contentTag):]
	step, ok1 := parseUint(rest)
	k := bytes.IndexByte(rest, ' ')
	if !ok1 || k < 0 || int(step) >= len(f.steps) {
		f.other.Add(1)
		return
	}
	sent, ok2 := parseUint(rest[k+1:])
	if !ok2 {
		f.other.Add(1)
		return
	}
	f.evN.Add(1)
	f.evSize.Add(int64(n))
	idx := id - f.base - 1
	if idx < 0 || idx >= f.nbits {
		f.outOf.Add(1)
		return
	}
	st := f.steps[step]
	mask := uint64(1) << (idx & 63)
	if f.subs[c.id].bits[idx>>6].Or(mask)&mask != 0 {
		st.dups.Add(1)
		return
	}
	st.received.Add(1)
	st.hist.Record(time.Duration(now - sent))
	f.e.deliveries.Add(1)
}

func (f *fanout) closed(c *client, code int, err error) {
	if c.shut.Load() {
		return
	}
	f.subs[c.id].gone.Store(true)
	f.mu.Lock()
	f.closes[strconv.Itoa(code)]++
	f.mu.Unlock()
}

func (e *env) runFanout(ctx context.Context) error {
	o := e.o
	rates := o.Steps
	if len(rates) == 0 {
		rates = []float64{o.Rate}
	}
	fig := &FanoutFigures{Subscribers: o.Conns, Best: -1}
	e.res.Fanout = fig
	author, err := e.newUser(ctx, "bench"+e.runID+"pub")
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	if fig.CampaignID, err = e.newCampaign(ctx, author, "bench fanout "+e.runID, o.SnapshotBytes); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	commentsPath := "/api/campaigns/" + strconv.FormatInt(fig.CampaignID, 10) + "/comments/"

	// A first comment: its id is the base of this run's ids, and its size
	// tells how much padding makes an event EventBytes long.
	probe := "hb warm-up"
	raw, err := e.rest.call(ctx, "POST", commentsPath, author.Token, []byte(`{"content":"`+probe+`"}`), http.StatusCreated)
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	base, ok := intAfter(raw, `"id":`)
	if !ok {
		return fmt.Errorf("setup: no id in the comment answer %s", raw)
	}
	// The event is {"type":"comment","data":<REST JSON>}.
	fixed := len(raw) - len(probe) + len(`{"type":"comment","data":}`)
	const header = len("hb 00 1700000000000000000 ")
	pad := max(0, o.EventBytes-fixed-header)

	nbits := fanoutBits(rates, o.Duration.D())
	fo := &fanout{e: e, base: base, nbits: nbits, closes: map[string]int{}}
	for range rates {
		fo.steps = append(fo.steps, &fanStep{})
	}

	tok := ""
	if o.Token {
		tok = author.Token
	}
	var clients []*client
	var cf *ConnectFigures
	if o.Generators > 1 {
		// The subscribers and their bitsets live in the generators.
		cf, _, err = e.connectRemote(ctx, "subscribing", genSpec{N: o.Conns, Path: campaignPath(fig.CampaignID, tok), Snapshot: true,
			Handler: genFanout, Base: base, NBits: nbits, Steps: len(rates)})
		if err != nil {
			return err
		}
	} else {
		fo.subs = make([]fanSub, o.Conns)
		words := int((nbits + 63) / 64)
		for i := range fo.subs {
			fo.subs[i].bits = make([]atomic.Uint64, words)
		}
		clients, cf = e.connect(ctx, connectSpec{label: "subscribing", n: o.Conns, rate: o.ConnectRate,
			path: func(int) string { return campaignPath(fig.CampaignID, tok) }, snapshot: true, h: fo})
	}
	fig.Connect = cf
	e.printf("subscribers: %s\n", connectLine(cf))
	defer e.closeAll(clients)
	defer func() {
		fo.mu.Lock()
		if len(fo.closes) > 0 {
			fig.CloseCodes = fo.closes
		}
		fo.mu.Unlock()
		fig.Other = fo.other.Load() + fo.outOf.Load()
		if n := fo.evN.Load(); n > 0 {
			fig.EventBytes = int(fo.evSize.Load() / n)
		}
	}()
	if cf.Connected == 0 {
		return fmt.Errorf("no subscriber could connect: %v", cf.Errors)
	}
	for i, c := range clients {
		if c == nil {
			fo.subs[i].gone.Store(true)
		}
	}
	// The server joins a connection to the room right after sending its
	// snapshot; give the last joins a moment before the first event.
	if err := sleep(ctx, 500*time.Millisecond); err != nil {
		return err
	}

	var marks []Mark
	prevAchieved := 0.0
	for si, rate := range rates {
		marks = append(marks, Mark{At: time.Since(e.start).Seconds(), Label: human(rate) + "/s"})
		st, err := fo.runStep(ctx, si, rate, commentsPath, author.Token, pad)
		fig.Steps = append(fig.Steps, st)
		e.printf("%s\n", stepLine(si, len(rates), st))
		if err != nil {
			return err
		}
		if st.Pass && (fig.Best < 0 || st.AchievedRate > fig.Steps[fig.Best].AchievedRate) {
			fig.Best, fig.BestRate, fig.BestDeliveriesPerS = si, st.AchievedRate, st.DeliveriesPerS
		}
		if !st.Pass && !o.KeepGoing && si < len(rates)-1 {
			e.note("stopped the ramp after step %d (%v events/s): it lost events, failed writes or went over p99 %v", si+1, rate, o.MaxP99)
			break
		}
		if st.RESTLimited {
			e.note("step %d: the REST writes reached %.1f of %v events/s (%d writers); the write path, not the fan-out, limited this step", si+1, st.AchievedRate, rate, o.Publishers)
			if si > 0 && st.AchievedRate < prevAchieved*1.05 && !o.KeepGoing && si < len(rates)-1 {
				e.note("stopped the ramp after step %d: the REST write rate no longer grows with the target (%.1f/s)", si+1, st.AchievedRate)
				break
			}
		}
		prevAchieved = st.AchievedRate
	}
	head := fig.Best
	if head < 0 {
		head = len(fig.Steps) - 1
	}
	for i, st := range fig.Steps {
		name := fmt.Sprintf("latency-step%d-%gps.svg", i+1, st.TargetRate)
		if len(fig.Steps) == 1 {
			continue
		}
		e.latencyChart(name, fmt.Sprintf("Fan-out latency, %d subscribers, %g events/s (REST send → WebSocket receipt)", fig.Subscribers, st.TargetRate), st.Latency)
	}
	if head >= 0 {
		st := fig.Steps[head]
		e.latencyChart("latency.svg", fmt.Sprintf("Fan-out latency, %d subscribers, %g events/s (REST send → WebSocket receipt)", fig.Subscribers, st.TargetRate), st.Latency)
	}
	e.timelineChart("throughput.svg", fmt.Sprintf("Deliveries per second, %d subscribers", fig.Subscribers), "deliveries/s",
		func(p TimelinePoint) float64 { return float64(p.Deliveries) }, marks...)
	return nil
}

// fanoutBits is the size of each subscriber's bitset, one bit per comment
// id above the base, for a ramp of rates each dur long.
func fanoutBits(rates []float64, dur time.Duration) int64 {
	var maxEvents int64
	for _, r := range rates {
		maxEvents += int64(math.Ceil(r*dur.Seconds())) + 1
	}
	// Other writers on the server may take ids in between: leave room.
	return maxEvents + maxEvents/4 + 1024
}

// runStep publishes at rate for the step's duration, waits for stragglers
// and counts what every subscriber got.
func (fo *fanout) runStep(ctx context.Context, si int, rate float64, path, token string, pad int) (FanoutStep, error) {
	e, o := fo.e, fo.e.o
	st := fo.steps[si]
	dur := o.Duration.D()
	res := FanoutStep{TargetRate: rate, DurationS: dur.Seconds(), Planned: int(math.Ceil(rate * dur.Seconds()))}
	var alive []bool
	if e.gen != nil {
		reps, err := e.gen.call(ctx, genReq{Op: "begin", Step: si}, 0)
		if err != nil {
			return res, err
		}
		if res.Subscribers, err = sumSubscribers(o.Conns, reps); err != nil {
			return res, err
		}
	} else {
		alive, res.Subscribers = fo.aliveNow()
	}
	codes0 := fo.closeCodes()
	padding := fillText(pad)
	srvCPU, benchCPU, redisCPU, pgCPU := e.serverCPU(), e.benchCPU(), e.redisCPU(ctx), startPostgresCPU()

	e.profile(ctx, fmt.Sprintf("cpu-step%d-%gps.pprof", si+1, rate), dur)
	start := time.Now()
	var sent atomic.Int64
	lastD, lastT := e.deliveries.Load(), time.Now()
	e.setPhase(fmt.Sprintf("step %d", si+1), func() string {
		d, now := e.deliveries.Load(), time.Now()
		per := float64(d-lastD) / max(now.Sub(lastT).Seconds(), 1e-3)
		lastD, lastT = d, now
		return fmt.Sprintf("step %d/%d %g ev/s: %3.0fs sent %d (lag %s) delivered %d/%d %.0f/s p99 %s subs %d",
			si+1, max(len(fo.steps), 1), rate, time.Since(start).Seconds(), sent.Load(), msText(float64(st.lag.Load())/1e6),
			st.received.Load(), sent.Load()*int64(res.Subscribers), per, msText(ms(st.hist.Quantile(0.99))), e.open.Load())
	})

	type job struct{ at time.Time }
	jobs := make(chan job, o.Publishers)
	var wg sync.WaitGroup
	for range o.Publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var body bytes.Buffer
			for j := range jobs {
				now := time.Now()
				if lag := int64(now.Sub(j.at)); lag > st.lag.Load() {
					st.lag.Store(lag) // racy max; good enough for a report
				}
				body.Reset()
				body.WriteString(`{"content":"hb `)
				body.WriteString(strconv.Itoa(si))
				body.WriteByte(' ')
				body.WriteString(strconv.FormatInt(now.UnixNano(), 10))
				body.WriteByte(' ')
				body.WriteString(padding)
				body.WriteString(`"}`)
				raw, err := e.rest.call(ctx, "POST", path, token, body.Bytes(), http.StatusCreated)
				st.rest.Record(time.Since(now))
				id, ok := intAfter(raw, `"id":`)
				st.mu.Lock()
				if err != nil || !ok {
					st.failed++
					if len(st.errs) < 5 {
						if err == nil {
							err = fmt.Errorf("no id in %s", raw)
						}
						st.errs = append(st.errs, err.Error())
					}
				} else {
					st.ids = append(st.ids, id)
					sent.Add(1)
					e.events.Add(1)
				}
				st.mu.Unlock()
			}
		}()
	}
	end := start.Add(dur)
	scheduled := 0
schedule:
	for k := 0; ; k++ {
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
		case jobs <- job{at}:
			scheduled++
		case <-time.After(time.Until(end)):
			break schedule
		case <-ctx.Done():
			break schedule
		}
	}
	close(jobs)
	wg.Wait()
	res.Skipped = res.Planned - scheduled

	// Wait until every live subscriber has every event, or the drain ends.
	st.mu.Lock()
	ids := append([]int64(nil), st.ids...)
	res.Failed, res.Errors = st.failed, st.errs
	st.mu.Unlock()
	res.Sent = len(ids)
	want := int64(len(ids)) * int64(res.Subscribers)
	drainStart := time.Now()
	if e.gen != nil {
		lost, err := fo.tallyRemote(ctx, si, ids, want)
		if err != nil {
			return res, err
		}
		res.Lost = lost
	} else {
		res.Lost = fo.tally(ctx, st, ids, alive, o.Drain.D())
	}
	res.DrainS = round3(time.Since(drainStart).Seconds())
	res.BenchCPU = benchCPU.stop()
	res.ServerCPU = srvCPU.stop()
	res.RedisCPU, res.PostgresCPU = redisCPU.stop(), pgCPU.stop()
	res.Expected = want
	res.Delivered = want - res.Lost
	res.Duplicates = st.dups.Load()
	res.Unexpected = max(0, st.received.Load()-res.Delivered)
	res.CloseCodes = countsSince(fo.closeCodes(), codes0)
	for _, v := range res.CloseCodes {
		res.Disconnects += v
	}
	res.AchievedRate = round3(float64(res.Sent) / dur.Seconds())
	res.DeliveriesPerS = round3(float64(res.Delivered) / dur.Seconds())
	res.RESTLimited = res.AchievedRate < 0.95*rate
	res.MaxSendLagMs = ms(time.Duration(st.lag.Load()))
	res.Latency = st.hist.Summary(true)
	res.REST = st.rest.Summary(false)
	res.Pass = res.Lost == 0 && res.Failed == 0 && res.Sent > 0 && time.Duration(res.Latency.P99Ms*1e6) <= o.MaxP99.D()
	return res, ctx.Err()
}

// aliveNow is which subscribers are connected, and how many.
func (fo *fanout) aliveNow() ([]bool, int) {
	alive := make([]bool, len(fo.subs))
	n := 0
	for i := range fo.subs {
		if !fo.subs[i].gone.Load() {
			alive[i] = true
			n++
		}
	}
	return alive, n
}

// tally waits until every subscriber alive at the step's start has each of
// ids, or drain passes, and returns how many (subscriber, id) receipts are
// missing.
func (fo *fanout) tally(ctx context.Context, st *fanStep, ids []int64, alive []bool, drain time.Duration) (lost int64) {
	n := 0
	for _, a := range alive {
		if a {
			n++
		}
	}
	want := int64(len(ids)) * int64(n)
	start := time.Now()
	for st.received.Load() < want && time.Since(start) < drain && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	for i := range fo.subs {
		if !alive[i] {
			continue
		}
		bits := fo.subs[i].bits
		for _, id := range ids {
			idx := id - fo.base - 1
			if idx < 0 || idx >= fo.nbits || bits[idx>>6].Load()&(1<<(idx&63)) == 0 {
				lost++
			}
		}
	}
	return lost
}

// tallyRemote is tally done by the generator children on their
// subscribers, of which want receipts were expected; their receipts,
// latencies, duplicates and disconnects are added to the step's.
func (fo *fanout) tallyRemote(ctx context.Context, si int, ids []int64, want int64) (int64, error) {
	st := fo.steps[si]
	reps, err := fo.e.gen.call(ctx, genReq{Op: "check", Step: si, IDs: ids, Drain: fo.e.o.Drain}, fo.e.o.Drain.D())
	if err != nil {
		return 0, err
	}
	t, err := mergeChecks(want, reps, &st.hist)
	if err != nil {
		return 0, err
	}
	st.received.Add(t.received)
	st.dups.Add(t.dups)
	fo.mu.Lock()
	fo.closes = t.codes
	fo.mu.Unlock()
	fo.other.Store(t.other)
	fo.outOf.Store(0)
	fo.evN.Store(t.evN)
	fo.evSize.Store(t.evSize)
	return t.lost, nil
}

// closeCodes returns a copy of the disconnects so far by close code.
func (fo *fanout) closeCodes() map[string]int {
	fo.mu.Lock()
	defer fo.mu.Unlock()
	return maps.Clone(fo.closes)
}

// countsSince returns what now counts beyond before, nil when nothing.
func countsSince(now, before map[string]int) map[string]int {
	var out map[string]int
	for k, v := range now {
		if d := v - before[k]; d > 0 {
			if out == nil {
				out = map[string]int{}
			}
			out[k] = d
		}
	}
	return out
}

// codesText renders counts by close code: "4000: 253, 1006: 2".
func codesText(codes map[string]int) string {
	keys := slices.Sorted(maps.Keys(codes))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, codes[k])
	}
	return strings.Join(parts, ", ")
}

func stepLine(si, n int, st FanoutStep) string {
	verdict := "PASS"
	if !st.Pass {
		verdict = "FAIL"
	}
	s := fmt.Sprintf("step %d/%d %g ev/s [%s]: sent %d (%.1f/s", si+1, n, st.TargetRate, verdict, st.Sent, st.AchievedRate)
	if st.RESTLimited {
		s += ", REST-limited"
	}
	s += fmt.Sprintf("), delivered %d/%d (%.0f/s), lost %d, p50 %s p95 %s p99 %s max %s; REST p50 %s p99 %s",
		st.Delivered, st.Expected, st.DeliveriesPerS, st.Lost, msText(st.Latency.P50Ms), msText(st.Latency.P95Ms),
		msText(st.Latency.P99Ms), msText(st.Latency.MaxMs), msText(st.REST.P50Ms), msText(st.REST.P99Ms))
	if st.Failed > 0 || st.Skipped > 0 {
		s += fmt.Sprintf("; %d writes failed, %d not sent in time", st.Failed, st.Skipped)
	}
	if st.Disconnects > 0 {
		s += fmt.Sprintf("; %d subscribers disconnected", st.Disconnects)
		if len(st.CloseCodes) > 0 {
			s += " (close codes " + codesText(st.CloseCodes) + ")"
		}
	}
	if st.ServerCPU != nil {
		s += fmt.Sprintf("; server %.2f cores", st.ServerCPU.Cores)
	}
	if st.BenchCPU != nil {
		s += fmt.Sprintf(", bench %.2f cores, machine %.2f of %d cores busy", st.BenchCPU.Cores, st.BenchCPU.MachineCores, runtime.NumCPU())
	}
	if st.RedisCPU != nil {
		s += fmt.Sprintf("; Redis %.3f cores", st.RedisCPU.Cores)
	}
	if st.PostgresCPU != nil {
		s += fmt.Sprintf(", PostgreSQL %.2f cores", st.PostgresCPU.Cores)
	}
	return s
}

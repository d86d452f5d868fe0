package bench

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// WritesFigures is the writes scenario's outcome: the cluster's ceiling of
// committed writes per second that reach clients. --publishers writers
// write over --groups campaign rooms (each writer owns every
// --publishers-th room and writes to its rooms in turn, one write at a
// time, so each room's writes are sequential and commit in the order
// sent): as fast as they are answered (--rate 0, the default), or at each
// rate of --steps (or --rate) in all for --duration. One protocol v2
// subscriber per room, the subscribers spread over the processes like the
// writes, checks that it receives every committed write of its room once,
// in the order written, with consecutive offsets.
type WritesFigures struct {
	// Via is what the writes are: "rest" (a comment through POST
	// /api/campaigns/<id>/comments/), "publish" (one event through POST
	// /api/publish/ with an API key) or "both" (each writer alternates).
	Via       string          `json:"via"`
	Groups    int             `json:"groups"`
	Writers   int             `json:"writers"`
	Processes int             `json:"processes"`
	Connect   *ConnectFigures `json:"connect"`
	Steps     []WritesStep    `json:"steps"`
	// Best is the index of the highest step that passed (-1 for none);
	// CeilingPerS its writes committed per second, all of them received
	// in order within --max-p99.
	Best        int     `json:"best_step"`
	CeilingPerS float64 `json:"ceiling_per_s"`
	// CloseCodes counts the subscribers the server closed, by close code.
	CloseCodes map[string]int `json:"close_codes,omitempty"`
}

// WritesStep is --duration of writing at TargetRate writes a second in
// all (0: as fast as answered).
type WritesStep struct {
	TargetRate float64 `json:"target_rate"`
	DurationS  float64 `json:"duration_s"`
	// Committed is writes answered with 201 (REST and publish), Failed the
	// others (their fate unknown: their events may or may not come),
	// Skipped the writes of the target rate a writer could not send in
	// time because its last one was still waiting for its answer.
	Committed        int64   `json:"committed"`
	CommittedREST    int64   `json:"committed_rest"`
	CommittedPublish int64   `json:"committed_publish"`
	Failed           int64   `json:"failed"`
	Skipped          int64   `json:"skipped"`
	CommittedPerS    float64 `json:"committed_per_s"`
	// RESTLimited: the writers could not keep up with the target rate.
	RESTLimited bool `json:"rest_limited"`
	// Received counts first receipts of the committed writes by their
	// room's subscriber; Lost the committed writes not received within
	// --drain after the writes stopped; Duplicates repeated receipts;
	// OutOfOrder receipts of a write older than one already received in
	// its room; OffsetGaps consecutive events of a room whose offsets do
	// not follow each other (v2) in one epoch; Unexpected receipts of
	// writes whose answer failed.
	Received    int64 `json:"received"`
	Lost        int64 `json:"lost"`
	Duplicates  int64 `json:"duplicates"`
	OutOfOrder  int64 `json:"out_of_order"`
	OffsetGaps  int64 `json:"offset_gaps"`
	Unexpected  int64 `json:"unexpected"`
	Disconnects int   `json:"disconnects"`
	// ReceivedPerS is Received over the time from the start of the step
	// to its last receipt; LastReceiptMs is how long after the writes
	// stopped that last receipt came.
	ReceivedPerS  float64 `json:"received_per_s"`
	LastReceiptMs float64 `json:"last_receipt_ms"`
	// Latency is from just before a write's request was sent to its
	// receipt by the room's subscriber (commit, relay and fan-out
	// included); REST and Publish are the requests' own times.
	Latency Latency `json:"latency"`
	REST    Latency `json:"rest"`
	Publish Latency `json:"publish"`
	// Pass: nothing lost, failed, duplicated or out of order, write →
	// receipt p99 within --max-p99, and at a target rate at least 95% of
	// it committed.
	Pass      bool            `json:"pass"`
	ServerCPU *ProcessFigures `json:"server_cpu,omitempty"`
	BenchCPU  *ProcessFigures `json:"bench_cpu,omitempty"`
	Errors    []string        `json:"errors,omitempty"`
}

// Ways of writing in the writes scenario (--via).
const (
	ViaREST    = "rest"
	ViaPublish = "publish"
	ViaBoth    = "both"
)

// writeType is the type of the writes scenario's published events.
const writeType = "bench.write"

// writeTag starts a comment's content in the writes scenario:
// "hw <step> <seq> <send unix ns>".
const writeTag = `"content":"hw `

// writeRoom is one room of the writes scenario: its writer's record of
// what it wrote and its subscriber's of what arrived. Its writer and its
// subscriber each run on one goroutine; the counters are read while they
// run.
type writeRoom struct {
	id    int64
	group string
	// The writer's: sent[seq] tells whether seq's write was answered 201;
	// from[i] is the first seq of step i.
	mu   sync.Mutex
	sent []bool
	from []int
	// The subscriber's: got[seq] once seq arrived.
	smu    sync.Mutex
	got    []bool
	maxSeq int64 // highest seq received, -1 for none
	epoch  string
	offset uint64
	gone   atomic.Bool
}

// writeStep is what the subscribers saw of one step's writes.
type writeStep struct {
	hist       Histogram
	received   atomic.Int64
	dups       atomic.Int64
	outOfOrder atomic.Int64
	gaps       atomic.Int64
	last       atomic.Int64 // unix ns of the latest receipt
}

// writes is a running writes scenario.
type writes struct {
	e     *env
	rooms []*writeRoom
	steps []*writeStep
	other atomic.Int64

	mu     sync.Mutex
	closes map[string]int
}

// maxWriteSeq bounds the writes one room records (far above what a room
// gets in MaxDuration on one machine).
const maxWriteSeq = 1 << 24

func (w *writes) message(c *client, head []byte, _ int) {
	now := time.Now().UnixNano()
	r := w.rooms[c.id]
	var step, seq, sent int64
	var ok bool
	switch {
	case isType(head, writeType):
		var ok0, ok1, ok2 bool
		step, ok0 = intAfter(head, `"s":`)
		seq, ok1 = intAfter(head, `"q":`)
		sent, ok2 = intAfter(head, `"t":`)
		ok = ok0 && ok1 && ok2
	case isType(head, "comment"):
		j := bytes.Index(head, []byte(writeTag))
		if j < 0 {
			break
		}
		f := bytes.Fields(head[j+len(writeTag):])
		if len(f) < 3 {
			break
		}
		var ok0, ok1, ok2 bool
		step, ok0 = parseUint(f[0])
		seq, ok1 = parseUint(f[1])
		sent, ok2 = parseUint(f[2])
		ok = ok0 && ok1 && ok2
	default:
		return // presence, subscribed
	}
	if !ok || seq >= maxWriteSeq || step >= int64(len(w.steps)) {
		w.other.Add(1)
		return
	}
	st := w.steps[step]
	// Offsets: consecutive within an epoch (a room's first event here may
	// come after others, so the first one sets the position). Only this
	// client's reader goroutine touches epoch and offset.
	if off, ok := intAfter(head, `"offset":`); ok {
		epoch := ""
		if i := bytes.Index(head, []byte(`"epoch":"`)); i >= 0 {
			rest := head[i+len(`"epoch":"`):]
			if k := bytes.IndexByte(rest, '"'); k >= 0 {
				epoch = string(rest[:k])
			}
		}
		if r.epoch == epoch && r.offset != 0 && uint64(off) != r.offset+1 {
			st.gaps.Add(1)
		}
		r.epoch, r.offset = epoch, uint64(off)
	}
	r.smu.Lock()
	if int64(len(r.got)) <= seq {
		r.got = append(r.got, make([]bool, seq+1-int64(len(r.got))+64)...)
	}
	dup := r.got[seq]
	r.got[seq] = true
	late := seq < r.maxSeq
	r.maxSeq = max(r.maxSeq, seq)
	r.smu.Unlock()
	if dup {
		st.dups.Add(1)
		return
	}
	if late {
		st.outOfOrder.Add(1)
	}
	st.received.Add(1)
	st.hist.Record(time.Duration(now - sent))
	w.e.deliveries.Add(1)
	for {
		l := st.last.Load()
		if now <= l || st.last.CompareAndSwap(l, now) {
			break
		}
	}
}

func (w *writes) closed(c *client, code int, _ error) {
	if c.shut.Load() {
		return
	}
	w.rooms[c.id].gone.Store(true)
	w.mu.Lock()
	w.closes[strconv.Itoa(code)]++
	w.mu.Unlock()
}

func (e *env) runWrites(ctx context.Context) error {
	o := e.o
	rates := o.Steps
	if len(rates) == 0 {
		rates = []float64{o.Rate}
	}
	fig := &WritesFigures{Via: o.Via, Groups: o.Groups, Writers: o.Publishers, Processes: len(e.targets), Best: -1}
	e.res.Writes = fig
	owner, err := e.newUser(ctx, "bench"+e.runID+"w")
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	key := ""
	if o.Via != ViaREST {
		if key, err = e.apiKey(ctx); err != nil {
			return err
		}
	}
	w := &writes{e: e, closes: map[string]int{}}
	for range rates {
		w.steps = append(w.steps, &writeStep{})
	}
	var made atomic.Int64
	e.setPhase("setup", func() string { return fmt.Sprintf("setup: %d/%d campaigns", made.Load(), o.Groups) })
	for i := range o.Groups {
		id, err := e.newCampaign(ctx, owner, fmt.Sprintf("bench writes %s %d", e.runID, i), 0)
		if err != nil {
			return fmt.Errorf("setup: %w", err)
		}
		made.Add(1)
		w.rooms = append(w.rooms, &writeRoom{id: id, group: "campaign_" + strconv.FormatInt(id, 10), maxSeq: -1})
	}
	clients, cf := e.connect(ctx, connectSpec{label: "subscribing", n: o.Groups, rate: o.ConnectRate,
		path: func(i int) string { return campaignPath(w.rooms[i].id, "") + "?v=2" }, snapshot: true, h: w})
	fig.Connect = cf
	e.printf("subscribers, one per room: %s\n", connectLine(cf))
	defer e.closeAll(clients)
	defer func() {
		w.mu.Lock()
		if len(w.closes) > 0 {
			fig.CloseCodes = maps.Clone(w.closes)
		}
		w.mu.Unlock()
		if n := w.other.Load(); n > 0 {
			e.note("%d messages that were not this run's writes", n)
		}
	}()
	if cf.Connected < o.Groups {
		return fmt.Errorf("subscribers: %d of %d connected: %v", cf.Connected, o.Groups, cf.Errors)
	}
	// The server joins a connection to its room right after its snapshot.
	if err := sleep(ctx, 500*time.Millisecond); err != nil {
		return err
	}
	for si, rate := range rates {
		st := w.runStep(ctx, si, rate, owner.Token, key)
		fig.Steps = append(fig.Steps, st)
		e.printf("%s\n", writesStepLine(si, len(rates), st))
		if st.Pass && (fig.Best < 0 || st.CommittedPerS > fig.Steps[fig.Best].CommittedPerS) {
			fig.Best, fig.CeilingPerS = si, st.CommittedPerS
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !st.Pass && !o.KeepGoing && si < len(rates)-1 {
			e.note("stopped after step %d (%v writes/s): it lost, reordered or failed writes, fell short of the rate or went over p99 %v", si+1, rate, o.MaxP99)
			break
		}
	}
	head := fig.Best
	if head < 0 {
		head = len(fig.Steps) - 1
	}
	if head >= 0 {
		st := fig.Steps[head]
		e.latencyChart("latency.svg", fmt.Sprintf("Write → receipt, %d rooms, %d writers, via %s, %s writes/s", fig.Groups, fig.Writers, fig.Via, rateText(st.TargetRate)), st.Latency)
	}
	e.timelineChart("throughput.svg", "Writes received per second", "writes/s",
		func(p TimelinePoint) float64 { return float64(p.Deliveries) })
	return nil
}

// rateText is a step's target rate, "max" for as fast as answered.
func rateText(rate float64) string {
	if rate <= 0 {
		return "max"
	}
	return strconv.FormatFloat(rate, 'f', -1, 64)
}

// runStep writes at rate (0: as fast as answered) for --duration, waits
// for the last receipts and counts them.
func (w *writes) runStep(ctx context.Context, si int, rate float64, token, key string) WritesStep {
	e, o := w.e, w.e.o
	st := w.steps[si]
	dur := o.Duration.D()
	res := WritesStep{TargetRate: rate, DurationS: dur.Seconds()}
	for _, r := range w.rooms {
		r.mu.Lock()
		r.from = append(r.from, len(r.sent))
		r.mu.Unlock()
	}
	var (
		committed, viaREST, viaPub, failed, skipped atomic.Int64
		restH, pubH                                 Histogram
		errMu                                       sync.Mutex
		wg                                          sync.WaitGroup
	)
	srvCPU, benchCPU := e.serverCPU(), startCPU()
	start := time.Now()
	e.setPhase(fmt.Sprintf("step %d", si+1), func() string {
		el := max(time.Since(start).Seconds(), 1e-3)
		return fmt.Sprintf("step %d/%d %s writes/s: %3.0fs committed %d (%.0f/s), failed %d, received %d, p99 %s",
			si+1, len(w.steps), rateText(rate), el, committed.Load(), float64(committed.Load())/el, failed.Load(), st.received.Load(), msText(ms(st.hist.Quantile(0.99))))
	})
	e.profile(ctx, fmt.Sprintf("cpu-step%d-%s.pprof", si+1, rateText(rate)), dur)
	end := start.Add(dur)
	for k := range o.Publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []*writeRoom
			for i := k; i < len(w.rooms); i += o.Publishers {
				mine = append(mine, w.rooms[i])
			}
			// At a target rate, writer k's j-th write is due at
			// start + (j·writers + k)/rate; one due while the last is
			// still unanswered is skipped.
			var interval time.Duration
			if rate > 0 {
				interval = time.Duration(float64(o.Publishers) / rate * float64(time.Second))
			}
			next := start.Add(time.Duration(float64(k) / max(rate, 1) * float64(time.Second)))
			var body bytes.Buffer
			for n := 0; ; n++ {
				if rate > 0 {
					for now := time.Now(); next.Add(interval).Before(now); {
						next = next.Add(interval)
						skipped.Add(1)
					}
					if !next.Before(end) || sleep(ctx, time.Until(next)) != nil {
						return
					}
					next = next.Add(interval)
				} else if !time.Now().Before(end) || ctx.Err() != nil {
					return
				}
				r := mine[n%len(mine)]
				r.mu.Lock()
				seq := int64(len(r.sent))
				r.mu.Unlock()
				if seq >= maxWriteSeq {
					return
				}
				rest := o.Via == ViaREST || (o.Via == ViaBoth && (n/len(mine))%2 == 0)
				now := time.Now()
				tag := strconv.Itoa(si) + " " + strconv.FormatInt(seq, 10) + " " + strconv.FormatInt(now.UnixNano(), 10)
				body.Reset()
				var err error
				if rest {
					body.WriteString(`{"content":"hw ` + tag + `"}`)
					_, err = e.rest.call(ctx, "POST", "/api/campaigns/"+strconv.FormatInt(r.id, 10)+"/comments/", token, body.Bytes(), http.StatusCreated)
					restH.Record(time.Since(now))
				} else {
					body.WriteString(`{"group":"` + r.group + `","type":"` + writeType + `","data":{"s":` + strconv.Itoa(si) +
						`,"q":` + strconv.FormatInt(seq, 10) + `,"t":` + strconv.FormatInt(now.UnixNano(), 10) + `}}`)
					_, err = e.rest.call(ctx, "POST", "/api/publish/", key, body.Bytes(), http.StatusCreated)
					pubH.Record(time.Since(now))
				}
				r.mu.Lock()
				r.sent = append(r.sent, err == nil)
				r.mu.Unlock()
				if err != nil {
					failed.Add(1)
					errMu.Lock()
					if len(res.Errors) < 5 {
						res.Errors = append(res.Errors, err.Error())
					}
					errMu.Unlock()
					continue
				}
				committed.Add(1)
				e.events.Add(1)
				if rest {
					viaREST.Add(1)
				} else {
					viaPub.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	stopped := time.Now()
	el := stopped.Sub(start).Seconds()
	res.Committed, res.CommittedREST, res.CommittedPublish = committed.Load(), viaREST.Load(), viaPub.Load()
	res.Failed, res.Skipped = failed.Load(), skipped.Load()
	res.CommittedPerS = round3(float64(res.Committed) / el)
	res.RESTLimited = rate > 0 && res.CommittedPerS < 0.95*rate
	res.REST, res.Publish = restH.Summary(false), pubH.Summary(false)

	// Wait while events keep arriving, until every committed one did or
	// none came for --drain.
	_ = e.waitFor(ctx, fmt.Sprintf("step %d: draining", si+1), MaxDuration, func() (bool, string) {
		if got := st.received.Load(); got >= res.Committed {
			return true, ""
		} else if time.Since(time.Unix(0, max(st.last.Load(), stopped.UnixNano()))) > o.Drain.D() {
			return true, ""
		} else {
			return false, fmt.Sprintf("%d/%d received", got, res.Committed)
		}
	})
	res.BenchCPU, res.ServerCPU = benchCPU.stop(), srvCPU.stop()
	for _, r := range w.rooms {
		r.mu.Lock()
		r.smu.Lock()
		for seq := r.from[si]; seq < len(r.sent); seq++ {
			switch got := seq < len(r.got) && r.got[seq]; {
			case r.sent[seq] && got:
				res.Received++
			case r.sent[seq]:
				res.Lost++
			case got:
				res.Unexpected++
			}
		}
		r.smu.Unlock()
		r.mu.Unlock()
	}
	res.Duplicates, res.OutOfOrder, res.OffsetGaps = st.dups.Load(), st.outOfOrder.Load(), st.gaps.Load()
	w.mu.Lock()
	for _, n := range w.closes {
		res.Disconnects += n
	}
	w.mu.Unlock()
	if last := st.last.Load(); last > start.UnixNano() {
		res.ReceivedPerS = round3(float64(res.Received) / time.Duration(last-start.UnixNano()).Seconds())
		res.LastReceiptMs = ms(max(0, time.Duration(last-stopped.UnixNano())))
	}
	res.Latency = st.hist.Summary(true)
	res.Pass = res.Committed > 0 && res.Lost == 0 && res.Failed == 0 && res.Duplicates == 0 && res.OutOfOrder == 0 && res.OffsetGaps == 0 &&
		res.Disconnects == 0 && !res.RESTLimited && time.Duration(res.Latency.P99Ms*1e6) <= o.MaxP99.D()
	return res
}

func writesStepLine(si, n int, st WritesStep) string {
	s := fmt.Sprintf("step %d/%d, %s writes/s for %.0fs: committed %d (%.0f/s; REST %d, publish %d), failed %d",
		si+1, n, rateText(st.TargetRate), st.DurationS, st.Committed, st.CommittedPerS, st.CommittedREST, st.CommittedPublish, st.Failed)
	if st.Skipped > 0 {
		s += fmt.Sprintf(", %d not sent in time", st.Skipped)
	}
	if st.RESTLimited {
		s += " (REST-limited)"
	}
	s += fmt.Sprintf("; received %d (%.0f/s, the last %s after the writes stopped), lost %d, duplicates %d, out of order %d, offset gaps %d",
		st.Received, st.ReceivedPerS, msText(st.LastReceiptMs), st.Lost, st.Duplicates, st.OutOfOrder, st.OffsetGaps)
	if st.Unexpected > 0 || st.Disconnects > 0 {
		s += fmt.Sprintf(", %d failed writes received anyway, %d subscribers disconnected", st.Unexpected, st.Disconnects)
	}
	s += fmt.Sprintf("; write → receipt %s; REST %s; publish %s", latLine(st.Latency), latLine(st.REST), latLine(st.Publish))
	if st.ServerCPU != nil {
		s += fmt.Sprintf("; server %.2f cores", st.ServerCPU.Cores)
	}
	if st.BenchCPU != nil {
		s += fmt.Sprintf(", bench %.2f, machine %.2f cores busy", st.BenchCPU.Cores, st.BenchCPU.MachineCores)
	}
	if st.Pass {
		s += " — pass"
	} else {
		s += " — FAIL"
	}
	return s
}

func writesLine(f *WritesFigures) string {
	if f.Best < 0 {
		return fmt.Sprintf("%d writers over %d rooms via %s on %d process(es): no step passed", f.Writers, f.Groups, f.Via, f.Processes)
	}
	st := f.Steps[f.Best]
	return fmt.Sprintf("%d writers over %d rooms via %s on %d process(es): ceiling %.0f writes/s committed and received in order (step %d, %s writes/s asked), write → receipt p50 %s p99 %s",
		f.Writers, f.Groups, f.Via, f.Processes, f.CeilingPerS, f.Best+1, rateText(st.TargetRate), msText(st.Latency.P50Ms), msText(st.Latency.P99Ms))
}

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
// write as fast as they are answered, for --duration, over --groups
// campaign rooms (each writer owns every --publishers-th room and writes to
// its rooms in turn, one write at a time, so each room's writes are
// sequential and commit in the order sent); one protocol v2 subscriber per
// room, the subscribers spread over the processes like the writes, checks
// that it receives every committed write of its room once, in the order
// written, with consecutive offsets.
type WritesFigures struct {
	// Via is what the writes are: "rest" (a comment through POST
	// /api/campaigns/<id>/comments/), "publish" (one event through POST
	// /api/publish/ with an API key) or "both" (each writer alternates).
	Via       string          `json:"via"`
	Groups    int             `json:"groups"`
	Writers   int             `json:"writers"`
	Processes int             `json:"processes"`
	Connect   *ConnectFigures `json:"connect"`
	DurationS float64         `json:"duration_s"`
	// Committed is writes answered with 201 (REST and publish), Failed the
	// others (their fate unknown: their events may or may not come).
	Committed        int64   `json:"committed"`
	CommittedREST    int64   `json:"committed_rest"`
	CommittedPublish int64   `json:"committed_publish"`
	Failed           int64   `json:"failed"`
	CommittedPerS    float64 `json:"committed_per_s"`
	// Received counts first receipts of committed writes by their room's
	// subscriber; Lost the committed writes never received within
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
	// CloseCodes counts the subscribers the server closed, by close code.
	CloseCodes map[string]int `json:"close_codes,omitempty"`
	// ReceivedPerS is Received over the time from the start of the writes
	// to the last receipt; LastReceiptMs is how long after the writes
	// stopped that last receipt came.
	ReceivedPerS  float64 `json:"received_per_s"`
	LastReceiptMs float64 `json:"last_receipt_ms"`
	// CeilingPerS is the rate of writes both committed and received
	// (the lower of CommittedPerS and ReceivedPerS), 0 when any write was
	// lost, duplicated or received out of order.
	CeilingPerS float64 `json:"ceiling_per_s"`
	// Latency is from just before a write's request was sent to its
	// receipt by the room's subscriber (commit, relay and fan-out
	// included); REST and Publish are the requests' own times.
	Latency   Latency         `json:"latency"`
	REST      Latency         `json:"rest"`
	Publish   Latency         `json:"publish"`
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
// "hw <seq> <send unix ns>".
const writeTag = `"content":"hw `

// writeRoom is one room of the writes scenario: its writer's record of
// what it wrote and its subscriber's of what arrived. Its writer and its
// subscriber each run on one goroutine; the counters are read while they
// run.
type writeRoom struct {
	id    int64
	group string
	// The writer's: sent[seq] tells whether seq's write was answered 201.
	mu   sync.Mutex
	sent []bool
	// The subscriber's: got[seq] once seq arrived.
	smu        sync.Mutex
	got        []bool
	maxSeq     int64 // highest seq received, -1 for none
	epoch      string
	offset     uint64
	gone       atomic.Bool
	received   atomic.Int64
	dups       atomic.Int64
	outOfOrder atomic.Int64
	gaps       atomic.Int64
}

// writes is a running writes scenario.
type writes struct {
	e     *env
	rooms []*writeRoom
	hist  Histogram
	last  atomic.Int64 // unix ns of the latest receipt
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
	var seq, sent int64
	var ok bool
	switch {
	case isType(head, writeType):
		var ok1, ok2 bool
		seq, ok1 = intAfter(head, `"q":`)
		sent, ok2 = intAfter(head, `"t":`)
		ok = ok1 && ok2
	case isType(head, "comment"):
		j := bytes.Index(head, []byte(writeTag))
		if j < 0 {
			break
		}
		rest := head[j+len(writeTag):]
		var ok1, ok2 bool
		seq, ok1 = parseUint(rest)
		if k := bytes.IndexByte(rest, ' '); k >= 0 {
			sent, ok2 = parseUint(rest[k+1:])
		}
		ok = ok1 && ok2
	default:
		return // presence, subscribed
	}
	if !ok || seq >= maxWriteSeq {
		w.other.Add(1)
		return
	}
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
			r.gaps.Add(1)
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
		r.dups.Add(1)
		return
	}
	if late {
		r.outOfOrder.Add(1)
	}
	r.received.Add(1)
	w.hist.Record(time.Duration(now - sent))
	w.e.deliveries.Add(1)
	for {
		l := w.last.Load()
		if now <= l || w.last.CompareAndSwap(l, now) {
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
	fig := &WritesFigures{Via: o.Via, Groups: o.Groups, Writers: o.Publishers, Processes: len(e.targets), DurationS: o.Duration.D().Seconds()}
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
	var made atomic.Int64
	e.setPhase("setup", func() string { return fmt.Sprintf("setup: %d/%d campaigns", made.Load(), o.Groups) })
	for i := range o.Groups {
		id, err := e.newCampaign(ctx, owner, fmt.Sprintf("bench writes %s %d", e.runID, i), 0)
		if err != nil {
			return fmt.Errorf("setup: %w", err)
		}
		made.Add(1)
		r := &writeRoom{id: id, group: "campaign_" + strconv.FormatInt(id, 10), maxSeq: -1}
		w.rooms = append(w.rooms, r)
	}
	clients, cf := e.connect(ctx, connectSpec{label: "subscribing", n: o.Groups, rate: o.ConnectRate,
		path: func(i int) string { return campaignPath(w.rooms[i].id, "") + "?v=2" }, snapshot: true, h: w})
	fig.Connect = cf
	e.printf("subscribers, one per room: %s\n", connectLine(cf))
	defer e.closeAll(clients)
	if cf.Connected < o.Groups {
		return fmt.Errorf("subscribers: %d of %d connected: %v", cf.Connected, o.Groups, cf.Errors)
	}
	// The server joins a connection to its room right after its snapshot.
	if err := sleep(ctx, 500*time.Millisecond); err != nil {
		return err
	}

	var (
		committed, viaREST, viaPub, failed atomic.Int64
		restH, pubH                        Histogram
		errMu                              sync.Mutex
		wg                                 sync.WaitGroup
	)
	dur := o.Duration.D()
	srvCPU, benchCPU := e.serverCPU(), startCPU()
	start := time.Now()
	e.setPhase("writes", func() string {
		el := max(time.Since(start).Seconds(), 1e-3)
		return fmt.Sprintf("writes: %3.0fs committed %d (%.0f/s), failed %d, received %d, p99 %s",
			el, committed.Load(), float64(committed.Load())/el, failed.Load(), e.deliveries.Load(), msText(ms(w.hist.Quantile(0.99))))
	})
	e.profile(ctx, "cpu-writes.pprof", dur)
	wctx, cancel := context.WithTimeout(ctx, dur)
	defer cancel()
	for k := range o.Publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []*writeRoom
			for i := k; i < len(w.rooms); i += o.Publishers {
				mine = append(mine, w.rooms[i])
			}
			var body bytes.Buffer
			for n := 0; wctx.Err() == nil; n++ {
				r := mine[n%len(mine)]
				r.mu.Lock()
				seq := int64(len(r.sent))
				r.mu.Unlock()
				if seq >= maxWriteSeq {
					return
				}
				rest := o.Via == ViaREST || (o.Via == ViaBoth && (n/len(mine))%2 == 0)
				now := time.Now()
				ts := strconv.FormatInt(now.UnixNano(), 10)
				body.Reset()
				var err error
				if rest {
					body.WriteString(`{"content":"hw ` + strconv.FormatInt(seq, 10) + ` ` + ts + `"}`)
					_, err = e.rest.call(ctx, "POST", "/api/campaigns/"+strconv.FormatInt(r.id, 10)+"/comments/", owner.Token, body.Bytes(), http.StatusCreated)
					restH.Record(time.Since(now))
				} else {
					body.WriteString(`{"group":"` + r.group + `","type":"` + writeType + `","data":{"q":` + strconv.FormatInt(seq, 10) + `,"t":` + ts + `}}`)
					_, err = e.rest.call(ctx, "POST", "/api/publish/", key, body.Bytes(), http.StatusCreated)
					pubH.Record(time.Since(now))
				}
				r.mu.Lock()
				r.sent = append(r.sent, err == nil)
				r.mu.Unlock()
				if err != nil {
					failed.Add(1)
					errMu.Lock()
					if len(fig.Errors) < 5 {
						fig.Errors = append(fig.Errors, err.Error())
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
	end := time.Now()
	el := end.Sub(start).Seconds()
	fig.Committed, fig.CommittedREST, fig.CommittedPublish, fig.Failed = committed.Load(), viaREST.Load(), viaPub.Load(), failed.Load()
	fig.CommittedPerS = round3(float64(fig.Committed) / el)
	fig.REST, fig.Publish = restH.Summary(false), pubH.Summary(false)

	// Wait while events keep arriving, until every committed one did or
	// none came for --drain.
	_ = e.waitFor(ctx, "draining", MaxDuration, func() (bool, string) {
		var got int64
		for _, r := range w.rooms {
			got += r.received.Load()
		}
		if got >= fig.Committed {
			return true, ""
		}
		if time.Since(time.Unix(0, max(w.last.Load(), end.UnixNano()))) > o.Drain.D() {
			return true, ""
		}
		return false, fmt.Sprintf("%d/%d received", got, fig.Committed)
	})
	fig.BenchCPU, fig.ServerCPU = benchCPU.stop(), srvCPU.stop()
	for _, r := range w.rooms {
		r.mu.Lock()
		r.smu.Lock()
		for seq, ok := range r.sent {
			switch got := seq < len(r.got) && r.got[seq]; {
			case ok && got:
				fig.Received++
			case ok:
				fig.Lost++
			case got:
				fig.Unexpected++
			}
		}
		r.smu.Unlock()
		r.mu.Unlock()
		fig.Duplicates += r.dups.Load()
		fig.OutOfOrder += r.outOfOrder.Load()
		fig.OffsetGaps += r.gaps.Load()
	}
	w.mu.Lock()
	if len(w.closes) > 0 {
		fig.CloseCodes = maps.Clone(w.closes)
	}
	w.mu.Unlock()
	for _, n := range fig.CloseCodes {
		fig.Disconnects += n
	}
	if last := w.last.Load(); last > start.UnixNano() {
		fig.ReceivedPerS = round3(float64(fig.Received) / time.Duration(last-start.UnixNano()).Seconds())
		fig.LastReceiptMs = ms(max(0, time.Duration(last-end.UnixNano())))
	}
	if fig.Lost == 0 && fig.Duplicates == 0 && fig.OutOfOrder == 0 && fig.OffsetGaps == 0 && fig.Disconnects == 0 {
		fig.CeilingPerS = min(fig.CommittedPerS, fig.ReceivedPerS)
	}
	fig.Latency = w.hist.Summary(true)
	if n := w.other.Load(); n > 0 {
		e.note("%d messages that were not this run's writes", n)
	}
	e.printf("%s\n", writesLine(fig))
	e.latencyChart("latency.svg", fmt.Sprintf("Write → receipt, %d rooms, %d writers, via %s", fig.Groups, fig.Writers, fig.Via), fig.Latency)
	e.timelineChart("throughput.svg", "Writes committed and received per second", "writes/s",
		func(p TimelinePoint) float64 { return float64(p.Deliveries) })
	return ctx.Err()
}

func writesLine(f *WritesFigures) string {
	s := fmt.Sprintf("%d writers over %d rooms via %s on %d process(es), %.0fs: committed %d (%.0f/s; REST %d, publish %d), failed %d; received %d (%.0f/s, the last %s after the writes stopped), lost %d, duplicates %d, out of order %d, offset gaps %d",
		f.Writers, f.Groups, f.Via, f.Processes, f.DurationS, f.Committed, f.CommittedPerS, f.CommittedREST, f.CommittedPublish, f.Failed,
		f.Received, f.ReceivedPerS, msText(f.LastReceiptMs), f.Lost, f.Duplicates, f.OutOfOrder, f.OffsetGaps)
	if f.Unexpected > 0 || f.Disconnects > 0 {
		s += fmt.Sprintf(", %d failed writes received anyway, %d subscribers disconnected", f.Unexpected, f.Disconnects)
	}
	s += fmt.Sprintf("; ceiling %.0f writes/s; write → receipt %s; REST %s; publish %s", f.CeilingPerS, latLine(f.Latency), latLine(f.REST), latLine(f.Publish))
	if f.ServerCPU != nil {
		s += fmt.Sprintf("; server %.2f cores", f.ServerCPU.Cores)
	}
	if f.BenchCPU != nil {
		s += fmt.Sprintf(", bench %.2f, machine %.2f cores busy", f.BenchCPU.Cores, f.BenchCPU.MachineCores)
	}
	return s
}

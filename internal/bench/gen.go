package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// One process may hold about 20,000 descriptors here, so with Generators
// above one the scenario's clients live in that many child processes
// (`herald bench generator`, this executable again), each on its own range
// of source addresses. The parent sets up the run and makes the REST
// writes; it tells the children what to connect and asks them what they
// received, one JSON request and one JSON reply at a time over their
// standard input and output. Latencies travel as histograms and losses as
// counts against the exact ids the parent wrote, so the merged figures are
// the same as one process's would be.

// GeneratorCommand is the hidden `herald bench` subcommand of a generator
// child.
const GeneratorCommand = "generator"

// MaxGenerators bounds the child processes of one run.
const MaxGenerators = 16

// Handlers a generator child's clients use.
const (
	genNop    = "nop"    // idle: ignore what comes
	genFanout = "fanout" // the fanout's per-subscriber bitsets and latencies
	genQuest  = "quest"  // forward each message to the parent (personal)
	genRoll   = "roll"   // v2 positions, events by sequence, reconnect on a drop
)

// genSpec is a generator child's share of the clients: its first input.
type genSpec struct {
	Index int     `json:"index"`
	Opts  Options `json:"opts"`
	// Client i of the child is client Offset+i of the run: it connects to
	// target (Offset+i) mod the targets, as one process's would.
	Offset int `json:"offset"`
	N      int `json:"n"`
	// Source addresses 127.0.0.SrcLo to 127.0.0.SrcHi-1, no other child's.
	SrcLo int `json:"src_lo"`
	SrcHi int `json:"src_hi"`
	// Path is every client's path (campaign rooms; the roll handler adds
	// v=2 and its resume position), or Paths one per client.
	Path     string   `json:"path,omitempty"`
	Paths    []string `json:"paths,omitempty"`
	Snapshot bool     `json:"snapshot"`
	Handler  string   `json:"handler"`
	// The fanout's comment ids above Base, bits per subscriber, steps.
	Base  int64 `json:"base,omitempty"`
	NBits int64 `json:"nbits,omitempty"`
	Steps int   `json:"steps,omitempty"`
	// The roll handler's group (campaign_<id>) and highest sequence.
	Group  string `json:"group,omitempty"`
	MaxSeq int    `json:"max_seq,omitempty"`
}

// Bounds on a spec and the requests after it, checked by the child before
// it allocates anything and by the parent before it sends: what real runs
// stay within, with margin.
const (
	// A child holds a descriptor per client, and Linux's default ceiling
	// on one process's descriptors (fs.nr_open) is 1<<20.
	maxGenClients = 1 << 20
	// Client numbers (Offset+i) of a run; receipts carry them as int32.
	maxRunClients = MaxGenerators * maxGenClients
	// A fanout's ids: every event of an hour (MaxTotal) at MaxEventRate,
	// plus a quarter and 1024 (runFanout), is under 4.6e8.
	maxGenNBits = 1 << 31
	// A ramp is a few to tens of rates; a step costs a child two
	// histograms (60 KB).
	maxGenSteps = 1000
	// A rolling restart posts 2 + processes×missed comments: at most
	// 2 + MaxTargets×500 = 8002.
	maxGenSeq = 1 << 16
	// All of a child's clients' bitsets together, in 64-bit words (4 GiB),
	// allocated before any client connects. The runs in
	// docs/performance.md use under 50 MB.
	maxGenWords = 1 << 29
	// A campaign_data message's size; bounded so that sizes times clients
	// add up without overflow.
	maxSnapshotBytes = 1 << 32
	// Samples in a histogram a child sends: far above its receipts (at
	// most its bitsets' bits, 2^35), and low enough that many histograms
	// add up without overflow.
	maxHistSamples = 1 << 48
)

// check reports whether s is a spec the parent could have sent, before the
// child allocates from it: every count and size within its bound. The
// targets are checked by ParseTargets.
func (s genSpec) check() error {
	switch {
	case s.Index < 0 || s.Index >= MaxGenerators:
		return fmt.Errorf("index %d: want 0 to %d", s.Index, MaxGenerators-1)
	case s.N < 0 || s.N > maxGenClients:
		return fmt.Errorf("n %d: want 0 to %d clients", s.N, maxGenClients)
	case s.Offset < 0 || s.Offset > maxRunClients-s.N:
		return fmt.Errorf("offset %d: want 0 to %d for %d clients", s.Offset, maxRunClients-s.N, s.N)
	case s.SrcLo < 1 || s.SrcLo >= s.SrcHi || s.SrcHi > 256:
		// Addresses 127.0.0.SrcLo to 127.0.0.(SrcHi-1), a byte each.
		return fmt.Errorf("source addresses %d to %d: want 1 <= src_lo < src_hi <= 256", s.SrcLo, s.SrcHi)
	case s.Paths != nil && len(s.Paths) != s.N:
		return fmt.Errorf("%d paths for %d clients", len(s.Paths), s.N)
	case s.Handler != genNop && s.Handler != genFanout && s.Handler != genQuest && s.Handler != genRoll:
		return fmt.Errorf("handler %q: want %s, %s, %s or %s", s.Handler, genNop, genFanout, genQuest, genRoll)
	case s.NBits < 0 || s.NBits > maxGenNBits:
		return fmt.Errorf("nbits %d: want 0 to %d", s.NBits, maxGenNBits)
	case s.Base < 0 || s.Base > math.MaxInt64-s.NBits:
		return fmt.Errorf("base %d: want 0 to %d, the ids above it an int64", s.Base, math.MaxInt64-s.NBits)
	case s.Steps < 0 || s.Steps > maxGenSteps:
		return fmt.Errorf("steps %d: want 0 to %d", s.Steps, maxGenSteps)
	case s.MaxSeq < 0 || s.MaxSeq > maxGenSeq:
		return fmt.Errorf("max_seq %d: want 0 to %d", s.MaxSeq, maxGenSeq)
	case int64(s.N)*int64(s.bitWords()) > maxGenWords:
		return fmt.Errorf("%d clients of %d bitset words each: more than %d words in all", s.N, s.bitWords(), maxGenWords)
	}
	// What the child's dialing uses of the run's options; the parent's
	// Options.check holds them to the same.
	switch o := s.Opts; {
	case o.DialConcurrency < 1:
		return fmt.Errorf("dial_concurrency %d: want at least 1", o.DialConcurrency)
	case o.ReadBuffer < 512 || o.ReadBuffer > 1<<20:
		return fmt.Errorf("read_buffer %d: want 512 to 1048576 bytes", o.ReadBuffer)
	case o.Timeout.D() <= 0:
		return fmt.Errorf("timeout %v: want more than 0", o.Timeout)
	}
	return nil
}

// bitWords is the 64-bit words of each client's bitset, as the child
// allocates it: the fanout's ids, or the roll handler's sequences
// (newRollClients).
func (s genSpec) bitWords() int {
	switch s.Handler {
	case genFanout:
		return int((s.NBits + 63) / 64)
	case genRoll:
		return (max(s.MaxSeq, 1) + 63) / 64
	}
	return 0
}

// checkReq reports whether r is a request the parent could have sent for
// spec s. The op and the fanout step are checked where they are used.
func (s genSpec) checkReq(r genReq) error {
	switch {
	case int64(len(r.IDs)) > s.NBits:
		// A step's ids fit the bitsets, which have room beyond them.
		return fmt.Errorf("%d ids: more than the %d the bitsets hold", len(r.IDs), s.NBits)
	case r.Posted < 0 || r.Posted > s.MaxSeq:
		return fmt.Errorf("posted %d: want 0 to %d (max_seq)", r.Posted, s.MaxSeq)
	case r.Drain < 0 || r.Drain.D() > MaxTotal:
		return fmt.Errorf("drain %v: want 0 to %v", r.Drain, MaxTotal)
	}
	return nil
}

// genReq is one request to a child.
type genReq struct {
	Op string `json:"op"` // connect, begin, check, status, close
	// Req numbers the request; its reply carries the number back, so an
	// answer that came too late for its own request is not taken for the
	// next one's.
	Req    uint64   `json:"req"`
	Step   int      `json:"step,omitempty"`
	IDs    []int64  `json:"ids,omitempty"`
	Drain  Duration `json:"drain,omitempty"`
	Posted int      `json:"posted,omitempty"`
}

// genReply is a child's answer to a request, or (Op "receipt") a message
// forwarded by the quest handler.
type genReply struct {
	Op  string `json:"op"`
	Req uint64 `json:"req,omitempty"` // the request's number (genReq.Req)
	Err string `json:"err,omitempty"`
	// connect
	Connect *ConnectFigures `json:"connect,omitempty"`
	Hist    *histWire       `json:"hist,omitempty"`
	Failed  []int           `json:"failed,omitempty"` // clients (run numbers) that did not connect
	// PerTarget counts the connections made to each target.
	PerTarget []int64 `json:"per_target,omitempty"`
	// begin, check (fanout)
	Subscribers int            `json:"subscribers,omitempty"`
	Lost        int64          `json:"lost,omitempty"`
	Received    int64          `json:"received,omitempty"`
	Dups        int64          `json:"dups,omitempty"`
	Codes       map[string]int `json:"codes,omitempty"`
	Other       int64          `json:"other,omitempty"`
	EvN         int64          `json:"ev_n,omitempty"`
	EvSize      int64          `json:"ev_size,omitempty"`
	// status (roll): clients connected, connected and holding every event
	// posted so far, events missing over all clients, reconnections
	Up         int64 `json:"up,omitempty"`
	Current    int64 `json:"current,omitempty"`
	Missing    int64 `json:"missing,omitempty"`
	Reconnects int64 `json:"reconnects,omitempty"`
	// of those up and missing comments: no subscribed message since they
	// connected, told recovered:false, sent a snapshot
	Unsubscribed int64 `json:"unsubscribed,omitempty"`
	NotRecovered int64 `json:"not_recovered,omitempty"`
	Snapshots    int64 `json:"snapshots,omitempty"`
	// receipt
	Conn int32  `json:"conn,omitempty"`
	At   int64  `json:"at,omitempty"`
	Head string `json:"head,omitempty"`
}

// histWire is a Histogram as JSON: its non-empty buckets.
type histWire struct {
	Buckets [][2]uint64 `json:"b"`
	N       uint64      `json:"n"`
	Sum     uint64      `json:"sum"`
	Max     int64       `json:"max"`
	Min     int64       `json:"min"`
}

// wire is h as JSON. N is the sum of the counts read, which a record
// under way may have made differ from h.n.
func (h *Histogram) wire() *histWire {
	w := &histWire{Sum: h.sum.Load(), Max: h.max.Load(), Min: h.min.Load()}
	for i := range h.counts {
		if c := h.counts[i].Load(); c > 0 {
			w.Buckets = append(w.Buckets, [2]uint64{uint64(i), c})
			w.N += c
		}
	}
	return w
}

// check reports whether w is a histogram wire could have made: buckets in
// ascending order and range, their counts adding up to N, N within
// maxHistSamples. A nil w is an empty histogram.
func (w *histWire) check() error {
	if w == nil {
		return nil
	}
	var n uint64
	for k, b := range w.Buckets {
		if b[0] >= histBuckets || (k > 0 && b[0] <= w.Buckets[k-1][0]) {
			return fmt.Errorf("histogram bucket %d: out of range or order", b[0])
		}
		if b[1] > maxHistSamples-n {
			return fmt.Errorf("histogram counts: more than %d samples", uint64(maxHistSamples))
		}
		n += b[1]
	}
	if n != w.N {
		return fmt.Errorf("histogram of %d samples whose buckets hold %d", w.N, n)
	}
	return nil
}

// add merges w's samples into h; a w that check refuses adds nothing.
func (h *Histogram) add(w *histWire) error {
	if err := w.check(); err != nil {
		return err
	}
	if w == nil || w.N == 0 {
		return nil
	}
	var o Histogram
	for _, b := range w.Buckets {
		o.counts[b[0]].Store(b[1])
	}
	o.n.Store(w.N)
	o.sum.Store(w.Sum)
	o.max.Store(w.Max)
	o.min.Store(w.Min)
	h.Merge(&o)
	return nil
}

// addCount adds v, a count a child sent, to *sum, which is at most limit:
// a negative count or a total beyond limit is an error.
func addCount(sum *int64, v, limit int64, what string) error {
	if v < 0 || v > limit-*sum {
		return fmt.Errorf("%s %d: want 0 to %d", what, v, limit-*sum)
	}
	*sum += v
	return nil
}

// mergeConnects adds up the children's replies to connect for a run of n
// clients: the figures (but Requested and TargetRate), which clients
// connected (ok[i]), and the connections to each target, added to
// perTarget. A reply no child could have sent is an error, and then
// nothing is added.
func mergeConnects(n int, reps []genReply, perTarget []atomic.Int64) (*ConnectFigures, []bool, error) {
	if n < 0 || n > maxRunClients {
		return nil, nil, fmt.Errorf("connect: %d clients: want 0 to %d", n, maxRunClients)
	}
	var clients, samples int64
	for j, r := range reps {
		if err := checkConnectReply(r, n, len(perTarget), &clients, &samples); err != nil {
			return nil, nil, fmt.Errorf("generator %d: connect: %w", j+1, err)
		}
	}
	f := &ConnectFigures{}
	var hist Histogram
	var snapBytes int64
	ok := make([]bool, n)
	for i := range ok {
		ok[i] = true
	}
	for _, r := range reps {
		c := r.Connect
		f.Connected += c.Connected
		f.Failed += c.Failed
		for k, v := range c.Failures {
			if f.Failures == nil {
				f.Failures = map[string]int{}
			}
			f.Failures[k] += v
		}
		for _, s := range c.Errors {
			if len(f.Errors) < 5 {
				f.Errors = append(f.Errors, s)
			}
		}
		// The children start together: the batch took as long as the
		// slowest.
		f.ElapsedS = max(f.ElapsedS, c.ElapsedS)
		snapBytes += int64(c.SnapshotBytes) * int64(c.Connected)
		_ = hist.add(r.Hist) // checked above
		for _, i := range r.Failed {
			ok[i] = false
		}
		for k, v := range r.PerTarget {
			perTarget[k].Add(v)
		}
	}
	if f.ElapsedS > 0 {
		f.RatePerS = round3(float64(f.Connected) / f.ElapsedS)
	}
	if f.Connected > 0 {
		f.SnapshotBytes = int(snapBytes / int64(f.Connected))
	}
	f.Latency = hist.Summary(true)
	return f, ok, nil
}

// checkConnectReply checks one child's reply to connect in a run of n
// clients and targets targets; clients and samples are the connections
// and latencies of the replies before it.
func checkConnectReply(r genReply, n, targets int, clients, samples *int64) error {
	c := r.Connect
	if c == nil {
		return errors.New("no connect figures in the reply")
	}
	// Together, the children connected or failed at most n clients.
	if err := addCount(clients, int64(c.Connected), int64(n), "connected"); err != nil {
		return err
	}
	if err := addCount(clients, int64(c.Failed), int64(n), "failed"); err != nil {
		return err
	}
	for k, v := range c.Failures {
		if v < 0 || v > c.Failed {
			return fmt.Errorf("failures %q %d: want 0 to %d (failed)", k, v, c.Failed)
		}
	}
	if !(c.ElapsedS >= 0) {
		return fmt.Errorf("elapsed_s %v: want at least 0", c.ElapsedS)
	}
	if c.SnapshotBytes < 0 || int64(c.SnapshotBytes) > maxSnapshotBytes {
		return fmt.Errorf("snapshot_bytes %d: want 0 to %d", c.SnapshotBytes, int64(maxSnapshotBytes))
	}
	if err := r.Hist.check(); err != nil {
		return err
	}
	if r.Hist != nil {
		// A latency per connection; check bounded N below 2^48.
		if err := addCount(samples, int64(r.Hist.N), int64(n), "latencies"); err != nil {
			return err
		}
	}
	for _, i := range r.Failed {
		if i < 0 || i >= n {
			return fmt.Errorf("failed client %d: want 0 to %d", i, n-1)
		}
	}
	if len(r.PerTarget) > targets {
		return fmt.Errorf("connections to %d targets: there are %d", len(r.PerTarget), targets)
	}
	// A client is dialed once: the connections it made to its targets are
	// at most its clients that connected or failed after the dial.
	var dialed int64
	for k, v := range r.PerTarget {
		if err := addCount(&dialed, v, int64(c.Connected)+int64(c.Failed), fmt.Sprintf("connections to target %d:", k)); err != nil {
			return err
		}
	}
	return nil
}

// sumSubscribers adds up the children's replies to begin: each the
// subscribers alive in it, at most n in all.
func sumSubscribers(n int, reps []genReply) (int, error) {
	var sum int64
	for j, r := range reps {
		if err := addCount(&sum, int64(r.Subscribers), int64(max(n, 0)), "subscribers"); err != nil {
			return 0, fmt.Errorf("generator %d: begin: %w", j+1, err)
		}
	}
	return int(sum), nil
}

// checkTally is the children's replies to a fanout step's check, added up.
type checkTally struct {
	lost, received, dups, other, evN, evSize int64
	codes                                    map[string]int
}

// mergeChecks adds up the children's replies to check, of which want
// (subscriber, id) receipts were expected, and merges their latencies into
// hist. A reply no child could have sent is an error, and then nothing is
// merged.
func mergeChecks(want int64, reps []genReply, hist *Histogram) (checkTally, error) {
	var t checkTally
	var samples int64
	for j, r := range reps {
		err := errors.Join(
			addCount(&t.lost, r.Lost, max(want, 0), "lost"),
			addCount(&t.received, r.Received, math.MaxInt64, "received"),
			addCount(&t.dups, r.Dups, math.MaxInt64, "duplicates"),
			addCount(&t.other, r.Other, math.MaxInt64, "other messages"),
			addCount(&t.evN, r.EvN, math.MaxInt64, "events"),
			addCount(&t.evSize, r.EvSize, math.MaxInt64, "event bytes"),
			r.Hist.check(),
		)
		if err == nil && r.Hist != nil {
			err = addCount(&samples, int64(r.Hist.N), maxHistSamples, "latencies")
		}
		if err != nil {
			return checkTally{}, fmt.Errorf("generator %d: check: %w", j+1, err)
		}
	}
	codes, err := mergeCodes(reps)
	if err != nil {
		return checkTally{}, fmt.Errorf("check: %w", err)
	}
	t.codes = codes
	for _, r := range reps {
		_ = hist.add(r.Hist) // checked above
	}
	return t, nil
}

// mergeCodes adds up the children's disconnects by close code; never nil.
func mergeCodes(reps []genReply) (map[string]int, error) {
	sums := map[string]int64{}
	for j, r := range reps {
		for k, v := range r.Codes {
			s := sums[k]
			if err := addCount(&s, int64(v), math.MaxInt, "disconnects with close code "+strconv.Quote(k)); err != nil {
				return nil, fmt.Errorf("generator %d: %w", j+1, err)
			}
			sums[k] = s
		}
	}
	codes := make(map[string]int, len(sums))
	for k, v := range sums {
		codes[k] = int(v)
	}
	return codes, nil
}

// mergeStatus adds up the children's replies to status (roll).
func mergeStatus(reps []genReply) (RestartTally, error) {
	var t RestartTally
	for j, r := range reps {
		err := errors.Join(
			addCount(&t.Up, r.Up, math.MaxInt64, "up"),
			addCount(&t.Current, r.Current, math.MaxInt64, "current"),
			addCount(&t.Missing, r.Missing, math.MaxInt64, "missing"),
			addCount(&t.Duplicates, r.Dups, math.MaxInt64, "duplicates"),
			addCount(&t.Reconnects, r.Reconnects, math.MaxInt64, "reconnects"),
			addCount(&t.Unsubscribed, r.Unsubscribed, math.MaxInt64, "unsubscribed"),
			addCount(&t.NotRecovered, r.NotRecovered, math.MaxInt64, "not recovered"),
			addCount(&t.Snapshots, r.Snapshots, math.MaxInt64, "snapshots"),
		)
		if err != nil {
			return RestartTally{}, fmt.Errorf("generator %d: status: %w", j+1, err)
		}
	}
	return t, nil
}

// genProc is one running generator child.
type genProc struct {
	cmd     *exec.Cmd
	in      io.WriteCloser
	enc     *json.Encoder
	replies chan genReply
	done    chan error
	spec    genSpec
}

// generators are a run's generator children.
type generators struct {
	procs []*genProc
	req   atomic.Uint64 // the last request's number
	// receipt gets the quest handler's forwarded messages.
	receipt func(genReply)
}

// genShares splits n clients over k children: child j gets clients
// [off[j], off[j+1]) and source addresses [src[j], src[j+1]).
func genShares(n, k int) (off, src []int) {
	for j := 0; j <= k; j++ {
		off = append(off, j*n/k)
		src = append(src, firstSource+j*(lastSource+1-firstSource)/k)
	}
	return off, src
}

// shares is spec split over o.Generators children: each child's spec.
func (spec genSpec) shares(o Options) []genSpec {
	off, src := genShares(spec.N, o.Generators)
	out := make([]genSpec, o.Generators)
	for j := range out {
		s := spec
		s.Index, s.Offset, s.N, s.SrcLo, s.SrcHi = j, off[j], off[j+1]-off[j], src[j], src[j+1]
		if spec.Paths != nil {
			s.Paths = spec.Paths[off[j]:off[j+1]]
		}
		s.Opts.ConnectRate = o.ConnectRate / float64(o.Generators)
		s.Opts.Rate = o.Rate / float64(o.Generators)
		s.Opts.Stdout, s.Opts.Command = nil, nil
		out[j] = s
	}
	return out
}

// startGenerators starts o.Generators children sharing the work of spec
// (the clients' paths and handler) and waits for their first reply, to a
// connect request: every child's clients are connected then.
func (e *env) startGenerators(ctx context.Context, spec genSpec) error {
	o := e.o
	bin := o.HeraldBin
	if bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("--generators: find the herald executable: %w", err)
		}
		bin = exe
	}
	g := e.gen // a scenario may have set its receipt handler
	if g == nil {
		g = &generators{}
		e.gen = g
	}
	specs := spec.shares(o)
	// A run past a child's bounds fails here, not in the child.
	for j, s := range specs {
		if err := s.check(); err != nil {
			return fmt.Errorf("--generators: generator %d: %w", j+1, err)
		}
	}
	for j, s := range specs {
		cmd := exec.Command(bin, "bench", GeneratorCommand)
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			return err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		dieWithParent(cmd)
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("--generators: start %s: %w", bin, err)
		}
		p := &genProc{cmd: cmd, in: in, enc: json.NewEncoder(in), replies: make(chan genReply, 1), done: make(chan error, 1), spec: s}
		g.procs = append(g.procs, p)
		go p.read(out, g)
		if err := p.enc.Encode(s); err != nil {
			return fmt.Errorf("generator %d: %w", j+1, err)
		}
	}
	return nil
}

// read routes the child's output: receipts to g.receipt, replies to the
// request waiting for them. It ends with the child's output.
func (p *genProc) read(r io.Reader, g *generators) {
	lr := newLineReader(r)
	for {
		var rep genReply
		if err := lr.next(&rep); err != nil {
			p.done <- err
			close(p.replies)
			return
		}
		if rep.Op == "receipt" {
			if g.receipt != nil {
				g.receipt(rep)
			}
			continue
		}
		p.replies <- rep
	}
}

// pids are the children's process ids.
func (g *generators) pids() []int {
	if g == nil {
		return nil
	}
	var out []int
	for _, p := range g.procs {
		out = append(out, p.cmd.Process.Pid)
	}
	return out
}

// call sends req to every child and returns their replies, in child
// order; within bounds the request's own (a connect's timeouts, a check's
// drain) plus a minute.
func (g *generators) call(ctx context.Context, req genReq, within time.Duration) ([]genReply, error) {
	out := make([]genReply, len(g.procs))
	errs := make([]error, len(g.procs))
	req.Req = g.req.Add(1)
	var wg sync.WaitGroup
	for j, p := range g.procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.enc.Encode(req); err != nil {
				errs[j] = fmt.Errorf("generator %d: %s: %w", j+1, req.Op, err)
				return
			}
			t := time.NewTimer(within + time.Minute)
			defer t.Stop()
			for {
				select {
				case rep, ok := <-p.replies:
					switch {
					case !ok:
						errs[j] = fmt.Errorf("generator %d exited during %s", j+1, req.Op)
					case rep.Req < req.Req:
						continue // a request's that gave up waiting for it
					case rep.Req > req.Req || rep.Op != req.Op:
						errs[j] = fmt.Errorf("generator %d: answered %s request %d to %s request %d", j+1, rep.Op, rep.Req, req.Op, req.Req)
					case rep.Err != "":
						errs[j] = fmt.Errorf("generator %d: %s: %s", j+1, req.Op, rep.Err)
					}
					out[j] = rep
				case <-t.C:
					errs[j] = fmt.Errorf("generator %d: no answer to %s", j+1, req.Op)
				case <-ctx.Done():
					errs[j] = ctx.Err()
				}
				return
			}
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// stop closes the children's input, which closes their clients and ends
// them, and kills any still running after 30 s.
func (g *generators) stop() {
	if g == nil {
		return
	}
	var wg sync.WaitGroup
	for _, p := range g.procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.in.Close()
			exited := make(chan struct{})
			go func() {
				_ = p.cmd.Wait()
				close(exited)
			}()
			select {
			case <-exited:
			case <-time.After(30 * time.Second):
				_ = p.cmd.Process.Kill()
				<-exited
			}
		}()
	}
	wg.Wait()
	g.procs = nil
}

// connectRemote has the generator children connect spec's clients and
// merges what they report; ok[i] tells whether client i connected.
func (e *env) connectRemote(ctx context.Context, label string, spec genSpec) (*ConnectFigures, []bool, error) {
	e.setPhase(label, func() string {
		return fmt.Sprintf("%s: %d generator processes connecting %d clients", label, e.o.Generators, spec.N)
	})
	spec.Opts = e.o
	var bases []string
	for _, t := range e.targets {
		bases = append(bases, t.HTTP)
	}
	spec.Opts.Target = strings.Join(bases, ",")
	if err := e.startGenerators(ctx, spec); err != nil {
		return nil, nil, err
	}
	// A paced connect takes n/rate; an unpaced one is bounded by the
	// timeouts of DialConcurrency attempts at a time.
	within := time.Duration(float64(spec.N)/max(e.o.ConnectRate, 1)*float64(time.Second)) + 10*e.o.Timeout.D()
	reps, err := e.gen.call(ctx, genReq{Op: "connect"}, within)
	if err != nil {
		return nil, nil, err
	}
	for k := range e.dial.perTarget { // the scenario's clients, not a warm-up's
		e.dial.perTarget[k].Store(0)
	}
	f, ok, err := mergeConnects(spec.N, reps, e.dial.perTarget)
	if err != nil {
		return nil, nil, err
	}
	f.Requested, f.TargetRate = spec.N, e.o.ConnectRate
	e.connects.Add(uint64(f.Connected))
	return f, ok, nil
}

// benchCPU starts measuring the load generator's CPU: this process and its
// generator children.
func (e *env) benchCPU() cpuMeter {
	if e.gen == nil {
		return startCPU()
	}
	return startCPU(append([]int{os.Getpid()}, e.gen.pids()...)...)
}

// RunGenerator is `herald bench generator`: a generator child. It reads
// its spec and then requests from in and answers on out until in ends,
// then closes its clients.
func RunGenerator(ctx context.Context, in io.Reader, out io.Writer) error {
	if _, err := RaiseFileLimit(); err != nil {
		return fmt.Errorf("raise the open-file limit: %w", err)
	}
	lr := newLineReader(in)
	var spec genSpec
	if err := lr.next(&spec); err != nil {
		return fmt.Errorf("generator: read the spec: %w", err)
	}
	var wmu sync.Mutex
	w := json.NewEncoder(out)
	send := func(r genReply) {
		wmu.Lock()
		defer wmu.Unlock()
		_ = w.Encode(r)
	}
	g, err := newGenChild(spec, send)
	if err != nil {
		return fmt.Errorf("generator: the spec: %w", err)
	}
	defer g.closeAll()
	for {
		var req genReq
		if err := lr.next(&req); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("generator: read a request: %w", err)
		}
		rep := g.do(ctx, req)
		rep.Op, rep.Req = req.Op, req.Req
		send(rep)
	}
}

// newGenChild checks the spec s and makes the child's state; it dials
// nothing before a connect request.
func newGenChild(s genSpec, send func(genReply)) (*genChild, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	targets, err := ParseTargets(s.Opts.Target)
	if err != nil {
		return nil, err
	}
	o := s.Opts
	e := &env{o: o, out: io.Discard, targets: targets, start: time.Now(), res: &Results{}}
	e.src = &Sources{}
	for i := s.SrcLo; i < s.SrcHi && targets[0].Addr.Addr().Is4(); i++ {
		e.src.addrs = append(e.src.addrs, &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(i))})
	}
	e.dial = &dialer{targets: targets, perTarget: make([]atomic.Int64, len(targets)), src: e.src, timeout: o.Timeout.D(),
		bufSize: o.ReadBuffer, open: &e.open, offset: s.Offset}
	return &genChild{e: e, spec: s, send: send}, nil
}

// genChild is a generator child's state.
type genChild struct {
	e       *env
	spec    genSpec
	send    func(genReply)
	clients []*client
	fo      *fanout
	alive   [][]bool // fanout: subscribers alive at each step's start
	roll    *rollClients
	codes   map[string]int
	// connected: the one connect request came; another would leak the
	// clients of the first.
	connected bool
	mu        sync.Mutex
}

func (g *genChild) do(ctx context.Context, req genReq) genReply {
	if err := g.spec.checkReq(req); err != nil {
		return genReply{Err: fmt.Sprintf("%s: %v", req.Op, err)}
	}
	switch req.Op {
	case "connect":
		if g.connected {
			return genReply{Err: "connect: the clients are connected already"}
		}
		g.connected = true
		return g.connect(ctx)
	case "begin":
		if g.fo == nil || req.Step < 0 || req.Step >= len(g.fo.steps) {
			return genReply{Err: "begin: no such fanout step"}
		}
		alive, n := g.fo.aliveNow()
		g.alive[req.Step] = alive
		return genReply{Subscribers: n}
	case "check":
		if g.fo == nil || req.Step < 0 || req.Step >= len(g.fo.steps) || g.alive[req.Step] == nil {
			return genReply{Err: "check: no such fanout step begun"}
		}
		fo := g.fo
		st := fo.steps[req.Step]
		lost := fo.tally(ctx, st, req.IDs, g.alive[req.Step], req.Drain.D())
		return genReply{Lost: lost, Received: st.received.Load(), Dups: st.dups.Load(), Hist: st.hist.wire(),
			Codes: fo.closeCodes(), Other: fo.other.Load() + fo.outOf.Load(), EvN: fo.evN.Load(), EvSize: fo.evSize.Load()}
	case "status":
		if g.roll == nil {
			return genReply{Err: "status: not a roll generator"}
		}
		return g.roll.status(req.Posted)
	case "codes":
		g.mu.Lock()
		defer g.mu.Unlock()
		return genReply{Codes: g.codes}
	}
	return genReply{Err: fmt.Sprintf("unknown request %q", req.Op)}
}

func (g *genChild) connect(ctx context.Context) genReply {
	s, e := g.spec, g.e
	h := g.handler(ctx)
	path := func(i int) string {
		if s.Paths != nil {
			return s.Paths[i]
		}
		if g.roll != nil {
			return g.roll.path(i)
		}
		return s.Path
	}
	clients, f := e.connect(ctx, connectSpec{label: "connecting", n: s.N, rate: e.o.ConnectRate, path: path, snapshot: s.Snapshot, h: h})
	g.clients = clients
	rep := genReply{Connect: f, Hist: nil}
	// The latencies travel as a histogram; the summary's chart data is
	// rebuilt from the merged one.
	rep.Hist = f.hist
	f.Latency.Bins = nil
	for i, c := range clients {
		if c == nil {
			rep.Failed = append(rep.Failed, s.Offset+i)
		}
	}
	for k := range e.dial.perTarget {
		rep.PerTarget = append(rep.PerTarget, e.dial.perTarget[k].Load())
	}
	if g.fo != nil {
		for i, c := range clients {
			if c == nil {
				g.fo.subs[i].gone.Store(true)
			}
		}
	}
	if g.roll != nil {
		g.roll.connected(clients)
	}
	return rep
}

// handler makes the clients' handler the spec names, and its state: what
// the child allocates from the spec before connecting.
func (g *genChild) handler(ctx context.Context) handler {
	s := g.spec
	switch s.Handler {
	case genFanout:
		fo := &fanout{e: g.e, base: s.Base, nbits: s.NBits, subs: make([]fanSub, s.N), closes: map[string]int{}}
		words := s.bitWords()
		for i := range fo.subs {
			fo.subs[i].bits = make([]atomic.Uint64, words)
		}
		for range s.Steps {
			fo.steps = append(fo.steps, &fanStep{})
		}
		g.fo, g.alive = fo, make([][]bool, s.Steps)
		return fo
	case genQuest:
		return &forwarder{g: g}
	case genRoll:
		g.roll = newRollClients(ctx, g.e, s)
		return g.roll
	}
	return nopHandler{}
}

func (g *genChild) closeAll() {
	if g.roll != nil {
		g.roll.stop()
		g.clients = g.roll.current()
	}
	g.e.closeAll(g.clients)
}

// forwarder sends every message its clients read to the parent, which
// matches it to the write that caused it (the quest flow's pending map).
type forwarder struct{ g *genChild }

func (f *forwarder) message(c *client, head []byte, n int) {
	f.g.send(genReply{Op: "receipt", Conn: c.id + int32(f.g.spec.Offset), At: time.Now().UnixNano(), Head: string(head)})
}

func (f *forwarder) closed(c *client, code int, err error) {
	if c.shut.Load() {
		return
	}
	f.g.mu.Lock()
	defer f.g.mu.Unlock()
	if f.g.codes == nil {
		f.g.codes = map[string]int{}
	}
	f.g.codes[fmt.Sprint(code)]++
}

// maxGenLine bounds one line of the generator protocol, each a JSON value:
// the longest, a spec naming every client's path or a reply naming every
// client that failed, is a few MiB at maxRunClients.
const maxGenLine = 64 << 20

// lineReader reads the generator protocol's lines, refusing one longer
// than max before it holds more of it.
type lineReader struct {
	br  *bufio.Reader
	max int
}

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, 1<<16), max: maxGenLine}
}

// next decodes the next line into v; io.EOF is the end of the input
// between lines.
func (l *lineReader) next(v any) error {
	var line []byte
	for {
		frag, err := l.br.ReadSlice('\n')
		if len(frag) > l.max-len(line) {
			return fmt.Errorf("a line longer than %d bytes", l.max)
		}
		line = append(line, frag...)
		switch {
		case err == nil:
			return json.Unmarshal(line, v)
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) == 0:
			return io.EOF
		case errors.Is(err, io.EOF):
			return io.ErrUnexpectedEOF
		default:
			return err
		}
	}
}

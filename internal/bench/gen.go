package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
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

// genReq is one request to a child.
type genReq struct {
	Op     string   `json:"op"` // connect, begin, check, status, close
	Step   int      `json:"step,omitempty"`
	IDs    []int64  `json:"ids,omitempty"`
	Drain  Duration `json:"drain,omitempty"`
	Posted int      `json:"posted,omitempty"`
}

// genReply is a child's answer to a request, or (Op "receipt") a message
// forwarded by the quest handler.
type genReply struct {
	Op  string `json:"op"`
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

func (h *Histogram) wire() *histWire {
	w := &histWire{N: h.n.Load(), Sum: h.sum.Load(), Max: h.max.Load(), Min: h.min.Load()}
	for i := range h.counts {
		if c := h.counts[i].Load(); c > 0 {
			w.Buckets = append(w.Buckets, [2]uint64{uint64(i), c})
		}
	}
	return w
}

// add merges w's samples into h.
func (h *Histogram) add(w *histWire) {
	if w == nil || w.N == 0 {
		return
	}
	var o Histogram
	for _, b := range w.Buckets {
		if b[0] < histBuckets {
			o.counts[b[0]].Store(b[1])
		}
	}
	o.n.Store(w.N)
	o.sum.Store(w.Sum)
	o.max.Store(w.Max)
	o.min.Store(w.Min)
	h.Merge(&o)
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
	off, src := genShares(spec.N, o.Generators)
	for j := range o.Generators {
		s := spec
		s.Index, s.Offset, s.N, s.SrcLo, s.SrcHi = j, off[j], off[j+1]-off[j], src[j], src[j+1]
		if spec.Paths != nil {
			s.Paths = spec.Paths[off[j]:off[j+1]]
		}
		s.Opts.ConnectRate = o.ConnectRate / float64(o.Generators)
		s.Opts.Rate = o.Rate / float64(o.Generators)
		s.Opts.Stdout, s.Opts.Command = nil, nil
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
		go p.read(bufio.NewReaderSize(out, 1<<16), g)
		if err := p.enc.Encode(s); err != nil {
			return fmt.Errorf("generator %d: %w", j+1, err)
		}
	}
	return nil
}

// read routes the child's output: receipts to g.receipt, replies to the
// request waiting for them. It ends with the child's output.
func (p *genProc) read(r io.Reader, g *generators) {
	dec := json.NewDecoder(r)
	for {
		var rep genReply
		if err := dec.Decode(&rep); err != nil {
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
			select {
			case rep, ok := <-p.replies:
				switch {
				case !ok:
					errs[j] = fmt.Errorf("generator %d exited during %s", j+1, req.Op)
				case rep.Err != "":
					errs[j] = fmt.Errorf("generator %d: %s: %s", j+1, req.Op, rep.Err)
				}
				out[j] = rep
			case <-t.C:
				errs[j] = fmt.Errorf("generator %d: no answer to %s", j+1, req.Op)
			case <-ctx.Done():
				errs[j] = ctx.Err()
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
	f := &ConnectFigures{Requested: spec.N, TargetRate: e.o.ConnectRate}
	var hist Histogram
	var snapBytes int64
	ok := make([]bool, spec.N)
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
		hist.add(r.Hist)
		for _, i := range r.Failed {
			ok[i] = false
		}
		for k, v := range r.PerTarget {
			if k < len(e.dial.perTarget) {
				e.dial.perTarget[k].Add(v)
			}
		}
	}
	if f.ElapsedS > 0 {
		f.RatePerS = round3(float64(f.Connected) / f.ElapsedS)
	}
	if f.Connected > 0 {
		f.SnapshotBytes = int(snapBytes / int64(f.Connected))
	}
	f.Latency = hist.Summary(true)
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
	dec := json.NewDecoder(bufio.NewReaderSize(in, 1<<16))
	var spec genSpec
	if err := dec.Decode(&spec); err != nil {
		return fmt.Errorf("generator: read the spec: %w", err)
	}
	targets, err := ParseTargets(spec.Opts.Target)
	if err != nil {
		return err
	}
	o := spec.Opts
	e := &env{o: o, out: io.Discard, targets: targets, start: time.Now(), res: &Results{}}
	e.src = &Sources{}
	for i := spec.SrcLo; i < spec.SrcHi && targets[0].Addr.Addr().Is4(); i++ {
		e.src.addrs = append(e.src.addrs, &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(i))})
	}
	e.dial = &dialer{targets: targets, perTarget: make([]atomic.Int64, len(targets)), src: e.src, timeout: o.Timeout.D(),
		bufSize: o.ReadBuffer, open: &e.open, offset: spec.Offset}

	var wmu sync.Mutex
	w := json.NewEncoder(out)
	send := func(r genReply) {
		wmu.Lock()
		defer wmu.Unlock()
		_ = w.Encode(r)
	}
	g := &genChild{e: e, spec: spec, send: send}
	defer g.closeAll()
	for {
		var req genReq
		if err := dec.Decode(&req); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("generator: read a request: %w", err)
		}
		rep := g.do(ctx, req)
		rep.Op = req.Op
		send(rep)
	}
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
	mu      sync.Mutex
}

func (g *genChild) do(ctx context.Context, req genReq) genReply {
	switch req.Op {
	case "connect":
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
	var h handler = nopHandler{}
	switch s.Handler {
	case genFanout:
		fo := &fanout{e: e, base: s.Base, nbits: s.NBits, subs: make([]fanSub, s.N), closes: map[string]int{}}
		words := int((s.NBits + 63) / 64)
		for i := range fo.subs {
			fo.subs[i].bits = make([]atomic.Uint64, words)
		}
		for range s.Steps {
			fo.steps = append(fo.steps, &fanStep{})
		}
		g.fo, g.alive, h = fo, make([][]bool, s.Steps), fo
	case genQuest:
		h = &forwarder{g: g}
	case genRoll:
		g.roll = newRollClients(ctx, e, s)
		h = g.roll
	}
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

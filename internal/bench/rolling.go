package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// RestartFigures is the idle scenario's rolling restart (--restart): every
// spawned process is stopped (SIGTERM) and started again in turn while
// the idle v2 clients are connected. A dropped client comes back as
// @herald/client does (full-jitter exponential backoff: the n-th attempt
// after a random 0 to min(30 s, 500 ms·2^n)), to the next process in
// rotation (as a load balancer would send it), resuming its campaign group
// from the last event it read; comments posted while a process is down
// must reach every client once. A client goes to the process it holds the
// fewest connections to among those not refusing lately, as nginx's
// least_conn with passive checks does (deploy/nginx.conf).
type RestartFigures struct {
	Processes int `json:"processes"`
	Clients   int `json:"clients"`
	// Missed comments are posted right after each process stopped; Posted
	// counts every comment of the phase (one first, for the positions).
	Missed int           `json:"missed_per_restart"`
	Posted int           `json:"posted"`
	Steps  []RestartStep `json:"restarts"`
	TotalS float64       `json:"total_s"`
	Final  RestartTally  `json:"final"`
}

// RestartStep is one process's restart, its times from the SIGTERM.
type RestartStep struct {
	Process int `json:"process"`
	// StoppedS: the process exited; BackS: it answered /healthz again;
	// CurrentS: every client was connected and held every comment posted
	// so far (0 when that did not happen within --duration).
	StoppedS float64      `json:"stopped_s"`
	BackS    float64      `json:"back_s"`
	CurrentS float64      `json:"current_s"`
	Tally    RestartTally `json:"tally"`
}

// RestartTally is the clients' state summed over the generators: Up
// connected, Current connected and holding every comment posted, Missing
// comments not received over all clients, Duplicates received twice,
// Reconnects made since the phase began.
type RestartTally struct {
	Up         int64 `json:"up"`
	Current    int64 `json:"current"`
	Missing    int64 `json:"missing"`
	Duplicates int64 `json:"duplicates"`
	Reconnects int64 `json:"reconnects"`
	// Of the clients connected but missing comments: those not told
	// subscribed since they connected, those told recovered:false, and
	// those sent a campaign_data snapshot since the phase began.
	Unsubscribed int64 `json:"unsubscribed,omitempty"`
	NotRecovered int64 `json:"not_recovered,omitempty"`
	Snapshots    int64 `json:"snapshots,omitempty"`
}

// rollTag starts the restart phase's comments: "rr <sequence>".
const rollTag = `"content":"rr `

// rollClients are a generator's v2 campaign clients during a rolling
// restart: positions (for resuming), the comments received by sequence,
// and a reconnect when the server drops them.
type rollClients struct {
	ctx     context.Context
	e       *env
	base    string // the campaign path, without v=2
	pos     *v2handler
	seen    [][]atomic.Uint64 // bit s: comment "rr s" received
	up      []atomic.Bool
	ever    []atomic.Bool // connected at least once: owed every comment
	clients []atomic.Pointer[client]
	dups    atomic.Int64
	recon   atomic.Int64
	tgt     []atomic.Int32 // target of each client's connection
	perTgt  []atomic.Int64 // this generator's connections open to each target
	down    []atomic.Int64 // unix ns until which a target that refused is avoided
	halt    atomic.Bool
	halted  chan struct{} // closed with halt: wakes the reconnects' waits
	mu      sync.Mutex    // orders wg.Add after halt against stop's Wait
	wg      sync.WaitGroup
}

func newRollClients(ctx context.Context, e *env, s genSpec) *rollClients {
	r := &rollClients{ctx: ctx, e: e, base: s.Path, halted: make(chan struct{}), pos: &v2handler{pos: make([]v2pos, s.N), group: s.Group},
		seen: make([][]atomic.Uint64, s.N), up: make([]atomic.Bool, s.N), ever: make([]atomic.Bool, s.N), clients: make([]atomic.Pointer[client], s.N)}
	words := s.bitWords()
	for i := range r.seen {
		r.seen[i] = make([]atomic.Uint64, words)
	}
	n := len(e.targets)
	r.tgt, r.perTgt, r.down = make([]atomic.Int32, s.N), make([]atomic.Int64, n), make([]atomic.Int64, n)
	for i := range r.tgt {
		r.tgt[i].Store(int32((s.Offset + i) % n)) // as the dialer chooses
	}
	return r
}

// pick is the target with the fewest of this generator's connections
// among those not avoided.
func (r *rollClients) pick() int {
	now := time.Now().UnixNano()
	best, bestUp := -1, false
	for t := range r.perTgt {
		up := r.down[t].Load() < now
		if best < 0 || (up && !bestUp) || (up == bestUp && r.perTgt[t].Load() < r.perTgt[best].Load()) {
			best, bestUp = t, up
		}
	}
	return best
}

// path is client i's path: v=2, and its resume position once it has one.
func (r *rollClients) path(i int) string { return withQuery(r.base, r.pos.query(i)) }

// withQuery adds the query q to path p.
func withQuery(p, q string) string {
	if bytes.ContainsRune([]byte(p), '?') {
		return p + "&" + q
	}
	return p + "?" + q
}

func (r *rollClients) connected(clients []*client) {
	for i, c := range clients {
		if c != nil {
			r.clients[i].Store(c)
			r.up[i].Store(true)
			r.ever[i].Store(true)
			r.perTgt[r.tgt[i].Load()].Add(1)
		}
	}
}

func (r *rollClients) message(c *client, head []byte, n int) {
	r.pos.message(c, head, n)
	if !isType(head, "comment") {
		return
	}
	j := bytes.Index(head, []byte(rollTag))
	if j < 0 {
		return
	}
	s, ok := parseUint(head[j+len(rollTag):])
	seen := r.seen[c.id]
	if !ok || s>>6 >= int64(len(seen)) {
		return
	}
	mask := uint64(1) << (s & 63)
	if seen[s>>6].Or(mask)&mask != 0 {
		r.dups.Add(1)
	}
}

func (r *rollClients) closed(c *client, code int, err error) {
	r.up[c.id].Store(false)
	r.perTgt[r.tgt[c.id].Load()].Add(-1)
	if c.shut.Load() {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.halt.Load() {
		return
	}
	r.wg.Add(1)
	go r.reconnect(int(c.id))
}

// reconnect brings client i back, each attempt to the next target in
// turn, waiting before each as @herald/client's Backoff does.
func (r *rollClients) reconnect(i int) {
	defer r.wg.Done()
	for attempt := 0; ; attempt++ {
		window := min(30*time.Second, 500*time.Millisecond<<min(attempt, 6))
		t := time.NewTimer(time.Duration(rand.Int64N(int64(window))))
		select {
		case <-t.C:
		case <-r.halted:
		case <-r.ctx.Done():
		}
		t.Stop()
		if r.halt.Load() || r.ctx.Err() != nil {
			return
		}
		r.pos.pos[i].subAt.Store(0) // a subscribed message of this connection is awaited
		r.pos.pos[i].recovered.Store(false)
		to := r.pick()
		r.perTgt[to].Add(1) // counted while connecting, as least_conn does
		c, err := r.e.dial.dialTarget(to, r.path(i), i, r)
		if err != nil {
			r.perTgt[to].Add(-1)
			r.down[to].Store(time.Now().Add(2 * time.Second).UnixNano())
		}
		if err == nil {
			r.tgt[i].Store(int32(to))
			r.clients[i].Store(c)
			r.up[i].Store(true)
			r.recon.Add(1)
			go c.run(&r.e.open)
			if r.halt.Load() {
				c.drop()
			}
			return
		}
	}
}

// status counts the clients against the comments posted so far.
func (r *rollClients) status(posted int) genReply {
	var rep genReply
	for i := range r.seen {
		if !r.ever[i].Load() {
			continue
		}
		up := r.up[i].Load()
		if up {
			rep.Up++
		}
		missing := int64(0)
		for s := range min(posted, len(r.seen[i])*64) {
			if r.seen[i][s>>6].Load()&(1<<(s&63)) == 0 {
				missing++
			}
		}
		rep.Missing += missing
		if up && missing == 0 {
			rep.Current++
		}
		if p := &r.pos.pos[i]; up && missing > 0 {
			switch {
			case p.subAt.Load() == 0:
				rep.Unsubscribed++
			case !p.recovered.Load():
				rep.NotRecovered++
			}
			if p.snapshots.Load() > 0 {
				rep.Snapshots++
			}
		}
	}
	rep.Dups, rep.Reconnects = r.dups.Load(), r.recon.Load()
	return rep
}

// stop ends the reconnecting and waits for the attempts in flight.
func (r *rollClients) stop() {
	r.mu.Lock()
	if !r.halt.Swap(true) {
		close(r.halted)
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// current is the clients as they are now.
func (r *rollClients) current() []*client {
	out := make([]*client, len(r.clients))
	for i := range r.clients {
		out[i] = r.clients[i].Load()
	}
	return out
}

// rollTally asks the generators for their clients' state.
func (e *env) rollTally(ctx context.Context, posted int) (RestartTally, error) {
	reps, err := e.gen.call(ctx, genReq{Op: "status", Posted: posted}, 0)
	t, merr := mergeStatus(reps)
	return t, errors.Join(err, merr)
}

// rollingRestart restarts every spawned process in turn under the
// generators' connected clients (runIdle with --restart).
func (e *env) rollingRestart(ctx context.Context, f *RestartFigures, campaign int64, owner user) error {
	o := e.o
	n := len(e.cluster.servers)
	f.Processes, f.Missed = n, o.Missed
	path := "/api/campaigns/" + strconv.FormatInt(campaign, 10) + "/comments/"
	bases := make([]string, n)
	for k, s := range e.cluster.servers {
		bases[k] = s.base
	}
	// post writes the next comment through a process that is up.
	post := func(via int) error {
		body := []byte(`{"content":"rr ` + strconv.Itoa(f.Posted) + `"}`)
		if _, err := e.rest.callAt(ctx, bases[via], "POST", path, owner.Token, body, http.StatusCreated); err != nil {
			return fmt.Errorf("post comment %d: %w", f.Posted, err)
		}
		f.Posted++
		return nil
	}
	// current waits until every client holds every comment posted.
	current := func(what string) (RestartTally, bool, error) {
		var t RestartTally
		err := e.waitFor(ctx, what, o.Duration.D(), func() (bool, string) {
			var err error
			if t, err = e.rollTally(ctx, f.Posted); err != nil {
				return false, err.Error()
			}
			return t.Current == int64(f.Clients), fmt.Sprintf("%d/%d current, %d up, %d events missing, %d reconnects", t.Current, f.Clients, t.Up, t.Missing, t.Reconnects)
		})
		if ctx.Err() != nil {
			return t, false, ctx.Err()
		}
		return t, err == nil, nil
	}
	// Every client learns its position from a first comment.
	if err := post(0); err != nil {
		return err
	}
	if _, ok, err := current("clients reading the first comment"); err != nil || !ok {
		return fmt.Errorf("rolling restart: not every client got the first comment: %v", err)
	}
	start := time.Now()
	e.profile(ctx, "cpu-restart.pprof", o.ProfileFor.D())
	for k := range n {
		st := RestartStep{Process: k + 1}
		t0 := time.Now()
		s := e.cluster.servers[k]
		e.setPhase(fmt.Sprintf("restart %d/%d", k+1, n), func() string {
			return fmt.Sprintf("restart %d/%d: %.0fs since the SIGTERM", k+1, n, time.Since(t0).Seconds())
		})
		if err := s.stop(o.Out); err != nil { // its log is kept
			e.note("restart of process %d: it stopped with %v", k+1, err)
		}
		s.done <- nil // stopped: stopping the cluster finds it so if the restart fails
		st.StoppedS = round3(time.Since(t0).Seconds())
		for range o.Missed {
			if err := post((k + 1) % n); err != nil {
				return err
			}
		}
		ns, err := restartServer(ctx, s, o.Timeout.D())
		if err != nil {
			return fmt.Errorf("restart process %d: %w", k+1, err)
		}
		e.cluster.servers[k], e.pids[k] = ns, ns.pid
		st.BackS = round3(time.Since(t0).Seconds())
		t, ok, err := current(fmt.Sprintf("process %d restarted: clients current again", k+1))
		if err != nil {
			return err
		}
		st.Tally = t
		if ok {
			st.CurrentS = round3(time.Since(t0).Seconds())
		}
		f.Steps = append(f.Steps, st)
		e.printf("restart %d/%d: stopped in %.2fs, back in %.2fs, %s\n", k+1, n, st.StoppedS, st.BackS, tallyLine(st.CurrentS, t, f.Clients))
		if !ok {
			e.note("restart of process %d: not every client was current again within %v", k+1, o.Duration)
		}
	}
	f.TotalS = round3(time.Since(start).Seconds())
	// A last comment through every process, then the final count.
	if err := post(0); err != nil {
		return err
	}
	t, _, err := current("after the rolling restart")
	f.Final = t
	e.printf("rolling restart of %d processes in %.1fs: %s\n", n, f.TotalS, tallyLine(-1, t, f.Clients))
	return err
}

func tallyLine(currentS float64, t RestartTally, clients int) string {
	s := ""
	switch {
	case currentS > 0:
		s = fmt.Sprintf("all %d clients current %.2fs after the SIGTERM; ", clients, currentS)
	case currentS == 0:
		s = fmt.Sprintf("only %d/%d clients current; ", t.Current, clients)
	}
	s += fmt.Sprintf("%d up, %d comments missing, %d duplicates, %d reconnects so far", t.Up, t.Missing, t.Duplicates, t.Reconnects)
	if t.Unsubscribed+t.NotRecovered+t.Snapshots > 0 {
		s += fmt.Sprintf(" (of the clients up and missing comments: %d not told subscribed, %d told recovered:false, %d sent a snapshot)", t.Unsubscribed, t.NotRecovered, t.Snapshots)
	}
	return s
}

// restartServer starts the stopped server s again with the same command
// line (its addresses too), logging to a new file beside its first log,
// and waits until it answers /healthz.
func restartServer(ctx context.Context, s *server, timeout time.Duration) (*server, error) {
	cmd := exec.Command(s.cmd.Path, s.cmd.Args[1:]...)
	cmd.Env = s.cmd.Env
	log := strings.TrimSuffix(s.log, ".log") + "-restarted.log"
	return startServer(ctx, "herald serve", cmd, log, s.base, s.admin, timeout)
}

package cluster

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testenv"
)

// The chaos suite's one invariant: for every subscriber of a campaign room,
// the set of comment ids it learned of equals the set of comments the
// database holds at the end, read back through the REST API. None missing
// (lost), none delivered twice as an event (dup), none that was never
// committed (phantom). A subscriber learns of a comment from an event, from
// a campaign_data snapshot (every fresh start, and the one that follows
// recovered:false), or from a REST reload after recovered:false; reloads
// are counted apart, since most scenarios aim at none.

// subscriber is one real-time client of a campaign room, on WebSocket v2 or
// SSE, that reconnects after any close or error and resumes from its last
// position: ?resume= on WebSocket, Last-Event-ID on SSE, as a browser's
// EventSource sends it.
type subscriber struct {
	t        *testing.T
	name     string
	sse      bool
	campaign int64
	group    string
	// pick returns the process to connect to after the given number of
	// failed attempts in a row.
	pick func(failures int) *proc
	// restReload makes a recovered:false reload the comments through REST;
	// without it the campaign_data that follows is the client's new state.
	restReload bool

	mu         sync.Mutex
	epoch      string // empty: no position (fresh start or recovered:false)
	last       uint64
	lastID     string        // SSE: the last event id, sent back as Last-Event-ID
	recreate   bool          // SSE: the stream failed; a new one carries ?resume=
	retry      time.Duration // SSE: the server's retry: advice
	comments   map[int64]int // comment id → deliveries as an event
	snap       map[int64]bool
	reloaded   map[int64]bool
	events     int // events of any type
	connects   int
	snapshots  int
	recovered  int
	lostState  int // recovered:false
	gaps       int
	repeats    int
	epochJumps int
	problems   []string
	closeCodes map[int]int
	cut        context.CancelFunc // ends the current connection
	hold       chan struct{}      // non-nil: wait for it to close before reconnecting
	parked     chan struct{}      // closed once the subscriber waits for hold
	stopAt     uint64             // non-zero: end the connection and hold after this offset
	resumes    []resumeOutcome
	resumeFrom uint64 // the offset the connection resumed from
	resuming   bool   // the connection resumed and its subscribed has not come yet
	headUnset  bool   // the last resume's head is the next event's offset - 1
}

// resumeOutcome is how one resume was answered and how far behind the
// room it was on the server: head is where subscribed put the client (the
// end of the replay, or the snapshot's position after recovered:false);
// from a server that sends no position, the last event before subscribed
// or the offset the live events start after.
type resumeOutcome struct {
	from, head uint64
	recovered  bool
}

// behind is how many events the resume missed.
func (r resumeOutcome) behind() int { return int(r.head) - int(r.from) }

func newSubscriber(t *testing.T, name string, sse bool, campaign int64, pick func(int) *proc) *subscriber {
	return &subscriber{
		t: t, name: name, sse: sse, campaign: campaign, group: "campaign_" + strconv.FormatInt(campaign, 10), pick: pick,
		restReload: true, retry: 2 * time.Second,
		comments: map[int64]int{}, snap: map[int64]bool{}, reloaded: map[int64]bool{}, closeCodes: map[int]int{},
	}
}

func (s *subscriber) problemf(format string, args ...any) {
	if len(s.problems) < 50 {
		s.problems = append(s.problems, fmt.Sprintf(format, args...))
	}
}

// run follows the room until ctx ends; ready is told when the first
// campaign_data arrived.
func (s *subscriber) run(ctx context.Context, ready func()) {
	failures := 0
	readyOnce := sync.OnceFunc(ready)
	for ctx.Err() == nil {
		s.mu.Lock()
		hold, parked := s.hold, s.parked
		s.mu.Unlock()
		if hold != nil {
			close(parked)
			select {
			case <-hold:
			case <-ctx.Done():
				return
			}
			s.mu.Lock()
			s.hold, s.parked = nil, nil
			s.mu.Unlock()
		}
		p := s.pick(failures)
		connCtx, cancel := context.WithCancel(ctx)
		s.mu.Lock()
		s.cut = cancel
		held := s.hold != nil // parked since the check above
		s.mu.Unlock()
		if held {
			cancel()
			continue
		}
		var established bool
		if s.sse {
			established = s.streamSSE(connCtx, p, readyOnce)
		} else {
			established = s.streamWS(connCtx, p, readyOnce)
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
		if established {
			failures = 0
		} else {
			failures++
		}
		delay := backoff(failures)
		s.mu.Lock()
		if s.sse && established {
			delay = s.retry // a browser's EventSource waits this long
		}
		if s.hold != nil {
			delay = 0 // parked: the release says when
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

// backoff is a client's jittered delay before its next connection attempt.
func backoff(failures int) time.Duration {
	d := 100 * time.Millisecond << min(failures, 4)
	return d/2 + rand.N(d/2+1)
}

// streamWS runs one WebSocket connection and reports whether it was
// established.
func (s *subscriber) streamWS(ctx context.Context, p *proc, ready func()) bool {
	path := "/ws/campaign/" + strconv.FormatInt(s.campaign, 10) + "/?v=2"
	s.mu.Lock()
	if s.epoch != "" {
		path += "&resume=" + url.QueryEscape(s.group+":"+s.epoch+":"+strconv.FormatUint(s.last, 10))
	}
	s.resumeFrom, s.resuming = s.last, s.epoch != ""
	s.mu.Unlock()
	c, _, err := testenv.DialWS(s.t, p.ws(path), nil)
	if err != nil {
		return false
	}
	defer c.Close()
	defer context.AfterFunc(ctx, c.Close)()
	s.mu.Lock()
	s.connects++
	s.mu.Unlock()
	for {
		raw, err := c.Next(time.Hour)
		if err != nil {
			if c.CloseCode != 0 {
				s.mu.Lock()
				s.closeCodes[int(c.CloseCode)]++
				s.mu.Unlock()
			}
			return true
		}
		var m wire
		if err := json.Unmarshal(raw, &m); err != nil {
			s.mu.Lock()
			s.problemf("not JSON: %.200s", raw)
			s.mu.Unlock()
			continue
		}
		stop := s.handle(ctx, m.Type, m.Data, m.Group, m.Epoch, m.Offset)
		if m.Type == "campaign_data" {
			ready()
		}
		if stop {
			return true
		}
	}
}

// sseHTTP opens event streams: no overall timeout (a stream lasts), a new
// connection each time (never one to a process that is going away).
var sseHTTP = &http.Client{Transport: &http.Transport{DisableKeepAlives: true, ResponseHeaderTimeout: 10 * time.Second}}

// streamSSE runs one event stream as a browser's EventSource reads it, and
// reports whether it was established. After a stream that ends or breaks
// the next one sends Last-Event-ID; after an answer that is not an event
// stream (an EventSource gives up on it) the page makes a new EventSource,
// which passes its position as ?resume=.
func (s *subscriber) streamSSE(ctx context.Context, p *proc, ready func()) bool {
	u := p.url("/sse/campaign/" + strconv.FormatInt(s.campaign, 10) + "/")
	s.mu.Lock()
	lastID, recreate := s.lastID, s.recreate
	_, _, s.resumeFrom = s.positionIn(lastID)
	s.resuming = lastID != ""
	s.mu.Unlock()
	if recreate && lastID != "" {
		u += "?resume=" + url.QueryEscape(lastID)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if !recreate && lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := sseHTTP.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); resp.StatusCode != http.StatusOK || mt != "text/event-stream" {
		s.mu.Lock()
		s.recreate = true
		s.mu.Unlock()
		return false
	}
	s.mu.Lock()
	s.recreate = false
	s.connects++
	s.mu.Unlock()
	br := bufio.NewReader(resp.Body)
	var idBuf, event string
	var data []string
	idSeen := false // the event being read had an id: line of its own
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return true
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" {
			s.mu.Lock()
			s.lastID = idBuf
			s.mu.Unlock()
			if len(data) > 0 {
				typ := cmp.Or(event, "message")
				var epoch string
				var offset uint64
				group := ""
				if idSeen {
					group, epoch, offset = s.positionIn(idBuf)
				}
				stop := s.handle(ctx, typ, []byte(strings.Join(data, "\n")), group, epoch, offset)
				if typ == "campaign_data" {
					ready()
				}
				if stop {
					return true
				}
			}
			event, data, idSeen = "", nil, false
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			if !strings.Contains(value, "\x00") {
				idBuf, idSeen = value, true
			}
		case "event":
			event = value
		case "data":
			data = append(data, value)
		case "retry":
			if ms, err := strconv.Atoi(value); err == nil && ms >= 0 {
				s.mu.Lock()
				s.retry = time.Duration(ms) * time.Millisecond
				s.mu.Unlock()
			}
		}
	}
}

// positionIn finds the subscriber's group in an SSE id
// ("group:epoch:offset,…").
func (s *subscriber) positionIn(id string) (group, epoch string, offset uint64) {
	for _, part := range strings.Split(id, ",") {
		f := strings.Split(part, ":")
		if len(f) == 3 && f[0] == s.group {
			n, err := strconv.ParseUint(f[2], 10, 64)
			if err == nil {
				return f[0], f[1], n
			}
		}
	}
	return "", "", 0
}

// handle takes one message of the room; stop says the connection must end
// here (parkAfter).
func (s *subscriber) handle(ctx context.Context, typ string, data []byte, group, epoch string, offset uint64) (stop bool) {
	reload := false
	s.mu.Lock()
	switch typ {
	case "campaign_data":
		var d struct {
			Comments []struct {
				ID int64 `json:"id"`
			} `json:"comments"`
		}
		if err := json.Unmarshal(data, &d); err != nil {
			s.problemf("campaign_data: %v", err)
			break
		}
		s.snapshots++
		for _, c := range d.Comments {
			s.snap[c.ID] = true
		}
	case "subscribed":
		// Where the client stands once joined: after the replay of a
		// resume or the snapshot of a fresh start, or, after
		// recovered:false, at the campaign_data that follows.
		var d struct {
			Group     string  `json:"group"`
			Recovered bool    `json:"recovered"`
			Epoch     string  `json:"epoch"`
			Offset    *uint64 `json:"offset"`
		}
		if err := json.Unmarshal(data, &d); err != nil || d.Group != s.group {
			s.problemf("subscribed: %s", data)
			break
		}
		resumed := s.resuming
		s.resuming = false
		positioned := d.Epoch != "" && d.Offset != nil
		if d.Recovered {
			if resumed {
				s.recovered++
			}
			if positioned {
				if s.epoch != "" && (s.epoch != d.Epoch || s.last != *d.Offset) {
					s.problemf("subscribed at %s:%d where the events left the client at %s:%d", d.Epoch, *d.Offset, s.epoch, s.last)
				}
				s.epoch, s.last = d.Epoch, *d.Offset
			}
		} else {
			// Events were lost for the room: the state is rebuilt from the
			// snapshot that follows (and REST), and the events go on from
			// the position given, if any.
			s.lostState++
			reload = s.restReload
			s.epoch, s.last = "", 0
			if positioned {
				s.epoch, s.last = d.Epoch, *d.Offset
			}
		}
		if resumed {
			s.resumes = append(s.resumes, resumeOutcome{from: s.resumeFrom, head: s.last, recovered: d.Recovered})
			s.headUnset = !d.Recovered && !positioned
		}
	case "comment", "update", "contribution", "release", "milestone":
		s.event(typ, data, group, epoch, offset)
		if s.stopAt != 0 && s.last >= s.stopAt {
			s.stopAt, s.hold, stop = 0, make(chan struct{}), true
		}
	case "presence", "ack":
	default:
		s.problemf("unexpected %s message: %.200s", typ, data)
	}
	s.mu.Unlock()
	if reload {
		s.reload(ctx)
	}
	return stop
}

// event checks one event against the subscriber's position: within an
// epoch offsets follow each other; an epoch changes only after
// recovered:false.
func (s *subscriber) event(typ string, data []byte, group, epoch string, offset uint64) {
	s.events++
	if group != s.group || epoch == "" || offset == 0 {
		s.problemf("%s event without a position in %s: group %q epoch %q offset %d", typ, s.group, group, epoch, offset)
		return
	}
	switch {
	case s.epoch == "":
	case epoch != s.epoch:
		s.epochJumps++
		s.problemf("epoch %s → %s at offset %d without recovered:false", s.epoch, epoch, offset)
	case offset <= s.last:
		s.repeats++
		s.problemf("offset %d again after %d", offset, s.last)
	case offset != s.last+1:
		s.gaps++
		when := ""
		if s.resuming {
			when = fmt.Sprintf(" (in the replay of a resume from %d, before its subscribed)", s.resumeFrom)
		}
		s.problemf("offset %d after %d: %d events skipped%s", offset, s.last, offset-s.last-1, when)
	}
	if s.headUnset {
		s.resumes[len(s.resumes)-1].head = offset - 1
		s.headUnset = false
	}
	if typ == "comment" {
		var c struct {
			ID int64 `json:"id"`
		}
		if err := json.Unmarshal(data, &c); err != nil || c.ID == 0 {
			s.problemf("comment event without an id: %.200s", data)
		} else {
			s.comments[c.ID]++
		}
	}
	if epoch != s.epoch || offset > s.last {
		s.epoch, s.last = epoch, offset
	}
}

// reload reads every comment through REST, from whichever process answers.
func (s *subscriber) reload(ctx context.Context) {
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; ctx.Err() == nil; i++ {
		got, err := committedComments(s.pick(i), s.campaign)
		if err == nil {
			s.mu.Lock()
			for id := range got {
				s.reloaded[id] = true
			}
			s.mu.Unlock()
			return
		}
		if time.Now().After(deadline) {
			s.mu.Lock()
			s.problemf("reload through REST: %v", err)
			s.mu.Unlock()
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff(i)):
		}
	}
}

// position is where the subscriber stands.
func (s *subscriber) position() (epoch string, last uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch, s.last
}

// park cuts the connection and keeps the subscriber from reconnecting
// until release; it returns once the subscriber has stopped reading.
func (s *subscriber) park(timeout time.Duration) bool {
	s.mu.Lock()
	s.hold, s.parked = make(chan struct{}), make(chan struct{})
	parked, cut := s.parked, s.cut
	s.mu.Unlock()
	if cut != nil {
		cut()
	}
	select {
	case <-parked:
		return true
	case <-time.After(timeout):
		return false
	}
}

// parkAfter makes the subscriber end its connection right after the event
// at offset and hold until release; the returned channel is closed once
// it has.
func (s *subscriber) parkAfter(offset uint64) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopAt, s.parked = offset, make(chan struct{})
	return s.parked
}

// release lets a parked subscriber reconnect.
func (s *subscriber) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.hold)
}

// drop cuts the connection as a network failure would; the subscriber
// reconnects and resumes.
func (s *subscriber) drop() {
	s.mu.Lock()
	cut := s.cut
	s.mu.Unlock()
	if cut != nil {
		cut()
	}
}

// missing counts the committed comments the subscriber does not know.
func (s *subscriber) missing(committed map[int64]string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id := range committed {
		if s.comments[id] == 0 && !s.snap[id] && !s.reloaded[id] {
			n++
		}
	}
	return n
}

// verdict is the invariant checked for one subscriber.
type verdict struct {
	lost, dup, phantom int
	lostIDs            []int64
}

func (s *subscriber) verdict(committed map[int64]string) verdict {
	s.mu.Lock()
	defer s.mu.Unlock()
	var v verdict
	for id := range committed {
		if s.comments[id] == 0 && !s.snap[id] && !s.reloaded[id] {
			v.lost++
			v.lostIDs = append(v.lostIDs, id)
		}
	}
	slices.Sort(v.lostIDs)
	for id, n := range s.comments {
		v.dup += n - 1
		if _, ok := committed[id]; !ok {
			v.phantom++
		}
	}
	for _, known := range []map[int64]bool{s.snap, s.reloaded} {
		for id := range known {
			if _, ok := committed[id]; !ok {
				v.phantom++
			}
		}
	}
	return v
}

// startSubscribers runs subs until the returned stop is called; it returns
// once every one has its first campaign_data.
func startSubscribers(t *testing.T, subs []*subscriber) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var ready sync.WaitGroup
	var wg sync.WaitGroup
	for _, s := range subs {
		ready.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.run(ctx, ready.Done)
		}()
	}
	stop = sync.OnceFunc(func() {
		cancel()
		wg.Wait()
	})
	t.Cleanup(stop)
	all := make(chan struct{})
	go func() {
		ready.Wait()
		close(all)
	}()
	select {
	case <-all:
	case <-time.After(30 * time.Second):
		n := 0
		for _, s := range subs {
			if s.stats().snapshots == 0 {
				n++
			}
		}
		stop()
		t.Fatalf("%d of %d subscribers had no campaign_data after 30 s", n, len(subs))
	}
	return stop
}

// subStats are one subscriber's counters.
type subStats struct {
	events, connects, snapshots, recovered, lostState, gaps, repeats, epochJumps int
	last                                                                         uint64
	problems                                                                     []string
	closeCodes                                                                   map[int]int
	resumes                                                                      []resumeOutcome
}

func (s *subscriber) stats() subStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	codes := map[int]int{}
	for k, v := range s.closeCodes {
		codes[k] = v
	}
	return subStats{s.events, s.connects, s.snapshots, s.recovered, s.lostState, s.gaps, s.repeats, s.epochJumps,
		s.last, slices.Clone(s.problems), codes, slices.Clone(s.resumes)}
}

// subscribers makes nWS WebSocket and nSSE SSE subscribers of campaign,
// spread over the deployment's processes.
func subscribers(t *testing.T, d *deployment, campaign int64, nWS, nSSE int) []*subscriber {
	var subs []*subscriber
	for i := range nWS + nSSE {
		p := d.procs[i%len(d.procs)]
		sse := i >= nWS
		kind := "ws"
		if sse {
			kind = "sse"
		}
		subs = append(subs, newSubscriber(t, fmt.Sprintf("%s %d (starts on %s)", kind, i, p.name), sse, campaign, d.fixed(p)))
	}
	return subs
}

// committedComments reads every comment of a campaign through p's REST
// API: id → content.
func committedComments(p *proc, campaign int64) (map[int64]string, error) {
	got := map[int64]string{}
	for page := 1; ; page++ {
		var pg struct {
			Next    *string
			Results []struct {
				ID      int64
				Content string
			}
		}
		u := p.url("/api/campaigns/" + strconv.FormatInt(campaign, 10) + "/comments/?page_size=100&page=" + strconv.Itoa(page))
		if _, err := call("GET", u, "", nil, &pg); err != nil {
			return nil, err
		}
		for _, r := range pg.Results {
			got[r.ID] = r.Content
		}
		if pg.Next == nil {
			return got, nil
		}
	}
}

// writeReq is one write a writer sends.
type writeReq struct {
	path    string // under /api/campaigns/<id>/
	body    map[string]string
	comment bool
}

// writers post at a steady rate from several goroutines, each POST with an
// Idempotency-Key of its own. With retry, a POST that got no answer (a
// transport error, EOF), a 503 or a 409 request_in_progress is sent again
// with the same key, after Retry-After when there is one, to the next
// running process, for up to 30 s.
type writers struct {
	t        *testing.T
	d        *deployment
	token    string
	campaign int64
	retry    bool
	next     func(i int64) writeReq

	n      atomic.Int64
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// gate is held shared by every write in flight; pause takes it whole.
	gate   sync.RWMutex
	paused atomic.Bool

	mu       sync.Mutex
	writes   int // logical writes finished
	ok       int
	failed   int
	retried  int // requests sent again
	replayed int // writes a retry found applied (the stored answer, or already_applied)
	acked    map[int64]bool
	outcomes map[string]int // failure kind → count
	failures []string
	unclear  []string // refusals that were not a clear 503 problem document (the first ones)
	nUnclear int
}

type writerConfig struct {
	rate    float64 // writes per second, all goroutines together
	workers int
	retry   bool
	next    func(i int64) writeReq // nil: comments
}

// startWriters starts writing to campaign as token.
func startWriters(t *testing.T, d *deployment, token string, campaign int64, cfg writerConfig) *writers {
	w := &writers{t: t, d: d, token: token, campaign: campaign, retry: cfg.retry, next: cfg.next,
		acked: map[int64]bool{}, outcomes: map[string]int{}}
	if w.next == nil {
		w.next = func(i int64) writeReq {
			return writeReq{path: "comments/", body: map[string]string{"content": "comment " + strconv.FormatInt(i, 10)}, comment: true}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	tick := make(chan struct{}, 1)
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		tk := time.NewTicker(time.Duration(float64(time.Second) / cfg.rate))
		defer tk.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
				select {
				case tick <- struct{}{}:
				default: // every writer busy: the rate is what the server takes
				}
			}
		}
	}()
	for range cfg.workers {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick:
				}
				w.gate.RLock()
				if !w.paused.Load() {
					i := w.n.Add(1)
					w.write(i, w.next(i))
				}
				w.gate.RUnlock()
			}
		}()
	}
	t.Cleanup(w.stop)
	return w
}

// stop ends the writers and waits for the writes in flight.
func (w *writers) stop() {
	w.cancel()
	w.wg.Wait()
}

// pause stops writing and returns once no write is in flight.
func (w *writers) pause() {
	w.paused.Store(true)
	w.gate.Lock() // once every write in flight has ended
	w.gate.Unlock()
}

// resume writes again after pause.
func (w *writers) resume() { w.paused.Store(false) }

// count returns how many writes were acknowledged so far.
func (w *writers) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ok
}

// answer is what one POST got.
type answer struct {
	status      int
	err         error
	contentType string
	retryAfter  time.Duration
	replayed    bool // the answer stored for the key, sent again
	id          int64
	problem     struct {
		Status int    `json:"status"`
		Code   string `json:"code"`
		Detail string `json:"detail"`
	}
	body []byte
}

func newKey() string {
	var b [16]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// post sends one POST with the key.
func (w *writers) post(p *proc, req writeReq, key string) answer {
	var a answer
	b, _ := json.Marshal(req.body)
	hr, err := http.NewRequest(http.MethodPost, p.url("/api/campaigns/"+strconv.FormatInt(w.campaign, 10)+"/"+req.path), bytes.NewReader(b))
	if err != nil {
		a.err = err
		return a
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Authorization", "Bearer "+w.token)
	hr.Header.Set("Idempotency-Key", key)
	resp, err := httpc.Do(hr)
	if err != nil {
		a.err = err
		return a
	}
	defer resp.Body.Close()
	a.status, a.contentType = resp.StatusCode, resp.Header.Get("Content-Type")
	a.replayed = resp.Header.Get("Idempotent-Replayed") == "true"
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		a.retryAfter = time.Duration(s) * time.Second
	}
	if a.body, err = io.ReadAll(resp.Body); err != nil {
		a.err = err // no whole answer: as good as none
		return a
	}
	if a.status < 300 {
		var v struct {
			ID int64 `json:"id"`
		}
		if err := json.Unmarshal(a.body, &v); err != nil || v.ID == 0 {
			a.err = fmt.Errorf("answer without an id: %.200s", a.body)
		}
		a.id = v.ID
		return a
	}
	_ = json.Unmarshal(a.body, &a.problem)
	return a
}

// write sends one logical write until it succeeds, fails for good or (with
// retry) 30 s have passed.
func (w *writers) write(i int64, req writeReq) {
	key := newKey()
	deadline := time.Now().Add(30 * time.Second)
	for attempt := 0; ; attempt++ {
		p := w.d.running(int(i) + attempt)
		a := w.post(p, req, key)
		// 409 already_applied: a request sent before was applied and its
		// answer lost; the write is done, its id unknown.
		applied := a.err == nil && a.status == http.StatusConflict && a.problem.Code == "already_applied"
		if a.err == nil && a.status < 300 || applied {
			w.mu.Lock()
			w.writes++
			w.ok++
			if req.comment && !applied {
				w.acked[a.id] = true
			}
			if a.replayed || applied {
				w.replayed++
			}
			w.mu.Unlock()
			return
		}
		kind := "transport error"
		if a.err == nil {
			kind = strconv.Itoa(a.status) + " " + a.problem.Code
		}
		retryable := a.err != nil || a.status == http.StatusServiceUnavailable ||
			(a.status == http.StatusConflict && a.problem.Code == "request_in_progress")
		w.mu.Lock()
		w.outcomes[kind]++
		if a.err != nil || !clear503(a) {
			w.nUnclear++
			switch {
			case len(w.unclear) >= 10:
			case a.err != nil:
				w.unclear = append(w.unclear, fmt.Sprintf("on %s: %v", p.name, a.err))
			default:
				w.unclear = append(w.unclear, fmt.Sprintf("on %s: %d %s: %.300s", p.name, a.status, a.contentType, bytes.TrimSpace(a.body)))
			}
		}
		if !w.retry || !retryable || time.Now().After(deadline) {
			w.writes++
			w.failed++
			if len(w.failures) < 20 {
				detail := fmt.Sprintf("%d %.300s", a.status, a.body)
				if a.err != nil {
					detail = a.err.Error()
				}
				w.failures = append(w.failures, fmt.Sprintf("write %d on %s after %d attempts: %s", i, p.name, attempt+1, detail))
			}
			w.mu.Unlock()
			return
		}
		w.retried++
		w.mu.Unlock()
		wait := a.retryAfter
		if wait == 0 {
			wait = backoff(attempt)
		}
		time.Sleep(min(wait, time.Until(deadline)+time.Millisecond))
	}
}

// clear503 reports whether a refused write is a 503 problem document with
// a code, as a client can act on.
func clear503(a answer) bool {
	mt, _, _ := mime.ParseMediaType(a.contentType)
	return a.status == http.StatusServiceUnavailable && mt == "application/problem+json" &&
		a.problem.Status == http.StatusServiceUnavailable && a.problem.Code != ""
}

// writeStats are the writers' counters.
type writeStats struct {
	writes, ok, failed, retried, replayed, unclear int
	acked                                          map[int64]bool
	outcomes                                       map[string]int
	failures, unclearOnes                          []string
}

func (w *writers) stats() writeStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	acked := make(map[int64]bool, len(w.acked))
	for k := range w.acked {
		acked[k] = true
	}
	out := map[string]int{}
	for k, v := range w.outcomes {
		out[k] = v
	}
	return writeStats{w.writes, w.ok, w.failed, w.retried, w.replayed, w.nUnclear, acked, out, slices.Clone(w.failures), slices.Clone(w.unclear)}
}

// running picks the i-th process among those running, as a load balancer
// that health-checks them would.
func (d *deployment) running(i int) *proc {
	n := len(d.procs)
	for k := range n {
		if p := d.procs[((i+k)%n+n)%n]; p.running() {
			return p
		}
	}
	return d.procs[(i%n+n)%n]
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// figures are a scenario's results, as the suite reports them.
type figures struct {
	committed, events, subs, ws, sse       int
	lost, dup, phantom                     int
	reloads, recovered, connects           int
	gaps, repeats, epochJumps, problemSubs int
	posts, ok, failed, retried, replayed   int
	doubled                                int
	catchUp, total                         time.Duration
	worst                                  []string
}

func (f figures) String() string {
	return fmt.Sprintf("%d comments committed, %d events delivered to %d subscribers (%d ws, %d sse); "+
		"lost %d, dup %d, phantom %d; reloads (recovered:false) %d, recovered:true %d, connections %d; "+
		"offset gaps %d, repeats %d, silent epoch changes %d; POSTs %d (ok %d, failed %d, requests sent again %d, "+
		"found applied on a retry %d, committed twice %d); "+
		"caught up %v after the writes ended; %v in all",
		f.committed, f.events, f.subs, f.ws, f.sse, f.lost, f.dup, f.phantom, f.reloads, f.recovered, f.connects,
		f.gaps, f.repeats, f.epochJumps, f.posts, f.ok, f.failed, f.retried, f.replayed, f.doubled,
		f.catchUp.Round(time.Millisecond), f.total.Round(time.Millisecond))
}

// finish ends a scenario: stops the writers, writes a last comment (which
// every subscriber receiving shows everything before it was delivered),
// reads the committed comments through REST, waits for every subscriber to
// know them all, stops the subscribers and checks the invariant.
func finish(t *testing.T, d *deployment, token string, campaign int64, w *writers, subs []*subscriber, stopSubs func(), began time.Time) figures {
	t.Helper()
	w.stop()
	ended := time.Now()
	last := &writers{t: t, d: d, token: token, campaign: campaign, retry: true, acked: map[int64]bool{}, outcomes: map[string]int{}}
	last.write(0, writeReq{path: "comments/", body: map[string]string{"content": "the last comment"}, comment: true})
	if st := last.stats(); st.ok != 1 {
		t.Errorf("the last comment was not written: %v", st.failures)
	}
	var committed map[int64]string
	var err error
	for i := 0; i < 50; i++ {
		if committed, err = committedComments(d.running(i), campaign); err == nil {
			break
		}
		time.Sleep(backoff(i))
	}
	if err != nil {
		t.Fatalf("read the committed comments: %v", err)
	}
	// Up to a minute, but not 15 s past the last progress: a subscriber
	// that lost a comment would wait for it in vain.
	missing, progressed := -1, time.Now()
	caughtUp := waitFor(60*time.Second, func() bool {
		n := 0
		for _, s := range subs {
			n += s.missing(committed)
		}
		if n != missing {
			missing, progressed = n, time.Now()
		}
		return n == 0 || time.Since(progressed) > 15*time.Second
	}) && missing == 0
	f := figures{committed: len(committed), subs: len(subs), catchUp: time.Since(ended)}
	stopSubs()
	f.total = time.Since(began)
	if !caughtUp {
		t.Errorf("%d comments missing from subscribers %v after the writes ended", missing, time.Since(ended).Round(time.Millisecond))
	}
	for _, s := range subs {
		v := s.verdict(committed)
		st := s.stats()
		if s.sse {
			f.sse++
		} else {
			f.ws++
		}
		f.lost += v.lost
		f.dup += v.dup
		f.phantom += v.phantom
		f.events += st.events
		f.reloads += st.lostState
		f.recovered += st.recovered
		f.connects += st.connects
		f.gaps += st.gaps
		f.repeats += st.repeats
		f.epochJumps += st.epochJumps
		if v.lost+v.dup+v.phantom > 0 || len(st.problems) > 0 {
			f.problemSubs++
			if len(f.worst) < 5 {
				f.worst = append(f.worst, fmt.Sprintf("%s: lost %d (first %v), dup %d, phantom %d, %d events, last offset %d, connections %d, recovered %d/%d, close codes %v; problems: %s",
					s.name, v.lost, v.lostIDs[:min(len(v.lostIDs), 5)], v.dup, v.phantom, st.events, st.last, st.connects,
					st.recovered, st.lostState, st.closeCodes, strings.Join(st.problems[:min(len(st.problems), 3)], "; ")))
			}
		}
	}
	ws := w.stats()
	f.posts, f.ok, f.failed, f.retried, f.replayed = ws.writes, ws.ok, ws.failed, ws.retried, ws.replayed
	contents := map[string]int{}
	for _, c := range committed {
		contents[c]++
	}
	for _, n := range contents {
		f.doubled += n - 1
	}
	for id := range ws.acked {
		if _, ok := committed[id]; !ok {
			t.Errorf("comment %d was acknowledged (201) but is not in the database", id)
		}
	}
	return f
}

// assertInvariant fails the test unless every subscriber got exactly the
// committed comments, each event in its place.
func assertInvariant(t *testing.T, f figures) {
	t.Helper()
	if f.lost+f.dup+f.phantom > 0 {
		t.Errorf("invariant broken: lost %d, dup %d, phantom %d", f.lost, f.dup, f.phantom)
	}
	if f.gaps+f.repeats+f.epochJumps > 0 {
		t.Errorf("offsets broken: %d gaps, %d repeats, %d silent epoch changes", f.gaps, f.repeats, f.epochJumps)
	}
	if f.problemSubs > 0 {
		t.Errorf("%d subscribers saw problems; first ones:\n%s", f.problemSubs, strings.Join(f.worst, "\n"))
	}
}

// assertWritesKept fails the test unless a scenario whose writers send a
// POST again when it got no answer (writerConfig.retry, with its
// Idempotency-Key) lost nothing to its faults: every resume recovered, no
// POST failed and none was committed twice.
func assertWritesKept(t *testing.T, f figures, w *writers) {
	t.Helper()
	if f.reloads > 0 {
		t.Errorf("%d resumes answered recovered:false; want none", f.reloads)
	}
	if f.failed > 0 {
		t.Errorf("%d POSTs failed; want none: %v", f.failed, w.stats().failures)
	}
	if f.doubled > 0 {
		t.Errorf("%d writes were committed twice: a retried Idempotency-Key must not write again", f.doubled)
	}
}

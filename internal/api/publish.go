package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/heraldhq/herald/internal/apikey"
	"github.com/heraldhq/herald/internal/auth"
	"github.com/heraldhq/herald/internal/platform"
)

// Publishing: another backend sends events to herald's groups with an API
// key (POST /api/publish/). They are recorded like the events of herald's
// own writes (Platform.RecordExternalBatch), so they get offsets, history
// and resume, and reach clients only once committed.
const (
	// DefaultPublishMaxData bounds one event's data, in bytes.
	DefaultPublishMaxData = 64 << 10
	// DefaultPublishRate is the events per second one API key may publish.
	DefaultPublishRate = 100
	// DefaultPublishWait bounds how long a publish's answer waits for the
	// relay to number its events.
	DefaultPublishWait = 5 * time.Second
	// MaxPublishBatch bounds the events of one request.
	MaxPublishBatch = platform.MaxExternalBatch
	maxTypeLen      = 64
)

// PublishEvent is one event to publish: the group it goes to, its type and
// its data, a JSON object, which clients receive as they are.
type PublishEvent struct {
	Group string          `json:"group"`
	Type  string          `json:"type"`
	Data  json.RawMessage `json:"data"`
}

// PublishBatch is several events published at once, in one transaction.
type PublishBatch struct {
	Events []PublishEvent `json:"events"`
}

// publishRequest is the body of POST /api/publish/: one event, or a batch.
type publishRequest struct {
	PublishEvent
	Events []PublishEvent `json:"events"`
}

// PublishResult is where each published event stands in its group, in the
// order they were sent.
type PublishResult struct {
	Events []PublishedEvent `json:"events"`
}

// PublishedEvent is a recorded event's position: the offset and epoch
// clients receive it with. They are null only when the relay did not
// number the event within the answer's wait (DefaultPublishWait): it is
// recorded all the same and reaches clients once numbered.
type PublishedEvent struct {
	Group  string  `json:"group"`
	Offset *int64  `json:"offset"`
	Epoch  *string `json:"epoch"`
}

// apiKeyOf is the API key r was authenticated with.
func apiKeyOf(r *http.Request) (apikey.Key, bool) {
	k, ok := r.Context().Value(apiKeyKey).(apikey.Key)
	return k, ok
}

// authenticateKey resolves the API key in r's Authorization header. An
// unknown, revoked or malformed key gets one and the same answer.
func (s *Server) authenticateKey(r *http.Request) (*http.Request, error) {
	if len(r.Header.Values("Authorization")) == 0 {
		return r, problem(http.StatusUnauthorized, "not_authenticated", "send the API key as Authorization: Bearer hk_…")
	}
	notValid := problem(http.StatusUnauthorized, "api_key_not_valid", "the API key is not valid: unknown, revoked or malformed")
	tok := auth.TokenFromRequest(r, false)
	if tok == "" || s.keys == nil {
		return r, notValid
	}
	k, err := s.keys.Authenticate(r.Context(), tok)
	if errors.Is(err, apikey.ErrNotValid) {
		return r, notValid
	}
	if err != nil {
		return r, err
	}
	return r.WithContext(context.WithValue(r.Context(), apiKeyKey, k)), nil
}

// publish records the request's events and answers their positions.
func (s *Server) publish(w http.ResponseWriter, r *http.Request) error {
	key, ok := apiKeyOf(r)
	if !ok {
		return problem(http.StatusUnauthorized, "not_authenticated", "send the API key as Authorization: Bearer hk_…")
	}
	var in publishRequest
	if err := decode(w, r, &in); err != nil {
		return err
	}
	events, err := s.checkPublish(in)
	if err != nil {
		return err
	}
	for i, e := range events {
		if !s.groups.Allowed(key.Scopes, e.Group) {
			p := problem(http.StatusForbidden, "scope_not_allowed", fmt.Sprintf("this API key may not publish to %s", e.Group))
			p.Errors = map[string][]string{fieldName(in, i, "group"): {"not in this API key's scopes"}}
			return p
		}
	}
	if ok, wait := s.publishLimit.take(key.ID, len(events)); !ok {
		return throttled(w, wait, fmt.Sprintf("this API key published more than %s events a second", strconv.FormatFloat(s.publishLimit.rate, 'f', -1, 64)))
	}
	// Before the commit: the relay may number the events before this
	// waits for them, and is to keep what it tells meanwhile.
	defer s.waiters.begin()()
	recs, err := s.p.RecordExternalBatch(r.Context(), events)
	if err != nil {
		return err
	}
	// Committed: whatever happens next, the answer is a success, or a
	// retry would publish the events twice.
	writeJSON(w, http.StatusCreated, PublishResult{Events: s.positions(r.Context(), recs)})
	return nil
}

// positions waits until recs are numbered in their groups (their commit
// woke the relay, so this takes milliseconds) and returns their positions
// in recs' order. Events numbered in their own write (SQLite) carry their
// positions already. The relay of this process tells the others as it
// numbers them (Numbered), also when that came before this waited
// (positionWaiters.recent); the outbox is read only every positionPoll,
// for events another process's relay numbered. It gives up after
// publishWait, leaving out those not numbered, and waits on even if the
// client has gone: the answer is also kept for its Idempotency-Key.
func (s *Server) positions(ctx context.Context, recs []platform.Recorded) []PublishedEvent {
	out := make([]PublishedEvent, len(recs))
	index := make(map[int64]int, len(recs))
	ids := make([]int64, 0, len(recs))
	for i, rec := range recs {
		out[i].Group = rec.Group
		if rec.Offset > 0 {
			out[i].Offset, out[i].Epoch = &recs[i].Offset, &recs[i].Epoch
			continue
		}
		index[rec.ID] = i
		ids = append(ids, rec.ID)
	}
	if len(index) == 0 {
		return out
	}
	w := s.waiters.add(ids)
	defer s.waiters.remove(ids, w)
	fill := func(got map[int64]platform.Position) {
		for id, pos := range got {
			if i, ok := index[id]; ok {
				out[i].Offset, out[i].Epoch = &pos.Offset, &pos.Epoch
				delete(index, id)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.publishWait)
	defer cancel()
	fill(s.waiters.take(w)) // told before it waited
	poll := time.NewTimer(positionPoll)
	defer poll.Stop()
	for len(index) > 0 {
		select {
		case <-w.wake:
			fill(s.waiters.take(w))
		case <-poll.C:
			missing := make([]int64, 0, len(index))
			for id := range index {
				missing = append(missing, id)
			}
			got, err := s.p.Positions(ctx, missing)
			if err != nil && ctx.Err() == nil {
				s.log.WarnContext(ctx, "publish: read the positions of recorded events", "err", err)
			}
			fill(got)
			poll.Reset(positionPoll)
		case <-ctx.Done():
			return out
		}
	}
	return out
}

// positionPoll is how often a publish's answer reads the positions of its
// events that this process's relay has not told it of.
const positionPoll = 50 * time.Millisecond

// Numbered is told by the outbox relay of each event it numbered
// (relay.Options.Numbered), for the publishes waiting for their positions.
// It does not block.
func (s *Server) Numbered(id int64, group, epoch string, offset int64) {
	s.waiters.numbered(id, platform.Position{Group: group, Epoch: epoch, Offset: offset})
}

// positionWaiters are the publishes waiting for their events' positions,
// by outbox id.
type positionWaiters struct {
	// active counts the publishes between their commit's start and their
	// answer: while none is, numbered returns at once, so every other
	// event the relay numbers costs one atomic load here.
	active atomic.Int64

	mu   sync.Mutex
	byID map[int64]*positionWaiter
	// recent are the last recentNumbered positions nobody waited for: a
	// publish waits only once its commit has woken the relay, which may
	// number its events first. A ring, so its memory is fixed; a position
	// pushed out of it is read from the outbox (positionPoll).
	recent  map[int64]platform.Position
	ring    [recentNumbered]int64
	ringPos int
}

// recentNumbered bounds positionWaiters.recent: far more events than the
// relay numbers in the moment between a publish's commit and its wait.
const recentNumbered = 4096

type positionWaiter struct {
	got  map[int64]platform.Position // guarded by positionWaiters.mu
	wake chan struct{}               // signalled (buffer 1) when got grows
}

// begin marks a publish as under way until the returned func is called.
func (ws *positionWaiters) begin() (end func()) {
	ws.active.Add(1)
	return func() { ws.active.Add(-1) }
}

func (ws *positionWaiters) add(ids []int64) *positionWaiter {
	w := &positionWaiter{got: map[int64]platform.Position{}, wake: make(chan struct{}, 1)}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.byID == nil {
		ws.byID = map[int64]*positionWaiter{}
	}
	for _, id := range ids {
		if pos, ok := ws.recent[id]; ok {
			w.got[id] = pos
			delete(ws.recent, id)
			continue
		}
		ws.byID[id] = w
	}
	return w
}

func (ws *positionWaiters) remove(ids []int64, w *positionWaiter) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for _, id := range ids {
		if ws.byID[id] == w {
			delete(ws.byID, id)
		}
	}
}

// take returns what w was told since the last take.
func (ws *positionWaiters) take(w *positionWaiter) map[int64]platform.Position {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	got := w.got
	w.got = map[int64]platform.Position{}
	return got
}

func (ws *positionWaiters) numbered(id int64, pos platform.Position) {
	if ws.active.Load() == 0 {
		return
	}
	ws.mu.Lock()
	w := ws.byID[id]
	if w != nil {
		w.got[id] = pos
		delete(ws.byID, id)
	} else {
		if ws.recent == nil {
			ws.recent = make(map[int64]platform.Position, recentNumbered)
		}
		delete(ws.recent, ws.ring[ws.ringPos])
		ws.ring[ws.ringPos] = id
		ws.ringPos = (ws.ringPos + 1) % recentNumbered
		ws.recent[id] = pos
	}
	ws.mu.Unlock()
	if w != nil {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// fieldName names a field of the request's i-th event as the request
// wrote it: "group" in a single event, "events[i].group" in a batch.
func fieldName(in publishRequest, i int, field string) string {
	if in.Events == nil {
		return field
	}
	return fmt.Sprintf("events[%d].%s", i, field)
}

// checkPublish returns the request's events, checked, or a 400 naming
// every field that is wrong (by its index in a batch).
func (s *Server) checkPublish(in publishRequest) ([]platform.ExternalEvent, error) {
	single := in.Group != "" || in.Type != "" || in.Data != nil
	var list []PublishEvent
	switch {
	case in.Events != nil && single:
		return nil, fieldProblem("events", "send either group, type and data, or events, not both")
	case in.Events != nil:
		if len(in.Events) == 0 || len(in.Events) > MaxPublishBatch {
			return nil, fieldProblem("events", fmt.Sprintf("a batch holds 1 to %d events, not %d", MaxPublishBatch, len(in.Events)))
		}
		list = in.Events
	default:
		list = []PublishEvent{in.PublishEvent}
	}
	errs := map[string][]string{}
	out := make([]platform.ExternalEvent, len(list))
	for i, e := range list {
		bad := func(field, msg string) {
			name := fieldName(in, i, field)
			errs[name] = append(errs[name], msg)
		}
		if err := s.groups.Valid(e.Group); err != nil {
			bad("group", err.Error())
		}
		if why := checkType(e.Type); why != "" {
			bad("type", why)
		}
		data, why := s.checkData(e.Data)
		if why != "" {
			bad("data", why)
		}
		out[i] = platform.ExternalEvent{Group: e.Group, Type: e.Type, Data: data}
	}
	if len(errs) > 0 {
		p := problem(http.StatusBadRequest, "invalid", "the request has invalid fields")
		p.Errors = errs
		return nil, p
	}
	return out, nil
}

// checkType says what is wrong with an event type, "" if nothing: 1 to 64
// of a-z, 0-9, '_', '.' and '-', and none of herald's own types.
func checkType(t string) string {
	if t == "" || len(t) > maxTypeLen {
		return fmt.Sprintf("must be 1 to %d characters long", maxTypeLen)
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return "must be made of a-z, 0-9, '_', '.' and '-' only"
		}
	}
	if platform.ReservedType(t) {
		return fmt.Sprintf("%q is one of herald's own message types; choose another", t)
	}
	return ""
}

// checkData returns an event's data as clients will get it (compacted: one
// line, as an SSE data: field needs) or what is wrong with it.
func (s *Server) checkData(raw json.RawMessage) ([]byte, string) {
	trimmed := bytes.TrimLeft(raw, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, "must be a JSON object"
	}
	// Clients get data in WebSocket text frames, which must be UTF-8: one
	// invalid byte would make browsers drop every connection in the group.
	if !utf8.Valid(raw) {
		return nil, "must be valid UTF-8"
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return nil, "must be valid JSON"
	}
	if b.Len() > s.publishMaxData {
		return nil, fmt.Sprintf("is %d bytes long (as compact JSON); at most %d are allowed", b.Len(), s.publishMaxData)
	}
	return b.Bytes(), ""
}

// keyLimiter is a token bucket per API key: rate events a second, bursts
// of burst. It lives in this process: with several processes each allows
// the rate.
type keyLimiter struct {
	rate, burst float64 // rate 0: no limit
	now         func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// maxBuckets bounds the keys tracked; only authenticated keys get one, so
// this is far more than a deployment has.
const maxBuckets = 10_000

// newKeyLimiter allows rate events a second per key, in bursts of twice
// that but at least a whole batch, so that every valid request can pass.
// rate < 0 is no limit.
func newKeyLimiter(rate int) *keyLimiter {
	l := &keyLimiter{now: time.Now, buckets: map[string]*bucket{}}
	if rate > 0 {
		l.rate, l.burst = float64(rate), math.Max(2*float64(rate), MaxPublishBatch)
	}
	return l
}

// take takes n tokens of key's bucket, or says how long until there are n.
func (l *keyLimiter) take(key string, n int) (bool, time.Duration) {
	if l.rate == 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			l.prune(now)
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	}
	b.tokens = math.Min(l.burst, b.tokens+now.Sub(b.at).Seconds()*l.rate)
	b.at = now
	if b.tokens < float64(n) {
		return false, time.Duration((float64(n) - b.tokens) / l.rate * float64(time.Second))
	}
	b.tokens -= float64(n)
	return true, 0
}

// prune drops the buckets that are full again: they are what a new one
// would be.
func (l *keyLimiter) prune(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.at).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
}

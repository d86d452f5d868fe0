package bench

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// QuestFigures is the outcome of the personal and apps scenarios: REST
// writes of the quest flow, each expected to reach exactly one WebSocket
// client, and the time from sending the write to that client reading it.
type QuestFigures struct {
	Users      int `json:"users,omitempty"`      // personal
	Creators   int `json:"creators,omitempty"`   // apps
	Applicants int `json:"applicants,omitempty"` // apps
	// SetupS is how long creating the accounts (argon2id hashing on the
	// server), quests and applications took.
	SetupS  float64         `json:"setup_s"`
	Connect *ConnectFigures `json:"connect"`

	TargetRate   float64 `json:"target_rate"`
	DurationS    float64 `json:"duration_s"`
	Planned      int     `json:"planned"`
	Writes       int     `json:"writes"`  // succeeded, each owing one event
	Failed       int     `json:"failed"`  // refused or failed
	Skipped      int     `json:"skipped"` // not sent in time, or no write possible
	AchievedRate float64 `json:"achieved_rate"`
	RESTLimited  bool    `json:"rest_limited"`
	MaxSendLagMs float64 `json:"max_send_lag_ms"`
	// Received events matched to their write; Lost are writes whose event
	// never came; Unexpected events matched no write; Misrouted came on
	// another user's connection.
	Expected   int64   `json:"expected"`
	Received   int64   `json:"received"`
	Lost       int64   `json:"lost"`
	Unexpected int64   `json:"unexpected"`
	Misrouted  int64   `json:"misrouted"`
	DrainS     float64 `json:"drain_s"`
	// Latency is from just before the REST request was sent to the receipt;
	// ByType splits it by event type; REST is the request's own time.
	Latency   Latency            `json:"latency"`
	ByType    map[string]Latency `json:"by_type,omitempty"`
	REST      Latency            `json:"rest"`
	ServerCPU *ProcessFigures    `json:"server_cpu,omitempty"`
	BenchCPU  *ProcessFigures    `json:"bench_cpu,omitempty"`
	Errors    []string           `json:"errors,omitempty"`
	Closed    map[string]int     `json:"close_codes,omitempty"`
	// personal: Seeded when the users were made in the database (--seed);
	// with a Redis layer, its memory before and after the users connected
	// (each one's user_<id> group is a channel subscription) and its CPU
	// during the writes.
	Seeded      bool            `json:"seeded,omitempty"`
	Generators  int             `json:"generators,omitempty"`
	RedisBefore *RedisInfo      `json:"redis_before,omitempty"`
	RedisAfter  *RedisInfo      `json:"redis_after,omitempty"`
	RedisCPU    *ProcessFigures `json:"redis_cpu,omitempty"`
	PostgresCPU *ProcessFigures `json:"postgres_cpu,omitempty"` // every postgres process's on this machine
}

// questFlow matches quest events to the writes that caused them.
type questFlow struct {
	e       *env
	mu      sync.Mutex
	pending map[string]pend
	closes  map[string]int
	hist    Histogram
	rest    Histogram
	types   map[string]*Histogram
	recv    atomic.Int64
	unexp   atomic.Int64
	misrout atomic.Int64
	// onReceipt runs for a matched event (personal frees the user for the
	// next write).
	onReceipt func(conn int32)
}

type pend struct {
	sent int64 // unix ns
	conn int32
}

const (
	evNew    = "new_application"
	evUpdate = "application_update"
)

func newQuestFlow(e *env) *questFlow {
	return &questFlow{e: e, pending: map[string]pend{}, closes: map[string]int{},
		types: map[string]*Histogram{evNew: {}, evUpdate: {}}}
}

func newKey(questTitle, applicant string) string { return "n|" + questTitle + "|" + applicant }
func updateKey(appID int64, status string) string {
	return "u|" + strconv.FormatInt(appID, 10) + "|" + status
}

// expect records, just before a write is sent, the event it must cause.
func (q *questFlow) expect(key string, conn int) {
	q.mu.Lock()
	q.pending[key] = pend{sent: time.Now().UnixNano(), conn: int32(conn)}
	q.mu.Unlock()
}

// forget drops an expectation whose write failed.
func (q *questFlow) forget(key string) {
	q.mu.Lock()
	delete(q.pending, key)
	q.mu.Unlock()
}

func (q *questFlow) outstanding() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending)
}

// strAfter returns the JSON string value following key (`"status":"`);
// the bench's own names and statuses need no unescaping.
func strAfter(head []byte, key string) (string, bool) {
	i := bytes.Index(head, []byte(key))
	if i < 0 {
		return "", false
	}
	rest := head[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return "", false
	}
	return string(rest[:j]), true
}

func (q *questFlow) message(c *client, head []byte, n int) {
	q.receive(c.id, head, time.Now().UnixNano())
}

// receive matches the message head, read on connection conn at now (unix
// ns), to its write.
func (q *questFlow) receive(conn int32, head []byte, now int64) {
	var key, typ string
	switch {
	case isType(head, evNew):
		title, ok1 := strAfter(head, `"quest_title":"`)
		applicant, ok2 := strAfter(head, `"applicant":"`)
		if !ok1 || !ok2 {
			q.unexp.Add(1)
			return
		}
		key, typ = newKey(title, applicant), evNew
	case isType(head, evUpdate):
		id, ok1 := intAfter(head, `"application_id":`)
		status, ok2 := strAfter(head, `"status":"`)
		if !ok1 || !ok2 {
			q.unexp.Add(1)
			return
		}
		key, typ = updateKey(id, status), evUpdate
	default:
		q.unexp.Add(1)
		return
	}
	q.mu.Lock()
	p, ok := q.pending[key]
	if !ok {
		q.mu.Unlock()
		q.unexp.Add(1)
		return
	}
	if p.conn != conn {
		q.misrout.Add(1)
	}
	// Counted before the entry leaves pending, so a reader that sees
	// nothing outstanding sees every receipt counted.
	d := time.Duration(now - p.sent)
	q.hist.Record(d)
	q.types[typ].Record(d)
	q.recv.Add(1)
	q.e.deliveries.Add(1)
	delete(q.pending, key)
	q.mu.Unlock()
	if q.onReceipt != nil {
		q.onReceipt(p.conn)
	}
}

func (q *questFlow) closed(c *client, code int, err error) {
	if c.shut.Load() {
		return
	}
	q.mu.Lock()
	q.closes[strconv.Itoa(code)]++
	q.mu.Unlock()
}

// writeLoop runs writes at rate for dur: next, called on schedule, returns
// the write to run on a worker (nil: nothing to do now, counted skipped).
func (q *questFlow) writeLoop(ctx context.Context, f *QuestFigures, rate float64, dur time.Duration, next func() func() error) {
	e, o := q.e, q.e.o
	f.TargetRate, f.DurationS, f.Planned = rate, dur.Seconds(), int(math.Ceil(rate*dur.Seconds()))
	var (
		wg              sync.WaitGroup
		mu              sync.Mutex
		writes, failed  int
		errs            []string
		maxLag          time.Duration
		jobs            = make(chan func() error, o.Publishers)
		start           = time.Now()
		lastD, lastTime = e.deliveries.Load(), start
	)
	e.setPhase("writes", func() string {
		d, now := e.deliveries.Load(), time.Now()
		per := float64(d-lastD) / max(now.Sub(lastTime).Seconds(), 1e-3)
		lastD, lastTime = d, now
		mu.Lock()
		w, fl := writes, failed
		mu.Unlock()
		return fmt.Sprintf("%s %g writes/s: %3.0fs %d writes (%d failed), %d events received (%.0f/s), %d awaited, p99 %s",
			o.Scenario, rate, time.Since(start).Seconds(), w, fl, q.recv.Load(), per, q.outstanding(), msText(ms(q.hist.Quantile(0.99))))
	})
	for range min(o.Publishers, 64) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for job := range jobs {
				t0 := time.Now()
				err := job()
				q.rest.Record(time.Since(t0))
				mu.Lock()
				if err != nil {
					failed++
					if len(errs) < 5 {
						errs = append(errs, err.Error())
					}
				} else {
					writes++
					e.events.Add(1)
				}
				mu.Unlock()
			}
		}()
	}
	end := start.Add(dur)
	scheduled, skipped := 0, 0
loop:
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
		job := next()
		if job == nil {
			skipped++
			continue
		}
		select {
		case jobs <- job:
			scheduled++
			maxLag = max(maxLag, time.Since(at))
		case <-time.After(time.Until(end)):
			break loop
		case <-ctx.Done():
			break loop
		}
	}
	close(jobs)
	wg.Wait()
	f.Writes, f.Failed, f.Errors = writes, failed, errs
	f.Skipped = f.Planned - scheduled
	f.AchievedRate = round3(float64(writes) / dur.Seconds())
	f.RESTLimited = f.AchievedRate < 0.95*rate
	f.MaxSendLagMs = ms(maxLag)
	_ = skipped
}

// finish waits for the last events and fills in the figures.
func (q *questFlow) finish(ctx context.Context, f *QuestFigures) {
	drain := time.Now()
	for q.outstanding() > 0 && time.Since(drain) < q.e.o.Drain.D() && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	f.DrainS = round3(time.Since(drain).Seconds())
	f.Expected = int64(f.Writes)
	f.Received = q.recv.Load()
	f.Lost = int64(q.outstanding())
	f.Unexpected = q.unexp.Load()
	f.Misrouted = q.misrout.Load()
	f.Latency = q.hist.Summary(true)
	f.REST = q.rest.Summary(false)
	f.ByType = map[string]Latency{}
	for t, h := range q.types {
		if h.Count() > 0 {
			f.ByType[t] = h.Summary(false)
		}
	}
	q.mu.Lock()
	if len(q.closes) > 0 {
		f.Closed = q.closes
	}
	q.mu.Unlock()
}

// applyAll has every user in users apply to quest, a few at a time.
func (e *env) applyAll(ctx context.Context, users []user, quest int64) ([]int64, error) {
	ids := make([]int64, len(users))
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs error
	)
	sem := make(chan struct{}, 8)
	for i, u := range users {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			id, err := e.apply(ctx, u, quest)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && errs == nil {
				errs = err
			}
			ids[i] = id
		}()
	}
	wg.Wait()
	return ids, errs
}

func applicationsPath(token string) string { return "/ws/applications/?token=" + token }

// runPersonal: N users each on /ws/applications/ (their own user_<id>
// group); the quest's creator approves and rejects their applications in
// turn, each change an application_update to that one user.
func (e *env) runPersonal(ctx context.Context) error {
	o := e.o
	f := &QuestFigures{Users: o.Conns}
	e.res.Personal = f
	t0 := time.Now()
	creator, err := e.newUser(ctx, "bench"+e.runID+"creator")
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	title := "bench" + e.runID + "personal"
	quest, err := e.newQuest(ctx, creator, title)
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	var users []user
	var apps []int64
	if o.Seed {
		f.Seeded = true
		users, apps, err = e.seedApplicants(ctx, "bench"+e.runID+"u", o.Conns, quest)
		if err != nil {
			return fmt.Errorf("setup: %w", err)
		}
	} else {
		if users, err = e.newUsers(ctx, "bench"+e.runID+"u", o.Conns); err != nil {
			return fmt.Errorf("setup: %w", err)
		}
		if apps, err = e.applyAll(ctx, users, quest); err != nil {
			return fmt.Errorf("setup: apply: %w", err)
		}
	}
	f.SetupS = round3(time.Since(t0).Seconds())
	how := "registered and signed in"
	if o.Seed {
		how = "made in the database with tokens signed by the servers' secret"
	}
	e.printf("setup: %d users %s, each applied to one quest, in %.1fs\n", len(users), how, f.SetupS)

	q := newQuestFlow(e)
	busy := make([]atomic.Bool, len(users))
	q.onReceipt = func(conn int32) { busy[conn].Store(false) }
	f.RedisBefore = e.redisInfo(ctx)
	var clients []*client
	var cf *ConnectFigures
	up := make([]bool, len(users))
	if o.Generators > 1 {
		f.Generators = o.Generators
		paths := make([]string, len(users))
		for i, u := range users {
			paths[i] = applicationsPath(u.Token)
		}
		// Set before the children start: a receipt may come at once.
		e.gen = &generators{receipt: func(r genReply) { q.receive(r.Conn, []byte(r.Head), r.At) }}
		if cf, up, err = e.connectRemote(ctx, "connecting users", genSpec{N: len(users), Paths: paths, Handler: genQuest}); err != nil {
			return err
		}
	} else {
		clients, cf = e.connect(ctx, connectSpec{label: "connecting users", n: len(users), rate: o.ConnectRate,
			path: func(i int) string { return applicationsPath(users[i].Token) }, h: q})
		for i, c := range clients {
			up[i] = c != nil
		}
	}
	f.Connect = cf
	e.printf("users: %s\n", connectLine(cf))
	defer e.closeAll(clients)
	if cf.Connected == 0 {
		return fmt.Errorf("no user could connect: %v", cf.Errors)
	}
	if err := sleep(ctx, 500*time.Millisecond); err != nil { // the joins follow the upgrade
		return err
	}
	if f.RedisAfter = e.redisInfo(ctx); f.RedisBefore != nil && f.RedisAfter != nil {
		e.printf("redis: %d pub/sub channels (%+d), used_memory %+d B (%.0f B per user connected)\n", f.RedisAfter.PubsubChannels,
			f.RedisAfter.PubsubChannels-f.RedisBefore.PubsubChannels, f.RedisAfter.UsedBytes-f.RedisBefore.UsedBytes,
			float64(f.RedisAfter.UsedBytes-f.RedisBefore.UsedBytes)/float64(cf.Connected))
	}
	status := make([]string, len(users)) // last status set
	next := 0
	srvCPU, benchCPU, redisCPU, pgCPU := e.serverCPU(), e.benchCPU(), e.redisCPU(ctx), startPostgresCPU()
	e.profile(ctx, "cpu-writes.pprof", o.Duration.D())
	q.writeLoop(ctx, f, o.Rate, o.Duration.D(), func() func() error {
		for tries := 0; tries < len(users); tries++ {
			i := next
			next = (next + 1) % len(users)
			if !up[i] || busy[i].Load() {
				continue
			}
			st := "approved"
			if status[i] == "approved" {
				st = "rejected"
			}
			status[i] = st
			busy[i].Store(true)
			app := apps[i]
			return func() error {
				key := updateKey(app, st)
				q.expect(key, i)
				if err := e.setStatus(ctx, creator, app, st); err != nil {
					q.forget(key)
					busy[i].Store(false)
					return err
				}
				return nil
			}
		}
		return nil
	})
	q.finish(ctx, f)
	f.BenchCPU = benchCPU.stop()
	f.ServerCPU = srvCPU.stop()
	f.RedisCPU, f.PostgresCPU = redisCPU.stop(), pgCPU.stop()
	if e.gen != nil {
		if reps, err := e.gen.call(ctx, genReq{Op: "codes"}, 0); err == nil {
			if codes, err := mergeCodes(reps); err != nil {
				e.note("disconnects by close code: %v", err)
			} else if len(codes) > 0 {
				f.Closed = codes
			}
		}
	}
	e.latencyChart("latency.svg", fmt.Sprintf("application_update latency, %d users, %g writes/s (REST send → WebSocket receipt)", len(users), o.Rate), f.Latency)
	e.timelineChart("throughput.svg", "Events received per second", "events/s", func(p TimelinePoint) float64 { return float64(p.Deliveries) })
	return ctx.Err()
}

// runApps: the quest flow of seed 000 — creators and applicants on
// /ws/applications/; applicants apply (new_application to the creator),
// creators approve or reject (application_update to the applicant).
func (e *env) runApps(ctx context.Context) error {
	o := e.o
	f := &QuestFigures{Creators: o.Creators, Applicants: o.Applicants}
	e.res.Apps = f
	t0 := time.Now()
	creators, err := e.newUsers(ctx, "bench"+e.runID+"c", o.Creators)
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	applicants, err := e.newUsers(ctx, "bench"+e.runID+"a", o.Applicants)
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	titles := make([]string, len(creators))
	quests := make([]int64, len(creators))
	for i, c := range creators {
		titles[i] = "bench" + e.runID + "q" + strconv.Itoa(i)
		if quests[i], err = e.newQuest(ctx, c, titles[i]); err != nil {
			return fmt.Errorf("setup: %w", err)
		}
	}
	f.SetupS = round3(time.Since(t0).Seconds())
	e.printf("setup: %d creators with a quest each and %d applicants, in %.1fs\n", len(creators), len(applicants), f.SetupS)

	q := newQuestFlow(e)
	nc := len(creators)
	// Connections 0..C-1 are the creators, C.. the applicants; a creator
	// connecting after creating the quest joins its group at once.
	clients, cf := e.connect(ctx, connectSpec{label: "connecting creators and applicants", n: nc + len(applicants), rate: o.ConnectRate,
		path: func(i int) string {
			if i < nc {
				return applicationsPath(creators[i].Token)
			}
			return applicationsPath(applicants[i-nc].Token)
		}, h: q})
	f.Connect = cf
	e.printf("clients: %s\n", connectLine(cf))
	defer e.closeAll(clients)
	if cf.Connected < nc+len(applicants) {
		return fmt.Errorf("only %d of %d clients connected: %v", cf.Connected, nc+len(applicants), cf.Errors)
	}
	if err := sleep(ctx, 500*time.Millisecond); err != nil {
		return err
	}

	type application struct {
		id      int64
		quest   int // creator index
		appl    int // applicant index
		status  string
		decided bool
	}
	var (
		mu        sync.Mutex
		undecided []*application // applied, awaiting a decision
		decided   []*application // may be flipped when no pair is left to apply
		pair      int
		tick      int
	)
	rng := rand.New(rand.NewPCG(1, 2))
	srvCPU, benchCPU := e.serverCPU(), startCPU()
	e.profile(ctx, "cpu-writes.pprof", o.Duration.D())
	q.writeLoop(ctx, f, o.Rate, o.Duration.D(), func() func() error {
		mu.Lock()
		defer mu.Unlock()
		tick++
		canApply := pair < nc*len(applicants)
		if len(undecided) > 0 && (tick%2 == 0 || !canApply) {
			a := undecided[0]
			undecided = undecided[1:]
			st := "approved"
			if rng.IntN(2) == 0 {
				st = "rejected"
			}
			return decide(ctx, e, q, creators[a.quest], a.id, st, nc+a.appl, func(ok bool) {
				mu.Lock()
				defer mu.Unlock()
				if ok {
					a.status, a.decided = st, true
					decided = append(decided, a)
				}
			})
		}
		if canApply {
			p := pair
			pair++
			ai, qi := p%len(applicants), (p/len(applicants))%nc
			return func() error {
				key := newKey(titles[qi], applicants[ai].Name)
				q.expect(key, qi)
				id, err := e.apply(ctx, applicants[ai], quests[qi])
				if err != nil {
					q.forget(key)
					return err
				}
				mu.Lock()
				undecided = append(undecided, &application{id: id, quest: qi, appl: ai, status: "pending"})
				mu.Unlock()
				return nil
			}
		}
		if len(decided) > 0 { // every pair applied: flip decisions
			a := decided[0]
			decided = decided[1:]
			st := "approved"
			if a.status == "approved" {
				st = "rejected"
			}
			return decide(ctx, e, q, creators[a.quest], a.id, st, nc+a.appl, func(ok bool) {
				mu.Lock()
				defer mu.Unlock()
				if ok {
					a.status = st
				}
				decided = append(decided, a)
			})
		}
		return nil
	})
	q.finish(ctx, f)
	f.BenchCPU = benchCPU.stop()
	f.ServerCPU = srvCPU.stop()
	e.latencyChart("latency.svg", fmt.Sprintf("Quest flow latency, %d creators + %d applicants, %g writes/s (REST send → WebSocket receipt)", nc, len(applicants), o.Rate), f.Latency)
	e.timelineChart("throughput.svg", "Events received per second", "events/s", func(p TimelinePoint) float64 { return float64(p.Deliveries) })
	return ctx.Err()
}

// decide is a creator's approve/reject write, expected on the applicant's
// connection; done reports whether it went through.
func decide(ctx context.Context, e *env, q *questFlow, creator user, appID int64, status string, conn int, done func(bool)) func() error {
	return func() error {
		key := updateKey(appID, status)
		q.expect(key, conn)
		err := e.setStatus(ctx, creator, appID, status)
		if err != nil {
			q.forget(key)
		}
		done(err == nil)
		return err
	}
}

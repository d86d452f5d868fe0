package bench

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"
)

// Resume modes: how the clients of the resume scenario come back.
const (
	// ResumeReconnect: every client reconnects from scratch (v1) and
	// receives a full campaign_data snapshot.
	ResumeReconnect = "reconnect"
	// ResumeV2: clients speak protocol v2, keep the position (epoch and
	// offset) of the last event they read, and reconnect with
	// ?v=2&resume=campaign_<id>:<epoch>:<offset>; the events published while
	// they were away are replayed, then {"type":"subscribed"} says they are
	// current, with no snapshot.
	ResumeV2 = "v2"
)

// ResumeRound is one drop-and-reconnect of every client.
type ResumeRound struct {
	Clients int `json:"clients"`
	// AllBackS is the time from the start of the mass reconnect to the last
	// client being current again: holding its campaign_data (reconnect), or
	// having had the missed events replayed and its subscribed message (v2).
	// Connect has the per-client latencies, measured from the same moment.
	AllBackS float64         `json:"all_back_s"`
	Connect  *ConnectFigures `json:"connect"`
	// v2 only: events published while the clients were away (Missed, each
	// owed to every client); replayed and missing ones; clients told
	// recovered:true or false; campaign_data snapshots sent anyway.
	Missed       int   `json:"missed,omitempty"`
	Replayed     int64 `json:"replayed,omitempty"`
	ReplayLost   int64 `json:"replay_lost,omitempty"`
	Recovered    int   `json:"recovered,omitempty"`
	NotRecovered int   `json:"not_recovered,omitempty"`
	Snapshots    int64 `json:"snapshots,omitempty"`
	// ServerCPU and BenchCPU are the processes' CPU during the round.
	ServerCPU *ProcessFigures `json:"server_cpu,omitempty"`
	BenchCPU  *ProcessFigures `json:"bench_cpu,omitempty"`
}

// ResumeFigures is the resume scenario's outcome.
type ResumeFigures struct {
	Mode       string          `json:"mode"`
	CampaignID int64           `json:"campaign_id"`
	Connect    *ConnectFigures `json:"connect"`
	Rounds     []ResumeRound   `json:"rounds"`
}

// v2pos is what a v2 client knows and went through in the current round.
type v2pos struct {
	epoch     atomic.Pointer[string]
	offset    atomic.Int64
	events    atomic.Int64 // events read since the round's reset
	snapshots atomic.Int64
	subAt     atomic.Int64 // unix ns of the subscribed message, 0 before
	recovered atomic.Bool
}

// v2handler tracks positions of v2 campaign clients.
type v2handler struct {
	pos   []v2pos
	group string
	subs  atomic.Int64 // subscribed messages this round
}

func (h *v2handler) message(c *client, head []byte, n int) {
	p := &h.pos[c.id]
	switch {
	case isType(head, "subscribed"):
		p.recovered.Store(bytes.Contains(head, []byte(`"recovered":true`)))
		p.subAt.Store(time.Now().UnixNano())
		h.subs.Add(1)
	case isType(head, "campaign_data"):
		p.snapshots.Add(1)
	case isType(head, "comment"):
		// v2 frames end with ,"group":G,"offset":N,"epoch":E}
		i := bytes.LastIndex(head, []byte(`,"group":"`+h.group+`","offset":`))
		if i < 0 {
			return
		}
		off, ok := intAfter(head[i:], `"offset":`)
		epoch, ok2 := strAfter(head[i:], `"epoch":"`)
		if !ok || !ok2 {
			return
		}
		if cur := p.epoch.Load(); cur == nil || *cur != epoch {
			p.epoch.Store(&epoch)
		}
		p.offset.Store(off)
		p.events.Add(1)
	}
}

func (h *v2handler) closed(*client, int, error) {}

// query is the resume position of client i.
func (h *v2handler) query(i int) string {
	p := &h.pos[i]
	e := p.epoch.Load()
	if e == nil {
		return "v=2"
	}
	return "v=2&resume=" + url.QueryEscape(h.group+":"+*e+":"+strconv.FormatInt(p.offset.Load(), 10))
}

func (h *v2handler) reset() {
	h.subs.Store(0)
	for i := range h.pos {
		h.pos[i].events.Store(0)
		h.pos[i].snapshots.Store(0)
		h.pos[i].subAt.Store(0)
	}
}

func (e *env) runResume(ctx context.Context) error {
	o := e.o
	f := &ResumeFigures{Mode: o.ResumeMode}
	e.res.Resume = f
	v2 := o.ResumeMode == ResumeV2
	if !v2 {
		e.note("resume mode %q: every client reconnects from scratch and receives a full campaign_data snapshot; --resume v2 measures protocol v2 resume positions instead", o.ResumeMode)
	}
	owner, err := e.newUser(ctx, "bench"+e.runID+"owner")
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	if f.CampaignID, err = e.newCampaign(ctx, owner, "bench resume "+e.runID, o.SnapshotBytes); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	commentsPath := "/api/campaigns/" + strconv.FormatInt(f.CampaignID, 10) + "/comments/"
	tok := ""
	if o.Token {
		tok = owner.Token
	}
	hv2 := &v2handler{pos: make([]v2pos, o.Conns), group: "campaign_" + strconv.FormatInt(f.CampaignID, 10)}
	var h handler = nopHandler{}
	if v2 {
		h = hv2
	}
	path := func(i int, resume bool) string {
		p := campaignPath(f.CampaignID, tok)
		q := ""
		if v2 {
			q = "v=2"
			if resume {
				q = hv2.query(i)
			}
		}
		if q != "" {
			if tok == "" {
				p += "?" + q
			} else {
				p += "&" + q
			}
		}
		return p
	}
	clients, cf := e.connect(ctx, connectSpec{label: "connecting", n: o.Conns, rate: o.ConnectRate,
		path: func(i int) string { return path(i, false) }, snapshot: true, h: h})
	f.Connect = cf
	e.printf("clients: %s\n", connectLine(cf))
	defer func() { e.closeAll(clients) }()
	if cf.Connected == 0 {
		return fmt.Errorf("no client could connect: %v", cf.Errors)
	}
	// post publishes one comment through REST.
	post := func(text string) error {
		_, err := e.rest.call(ctx, "POST", commentsPath, owner.Token, []byte(`{"content":"`+text+`"}`), http.StatusCreated)
		return err
	}
	var marks []Mark
	for r := range o.Rounds {
		if err := sleep(ctx, o.Pause.D()); err != nil {
			return err
		}
		var ids []int
		for i, c := range clients {
			if c != nil {
				ids = append(ids, i)
			}
		}
		if v2 {
			// Every client learns its position from one event first.
			hv2.reset()
			if err := post(fmt.Sprintf("position %d", r+1)); err != nil {
				return fmt.Errorf("round %d: %w", r+1, err)
			}
			if err := e.waitFor(ctx, "clients reading the position event", 10*time.Second, func() (bool, string) {
				n := 0
				for _, i := range ids {
					if hv2.pos[i].events.Load() > 0 {
						n++
					}
				}
				return n == len(ids), fmt.Sprintf("%d/%d have it", n, len(ids))
			}); err != nil {
				return fmt.Errorf("round %d: %w", r+1, err)
			}
		}
		srvCPU, benchCPU := e.serverCPU(), startCPU()
		marks = append(marks, Mark{At: time.Since(e.start).Seconds(), Label: fmt.Sprintf("round %d", r+1)})
		if r == o.Rounds-1 {
			e.profile(ctx, "cpu-reconnect.pprof", o.ProfileFor.D())
		}
		e.closeAll(clients)
		round := ResumeRound{Clients: len(ids)}
		if v2 {
			// What the clients miss while they are away.
			hv2.reset()
			round.Missed = o.Missed
			before := e.metrics(ctx)
			for k := range o.Missed {
				if err := post(fmt.Sprintf("missed %d of round %d", k+1, r+1)); err != nil {
					return fmt.Errorf("round %d: %w", r+1, err)
				}
			}
			// A write is committed when its POST returns and published a
			// moment later; the clients come back once the missed events are
			// in the history, or the replay would be measured short of them.
			if before != nil {
				_ = e.waitFor(ctx, fmt.Sprintf("round %d: missed events published", r+1), 10*time.Second, func() (bool, string) {
					d := delta(before, e.metrics(ctx), "herald_events_published_total")
					return d >= float64(o.Missed), fmt.Sprintf("%.0f/%d published", d, o.Missed)
				})
			}
		}
		back0 := time.Now()
		rctx, cancel := context.WithTimeout(ctx, o.Duration.D())
		back, rf := e.connect(rctx, connectSpec{label: fmt.Sprintf("round %d reconnecting", r+1), n: len(ids),
			path: func(k int) string { return path(ids[k], true) }, id: func(k int) int { return ids[k] },
			snapshot: !v2, h: h, since: back0})
		round.Connect, round.AllBackS = rf, rf.ElapsedS
		if v2 {
			// Current again once the subscribed message came.
			_ = e.waitFor(rctx, fmt.Sprintf("round %d: replay and subscribed", r+1), o.Duration.D(), func() (bool, string) {
				n := hv2.subs.Load()
				return n >= int64(rf.Connected), fmt.Sprintf("%d/%d subscribed", n, rf.Connected)
			})
			var hist Histogram
			var last int64
			for _, i := range ids {
				p := &hv2.pos[i]
				at := p.subAt.Load()
				if at == 0 {
					continue
				}
				hist.Record(time.Duration(at - back0.UnixNano()))
				last = max(last, at)
				if p.recovered.Load() {
					round.Recovered++
					round.ReplayLost += max(0, int64(o.Missed)-p.events.Load())
				} else {
					round.NotRecovered++
				}
				round.Replayed += p.events.Load()
				round.Snapshots += p.snapshots.Load()
			}
			rf.Latency = hist.Summary(true)
			round.AllBackS = 0
			if last > 0 {
				round.AllBackS = round3(time.Duration(last - back0.UnixNano()).Seconds())
			}
			if hist.Count() < uint64(len(ids)) {
				round.AllBackS = 0
			}
		}
		cancel()
		round.BenchCPU = benchCPU.stop()
		round.ServerCPU = srvCPU.stop()
		if rf.Connected < len(ids) {
			round.AllBackS = 0 // not all came back
		}
		f.Rounds = append(f.Rounds, round)
		clients = make([]*client, len(clients))
		for k, c := range back {
			clients[ids[k]] = c
		}
		e.printf("round %d: %s\n", r+1, roundLine(round))
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if n := len(f.Rounds); n > 0 {
		what := "campaign_data again"
		if v2 {
			what = "replay and subscribed"
		}
		e.latencyChart("latency.svg", fmt.Sprintf("Mass reconnect, %d clients at once (reconnect start → %s)", f.Rounds[n-1].Clients, what), f.Rounds[n-1].Connect.Latency)
	}
	e.timelineChart("throughput.svg", "Connections per second", "connections/s", func(p TimelinePoint) float64 { return float64(p.Connects) }, marks...)
	return nil
}

// waitFor polls cond until it holds, ctx ends or within passes.
func (e *env) waitFor(ctx context.Context, what string, within time.Duration, cond func() (bool, string)) error {
	deadline := time.Now().Add(within)
	var status atomic.Pointer[string]
	status.Store(new(string))
	e.setPhase(what, func() string { return what + ": " + *status.Load() })
	for {
		ok, s := cond()
		status.Store(&s)
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: still not done after %v (%s)", what, within, s)
		}
		if err := sleep(ctx, 5*time.Millisecond); err != nil {
			return err
		}
	}
}

func roundLine(rd ResumeRound) string {
	back := fmt.Sprintf("all %d current again in %.3fs", rd.Clients, rd.AllBackS)
	if rd.AllBackS == 0 {
		back = fmt.Sprintf("not all of %d came back (%d connected)", rd.Clients, rd.Connect.Connected)
	}
	s := back + "; per client: " + latLine(rd.Connect.Latency)
	if rd.Missed > 0 {
		s += fmt.Sprintf("; %d missed events each: %d replayed, %d lost, %d recovered, %d not recovered, %d snapshots",
			rd.Missed, rd.Replayed, rd.ReplayLost, rd.Recovered, rd.NotRecovered, rd.Snapshots)
	}
	if rd.Connect.Failed > 0 {
		s += "; " + connectLine(rd.Connect)
	}
	return s
}

package bench

import (
	"context"
	"fmt"
	"time"
)

// ResumeReconnect is the resume scenario's only mode today: every client
// drops and connects again from scratch, receiving a full campaign_data
// snapshot. herald does not serve protocol v2 yet, so there are no offsets
// to resume from; a v2 mode will present each client's last positions
// through a resumeState (see below) and measure the replay instead.
const ResumeReconnect = "reconnect"

// resumeState is what a client presents when it comes back: the query it
// adds to its URL and whether it expects a snapshot first. The reconnect
// mode presents nothing and expects a snapshot; a protocol v2 mode will
// return ?v=2&resume=<group:offset:epoch> from the positions the client
// read and expect the missed events instead.
type resumeState interface {
	query(i int) string
	snapshot() bool
}

type reconnectState struct{}

func (reconnectState) query(int) string { return "" }
func (reconnectState) snapshot() bool   { return true }

// ResumeRound is one drop-and-reconnect of every client.
type ResumeRound struct {
	Clients int `json:"clients"`
	// AllBackS is the time from dropping every connection to the last
	// client having its campaign_data again; Connect has the per-client
	// latencies, measured from the same drop.
	AllBackS float64         `json:"all_back_s"`
	Connect  *ConnectFigures `json:"connect"`
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

func (e *env) runResume(ctx context.Context) error {
	o := e.o
	f := &ResumeFigures{Mode: o.ResumeMode}
	e.res.Resume = f
	e.note("resume mode %q: protocol v2 resume positions are not served by herald yet, so every client reconnects from scratch and receives a full campaign_data snapshot", o.ResumeMode)
	var rs resumeState = reconnectState{}
	owner, err := e.newUser(ctx, "bench"+e.runID+"owner")
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	if f.CampaignID, err = e.newCampaign(ctx, owner, "bench resume "+e.runID, o.SnapshotBytes); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	tok := ""
	if o.Token {
		tok = owner.Token
	}
	path := func(i int) string {
		p := campaignPath(f.CampaignID, tok)
		if q := rs.query(i); q != "" {
			if tok == "" {
				p += "?" + q
			} else {
				p += "&" + q
			}
		}
		return p
	}
	clients, cf := e.connect(ctx, connectSpec{label: "connecting", n: o.Conns, rate: o.ConnectRate, path: path, snapshot: rs.snapshot(), h: nopHandler{}})
	f.Connect = cf
	e.printf("clients: %s\n", connectLine(cf))
	defer func() { e.closeAll(clients) }()
	if cf.Connected == 0 {
		return fmt.Errorf("no client could connect: %v", cf.Errors)
	}
	var marks []Mark
	for r := range o.Rounds {
		if err := sleep(ctx, o.Pause.D()); err != nil {
			return err
		}
		// The clients that are connected drop at once and come back at once
		// (DialConcurrency attempts in flight).
		var ids []int
		for i, c := range clients {
			if c != nil {
				ids = append(ids, i)
			}
		}
		srvCPU, benchCPU := startCPU(e.pid), startCPU(0)
		marks = append(marks, Mark{At: time.Since(e.start).Seconds(), Label: fmt.Sprintf("round %d", r+1)})
		if r == o.Rounds-1 {
			e.profile(ctx, "cpu-reconnect.pprof", o.ProfileFor.D())
		}
		dropped := time.Now()
		e.closeAll(clients)
		rctx, cancel := context.WithTimeout(ctx, o.Duration.D())
		back, rf := e.connect(rctx, connectSpec{label: fmt.Sprintf("round %d reconnecting", r+1), n: len(ids),
			path: func(k int) string { return path(ids[k]) }, id: func(k int) int { return ids[k] },
			snapshot: rs.snapshot(), h: nopHandler{}, since: dropped})
		cancel()
		round := ResumeRound{Clients: len(ids), Connect: rf, AllBackS: rf.ElapsedS, BenchCPU: benchCPU.stop()}
		if e.pid > 0 {
			round.ServerCPU = srvCPU.stop()
		}
		if rf.Connected < len(ids) {
			round.AllBackS = 0 // not all came back
		}
		f.Rounds = append(f.Rounds, round)
		clients = make([]*client, len(clients))
		for k, c := range back {
			clients[ids[k]] = c
		}
		verdict := fmt.Sprintf("all %d back in %.3fs", len(ids), round.AllBackS)
		if rf.Connected < len(ids) {
			verdict = fmt.Sprintf("only %d of %d back", rf.Connected, len(ids))
		}
		e.printf("round %d: %s; %s\n", r+1, verdict, connectLine(rf))
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if n := len(f.Rounds); n > 0 {
		e.latencyChart("latency.svg", fmt.Sprintf("Reconnect latency, %d clients dropped at once (drop → campaign_data again)", f.Rounds[n-1].Clients), f.Rounds[n-1].Connect.Latency)
	}
	e.timelineChart("throughput.svg", "Connections per second", "connections/s", func(p TimelinePoint) float64 { return float64(p.Connects) }, marks...)
	return nil
}

package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// parentSpecs are the specs the parent sends its children, built as it
// builds them (spec.shares), for each handler at the sizes of the largest
// runs the options allow or docs/performance.md records.
func parentSpecs(t testing.TB) []genSpec {
	t.Helper()
	opts := func(scenario string, k int) Options {
		o := Defaults(scenario)
		o.Generators = k
		o.Target = "http://127.0.0.1:8000,http://127.0.0.1:8001,http://127.0.0.1:8002"
		return o
	}
	var out []genSpec
	add := func(o Options, spec genSpec) {
		spec.Opts = o
		out = append(out, spec.shares(o)...)
	}
	// idle, 100,000 clients in 6 children.
	add(opts("idle", 6), genSpec{N: 100000, Path: campaignPath(7, ""), Snapshot: true, Handler: genNop})
	// idle --restart over MaxTargets processes, each missing the most.
	add(opts("idle", MaxGenerators), genSpec{N: 100000, Path: campaignPath(7, "tok"), Snapshot: true, Handler: genRoll,
		Group: "campaign_7", MaxSeq: 2 + MaxTargets*500})
	// fanout --steps 1,2,4 --duration 20s, and the highest rate for the
	// longest a step may be (fewer subscribers: each holds 9 MB of bits).
	add(opts("fanout", 6), genSpec{N: 100000, Path: campaignPath(7, ""), Snapshot: true, Handler: genFanout,
		Base: 123456, NBits: fanoutBits([]float64{1, 2, 4}, 20*time.Second), Steps: 3})
	add(opts("fanout", MaxGenerators), genSpec{N: 4000, Path: campaignPath(7, ""), Snapshot: true, Handler: genFanout,
		Base: math.MaxInt32, NBits: fanoutBits([]float64{MaxEventRate}, MaxDuration), Steps: 1})
	// personal: a path per user; fewer users than children leaves some
	// children none.
	for _, n := range []int{300, 3} {
		paths := make([]string, n)
		for i := range paths {
			paths[i] = applicationsPath("token" + strconv.Itoa(i))
		}
		add(opts("personal", 4), genSpec{N: n, Paths: paths, Handler: genQuest})
	}
	return out
}

// A spec the parent builds passes the child's check; one past any bound
// fails it with an error naming the field.
func TestGenSpecCheck(t *testing.T) {
	specs := parentSpecs(t)
	for _, s := range specs {
		if err := s.check(); err != nil {
			t.Errorf("spec %d of %s (n %d): %v", s.Index, s.Handler, s.N, err)
		}
	}
	base := specs[0]
	bad := []struct {
		name string
		f    func(s *genSpec)
	}{
		{"n -1", func(s *genSpec) { s.N = -1 }},
		{"n 1<<40", func(s *genSpec) { s.N = 1 << 40 }},
		{"n max", func(s *genSpec) { s.N = math.MaxInt }},
		{"offset -1", func(s *genSpec) { s.Offset = -1 }},
		{"offset max", func(s *genSpec) { s.Offset = math.MaxInt }},
		{"index", func(s *genSpec) { s.Index = MaxGenerators }},
		{"src_hi 257", func(s *genSpec) { s.SrcHi = 257 }},
		{"src_lo 0", func(s *genSpec) { s.SrcLo = 0 }},
		{"no sources", func(s *genSpec) { s.SrcLo, s.SrcHi = 9, 9 }},
		{"a path too many", func(s *genSpec) { s.Paths = make([]string, s.N+1) }},
		{"no paths", func(s *genSpec) { s.Paths = []string{} }},
		{"no handler", func(s *genSpec) { s.Handler = "" }},
		{"nbits -1", func(s *genSpec) { s.NBits = -1 }},
		{"nbits max", func(s *genSpec) { s.NBits = math.MaxInt64 }},
		{"base -1", func(s *genSpec) { s.Base = -1 }},
		{"ids past int64", func(s *genSpec) { s.Base, s.NBits = math.MaxInt64, 1 }},
		{"steps -1", func(s *genSpec) { s.Steps = -1 }},
		{"steps max", func(s *genSpec) { s.Steps = math.MaxInt }},
		{"max_seq -1", func(s *genSpec) { s.MaxSeq = -1 }},
		{"max_seq max", func(s *genSpec) { s.MaxSeq = math.MaxInt }},
		{"fanout bitsets", func(s *genSpec) { s.Handler, s.NBits = genFanout, maxGenNBits }},
		{"roll bitsets", func(s *genSpec) { s.N, s.Handler, s.MaxSeq = maxGenClients, genRoll, maxGenSeq }},
		{"no dialers", func(s *genSpec) { s.Opts.DialConcurrency = 0 }},
		{"read buffer", func(s *genSpec) { s.Opts.ReadBuffer = 1 << 30 }},
		{"no timeout", func(s *genSpec) { s.Opts.Timeout = 0 }},
	}
	for _, b := range bad {
		s := base
		b.f(&s)
		if err := s.check(); err == nil {
			t.Errorf("%s: %+v passed the check", b.name, s)
		}
	}
}

// A child refuses a bad spec with an error before it allocates anything.
func TestRunGeneratorRefusesBadSpec(t *testing.T) {
	const opts = `"opts":{"target":"127.0.0.1:1","dial_concurrency":1,"read_buffer":512,"timeout":"1s"}`
	for _, line := range []string{
		`{"n":-1,"handler":"fanout","src_lo":2,"src_hi":3,` + opts + `}`,
		`{"n":1099511627776,"handler":"nop","src_lo":2,"src_hi":3,` + opts + `}`,
		`{"n":1,"handler":"roll","max_seq":-1,"src_lo":2,"src_hi":3,` + opts + `}`,
		`{"n":1,"handler":"nop","src_lo":2,"src_hi":300,` + opts + `}`,
		`{"n":1,"handler":"nop","src_lo":2,"src_hi":3}`, // no target
		`null`, `{}`,
	} {
		in := strings.NewReader(line + "\n" + `{"op":"connect"}` + "\n")
		err := RunGenerator(context.Background(), in, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "generator: the spec") {
			t.Errorf("%s: %v", line, err)
		}
	}
}

// A request past the spec's bounds gets an error reply.
func TestGenChildRequestBounds(t *testing.T) {
	var roll genSpec
	for _, s := range parentSpecs(t) {
		if s.Handler == genRoll {
			roll = s
			break
		}
	}
	g, err := newGenChild(roll, func(genReply) {})
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range []genReq{
		{Op: "status", Posted: -1},
		{Op: "status", Posted: roll.MaxSeq + 1},
		{Op: "check", IDs: []int64{1}}, // no bitsets
		{Op: "check", Drain: -1},
		{Op: "check", Drain: Duration(MaxTotal + 1)},
	} {
		if rep := g.do(context.Background(), req); rep.Err == "" {
			t.Errorf("%+v: no error", req)
		}
	}
	g.connected = true // the clients of one connect are all a child makes
	if rep := g.do(context.Background(), genReq{Op: "connect"}); rep.Err == "" {
		t.Errorf("a second connect: no error")
	}
}

// connectReplies are replies two children could send for a run of 8
// clients on 2 targets: client 3 and 6 failed.
func connectReplies() []genReply {
	var h1, h2 Histogram
	for _, d := range []time.Duration{time.Millisecond, 2 * time.Millisecond, 40 * time.Millisecond} {
		h1.Record(d)
	}
	for _, d := range []time.Duration{3 * time.Millisecond, 5 * time.Millisecond, 7 * time.Millisecond} {
		h2.Record(d)
	}
	return []genReply{
		{Connect: &ConnectFigures{Requested: 4, Connected: 3, Failed: 1, Failures: map[string]int{"timeout": 1}, Errors: []string{"dial: timeout"},
			ElapsedS: 0.5, SnapshotBytes: 100}, Hist: h1.wire(), Failed: []int{3}, PerTarget: []int64{2, 1}},
		{Connect: &ConnectFigures{Requested: 4, Connected: 3, Failed: 1, Failures: map[string]int{"http_429": 1}, Errors: []string{"429"},
			ElapsedS: 0.75, SnapshotBytes: 200}, Hist: h2.wire(), Failed: []int{6}, PerTarget: []int64{1, 2}},
	}
}

// Valid replies merge as they always did.
func TestMergeConnects(t *testing.T) {
	perTarget := make([]atomic.Int64, 2)
	f, ok, err := mergeConnects(8, connectReplies(), perTarget)
	if err != nil {
		t.Fatal(err)
	}
	if f.Connected != 6 || f.Failed != 2 || f.Failures["timeout"] != 1 || f.Failures["http_429"] != 1 || len(f.Errors) != 2 ||
		f.ElapsedS != 0.75 || f.RatePerS != 8 || f.SnapshotBytes != 150 || f.Latency.Count != 6 || f.Latency.MaxMs != 40 {
		t.Errorf("figures %+v", f)
	}
	want := []bool{true, true, true, false, true, true, false, true}
	if fmt.Sprint(ok) != fmt.Sprint(want) {
		t.Errorf("ok %v, want %v", ok, want)
	}
	if perTarget[0].Load() != 3 || perTarget[1].Load() != 3 {
		t.Errorf("per target %d %d", perTarget[0].Load(), perTarget[1].Load())
	}
}

// A reply no child could have sent is an error, not a panic, and adds
// nothing.
func TestMergeConnectsRefuses(t *testing.T) {
	bad := map[string]func(r []genReply){
		"no connect":            func(r []genReply) { r[1].Connect = nil },
		"failed index n":        func(r []genReply) { r[0].Failed = []int{8} },
		"failed index -1":       func(r []genReply) { r[0].Failed = []int{-1} },
		"negative connected":    func(r []genReply) { r[0].Connect.Connected = -1 },
		"more than n":           func(r []genReply) { r[1].Connect.Connected = math.MaxInt },
		"negative failures":     func(r []genReply) { r[0].Connect.Failures["timeout"] = -5 },
		"negative elapsed":      func(r []genReply) { r[0].Connect.ElapsedS = -1 },
		"huge snapshot":         func(r []genReply) { r[0].Connect.SnapshotBytes = math.MaxInt },
		"negative per target":   func(r []genReply) { r[0].PerTarget[1] = -1 },
		"more targets":          func(r []genReply) { r[0].PerTarget = append(r[0].PerTarget, 1) },
		"more dials than tried": func(r []genReply) { r[0].PerTarget = []int64{4, 1} },
		"histogram count":       func(r []genReply) { r[0].Hist.N++ },
		"histogram bucket":      func(r []genReply) { r[0].Hist.Buckets[0][0] = histBuckets },
		"histogram order":       func(r []genReply) { b := r[0].Hist.Buckets; b[0], b[1] = b[1], b[0] },
		"histogram overflow":    func(r []genReply) { r[0].Hist = &histWire{Buckets: [][2]uint64{{1, math.MaxUint64}, {2, 2}}, N: 1} },
		"histogram of too many": func(r []genReply) { r[0].Hist = &histWire{Buckets: [][2]uint64{{1, 9}}, N: 9} },
	}
	for name, f := range bad {
		reps := connectReplies()
		f(reps)
		perTarget := make([]atomic.Int64, 2)
		if _, _, err := mergeConnects(8, reps, perTarget); err == nil {
			t.Errorf("%s: no error", name)
		}
		if perTarget[0].Load() != 0 || perTarget[1].Load() != 0 {
			t.Errorf("%s: added to the targets' counts", name)
		}
	}
}

// The other merges refuse negative counts and totals that overflow.
func TestMergeRefuses(t *testing.T) {
	if _, err := sumSubscribers(10, []genReply{{Subscribers: 6}, {Subscribers: 5}}); err == nil {
		t.Errorf("begin: 11 subscribers of 10")
	}
	if n, err := sumSubscribers(10, []genReply{{Subscribers: 6}, {Subscribers: 4}}); err != nil || n != 10 {
		t.Errorf("begin: %d, %v", n, err)
	}
	var h Histogram
	if _, err := mergeChecks(10, []genReply{{Lost: 6}, {Lost: 5}}, &h); err == nil {
		t.Errorf("check: 11 lost of 10")
	}
	if _, err := mergeChecks(10, []genReply{{Received: math.MaxInt64}, {Received: 1}}, &h); err == nil {
		t.Errorf("check: received overflows")
	}
	if _, err := mergeChecks(10, []genReply{{Codes: map[string]int{"4000": -1}}}, &h); err == nil {
		t.Errorf("check: negative disconnects")
	}
	if _, err := mergeChecks(10, []genReply{{EvN: 3}, {Hist: &histWire{N: 2}}}, &h); err == nil || h.Count() != 0 {
		t.Errorf("check: a bad histogram: %v, %d merged", err, h.Count())
	}
	var w Histogram
	w.Record(time.Millisecond)
	c, err := mergeChecks(10, []genReply{{Lost: 4, Received: 6, Hist: w.wire(), Codes: map[string]int{"4000": 1}}, {Lost: 6, Codes: map[string]int{"4000": 2}}}, &h)
	if err != nil || c.lost != 10 || c.received != 6 || c.codes["4000"] != 3 || h.Count() != 1 {
		t.Errorf("check: %+v, %v, %d merged", c, err, h.Count())
	}
	if _, err := mergeStatus([]genReply{{Missing: -1}}); err == nil {
		t.Errorf("status: negative missing")
	}
	if _, err := mergeStatus([]genReply{{Up: math.MaxInt64}, {Up: 1}}); err == nil {
		t.Errorf("status: up overflows")
	}
	if _, err := mergeCodes([]genReply{{Codes: map[string]int{"0": math.MaxInt}}, {Codes: map[string]int{"0": 1}}}); err == nil {
		t.Errorf("codes overflow")
	}
}

// specSeeds are spec lines: the parent's, and ones at the extremes.
func specSeeds(t testing.TB) [][]byte {
	var out [][]byte
	for _, s := range parentSpecs(t) {
		if len(s.Paths) > 10 { // keep the corpus small
			continue
		}
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, append(b, '\n'))
	}
	// Small specs of each handler with bitsets, then requests.
	const opts = `"opts":{"target":"127.0.0.1:1","dial_concurrency":1,"read_buffer":512,"timeout":"1s"}`
	fanout := `{"handler":"fanout","src_lo":2,"src_hi":18,"n":4,"base":1000,"nbits":64,"steps":2,` + opts + "}\n"
	roll := `{"handler":"roll","src_lo":2,"src_hi":18,"n":4,"offset":8,"max_seq":100,` + opts + "}\n"
	out = append(out,
		[]byte(fanout+`{"op":"begin","step":0}`+"\n"+`{"op":"check","step":0,"ids":[1001,1002,1064],"drain":"0s"}`+"\n"+`{"op":"codes"}`),
		[]byte(fanout+`{"op":"check","step":1,"ids":[1001]}`+"\n"+`{"op":"begin","step":2}`+"\n"+`{"op":"begin","step":-1}`),
		[]byte(fanout+`{"op":"check","step":0,"ids":[`+strings.Repeat("9223372036854775807,", 63)+`-9223372036854775808]}`),
		[]byte(roll+`{"op":"status","posted":100}`+"\n"+`{"op":"status","posted":9223372036854775807}`+"\n"+`{"op":"status","posted":-1}`),
		[]byte(roll+`{"op":"connect"}`+"\n"+`{"op":"close"}`+"\n"+`{"op":"status","drain":"-1s"}`),
	)
	for _, v := range []string{"0", "-1", "1", "9223372036854775807", "-9223372036854775808", "1099511627776", "1e300", "null", `"1"`, "[]"} {
		for _, f := range []string{"n", "offset", "src_lo", "src_hi", "nbits", "base", "steps", "max_seq", "index"} {
			out = append(out, []byte(`{"handler":"fanout","src_lo":2,"src_hi":18,"n":4,"nbits":64,"steps":1,`+opts+`,"`+f+`":`+v+"}\n"))
		}
	}
	out = append(out,
		[]byte(`{"paths":null,"opts":null,"handler":null}`),
		[]byte(`{"n":3,"paths":["a","b"],"handler":"quest","src_lo":1,"src_hi":256}`),
		[]byte(`{"n":100000,"paths":[`+strings.Repeat(`"",`, 9999)+`""],"handler":"quest","src_lo":1,"src_hi":256}`),
	)
	return out
}

// FuzzGeneratorSpec decodes a child's input, a spec and requests, as
// RunGenerator does. A spec the check passes allocates within the bounds;
// a small one is allocated for real and its requests answered (but
// connect, which dials).
func FuzzGeneratorSpec(f *testing.F) {
	for _, s := range specSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dec := json.NewDecoder(bytes.NewReader(data))
		var s genSpec
		if dec.Decode(&s) != nil {
			return
		}
		g, err := newGenChild(s, func(genReply) {})
		if err != nil {
			return
		}
		words := int64(s.bitWords())
		switch {
		case s.N < 0 || s.N > maxGenClients || s.Offset < 0 || s.Offset+s.N > maxRunClients || s.Offset+s.N > math.MaxInt32:
			t.Fatalf("clients %d from %d passed", s.N, s.Offset)
		case int64(s.N)*words > maxGenWords || words < 0:
			t.Fatalf("%d clients of %d words passed", s.N, words)
		case s.Steps < 0 || s.Steps > maxGenSteps:
			t.Fatalf("%d steps passed", s.Steps)
		case s.Paths != nil && len(s.Paths) != s.N:
			t.Fatalf("%d paths for %d clients passed", len(s.Paths), s.N)
		case len(g.e.src.addrs) > 255:
			t.Fatalf("%d source addresses", len(g.e.src.addrs))
		}
		for k, a := range g.e.src.addrs {
			if int(a.IP.To4()[3]) != s.SrcLo+k {
				t.Fatalf("source %d is %v, want 127.0.0.%d", k, a.IP, s.SrcLo+k)
			}
		}
		if int64(s.N)*max(words, 1) > 1<<14 || s.Steps > 16 {
			return // checked above; too big to allocate on every input
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // check's wait for late receipts ends at once
		g.handler(ctx)
		if g.fo != nil && (len(g.fo.subs) != s.N || len(g.fo.steps) != s.Steps || s.N > 0 && int64(len(g.fo.subs[0].bits)) != words) {
			t.Fatalf("fanout of %d subscribers, %d steps from %+v", len(g.fo.subs), len(g.fo.steps), s)
		}
		if g.roll != nil {
			if len(g.roll.seen) != s.N || s.N > 0 && int64(len(g.roll.seen[0])) != words {
				t.Fatalf("roll of %d clients from %+v", len(g.roll.seen), s)
			}
			for i := range g.roll.ever { // as if each had connected: status counts them
				g.roll.ever[i].Store(true)
			}
		}
		for range 8 {
			var req genReq
			if dec.Decode(&req) != nil {
				return
			}
			if req.Op == "connect" || int64(s.N)*int64(len(req.IDs)) > 1<<16 {
				continue
			}
			g.do(ctx, req)
		}
	})
}

// replySeeds are reply streams: the real replies to each request, and
// ones at the extremes.
func replySeeds(t testing.TB) [][]byte {
	var out [][]byte
	enc := func(reps ...genReply) []byte {
		var b bytes.Buffer
		e := json.NewEncoder(&b)
		for _, r := range reps {
			if err := e.Encode(r); err != nil {
				t.Fatal(err)
			}
		}
		return b.Bytes()
	}
	out = append(out, enc(connectReplies()...))
	var h Histogram
	for i := range 100 {
		h.Record(time.Duration(i) * time.Millisecond)
	}
	out = append(out, enc(genReply{Subscribers: 4}, genReply{Subscribers: 4}))
	out = append(out, enc(genReply{Lost: 1, Received: 99, Dups: 2, Hist: h.wire(), Codes: map[string]int{"4000": 1}, Other: 3, EvN: 100, EvSize: 30000},
		genReply{Received: 1, Hist: &histWire{}}))
	out = append(out, enc(genReply{Up: 4, Current: 3, Missing: 2, Dups: 1, Reconnects: 8, Unsubscribed: 1, Snapshots: 1}, genReply{Codes: map[string]int{"1006": 2}}))
	for _, v := range []string{"-1", "8", "9223372036854775807", "-9223372036854775808", "18446744073709551615", "null", "[]", "{}"} {
		out = append(out,
			[]byte(`{"connect":{"connected":`+v+`,"failed":`+v+`,"failures":{"x":`+v+`},"elapsed_s":`+v+`,"snapshot_bytes":`+v+`},"failed":[`+v+`],"per_target":[`+v+`,`+v+`]}`),
			[]byte(`{"connect":{},"hist":{"b":[[`+v+`,`+v+`],[0,`+v+`]],"n":`+v+`,"max":`+v+`,"min":`+v+`}}`),
			[]byte(`{"subscribers":`+v+`,"lost":`+v+`,"received":`+v+`,"codes":{"0":`+v+`},"ev_n":`+v+`,"up":`+v+`,"missing":`+v+`}`+"\n"+`{"lost":`+v+`,"codes":{"0":`+v+`}}`),
		)
	}
	out = append(out,
		[]byte(`{"op":"connect"}`),
		[]byte(`{"connect":null,"hist":null,"failed":null,"per_target":null}`),
		[]byte(`{"connect":{},"failed":[`+strings.Repeat("0,", 10000)+`0]}`),
		[]byte(`{"connect":{},"hist":{"b":[[3711,1],[3712,1]],"n":2}}`),
		[]byte(`{"connect":{},"hist":{"b":[[1,18446744073709551615],[2,1]],"n":0}}`),
		[]byte(`{"connect":{},"hist":{"b":[[1,1]],"n":1,"max":-9223372036854775808,"min":9223372036854775807}}`),
	)
	return out
}

// FuzzGeneratorReplies decodes a child's output as the parent does and
// merges the replies as each request's do: never a panic, and a merge that
// fails adds nothing.
func FuzzGeneratorReplies(f *testing.F) {
	for _, s := range replySeeds(f) {
		f.Add(s, uint16(8), uint8(2))
	}
	f.Add([]byte(`{"connect":{}}`), uint16(0), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, n uint16, targets uint8) {
		dec := json.NewDecoder(bytes.NewReader(data))
		var reps []genReply
		for len(reps) < MaxGenerators {
			var r genReply
			if dec.Decode(&r) != nil {
				break
			}
			reps = append(reps, r)
		}
		perTarget := make([]atomic.Int64, targets%(MaxTargets+1))
		cf, ok, err := mergeConnects(int(n), reps, perTarget)
		var sum int64
		for k := range perTarget {
			v := perTarget[k].Load()
			if v < 0 || (err != nil && v != 0) {
				t.Fatalf("target %d: %d connections (merge: %v)", k, v, err)
			}
			sum += v
		}
		if err == nil {
			if len(ok) != int(n) || cf.Connected < 0 || cf.Failed < 0 || cf.Connected+cf.Failed > int(n) || cf.SnapshotBytes < 0 ||
				cf.RatePerS < 0 || cf.Latency.Count > uint64(n) || sum > int64(n) {
				t.Fatalf("merged %d clients into %+v, %d ok", n, cf, len(ok))
			}
			for k, v := range cf.Failures {
				if v < 0 || v > cf.Failed {
					t.Fatalf("failures %s: %d of %d", k, v, cf.Failed)
				}
			}
		}
		if subs, err := sumSubscribers(int(n), reps); err == nil && (subs < 0 || subs > int(n)) {
			t.Fatalf("%d subscribers of %d", subs, n)
		}
		want := int64(n) * 1000
		var h Histogram
		c, err := mergeChecks(want, reps, &h)
		if err != nil && h.Count() != 0 {
			t.Fatalf("check refused (%v) but merged %d latencies", err, h.Count())
		}
		if err == nil {
			if c.lost < 0 || c.lost > want || c.received < 0 || c.dups < 0 || c.other < 0 || c.evN < 0 || c.evSize < 0 || h.Count() > maxHistSamples {
				t.Fatalf("check tally %+v of %d latencies", c, h.Count())
			}
			for k, v := range c.codes {
				if v < 0 {
					t.Fatalf("code %s: %d", k, v)
				}
			}
			h.Summary(true)
		}
		if st, err := mergeStatus(reps); err == nil &&
			(st.Up < 0 || st.Current < 0 || st.Missing < 0 || st.Duplicates < 0 || st.Reconnects < 0 || st.Unsubscribed < 0 || st.NotRecovered < 0 || st.Snapshots < 0) {
			t.Fatalf("status %+v", st)
		}
	})
}

// The protocol's lines are read one JSON value each, and a line longer
// than the bound is refused before more of it is held.
func TestLineReader(t *testing.T) {
	in := `{"op":"status","req":1}` + "\n" + `{"op":"check","req":2,"lost":3}` + "\n"
	lr := newLineReader(strings.NewReader(in))
	var a, b genReply
	if err := lr.next(&a); err != nil || a.Op != "status" || a.Req != 1 {
		t.Fatalf("first line: %+v, %v", a, err)
	}
	if err := lr.next(&b); err != nil || b.Op != "check" || b.Req != 2 || b.Lost != 3 {
		t.Fatalf("second line: %+v, %v", b, err)
	}
	if err := lr.next(&b); err != io.EOF {
		t.Fatalf("after the last line: %v; want io.EOF", err)
	}
	if err := newLineReader(strings.NewReader(`{"op":"status"`)).next(&a); err != io.ErrUnexpectedEOF {
		t.Fatalf("a line cut short: %v; want io.ErrUnexpectedEOF", err)
	}
	// A line of 200 KiB, past the reader's buffer, within the bound...
	long := `{"failed":[` + strings.Repeat("1,", 100<<10) + `1]}` + "\n"
	var r genReply
	if err := newLineReader(strings.NewReader(long)).next(&r); err != nil || len(r.Failed) != 100<<10+1 {
		t.Fatalf("a 200 KiB line: %d failed, %v", len(r.Failed), err)
	}
	// ...and past a bound of 100 KiB, with no end in sight.
	lr = newLineReader(io.MultiReader(strings.NewReader(`{"failed":[`), endless{}))
	lr.max = 100 << 10
	if err := lr.next(&r); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("an endless line: %v", err)
	}
}

// endless is an input that never ends a line.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

// A reply that came too late for its request is not taken for the next
// one's; a reply to a request not sent, or of another kind, is an error.
func TestCallTakesItsOwnReply(t *testing.T) {
	proc := func(reps ...genReply) *genProc {
		p := &genProc{enc: json.NewEncoder(io.Discard), replies: make(chan genReply, len(reps))}
		for _, r := range reps {
			p.replies <- r
		}
		return p
	}
	g := &generators{}
	g.req.Store(4) // requests 1 to 4 went before
	g.procs = []*genProc{
		proc(genReply{Op: "status", Req: 3, Up: 1}, genReply{Op: "status", Req: 5, Up: 2}),
		proc(genReply{Op: "status", Req: 5, Up: 3}),
	}
	reps, err := g.call(context.Background(), genReq{Op: "status"}, 0)
	if err != nil || reps[0].Up != 2 || reps[1].Up != 3 {
		t.Fatalf("status after a late reply: %+v, %v; want the replies to request 5", reps, err)
	}
	for _, b := range []struct {
		op    string
		ahead uint64 // of the request
	}{{"status", 1}, {"check", 0}} {
		bad := genReply{Op: b.op, Req: g.req.Load() + 1 + b.ahead}
		g.procs = []*genProc{proc(bad)}
		if _, err := g.call(context.Background(), genReq{Op: "status"}, 0); err == nil || !strings.Contains(err.Error(), "answered") {
			t.Errorf("reply %+v to status request %d: %v", bad, g.req.Load(), err)
		}
	}
}

package layer

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/realtime/layer/redistest"
)

// bookLog is a Log of one epoch of every group, which a test rewrites as the
// platform rewrites the outbox.
type bookLog struct {
	mu    sync.Mutex
	epoch string
	msgs  map[string][]Message // offsets 1, 2, … by group
	reads int
}

func (l *bookLog) add(m Message) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs[m.Group] = append(l.msgs[m.Group], m)
}

// rewrite replaces the data and type of the group's event at offset off.
func (l *bookLog) rewrite(group string, off uint64, typ, data string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := &l.msgs[group][off-1]
	m.Type, m.Data = typ, []byte(data)
}

func (l *bookLog) Read(_ context.Context, group, epoch string, since, upTo uint64) ([]Message, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reads++
	if epoch == "" && since == 0 {
		epoch = l.epoch
	}
	all := l.msgs[group]
	if upTo == 0 || upTo > uint64(len(all)) {
		upTo = uint64(len(all))
	}
	if epoch != l.epoch || since > upTo {
		return nil, false, nil
	}
	return slices.Clone(all[since:upTo]), true, nil
}

func (l *bookLog) Positions(_ context.Context, groups []string) ([]Position, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Position, len(groups))
	for i, g := range groups {
		if n := len(l.msgs[g]); n > 0 {
			out[i] = Position{Offset: uint64(n), Epoch: l.epoch}
		}
	}
	return out, nil
}

func (l *bookLog) readCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reads
}

// removal is the type of the redacting events of these tests.
const removal = "removed"

func redacts(m Message) bool { return m.Type == removal }

// redactionScript publishes, with their positions as the relay does, a
// secret at 2 among others, then rewrites it in the log and publishes its
// removal at 4: the events 1 to 4 the log then holds.
func redactionScript(t *testing.T, log *bookLog, group string, publish func(Message)) {
	t.Helper()
	for i, data := range []string{`{"id":1}`, `{"id":2,"text":"secret"}`, `{"id":3}`} {
		m := Message{Group: group, Type: "comment", Data: []byte(data), Offset: uint64(i + 1), Epoch: log.epoch}
		log.add(m)
		publish(m)
	}
	log.rewrite(group, 2, removal, `{"id":2}`)
	m := Message{Group: group, Type: removal, Data: []byte(`{"id":2}`), Offset: 4, Epoch: log.epoch}
	log.add(m)
	publish(m)
}

// checkReplay fails unless msgs are offsets from+1…4 and none carries the
// secret.
func checkReplay(t *testing.T, what string, msgs []Message, ok bool, err error, from uint64) {
	t.Helper()
	if err != nil || !ok || len(msgs) != int(4-from) {
		t.Fatalf("%s: %d events (%v), ok %v, err %v; want offsets %d to 4", what, len(msgs), offsets(msgs), ok, err, from+1)
	}
	checkOffsets(t, what, msgs, from+1)
	for _, m := range msgs {
		if strings.Contains(string(m.Data), "secret") {
			t.Errorf("%s: offset %d replays the redacted event: %s %s", what, m.Offset, m.Type, m.Data)
		}
	}
}

// A redacting event drops the memory layer's window: a replay from before
// it reads the log, which holds the rewritten events, and one from after it
// is still served by the window; without a log, a replay from before it is
// not recovered rather than served stale.
func TestMemoryRedactionDropsTheWindow(t *testing.T) {
	ctx := context.Background()
	log := &bookLog{epoch: "e", msgs: map[string][]Message{}}
	m := NewMemory(func(Message) {}, MemoryOptions{Log: log, Redacts: redacts})
	defer m.Close()
	bare := NewMemory(func(Message) {}, MemoryOptions{Redacts: redacts})
	defer bare.Close()
	redactionScript(t, log, "g", func(msg Message) {
		for _, l := range []*Memory{m, bare} {
			if _, err := l.Publish(ctx, msg); err != nil {
				t.Fatal(err)
			}
		}
	})
	for _, from := range []uint64{0, 1} {
		msgs, ok, err := m.History(ctx, "g", from, "e")
		checkReplay(t, "replay from before the redaction", msgs, ok, err, from)
	}
	reads := log.readCount()
	msgs, ok, err := m.History(ctx, "g", 3, "e")
	checkReplay(t, "replay from just before the redaction", msgs, ok, err, 3)
	if log.readCount() != reads {
		t.Error("the window did not serve the redaction itself")
	}
	if msgs, ok, err := bare.History(ctx, "g", 1, "e"); ok || err != nil {
		t.Errorf("without a log, a replay from before the redaction: %v %v %v; want not recovered", offsets(msgs), ok, err)
	}
	msgs, ok, err = bare.History(ctx, "g", 3, "e")
	checkReplay(t, "without a log, from just before the redaction", msgs, ok, err, 3)

	// Without Redacts, the window keeps what it had (what the option
	// changes).
	stale := NewMemory(func(Message) {}, MemoryOptions{Log: log})
	defer stale.Close()
	for _, msg := range log.msgs["g"][:3] {
		msg.Data = []byte(`{"id":2,"text":"secret"}`) // as published before the rewrite
		if _, err := stale.Publish(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	if msgs, _, _ := stale.History(ctx, "g", 1, "e"); len(msgs) != 2 || !strings.Contains(string(msgs[0].Data), "secret") {
		t.Fatalf("a layer without Redacts replays %v", msgs)
	}
}

// On Redis, the redacting event drops the group's window in Redis as it is
// published, and every process's recent events as it delivers it: neither
// the publishing process nor another one, subscribed or not, replays the
// redacted event after it; a replay from after it is still Redis's.
func TestRedisRedactionDropsTheWindowOfEveryProcess(t *testing.T) {
	ctx := context.Background()
	prefix := redistest.Prefix(t)
	url := redistest.SharedURL()
	log := &bookLog{epoch: "e", msgs: map[string][]Message{}}
	opts := RedisOptions{Prefix: prefix, Log: log, Redacts: redacts}
	sa, sb := newSink(), newSink()
	a := newTestRedis(t, url, sa, opts)
	b := newTestRedis(t, url, sb, opts)
	c := newTestRedis(t, url, newSink(), opts) // not subscribed
	bare := newTestRedis(t, url, newSink(), RedisOptions{Prefix: prefix, Redacts: redacts})
	for _, l := range []*Redis{a, b, bare} {
		if err := l.Subscribe(ctx, "g"); err != nil {
			t.Fatal(err)
		}
	}
	var published int
	redactionScript(t, log, "g", func(m Message) {
		if published++; published == 4 {
			// Before the redaction, b replays the secret from its recent
			// events, as it should: it was not withdrawn yet.
			sb.wait(t, "g", 3, 5*time.Second)
			if msgs, ok, _ := b.History(ctx, "g", 1, "e"); !ok || len(msgs) != 2 || !strings.Contains(string(msgs[0].Data), "secret") {
				t.Fatalf("before the redaction, b replays %v %v", msgs, ok)
			}
		}
		if _, err := a.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
	})
	sa.wait(t, "g", 4, 5*time.Second)
	sb.wait(t, "g", 4, 5*time.Second)
	if n, err := a.cmd.LLen(ctx, a.key("g", "h")).Result(); err != nil || n != 1 {
		t.Errorf("redis's window holds %d events after the redaction (%v); want only the redaction", n, err)
	}
	for name, l := range map[string]*Redis{"the publisher": a, "another process": b, "a process not subscribed": c} {
		for _, from := range []uint64{0, 1} {
			msgs, ok, err := l.History(ctx, "g", from, "e")
			checkReplay(t, name+": replay from before the redaction", msgs, ok, err, from)
		}
		msgs, ok, err := l.History(ctx, "g", 3, "e")
		checkReplay(t, name+": replay from just before the redaction", msgs, ok, err, 3)
	}
	if msgs, ok, err := bare.History(ctx, "g", 1, "e"); ok || err != nil {
		t.Errorf("without a log, a replay from before the redaction: %v %v %v; want not recovered", offsets(msgs), ok, err)
	}
}

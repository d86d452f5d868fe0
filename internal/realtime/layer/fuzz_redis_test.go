package layer

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
)

// FuzzRedisReplies decodes arbitrary text as each thing the Redis layer
// reads back: an event on a group's channel, the history script's reply
// (entries split at '\x1e', its status chosen by shape) and a position
// (the fields of HMGET split at '\x1f', their number and types chosen by
// shape). Whatever Redis, or something posing as it, answers is an error
// or a value, never a panic; and nothing is allocated beyond what the
// reply itself holds.
func FuzzRedisReplies(f *testing.F) {
	for _, s := range []string{
		"1\ne1\ncomment\n{\"id\":1}", "18446744073709551615\ne\nt\n", "18446744073709551616\ne\nt\nd",
		"0\ne\nt\nd", "-1\ne\nt\nd", "1\n\nt\nd", "1\ne\nt", "", "\n\n\n", "1\ne\n\n\n\n",
		"1700000000000\n1\ne\nt\n{}\x1e1700000000000\n2\ne\nt\n{}", "1700000000000\n2\ne\nt\n{}",
		"x\n1\ne\nt\n{}", "1\ne\x1f1", "e\x1f18446744073709551616", "e\x1f-1", "\x1f", "e\x1f0",
		"e\x1f" + strings.Repeat("9", 1000), "9223372036854775807\ne\nt\n" + strings.Repeat("[", 1000),
	} {
		for _, shape := range []uint8{0, 1, 2, 3, 4, 7, 12, 255} {
			f.Add(uint64(0), s, shape)
		}
		f.Add(uint64(1<<64-1), s, uint8(0))
		f.Add(uint64(1<<63), s, uint8(0))
	}
	f.Fuzz(func(t *testing.T, since uint64, data string, shape uint8) {
		checkPayload(t, data)
		checkHistory(t, since, data, shape)
		checkPosition(t, data, shape)
	})
}

// checkPayload: an event that decodes is written back by the publish
// script's format and decodes to the same event.
func checkPayload(t *testing.T, data string) {
	m, err := decodePayload("g", data)
	if err != nil {
		return
	}
	if len(m.Data) > len(data) || strings.Contains(m.Epoch, "\n") || strings.Contains(m.Type, "\n") {
		t.Fatalf("event %q decoded as %+v", data, m)
	}
	enc := strconv.FormatUint(m.Offset, 10) + "\n" + m.Epoch + "\n" + m.Type + "\n" + string(m.Data)
	back, err := decodePayload("g", enc)
	if err != nil || back.Offset != m.Offset || back.Epoch != m.Epoch || back.Type != m.Type || !bytes.Equal(back.Data, m.Data) {
		t.Fatalf("event %q decoded as %+v; written back %q and decoded as %+v, %v", data, m, enc, back, err)
	}
}

// checkHistory: a history read that succeeds holds one event for each
// entry, every offset after since in order.
func checkHistory(t *testing.T, since uint64, data string, shape uint8) {
	var res []any
	switch shape % 4 {
	case 0:
		res = append(res, int64(1))
	case 1:
		res = append(res, int64(0))
	case 2:
		res = append(res, "1")
	}
	for i, e := range strings.Split(data, "\x1e") {
		if shape&4 != 0 && i == int(shape>>4) {
			res = append(res, int64(i)) // a reply of the wrong type
			continue
		}
		res = append(res, e)
	}
	if shape%4 == 3 {
		res = nil
	}
	msgs, ok, err := decodeHistory("g", since, res)
	if err != nil || !ok {
		if len(msgs) > 0 {
			t.Fatalf("history %q (shape %d): %d events with ok %v, %v", data, shape, len(msgs), ok, err)
		}
		return
	}
	if len(res) > 1 && len(msgs) != len(res)-1 {
		t.Fatalf("history %q (shape %d): %d events from %d entries", data, shape, len(msgs), len(res)-1)
	}
	for i, m := range msgs {
		if m.Offset != since+1+uint64(i) || m.Group != "g" {
			t.Fatalf("history %q after %d: event %d is %+v", data, since, i, m)
		}
	}
}

// checkPosition: a position is read from HMGET's two fields, whatever
// number and types of values the reply has.
func checkPosition(t *testing.T, data string, shape uint8) {
	fields := strings.Split(data, "\x1f")
	vals := make([]any, 0, len(fields))
	for i, v := range fields[:min(len(fields), int(shape%4))] {
		switch (shape >> (2 + i)) & 3 {
		case 0, 1:
			vals = append(vals, v)
		case 2:
			vals = append(vals, nil)
		case 3:
			vals = append(vals, int64(len(v)))
		}
	}
	off, epoch, err := parsePosition(vals)
	if err != nil {
		return
	}
	if epoch == "" && off != 0 {
		t.Fatalf("position %q (shape %d): offset %d with no epoch", data, shape, off)
	}
	if epoch != "" {
		last, _ := vals[1].(string)
		if n, err := strconv.ParseUint(last, 10, 64); err != nil || n != off {
			t.Fatalf("position %q (shape %d): offset %d from %q", data, shape, off, last)
		}
	}
}

// TestParsePositionShortReply: a position reply with fewer than the two
// fields HMGET was asked for (a broken server or proxy) is an error; it
// used to index past the reply and panic the goroutine reading positions.
func TestParsePositionShortReply(t *testing.T) {
	for _, vals := range [][]any{nil, {}, {"epoch"}} {
		if _, _, err := parsePosition(vals); err == nil {
			t.Errorf("parsePosition(%q) = no error", vals)
		}
	}
	if off, epoch, err := parsePosition([]any{"e", "7"}); err != nil || off != 7 || epoch != "e" {
		t.Errorf("parsePosition(e, 7) = %d, %q, %v", off, epoch, err)
	}
}

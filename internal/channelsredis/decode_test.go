package channelsredis

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// golden reads a message written by testdata/golden/make.py with the
// installed channels_redis's own serializers.
func golden(t testing.TB, name, kind string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "golden", name+"."+kind))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var goldenNames = []string{"new_application", "application_update", "contribution", "extremes"}

// sameJSON compares two JSON texts as values, numbers by their text: what
// a consumer's json.dumps wrote for a number must be what herald writes.
func sameJSON(t testing.TB, got, want []byte) bool {
	t.Helper()
	parse := func(b []byte) any {
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			t.Fatalf("not JSON: %v: %s", err, b)
		}
		return v
	}
	return reflect.DeepEqual(parse(got), parse(want))
}

func TestDecodeGolden(t *testing.T) {
	for _, name := range goldenNames {
		want := golden(t, name, "json")
		for _, kind := range []string{"core", "pubsub"} {
			var m Message
			var err error
			if kind == "core" {
				m, err = DecodeCore(golden(t, name, kind), 0)
			} else {
				m, err = Decode(golden(t, name, kind), 0)
			}
			if err != nil {
				t.Fatalf("%s.%s: %v", name, kind, err)
			}
			if !sameJSON(t, m.Data, want) {
				t.Errorf("%s.%s: data %s, want %s", name, kind, m.Data, want)
			}
			if !json.Valid(m.Data) {
				t.Errorf("%s.%s: invalid JSON %s", name, kind, m.Data)
			}
		}
	}
	m, _ := Decode(golden(t, "contribution", "pubsub"), 0)
	if m.Type != "contribution_message" {
		t.Errorf("type %q", m.Type)
	}
	// Keys keep the order the sender wrote them in.
	m, _ = DecodeCore(golden(t, "new_application", "core"), 0)
	if want := `{"application_id":7,"applicant":"bob","quest_title":"Find the cat","status":"pending"}`; string(m.Data) != want {
		t.Errorf("data %s, want %s", m.Data, want)
	}
}

func pack(t testing.TB, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// raw builds msgpack by hand, for what the encoder would not write.
func raw(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestDecodeRefusesWhatNoConsumerWouldSend(t *testing.T) {
	typ := raw([]byte{0xa4}, []byte("type"), []byte{0xa1, 'x'})
	data := raw([]byte{0xa4}, []byte("data"))
	deep := func(n int) []byte {
		return raw([]byte{0x82}, typ, data, bytes.Repeat([]byte{0x91}, n), []byte{0xc0})
	}
	cases := map[string][]byte{
		"empty":                  {},
		"not a map":              pack(t, []any{"type", "x"}),
		"nil":                    {0xc0},
		"no type":                pack(t, map[string]any{"data": 1}),
		"type not a string":      pack(t, map[string]any{"type": 5, "data": 1}),
		"type as bytes":          pack(t, map[string]any{"type": []byte("x"), "data": 1}),
		"no data":                pack(t, map[string]any{"type": "x"}),
		"bytes in data":          pack(t, map[string]any{"type": "x", "data": map[string]any{"b": []byte{1, 2}}}),
		"NaN":                    pack(t, map[string]any{"type": "x", "data": math.NaN()}),
		"infinity":               pack(t, map[string]any{"type": "x", "data": math.Inf(-1)}),
		"float32 infinity":       pack(t, map[string]any{"type": "x", "data": float32(math.Inf(1))}),
		"ext type":               raw([]byte{0x82}, typ, data, []byte{0xd4, 0x01, 0x00}),
		"timestamp ext":          raw([]byte{0x82}, typ, data, []byte{0xd6, 0xff, 0, 0, 0, 1}),
		"int key":                raw([]byte{0x82}, typ, data, []byte{0x81, 0x01, 0x01}),
		"int key at the top":     raw([]byte{0x83}, typ, data, []byte{0xc0, 0x01, 0x01}),
		"key twice":              raw([]byte{0x82}, typ, data, []byte{0x82, 0xa1, 'k', 0x01, 0xa1, 'k', 0x02}),
		"type twice":             raw([]byte{0x83}, typ, typ, data, []byte{0xc0}),
		"invalid UTF-8":          raw([]byte{0x82}, typ, data, []byte{0xa2, 0xff, 0xfe}),
		"invalid UTF-8 in key":   raw([]byte{0x82}, typ, data, []byte{0x81, 0xa1, 0xff, 0xc0}),
		"too deep":               deep(maxDepth + 1),
		"trailing bytes":         append(pack(t, map[string]any{"type": "x", "data": 1}), 0xc0),
		"truncated":              pack(t, map[string]any{"type": "x", "data": "abcdef"})[:19],
		"map claims 2^32-1":      {0xdf, 0xff, 0xff, 0xff, 0xff},
		"array claims 2^32-1":    raw([]byte{0x82}, typ, data, []byte{0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0}),
		"string claims 4 GiB":    raw([]byte{0x82}, typ, data, []byte{0xdb, 0xff, 0xff, 0xff, 0xff, 'a'}),
		"encrypted":              []byte("gAAAAABk" + strings.Repeat("A", 80)),
		"unknown code":           raw([]byte{0x82}, typ, data, []byte{0xc1}),
		"too large":              pack(t, map[string]any{"type": "x", "data": strings.Repeat("a", DefaultMaxMessage)}),
		"data too large as JSON": pack(t, map[string]any{"type": "x", "data": strings.Repeat("\x01", DefaultMaxMessage/2)}),
	}
	for name, b := range cases {
		m, err := Decode(b, 0)
		if err == nil {
			t.Errorf("%s: decoded as %q %s", name, m.Type, m.Data)
			continue
		}
		if !errors.Is(err, ErrDecode) {
			t.Errorf("%s: %v does not wrap ErrDecode", name, err)
		}
	}
	if m, err := Decode(deep(maxDepth), 0); err != nil || len(m.Data) != 2*maxDepth+4 {
		t.Errorf("nesting of %d refused: %v", maxDepth, err)
	}
	if _, err := DecodeCore(make([]byte, randomPrefix), 0); err == nil {
		t.Error("a core message of its prefix alone decoded")
	}
}

func TestDecodeKeepsWhatJSONCarries(t *testing.T) {
	in := map[string]any{
		"type": "x",
		"data": []any{uint64(math.MaxUint64), int64(math.MinInt64), 0, -1, float32(0.1), "<&>", "\u2029", nil, map[string]any{}},
		"more": []byte("skipped: only type and data are read"),
	}
	m, err := Decode(pack(t, in), 0)
	if err != nil {
		t.Fatal(err)
	}
	// float32(0.1) is the double 0.10000000149011612 once Python unpacks it.
	want := `[18446744073709551615,-9223372036854775808,0,-1,0.10000000149011612,"<&>","\u2029",null,{}]`
	if string(m.Data) != want {
		t.Errorf("data %s, want %s", m.Data, want)
	}
}

func TestAppendFloatIsPythonRepr(t *testing.T) {
	for v, want := range map[float64]string{
		0: "0.0", math.Copysign(0, -1): "-0.0", 1: "1.0", 0.1: "0.1", 1e16: "1e+16", 1e15: "1000000000000000.0",
		123456789012345678: "1.2345678901234568e+17", 0.0001: "0.0001", 0.00001: "1e-05", 1.5e-10: "1.5e-10",
		5e-324: "5e-324", math.MaxFloat64: "1.7976931348623157e+308", 12345.678: "12345.678", -2.5: "-2.5",
		9999999999999998: "9999999999999998.0", 1e22: "1e+22", 100: "100.0", 0.3: "0.3",
	} {
		if got := string(appendFloat(nil, v)); got != want {
			t.Errorf("%v: %s, want %s", v, got, want)
		}
	}
}

func TestClientType(t *testing.T) {
	m := SeedTypes()
	for _, c := range []struct{ kind, typ, want string }{
		{"campaign", "contribution_message", "contribution"},
		{"campaign", "update_message", "update"},
		{"campaign", "comment", "comment"},
		{"campaign", "milestone.message", "milestone"},
		{"quest", "new_application", "new_application"},
		{"quest", "contribution_message", "contribution_message"},
		{"user", "application_update", "application_update"},
		{"user", "application.update", "application_update"},
	} {
		if got, err := m.ClientType(c.kind, c.typ); err != nil || got != c.want {
			t.Errorf("%s %s: %q, %v; want %q", c.kind, c.typ, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "_private", ".x", "9lives", "a-b", "a b", "é", "a!", strings.Repeat("a", maxType+1)} {
		if got, err := m.ClientType("campaign", bad); err == nil {
			t.Errorf("%q mapped to %q", bad, got)
		}
	}
}

// FuzzDecode: whatever Redis holds, Decode returns an error or a type and
// valid JSON within the bound, the same each time, and never panics.
func FuzzDecode(f *testing.F) {
	for _, name := range goldenNames {
		f.Add(golden(f, name, "pubsub"))
		f.Add(golden(f, name, "core")[randomPrefix:])
	}
	for _, v := range []any{
		map[string]any{"type": "x", "data": []any{uint64(math.MaxUint64), int64(math.MinInt64), math.MaxFloat64, 5e-324, -0.0}},
		map[string]any{"type": "x", "data": map[string]any{"": "", "\u2028": "\x00\x1f\"\\"}},
		map[string]any{"type": "x", "data": float32(math.SmallestNonzeroFloat32)},
		map[string]any{"type": strings.Repeat("t", 200), "data": nil},
	} {
		b, _ := msgpack.Marshal(v)
		f.Add(b)
	}
	f.Add([]byte{0x82, 0xa4, 't', 'y', 'p', 'e', 0xa1, 'x', 0xa4, 'd', 'a', 't', 'a', 0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Add(raw([]byte{0x82, 0xa4, 't', 'y', 'p', 'e', 0xa1, 'x', 0xa4, 'd', 'a', 't', 'a'}, bytes.Repeat([]byte{0x91}, maxDepth+1), []byte{0xc0}))
	f.Add([]byte{0xdf, 0xff, 0xff, 0xff, 0xff})
	const max = 64 << 10
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b, max)
		if err != nil {
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("error %v does not wrap ErrDecode", err)
			}
			return
		}
		if !json.Valid(m.Data) || len(m.Data) > max {
			t.Fatalf("data of %d bytes, valid %v: %q", len(m.Data), json.Valid(m.Data), m.Data)
		}
		again, err := Decode(b, max)
		if err != nil || again.Type != m.Type || !bytes.Equal(again.Data, m.Data) {
			t.Fatalf("decoded differently the second time: %v", err)
		}
	})
}

package layer

import (
	"strings"
	"testing"
	"unsafe"
)

// within reports whether s's bytes lie inside buf's.
func within(s, buf string) bool {
	if len(s) == 0 {
		return false
	}
	p, b := uintptr(unsafe.Pointer(unsafe.StringData(s))), uintptr(unsafe.Pointer(unsafe.StringData(buf)))
	return p >= b && p < b+uintptr(len(buf))
}

// A decoded event's Type and Epoch are kept long after the payload (maps
// keyed by type, a subscription's epoch); they must not keep the payload,
// data and all, alive.
func TestDecodedEventDoesNotAliasPayload(t *testing.T) {
	data := `{"content":"` + strings.Repeat("x", 4096) + `"}`
	for _, typ := range []string{"comment", "custom_type"} {
		payload := "7\nabc.1\n" + typ + "\n" + data
		m, err := decodePayload("campaign_1", payload)
		if err != nil {
			t.Fatal(err)
		}
		if m.Type != typ || m.Epoch != "abc.1" || m.Offset != 7 || string(m.Data) != data {
			t.Fatalf("decoded %+v", m)
		}
		if within(m.Type, payload) {
			t.Errorf("type %q points into the payload", typ)
		}
		if within(m.Epoch, payload) {
			t.Errorf("epoch of a %q event points into the payload", typ)
		}
	}
}

package jsonstr

import (
	"bytes"
	"encoding/json"
	"testing"
)

// Append writes what encoding/json writes for the same string.
func TestAppend(t *testing.T) {
	for _, s := range []string{"", "plain", `q"b\s`, "ctl\x00\x1f\n\t\r", "uni é ✓ \u2028 \u2029", "bad \xff utf8", "<&>"} {
		got := Append([]byte("x"), s)
		want, _ := json.Marshal(s)
		// encoding/json escapes <, > and & for HTML; Append need not.
		want = bytes.ReplaceAll(bytes.ReplaceAll(bytes.ReplaceAll(want, []byte(`\u003c`), []byte("<")), []byte(`\u003e`), []byte(">")), []byte(`\u0026`), []byte("&"))
		if !bytes.Equal(got, append([]byte("x"), want...)) {
			t.Errorf("Append(%q) = %s, want %s", s, got[1:], want)
		}
	}
}

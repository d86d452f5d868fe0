package connect

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeAnswer: no answer panics the decoder; what it accepts is within
// its bounds, and every refusal is ErrUnavailable. reason never returns
// control characters or more than maxReason bytes of UTF-8.
func FuzzDecodeAnswer(f *testing.F) {
	for _, s := range []string{
		`{"user":"1","groups":["a"]}`, `{}`, `null`, `[]`, `{"user":null}`, `{"groups":null}`,
		`{"user":"` + strings.Repeat("x", 201) + `"}`, `{"groups":["a","b","c","d"]}`,
		`{"user":"\ud800"}`, `{"user":"1"} x`, `{"user":"1","x":1}`, strings.Repeat("[", 10000),
		`{"groups":[` + strings.Repeat(`"g",`, 1000) + `"g"]}`, "\xff", "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		a, err := decodeAnswer(raw, 3)
		if err != nil {
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("error %v is not ErrUnavailable", err)
			}
		} else if len(a.Groups) > 3 || len(a.User) > maxUserLen || !utf8.ValidString(a.User) {
			t.Fatalf("accepted %+v", a)
		}
		r := reason(raw)
		if len(r) > maxReason || !utf8.ValidString(r) || strings.ContainsFunc(r, func(c rune) bool { return c < ' ' || c == 0x7f }) {
			t.Fatalf("reason(%q) = %q", raw, r)
		}
	})
}

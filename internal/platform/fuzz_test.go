package platform

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzFieldParsers gives one string to every parser of a request field
// that is not plain text or money: released_at (an RFC 3339 time, given as
// a JSON string or as raw JSON), due_date (a calendar day) and an update's
// image (a JSON value). None may panic; a time or a day that is accepted is
// written out in a form that reads back as the same instant; an image
// string is never taken for a new image.
func FuzzFieldParsers(f *testing.F) {
	for _, s := range []string{
		"2023-05-15T14:30:00Z", "2023-05-15T14:30:00.123456789+02:00", "2023-05-15", "2024-02-29", "2023-02-29",
		"0000-01-01T00:00:00Z", "0000-01-01T00:00:00+23:59", "9999-12-31T23:59:59Z", "9999-12-31T23:59:59-23:59",
		"0000-01-01", "9999-12-31", "10000-01-01T00:00:00Z", "-0001-01-01T00:00:00Z", "2023-05-15T24:00:00Z",
		"2023-05-15T14:30:00+24:00", "2023-05-15t14:30:00z", "2023-05-15 14:30:00Z", "1e400", "null", `"x"`, "",
		"https://example.com/a.png", "http://example.com", "HTTPS://EXAMPLE.COM/", "/media/a.png", "//evil.example/a.png",
		"javascript:alert(1)", "JavaScript:alert(1)", "data:image/png;base64,AAAA", "https://", "http:///x", "/",
		"https://[::1]:99999/x", "https://user:pass@example.com/", "/\\evil.example", "\x00", "\u00e9",
		"https://example.com/" + strings.Repeat("a", 600),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, raw := range []string{strconv.Quote(s), s} {
			var tm Time
			if tm.UnmarshalJSON([]byte(raw)) != nil {
				continue
			}
			out, err := tm.MarshalJSON()
			var back Time
			if err != nil || back.UnmarshalJSON(out) != nil || !back.Equal(tm.Time) {
				t.Fatalf("time %s read as %v is written %s, read back as %v", raw, tm.Time, out, back.Time)
			}
		}
		if d, err := ParseDate(s); err == nil {
			out, err := d.MarshalJSON()
			back, perr := ParseDate(strings.Trim(string(out), `"`))
			if err != nil || perr != nil || !back.Equal(d.Time) {
				t.Fatalf("day %q is written %s, read back as %v, %v", s, out, back.Time, perr)
			}
		}
		for _, raw := range []string{strconv.Quote(s), s} {
			var in ImageInput
			if in.UnmarshalJSON([]byte(raw)) != nil {
				continue
			}
			f := fieldErrors{}
			var image *string
			in.apply(f, &image)
			if image != nil || (in.value != "" && f.err() == nil) {
				t.Fatalf("image %s set the image to %v (errors %v)", raw, image, f)
			}
		}
	})
}

// TestTimeYearRange: a time whose offset takes it out of the years
// 0000-9999 in UTC is refused, since it could not be written back in RFC
// 3339; the edges of the range are kept.
func TestTimeYearRange(t *testing.T) {
	for s, ok := range map[string]bool{
		"0000-01-01T00:00:00Z":      true,
		"9999-12-31T23:59:59Z":      true,
		"9999-12-31T23:59:59+01:00": true,
		"0000-01-01T00:00:00-01:00": true,
		"0000-01-01T00:00:00+23:59": false,
		"9999-12-31T23:59:59-23:59": false,
	} {
		var tm Time
		if err := tm.UnmarshalJSON([]byte(strconv.Quote(s))); (err == nil) != ok {
			t.Errorf("%s: error %v, want accepted %v", s, err, ok)
		}
	}
}

package money

import (
	"encoding/json"
	"errors"
	"math"
	"testing"
)

func TestParse(t *testing.T) {
	good := map[string]Cents{
		"0": 0, "1": 100, "100.5": 10050, "100.50": 10050, "0.01": 1, "007.10": 710,
		"999999999999.99": Max,
	}
	for in, want := range good {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", ".", "1.", ".5", "-1", "+1", "1e3", "1.234", " 1", "1,00", "NaN", "0x10", "1000000000000", "1.2.3"} {
		if _, err := Parse(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) error = %v; want ErrInvalid", in, err)
		}
	}
}

func TestJSONRoundTrip(t *testing.T) {
	for _, in := range []string{`"12.30"`, `12.3`, `"5"`} {
		var c Cents
		if err := json.Unmarshal([]byte(in), &c); err != nil {
			t.Fatalf("unmarshal %s: %v", in, err)
		}
		out, _ := json.Marshal(c)
		if want := map[string]string{`"12.30"`: `"12.30"`, `12.3`: `"12.30"`, `"5"`: `"5.00"`}[in]; string(out) != want {
			t.Errorf("%s → %s; want %s", in, out, want)
		}
	}
	var c Cents
	for _, bad := range []string{`true`, `"abc"`, `-3`, `1e2`, `"1.001"`, `null`} {
		if err := json.Unmarshal([]byte(bad), &c); err == nil {
			t.Errorf("unmarshal %s: want error", bad)
		}
	}
	if Cents(-150).String() != "-1.50" {
		t.Errorf("negative formatting: %s", Cents(-150))
	}
}

func TestValidCurrency(t *testing.T) {
	for code, want := range map[string]bool{"USD": true, "EUR": true, "usd": false, "US": false, "USDT": false, "U$D": false} {
		if ValidCurrency(code) != want {
			t.Errorf("ValidCurrency(%q) = %v", code, !want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"100.00", "0.1", "", "-1", "999999999999.99", "1e9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Parse(s)
		if err != nil {
			return
		}
		if c < 0 || c > Max {
			t.Fatalf("Parse(%q) = %d out of range", s, c)
		}
		back, err := Parse(c.String())
		if err != nil || back != c {
			t.Fatalf("round trip %q → %s → %d, %v", s, c, back, err)
		}
	})
}

// String is total: the extremes of int64 format without overflow.
func TestStringExtremes(t *testing.T) {
	for c, want := range map[Cents]string{
		math.MinInt64: "-92233720368547758.08",
		math.MaxInt64: "92233720368547758.07",
		-1:            "-0.01",
		Max:           "999999999999.99",
	} {
		if got := c.String(); got != want {
			t.Errorf("Cents(%d).String() = %q, want %q", int64(c), got, want)
		}
	}
}

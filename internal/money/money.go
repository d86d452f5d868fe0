// Package money holds exact monetary amounts: an integer count of cents,
// written in JSON as a decimal string with two places ("100.00"), as Django's
// DecimalField(decimal_places=2) does. Floats never touch an amount.
package money

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// Cents is an amount in hundredths of the currency unit.
type Cents int64

// Max is the largest amount accepted from input: 999,999,999,999.99, twelve
// digits before the point like a DecimalField(max_digits=14, decimal_places=2).
const Max Cents = 99_999_999_999_999

// ErrInvalid is returned (wrapped) for text that is not a valid amount.
var ErrInvalid = errors.New("invalid amount")

// Parse reads a non-negative decimal with at most two places: "100",
// "100.5", "100.50". Signs, exponents, spaces and separators are refused.
func Parse(s string) (Cents, error) {
	if s == "" {
		return 0, fmt.Errorf("%w: empty", ErrInvalid)
	}
	whole, frac, hasPoint := strings.Cut(s, ".")
	if whole == "" || !digits(whole) || (hasPoint && (frac == "" || !digits(frac))) {
		return 0, fmt.Errorf("%w: %q is not a decimal number like \"100.00\"", ErrInvalid, truncate(s))
	}
	if len(frac) > 2 {
		return 0, fmt.Errorf("%w: %q has more than 2 decimal places", ErrInvalid, truncate(s))
	}
	whole = strings.TrimLeft(whole, "0")
	if len(whole) > 12 {
		return 0, fmt.Errorf("%w: %q is too large", ErrInvalid, truncate(s))
	}
	var w int64
	if whole != "" {
		var err error
		if w, err = strconv.ParseInt(whole, 10, 64); err != nil {
			return 0, fmt.Errorf("%w: %q", ErrInvalid, truncate(s))
		}
	}
	for len(frac) < 2 {
		frac += "0"
	}
	f, _ := strconv.ParseInt(frac, 10, 64) // two checked digits
	return Cents(w*100 + f), nil
}

// String formats c as "1234.50".
func (c Cents) String() string {
	neg := c < 0
	u := uint64(c)
	if neg {
		u = -u // in uint64, so the most negative amount does not overflow
	}
	s := fmt.Sprintf("%d.%02d", u/100, u%100)
	if neg {
		return "-" + s
	}
	return s
}

// MarshalJSON writes the amount as a decimal string.
func (c Cents) MarshalJSON() ([]byte, error) {
	return []byte(`"` + c.String() + `"`), nil
}

// UnmarshalJSON accepts a decimal string or a JSON number, read from its text
// (never through a float), as Django REST framework's DecimalField does.
// Errors are *json.UnmarshalTypeError so the decoder names the field; Value
// says what is wrong.
func (c *Cents) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return typeError("an invalid string")
		}
		b = []byte(s)
	} else if len(b) == 0 || (b[0] != '-' && (b[0] < '0' || b[0] > '9')) {
		return typeError("not a number or a string")
	}
	v, err := Parse(string(b))
	if err != nil {
		return typeError(strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": "))
	}
	*c = v
	return nil
}

func typeError(reason string) error {
	return &json.UnmarshalTypeError{Value: reason, Type: reflect.TypeFor[Cents]()}
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}

// ValidCurrency reports whether code looks like an ISO 4217 code: three
// upper-case ASCII letters.
func ValidCurrency(code string) bool {
	if len(code) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if code[i] < 'A' || code[i] > 'Z' {
			return false
		}
	}
	return true
}

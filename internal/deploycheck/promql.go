// Package deploycheck tests what deploy/ ships against herald itself: the
// systemd unit and its env file name real flags and variables, the alert
// rules pass promtool (their checks and unit tests), and every metric the
// Grafana dashboard and the rules query is one a running herald exposes.
//
// MetricNames is its one piece of code: a small tokenizer of PromQL, not
// the prometheus module's parser, which would pull the whole Prometheus
// server (and its hundreds of modules) into go.mod for a test.
package deploycheck

import (
	"fmt"
	"slices"
	"strings"
)

// keywords are PromQL's words that are not metric names: aggregation
// operators (which may be followed by by/without before their
// parenthesis), binary operators and modifiers.
var keywords = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
	"limitk": true, "limit_ratio": true,
	"and": true, "or": true, "unless": true, "atan2": true,
	"bool": true, "offset": true, "start": true, "end": true,
	"inf": true, "nan": true,
}

// labelLists are the keywords followed by a parenthesised list of label
// names.
var labelLists = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// MetricNames returns the metric names expr selects, sorted and without
// repeats: every identifier that is not a function (followed by "("), a
// keyword, a label name (in braces or after by, without, on, ignoring,
// group_left, group_right), inside a string or a range ("[5m]"), or a
// Grafana variable ($job, ${job}, $__rate_interval). A selector by
// {__name__="…"} names its metric too; one by !=, =~ or !~ is an error,
// as what it selects cannot be checked. It also reports what it cannot read
// (an unclosed string, brace, bracket or parenthesis) as an error.
func MetricNames(expr string) ([]string, error) {
	var names []string
	s := expr
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '#': // a comment, to the end of the line
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			end, err := skipString(s, i)
			if err != nil {
				return nil, err
			}
			i = end
		case c == '{':
			end, name, err := selector(s, i)
			if err != nil {
				return nil, err
			}
			if name != "" {
				names = append(names, name)
			}
			i = end
		case c == '[':
			end := strings.IndexByte(s[i:], ']')
			if end < 0 {
				return nil, fmt.Errorf("unclosed [ at %d in %q", i, expr)
			}
			i += end + 1
		case c == '$':
			i = skipVariable(s, i)
		case isDigit(c) || (c == '.' && i+1 < len(s) && isDigit(s[i+1])):
			// A number or a duration (5m, 1e3, 0x1f): its letters are not
			// a name.
			for i < len(s) && (isIdent(s[i]) || s[i] == '.' || ((s[i] == '+' || s[i] == '-') && (s[i-1] == 'e' || s[i-1] == 'E'))) {
				i++
			}
		case isIdentStart(c):
			j := i
			for j < len(s) && isIdent(s[j]) {
				j++
			}
			word := s[i:j]
			k := j
			for k < len(s) && (s[k] == ' ' || s[k] == '\t' || s[k] == '\n' || s[k] == '\r') {
				k++
			}
			switch {
			case labelLists[strings.ToLower(word)]:
				if k < len(s) && s[k] == '(' {
					end := strings.IndexByte(s[k:], ')')
					if end < 0 {
						return nil, fmt.Errorf("unclosed ( after %s in %q", word, expr)
					}
					j = k + end + 1
				}
			case keywords[strings.ToLower(word)]:
			case k < len(s) && s[k] == '(': // a function
			default:
				names = append(names, word)
			}
			i = j
		default: // operators, parentheses, commas, @
			i++
		}
	}
	if err := balanced(expr); err != nil {
		return nil, err
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// selector skips the label matchers from s[i] ('{') to its '}' and
// returns the index after it, and the metric a __name__ matcher names
// with = (none for the other matchers; another matcher of __name__, which
// may select any metric, is an error).
func selector(s string, i int) (end int, name string, err error) {
	j := i + 1
	for j < len(s) {
		switch c := s[j]; {
		case c == '}':
			return j + 1, name, nil
		case c == '"' || c == '\'' || c == '`':
			e, err := skipString(s, j)
			if err != nil {
				return 0, "", err
			}
			j = e
		case isIdentStart(c):
			k := j
			for k < len(s) && isIdent(s[k]) {
				k++
			}
			label := s[j:k]
			m := k
			for m < len(s) && s[m] == ' ' {
				m++
			}
			if label == "__name__" && m+1 < len(s) && (s[m] == '!' || s[m+1] == '~') {
				return 0, "", fmt.Errorf("a __name__ matcher other than = at %d in %q: its metrics cannot be checked", j, s)
			}
			if label == "__name__" && m < len(s) && s[m] == '=' {
				m++
				for m < len(s) && s[m] == ' ' {
					m++
				}
				if m < len(s) && (s[m] == '"' || s[m] == '\'' || s[m] == '`') {
					e, err := skipString(s, m)
					if err != nil {
						return 0, "", err
					}
					name = s[m+1 : e-1]
					k = e
				}
			}
			j = k
		default:
			j++
		}
	}
	return 0, "", fmt.Errorf("unclosed { at %d in %q", i, s)
}

// skipString returns the index after the string literal starting at s[i].
func skipString(s string, i int) (int, error) {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			if q != '`' {
				j++
			}
		case q:
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unclosed string at %d in %q", i, s)
}

// skipVariable returns the index after the Grafana variable at s[i] ('$').
func skipVariable(s string, i int) int {
	j := i + 1
	if j < len(s) && s[j] == '{' {
		if end := strings.IndexByte(s[j:], '}'); end >= 0 {
			return j + end + 1
		}
		return len(s)
	}
	for j < len(s) && isIdent(s[j]) {
		j++
	}
	return j
}

// balanced reports unbalanced parentheses outside strings.
func balanced(s string) error {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"', '\'', '`':
			end, err := skipString(s, i)
			if err != nil {
				return err
			}
			i = end - 1
		case '(':
			depth++
		case ')':
			if depth--; depth < 0 {
				return fmt.Errorf("unbalanced ) at %d in %q", i, s)
			}
		}
	}
	if depth != 0 {
		return fmt.Errorf("unclosed ( in %q", s)
	}
	return nil
}

func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isIdentStart(c byte) bool { return c == '_' || c == ':' || (c|0x20 >= 'a' && c|0x20 <= 'z') }
func isIdent(c byte) bool      { return isIdentStart(c) || isDigit(c) }

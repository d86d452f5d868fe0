package api

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/heraldhq/herald/internal/money"
	"github.com/heraldhq/herald/internal/platform"
	"github.com/heraldhq/herald/internal/store"
)

// Problem is an RFC 9457 problem document, with herald's extensions: a
// machine-readable code and field errors in Django REST framework's shape.
type Problem struct {
	Type   string              `json:"type"`
	Title  string              `json:"title"`
	Status int                 `json:"status"`
	Detail string              `json:"detail"`
	Code   string              `json:"code"`
	Errors map[string][]string `json:"errors,omitempty"`
}

func (p *Problem) Error() string { return p.Detail }

func problem(status int, code, detail string) *Problem {
	return &Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail, Code: code}
}

func fieldProblem(field, msg string) *Problem {
	p := problem(http.StatusBadRequest, "invalid", "the request has invalid fields")
	p.Errors = map[string][]string{field: {msg}}
	return p
}

// writeProblem answers err: a *Problem as it is, a platform error by its
// kind, anything else as a logged 500 that tells the client nothing inside.
func (s *Server) writeProblem(w http.ResponseWriter, r *http.Request, err error) {
	var p *Problem
	var de *platform.Error
	switch {
	case errors.As(err, &p):
	case errors.As(err, &de):
		switch de.Kind {
		case platform.KindInvalid:
			p = problem(http.StatusBadRequest, "invalid", de.Message)
			p.Errors = de.Fields
		case platform.KindNotFound:
			p = problem(http.StatusNotFound, "not_found", de.Message)
		case platform.KindForbidden:
			p = problem(http.StatusForbidden, "permission_denied", de.Message)
		case platform.KindConflict:
			p = problem(http.StatusConflict, "conflict", de.Message)
		case platform.KindUnauthorized:
			p = problem(http.StatusUnauthorized, "not_authenticated", de.Message)
		default:
			p = problem(http.StatusInternalServerError, "error", "internal error")
		}
		if de.Code != "" && p.Status != http.StatusInternalServerError {
			p.Code = de.Code
		}
	case errors.Is(err, r.Context().Err()) && r.Context().Err() != nil:
		return // the client went away; nobody to answer
	case store.IsUnavailable(err):
		// The database is down or restarting: the same request may succeed
		// once it is back (a write cut off at its commit is retried safely
		// with the same Idempotency-Key).
		s.log.WarnContext(r.Context(), "request failed: database unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
		p = problem(http.StatusServiceUnavailable, "unavailable", "the database is unavailable; try again in a moment")
		w.Header().Set("Retry-After", "1")
	default:
		s.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		p = problem(http.StatusInternalServerError, "error", "internal error")
	}
	if p.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="api"`)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Our own types always encode; reaching here is a bug worth a loud 500.
		http.Error(w, `{"detail":"internal error"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// maxBody bounds a request body; herald's largest input is a few tens of KB.
const maxBody = 1 << 20

// decode reads exactly one JSON object into dst, strictly: the right content
// type, no unknown fields, no trailing data, bounded size. Its errors are
// *Problem with the offending field named where there is one.
func decode(w http.ResponseWriter, r *http.Request, dst any) error {
	// A body without a content type is not taken for JSON: a page on another
	// origin can send one with no CORS preflight, and so could forge a write.
	if ct := r.Header.Get("Content-Type"); !jsonContentType(ct) {
		return unsupportedMediaType(ct)
	}
	if r.ContentLength > maxBody {
		return problem(http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("the body is larger than %d bytes", maxBody))
	}
	return decodeJSON(http.MaxBytesReader(w, r.Body, maxBody), dst)
}

func unsupportedMediaType(ct string) *Problem {
	if ct == "" {
		return problem(http.StatusUnsupportedMediaType, "unsupported_media_type", "the request has no Content-Type; send application/json")
	}
	if len(ct) > 100 {
		ct = ct[:100] + "…"
	}
	return problem(http.StatusUnsupportedMediaType, "unsupported_media_type",
		fmt.Sprintf("unsupported media type %q; send application/json", ct))
}

// decodeJSON is decode's body parser, separate so it can be fuzzed.
func decodeJSON(body io.Reader, dst any) error {
	// null decodes into a struct without error, leaving it empty; only an
	// object is a request. Other errors are left to the decoder to report.
	br := bufio.NewReader(body)
	for {
		b, err := br.Peek(1)
		if err != nil {
			break
		}
		if c := b[0]; c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			_, _ = br.Discard(1)
			continue
		}
		if b[0] != '{' {
			return problem(http.StatusBadRequest, "parse_error", "expected a JSON object")
		}
		break
	}
	dec := json.NewDecoder(br)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonProblem(err)
	}
	if dec.More() {
		return problem(http.StatusBadRequest, "parse_error", "the body holds more than one JSON value")
	}
	if _, err := dec.Token(); err != io.EOF {
		return problem(http.StatusBadRequest, "parse_error", "unexpected data after the JSON object")
	}
	return nil
}

var (
	centsType = reflect.TypeFor[money.Cents]()
	timeType  = reflect.TypeFor[platform.Time]()
)

func jsonProblem(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var tooBig *http.MaxBytesError
	switch {
	case errors.Is(err, io.EOF):
		return problem(http.StatusBadRequest, "parse_error", "the request body is empty; send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return problem(http.StatusBadRequest, "parse_error", "malformed JSON: the body ends early")
	case errors.As(err, &syn):
		return problem(http.StatusBadRequest, "parse_error", fmt.Sprintf("malformed JSON at byte %d: %v", syn.Offset, syn))
	case errors.As(err, &tooBig):
		return problem(http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("the body is larger than %d bytes", tooBig.Limit))
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return problem(http.StatusBadRequest, "parse_error", "expected a JSON object, got "+typ.Value)
		}
		switch typ.Type {
		case centsType, reflect.PointerTo(centsType):
			return fieldProblem(field, `must be a decimal amount with at most 2 places, like "100.00" (`+typ.Value+")")
		case timeType, reflect.PointerTo(timeType):
			return fieldProblem(field, `must be an ISO 8601 date-time like "2024-05-15T14:30:00Z"`)
		}
		return fieldProblem(field, "must be "+jsonKind(typ.Type)+", not "+typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		return fieldProblem(name, "unknown field")
	default:
		return problem(http.StatusBadRequest, "parse_error", "malformed JSON: "+err.Error())
	}
}

func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list"
	default:
		return "an object"
	}
}

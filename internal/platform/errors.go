package platform

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Kind classifies a domain error so each transport can answer it its own way
// (an HTTP status, a WebSocket error code).
type Kind int

const (
	KindInvalid      Kind = iota + 1 // the input breaks a rule; Fields says which
	KindNotFound                     // no such object, or the actor may not know it exists
	KindForbidden                    // the object exists and is visible, but the actor may not do this
	KindConflict                     // the change clashes with the current state (a second application, …)
	KindUnauthorized                 // bad credentials
)

// Error is a domain error with a message fit for the user.
type Error struct {
	Kind    Kind
	Message string
	Fields  map[string][]string // field → problems, for KindInvalid
	// Code, when set, names the problem for programs more precisely than
	// Kind does (the API's code).
	Code string
}

// CodeHasContributions refuses deleting a campaign that has contributions.
const CodeHasContributions = "has_contributions"

func (e *Error) Error() string {
	if len(e.Fields) == 0 {
		return e.Message
	}
	keys := make([]string, 0, len(e.Fields))
	for k := range e.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+": "+strings.Join(e.Fields[k], "; "))
	}
	return e.Message + " (" + strings.Join(parts, ", ") + ")"
}

// KindOf returns err's Kind, or 0 when err is not a domain error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}

func notFound(what string) error {
	return &Error{Kind: KindNotFound, Message: what + " not found"}
}

func forbidden(format string, args ...any) error {
	return &Error{Kind: KindForbidden, Message: fmt.Sprintf(format, args...)}
}

func conflict(format string, args ...any) error {
	return &Error{Kind: KindConflict, Message: fmt.Sprintf(format, args...)}
}

// fieldErrors collects validation problems field by field.
type fieldErrors map[string][]string

func (f fieldErrors) add(field, format string, args ...any) {
	f[field] = append(f[field], fmt.Sprintf(format, args...))
}

func (f fieldErrors) err() error {
	if len(f) == 0 {
		return nil
	}
	return &Error{Kind: KindInvalid, Message: "the request has invalid fields", Fields: f}
}

// invalid is a single-field validation error.
func invalid(field, format string, args ...any) error {
	f := fieldErrors{}
	f.add(field, format, args...)
	return f.err()
}

// Package connect asks an app who a real-time client is and which groups it
// joins: herald forwards the client's credentials (its cookies and
// Authorization header) with the path it connected to, and the app answers
// with the user and the groups. It is how an app that owns its users and
// their memberships (a Django app behind herald) authorizes herald's
// clients without issuing tokens.
package connect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

// Request is what herald tells the app about a connecting client, as the
// JSON body of a POST; the client's Cookie and Authorization headers come
// along as they were sent.
type Request struct {
	// Transport is "websocket" or "sse".
	Transport string `json:"transport"`
	// Path and Query are what the client asked for, e.g. "/ws/chat/lobby/"
	// and "v=2".
	Path  string `json:"path"`
	Query string `json:"query"`
	// Client is the client's address.
	Client string `json:"client"`
}

// Answer is the app's 200 answer.
type Answer struct {
	// User is the app's id of the user, "" for anonymous.
	User string `json:"user"`
	// Groups are the groups the connection joins.
	Groups []string `json:"groups"`
}

// Errors of Authorize, to be told apart with errors.Is.
var (
	// ErrDenied is the app refusing the client (401 or 403): the client is
	// refused with the app's reason.
	ErrDenied = errors.New("the app refused the connection")
	// ErrUnavailable is an app that could not be asked or answered
	// something unusable: the client may retry later.
	ErrUnavailable = errors.New("the app's connect callback did not answer")
)

// Limits on what is sent to and taken from the app.
const (
	maxAnswer    = 64 << 10
	maxReason    = 200
	maxUserLen   = 200
	DefaultLimit = 64
)

// Options configures a Client.
type Options struct {
	// Timeout bounds one call, waiting for a turn included.
	Timeout time.Duration
	// MaxGroups bounds the groups one answer may name.
	MaxGroups int
	// Concurrent bounds the calls in flight (DefaultLimit when 0): a burst
	// of reconnecting clients waits for a turn rather than opening
	// thousands of requests to the app.
	Concurrent int
	// HTTP is the client to call with (a client with Timeout when nil).
	HTTP *http.Client
}

// Client calls one app's connect URL.
type Client struct {
	url  string
	opt  Options
	http *http.Client
	sem  chan struct{}
}

// New returns a Client calling url.
func New(url string, opt Options) *Client {
	if opt.Timeout <= 0 {
		opt.Timeout = 2 * time.Second
	}
	if opt.MaxGroups <= 0 {
		opt.MaxGroups = 1000
	}
	if opt.Concurrent <= 0 {
		opt.Concurrent = DefaultLimit
	}
	hc := opt.HTTP
	if hc == nil {
		hc = &http.Client{
			Timeout: opt.Timeout,
			// The app answers; it does not send herald elsewhere with the
			// client's cookies.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return &Client{url: url, opt: opt, http: hc, sem: make(chan struct{}, opt.Concurrent)}
}

// Authorize asks the app about the client of r. Errors wrap ErrDenied or
// ErrUnavailable with a reason that can be shown to the client.
func (c *Client) Authorize(ctx context.Context, r *http.Request, req Request) (Answer, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opt.Timeout)
	defer cancel()
	select {
	case c.sem <- struct{}{}:
		defer func() { <-c.sem }()
	case <-ctx.Done():
		return Answer{}, fmt.Errorf("%w: too many connections are waiting for it", ErrUnavailable)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return Answer{}, fmt.Errorf("connect: encode request: %w", err)
	}
	out, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return Answer{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	out.Header.Set("Content-Type", "application/json")
	out.Header.Set("Accept", "application/json")
	for _, h := range []string{"Cookie", "Authorization", "Origin", "User-Agent"} {
		for _, v := range r.Header.Values(h) {
			out.Header.Add(h, v)
		}
	}
	out.Header.Set("X-Forwarded-For", req.Client)
	resp, err := c.http.Do(out)
	if err != nil {
		if ctx.Err() != nil {
			return Answer{}, fmt.Errorf("%w within %v", ErrUnavailable, c.opt.Timeout)
		}
		return Answer{}, fmt.Errorf("%w: it could not be reached", ErrUnavailable)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return Answer{}, fmt.Errorf("%w: its answer was cut off", ErrUnavailable)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return Answer{}, fmt.Errorf("%w: %s", ErrDenied, reason(raw))
	case resp.StatusCode != http.StatusOK:
		return Answer{}, fmt.Errorf("%w: it answered HTTP %d", ErrUnavailable, resp.StatusCode)
	}
	return decodeAnswer(raw, c.opt.MaxGroups)
}

// decodeAnswer reads the app's 200 answer, bounded: at most maxAnswer
// bytes, a user of at most maxUserLen bytes of UTF-8, maxGroups groups.
func decodeAnswer(raw []byte, maxGroups int) (Answer, error) {
	if len(raw) > maxAnswer {
		return Answer{}, fmt.Errorf("%w: its answer is larger than %d bytes", ErrUnavailable, maxAnswer)
	}
	var a Answer
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil || dec.More() {
		return Answer{}, fmt.Errorf(`%w: its answer is not {"user": string, "groups": [string]}`, ErrUnavailable)
	}
	if len(a.User) > maxUserLen || !utf8.ValidString(a.User) {
		return Answer{}, fmt.Errorf("%w: its user is longer than %d bytes or not UTF-8", ErrUnavailable, maxUserLen)
	}
	if len(a.Groups) > maxGroups {
		return Answer{}, fmt.Errorf("%w: it names %d groups, more than the %d a connection may join", ErrUnavailable, len(a.Groups), maxGroups)
	}
	return a, nil
}

// reason is the app's reason for a refusal: the "message" or "detail" of a
// JSON answer (Django REST framework says "detail"), else a plain text
// answer, shortened; a generic one when there is none.
func reason(raw []byte) string {
	var m struct {
		Message string `json:"message"`
		Detail  string `json:"detail"`
	}
	s := ""
	if json.Unmarshal(raw, &m) == nil {
		s = m.Message
		if s == "" {
			s = m.Detail
		}
	} else if utf8.Valid(raw) && !bytes.ContainsAny(raw, "<{") {
		s = strings.TrimSpace(string(raw))
	}
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if s == "" {
		return "not allowed"
	}
	if len(s) > maxReason {
		s = s[:maxReason]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	return s
}

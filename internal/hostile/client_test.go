package hostile

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// client sends one case's requests from a loopback address of its own
// (127.0.x.y), so the per-address limits and sign-in throttles of one case
// never decide another's outcome; every status it gets is recorded.
type client struct {
	h    *herald
	name string
	src  net.IP
	hc   *http.Client
}

// srcAddr hands out 127.0.1.1, 127.0.1.2, …, skipping .0 and .255.
func (h *herald) srcAddr() net.IP {
	for {
		n := h.nextSrc.Add(1)
		if b := byte(n); b != 0 && b != 255 {
			return net.IPv4(127, 0, byte(n>>8), b)
		}
	}
}

func (h *herald) client(t testing.TB) *client {
	c := &client{h: h, name: t.Name(), src: h.srcAddr()}
	tr := &http.Transport{
		DialContext:           c.dialer().DialContext,
		DisableKeepAlives:     true, // no idle connection outlives its case
		ResponseHeaderTimeout: 20 * time.Second,
		DisableCompression:    true,
	}
	c.hc = &http.Client{
		Transport: recording{tr, c},
		Timeout:   30 * time.Second,
		// A redirect is an answer to check, not to follow.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c
}

func (c *client) dialer() *net.Dialer {
	return &net.Dialer{LocalAddr: &net.TCPAddr{IP: c.src}, Timeout: 10 * time.Second}
}

// recording records the status of every response that passes through.
type recording struct {
	rt http.RoundTripper
	c  *client
}

func (r recording) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := r.rt.RoundTrip(req)
	if err == nil {
		r.c.record(req.Method+" "+req.URL.RequestURI(), res)
	}
	return res, err
}

func (c *client) record(what string, res *http.Response) {
	c.h.rec.add(answer{who: c.name, what: clip(what, 200), status: res.StatusCode, retryAfter: res.Header.Get("Retry-After")})
}

// response is an HTTP answer, read whole (up to 8 MiB).
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r *response) String() string {
	return fmt.Sprintf("%d %s", r.Status, clip(string(r.Body), 300))
}

// json decodes the body into v.
func (r *response) json(v any) error {
	if err := json.Unmarshal(r.Body, v); err != nil {
		return fmt.Errorf("%d answer is not the JSON expected (%v): %s", r.Status, err, clip(string(r.Body), 300))
	}
	return nil
}

// req describes one request; the zero values are a GET with no headers.
type req struct {
	method string
	path   string // with its query
	header http.Header
	body   io.Reader
	bearer string // Authorization: Bearer …
}

// do sends r and reads the whole answer.
func (c *client) do(r req) (*response, error) {
	if r.method == "" {
		r.method = http.MethodGet
	}
	ctx, cancel := ctxTimeout(30 * time.Second)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, r.method, c.h.base+r.path, r.body)
	if err != nil {
		return nil, err
	}
	for k, vs := range r.header {
		hr.Header[k] = vs
	}
	if r.bearer != "" {
		hr.Header.Set("Authorization", "Bearer "+r.bearer)
	}
	if host := r.header.Get("Host"); host != "" {
		hr.Host = host
	}
	res, err := c.hc.Do(hr)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", r.method, clip(r.path, 100), err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read the answer: %w", r.method, clip(r.path, 100), err)
	}
	return &response{Status: res.StatusCode, Header: res.Header, Body: b}, nil
}

// must sends r and fails the test if it cannot.
func (c *client) must(t testing.TB, r req) *response {
	t.Helper()
	res, err := c.do(r)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// jsonReq is a request with a JSON body (Content-Type set).
func jsonReq(method, path, token, body string) req {
	return req{method: method, path: path, bearer: token, body: strings.NewReader(body),
		header: http.Header{"Content-Type": {"application/json"}}}
}

// raw writes a request as given, byte for byte, over a new connection and
// reads the answer's status line and headers (and up to 1 MiB of body
// until the server closes or the deadline passes). Go's client refuses to
// send much of what the cases need (a URL in Host, overflowing lengths),
// and gives up on an answer that comes before it has sent the whole body
// (413). The request is written while the answer is read.
func (c *client) raw(request string, timeout time.Duration) (*response, error) {
	nc, err := c.dialer().Dial("tcp", c.h.addr)
	if err != nil {
		return nil, err
	}
	_ = nc.SetDeadline(time.Now().Add(timeout))
	written := make(chan struct{})
	go func() {
		defer close(written)
		_, _ = io.WriteString(nc, request) // the server may answer and close before it read everything
	}()
	defer func() {
		nc.Close()
		<-written
	}()
	br := bufio.NewReader(nc)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, fmt.Errorf("read the answer: %w", err)
	}
	defer res.Body.Close()
	line, _, _ := strings.Cut(request, "\r\n")
	c.record("raw "+line, res)
	var body bytes.Buffer
	_, _ = io.Copy(&body, io.LimitReader(res.Body, 1<<20))
	return &response{Status: res.StatusCode, Header: res.Header, Body: body.Bytes()}, nil
}

// wantStatus fails t unless r's status is one of want.
func wantStatus(t testing.TB, r *response, want ...int) {
	t.Helper()
	for _, w := range want {
		if r.Status == w {
			return
		}
	}
	t.Errorf("status %d, want one of %v: %s", r.Status, want, clip(string(r.Body), 300))
}

// stream opens an event stream and reads it for d (up to 1 MiB), or until
// it holds one of until, then closes it. An answer other than 200 is read
// whole.
func (c *client) stream(path string, header http.Header, d time.Duration, until ...string) (*response, error) {
	ctx, cancel := ctxTimeout(d)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, c.h.base+path, nil)
	if err != nil {
		return nil, err
	}
	for k, vs := range header {
		hr.Header[k] = vs
	}
	hr.Header.Set("Accept", "text/event-stream")
	res, err := c.hc.Do(hr)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", clip(path, 100), err)
	}
	defer res.Body.Close()
	var body []byte
	buf := make([]byte, 32<<10)
	for len(body) < 1<<20 {
		n, err := res.Body.Read(buf)
		body = append(body, buf[:n]...)
		if slices.ContainsFunc(until, func(u string) bool { return bytes.Contains(body, []byte(u)) }) {
			break
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				break // read for d
			}
			return nil, fmt.Errorf("GET %s: read the stream: %w", clip(path, 100), err)
		}
	}
	return &response{Status: res.StatusCode, Header: res.Header, Body: body}, nil
}

// holdStream opens an event stream and holds it without reading it: the
// caller closes the returned connection. A refused stream returns nil and
// the answer.
func (c *client) holdStream(path string) (net.Conn, *response, error) {
	nc, err := c.dialer().Dial("tcp", c.h.addr)
	if err != nil {
		return nil, nil, err
	}
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	request := "GET " + path + " HTTP/1.1\r\nHost: " + c.h.addr + "\r\nAccept: text/event-stream\r\n\r\n"
	if _, err := io.WriteString(nc, request); err != nil {
		nc.Close()
		return nil, nil, err
	}
	res, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("GET %s: %w", path, err)
	}
	c.record("SSE "+path, res)
	r := &response{Status: res.StatusCode, Header: res.Header}
	if res.StatusCode != http.StatusOK {
		r.Body, _ = io.ReadAll(io.LimitReader(res.Body, 4<<10))
		nc.Close()
		return nil, r, nil
	}
	return nc, r, nil
}

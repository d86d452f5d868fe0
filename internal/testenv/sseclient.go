package testenv

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// SSEClient reads a Server-Sent Events stream as a browser's EventSource
// does, for tests.
type SSEClient struct {
	t      testing.TB
	res    *http.Response
	cancel context.CancelFunc
	events chan SSEEvent
	// LastID is the last id: field seen, what a browser sends back as
	// Last-Event-ID when it reconnects.
	LastID string
	// Retry is the retry: advice, in milliseconds.
	Retry string
	// Ignore lists event types Next passes over (by default "presence").
	Ignore []string
}

// SSEEvent is one dispatched event.
type SSEEvent struct {
	ID, Event, Data string
}

// DialSSE opens a stream; header may carry Last-Event-ID or credentials. It
// returns the response status when the server does not answer 200.
func DialSSE(t testing.TB, url string, header http.Header) (*SSEClient, int, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		cancel()
		return nil, 0, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "text/event-stream")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		return nil, 0, err
	}
	if res.StatusCode != http.StatusOK {
		res.Body.Close()
		cancel()
		return nil, res.StatusCode, fmt.Errorf("status %d", res.StatusCode)
	}
	c := &SSEClient{t: t, res: res, cancel: cancel, events: make(chan SSEEvent, 4096), Ignore: []string{"presence"}}
	t.Cleanup(c.Close)
	go c.read()
	return c, res.StatusCode, nil
}

func (c *SSEClient) read() {
	defer close(c.events)
	br := bufio.NewReader(c.res.Body)
	var ev SSEEvent
	var data []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if len(data) > 0 || ev.Event != "" {
				ev.Data = strings.Join(data, "\n")
				c.events <- ev
			}
			ev, data = SSEEvent{ID: ev.ID}, nil
		case strings.HasPrefix(line, ":"):
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "id":
				ev.ID = value
			case "event":
				ev.Event = value
			case "data":
				data = append(data, value)
			case "retry":
				c.Retry = value
			}
		}
	}
}

// Next returns the next event within timeout; ok is false when the stream
// ended or nothing came.
func (c *SSEClient) Next(timeout time.Duration) (SSEEvent, bool) {
	deadline := time.After(timeout)
	for {
		select {
		case ev, ok := <-c.events:
			if ok && ev.ID != "" {
				c.LastID = ev.ID
			}
			if ok && slices.Contains(c.Ignore, ev.Event) {
				continue
			}
			return ev, ok
		case <-deadline:
			return SSEEvent{}, false
		}
	}
}

// MustNext returns the next event or fails the test.
func (c *SSEClient) MustNext(timeout time.Duration) SSEEvent {
	c.t.Helper()
	ev, ok := c.Next(timeout)
	if !ok {
		c.t.Fatalf("no event within %v", timeout)
	}
	return ev
}

// Close drops the stream, like a lost network.
func (c *SSEClient) Close() {
	c.cancel()
	c.res.Body.Close()
}

// End waits for the server to end the stream and returns the events that
// came before it ended, failing the test if it goes on past timeout.
func (c *SSEClient) End(timeout time.Duration) []SSEEvent {
	c.t.Helper()
	var got []SSEEvent
	deadline := time.After(timeout)
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				return got
			}
			if !slices.Contains(c.Ignore, ev.Event) {
				got = append(got, ev)
			}
		case <-deadline:
			c.t.Fatalf("the stream did not end within %v (after %d events)", timeout, len(got))
			return nil
		}
	}
}

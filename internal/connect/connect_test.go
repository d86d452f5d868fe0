package connect_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/connect"
)

func ask(t *testing.T, c *connect.Client, header http.Header) (connect.Answer, error) {
	t.Helper()
	r := httptest.NewRequest("GET", "/ws/x/", nil)
	r.Header = header
	return c.Authorize(context.Background(), r, connect.Request{Transport: "websocket", Path: "/ws/x/", Client: "127.0.0.1"})
}

// The client's credentials reach the app, and only those.
func TestForwardsCredentials(t *testing.T) {
	var got http.Header
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		_, _ = io.WriteString(w, `{"user":"7","groups":["a"]}`)
	}))
	defer app.Close()
	a, err := ask(t, connect.New(app.URL, connect.Options{}), http.Header{
		"Cookie": {"sessionid=s"}, "Authorization": {"Bearer t"}, "X-Secret": {"no"},
	})
	if err != nil || a.User != "7" || len(a.Groups) != 1 {
		t.Fatalf("answer %+v, %v", a, err)
	}
	if got.Get("Cookie") != "sessionid=s" || got.Get("Authorization") != "Bearer t" || got.Get("X-Secret") != "" || got.Get("X-Forwarded-For") != "127.0.0.1" {
		t.Fatalf("the app got %v", got)
	}
}

// Every unusable answer is ErrUnavailable, a refusal ErrDenied with the
// app's reason, cleaned for the client.
func TestAnswers(t *testing.T) {
	for name, tc := range map[string]struct {
		status int
		body   string
		want   error
		reason string
	}{
		"denied json":    {403, `{"message":"no session"}`, connect.ErrDenied, "no session"},
		"denied drf":     {401, `{"detail":"Not signed in"}`, connect.ErrDenied, "Not signed in"},
		"denied text":    {403, "go away\x1b[31m\n", connect.ErrDenied, "go away [31m"},
		"denied html":    {403, "<html>" + strings.Repeat("x", 10000), connect.ErrDenied, "not allowed"},
		"denied long":    {403, strings.Repeat("é", 500), connect.ErrDenied, strings.Repeat("é", 100)},
		"server error":   {502, "", connect.ErrUnavailable, "HTTP 502"},
		"redirect":       {302, "", connect.ErrUnavailable, "HTTP 302"},
		"not json":       {200, "ok", connect.ErrUnavailable, "not {"},
		"unknown field":  {200, `{"user":"1","groups":[],"admin":true}`, connect.ErrUnavailable, "not {"},
		"wrong type":     {200, `{"user":1}`, connect.ErrUnavailable, "not {"},
		"two values":     {200, `{"user":"1"}{"user":"2"}`, connect.ErrUnavailable, "not {"},
		"huge":           {200, `{"user":"` + strings.Repeat("x", 70<<10) + `"}`, connect.ErrUnavailable, "larger than"},
		"long user":      {200, `{"user":"` + strings.Repeat("x", 300) + `"}`, connect.ErrUnavailable, "longer than"},
		"too many group": {200, `{"user":"1","groups":["a","b","c"]}`, connect.ErrUnavailable, "more than the 2"},
	} {
		t.Run(name, func(t *testing.T) {
			app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.status == 302 {
					w.Header().Set("Location", "http://127.0.0.1:1/")
				}
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			}))
			defer app.Close()
			_, err := ask(t, connect.New(app.URL, connect.Options{MaxGroups: 2}), nil)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("err = %v; want %v saying %q", err, tc.want, tc.reason)
			}
		})
	}
}

// Calls in flight are bounded: one more waits for a turn within the
// timeout and then gives up, without calling the app.
func TestConcurrencyBound(t *testing.T) {
	release, entered := make(chan struct{}), make(chan struct{}, 4)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		_, _ = io.WriteString(w, `{"user":"1"}`)
	}))
	defer app.Close()
	defer close(release)
	c := connect.New(app.URL, connect.Options{Concurrent: 1, Timeout: 30 * time.Second})
	go func() { _, _ = ask(t, c, nil) }()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	r := httptest.NewRequest("GET", "/ws/", nil)
	_, err := c.Authorize(ctx, r, connect.Request{})
	if !errors.Is(err, connect.ErrUnavailable) || !strings.Contains(err.Error(), "waiting") {
		t.Fatalf("err = %v; want ErrUnavailable for waiting", err)
	}
	if len(entered) != 0 {
		t.Fatal("the waiting call reached the app")
	}
}

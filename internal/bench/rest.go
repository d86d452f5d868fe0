package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// restClient calls herald's REST API over a pool of keep-alive connections,
// each request to the next of its base URLs in turn.
type restClient struct {
	bases []string
	next  atomic.Uint64
	hc    *http.Client
}

func newREST(bases []string, conns int, timeout time.Duration) *restClient {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	return &restClient{bases: bases, hc: &http.Client{Transport: tr, Timeout: timeout}}
}

// base is the server the next request goes to.
func (c *restClient) base() string {
	if len(c.bases) == 1 {
		return c.bases[0]
	}
	return c.bases[(c.next.Add(1)-1)%uint64(len(c.bases))]
}

func (c *restClient) close() { c.hc.CloseIdleConnections() }

// restError is an answer with an unexpected status.
type restError struct {
	method, path string
	status       int
	body         string
}

func (e *restError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d: %s", e.method, e.path, e.status, e.body)
}

// call sends one request and returns the body of an answer with status want.
func (c *restClient) call(ctx context.Context, method, path, token string, body []byte, want int) ([]byte, error) {
	return c.callAt(ctx, c.base(), method, path, token, body, want)
}

// callAt is call to the server at base.
func (c *restClient) callAt(ctx context.Context, base, method, path, token string, body []byte, want int) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if res.StatusCode != want {
		if len(raw) > 300 {
			raw = raw[:300]
		}
		if len(c.bases) > 1 {
			path = base + path
		}
		return raw, &restError{method, path, res.StatusCode, string(bytes.TrimSpace(raw))}
	}
	return raw, nil
}

// callJSON sends in as JSON and decodes the answer into out (if not nil).
func (c *restClient) callJSON(ctx context.Context, method, path, token string, in any, want int, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	raw, err := c.call(ctx, method, path, token, body, want)
	if err != nil {
		return err
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: bad JSON answer: %w", method, path, err)
		}
	}
	return nil
}

// waitReady polls /healthz until every server answers.
func (c *restClient) waitReady(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	for _, base := range c.bases {
		var last error
		for {
			_, err := c.callAt(ctx, base, "GET", "/healthz", "", nil, http.StatusOK)
			if err == nil {
				break
			}
			last = err
			if !time.Now().Before(deadline) {
				return fmt.Errorf("herald at %s is not answering /healthz: %v", base, last)
			}
			if err := sleep(ctx, 100*time.Millisecond); err != nil {
				return err
			}
		}
	}
	return nil
}

// user is an account the bench created and signed in.
type user struct {
	ID    int64
	Name  string
	Token string
}

// password is the bench accounts' password: long enough, not numeric.
func (e *env) password() string { return "bench-pw-" + e.runID }

// newUser registers name and signs it in: two password hashes on the
// server (argon2id), the slow part of setting up a scenario.
func (e *env) newUser(ctx context.Context, name string) (user, error) {
	var u struct {
		ID int64 `json:"id"`
	}
	pw := e.password()
	if err := e.rest.callJSON(ctx, "POST", "/api/auth/register/", "", map[string]string{"username": name, "password": pw}, http.StatusCreated, &u); err != nil {
		return user{}, err
	}
	var tok struct {
		Access string `json:"access"`
	}
	if err := e.rest.callJSON(ctx, "POST", "/api/auth/token/", "", map[string]string{"username": name, "password": pw}, http.StatusOK, &tok); err != nil {
		return user{}, err
	}
	return user{ID: u.ID, Name: name, Token: tok.Access}, nil
}

// newUsers creates n users named <prefix><k> with at most
// RegisterConcurrency sign-ups at once.
func (e *env) newUsers(ctx context.Context, prefix string, n int) ([]user, error) {
	users := make([]user, n)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs error
		done int
	)
	sem := make(chan struct{}, e.o.RegisterConcurrency)
	e.setPhase("setup", func() string {
		mu.Lock()
		defer mu.Unlock()
		return fmt.Sprintf("setup: %d/%d accounts %s* registered and signed in", done, n, prefix)
	})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for k := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			u, err := e.newUser(ctx, prefix+strconv.Itoa(k))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if errs == nil {
					errs = fmt.Errorf("create user %s%d: %w", prefix, k, err)
				}
				cancel()
				return
			}
			users[k] = u
			done++
		}()
	}
	wg.Wait()
	if errs != nil {
		return nil, errs
	}
	return users, ctx.Err()
}

// newCampaign starts an active campaign owned by owner. With pad > 0 its
// description is padded so that the campaign_data message is about pad
// bytes.
func (e *env) newCampaign(ctx context.Context, owner user, title string, pad int) (int64, error) {
	var c struct {
		ID int64 `json:"id"`
	}
	in := map[string]string{"title": title, "goal_amount": "1000.00", "status": "active"}
	if err := e.rest.callJSON(ctx, "POST", "/api/campaigns/", owner.Token, in, http.StatusCreated, &c); err != nil {
		return 0, err
	}
	if pad <= 0 {
		return c.ID, nil
	}
	path := "/api/campaigns/" + strconv.FormatInt(c.ID, 10) + "/"
	raw, err := e.rest.call(ctx, "GET", path, "", nil, http.StatusOK)
	if err != nil {
		return 0, err
	}
	// campaign_data is {"type":"campaign_data","data":<the REST JSON>}.
	size := len(raw) + len(`{"type":"campaign_data","data":}`)
	if extra := pad - size; extra > 0 {
		desc := fillText(min(extra, 20000))
		if err := e.rest.callJSON(ctx, "PATCH", path, owner.Token, map[string]string{"description": desc}, http.StatusOK, nil); err != nil {
			return 0, err
		}
	}
	return c.ID, nil
}

// fillText is n bytes of readable filler that JSON does not escape.
func fillText(n int) string {
	const words = "herald load test filler text, "
	b := make([]byte, n)
	for i := range b {
		b[i] = words[i%len(words)]
	}
	return string(b)
}

func (e *env) newQuest(ctx context.Context, creator user, title string) (int64, error) {
	var q struct {
		ID int64 `json:"id"`
	}
	err := e.rest.callJSON(ctx, "POST", "/api/quests/", creator.Token, map[string]string{"title": title, "description": "bench quest"}, http.StatusCreated, &q)
	return q.ID, err
}

func (e *env) apply(ctx context.Context, applicant user, questID int64) (int64, error) {
	var a struct {
		ID int64 `json:"id"`
	}
	err := e.rest.callJSON(ctx, "POST", "/api/quests/"+strconv.FormatInt(questID, 10)+"/applications/", applicant.Token,
		map[string]string{"message": "bench"}, http.StatusCreated, &a)
	return a.ID, err
}

func (e *env) setStatus(ctx context.Context, creator user, appID int64, status string) error {
	_, err := e.rest.call(ctx, "PATCH", "/api/applications/"+strconv.FormatInt(appID, 10)+"/", creator.Token,
		[]byte(`{"status":"`+status+`"}`), http.StatusOK)
	return err
}

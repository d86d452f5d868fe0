package hostile

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// stormCase sends n password checks at once.
type stormCase struct {
	name      string
	n         int
	addresses int // how many client addresses the requests come from
	path      string
	body      func(i int) string
	allowed   []int // the statuses allowed (503 only with Retry-After)
	check     func(t *testing.T, counts map[int]int)
}

func stormCases() []hcase {
	signIn := func(user func(i int) string) func(int) string {
		return func(i int) string { return fmt.Sprintf(`{"username":%q,"password":"not the password"}`, user(i)) }
	}
	ghost := func(i int) string { return fmt.Sprintf("ghost-%d", i) }
	refused := []int{unauth, http.StatusTooManyRequests, http.StatusServiceUnavailable}
	atMost := func(status, n int) func(*testing.T, map[int]int) {
		return func(t *testing.T, counts map[int]int) {
			if counts[status] > n {
				t.Errorf("%d answers %d, want at most %d: the throttle let concurrent attempts through (%v)", counts[status], status, n, counts)
			}
		}
	}
	scs := []stormCase{
		{name: "200 unknown users from one address", n: 200, addresses: 1, path: "/api/auth/token/", body: signIn(ghost),
			allowed: refused, check: atMost(unauth, 20)},
		{name: "200 unknown users from 200 addresses", n: 200, addresses: 200, path: "/api/auth/token/", body: signIn(ghost), allowed: refused},
		{name: "200 cookie sign-ins from 200 addresses", n: 200, addresses: 200, path: "/api/auth/session/", body: signIn(ghost), allowed: refused},
		{name: "15 wrong passwords for one account", n: 15, addresses: 15, path: "/api/auth/token/",
			body: signIn(func(int) string { return "carol" }), allowed: refused, check: atMost(unauth, 5)},
		{name: "40 failures from one address", n: 40, addresses: 1, path: "/api/auth/token/", body: signIn(ghost),
			allowed: refused, check: atMost(unauth, 20)},
		{name: "50 registrations from one address", n: 50, addresses: 1, path: "/api/auth/register/",
			body: func(i int) string {
				return fmt.Sprintf(`{"username":"storm-%d","email":"storm-%d@example.com","password":"a long enough password"}`, i, i)
			},
			allowed: []int{created, badRequest, http.StatusTooManyRequests, http.StatusServiceUnavailable},
			check: func(t *testing.T, counts map[int]int) {
				if counts[http.StatusTooManyRequests]+counts[http.StatusServiceUnavailable] == 0 {
					t.Errorf("50 registrations at once from one address were all served (%v); want them throttled", counts)
				}
			}},
	}
	out := make([]hcase, len(scs))
	for i, sc := range scs {
		out[i] = hcase{name: "storms/" + sc.name, run: sc.run}
	}
	return out
}

func (sc stormCase) run(t *testing.T, h *herald) {
	clients := make([]*client, sc.addresses)
	for i := range clients {
		clients[i] = h.client(t)
	}
	peak, stopSampling := h.sampleRSS()
	start := make(chan struct{})
	statuses := make([]*response, sc.n)
	errs := make([]error, sc.n)
	var wg sync.WaitGroup
	for i := range sc.n {
		wg.Go(func() {
			<-start
			statuses[i], errs[i] = clients[i%len(clients)].do(jsonReq("POST", sc.path, "", sc.body(i)))
		})
	}
	began := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(began)
	stopSampling()

	counts := map[int]int{}
	var unanswered, wrong []string
	for i, r := range statuses {
		if errs[i] != nil {
			unanswered = append(unanswered, errs[i].Error())
			continue
		}
		counts[r.Status]++
		if !slices.Contains(sc.allowed, r.Status) || (r.Status == http.StatusServiceUnavailable && r.Header.Get("Retry-After") == "") {
			wrong = append(wrong, fmt.Sprintf("%s (Retry-After %q)", r, r.Header.Get("Retry-After")))
		}
	}
	rss := "unknown"
	if p := peak(); p > 0 {
		rss = fmt.Sprintf("%.1f MiB", p/(1<<20))
	}
	t.Logf("%d requests in %v (%.0f/s): %v; peak RSS %s", sc.n, elapsed.Round(time.Millisecond),
		float64(sc.n)/elapsed.Seconds(), counts, rss)
	if limit := stormRSSLimit(); peak() > limit {
		t.Errorf("RSS reached %s during the storm; want at most %.0f MiB", rss, limit/(1<<20))
	}
	if len(unanswered) > 0 {
		h.overwhelmed.Store(true)
		t.Errorf("%d of %d requests got no answer; the first: %s", len(unanswered), sc.n, unanswered[0])
	}
	if len(wrong) > 0 {
		t.Errorf("%d of %d answers are not among %v (503 only with Retry-After); the first: %s", len(wrong), sc.n, sc.allowed, wrong[0])
	}
	if sc.check != nil {
		sc.check(t, counts)
	}
}

// stormRSSLimit is the most RSS a storm may take the process to: issue
// 13's target of 200 MiB on two cores. Password hashing (19 MiB each) runs
// about one per core, so a larger machine may hold more at once.
func stormRSSLimit() float64 {
	return float64(200<<20 + 40<<20*max(0, runtime.NumCPU()-2))
}

// sampleRSS reads the process's RSS every 50 ms until stop is called;
// peak is the highest it saw.
func (h *herald) sampleRSS() (peak func() float64, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var highest float64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if m, err := h.metrics(); err == nil {
				if v, ok := sum(m, "process_resident_memory_bytes"); ok {
					mu.Lock()
					highest = max(highest, v)
					mu.Unlock()
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	peak = func() float64 {
		mu.Lock()
		defer mu.Unlock()
		return highest
	}
	return peak, stop
}

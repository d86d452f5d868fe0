package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// serverMetrics are the figures read from the server's Prometheus /metrics
// page beside the ones measured from outside: its own view of memory,
// goroutines, connections and deliveries. Series of one name are summed
// over their labels.
var serverMetrics = []string{
	"go_memstats_heap_inuse_bytes", "go_memstats_heap_alloc_bytes", "go_memstats_stack_inuse_bytes",
	"go_memstats_sys_bytes", "go_memstats_heap_released_bytes", "go_goroutines", "go_gc_duration_seconds_count",
	"herald_realtime_connections", "herald_realtime_deliveries_total", "herald_realtime_dropped_total",
	"herald_realtime_slow_consumers_total", "herald_realtime_handshakes_refused_total",
	"herald_events_published_total",
}

// scrape reads the wanted series from base+"/metrics"; nil when the server
// has no metrics page.
func scrape(ctx context.Context, hc *http.Client, url string) map[string]float64 {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return nil
	}
	res, err := hc.Do(req)
	if err != nil {
		return nil
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, res.Body)
		return nil
	}
	return parseMetrics(res.Body, serverMetrics)
}

// parseMetrics sums, per wanted name, the samples of the Prometheus text
// format in r.
func parseMetrics(r io.Reader, names []string) map[string]float64 {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, ok := strings.Cut(line, " ")
		if i := strings.IndexByte(line, '{'); i >= 0 && i < len(name) {
			name = line[:i]
			j := strings.LastIndexByte(line, '}')
			if j < 0 {
				continue
			}
			rest = strings.TrimSpace(line[j+1:])
			ok = true
		}
		if !ok || !want[name] {
			continue
		}
		if f := strings.Fields(rest); len(f) > 0 {
			if v, err := strconv.ParseFloat(f[0], 64); err == nil {
				out[name] += v
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// metrics reads the servers' metrics pages, each series summed over the
// processes; nil when one has none.
func (e *env) metrics(ctx context.Context) map[string]float64 {
	var sum map[string]float64
	for i := range e.targets {
		m := scrape(ctx, e.rest.hc, e.metricsURL(i))
		if m == nil {
			return nil
		}
		if sum == nil {
			sum = m
			continue
		}
		for k, v := range m {
			sum[k] += v
		}
	}
	return sum
}

// metricsURL is where target i serves its metrics: its admin address when
// the bench knows it (--spawn, or --admin-addr), else its main address,
// where herald serves them only with --public-metrics.
func (e *env) metricsURL(i int) string {
	if len(e.admins) == len(e.targets) {
		return e.admins[i] + "/metrics"
	}
	return e.targets[i].HTTP + "/metrics"
}

// gcServer asks the server for a heap profile with gc=1 — the one way to
// make a running Go server collect from outside — through its admin
// address; false when there is none.
func (e *env) gcServer(ctx context.Context) bool {
	if len(e.admins) == 0 {
		return false
	}
	for _, admin := range e.admins {
		for range 2 { // sync.Pool caches survive one cycle
			if err := e.forceGC(ctx, admin); err != nil {
				e.note("forcing a GC in the server: %v", err)
				return false
			}
		}
	}
	return true
}

// forceGC asks the server at admin for a heap profile with gc=1.
func (e *env) forceGC(ctx context.Context, admin string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", admin+"/debug/pprof/heap?gc=1", nil)
	if err != nil {
		return err
	}
	res, err := e.rest.hc.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	return res.Body.Close()
}

// delta is after-before of one metric, 0 when either is missing.
func delta(before, after map[string]float64, name string) float64 {
	if before == nil || after == nil {
		return 0
	}
	// A counter with no sample yet (a labelled series never incremented)
	// stands at zero.
	return after[name] - before[name]
}

func metricText(m map[string]float64, name string) string {
	v, ok := m[name]
	if !ok {
		return "n/a"
	}
	return fmt.Sprintf("%.0f", v)
}

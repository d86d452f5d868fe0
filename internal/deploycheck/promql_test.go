package deploycheck

import (
	"slices"
	"strings"
	"testing"
)

// MetricNames finds the metrics an expression selects and nothing else:
// not functions, aggregations, keywords, label names or values, durations,
// numbers or Grafana variables.
func TestMetricNames(t *testing.T) {
	for _, c := range []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`up{job="herald"} == 0`, []string{"up"}},
		{`herald_ready{job=~"$job", instance=~"$instance"}`, []string{"herald_ready"}},
		{`sum by (transport) (herald_realtime_connections{job=~"$job"})`, []string{"herald_realtime_connections"}},
		{`sum(rate(herald_realtime_deliveries_total[$__rate_interval])) by (instance)`, []string{"herald_realtime_deliveries_total"}},
		{`histogram_quantile(0.99, sum by (route, le) (rate(herald_http_request_duration_seconds_bucket{code=~"5.."}[5m])))`,
			[]string{"herald_http_request_duration_seconds_bucket"}},
		{"sum without (route, method, code) (rate(a_count{code=~\"5..\"}[5m]))\n  / sum without (route) (rate(a_count[5m])) > 0.05",
			[]string{"a_count"}},
		{`max without (instance) (herald_outbox_oldest_pending_age_seconds) > 30`, []string{"herald_outbox_oldest_pending_age_seconds"}},
		{`increase(herald_panics_total[10m]) > 0`, []string{"herald_panics_total"}},
		{`a / on (instance) group_left (version) b`, []string{"a", "b"}},
		{`a and ignoring(x) b or c unless d`, []string{"a", "b", "c", "d"}},
		{`rate(x[5m] offset 1h) * 1e3 + 0x1f - 1.5e-3`, []string{"x"}},
		{`max_over_time(x[1h:5m]) > bool 2`, []string{"x"}},
		{`x @ start()`, []string{"x"}},
		{`{__name__="job:requests:rate5m", job="a"}`, []string{"job:requests:rate5m"}},
		{`label_replace(up, "dst", "$1", "src", "(by|sum) (.*)")`, []string{"up"}},
		{`count_values("version", build_info)`, []string{"build_info"}},
		{`topk(5, sum by (route) (rate(req_total{route="/api/{id}/"}[${__rate_interval}])))`, []string{"req_total"}},
		{`vector(1) + scalar(foo)`, []string{"foo"}},
		{"# a comment naming not_a_metric\nbar", []string{"bar"}},
		{`SUM BY (le) (Foo)`, []string{"Foo"}},
		{`a + a`, []string{"a"}},
	} {
		got, err := MetricNames(c.expr)
		if err != nil {
			t.Errorf("MetricNames(%q): %v", c.expr, err)
			continue
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("MetricNames(%q) = %q, want %q", c.expr, got, c.want)
		}
	}
}

// What cannot be read is an error, never a guess.
func TestMetricNamesErrors(t *testing.T) {
	for _, expr := range []string{
		`up{job="herald"`,
		`up{job="herald}`,
		`rate(x[5m)`,
		`sum(rate(x[5m])`,
		`sum(x))`,
		`sum by (le (x)`,
		`{__name__=~"herald_.*"}`,
		`{__name__!="up"}`,
	} {
		if got, err := MetricNames(expr); err == nil {
			t.Errorf("MetricNames(%q) = %q, want an error", expr, got)
		} else if !strings.Contains(err.Error(), "unclosed") && !strings.Contains(err.Error(), "unbalanced") && !strings.Contains(err.Error(), "__name__") {
			t.Errorf("MetricNames(%q): %v", expr, err)
		}
	}
}

// FuzzMetricNames: whatever the expression, MetricNames returns, without
// panicking, either an error or sorted distinct names, each a part of the
// expression.
func FuzzMetricNames(f *testing.F) {
	for _, s := range []string{
		``, `up`, `sum by (job) (rate(herald_http_requests_total{code=~"5.."}[5m]))`,
		`{__name__="x"}`, `{__name__!="x"}`, `{__name__=`, `a{b="\"}`, "`", `1e+3 + .5`, `e`, `0x1f`,
		`histogram_quantile(0.99, sum by (le) (rate(x_bucket[$__rate_interval])))`, `${job`, `$`, `# only`,
		`a offset 5m`, `x @ end()`, `on(`, `by (`, `{`, `[`, `((`, `)`, `"\`, `{a="b",__name__ = 'c'}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		names, err := MetricNames(expr)
		if err != nil {
			return
		}
		for i, n := range names {
			if n == "" && !strings.Contains(expr, `__name__`) {
				t.Fatalf("%q: an empty name", expr)
			}
			if !strings.Contains(expr, n) {
				t.Fatalf("%q: name %q is not in it", expr, n)
			}
			if i > 0 && names[i-1] >= n {
				t.Fatalf("%q: names %q not sorted and distinct", expr, names)
			}
		}
	})
}

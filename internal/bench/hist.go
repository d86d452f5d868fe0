package bench

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram records durations (nanoseconds) in log-linear buckets: values
// below 128 ns exactly, above that 64 buckets per power of two, so a
// percentile read from it is within 1/64 (1.6 %) of the true sample. It is
// safe for concurrent use and records without allocating or locking, so
// every reader goroutine can write into one shared histogram.
type Histogram struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Uint64
	max    atomic.Int64
	min    atomic.Int64 // 0 until the first record; stored as value+1
}

const (
	histSubBits = 6
	histSub     = 1 << histSubBits                     // sub-buckets per power of two
	histExact   = 2 * histSub                          // values below this have a bucket each
	histBuckets = histExact + (62-histSubBits)*histSub // int64 values are below 2^63
)

// bucketOf is the index of v's bucket.
func bucketOf(v int64) int {
	if v < histExact {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	e := bits.Len64(uint64(v)) - 1 // 2^e <= v < 2^(e+1), e >= 7
	sub := int(uint64(v)>>(e-histSubBits)) - histSub
	return histExact + (e-histSubBits-1)*histSub + sub
}

// bucketRange is the smallest and largest value of bucket i.
func bucketRange(i int) (lo, hi int64) {
	if i < histExact {
		return int64(i), int64(i)
	}
	j := i - histExact
	e := j/histSub + histSubBits + 1
	sub := j % histSub
	width := int64(1) << (e - histSubBits)
	lo = int64(histSub+sub) << (e - histSubBits)
	return lo, lo + width - 1
}

// Record adds one duration.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(v)].Add(1)
	h.n.Add(1)
	h.sum.Add(uint64(v))
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			break
		}
	}
	for {
		m := h.min.Load()
		if (m != 0 && v+1 >= m) || h.min.CompareAndSwap(m, v+1) {
			break
		}
	}
}

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.n.Load() }

// Max is the largest recorded value.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Min is the smallest recorded value (0 when empty).
func (h *Histogram) Min() time.Duration {
	if m := h.min.Load(); m > 0 {
		return time.Duration(m - 1)
	}
	return 0
}

// Mean is the average recorded value.
func (h *Histogram) Mean() time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / n)
}

// Quantile is the nearest-rank q-quantile (0 < q <= 1): the smallest value
// with at least q of the samples at or below it, read as the middle of its
// bucket and never above the largest value recorded.
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	rank = min(max(rank, 1), n)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			lo, hi := bucketRange(i)
			mid := lo + (hi-lo)/2
			return time.Duration(min(max(mid, int64(h.Min())), h.max.Load()))
		}
	}
	return h.Max()
}

// Merge adds other's samples to h.
func (h *Histogram) Merge(other *Histogram) {
	if other.Count() == 0 {
		return
	}
	for i := range other.counts {
		if c := other.counts[i].Load(); c > 0 {
			h.counts[i].Add(c)
		}
	}
	h.n.Add(other.n.Load())
	h.sum.Add(other.sum.Load())
	if m := other.max.Load(); m > h.max.Load() {
		h.max.Store(m)
	}
	if m := other.min.Load(); m > 0 && (h.min.Load() == 0 || m < h.min.Load()) {
		h.min.Store(m)
	}
}

// Bin is one bar of a latency chart: the samples in [LoMs, HiMs).
type Bin struct {
	LoMs  float64 `json:"lo_ms"`
	HiMs  float64 `json:"hi_ms"`
	Count uint64  `json:"count"`
}

// Bins groups the samples into log-scaled bins of perDecade bins per power
// of ten, from the decade of the smallest sample to the decade above the
// largest. Each fine bucket goes to the bin its middle falls in.
func (h *Histogram) Bins(perDecade int) []Bin {
	if h.Count() == 0 || perDecade <= 0 {
		return nil
	}
	lowest := max(h.Min(), time.Microsecond)
	loDec := math.Floor(math.Log10(float64(lowest)))
	hiDec := math.Floor(math.Log10(float64(max(h.Max(), lowest)))) + 1
	n := int(hiDec-loDec) * perDecade
	out := make([]Bin, n)
	edge := func(k int) float64 { return math.Pow(10, loDec+float64(k)/float64(perDecade)) }
	for k := range out {
		out[k] = Bin{LoMs: edge(k) / 1e6, HiMs: edge(k+1) / 1e6}
	}
	for i := range h.counts {
		c := h.counts[i].Load()
		if c == 0 {
			continue
		}
		lo, hi := bucketRange(i)
		mid := float64(lo) + float64(hi-lo)/2
		k := 0
		if mid > 0 {
			k = int(math.Floor((math.Log10(mid) - loDec) * float64(perDecade)))
		}
		out[min(max(k, 0), n-1)].Count += c
	}
	return out
}

// Latency is a histogram's summary as written in results, in milliseconds.
type Latency struct {
	Count  uint64  `json:"count"`
	MeanMs float64 `json:"mean_ms"`
	P50Ms  float64 `json:"p50_ms"`
	P95Ms  float64 `json:"p95_ms"`
	P99Ms  float64 `json:"p99_ms"`
	P999Ms float64 `json:"p999_ms"`
	MaxMs  float64 `json:"max_ms"`
	// Bins is the chart of the distribution (log-scaled), when kept.
	Bins []Bin `json:"bins,omitempty"`
}

// Summary summarizes h; with bins it also keeps the log-scaled chart data.
func (h *Histogram) Summary(bins bool) Latency {
	l := Latency{
		Count: h.Count(), MeanMs: ms(h.Mean()), P50Ms: ms(h.Quantile(0.50)), P95Ms: ms(h.Quantile(0.95)),
		P99Ms: ms(h.Quantile(0.99)), P999Ms: ms(h.Quantile(0.999)), MaxMs: ms(h.Max()),
	}
	if bins {
		l.Bins = h.Bins(10)
	}
	return l
}

// ms converts to milliseconds rounded to the microsecond.
func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

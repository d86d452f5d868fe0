package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

// Every value falls in the bucket whose range holds it, and the buckets
// tile the number line without gaps or overlaps.
func TestBucketsTile(t *testing.T) {
	var prevHi int64 = -1
	for i := range histBuckets {
		lo, hi := bucketRange(i)
		if lo != prevHi+1 || hi < lo {
			t.Fatalf("bucket %d is [%d, %d], previous ended at %d", i, lo, hi, prevHi)
		}
		if bucketOf(lo) != i || bucketOf(hi) != i {
			t.Fatalf("bucket %d [%d, %d]: bucketOf gives %d and %d", i, lo, hi, bucketOf(lo), bucketOf(hi))
		}
		if lo >= histExact && float64(hi-lo+1)/float64(lo) > 1.0/histSub+1e-12 {
			t.Fatalf("bucket %d [%d, %d] is wider than 1/%d of its start", i, lo, hi, histSub)
		}
		prevHi = hi
		if hi == math.MaxInt64 {
			if i != histBuckets-1 {
				t.Fatalf("bucket %d reaches MaxInt64 before the last one", i)
			}
			break
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		v := rng.Int64N(1 << uint(rng.IntN(62)+1))
		lo, hi := bucketRange(bucketOf(v))
		if v < lo || v > hi {
			t.Fatalf("%d in bucket [%d, %d]", v, lo, hi)
		}
	}
}

// exact is the nearest-rank quantile of sorted samples.
func exact(sorted []time.Duration, q float64) time.Duration {
	r := int(math.Ceil(q * float64(len(sorted))))
	return sorted[min(max(r, 1), len(sorted))-1]
}

// Percentiles read from the histogram are within a bucket's width (1/64)
// of the exact ones, for a long-tailed latency-like distribution.
func TestQuantilesMatchExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var h Histogram
	var samples []time.Duration
	for range 200000 {
		// log-normal around 2 ms with a long tail
		d := time.Duration(math.Exp(rng.NormFloat64()*1.2 + math.Log(2e6)))
		samples = append(samples, d)
		h.Record(d)
	}
	slices.Sort(samples)
	for _, q := range []float64{0.01, 0.5, 0.9, 0.95, 0.99, 0.999, 1} {
		got, want := h.Quantile(q), exact(samples, q)
		if rel := math.Abs(float64(got-want)) / float64(want); rel > 1.0/histSub {
			t.Errorf("q%.3f: histogram %v, exact %v (%.2f%% off)", q, got, want, rel*100)
		}
	}
	if h.Count() != uint64(len(samples)) || h.Max() != samples[len(samples)-1] || h.Min() != samples[0] {
		t.Errorf("count %d max %v min %v; want %d %v %v", h.Count(), h.Max(), h.Min(), len(samples), samples[len(samples)-1], samples[0])
	}
	var sum time.Duration
	for _, s := range samples {
		sum += s
	}
	if mean := sum / time.Duration(len(samples)); h.Mean() != mean {
		t.Errorf("mean %v, want %v", h.Mean(), mean)
	}
}

func TestQuantileSmallAndEmpty(t *testing.T) {
	var h Histogram
	if h.Quantile(0.99) != 0 || h.Max() != 0 || h.Mean() != 0 || h.Min() != 0 || h.Bins(10) != nil {
		t.Fatal("an empty histogram should read all zeros")
	}
	for _, v := range []time.Duration{5, 1, 3, 2, 4} { // exact below 128 ns
		h.Record(v)
	}
	for q, want := range map[float64]time.Duration{0.2: 1, 0.5: 3, 0.6: 3, 0.8: 4, 0.99: 5, 1: 5} {
		if got := h.Quantile(q); got != want {
			t.Errorf("q%.2f = %v, want %v", q, got, want)
		}
	}
	h.Record(-time.Second) // clock went backwards: counted as zero
	if h.Min() != 0 || h.Count() != 6 {
		t.Errorf("negative sample: min %v count %d", h.Min(), h.Count())
	}
}

// Concurrent recorders lose nothing (run with -race).
func TestHistogramConcurrent(t *testing.T) {
	var h Histogram
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10000 {
				h.Record(time.Duration(g*10000+i) * time.Microsecond)
			}
		}()
	}
	wg.Wait()
	if h.Count() != 80000 || h.Max() != 79999*time.Microsecond || h.Min() != 0 {
		t.Fatalf("count %d max %v min %v", h.Count(), h.Max(), h.Min())
	}
	var other Histogram
	other.Record(time.Hour)
	h.Merge(&other)
	if h.Count() != 80001 || h.Max() != time.Hour {
		t.Fatalf("after merge: count %d max %v", h.Count(), h.Max())
	}
}

// Bins are log-spaced, contiguous, cover min..max and hold every sample.
func TestBins(t *testing.T) {
	var h Histogram
	for _, d := range []time.Duration{150 * time.Microsecond, 2 * time.Millisecond, 2 * time.Millisecond, 40 * time.Millisecond, 1300 * time.Millisecond} {
		h.Record(d)
	}
	bins := h.Bins(10)
	// decades 1e5 ns (0.1 ms) .. 1e10 ns (10 s): 5 decades × 10
	if len(bins) != 50 {
		t.Fatalf("%d bins, want 50: first %v last %v", len(bins), bins[0], bins[len(bins)-1])
	}
	var n uint64
	for i, b := range bins {
		n += b.Count
		if i > 0 && math.Abs(b.LoMs-bins[i-1].HiMs) > 1e-9*b.LoMs {
			t.Fatalf("bin %d starts at %v, previous ends at %v", i, b.LoMs, bins[i-1].HiMs)
		}
		if r := b.HiMs / b.LoMs; math.Abs(r-math.Pow(10, 0.1)) > 1e-9 {
			t.Fatalf("bin %d spans ×%v, want ×10^0.1", i, r)
		}
	}
	if n != h.Count() {
		t.Fatalf("bins hold %d samples, histogram %d", n, h.Count())
	}
	if bins[0].LoMs > 0.15 || bins[len(bins)-1].HiMs < 1300 {
		t.Fatalf("bins span %v–%v ms", bins[0].LoMs, bins[len(bins)-1].HiMs)
	}
	find := func(msv float64) uint64 {
		for _, b := range bins {
			if msv >= b.LoMs && msv < b.HiMs {
				return b.Count
			}
		}
		return 0
	}
	if find(2) != 2 || find(40) != 1 || find(1300) != 1 {
		t.Fatalf("samples in the wrong bins: %+v", bins)
	}
	s := h.Summary(true)
	if s.Count != 5 || s.MaxMs != 1300 || len(s.Bins) != 50 || s.P50Ms < 1.95 || s.P50Ms > 2.05 {
		t.Fatalf("summary %+v", s)
	}
}

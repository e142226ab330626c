package bench

import (
	"math"
	"slices"
	"time"
)

// Percentile returns the p-th percentile (0 to 100) of xs by the nearest-rank method, or 0 when
// xs is empty. xs is not modified.
func Percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return nearestRank(s, p)
}

func nearestRank(sorted []float64, p float64) float64 {
	p = math.Max(0, math.Min(100, p))
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[max(rank-1, 0)]
}

// Dist summarises a sample of durations, in milliseconds.
type Dist struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean_ms"`
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
}

// Distribution returns the summary of ds; the zero Dist when ds is empty.
func Distribution(ds []time.Duration) Dist {
	if len(ds) == 0 {
		return Dist{}
	}
	ms := make([]float64, len(ds))
	sum := 0.0
	for i, d := range ds {
		ms[i] = float64(d) / float64(time.Millisecond)
		sum += ms[i]
	}
	slices.Sort(ms)
	return Dist{
		N: len(ms), Mean: round3(sum / float64(len(ms))),
		P50: round3(nearestRank(ms, 50)), P90: round3(nearestRank(ms, 90)),
		P99: round3(nearestRank(ms, 99)), Max: round3(ms[len(ms)-1]),
	}
}

// round3 rounds x to three decimals, to keep reports readable.
func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

// Rate is count per second over d; 0 when d is not positive.
func Rate(count int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(count) / d.Seconds()
}

// SteadyWindow returns the rate of events between the lo-th and hi-th fractions of the sorted
// event times (e.g. 0.1 and 0.9): the throughput once a run has filled its pipeline and before
// its tail drains, which is what Little's law bounds. It returns 0 for fewer than 10 events.
func SteadyWindow(times []time.Time, lo, hi float64) float64 {
	if len(times) < 10 {
		return 0
	}
	s := slices.Clone(times)
	slices.SortFunc(s, func(a, b time.Time) int { return a.Compare(b) })
	i := int(lo * float64(len(s)-1))
	j := int(hi * float64(len(s)-1))
	if j <= i {
		return 0
	}
	return Rate(j-i, s[j].Sub(s[i]))
}

package store

import "testing"

// tiedRecall counts a paper at the k-th distance in one of the exact answer's places at that
// distance (ids among equal distances are arbitrary), never in place of a nearer paper missed.
func TestTiedRecallCountsTiesInTheirPlaces(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		got, exact []float64
		want       float64
	}{
		{"the exact answer", []float64{0.1, 0.2, 0.3}, []float64{0.1, 0.2, 0.3}, 1},
		{"in another order", []float64{0.3, 0.1, 0.2}, []float64{0.1, 0.2, 0.3}, 1},
		{"twins of the k-th fill their places", []float64{0.2, 0.2, 0.1}, []float64{0.1, 0.2, 0.2}, 1},
		{"twins do not replace a nearer paper", []float64{0.2, 0.2, 0.2}, []float64{0.1, 0.2, 0.2}, 2.0 / 3},
		{"a farther paper is a miss", []float64{0.1, 0.2, 0.4}, []float64{0.1, 0.2, 0.3}, 2.0 / 3},
		{"fewer results", []float64{0.1}, []float64{0.1, 0.2}, 0.5},
		{"nothing to find", nil, nil, 1},
	} {
		if got := tiedRecall(tc.got, tc.exact); got != tc.want {
			t.Errorf("%s: tiedRecall(%v, %v) = %g, want %g", tc.name, tc.got, tc.exact, got, tc.want)
		}
	}
}

package bench

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/store"
)

func TestPercentile(t *testing.T) {
	t.Parallel()
	xs := []float64{5, 1, 4, 2, 3, 10, 9, 8, 7, 6}
	for _, tc := range []struct {
		p    float64
		want float64
	}{{0, 1}, {10, 1}, {50, 5}, {90, 9}, {99, 10}, {100, 10}} {
		if got := Percentile(xs, tc.p); got != tc.want {
			t.Errorf("Percentile(p%g) = %g, want %g", tc.p, got, tc.want)
		}
	}
	if got := Percentile(nil, 50); got != 0 {
		t.Errorf("Percentile(empty) = %g, want 0", got)
	}
	if xs[0] != 5 {
		t.Error("Percentile sorted its input")
	}
}

func TestDistributionInMilliseconds(t *testing.T) {
	t.Parallel()
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	d := Distribution(ds)
	if d.N != 100 || d.P50 != 50 || d.P99 != 99 || d.Max != 100 || d.Mean != 50.5 {
		t.Errorf("Distribution = %+v", d)
	}
}

func TestSteadyWindowIgnoresRampAndTail(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(0, 0)
	var ts []time.Time
	// A slow start (1 event/s), a steady 100 events/s, a slow tail.
	for i := range 5 {
		ts = append(ts, t0.Add(time.Duration(i)*time.Second))
	}
	for i := range 100 {
		ts = append(ts, t0.Add(5*time.Second+time.Duration(i)*10*time.Millisecond))
	}
	for i := range 5 {
		ts = append(ts, t0.Add(7*time.Second+time.Duration(i)*time.Second))
	}
	got := SteadyWindow(ts, 0.1, 0.9)
	if got < 95 || got > 105 {
		t.Errorf("SteadyWindow = %.1f/s, want about 100/s", got)
	}
	if SteadyWindow(ts[:5], 0.1, 0.9) != 0 {
		t.Error("SteadyWindow of fewer than 10 events should be 0")
	}
}

func TestRecall(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		got, want []string
		recall    float64
	}{
		{[]string{"a", "b"}, []string{"a", "b"}, 1},
		{[]string{"b", "a"}, []string{"a", "b"}, 1},
		{[]string{"a", "x"}, []string{"a", "b"}, 0.5},
		{[]string{"a", "a"}, []string{"a", "b"}, 0.5},
		{nil, []string{"a"}, 0},
		{nil, nil, 1},
	} {
		if got := Recall(tc.got, tc.want); got != tc.recall {
			t.Errorf("Recall(%v, %v) = %g, want %g", tc.got, tc.want, got, tc.recall)
		}
	}
}

func TestExactKNNFindsNearestByCosine(t *testing.T) {
	t.Parallel()
	data := [][]float32{
		Normalize([]float32{1, 0, 0}),
		Normalize([]float32{1, 0.1, 0}),
		Normalize([]float32{0, 1, 0}),
		Normalize([]float32{1, 0.5, 0}),
		Normalize([]float32{-1, 0, 0}),
	}
	got := ExactKNN(data, []Query{{Vector: data[0], Exclude: 0}, {Vector: Normalize([]float32{0, 1, 0.1}), Exclude: -1}}, 2)
	if want := []int{1, 3}; !equalInts(got[0].IDs, want) {
		t.Errorf("neighbours of 0 leaving it out = %v, want %v", got[0].IDs, want)
	}
	if want := dot(data[0], data[3]); got[0].Kth != want {
		t.Errorf("the 2nd neighbour's similarity = %g, want %g", got[0].Kth, want)
	}
	if want := []int{2, 3}; !equalInts(got[1].IDs, want) {
		t.Errorf("neighbours of (0,1,0.1) = %v, want %v", got[1].IDs, want)
	}
}

// TestTieRecallCountsTiedPapersAsFound: a paper as similar as the exact k-th neighbour (the same
// vector under another index) is found in its place; two such papers do not make up for a
// nearer one missed; a less similar one, the excluded paper and a repeated result are not found.
func TestTieRecallCountsTiedPapersAsFound(t *testing.T) {
	t.Parallel()
	data := [][]float32{
		Normalize([]float32{1, 0, 0}),
		Normalize([]float32{1, 0.1, 0}),
		Normalize([]float32{1, 0.1, 0}), // 1's twin
		Normalize([]float32{1, 0.5, 0}),
		Normalize([]float32{0, 1, 0}),
	}
	q := Query{Vector: data[0], Exclude: -1}
	truth := ExactKNN(data, []Query{q}, 2)[0]
	if want := []int{0, 1}; !equalInts(truth.IDs, want) {
		t.Fatalf("exact answer = %v, want %v (ties by lower index)", truth.IDs, want)
	}
	for _, tc := range []struct {
		got  []int
		want float64
	}{
		{[]int{0, 1}, 1},
		{[]int{0, 2}, 1},   // the twin instead of 1: tied, found
		{[]int{2, 1}, 0.5}, // both twins: one place at their similarity, 0 missed
		{[]int{0, 3}, 0.5}, // 3 is farther than the 2nd neighbour
		{[]int{2, 2}, 0.5}, // one paper twice counts once
		{[]int{0, -1}, 0.5},
		{[]int{0, 1, 2}, 1}, // never above 1
		{[]int{3, 0}, 0.5},
		{nil, 0},
	} {
		if got := TieRecall(tc.got, truth, data, q); got != tc.want {
			t.Errorf("TieRecall(%v) = %g, want %g", tc.got, got, tc.want)
		}
	}
	excl := Query{Vector: data[0], Exclude: 0}
	truth = ExactKNN(data, []Query{excl}, 2)[0]
	if got := TieRecall([]int{0, 1}, truth, data, excl); got != 0.5 {
		t.Errorf("TieRecall with the excluded paper = %g, want 0.5", got)
	}
	if got := TieRecall(nil, Truth{}, data, q); got != 1 {
		t.Errorf("TieRecall of an empty truth = %g, want 1", got)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestParseAckSubject(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		subject  string
		consumer string
		seq      uint64
		ns       int64
		ok       bool
	}{
		{"$JS.ACK.PAPERS.workers.1.42.40.1764237000000000000.7", "workers", 42, 1764237000000000000, true},
		{"$JS.ACK.hub.ACCHASH.PAPERS.workers.2.43.41.1764237000000000001.0.token", "workers", 43, 1764237000000000001, true},
		{"$JS.ACK.PAPERS.workers.1.42.40.17.7.x", "", 0, 0, false},
		{"$JS.ACK.hub.ACCHASH.PAPERS.reprocess-ab.2.43.41.1764237000000000001.0", "reprocess-ab", 43, 1764237000000000001, true},
		{"_INBOX.abc", "", 0, 0, false},
		{"$JS.ACK.PAPERS.workers.1.x.40.17.7", "", 0, 0, false},
	} {
		a, err := parseAckSubject(tc.subject)
		if (err == nil) != tc.ok {
			t.Errorf("parseAckSubject(%q) error = %v, want ok=%v", tc.subject, err, tc.ok)
			continue
		}
		if tc.ok && (a.consumer != tc.consumer || a.seq != tc.seq || a.stored.UnixNano() != tc.ns) {
			t.Errorf("parseAckSubject(%q) = %+v", tc.subject, a)
		}
	}
}

func TestSentences(t *testing.T) {
	t.Parallel()
	got := sentences("We study X. It works! Does it? Yes")
	want := []string{"We study X.", "It works!", "Does it?", "Yes"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("sentences = %q, want %q", got, want)
	}
}

func TestGenerateAbstractsAreDistinctAndDeterministic(t *testing.T) {
	t.Parallel()
	corpus := []paper.Abstract{
		{ID: "a", Title: "Sparse experts", Abstract: "We route tokens. Experts specialise. Loss balances load."},
		{ID: "b", Title: "Dense models", Abstract: "We scale width. Depth helps."},
	}
	a := GenerateAbstracts(corpus, 50, "t", 1)
	b := GenerateAbstracts(corpus, 50, "t", 1)
	ids, hashes := map[string]bool{}, map[string]bool{}
	for i := range a {
		if a[i].ID != b[i].ID || a[i].Abstract != b[i].Abstract {
			t.Fatalf("abstract %d differs between two runs with the same seed", i)
		}
		if ids[a[i].ID] || hashes[a[i].ContentHash()] {
			t.Fatalf("abstract %d repeats an id or a text", i)
		}
		ids[a[i].ID], hashes[a[i].ContentHash()] = true, true
		if a[i].Title == "" || a[i].Abstract == "" {
			t.Fatalf("abstract %d is empty: %+v", i, a[i])
		}
	}
}

func TestClusteredVectorsAreUnitAndPrefixStable(t *testing.T) {
	t.Parallel()
	spec := DefaultClusters(300, 16, 9)
	big, small := spec.Generate(300), spec.Generate(100)
	for i, v := range small {
		for k := range v {
			if v[k] != big[i][k] {
				t.Fatalf("vector %d of a 100-vector set differs from the 300-vector set", i)
			}
		}
	}
	for i, v := range big {
		var s float64
		for _, x := range v {
			s += float64(x) * float64(x)
		}
		if math.Abs(s-1) > 1e-4 {
			t.Fatalf("vector %d has squared norm %g", i, s)
		}
	}
	q := spec.Queries(5)
	if len(q) != 5 || q[0][0] == big[0][0] {
		t.Error("queries should be held-out vectors, not the stored ones")
	}
}

func TestChartIsWellFormedSVG(t *testing.T) {
	t.Parallel()
	c := Chart{Title: "t <&>", XLabel: "C", YLabel: "per s", Series: []Series{
		{Name: "bound", Color: "#888", Dashed: true, Points: []Point{{16, 40}, {64, 160}, {256, 640}}},
		{Name: "measured", Color: "blue", Points: []Point{{16, 39}, {64, 150}, {256, 0}}},
	}}
	svg := c.SVG()
	dec := xml.NewDecoder(strings.NewReader(string(svg)))
	for {
		_, err := dec.Token()
		if err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("SVG does not parse: %v", err)
			}
			break
		}
	}
	if n := strings.Count(string(svg), "<circle"); n != 5 {
		t.Errorf("SVG has %d points, want 5 (the zero is skipped on a log axis)", n)
	}
	if !strings.Contains(string(svg), "stroke-dasharray") {
		t.Error("dashed series is not dashed")
	}
}

func TestPipelineBound(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		c    PipelineCase
		reqs float64
		want float64
	}{
		{"little", PipelineCase{Models: ModelsAPI, N: 1000, Concurrency: 64, ChatLatency: 400 * time.Millisecond}, 1.1, 160},
		// 1250 requests, 600 at once, 650 at 10/s: 65 s for 1000 abstracts.
		{"rate limit binds", PipelineCase{Models: ModelsAPI, N: 1000, Concurrency: 64, ChatLatency: 400 * time.Millisecond, RPM: 600}, 1.25, 15.385},
		{"rate limit within the first minute's budget", PipelineCase{Models: ModelsAPI, N: 100, Concurrency: 16, ChatLatency: 400 * time.Millisecond, RPM: 600}, 1, 40},
		{"rate limit loose", PipelineCase{Models: ModelsAPI, N: 1000, Concurrency: 16, ChatLatency: 400 * time.Millisecond, RPM: 60000}, 1, 40},
		{"offline", PipelineCase{Models: ModelsOffline, Concurrency: 64}, 0, 0},
		{"zero latency", PipelineCase{Models: ModelsAPI, Concurrency: 64}, 1, 0},
	} {
		if got, _, _ := pipelineBound(tc.c, tc.reqs); got != tc.want {
			t.Errorf("%s: bound = %g, want %g", tc.name, got, tc.want)
		}
	}
}

func TestEvaluateJudgesGoals(t *testing.T) {
	t.Parallel()
	r := Run{Pipeline: []PipelineResult{
		{Case: PipelineCase{Name: "C64", Models: ModelsAPI, Concurrency: 64, ChatLatency: 400 * time.Millisecond}, Steady: 150, Bound: 160, Ratio: 0.9375, EmbedPerAbstract: 0.01},
		{Case: PipelineCase{Name: "C256", Models: ModelsAPI, Concurrency: 256, ChatLatency: 400 * time.Millisecond}, Steady: 320, Bound: 640, Ratio: 0.5, EmbedPerAbstract: 0.05},
		{Case: PipelineCase{Name: "off", Models: ModelsOffline, N: 1000}, Processed: 1000, Throughput: 1200},
	}}
	r.Evaluate()
	want := map[string]*bool{
		"pipeline at C=64": ptr(true), "pipeline at C=256": ptr(false), "embedding requests per abstract — unpaced (burst)": ptr(false),
		"zero API latency, offline models": ptr(true), "zero API latency, fake API (separate process)": nil,
		"related papers at 1M × 768": nil,
	}
	for _, g := range r.Goals {
		w, ok := want[g.Name]
		if !ok {
			continue
		}
		if (w == nil) != (g.Pass == nil) || (w != nil && *w != *g.Pass) {
			t.Errorf("goal %q: pass = %v, want %v (%s)", g.Name, deref(g.Pass), deref(w), g.Measured)
		}
	}
}

func deref(b *bool) any {
	if b == nil {
		return nil
	}
	return *b
}

func TestEvaluateKeepsRandomVectorCasesOutOfTheThroughputGoals(t *testing.T) {
	t.Parallel()
	lat := 400 * time.Millisecond
	r := Run{Pipeline: []PipelineResult{
		{Case: PipelineCase{Name: "C64", Models: ModelsAPI, Concurrency: 64, ChatLatency: lat}, Steady: 150, Bound: 160, Ratio: 0.9375, EmbedPerAbstract: 0.01},
		{Case: PipelineCase{Name: "C64-random", Models: ModelsAPI, Concurrency: 64, ChatLatency: lat, Vectors: openaitest.VectorsRandom},
			Steady: 100, Bound: 160, Ratio: 0.625, EmbedPerAbstract: 0.03},
		{Case: PipelineCase{Name: "zero-random", Models: ModelsAPI, Concurrency: 64, Vectors: openaitest.VectorsRandom}, Throughput: 100},
	}}
	r.Evaluate()
	goals := map[string]Goal{}
	for _, g := range r.Goals {
		goals[g.Name] = g
	}
	if g := goals["pipeline at C=64"]; g.Pass == nil || !*g.Pass {
		t.Errorf("C=64 goal judged on the random-vector case: %+v", g)
	}
	// The random-vector case runs the worker's defaults, so its embedding requests count.
	if g := goals["embedding requests per abstract — unpaced (burst)"]; g.Pass == nil || *g.Pass || !strings.Contains(g.Measured, "C64-random") {
		t.Errorf("embedding goal = %+v, want failed on C64-random", g)
	}
	if g := goals["zero API latency, fake API (separate process)"]; g.Pass != nil {
		t.Errorf("zero-latency goal judged on a random-vector case: %+v", g)
	}
	if pts := r.ThroughputChart().Series[1].Points; len(pts) != 1 || pts[0].Y != 150 {
		t.Errorf("chart's steady series = %+v, want the text-vector C64 only", pts)
	}
}

func TestPGBytes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{{"6026MB", 6026 << 20, true}, {"1GB", 1 << 30, true}, {"512kB", 512 << 10, true}, {"8kB", 8 << 10, true}, {"", 0, false}, {"lots", 0, false}} {
		if got, ok := pgBytes(tc.in); got != tc.want || ok != tc.ok {
			t.Errorf("pgBytes(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestEvaluateJudgesEach1MIndexKind(t *testing.T) {
	t.Parallel()
	big := func(kind store.IndexKind, label string, recall, p99, loadSeconds float64) KNNResult {
		return KNNResult{
			Case:          KNNCase{Name: "synthetic-1M-" + label, Source: SourceSynthetic, N: 1_000_000, Index: kind},
			StoreEfSearch: 100,
			Related:       QueryStats{Recall: 0.9, Latency: Dist{N: 10, P99: 10}},
			Sweep: []SweepPoint{{Index: label, EfSearch: 200, Recall: recall, Latency: Dist{N: 10, P99: p99},
				RelatedRecall: recall, RelatedLatency: Dist{N: 10, P99: p99}}},
			Load: LoadTimes{IndexSeconds: loadSeconds - 100, LoadAndIndexSeconds: loadSeconds},
		}
	}
	r := Run{KNN: []KNNResult{
		big(store.IndexHNSW, "vector", 0.95, 21.8, 980),
		big(store.IndexHNSWBinary, "binary", 0.97, 12, 600),
		{Case: KNNCase{Name: "synthetic-100k", Source: SourceSynthetic, N: 100_000}},
	}}
	r.Evaluate()
	want := map[string]bool{
		"related papers at 1M × 768 — hnsw index":            false,
		"load 1M precomputed embeddings — hnsw index":        false,
		"related papers at 1M × 768 — hnsw-binary index":     true,
		"load 1M precomputed embeddings — hnsw-binary index": true,
	}
	seen := 0
	for _, g := range r.Goals {
		w, ok := want[g.Name]
		if !ok {
			continue
		}
		seen++
		if g.Pass == nil || *g.Pass != w {
			t.Errorf("goal %q: pass = %v, want %v (%s)", g.Name, deref(g.Pass), w, g.Measured)
		}
	}
	if seen != len(want) {
		t.Errorf("found %d of the %d per-index 1M goals in %+v", seen, len(want), r.Goals)
	}
}

func TestEvaluateJudgesThroughputPerIndexKind(t *testing.T) {
	t.Parallel()
	lat := 400 * time.Millisecond
	r := Run{Pipeline: []PipelineResult{
		{Case: PipelineCase{Name: "C256", Models: ModelsAPI, Concurrency: 256, ChatLatency: lat}, Steady: 320, Bound: 640, Ratio: 0.5},
		{Case: PipelineCase{Name: "C256-binary", Models: ModelsAPI, Concurrency: 256, ChatLatency: lat, Index: store.IndexHNSWBinary},
			Steady: 600, Bound: 640, Ratio: 0.94},
		{Case: PipelineCase{Name: "zero-binary", Models: ModelsAPI, Concurrency: 64, Index: store.IndexHNSWBinary}, Throughput: 500},
	}}
	r.Evaluate()
	goals := map[string]Goal{}
	for _, g := range r.Goals {
		goals[g.Name] = g
	}
	if g := goals["pipeline at C=256"]; g.Pass == nil || *g.Pass {
		t.Errorf("default C=256 goal = %+v, want failed on the hnsw case", g)
	}
	if g := goals["pipeline at C=256 — hnsw-binary index"]; g.Pass == nil || !*g.Pass {
		t.Errorf("binary C=256 goal = %+v, want passed", g)
	}
	if g := goals["zero API latency, fake API (separate process)"]; g.Pass != nil {
		t.Errorf("default zero-latency goal judged on a binary case: %+v", g)
	}
	if g := goals["zero API latency, fake API (separate process) — hnsw-binary index"]; g.Pass == nil || *g.Pass {
		t.Errorf("binary zero-latency goal = %+v, want failed", g)
	}
	if _, ok := goals["pipeline at C=64 — hnsw-binary index"]; ok {
		t.Errorf("a binary row for C=64, which no case measured")
	}
}

// big1M is a 1M synthetic case whose store figures miss the related goal, with sweep points.
func big1M(sweep ...SweepPoint) KNNResult {
	return KNNResult{
		Case:          KNNCase{Name: "synthetic-1M", Source: SourceSynthetic, N: 1_000_000},
		StoreEfSearch: 100,
		Related:       QueryStats{Recall: 0.859, Latency: Dist{N: 1000, P99: 6.8}},
		Search:        QueryStats{Recall: 0.897, Latency: Dist{N: 1000, P99: 6.9}},
		Sweep:         sweep,
	}
}

func goalNamed(t *testing.T, r *Run, prefix string) Goal {
	t.Helper()
	for _, g := range r.Goals {
		if strings.HasPrefix(g.Name, prefix) {
			return g
		}
	}
	t.Fatalf("no goal %q in %+v", prefix, r.Goals)
	return Goal{}
}

func TestRelatedGoalIsJudgedOnTheSweepsRelatedQuestions(t *testing.T) {
	t.Parallel()
	// The pooled recall reaches 0.95 thanks to the search questions; the related ones do not.
	p := SweepPoint{Index: "halfvec", EfSearch: 400, Recall: 0.96, Latency: Dist{N: 1000, P99: 15},
		RelatedRecall: 0.94, RelatedLatency: Dist{N: 500, P99: 15}, SearchRecall: 0.98, SearchLatency: Dist{N: 500, P99: 15}}
	r := Run{KNN: []KNNResult{big1M(p)}}
	r.Evaluate()
	if g := goalNamed(t, &r, "related papers at 1M"); g.Pass == nil || *g.Pass {
		t.Errorf("related goal = %+v, want failed: related recall 0.94 at the best ef_search", g)
	}
	// Related questions at 0.95 within 20 ms pass, whatever the pooled figure.
	p.RelatedRecall, p.Recall = 0.95, 0.94
	r = Run{KNN: []KNNResult{big1M(p)}}
	r.KNN[0].EfFor95 = relatedEfFor95(r.KNN[0].Sweep, "halfvec")
	r.Evaluate()
	if g := goalNamed(t, &r, "related papers at 1M"); g.Pass == nil || !*g.Pass || !strings.Contains(g.Measured, "recall 0.950") {
		t.Errorf("related goal = %+v, want passed on related recall 0.950 at ef_search 400", g)
	}
	// Its latency bar is the related questions' p99, not the pooled one.
	p.RelatedLatency.P99 = 21
	r = Run{KNN: []KNNResult{big1M(p)}}
	r.Evaluate()
	if g := goalNamed(t, &r, "related papers at 1M"); g.Pass == nil || *g.Pass {
		t.Errorf("related goal = %+v, want failed: related p99 21 ms", g)
	}
}

func TestRelatedEfFor95IgnoresThePooledRecall(t *testing.T) {
	t.Parallel()
	sweep := []SweepPoint{
		{Index: "halfvec", EfSearch: 200, Recall: 0.95, RelatedRecall: 0.93, RelatedLatency: Dist{N: 500}},
		{Index: "halfvec", EfSearch: 400, Recall: 0.97, RelatedRecall: 0.96, RelatedLatency: Dist{N: 500}},
	}
	if got := relatedEfFor95(sweep, "halfvec"); got != 400 {
		t.Errorf("relatedEfFor95 = %d, want 400", got)
	}
	// Without the related figures there is none to judge on.
	if got := relatedEfFor95([]SweepPoint{{Index: "halfvec", EfSearch: 200, Recall: 0.99}}, "halfvec"); got != 0 {
		t.Errorf("relatedEfFor95 of pooled-only results = %d, want 0", got)
	}
}

// writeOldJSON writes r as JSON without the new fields' names, as an older paperbench did.
func writeOldJSON(t *testing.T, r Run) string {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range m["knn"].([]any) {
		for _, p := range k.(map[string]any)["sweep"].([]any) {
			for f := range p.(map[string]any) {
				if strings.HasPrefix(f, "related_") || strings.HasPrefix(f, "search_") {
					delete(p.(map[string]any), f)
				}
			}
		}
	}
	if b, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "old.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSummaryOfPooledSweepSaysRelatedFigureNotMeasured(t *testing.T) {
	t.Parallel()
	// An old run: the pooled recall passes at ef_search 400, and EfFor95 was judged on it.
	old := big1M(SweepPoint{Index: "halfvec", EfSearch: 400, Recall: 0.96, StrictRecall: 0.96, Latency: Dist{N: 1000, P99: 15}})
	old.EfFor95 = 400
	r, err := Read(writeOldJSON(t, Run{Set: "full", KNN: []KNNResult{old}}))
	if err != nil {
		t.Fatal(err)
	}
	g := goalNamed(t, r, "related papers at 1M")
	if g.Pass != nil || !strings.Contains(g.Measured, "not measured") {
		t.Errorf("related goal of pooled results = %+v, want not measured, saying so", g)
	}
	if r.KNN[0].EfFor95 != 0 {
		t.Errorf("EfFor95 of pooled results = %d, want 0 (not measured)", r.KNN[0].EfFor95)
	}
	md := r.Markdown("x.svg", "old.json")
	if !strings.Contains(md, "| synthetic-1M | halfvec | 400 | not measured | not measured | not measured | not measured | 0.960 (0.960) |") {
		t.Errorf("sweep table does not say the related and search figures were not measured:\n%s", md)
	}
	if !strings.Contains(md, "| synthetic-1M | not measured (sweep pooled related and search questions) |") {
		t.Errorf("ef_search for recall ≥ 0.95 of pooled results is not 'not measured':\n%s", md)
	}
}

func TestSummarySweepTableShowsRelatedAndSearchApart(t *testing.T) {
	t.Parallel()
	r := Run{KNN: []KNNResult{big1M(SweepPoint{Index: "halfvec", EfSearch: 100, Recall: 0.878, Latency: Dist{N: 1000, P50: 5, P99: 7},
		RelatedRecall: 0.859, RelatedStrictRecall: 0.858, RelatedLatency: Dist{N: 500, P50: 5.5, P99: 6.8},
		SearchRecall: 0.897, SearchStrictRecall: 0.896, SearchLatency: Dist{N: 500, P50: 4.5, P99: 6.9}})}}
	r.Evaluate()
	md := r.Markdown("x.svg", "x.json")
	if !strings.Contains(md, "| synthetic-1M | halfvec | 100 | 0.859 (0.858) | 5.50/6.80 | 0.897 (0.896) | 4.50/6.90 | 0.878 (–) | 5.00/7.00 |") {
		t.Errorf("sweep row missing or wrong:\n%s", md)
	}
}

func TestEmbeddingGoalJudgesPacedCasesInARowOfTheirOwn(t *testing.T) {
	t.Parallel()
	lat := 400 * time.Millisecond
	r := Run{Pipeline: []PipelineResult{
		{Case: PipelineCase{Name: "C64", Models: ModelsAPI, Concurrency: 64, ChatLatency: lat}, Steady: 158, Bound: 160, Ratio: 0.99, EmbedPerAbstract: 0.0158},
		{Case: PipelineCase{Name: "C64-paced", Models: ModelsAPI, Concurrency: 64, ChatLatency: lat, PaceRate: 80}, EmbedPerAbstract: 0.0529},
		// Not the worker's defaults: shown beside the goal, not judged by it.
		{Case: PipelineCase{Name: "C64-paced-embedlinger10", Models: ModelsAPI, Concurrency: 64, ChatLatency: lat, PaceRate: 80,
			EmbedLinger: 10 * time.Millisecond}, EmbedPerAbstract: 0.2},
	}}
	r.Evaluate()
	goals := map[string]Goal{}
	for _, g := range r.Goals {
		goals[g.Name] = g
	}
	if g := goals["embedding requests per abstract — unpaced (burst)"]; g.Pass == nil || !*g.Pass || !strings.Contains(g.Measured, "0.0158 (C64,") {
		t.Errorf("unpaced embedding goal = %+v, want passed on C64", g)
	}
	g := goals["embedding requests per abstract — paced"]
	if g.Pass == nil || *g.Pass || !strings.Contains(g.Measured, "0.0529 (C64-paced at 80 abstracts/s") {
		t.Errorf("paced embedding goal = %+v, want failed on C64-paced", g)
	}
	if !strings.Contains(g.Limit, "EmbedLinger") || !strings.Contains(g.Limit, "bill by token, not request") {
		t.Errorf("paced embedding goal's limit = %q", g.Limit)
	}
	// The C=64 goal stays on the burst case.
	if g := goals["pipeline at C=64"]; !strings.Contains(g.Measured, "158.0/s steady") {
		t.Errorf("C=64 goal = %+v, want judged on the burst case", g)
	}
}

func TestEvaluateFailsEveryGoalOfACaseThatLostAbstracts(t *testing.T) {
	t.Parallel()
	lat := 400 * time.Millisecond
	lossy := func(p PipelineResult, processed, dead int64) PipelineResult {
		p.Processed, p.Worker.Acked, p.Worker.Dead = processed, processed, dead
		return p
	}
	r := Run{Pipeline: []PipelineResult{
		// Half dead-lettered, the other half fast.
		lossy(PipelineResult{Case: PipelineCase{Name: "C64", Models: ModelsAPI, N: 4800, Concurrency: 64, ChatLatency: lat},
			Throughput: 158, Steady: 158, EmbedPerAbstract: 0.01, ChatPerAbstract: 1}, 2400, 2400),
		// One dead letter among 2,400 paced abstracts.
		lossy(PipelineResult{Case: PipelineCase{Name: "C64-paced", Models: ModelsAPI, N: 2400, Concurrency: 64, ChatLatency: lat, PaceRate: 80},
			EmbedPerAbstract: 0.01, ChatPerAbstract: 1}, 2399, 1),
		// Fewer stored than published, nothing dead-lettered; its reprocess dead-letters too.
		lossy(PipelineResult{Case: PipelineCase{Name: "zero-latency-fake", Models: ModelsAPI, N: 10000, Concurrency: 64, Reprocess: true},
			Throughput: 1500, Steady: 1500, EmbedPerAbstract: 0.01,
			Reprocess: &ReprocessResult{Papers: 10000, WorkerPerSecond: 20000, Command: &ReprocessRun{PerSecond: 20000}}}, 9990, 0),
		lossy(PipelineResult{Case: PipelineCase{Name: "offline", Models: ModelsOffline, N: 10000}, Throughput: 1500}, 10, 9990),
	}}
	for i := range r.Pipeline {
		r.Pipeline[i].setBound()
	}
	r.Evaluate()
	for _, name := range []string{"pipeline at C=64", "embedding requests per abstract — unpaced (burst)", "embedding requests per abstract — paced",
		"zero API latency, fake API (separate process)", "zero API latency, offline models", "reprocess of an unchanged archive"} {
		g := goalNamed(t, &r, name)
		if g.Pass == nil || *g.Pass {
			t.Errorf("goal %q = %v (%s), want failed: its case lost abstracts", name, deref(g.Pass), g.Measured)
		}
		if !strings.Contains(g.Measured, "LOST") || !strings.Contains(g.Limit, "abstracts lost") {
			t.Errorf("goal %q does not say why it failed: %+v", name, g)
		}
	}
	if g := goalNamed(t, &r, "pipeline at C=64"); !strings.Contains(g.Measured, "C64 stored 2400 of 4800 abstracts, 2400 dead-lettered") {
		t.Errorf("C=64 goal = %q", g.Measured)
	}
	// The same run without losses passes.
	for i := range r.Pipeline {
		p := &r.Pipeline[i]
		p.Processed, p.Worker.Dead = int64(p.Case.N), 0
	}
	r.Evaluate()
	if g := goalNamed(t, &r, "pipeline at C=64"); g.Pass == nil || !*g.Pass {
		t.Errorf("C=64 goal without losses = %+v, want passed", g)
	}
	if g := goalNamed(t, &r, "reprocess of an unchanged archive"); g.Pass == nil || !*g.Pass {
		t.Errorf("reprocess goal without losses = %+v, want passed", g)
	}
}

func TestEvaluateFailsReprocessThatDeadLettered(t *testing.T) {
	t.Parallel()
	r := Run{Pipeline: []PipelineResult{{Case: PipelineCase{Name: "zero", Models: ModelsAPI, N: 1000, Reprocess: true}, Processed: 1000,
		Reprocess: &ReprocessResult{Papers: 1000, WorkerPerSecond: 20000, Worker: pipeline.WorkerStats{Acked: 990, Dead: 10}, Command: &ReprocessRun{PerSecond: 20000}}}}}
	r.Evaluate()
	if g := goalNamed(t, &r, "reprocess of an unchanged archive"); g.Pass == nil || *g.Pass || !strings.Contains(g.Measured, "re-ingest's worker dead-lettered 10 of 1000") {
		t.Errorf("reprocess goal = %+v, want failed on 10 dead letters", g)
	}
}

func TestThroughputChartDrawsTheDefaultIndexKindOnly(t *testing.T) {
	t.Parallel()
	lat := 400 * time.Millisecond
	r := Run{Pipeline: []PipelineResult{
		{Case: PipelineCase{Name: "C64", Models: ModelsAPI, Concurrency: 64, ChatLatency: lat}, Steady: 158, Bound: 160, Throughput: 157},
		{Case: PipelineCase{Name: "C256", Models: ModelsAPI, Concurrency: 256, ChatLatency: lat}, Steady: 605, Bound: 640, Throughput: 548},
		{Case: PipelineCase{Name: "C256-binary", Models: ModelsAPI, Concurrency: 256, ChatLatency: lat, Index: store.IndexHNSWBinary}, Steady: 608, Bound: 640},
		{Case: PipelineCase{Name: "C256-vector", Models: ModelsAPI, Concurrency: 256, ChatLatency: lat, Index: store.IndexHNSW}, Steady: 604, Bound: 640},
		{Case: PipelineCase{Name: "zero-latency-fake-binary", Models: ModelsAPI, Concurrency: 64, Index: store.IndexHNSWBinary}, Throughput: 774},
		{Case: PipelineCase{Name: "zero-latency-fake", Models: ModelsAPI, Concurrency: 64}, Throughput: 661},
	}}
	for _, s := range r.ThroughputChart().Series {
		if len(s.Points) != 2 {
			t.Errorf("series %q has %d points, want C=64 and C=256 of the default kind: %v", s.Name, len(s.Points), s.Points)
			continue
		}
		if s.Name == "measured, steady" && s.Points[1].Y != 605 {
			t.Errorf("steady at C=256 = %g, want the default kind's 605", s.Points[1].Y)
		}
		if s.Name == "zero-latency ceiling" && s.Points[0].Y != 661 {
			t.Errorf("ceiling = %g, want the default kind's 661", s.Points[0].Y)
		}
	}
}

func TestThroughputChartTitleHasTheCasesLatencies(t *testing.T) {
	t.Parallel()
	r := Run{Set: "quick", Pipeline: []PipelineResult{
		{Case: PipelineCase{Name: "C64", Models: ModelsAPI, Concurrency: 64, ChatLatency: 300 * time.Millisecond, EmbedLatency: 150 * time.Millisecond}, Steady: 200, Bound: 213},
	}}
	if title := r.ThroughputChart().Title; !strings.Contains(title, "chat 300 ms, embeddings 150 ms") {
		t.Errorf("chart title %q does not give the cases' latencies", title)
	}
}

func TestLoadGoalSaysWhatItTimedAndWhatImportEmbeddingsAdds(t *testing.T) {
	t.Parallel()
	big := big1M()
	big.Load = LoadTimes{PapersSeconds: 20, EmbeddingsSeconds: 65, EmbeddingsPerSecond: 15451, IndexSeconds: 516, LoadAndIndexSeconds: 581,
		VacuumSeconds: 48, IndexBytes: 1953 << 20, IndexMaintenanceMem: "8GB", IndexParallelWorkers: 2}
	r := Run{KNN: []KNNResult{big}}
	r.Evaluate()
	g := goalNamed(t, &r, "load 1M precomputed embeddings")
	for _, want := range []string{"with maintenance_work_mem 8GB, 2 parallel workers", "import-embeddings builds with maintenance_work_mem 1GB unless PAPERPIPE_INDEX_BUILD_MEMORY",
		"smaller than this 1953 MB index", "not timed: import-embeddings's JSON parsing", "VACUUM ANALYZE after the load (48s here)"} {
		if !strings.Contains(g.Measured, want) {
			t.Errorf("load goal's measured text lacks %q: %s", want, g.Measured)
		}
	}
	if !strings.Contains(g.Target, "not `paperpipe import-embeddings` end to end") {
		t.Errorf("load goal's target = %q", g.Target)
	}
	if !strings.Contains(g.Limit, "within the build's maintenance_work_mem (8GB)") {
		t.Errorf("load goal's limit = %q", g.Limit)
	}
	// Results that did not record the build's memory say so.
	r.KNN[0].Load.IndexMaintenanceMem = ""
	r.Evaluate()
	if g := goalNamed(t, &r, "load 1M precomputed embeddings"); !strings.Contains(g.Measured, "maintenance_work_mem not recorded") {
		t.Errorf("load goal without the build's memory: %s", g.Measured)
	}
	if md := r.Markdown("x.svg", "x.json"); !strings.Contains(md, "import-embeddings builds with maintenance_work_mem from PAPERPIPE_INDEX_BUILD_MEMORY (default 1GB") {
		t.Errorf("method text does not say how import-embeddings builds")
	}
}

func TestRunWithFailedCasesIsNotComplete(t *testing.T) {
	t.Parallel()
	r := Run{Set: "full", Errors: []string{"case C64: not done after 10m0s"}}
	r.SetComplete(false)
	if r.Complete {
		t.Error("a run with a failed case is complete")
	}
	if md := r.Markdown("x.svg", "x.json"); !strings.Contains(md, "INCOMPLETE (1 failed: see Errors)") {
		t.Errorf("summary of a run with a failed case does not say it is incomplete:\n%s", md)
	}
	r.Errors = nil
	if r.SetComplete(true); r.Complete {
		t.Error("a run cut short is complete")
	}
	if r.SetComplete(false); !r.Complete {
		t.Error("a run that ended without errors is not complete")
	}
	// Results written while a failed case still left the run complete are read as incomplete.
	b, err := json.Marshal(Run{Set: "full", Errors: []string{"case x: boom"}, Complete: true})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "r.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := Read(path); err != nil || got.Complete {
		t.Errorf("Read of a complete run with errors: complete %v, err %v", got.Complete, err)
	}
}

func TestQPSCountsFailedQueries(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	rate, failed := qps(context.Background(), 2, 50*time.Millisecond, func(i int) error {
		calls.Add(1)
		time.Sleep(time.Millisecond)
		if i%2 == 1 {
			return errors.New("boom")
		}
		return nil
	})
	n := calls.Load()
	if failed == 0 || failed >= n {
		t.Errorf("qps reported %d failed of %d queries, want about half", failed, n)
	}
	// The rate counts the answered queries only: at most (calls − failed) over the 50ms.
	if max := float64(n-failed) / 0.05; rate > max*1.01 || rate <= 0 {
		t.Errorf("qps rate %.0f/s, want at most %.0f/s (answered queries only)", rate, max)
	}
}

// TestMethodTextStatesTheRateLimitBoundTheTableShows: with an RPM budget the table's bound is
// the burst-aware N/((N·r − RPM)/(RPM/60)) — 24.0/s for 1,000 abstracts at 1.016 requests each
// and 600 RPM, which the run reaches — and "How it is measured" must say so; it stated
// RPM/60 / r (9.8/s here), a bound the same summary shows the run beating by 2.4×.
func TestMethodTextStatesTheRateLimitBoundTheTableShows(t *testing.T) {
	t.Parallel()
	p := PipelineResult{Case: PipelineCase{Name: "C64-rpm600", Models: ModelsAPI, N: 1000, Concurrency: 64,
		ChatLatency: 400 * time.Millisecond, EmbedLatency: 200 * time.Millisecond, RPM: 600},
		Processed: 1000, Throughput: 23.8, Steady: 25.8, ChatPerAbstract: 1, EmbedPerAbstract: 0.016}
	p.setBound()
	if p.Bound < 24 || p.Bound > 24.1 {
		t.Fatalf("bound = %g, want about 24.0 (1000/((1016 − 600)/10))", p.Bound)
	}
	r := &Run{Set: "full", Pipeline: []PipelineResult{p}}
	r.Evaluate()
	md := r.Markdown("throughput.svg", "run.json")
	i := strings.Index(md, "## How it is measured")
	if i < 0 {
		t.Fatal("the summary has no method section")
	}
	method := md[i:]
	line := method[strings.Index(method, "**Bound**"):]
	line = line[:strings.Index(line, "\n")]
	if !strings.Contains(line, "(N·r − RPM)/(RPM/60)") {
		t.Errorf("the method's bound under an RPM budget is not the one the table shows (%.1f/s):\n%s", p.Bound, line)
	}
}

// TestLoadTableSaysItsSizeHoldsTheIndexes: the size beside the index's is
// pg_total_relation_size('embeddings') — the table with its indexes, the HNSW index among them
// — and the summary must not call it the table's: at 1M it read "index 1953 MB, table 6000 MB"
// for a 4 GB table, and the kinds' tables seemed to differ by what only their indexes do.
func TestLoadTableSaysItsSizeHoldsTheIndexes(t *testing.T) {
	t.Parallel()
	r := &Run{Set: "full", KNN: []KNNResult{{Case: KNNCase{Name: "synthetic-1M", Source: SourceSynthetic, N: 1_000_000},
		Load: LoadTimes{IndexBytes: 1953 << 20, TableBytes: 6000 << 20}}}}
	md := r.Markdown("throughput.svg", "run.json")
	i := strings.Index(md, "| case | source | N | papers COPY s")
	if i < 0 {
		t.Fatal("no load table in the summary")
	}
	header := md[i : i+strings.Index(md[i:], "\n")]
	if strings.Contains(header, "| table MB |") || !strings.Contains(header, "with its indexes") {
		t.Errorf("the load table's header calls the table with its indexes the table:\n%s", header)
	}
}

// TestReprocessGoalIsJudgedOnTheCommandsPath: the goal is `paperpipe reprocess` over an
// unchanged archive, which selects what is stale and publishes nothing; the re-ingest figure
// (every paper published again and drained by a worker that finds its outputs stored) is
// another path, and passed the goal at 20,000 papers/s.
func TestReprocessGoalIsJudgedOnTheCommandsPath(t *testing.T) {
	t.Parallel()
	reingestOnly := Run{Pipeline: []PipelineResult{{Case: PipelineCase{Name: "zero", Models: ModelsAPI, N: 1000, Reprocess: true}, Processed: 1000,
		Reprocess: &ReprocessResult{Papers: 1000, WorkerPerSecond: 20000, SelectPerSecond: 70000}}}}
	reingestOnly.Evaluate()
	if g := goalNamed(t, &reingestOnly, "reprocess of an unchanged archive"); g.Pass != nil || !strings.Contains(g.Measured, "not measured") {
		t.Errorf("reprocess goal of results with the re-ingest path alone = %v (%s), want not measured, saying so", deref(g.Pass), g.Measured)
	}
	// The command's path judges it, whatever the re-ingest's figure.
	r := Run{Pipeline: []PipelineResult{{Case: PipelineCase{Name: "zero", Models: ModelsAPI, N: 1000, Reprocess: true}, Processed: 1000,
		Reprocess: &ReprocessResult{Papers: 1000, WorkerPerSecond: 20000, Command: &ReprocessRun{Seconds: 0.4, PerSecond: 2500}}}}}
	r.Evaluate()
	if g := goalNamed(t, &r, "reprocess of an unchanged archive"); g.Pass == nil || *g.Pass || !strings.Contains(g.Measured, "path 2500 papers/s") {
		t.Errorf("reprocess goal at 2,500 papers/s on the command's path = %v (%s), want failed", deref(g.Pass), g.Measured)
	}
	r.Pipeline[0].Reprocess.Command = &ReprocessRun{Seconds: 0.1, PerSecond: 10000}
	r.Evaluate()
	if g := goalNamed(t, &r, "reprocess of an unchanged archive"); g.Pass == nil || !*g.Pass {
		t.Errorf("reprocess goal at 10,000 papers/s on the command's path = %v (%s), want passed", deref(g.Pass), g.Measured)
	}
	r.Pipeline[0].Reprocess.Command.APICalls = 3
	r.Evaluate()
	if g := goalNamed(t, &r, "reprocess of an unchanged archive"); g.Pass == nil || *g.Pass {
		t.Errorf("reprocess goal with 3 API calls = %v (%s), want failed", deref(g.Pass), g.Measured)
	}
	// The summary shows the command's path and the re-ingest in rows of their own.
	r.Pipeline[0].Reprocess.PartlyStale, r.Pipeline[0].Reprocess.StaleFraction = &ReprocessRun{Stale: 100, Published: 100, PerSecond: 900}, 0.1
	md := r.Markdown("", "")
	for _, row := range []string{"| `paperpipe reprocess`'s path, unchanged archive", "| re-ingest: worker skip path", "| `paperpipe reprocess`'s path, 10% of the papers"} {
		if !strings.Contains(md, row) {
			t.Errorf("summary lacks the row %q", row)
		}
	}
}

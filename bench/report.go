package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/store"
)

// Run is one benchmark run: what was measured, where and with which settings. It is written as
// JSON (Write) and summarised as markdown with a chart (WriteSummary).
type Run struct {
	Set string `json:"set"`
	// Part names the scenarios run ("pipeline", "knn") when not all of them were; it is part
	// of the file names, so the parts of a set can run separately.
	Part     string            `json:"part,omitempty"`
	Started  time.Time         `json:"started"`
	Finished time.Time         `json:"finished"`
	Command  string            `json:"command"`
	Machine  Machine           `json:"machine"`
	Settings map[string]string `json:"settings"`
	Pipeline []PipelineResult  `json:"pipeline"`
	Stages   []StageResult     `json:"store_stages"`
	KNN      []KNNResult       `json:"knn"`
	Errors   []string          `json:"errors,omitempty"`
	Goals    []Goal            `json:"goals"`
	// Complete is false while the run is going on, when it was cut short, or when a case
	// failed (Errors).
	Complete bool `json:"complete"`
}

// SetComplete marks the run complete unless it was cut short or a case failed.
func (r *Run) SetComplete(cutShort bool) {
	r.Complete = !cutShort && len(r.Errors) == 0
}

// Goal is one target of issue 6 and how the run did against it.
type Goal struct {
	Name     string `json:"name"`
	Target   string `json:"target"`
	Measured string `json:"measured"`
	// Pass is nil when the run did not measure it.
	Pass  *bool  `json:"pass"`
	Limit string `json:"limited_by"`
}

func ptr(b bool) *bool { return &b }

// Evaluate fills r.Goals from the results.
func (r *Run) Evaluate() {
	r.Goals = nil
	// The throughput goals are judged per index kind of the worker's space: the store's
	// default (store.DefaultIndexKind) gives the goals' rows; cases on another kind add their own rows.
	type selection struct {
		byC               map[int]*PipelineResult
		zeroFake, offline *PipelineResult
	}
	kinds := store.IndexKinds
	sel := map[store.IndexKind]*selection{}
	for _, k := range kinds {
		sel[k] = &selection{byC: map[int]*PipelineResult{}}
	}
	var rp *ReprocessResult
	// The worst embedding requests per abstract on the worker's defaults, of the burst cases
	// and of the paced ones: each is a goal row.
	var worstBurst, worstPaced *PipelineResult
	var burst, paced []*PipelineResult // every case of each row, for their losses
	var rpCase *PipelineResult
	for i := range r.Pipeline {
		p := &r.Pipeline[i]
		c := p.Case
		s := sel[c.index()]
		if s == nil {
			continue
		}
		// The worker's defaults, and of those the fake's default (text) vectors.
		workerDefaults := c.Models == ModelsAPI && c.Linger == 0 && c.EmbedLinger == 0 && c.RPM == 0 && !c.DefaultTransport
		def := workerDefaults && c.PaceRate == 0 && !c.randomVectors()
		if def && c.ChatLatency > 0 {
			s.byC[c.Concurrency] = p
		}
		if workerDefaults {
			worst, all := &worstBurst, &burst
			if c.PaceRate > 0 {
				worst, all = &worstPaced, &paced
			}
			*all = append(*all, p)
			if *worst == nil || p.EmbedPerAbstract > (*worst).EmbedPerAbstract {
				*worst = p
			}
		}
		if c.Models == ModelsAPI && c.ChatLatency == 0 && !c.DefaultTransport && !c.randomVectors() && s.zeroFake == nil {
			s.zeroFake = p
		}
		if c.Models == ModelsOffline && s.offline == nil {
			s.offline = p
		}
		if p.Reprocess != nil && rp == nil {
			rp, rpCase = p.Reprocess, p
		}
	}
	for _, k := range kinds {
		s, suffix := sel[k], ""
		if k != store.DefaultIndexKind {
			suffix = " — " + string(k) + " index"
		}
		var goals []Goal
		for _, c := range []int{64, 256} {
			g := Goal{Name: fmt.Sprintf("pipeline at C=%d", c) + suffix, Target: "≥ 90% of the bound C/chat latency"}
			if p := s.byC[c]; p != nil {
				g.Measured = fmt.Sprintf("%.1f/s steady of %.1f/s bound = %.0f%% (overall %.1f/s)", p.Steady, p.Bound, p.Ratio*100, p.Throughput)
				g.Pass = ptr(p.Ratio >= 0.9)
				g.Limit = pipelineLimit(p)
				failLost(&g, p)
			}
			goals = append(goals, g)
		}
		if k == store.DefaultIndexKind {
			g := Goal{Name: "embedding requests per abstract — unpaced (burst)", Target: "≤ 0.02 (worker defaults, every abstract published at once)"}
			if p := worstBurst; p != nil {
				g.Measured = fmt.Sprintf("worst %.4f (%s, %.1f inputs per request)", p.EmbedPerAbstract, p.Case.Name, p.EmbedInputsPerRequest)
				g.Pass = ptr(p.EmbedPerAbstract <= 0.02)
				g.Limit = "an embedding batch gathers while its messages wait for a chat slot and, below BatchSize (64), while the previous batch is embedded and saved, then Linger (10ms; EmbedLinger, 1s, once the API has billed a request): with a backlog, batches fill at once"
				failLost(&g, burst...)
			}
			goals = append(goals, g)
			g = Goal{Name: "embedding requests per abstract — paced", Target: "≤ 0.02 (worker defaults, abstracts published at a steady rate below the bound)"}
			if p := worstPaced; p != nil {
				g.Measured = fmt.Sprintf("worst %.4f (%s at %g abstracts/s, %.1f inputs per request)", p.EmbedPerAbstract, p.Case.Name, p.Case.PaceRate, p.EmbedInputsPerRequest)
				g.Pass = ptr(p.EmbedPerAbstract <= 0.02)
				g.Limit = "without a backlog a batch gathers what arrives during EmbedLinger (1s once the API has billed a request) or until it holds 64 abstracts; the price is latency: up to EmbedLinger more per paper, partly hidden behind its TL;DR request (see the e2e latency beside a case with EmbedLinger 10ms); embedding APIs bill by token, not request, so small batches would cost requests (and RPM budget), not money"
				failLost(&g, paced...)
			}
			goals = append(goals, g)
		}
		for _, z := range []struct {
			name string
			p    *PipelineResult
		}{{"zero API latency, fake API (separate process)", s.zeroFake}, {"zero API latency, offline models", s.offline}} {
			g := Goal{Name: z.name + suffix, Target: "≥ 1,000 abstracts/s on this machine"}
			if z.p != nil {
				g.Measured = fmt.Sprintf("%.0f/s overall, %.0f/s steady; machine %.0f%% busy", z.p.Throughput, z.p.Steady, z.p.CPU.Utilisation*100)
				g.Pass = ptr(z.p.Throughput >= 1000)
				g.Limit = cpuLimit(z.p)
				failLost(&g, z.p)
			}
			goals = append(goals, g)
		}
		for _, g := range goals {
			// Another kind's rows appear only for what was measured on it.
			if k == store.DefaultIndexKind || g.Measured != "" {
				r.Goals = append(r.Goals, g)
			}
		}
	}
	g := Goal{Name: "reprocess of an unchanged archive", Target: "≥ 5,000 papers/s with zero API calls"}
	if rp != nil && rp.Command == nil {
		// Results written before the command's path was measured: their figure is the re-ingest's.
		g.Measured = fmt.Sprintf("not measured on `paperpipe reprocess`'s path (these results measured the re-ingest path alone, "+
			"which the command does not run: worker skip path %.0f papers/s, %d API calls; selection %.0f papers/s, %d stale)",
			rp.WorkerPerSecond, rp.APICalls, rp.SelectPerSecond, rp.Stale)
	} else if rp != nil {
		c := rp.Command
		g.Measured = fmt.Sprintf("`paperpipe reprocess`'s path %.0f papers/s (%d papers in %.2fs: %d stale, %d published, %d API calls); "+
			"re-ingest (worker skip path, not the command's) %.0f papers/s",
			c.PerSecond, rp.Papers, c.Seconds, c.Stale, c.Published, c.APICalls, rp.WorkerPerSecond)
		g.Pass = ptr(c.PerSecond >= 5000 && c.APICalls == 0)
		g.Limit = fmt.Sprintf("machine %.0f%% busy; paperpipe %.1fs, PostgreSQL %.1fs CPU of %.1fs wall",
			c.CPU.Utilisation*100, c.CPU.SelfSeconds, c.CPU.PostgresSeconds, c.CPU.WallSeconds)
		failLost(&g, rpCase)
		for _, d := range []struct {
			what string
			dead int64
		}{{"the reprocess", c.Worker.Dead}, {"the re-ingest's worker", rp.Worker.Dead}} {
			if d.dead > 0 {
				g.Pass = ptr(false)
				g.Measured += fmt.Sprintf("; LOST: %s dead-lettered %d of %d papers", d.what, d.dead, rp.Papers)
				g.Limit = "papers dead-lettered (a run that loses papers passes no goal); " + g.Limit
			}
		}
	}
	r.Goals = append(r.Goals, g)
	// The 1M goals are judged on each 1M case of synthetic vectors (one per index kind), or
	// on the one 1M case there is.
	var bigs []*KNNResult
	for i := range r.KNN {
		if c := r.KNN[i].Case; c.N >= 1_000_000 && c.Source == SourceSynthetic {
			bigs = append(bigs, &r.KNN[i])
		}
	}
	if len(bigs) == 0 {
		for i := range r.KNN {
			if r.KNN[i].Case.N >= 1_000_000 {
				bigs = append(bigs, &r.KNN[i])
				break
			}
		}
	}
	if len(bigs) == 0 {
		bigs = append(bigs, nil)
	}
	for _, big := range bigs {
		r.Goals = append(r.Goals, relatedGoal(r, big, len(bigs) > 1), loadGoal(big, len(bigs) > 1))
	}
}

// goalIndex is the suffix naming a 1M case's index kind in a goal's name, when the set has one
// case per kind.
func goalIndex(big *KNNResult, named bool) string {
	if !named || big == nil {
		return ""
	}
	return " — " + string(big.Case.index()) + " index"
}

func relatedGoal(r *Run, big *KNNResult, named bool) Goal {
	g := Goal{Name: "related papers at 1M × 768" + goalIndex(big, named), Target: "recall@10 ≥ 0.95 with p99 ≤ 20 ms, one client"}
	if big == nil || big.Related.Latency.N == 0 {
		return g
	}
	label := storeSweepLabel(big.Case.index())
	g.Measured = fmt.Sprintf("store (ef_search %d): recall %.3f, p99 %.1f ms", big.StoreEfSearch, big.Related.Recall, big.Related.Latency.P99)
	// The goal holds when some ef_search (PAPERPIPE_EF_SEARCH) meets both bars: the store's
	// default, or a setting of the sweep — judged on the sweep's related questions alone (its
	// pooled figure mixes in the search questions, whose recall differs).
	pass := big.Related.Recall >= 0.95 && big.Related.Latency.P99 <= 20
	swept := false
	for _, s := range big.Sweep {
		if s.Index != label || !s.RelatedMeasured() {
			continue
		}
		swept = true
		if s.EfSearch == big.EfFor95 {
			g.Measured += fmt.Sprintf("; sweep, related questions, at ef_search %d: recall %.3f, p99 %.1f ms", s.EfSearch, s.RelatedRecall, s.RelatedLatency.P99)
		}
		if s.RelatedRecall >= 0.95 && s.RelatedLatency.P99 <= 20 {
			pass = true
		}
	}
	switch {
	case !swept && len(big.Sweep) > 0:
		g.Measured += "; the sweep's related-papers figure was not measured (these results pool related and search questions in one recall per ef_search, which does not judge this goal)"
		if !pass {
			g.Pass = nil
			return g
		}
	case swept && big.EfFor95 == 0:
		g.Measured += "; no swept ef_search reaches related recall 0.95"
	}
	g.Pass = ptr(pass)
	g.Limit = "HNSW graph walk in PostgreSQL: ef_search candidates × 768-dim distances per query, on 2 cores"
	switch big.Case.index() {
	case store.IndexHNSWHalfvec:
		g.Limit = "HNSW graph walk in PostgreSQL: ef_search candidates × 768-dim half-precision distances per query, on 2 cores"
	case store.IndexHNSWBinary:
		g.Limit = "HNSW walk over 768-bit codes, then ef_search candidates re-ranked by exact distance (each a 3 KB vector read from its heap row), on 2 cores"
	}
	if sb, ok := pgBytes(r.Machine.PGSettings["shared_buffers"]); ok && big.Load.IndexBytes > 0 {
		rel := "within"
		if big.Load.IndexBytes > sb {
			rel = "larger than"
		}
		g.Limit += fmt.Sprintf("; index %d MB, %s shared_buffers (%s)", big.Load.IndexBytes>>20, rel, r.Machine.PGSettings["shared_buffers"])
	}
	return g
}

// importIndexMem is the maintenance_work_mem `paperpipe import-embeddings` builds a space's
// index with by default: PAPERPIPE_INDEX_BUILD_MEMORY's default (cmd/paperpipe/config.go).
const importIndexMem = "1GB"

func loadGoal(big *KNNResult, named bool) Goal {
	g := Goal{Name: "load 1M precomputed embeddings" + goalIndex(big, named),
		Target: "COPY + index build ≤ 15 minutes (timed here: store.LoadEmbeddings + store.BuildSpaceIndex with the benchmark's settings, not `paperpipe import-embeddings` end to end)"}
	if big == nil || big.Load.IndexSeconds == 0 {
		return g
	}
	l := big.Load
	mem := "maintenance_work_mem not recorded"
	if l.IndexMaintenanceMem != "" {
		mem = fmt.Sprintf("maintenance_work_mem %s, %d parallel workers", l.IndexMaintenanceMem, l.IndexParallelWorkers)
	}
	g.Measured = fmt.Sprintf("%.1f min (LoadEmbeddings %.0fs at %.0f/s + HNSW build %.0fs with %s); papers COPY %.0fs before",
		l.LoadAndIndexSeconds/60, l.EmbeddingsSeconds, l.EmbeddingsPerSecond, l.IndexSeconds, mem, l.PapersSeconds)
	// What import-embeddings does otherwise: its build's memory, and the work it adds.
	if l.IndexMaintenanceMem != importIndexMem {
		g.Measured += fmt.Sprintf("; import-embeddings builds with maintenance_work_mem %s unless PAPERPIPE_INDEX_BUILD_MEMORY says otherwise", importIndexMem)
		if im, ok := pgBytes(importIndexMem); ok && l.IndexBytes > im {
			g.Measured += fmt.Sprintf(", smaller than this %d MB index: set it to %s for this figure, or the build spills and takes longer than timed here", l.IndexBytes>>20, l.IndexMaintenanceMem)
		}
	}
	vacuum := ""
	if l.VacuumSeconds > 0 {
		vacuum = fmt.Sprintf(" (%.0fs here)", l.VacuumSeconds)
	}
	g.Measured += fmt.Sprintf("; not timed: import-embeddings's JSON parsing of each line and its VACUUM ANALYZE after the load%s", vacuum)
	g.Pass = ptr(l.LoadAndIndexSeconds <= 900)
	g.Limit = "HNSW build: CPU (2 cores: leader + parallel workers)"
	if bm, ok := pgBytes(l.IndexMaintenanceMem); ok && l.IndexBytes > 0 {
		rel := "within"
		if l.IndexBytes > bm {
			rel = "larger than"
		}
		g.Limit += fmt.Sprintf("; index %d MB, %s the build's maintenance_work_mem (%s)", l.IndexBytes>>20, rel, l.IndexMaintenanceMem)
	}
	return g
}

// lost says how a case lost abstracts: "" when it stored every one of its N and dead-lettered none.
func (p *PipelineResult) lost() string {
	if p.Processed >= int64(p.Case.N) && p.Worker.Dead == 0 {
		return ""
	}
	return fmt.Sprintf("%s stored %d of %d abstracts, %d dead-lettered", p.Case.Name, p.Processed, p.Case.N, p.Worker.Dead)
}

// failLost fails g when any of ps lost abstracts, and says which: a run that does not store
// every abstract passes no goal, however fast it went.
func failLost(g *Goal, ps ...*PipelineResult) {
	var why []string
	for _, p := range ps {
		if p == nil {
			continue
		}
		if w := p.lost(); w != "" {
			why = append(why, w)
		}
	}
	if len(why) == 0 {
		return
	}
	g.Pass = ptr(false)
	g.Measured += "; LOST: " + strings.Join(why, "; ")
	g.Limit = "abstracts lost (a run that does not store every abstract passes no goal); " + g.Limit
}

func pipelineLimit(p *PipelineResult) string {
	if p.Worker.Retried > 0 {
		return fmt.Sprintf("PostgreSQL behind the worker: %d messages retried after MsgTimeout while their embedding batch waited on SaveEmbeddings (HNSW inserts, PostgreSQL %.1f CPU-s per 1,000); machine %.0f%% busy, so the retries' backoff also idles it",
			p.Worker.Retried, p.PostgresPer1000, p.CPU.Utilisation*100)
	}
	if p.CPU.Utilisation >= 0.85 {
		return fmt.Sprintf("CPU: machine %.0f%% busy (paperpipe %.2f, fake %.2f, PostgreSQL %.2f CPU-s per 1,000)",
			p.CPU.Utilisation*100, p.CPUPer1000, p.FakePer1000, p.PostgresPer1000)
	}
	if p.Ratio >= 0.9 {
		return "the API bound (chat latency × concurrency)"
	}
	if p.ChatPerAbstract > 1.01 {
		// The bound is one chat request per abstract; validation retries spend slots on more.
		return fmt.Sprintf("the API bound with %.3f chat requests per abstract (TL;DR validation retries): %.0f%% of the bound in chat requests, with the machine %.0f%% busy",
			p.ChatPerAbstract, p.Ratio*p.ChatPerAbstract*100, p.CPU.Utilisation*100)
	}
	return fmt.Sprintf("below the API bound with the machine %.0f%% busy: worker intake/settling (see service latency p50 %.0f ms vs chat %.0f ms)",
		p.CPU.Utilisation*100, p.Service.P50, p.Case.ChatLatency.Seconds()*1000)
}

func cpuLimit(p *PipelineResult) string {
	if p.Worker.Retried > 0 {
		return pipelineLimit(p)
	}
	return fmt.Sprintf("CPU: machine %.0f%% busy; per 1,000 abstracts paperpipe %.2f s, fake API %.2f s, PostgreSQL %.2f s, other %.2f s",
		p.CPU.Utilisation*100, p.CPUPer1000, p.FakePer1000, p.PostgresPer1000, p.CPU.OtherSeconds/float64(p.Case.N)*1000)
}

// Read loads a run written by Write and recomputes what is derived from its figures (bounds,
// ratios, goals), so that a summary can be rendered again.
func Read(path string) (*Run, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read results: %w", err)
	}
	var r Run
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode results %s: %w", path, err)
	}
	for i := range r.Pipeline {
		r.Pipeline[i].setBound()
	}
	// Older results called a run with failed cases complete.
	r.SetComplete(!r.Complete)
	for i := range r.KNN {
		// Older results have the pooled recall's ef_search here.
		k := &r.KNN[i]
		k.EfFor95 = relatedEfFor95(k.Sweep, storeSweepLabel(k.Case.index()))
	}
	r.Evaluate()
	return &r, nil
}

// pgBytes parses a PostgreSQL memory setting as SHOW prints it ("6026MB", "1GB", "512kB").
func pgBytes(v string) (int64, bool) {
	units := []struct {
		suffix string
		mult   int64
	}{{"kB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"TB", 1 << 40}}
	for _, u := range units {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			x, err := strconv.ParseInt(n, 10, 64)
			return x * u.mult, err == nil
		}
	}
	return 0, false
}

// Write writes r as dir/<set>-<start time>.json.
func (r *Run) Write(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("results dir: %w", err)
	}
	path := filepath.Join(dir, r.name()+"-"+r.Started.UTC().Format("20060102T150405Z")+".json")
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("write results: %w", err)
	}
	return path, nil
}

// ThroughputChart is throughput against concurrency for the API cases with latency on the
// store's default index kind (the goals' rows; other kinds are in the table): the bound, the
// steady and overall throughput at the worker's defaults, and the ceiling the zero-latency run
// reached.
func (r *Run) ThroughputChart() Chart {
	var bound, steady, overall, ceiling []Point
	var chat, emb []time.Duration
	zero := 0.0
	for _, p := range r.Pipeline {
		c := p.Case
		if c.index() != store.DefaultIndexKind {
			continue
		}
		if c.Models == ModelsAPI && c.ChatLatency == 0 && !c.DefaultTransport && !c.randomVectors() && zero == 0 {
			zero = p.Throughput
		}
		if c.Models != ModelsAPI || c.ChatLatency == 0 || c.Linger != 0 || c.RPM != 0 || c.PaceRate != 0 || c.DefaultTransport || c.randomVectors() {
			continue
		}
		x := float64(c.Concurrency)
		bound = append(bound, Point{x, p.Bound})
		steady = append(steady, Point{x, p.Steady})
		overall = append(overall, Point{x, p.Throughput})
		if !slices.Contains(chat, c.ChatLatency) {
			chat = append(chat, c.ChatLatency)
		}
		if !slices.Contains(emb, c.EmbedLatency) {
			emb = append(emb, c.EmbedLatency)
		}
	}
	for _, p := range bound {
		if zero > 0 {
			ceiling = append(ceiling, Point{p.X, zero})
		}
	}
	return Chart{
		Title: fmt.Sprintf("paperpipe throughput against concurrency (%s set, %s index, chat %s ms, embeddings %s ms)",
			r.Set, store.DefaultIndexKind, latencies(chat), latencies(emb)),
		XLabel: "concurrency C (TL;DR requests in flight)", YLabel: "abstracts per second",
		Series: []Series{
			{Name: "bound C / chat latency", Color: "#888", Dashed: true, Points: bound},
			{Name: "measured, steady", Color: "#1f77b4", Points: steady},
			{Name: "measured, overall", Color: "#2ca02c", Points: overall},
			{Name: "zero-latency ceiling", Color: "#d62728", Dashed: true, Points: ceiling},
		},
	}
}

// latencies lists the distinct latencies of the charted cases in milliseconds, "–" for none.
func latencies(ds []time.Duration) string {
	if len(ds) == 0 {
		return "–"
	}
	slices.Sort(ds)
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = fmt.Sprintf("%g", float64(d)/float64(time.Millisecond))
	}
	return strings.Join(s, "/")
}

// name is the set, with the part when only some scenarios ran.
func (r *Run) name() string {
	if r.Part == "" {
		return r.Set
	}
	return r.Set + "-" + r.Part
}

// WriteSummary writes dir/SUMMARY-<set>[-<part>].md and, when the run has pipeline results,
// the chart dir/throughput-<set>[-<part>].svg.
func (r *Run) WriteSummary(dir, jsonPath string) (string, error) {
	svg := "throughput-" + r.name() + ".svg"
	if len(r.Pipeline) > 0 {
		if err := os.WriteFile(filepath.Join(dir, svg), r.ThroughputChart().SVG(), 0o644); err != nil {
			return "", fmt.Errorf("write chart: %w", err)
		}
	}
	path := filepath.Join(dir, "SUMMARY-"+r.name()+".md")
	if err := os.WriteFile(path, []byte(r.Markdown(svg, filepath.Base(jsonPath))), 0o644); err != nil {
		return "", fmt.Errorf("write summary: %w", err)
	}
	return path, nil
}

func ms(d time.Duration) string {
	if d == 0 {
		return "–"
	}
	return fmt.Sprintf("%g", float64(d)/float64(time.Millisecond))
}

func passText(p *bool) string {
	switch {
	case p == nil:
		return "not measured"
	case *p:
		return "**pass**"
	}
	return "**FAIL**"
}

// Markdown renders the run as a markdown summary that links the chart and JSON file.
func (r *Run) Markdown(svg, jsonName string) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	status := "complete"
	switch {
	case len(r.Errors) > 0:
		status = fmt.Sprintf("INCOMPLETE (%d failed: see Errors)", len(r.Errors))
	case !r.Complete:
		status = "INCOMPLETE (cut short or still running)"
	}
	w("# paperpipe benchmarks — %s set\n\n", r.name())
	w("Run %s → %s (%s), %s. Raw figures: [%s](%s). Command: `%s`.\n\n", r.Started.UTC().Format(time.RFC3339),
		r.Finished.UTC().Format(time.RFC3339), r.Finished.Sub(r.Started).Round(time.Second), status, jsonName, jsonName, r.Command)
	m := r.Machine
	w("## Machine\n\n| | |\n|---|---|\n| CPU | %s, %d cores |\n| memory | %.1f GiB |\n| kernel | %s |\n| Go | %s |\n| PostgreSQL | %s |\n| pgvector | %s |\n",
		m.CPUModel, m.Cores, m.MemoryGiB, m.Kernel, m.GoVersion, m.PostgreSQL, m.PGVector)
	for _, k := range pgSettingNames {
		if v, ok := m.PGSettings[k]; ok {
			w("| %s | %s |\n", k, v)
		}
	}
	w("\n## Settings\n\n| setting | value |\n|---|---|\n")
	keys := make([]string, 0, len(r.Settings))
	for k := range r.Settings {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		w("| %s | %s |\n", k, r.Settings[k])
	}
	w("\n## Goals\n\n| goal | target | measured | result | limited by |\n|---|---|---|---|---|\n")
	for _, g := range r.Goals {
		w("| %s | %s | %s | %s | %s |\n", g.Name, g.Target, orDash(g.Measured), passText(g.Pass), orDash(g.Limit))
	}
	if len(r.Errors) > 0 {
		w("\n## Errors\n\n")
		for _, e := range r.Errors {
			w("- %s\n", e)
		}
	}
	if len(r.Pipeline) > 0 {
		w("\n## 1. Pipeline throughput\n\n![throughput against concurrency](%s)\n\n", svg)
		w("| case | models | N | C | chat/emb latency ms | linger / embed linger ms | RPM | pace/s | overall/s | steady/s | bound/s | steady/bound | e2e p50/p99 ms | service p50/p99 ms | chat req/abs | emb req/abs | inputs/emb req | CPU-s per 1k: paperpipe / fake / PG | machine busy | stored / acked / retried / dead |\n")
		w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, p := range r.Pipeline {
			c := p.Case
			pace := "burst"
			if c.PaceRate > 0 {
				pace = fmt.Sprintf("%g", c.PaceRate)
			}
			name := c.Name
			if c.DefaultTransport {
				name += " (http.DefaultTransport)"
			}
			if c.randomVectors() {
				name += " (random vectors)"
			}
			w("| %s | %s | %d | %d | %s/%s | %s | %d | %s | %.1f | %.1f | %s | %s | %.0f/%.0f | %.0f/%.0f | %.3f | %.4f | %.1f | %.2f / %.2f / %.2f | %.0f%% | %d / %d / %d / %d |\n",
				name, c.Models, c.N, c.Concurrency, ms(c.ChatLatency), ms(c.EmbedLatency), orDefault(c.Linger)+" / "+embedLingerOf(c), c.RPM, pace,
				p.Throughput, p.Steady, num(p.Bound), pct(p.Ratio, p.Bound), p.EndToEnd.P50, p.EndToEnd.P99, p.Service.P50, p.Service.P99,
				p.ChatPerAbstract, p.EmbedPerAbstract, p.EmbedInputsPerRequest, p.CPUPer1000, p.FakePer1000, p.PostgresPer1000,
				p.CPU.Utilisation*100, p.Processed, p.Worker.Acked, p.Worker.Retried, p.Worker.Dead)
		}
		w("\nBound models: ")
		seen := map[string]bool{}
		for _, p := range r.Pipeline {
			if !seen[p.BoundModel] {
				seen[p.BoundModel] = true
				w("%s; ", p.BoundModel)
			}
		}
		w("\n")
		for _, p := range r.Pipeline {
			if rp := p.Reprocess; rp != nil {
				w("\n## 3a. Re-processing the processed archive (%s, %d papers)\n\n", p.Case.Name, rp.Papers)
				w("| what | papers/s | seconds | notes |\n|---|---|---|---|\n")
				run := func(what string, c *ReprocessRun) {
					w("| %s | %.0f | %.2f | count %.2fs, workers %.2fs; %d stale, %d published, %d TL;DRs and %d embeddings stored, %d API calls; CPU: paperpipe %.2fs, PG %.2fs, machine %.0f%% busy |\n",
						what, c.PerSecond, c.Seconds, c.CountSeconds, c.DrainSeconds, c.Stale, c.Published, c.Worker.TLDRs, c.Worker.Embeddings, c.APICalls,
						c.CPU.SelfSeconds, c.CPU.PostgresSeconds, c.CPU.Utilisation*100)
				}
				if c := rp.Command; c != nil {
					run("`paperpipe reprocess`'s path, unchanged archive (the goal's figure: count, select, publish, drain)", c)
				} else {
					w("| `paperpipe reprocess`'s path, unchanged archive | not measured | | these results measured the re-ingest path below alone |\n")
				}
				w("| store.StalePapers selection alone (what `paperpipe reprocess` walks) | %.0f | %.2f | %d stale returned |\n", rp.SelectPerSecond, rp.SelectSeconds, rp.Stale)
				w("| re-ingest: publish every paper again on the re-processing subject | %.0f | | distinct Nats-Msg-Id per target |\n", rp.PublishPerSecond)
				w("| re-ingest: worker skip path (the plain store's UpsertPapers finds all stored → ack; not the command's path) | %.0f (steady %.0f) | %.2f | %d skipped, %d API calls; CPU: paperpipe %.2fs, PG %.2fs, machine %.0f%% busy |\n",
					rp.WorkerPerSecond, rp.Steady, rp.WorkerSeconds, rp.Skipped, rp.APICalls, rp.CPU.SelfSeconds, rp.CPU.PostgresSeconds, rp.CPU.Utilisation*100)
				if c := rp.PartlyStale; c != nil {
					run(fmt.Sprintf("`paperpipe reprocess`'s path, %.0f%% of the papers with a TL;DR of an earlier prompt version (papers/s of the whole archive)", rp.StaleFraction*100), c)
				}
			}
		}
	}
	if len(r.Stages) > 0 {
		w("\n## 1b. Where PostgreSQL's time goes: the worker's store calls, one caller, batches of %d\n\n", r.Stages[0].Batch)
		w("In the order run; the skip path (UpsertPapers of unchanged papers) runs once their TL;DRs and vectors are stored, as the worker finds a paper it skips, and fails if any has work pending; the experiment without the tsv column drops it before its timing starts.\n\n")
		w("| store call | papers | wall s per 1k | PostgreSQL CPU s per 1k | papers/s (one caller) |\n|---|---|---|---|---|\n")
		for _, st := range r.Stages {
			w("| %s | %d | %.3f | %.3f | %.0f |\n", st.Stage, st.Papers, st.WallPer1000, st.PostgresPer1000, st.PapersPerSecond)
		}
	}
	if len(r.KNN) > 0 {
		w("\n## 2. Related papers and search (k = 10)\n\n")
		w("| case | source | N | papers COPY s | LoadEmbeddings s (vectors/s) | HNSW build s | index MB | embeddings table with its indexes MB | load+index min | then VACUUM ANALYZE s |\n|---|---|---|---|---|---|---|---|---|---|\n")
		for _, k := range r.KNN {
			w("| %s | %s | %d | %.1f | %.1f (%.0f) | %.1f | %.0f | %.0f | %.2f | %s |\n", k.Case.Name, k.Case.Source, k.Case.N,
				k.Load.PapersSeconds, k.Load.EmbeddingsSeconds, k.Load.EmbeddingsPerSecond, k.Load.IndexSeconds,
				mb(k.Load.IndexBytes), mb(k.Load.TableBytes), k.Load.LoadAndIndexSeconds/60, num(k.Load.VacuumSeconds))
		}
		w("\nThrough the store's API (`Store.Related`, `Store.Search`, at the ef_search the store sets for the case's index kind, store.DefaultEFSearch):\n\n")
		w("| case | query | ef_search | recall@10 | strict recall@10 | p50 ms | p99 ms | QPS, 4 clients |\n|---|---|---|---|---|---|---|---|\n")
		for _, k := range r.KNN {
			for _, q := range []struct {
				name string
				s    QueryStats
			}{{"Related", k.Related}, {"Search", k.Search}} {
				qpsText := fmt.Sprintf("%.0f", q.s.QPS4)
				if q.s.QPS4Failed > 0 {
					qpsText += fmt.Sprintf(" (%d failed)", q.s.QPS4Failed)
				}
				w("| %s | %s | %d | %.3f | %s | %.2f | %.2f | %s |\n", k.Case.Name, q.name, k.StoreEfSearch, q.s.Recall, strictText(q.s.StrictRecall), q.s.Latency.P50, q.s.Latency.P99, qpsText)
			}
		}
		w("\nhnsw.ef_search sweep (the store's statement with ef_search set per run; related questions (stored papers, as Store.Related: its vector read, then the statement, both timed) and search questions (held-out vectors, as Store.Search) each on their own, and pooled; latency of a second pass asking them in turn until 1,000 are timed, split by kind, the first pass's pooled p99 beside it):\n\n")
		w("| case | index | ef_search | related recall@10 (strict) | related p50/p99 ms | search recall@10 (strict) | search p50/p99 ms | pooled recall@10 (strict) | pooled p50/p99 ms | first pass p99 ms |\n|---|---|---|---|---|---|---|---|---|---|\n")
		for _, k := range r.KNN {
			for _, s := range k.Sweep {
				first := "–"
				if s.FirstPass.N > 0 {
					first = fmt.Sprintf("%.2f", s.FirstPass.P99)
				}
				rel, relLat, search, searchLat := "not measured", "not measured", "not measured", "not measured"
				if s.RelatedMeasured() {
					rel = fmt.Sprintf("%.3f (%s)", s.RelatedRecall, strictText(s.RelatedStrictRecall))
					relLat = fmt.Sprintf("%.2f/%.2f", s.RelatedLatency.P50, s.RelatedLatency.P99)
				}
				if s.SearchLatency.N > 0 {
					search = fmt.Sprintf("%.3f (%s)", s.SearchRecall, strictText(s.SearchStrictRecall))
					searchLat = fmt.Sprintf("%.2f/%.2f", s.SearchLatency.P50, s.SearchLatency.P99)
				}
				w("| %s | %s | %d | %s | %s | %s | %s | %.3f (%s) | %.2f/%.2f | %s |\n", k.Case.Name, s.Index, s.EfSearch, rel, relLat, search, searchLat,
					s.Recall, strictText(s.StrictRecall), s.Latency.P50, s.Latency.P99, first)
			}
		}
		w("\n| case | ef_search for related recall ≥ 0.95 | sweep statement agrees with store.Search | exact search s | data generation s |\n|---|---|---|---|---|\n")
		for _, k := range r.KNN {
			w("| %s | %s | %.3f | %.1f | %.1f |\n", k.Case.Name, efText(k), k.MirrorAgreement, k.ExactSeconds, k.GenerateSeconds)
		}
	}
	w("\n## How it is measured\n\n%s", methodText)
	return b.String()
}

// strictText is a strict recall figure; "–" for results written before it was measured.
func strictText(r float64) string {
	if r == 0 {
		return "–"
	}
	return fmt.Sprintf("%.3f", r)
}

func efText(k KNNResult) string {
	if k.EfFor95 > 0 {
		return fmt.Sprint(k.EfFor95)
	}
	for _, s := range k.Sweep {
		if s.RelatedMeasured() {
			return "none swept"
		}
	}
	if len(k.Sweep) > 0 {
		return "not measured (sweep pooled related and search questions)"
	}
	return "none swept"
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

// embedLingerOf is the case's EmbedLinger as the summary shows it: "–" for the offline models,
// which bill no requests and so never wait it.
func embedLingerOf(c PipelineCase) string {
	switch {
	case c.Models == ModelsOffline:
		return "–"
	case c.EmbedLinger == 0:
		return ms(pipeline.DefaultEmbedLinger) + " (default)"
	}
	return ms(c.EmbedLinger)
}

func orDefault(d time.Duration) string {
	if d == 0 {
		return "10 (default)"
	}
	return ms(d)
}

func num(x float64) string {
	if x == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f", x)
}

func pct(ratio, bound float64) string {
	if bound == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f%%", ratio*100)
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

const methodText = `- **Pipeline.** Each case gets a fresh schema, a fresh embedded NATS server (pipeline.StartEmbedded, file storage in a temp dir, pipeline.Setup defaults) and, for API models, a fresh cmd/openai-fake process with the case's latencies (checking the first 100 requests and answers of each endpoint against OpenAI's published description, then one in 50; a case fails on any violation). The worker is pipeline.NewWorker with summarize.New and embed.New (text-embedding-3-small asked for 768 dimensions) sharing one llm.Limiter and an http.Client on llm.PooledTransport(C) (as the CLI builds them), and the store from store.Open — the CLI's wiring. Abstracts are generated from testdata/sample-papers.txt (distinct ids, texts and hashes) and published with pipeline.NewPublisher while the worker runs.
- **Throughput**: *overall* = abstracts stored (with their TL;DR and embedding) / (first publish → last ack), so a dead-lettered abstract does not count; a case that stores fewer than N or dead-letters any passes no goal; *steady* = acks between the 10th and 90th percentile of ack times per second (the pipeline full), the figure compared with the bound.
- **Bound** (Little's law): the worker holds at most C TL;DR requests in flight and each lasts the chat latency, so X ≤ C / chat latency. Embedding requests run while the TL;DR is being written and are batched across messages (no chat slot), so they add no term. With a client-side RPM budget shared by both clients, whose bucket starts with a minute's budget: N abstracts of r requests each (the fake's count) take at least (N·r − RPM)/(RPM/60) seconds, so X ≤ N / ((N·r − RPM)/(RPM/60)) — RPM/60 / r in a run much longer than a minute — compared with the overall throughput, since the first minute's burst is part of the run; the smaller bound binds.
- **Latency**: a second NATS connection subscribes to ` + "`$JS.ACK.PAPERS.>`" + ` (the acks workers publish) and ` + "`_INBOX.>`" + ` (deliveries to pull requests); the ack subject carries the stream sequence and the time the server stored the message. *e2e* = stored (publish) → ack, which in a burst run includes waiting in the backlog; *service* = first delivery to a worker → ack. The paced case publishes below the bound, so its e2e is the latency without a backlog.
- **Requests per abstract** come from the fake's /_stats (HTTP requests received). **CPU**: getrusage of the benchmark process (worker, publisher, embedded NATS, store client, the tap) — paperpipe's own, since the fake runs as its own process; the fake's and the PostgreSQL backends' (process title naming the bench database) from /proc; machine busy from /proc/stat. Other helpers share this 2-core machine, so "other" CPU is reported too.
- **kNN**: vectors are loaded through the store's bulk path — papers by COPY, store.EnsureSpaceForLoad (no index), store.LoadEmbeddings in chunks of 5,000 (COPY into a staging table + one INSERT), store.BuildSpaceIndex (maintenance_work_mem ` + benchIndexMem + `, 2 parallel workers) — then VACUUM (ANALYZE). The load goal times this path, which is not ` + "`paperpipe import-embeddings`" + ` end to end: import-embeddings builds with maintenance_work_mem from PAPERPIPE_INDEX_BUILD_MEMORY (default ` + importIndexMem + `, less than a 1M × 768 index — about 2 GB on halfvec, 4 GB on vector — whose build then spills to disk and takes longer: set it to ` + benchIndexMem + ` to build as here); it also parses each JSON line (the benchmark hands the store []float32) and runs VACUUM ANALYZE after the load, neither of which load+index counts. Exact answers are brute force in Go over the same float32 vectors. Recall@10 counts ties as found (TieRecall): among papers at the exact 10th neighbour's distance an exact answer keeps an arbitrary few (the lowest indexes), so a search that returns others of them is as right — a returned paper nearer than the 10th is found, and returned papers at exactly its distance fill the exact answer's places at that distance; the strict figure beside it counts only the exact answer's own papers. They differ only where papers tie, which synthetic vectors do not and the offline models' vectors of the generated abstracts (whose texts repeat) do. Latency and recall use Store.Related (stored papers, itself excluded) and Store.Search (held-out vectors). Each case's space has the store's default index kind, store.IndexHNSWHalfvec (HNSW on halfvec copies, halfvec_cosine_ops; each query re-ranks 2k candidates by exact cosine distance), unless named *-vector (store.IndexHNSW: HNSW on the vectors, vector_cosine_ops) or *-binary (store.IndexHNSWBinary: HNSW on binary_quantize codes, bit_hamming_ops; each query re-ranks its ef_search candidates by exact cosine distance). The ef_search sweep runs the store's own statement (store.NewKNNQuery; the store itself sets ef_search to max(store.DefaultEFSearch(kind), k) — 160 on every kind since session 9, 100 on hnsw and hnsw-halfvec before — unless PAPERPIPE_EF_SEARCH is set); the sweep's agreement with Store.Search is reported. Each ef_search point measures recall on a first pass over the questions and one client's latency on a second that asks them in turn until LatencyQueries (1,000 at 100k and 1M) are timed (the first pass's p99 is shown beside it). Recall and latency are reported for the related questions (RecallQueries stored papers, as Store.Related asks: each timed question reads the paper's stored vector first, store.RelatedVector, then runs the statement, Store.Related's two steps) and the search questions (as many held-out vectors, as Store.Search asks) each on their own — each kind's latency is its share of the second pass's samples, about half — and pooled; the related-papers goal and the ef_search for recall ≥ 0.95 are judged on the related questions alone. After the load and the index build, VACUUM (ANALYZE) runs before any query, so that autovacuum does not start on the fresh rows during the measurements; its time is reported and not counted in load+index. Synthetic data: see ClusterSpec in the settings.
- **Re-processing**: after a zero-latency run, the reprocess goal times ` + "`paperpipe reprocess`" + `'s own path over the unchanged archive, through the code the command runs (internal/reprocess): store.CountStale, the target's consumer, reprocess.PublishStale (store.StalePapers, pages of 5,000, each drained before the next) and a worker on reprocess.Store (its intake the read-only store.PendingFor) until its consumer is idle, then the idle consumer removed; papers/s is the archive's papers over that time, with the count's and the workers' shares beside it (a worker exits once a pull finds its consumer empty, after pipeline.WorkerConfig.FetchWait, 1 s: a cost of every run that publishes anything; one that publishes nothing, over an unchanged archive, starts no worker — reprocess.NeedsDrain). The command's run locks, progress lines and the space's index check are not timed. The re-ingest row is another path, kept apart: the same papers published again on the re-processing subject (pipeline.NewReprocessTarget: distinct message ids, so the server does not drop them) and drained by a worker on the plain store, whose every UpsertPapers (as an ingest's) finds the results stored — the worker's skip path. Last, one paper in 10 gets its TL;DR marked as of an earlier prompt version, and the command's path runs again, buying those TL;DRs from the fake API.
`

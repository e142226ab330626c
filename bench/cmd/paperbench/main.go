// Command paperbench runs paperpipe's benchmarks (package bench) and writes their results:
// bench/results/<set>-<time>.json, bench/results/SUMMARY-<set>.md and
// bench/results/throughput-<set>.svg. `make bench` runs the quick set (under 5 minutes),
// `make bench BENCH=full` the full one (1M vectors; long).
//
// Usage:
//
//	paperbench [-set quick|full] [-db URL] [-fake bin/openai-fake] [-out bench/results] [-only pipeline,knn] [-keep] [-cpuprofile file]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paperpipe/paperpipe/bench"
	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/internal/pgtest"
	"github.com/paperpipe/paperpipe/store"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "paperbench:", err)
		os.Exit(1)
	}
}

// set is one benchmark set: its pipeline and kNN cases.
type set struct {
	pipeline []bench.PipelineCase
	knn      []bench.KNNCase
}

const (
	chatLatency  = 400 * time.Millisecond
	embedLatency = 200 * time.Millisecond
	dims         = 768
)

func api(name string, n, c int) bench.PipelineCase {
	return bench.PipelineCase{Name: name, Models: bench.ModelsAPI, N: n, Concurrency: c, ChatLatency: chatLatency, EmbedLatency: embedLatency}
}

func sets() map[string]set {
	// N ≈ bound × seconds, so each case runs about as long at every concurrency.
	n := func(c int, seconds float64) int { return int(float64(c) / chatLatency.Seconds() * seconds) }
	quick := set{
		pipeline: []bench.PipelineCase{
			api("C16", n(16, 8), 16),
			api("C64", n(64, 8), 64),
			// C=256 runs 6,000 abstracts as in the full set: the machine's CPU holds it near
			// 450/s, and with 2,560 (4 s at its bound) the 10–90% ack window caught the
			// pipeline filling rather than a steady state (596/s "steady" against 469/s overall).
			api("C256", 6000, 256),
			withLinger(api("C64-linger150", n(64, 8), 64), 150*time.Millisecond),
			withLinger(api("C256-linger150", 6000, 256), 150*time.Millisecond),
			paced(api("C64-paced", 640, 64), 80),
			// The same arrivals with the embedding linger of the chat side: its cost in
			// requests against the default's in latency.
			withEmbedLinger(paced(api("C64-paced-embedlinger10", 640, 64), 80), 10*time.Millisecond),
			{Name: "zero-latency-fake", Models: bench.ModelsAPI, N: 2000, Concurrency: 64, Reprocess: true},
			{Name: "zero-latency-fake-binary", Models: bench.ModelsAPI, N: 2000, Concurrency: 64, Index: store.IndexHNSWBinary},
			{Name: "zero-latency-fake-vector", Models: bench.ModelsAPI, N: 2000, Concurrency: 64, Index: store.IndexHNSW},
			{Name: "offline", Models: bench.ModelsOffline, N: 2000, Concurrency: 64},
		},
		knn: []bench.KNNCase{
			knnCase("synthetic-20k", bench.SourceSynthetic, 20_000, 100, 300, 3*time.Second, []int{16, 40, 100, 200}),
			knnCase("offline-20k", bench.SourceOffline, 20_000, 100, 300, 3*time.Second, []int{16, 40, 100, 200}),
			binary(knnCase("synthetic-20k-binary", bench.SourceSynthetic, 20_000, 100, 300, 3*time.Second, []int{16, 40, 100, 200})),
			vector(knnCase("synthetic-20k-vector", bench.SourceSynthetic, 20_000, 100, 300, 3*time.Second, []int{16, 40, 100, 200})),
		},
	}
	sweep := []int{10, 20, 40, 64, 100, 128, 160, 200, 400}
	// The machine's CPU holds the pipeline near 300 abstracts/s on 2 cores (see the
	// store stages), so N is capped where the bound would need minutes.
	full := set{
		pipeline: []bench.PipelineCase{
			api("C16", n(16, 30), 16),
			api("C64", n(64, 30), 64),
			api("C256", 6000, 256),
			defaultTransport(api("C256-default-transport", 6000, 256)),
			withLinger(api("C64-linger150", n(64, 30), 64), 150*time.Millisecond),
			withLinger(api("C256-linger150", 6000, 256), 150*time.Millisecond),
			paced(api("C64-paced", 2400, 64), 80),
			withEmbedLinger(paced(api("C64-paced-embedlinger10", 2400, 64), 80), 10*time.Millisecond),
			rpm(api("C64-rpm600", 1000, 64), 600),
			// The fake's default vectors are derived from the text and cluster like a real
			// model's; random ones are the worst case for PostgreSQL's HNSW inserts.
			randomVectors(api("C64-random-vectors", n(64, 30), 64)),
			{Name: "zero-latency-fake", Models: bench.ModelsAPI, N: 10_000, Concurrency: 64, Reprocess: true},
			{Name: "offline", Models: bench.ModelsOffline, N: 10_000, Concurrency: 64},
			// The same pipeline into a space with a binary-code index (cheaper HNSW inserts).
			pipeOn(store.IndexHNSWBinary, api("C256-binary", 6000, 256)),
			{Name: "zero-latency-fake-binary", Models: bench.ModelsAPI, N: 10_000, Concurrency: 64, Index: store.IndexHNSWBinary},
			{Name: "offline-binary", Models: bench.ModelsOffline, N: 10_000, Concurrency: 64, Index: store.IndexHNSWBinary},
			// And into a space with an index on the vectors themselves (store.IndexHNSW).
			pipeOn(store.IndexHNSW, api("C256-vector", 6000, 256)),
			{Name: "zero-latency-fake-vector", Models: bench.ModelsAPI, N: 10_000, Concurrency: 64, Index: store.IndexHNSW},
			{Name: "offline-vector", Models: bench.ModelsOffline, N: 10_000, Concurrency: 64, Index: store.IndexHNSW},
		},
		// The 1M cases run first: they are the headline goal and the longest. Each data set is
		// measured with each of the store's index kinds (store.IndexKinds).
		knn: []bench.KNNCase{
			knnCase("synthetic-1M", bench.SourceSynthetic, 1_000_000, 100, 1000, 15*time.Second, sweep),
			binary(knnCase("synthetic-1M-binary", bench.SourceSynthetic, 1_000_000, 100, 1000, 15*time.Second, sweep)),
			vector(knnCase("synthetic-1M-vector", bench.SourceSynthetic, 1_000_000, 100, 1000, 15*time.Second, sweep)),
			knnCase("synthetic-100k", bench.SourceSynthetic, 100_000, 200, 1000, 10*time.Second, sweep),
			binary(knnCase("synthetic-100k-binary", bench.SourceSynthetic, 100_000, 200, 1000, 10*time.Second, sweep)),
			vector(knnCase("synthetic-100k-vector", bench.SourceSynthetic, 100_000, 200, 1000, 10*time.Second, sweep)),
			knnCase("offline-100k", bench.SourceOffline, 100_000, 200, 1000, 10*time.Second, sweep),
			binary(knnCase("offline-100k-binary", bench.SourceOffline, 100_000, 200, 1000, 10*time.Second, sweep)),
			vector(knnCase("offline-100k-vector", bench.SourceOffline, 100_000, 200, 1000, 10*time.Second, sweep)),
			knnCase("fitted-100k", bench.SourceFitted, 100_000, 200, 1000, 10*time.Second, sweep),
			binary(knnCase("fitted-100k-binary", bench.SourceFitted, 100_000, 200, 1000, 10*time.Second, sweep)),
		},
	}
	return map[string]set{"quick": quick, "full": full}
}

// scenarios are the parts of a set -only names.
var scenarios = []string{"pipeline", "knn"}

// check returns an error naming what only (comma-separated scenarios) and cases
// (comma-separated case names, "" for all; "stages" is the store-call breakdown of the
// pipeline scenario) ask for that the set named name does not run.
func (s set) check(name, only, cases string) error {
	var bad []string
	named := 0
	for _, o := range strings.Split(only, ",") {
		switch o = strings.TrimSpace(o); {
		case o == "":
		case slices.Contains(scenarios, o):
			named++
		default:
			bad = append(bad, o)
		}
	}
	if len(bad) > 0 || named == 0 {
		what := strings.Join(bad, ", ")
		if what == "" {
			what = strconv.Quote(only)
		}
		return fmt.Errorf("-only %s: no such scenario; want %s, or both comma-separated", what, strings.Join(scenarios, " or "))
	}
	var known []string
	if strings.Contains(only, "pipeline") {
		known = append(known, "stages")
		for _, c := range s.pipeline {
			known = append(known, c.Name)
		}
	}
	if strings.Contains(only, "knn") {
		for _, c := range s.knn {
			known = append(known, c.Name)
		}
	}
	for _, c := range strings.Split(cases, ",") {
		if c = strings.TrimSpace(c); c != "" && !slices.Contains(known, c) {
			bad = append(bad, c)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("-cases %s: no such case in what -only %s runs of the %s set; its cases: %s",
			strings.Join(bad, ", "), strings.Trim(only, ", "), name, strings.Join(known, ", "))
	}
	return nil
}

func withLinger(c bench.PipelineCase, d time.Duration) bench.PipelineCase { c.Linger = d; return c }
func withEmbedLinger(c bench.PipelineCase, d time.Duration) bench.PipelineCase {
	c.EmbedLinger = d
	return c
}
func paced(c bench.PipelineCase, rate float64) bench.PipelineCase       { c.PaceRate = rate; return c }
func rpm(c bench.PipelineCase, n int) bench.PipelineCase                { c.RPM = n; return c }
func defaultTransport(c bench.PipelineCase) bench.PipelineCase          { c.DefaultTransport = true; return c }
func binary(c bench.KNNCase) bench.KNNCase                              { c.Index = store.IndexHNSWBinary; return c }
func vector(c bench.KNNCase) bench.KNNCase                              { c.Index = store.IndexHNSW; return c }
func pipeOn(k store.IndexKind, c bench.PipelineCase) bench.PipelineCase { c.Index = k; return c }
func randomVectors(c bench.PipelineCase) bench.PipelineCase {
	c.Vectors = openaitest.VectorsRandom
	return c
}

func knnCase(name, source string, n, recall, latency int, qps time.Duration, ef []int) bench.KNNCase {
	return bench.KNNCase{Name: name, Source: source, N: n, Dims: dims, RecallQueries: recall, LatencyQueries: latency,
		QPSDuration: qps, EfSearch: ef, Clusters: bench.DefaultClusters(n, dims, 42), ChunkSize: 5000}
}

func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("paperbench", flag.ContinueOnError)
	setName := fs.String("set", "quick", "benchmark set: quick or full")
	dbURL := fs.String("db", pgtest.BaseURL(), "PostgreSQL server URL (the benchmark database is created next to it)")
	dbName := fs.String("dbname", "paperpipe_bench", "benchmark database to create, and drop at the end")
	fakeBin := fs.String("fake", "bin/openai-fake", "openai-fake binary")
	corpusPath := fs.String("corpus", "testdata/sample-papers.txt", "sample archive the abstracts are generated from")
	out := fs.String("out", "bench/results", "results directory")
	only := fs.String("only", "pipeline,knn", "scenarios to run: pipeline, knn, or both")
	cases := fs.String("cases", "", "comma-separated case names to run (default: all of the set)")
	keep := fs.Bool("keep", false, "keep the benchmark database")
	render := fs.String("render", "", "only write the summary and chart again from this results JSON file")
	verbose := fs.Bool("v", false, "log the workers' retries and warnings")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of this process (paperpipe's side: worker, publisher, NATS) to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if *render != "" {
		r, err := bench.Read(*render)
		if err != nil {
			return err
		}
		_, err = r.WriteSummary(*out, *render)
		return err
	}
	s, ok := sets()[*setName]
	if !ok {
		return fmt.Errorf("-set %q: want quick or full", *setName)
	}
	// Checked before anything runs: a misspelt name was skipped without a word, and a run of
	// none of the set's cases was written, over the set's summary, as a complete run.
	if err := s.check(*setName, *only, *cases); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	quiet := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	corpus, err := bench.LoadCorpus(*corpusPath)
	if err != nil {
		return err
	}
	db, err := bench.OpenDB(ctx, *dbURL, *dbName, *keep)
	if err != nil {
		return err
	}
	defer func() {
		if err := db.Close(context.WithoutCancel(ctx)); err != nil {
			log.Warn("dropping the benchmark database", "err", err)
		}
	}()
	pool, err := pgxpool.New(ctx, *dbURL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	machine, err := bench.ReadMachine(ctx, pool)
	pool.Close()
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, c := range strings.Split(*cases, ",") {
		if c = strings.TrimSpace(c); c != "" {
			want[c] = true
		}
	}
	selected := func(name string) bool { return len(want) == 0 || want[name] }
	// -cases names cases; "stages" is the store-call breakdown.

	part := ""
	if !strings.Contains(*only, "pipeline") || !strings.Contains(*only, "knn") {
		part = strings.Trim(*only, ", ")
	}
	if len(want) > 0 {
		// A run of some cases is not the set's run: its summary goes beside the set's, not over
		// it (README cites SUMMARY-full-pipeline.md).
		part = strings.TrimPrefix(part+"-subset", "-")
	}
	r := &bench.Run{Set: *setName, Part: part, Started: time.Now(), Command: "paperbench " + strings.Join(redactDB(args), " "), Machine: machine,
		Settings: map[string]string{
			"database":              db.Name + " (dropped at the end unless -keep)",
			"fake API":              *fakeBin + " as its own process; chat latency and embedding latency per case",
			"fake API vectors":      "text (openai-fake -vectors text: lexical vectors of the input, clustered like a real model's) unless the case says random vectors (-vectors random: uniformly random, the worst case for HNSW inserts)",
			"embedding dimensions":  fmt.Sprint(dims),
			"chat model / embedder": "summarize.New gpt-4o-mini, embed.New text-embedding-3-small at 768 dims (api); summarize.NewOffline(30), embed.NewOfflineV2 (offline; what a new archive embeds with)",
			"worker":                "pipeline.WorkerConfig defaults except Concurrency, Linger and EmbedLinger per case: BatchSize 64, MaxInFlight max(4C, 256), EmbedBatch 64 (pipeline.MaxEmbedBatch), Linger 10ms (an embedding batch gathers while its messages wait for a chat slot and, below BatchSize, while the previous batch is in flight), EmbedLinger 1s (pipeline.DefaultEmbedLinger: once the API has billed a request an embedding batch waits up to 1s, from its first abstract whose TL;DR has started, to fill) unless the case says, FetchWait 1s",
			"topology":              "pipeline.TopologyConfig defaults: AckWait 60s, MaxDeliver 8, MaxAckPending 4096, file storage",
			"publisher":             "pipeline.NewPublisher window 256",
			"HTTP client":           "llm.PooledTransport(C), as the CLI builds it (an idle connection per request in flight), unless the case says http.DefaultTransport (2 idle connections per host)",
			"store pool":            "store.Open defaults (MaxConns max(8, 4×GOMAXPROCS))",
			"corpus":                fmt.Sprintf("%s (%d papers) → generated abstracts", *corpusPath, len(corpus)),
			"kNN k":                 "10",
			"HNSW":                  "pgvector defaults m=16, ef_construction=64; build maintenance_work_mem 8GB, 2 parallel workers (paperpipe import-embeddings builds with PAPERPIPE_INDEX_BUILD_MEMORY, default 1GB); *-binary cases index binary_quantize codes (bit_hamming_ops) and re-rank ef_search candidates exactly",
			"kNN offline vectors":   "offline-*: embed.NewOfflineV2 (hashed); fitted-*: embed.Fit on the first 4,000 generated abstracts (paperpipe fit's default sample), then every abstract and query embedded by it",
		}}
	for _, c := range s.knn {
		if selected(c.Name) && c.Source == bench.SourceSynthetic {
			r.Settings["synthetic clusters "+c.Name] = fmt.Sprintf("%+v", c.Clusters)
		}
	}
	save := func() {
		r.Finished = time.Now()
		r.Evaluate()
		path, err := r.Write(*out)
		if err != nil {
			log.Error("writing results", "err", err)
			return
		}
		if _, err := r.WriteSummary(*out, path); err != nil {
			log.Error("writing summary", "err", err)
		}
	}
	fail := func(err error) {
		log.Error("case failed", "err", err)
		r.Errors = append(r.Errors, err.Error())
	}

	if strings.Contains(*only, "pipeline") && selected("stages") {
		n := 2000
		if *setName == "full" {
			n = 5000
		}
		log.Info("store stages", "n", n)
		st, err := bench.RunStages(ctx, db, corpus, n, 64, log)
		r.Stages = st
		if err != nil {
			fail(err)
		}
		save()
	}
	if strings.Contains(*only, "pipeline") {
		abstracts := bench.GenerateAbstracts(corpus, 60_000, *setName+fmt.Sprint(time.Now().Unix()), 1)
		for _, c := range s.pipeline {
			if !selected(c.Name) || ctx.Err() != nil {
				continue
			}
			log.Info("pipeline case", "name", c.Name, "n", c.N, "concurrency", c.Concurrency)
			plog := quiet
			if *verbose {
				plog = log
			}
			res, err := bench.RunPipeline(ctx, bench.PipelineOptions{DB: db, FakeBin: *fakeBin, Dims: dims, Logger: plog}, c, abstracts)
			if err != nil {
				fail(err)
				continue
			}
			log.Info("pipeline result", "name", c.Name, "throughput", res.Throughput, "steady", res.Steady, "bound", res.Bound,
				"e2e_p50_ms", res.EndToEnd.P50, "service_p50_ms", res.Service.P50, "embed_per_abstract", res.EmbedPerAbstract,
				"cpu_per_1000", res.CPUPer1000, "busy", res.CPU.Utilisation)
			r.Pipeline = append(r.Pipeline, res)
			save()
		}
	}
	if strings.Contains(*only, "knn") {
		for _, c := range s.knn {
			if !selected(c.Name) || ctx.Err() != nil {
				continue
			}
			log.Info("knn case", "name", c.Name, "n", c.N)
			at := len(r.KNN)
			r.KNN = append(r.KNN, bench.KNNResult{Case: c})
			res, err := bench.RunKNN(ctx, bench.KNNOptions{DB: db, Corpus: corpus, Logger: log,
				OnProgress: func(p bench.KNNResult) { r.KNN[at] = p; save() }}, c)
			r.KNN[at] = res
			if err != nil {
				fail(err)
			}
			save()
		}
	}
	r.SetComplete(ctx.Err() != nil)
	save()
	fmt.Fprintf(stderr, "paperbench: results in %s (SUMMARY-%s*.md)\n", *out, *setName)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	// A failed case fails the run (and `make bench`), its figures and the others' written above.
	if n := len(r.Errors); n > 0 {
		what := "1 case failed"
		if n > 1 {
			what = fmt.Sprintf("%d cases failed", n)
		}
		return fmt.Errorf("%s: see Errors in the summary, or the log above", what)
	}
	return nil
}

// redactDB returns the command line args with the password of -db's URL masked: the command is
// written to the results, which are committed.
func redactDB(args []string) []string {
	out := slices.Clone(args)
	for i, a := range out {
		switch {
		case (a == "-db" || a == "--db") && i+1 < len(out):
			out[i+1] = pgtest.Redact(out[i+1])
		case strings.HasPrefix(a, "-db="), strings.HasPrefix(a, "--db="):
			name, v, _ := strings.Cut(a, "=")
			out[i] = name + "=" + pgtest.Redact(v)
		}
	}
	return out
}

package bench

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

// Sources of KNN vectors.
const (
	SourceSynthetic = "synthetic" // ClusterSpec vectors
	SourceOffline   = "offline"   // embed.NewOfflineV2 on generated abstracts
	SourceFitted    = "fitted"    // embed.Fit on a sample of generated abstracts, as paperpipe fit does
)

// KNNCase is one related-papers and search benchmark.
type KNNCase struct {
	Name   string `json:"name"`
	Source string `json:"source"`
	N      int    `json:"n"`
	Dims   int    `json:"dims"`
	// RecallQueries is how many stored papers (Related) and held-out vectors (Search) are
	// checked against exact search, each.
	RecallQueries int `json:"recall_queries"`
	// LatencyQueries is how many timed queries of each kind one client runs.
	LatencyQueries int `json:"latency_queries"`
	// QPSDuration is how long 4 clients run for the throughput figure.
	QPSDuration time.Duration `json:"qps_duration_ns"`
	// EfSearch lists the hnsw.ef_search values swept.
	EfSearch []int `json:"ef_search"`
	// Index is the store's index kind for the case's space (store.Config.VectorIndex).
	// Defaults to store.DefaultIndexKind.
	Index store.IndexKind `json:"index,omitempty"`
	// Clusters describes synthetic data.
	Clusters ClusterSpec `json:"clusters"`
	// ChunkSize is the vectors per store.LoadEmbeddings call. Defaults to 5000 (the CLI's).
	ChunkSize int `json:"chunk_size"`
}

// index is the store's index kind for the case.
func (c KNNCase) index() store.IndexKind {
	if c.Index == "" {
		return store.DefaultIndexKind
	}
	return c.Index
}

// LoadTimes is how long a bulk load took.
type LoadTimes struct {
	PapersSeconds       float64 `json:"papers_copy_s"`
	EmbeddingsSeconds   float64 `json:"embeddings_load_s"`
	EmbeddingsPerSecond float64 `json:"embeddings_per_s"`
	IndexSeconds        float64 `json:"index_build_s"`
	IndexBytes          int64   `json:"index_bytes"`
	// TableBytes is pg_total_relation_size('embeddings'): the table with its indexes (IndexBytes
	// and the primary key among them) and TOAST.
	TableBytes          int64   `json:"embeddings_table_bytes"`
	LoadAndIndexSeconds float64 `json:"load_and_index_s"`
	// VacuumSeconds is the VACUUM (ANALYZE) after the load, before any query.
	VacuumSeconds        float64 `json:"vacuum_analyze_s"`
	IndexMaintenanceMem  string  `json:"index_maintenance_work_mem"`
	IndexParallelWorkers int     `json:"index_parallel_workers"`
}

// QueryStats is one query kind through the store's API at its built-in settings.
type QueryStats struct {
	Latency Dist    `json:"latency_one_client"`
	QPS4    float64 `json:"qps_4_clients"`
	// QPS4Failed counts the queries that failed while QPS4 was measured (not in QPS4).
	QPS4Failed int64 `json:"qps_4_clients_failed"`
	// Recall counts papers tied with the exact 10th neighbour as found (TieRecall);
	// StrictRecall counts only the exact answer's own papers (Recall). They differ where papers
	// tie: the offline models' vectors of the generated abstracts, whose texts repeat.
	Recall       float64 `json:"recall_at_10"`
	StrictRecall float64 `json:"recall_at_10_strict"`
}

// SweepPoint is recall and latency at one hnsw.ef_search.
type SweepPoint struct {
	Index    string `json:"index"` // the store's index kind: vector (hnsw), halfvec or binary
	EfSearch int    `json:"ef_search"`
	// Recall and StrictRecall as in QueryStats, over the related and search questions
	// together (pooled; results written before the split have only these).
	Recall       float64 `json:"recall_at_10"`
	StrictRecall float64 `json:"recall_at_10_strict"`
	// Latency is one client's, over a second pass of the questions: the first, which
	// measures recall, also brings the pages this ef_search visits into shared_buffers, as a
	// serving database has them (FirstPass is its latency). Pooled, as Recall.
	Latency   Dist `json:"latency_one_client"`
	FirstPass Dist `json:"latency_first_pass"`
	// The related questions' figures (stored papers, themselves excluded: Store.Related) and
	// the search questions' (held-out vectors: Store.Search), each on its own. Their
	// latencies are the second pass's samples of that kind. Zero in results written before
	// they were measured apart (RelatedLatency.N == 0).
	RelatedRecall       float64 `json:"related_recall_at_10,omitempty"`
	RelatedStrictRecall float64 `json:"related_recall_at_10_strict,omitempty"`
	RelatedLatency      Dist    `json:"related_latency_one_client"`
	SearchRecall        float64 `json:"search_recall_at_10,omitempty"`
	SearchStrictRecall  float64 `json:"search_recall_at_10_strict,omitempty"`
	SearchLatency       Dist    `json:"search_latency_one_client"`
}

// RelatedMeasured reports whether the point has the related questions' own figures.
func (p SweepPoint) RelatedMeasured() bool { return p.RelatedLatency.N > 0 }

// relatedEfFor95 is the smallest swept ef_search of the label whose related recall@10 is at
// least 0.95; 0 when none is, or the sweep did not measure related questions apart.
func relatedEfFor95(sweep []SweepPoint, label string) int {
	for _, p := range sweep {
		if p.Index == label && p.RelatedMeasured() && p.RelatedRecall >= 0.95 {
			return p.EfSearch
		}
	}
	return 0
}

// KNNResult is what a KNNCase measured.
type KNNResult struct {
	Case    KNNCase    `json:"case"`
	Load    LoadTimes  `json:"load"`
	Related QueryStats `json:"related"`
	Search  QueryStats `json:"search"`
	// StoreEfSearch is the ef_search the store's queries use.
	StoreEfSearch int          `json:"store_ef_search"`
	Sweep         []SweepPoint `json:"sweep"`
	// EfFor95 is the smallest swept ef_search whose related-papers recall@10 is at least 0.95
	// (0: none, or not measured: results written before the sweep measured related questions
	// apart had the pooled recall here; Read recomputes it).
	EfFor95 int `json:"ef_for_recall_95"`
	// MirrorAgreement is the share of results the benchmark's copy of the store's query (used
	// for the sweep) shares with store.Search at the store's ef_search: 1 means the sweep
	// measures the store's statement.
	MirrorAgreement float64 `json:"mirror_agreement"`
	ExactSeconds    float64 `json:"exact_search_s"`
	GenerateSeconds float64 `json:"generate_s"`
}

// KNNOptions is what every KNN case shares.
type KNNOptions struct {
	DB     *DB
	Corpus []paper.Abstract
	Logger *slog.Logger // defaults to discarding
	// OnProgress, when set, is called with a partial result after each phase, so a long run
	// leaves its figures behind even if it is stopped.
	OnProgress func(KNNResult)
}

type knnData struct {
	ids     []string
	pos     map[string]int // index of each id in ids
	titles  []string
	texts   []string
	vecs    [][]float32 // as stored
	unit    [][]float32 // normalised, for exact search
	queries [][]float32 // held-out, as a user's search vector (normalised copy for exact in qunit)
	qunit   [][]float32
	model   string // the embedding model, "" for synthetic data
}

// fitSample is how many papers `paperpipe fit` fits on by default.
const fitSample = 4000

// localEmbedder returns the offline embedder of an offline or fitted case: the fitted one is fit
// on the first fitSample abstracts, as `paperpipe fit` fits on a sample of the archive.
func localEmbedder(c KNNCase, abs []paper.Abstract) (interface {
	Space() paper.Space
	Vector(string) []float32
	EmbedQuery(context.Context, string) ([]float32, paper.Usage, error)
}, error) {
	if c.Source == SourceOffline {
		return embed.NewOfflineV2(), nil
	}
	docs := make([]string, 0, fitSample)
	for _, a := range abs[:min(fitSample, len(abs))] {
		docs = append(docs, embed.TitleAbstract(a))
	}
	m, _, err := embed.Fit(docs, c.Dims)
	if err != nil {
		return nil, fmt.Errorf("case %s: %w", c.Name, err)
	}
	return m, nil
}

func makeKNNData(c KNNCase, corpus []paper.Abstract) (*knnData, error) {
	d := &knnData{}
	switch c.Source {
	case SourceSynthetic:
		all := c.Clusters.Generate(c.N)
		d.vecs, d.unit = all, all
		d.queries = c.Clusters.Queries(c.RecallQueries)
		d.qunit = d.queries
		d.ids, d.titles, d.texts = make([]string, c.N), make([]string, c.N), make([]string, c.N)
		for i := range c.N {
			d.ids[i] = fmt.Sprintf("syn:%07d", i)
			d.titles[i] = "Synthetic paper " + strconv.Itoa(i)
			d.texts[i] = "Synthetic abstract number " + strconv.Itoa(i) + "."
		}
	case SourceOffline, SourceFitted:
		abs := GenerateAbstracts(corpus, c.N+c.RecallQueries, "knn", 7)
		emb, err := localEmbedder(c, abs[:c.N])
		if err != nil {
			return nil, err
		}
		d.model = emb.Space().Model
		d.vecs = make([][]float32, c.N)
		var wg sync.WaitGroup
		const workers = 2
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < c.N; i += workers {
					d.vecs[i] = emb.Vector(embed.TitleAbstract(abs[i]))
				}
			}()
		}
		wg.Wait()
		d.unit = make([][]float32, c.N)
		for i, v := range d.vecs {
			d.unit[i] = Normalize(append([]float32(nil), v...))
		}
		for _, a := range abs[c.N:] {
			q, _, err := emb.EmbedQuery(context.Background(), a.Title+". "+a.Abstract)
			if err != nil {
				return nil, fmt.Errorf("embed query: %w", err)
			}
			d.queries = append(d.queries, q)
			d.qunit = append(d.qunit, Normalize(append([]float32(nil), q...)))
		}
		d.ids, d.titles, d.texts = make([]string, c.N), make([]string, c.N), make([]string, c.N)
		for i, a := range abs[:c.N] {
			d.ids[i], d.titles[i], d.texts[i] = a.ID, a.Title, a.Abstract
		}
	default:
		return nil, fmt.Errorf("unknown source %q", c.Source)
	}
	d.pos = make(map[string]int, len(d.ids))
	for i, id := range d.ids {
		d.pos[id] = i
	}
	return d, nil
}

// RunKNN loads a case's vectors into a fresh schema through the store's bulk path
// (EnsureSpaceForLoad, LoadEmbeddings, BuildSpaceIndex), then measures the store's Related and
// Search, and sweeps hnsw.ef_search over the store's statement.
func RunKNN(ctx context.Context, opts KNNOptions, c KNNCase) (KNNResult, error) {
	res := KNNResult{Case: c, StoreEfSearch: store.DefaultEFSearch(c.index())}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	progress := func() {
		if opts.OnProgress != nil {
			opts.OnProgress(res)
		}
	}
	if c.ChunkSize <= 0 {
		c.ChunkSize = 5000
	}
	t0 := time.Now()
	d, err := makeKNNData(c, opts.Corpus)
	if err != nil {
		return res, fmt.Errorf("case %s: %w", c.Name, err)
	}
	res.GenerateSeconds = round3(time.Since(t0).Seconds())
	opts.Logger.Info("knn: data ready", "case", c.Name, "seconds", res.GenerateSeconds)

	st, drop, err := opts.DB.Schema(ctx, "knn", store.Config{Logger: opts.Logger, VectorIndex: c.index()})
	if err != nil {
		return res, err
	}
	defer drop()
	model := "bench-" + c.Source
	if d.model != "" {
		model = d.model
	}
	sp, _, err := st.EnsureSpaceForLoad(ctx, paper.Space{Model: model, Dimensions: c.Dims, Template: "bench"})
	if err != nil {
		return res, err
	}
	if err := loadKNN(ctx, st, sp, d, c, &res.Load, opts.Logger); err != nil {
		return res, fmt.Errorf("case %s: load: %w", c.Name, err)
	}
	progress()

	// Exact answers: Related questions are stored papers (leaving themselves out), Search
	// questions are held-out vectors.
	r := rand.New(rand.NewPCG(11, uint64(c.N)))
	relIdx := make([]int, c.RecallQueries)
	for i := range relIdx {
		relIdx[i] = r.IntN(c.N)
	}
	var qs []Query
	for _, i := range relIdx {
		qs = append(qs, Query{Vector: d.unit[i], Exclude: i})
	}
	for _, q := range d.qunit {
		qs = append(qs, Query{Vector: q, Exclude: -1})
	}
	t0 = time.Now()
	exactIdx := ExactKNN(d.unit, qs, 10)
	res.ExactSeconds = round3(time.Since(t0).Seconds())
	exact := make([][]string, len(exactIdx))
	for i, t := range exactIdx {
		for _, j := range t.IDs {
			exact[i] = append(exact[i], d.ids[j])
		}
	}
	opts.Logger.Info("knn: exact answers ready", "case", c.Name, "seconds", res.ExactSeconds)
	// recall adds question i's recall of the papers got to r (tie-aware) and strict.
	recall := func(i int, got []string, r, strict *float64) {
		ix := make([]int, len(got))
		for j, id := range got {
			p, ok := d.pos[id]
			if !ok {
				p = -1
			}
			ix[j] = p
		}
		*r += TieRecall(ix, exactIdx[i], d.unit, qs[i])
		*strict += Recall(got, exact[i])
	}

	// The store's API at its built-in settings.
	var relRecall, relStrict, searchRecall, searchStrict float64
	var storeSearchIDs [][]string
	for i, pi := range relIdx {
		hits, err := st.Related(ctx, sp.ID, d.ids[pi], 10)
		if err != nil {
			return res, fmt.Errorf("case %s: related: %w", c.Name, err)
		}
		recall(i, hitIDs(hits), &relRecall, &relStrict)
	}
	for i, q := range d.queries {
		hits, err := st.Search(ctx, sp.ID, q, 10)
		if err != nil {
			return res, fmt.Errorf("case %s: search: %w", c.Name, err)
		}
		storeSearchIDs = append(storeSearchIDs, hitIDs(hits))
		recall(len(relIdx)+i, hitIDs(hits), &searchRecall, &searchStrict)
	}
	res.Related.Recall = round3(relRecall / float64(len(relIdx)))
	res.Related.StrictRecall = round3(relStrict / float64(len(relIdx)))
	res.Search.Recall = round3(searchRecall / float64(len(d.queries)))
	res.Search.StrictRecall = round3(searchStrict / float64(len(d.queries)))

	lat := func(n int, q func(i int) error) (Dist, error) {
		for i := range min(n/10+1, 50) { // warm-up
			if err := q(i); err != nil {
				return Dist{}, err
			}
		}
		ds := make([]time.Duration, 0, n)
		for i := range n {
			t := time.Now()
			if err := q(i); err != nil {
				return Dist{}, err
			}
			ds = append(ds, time.Since(t))
		}
		return Distribution(ds), nil
	}
	related := func(i int) error {
		_, err := st.Related(ctx, sp.ID, d.ids[int(uint64(i)*2654435761%uint64(c.N))], 10)
		return err
	}
	search := func(i int) error {
		_, err := st.Search(ctx, sp.ID, d.queries[i%len(d.queries)], 10)
		return err
	}
	if res.Related.Latency, err = lat(c.LatencyQueries, related); err != nil {
		return res, fmt.Errorf("case %s: related: %w", c.Name, err)
	}
	if res.Search.Latency, err = lat(c.LatencyQueries, search); err != nil {
		return res, fmt.Errorf("case %s: search: %w", c.Name, err)
	}
	for _, q := range []struct {
		name string
		s    *QueryStats
		f    func(int) error
	}{{"related", &res.Related, related}, {"search", &res.Search, search}} {
		rate, failed := qps(ctx, 4, c.QPSDuration, q.f)
		q.s.QPS4, q.s.QPS4Failed = round3(rate), failed
		if failed > 0 {
			opts.Logger.Warn("knn: queries failed while measuring QPS", "case", c.Name, "query", q.name, "failed", failed)
		}
	}
	progress()
	opts.Logger.Info("knn: store queries measured", "case", c.Name)

	// The sweep, through the store's statement with ef_search set per run.
	vec := storeSweepIndex(sp.ID, c.Dims, c.index())
	agree := 0.0
	for i, q := range d.queries {
		ids, err := mirrorKNN(ctx, st, vec, res.StoreEfSearch, q, "")
		if err != nil {
			return res, fmt.Errorf("case %s: mirror: %w", c.Name, err)
		}
		agree += Recall(ids, storeSearchIDs[i])
	}
	res.MirrorAgreement = round3(agree / float64(len(d.queries)))
	sweep := func(v sweepIndex) (int, error) {
		for _, ef := range c.EfSearch {
			p := SweepPoint{Index: v.label, EfSearch: ef}
			var relRec, relStrict, searchRec, searchStrict float64
			for pass := range 2 {
				var ds, relDs, searchDs []time.Duration
				// The first pass asks each question once; the second asks them in turn
				// until LatencyQueries are timed, for a p99 of as many samples as the
				// store's own latency figures.
				n := len(qs)
				if pass == 1 {
					n = max(len(qs), c.LatencyQueries)
				}
				for k := range n {
					i, q := k%len(qs), qs[k%len(qs)]
					exclude := ""
					vecQ := d.queries[max(i-len(relIdx), 0)%len(d.queries)]
					t := time.Now()
					if q.Exclude >= 0 {
						// As Store.Related: the paper's stored vector first, then the statement.
						exclude = d.ids[q.Exclude]
						var err error
						if vecQ, err = st.RelatedVector(ctx, sp.ID, exclude, 10); err != nil {
							return 0, err
						}
					}
					ids, err := mirrorKNN(ctx, st, v, ef, vecQ, exclude)
					if err != nil {
						return 0, err
					}
					el := time.Since(t)
					ds = append(ds, el)
					isRelated := i < len(relIdx)
					if isRelated {
						relDs = append(relDs, el)
					} else {
						searchDs = append(searchDs, el)
					}
					if pass == 0 {
						if isRelated {
							recall(i, ids, &relRec, &relStrict)
						} else {
							recall(i, ids, &searchRec, &searchStrict)
						}
					}
				}
				if pass == 0 {
					p.FirstPass = Distribution(ds)
				} else {
					p.Latency = Distribution(ds)
					p.RelatedLatency, p.SearchLatency = Distribution(relDs), Distribution(searchDs)
				}
			}
			p.Recall = round3((relRec + searchRec) / float64(len(qs)))
			p.StrictRecall = round3((relStrict + searchStrict) / float64(len(qs)))
			p.RelatedRecall = round3(relRec / float64(len(relIdx)))
			p.RelatedStrictRecall = round3(relStrict / float64(len(relIdx)))
			p.SearchRecall = round3(searchRec / float64(len(d.queries)))
			p.SearchStrictRecall = round3(searchStrict / float64(len(d.queries)))
			res.Sweep = append(res.Sweep, p)
			opts.Logger.Info("knn: sweep", "case", c.Name, "index", v.label, "ef_search", ef,
				"related_recall", p.RelatedRecall, "related_p99_ms", p.RelatedLatency.P99, "search_recall", p.SearchRecall, "search_p99_ms", p.SearchLatency.P99)
		}
		progress()
		// The goal's question is related papers: the ef_search it needs is judged on the
		// related questions alone.
		return relatedEfFor95(res.Sweep, v.label), nil
	}
	if res.EfFor95, err = sweep(vec); err != nil {
		return res, fmt.Errorf("case %s: sweep: %w", c.Name, err)
	}

	return res, nil
}

func hitIDs(hits []paper.Hit) []string {
	ids := make([]string, len(hits))
	for i, h := range hits {
		ids[i] = h.ID
	}
	return ids
}

// qps runs q from clients goroutines for d and returns the answered queries per second, and
// how many failed (not counted in the rate). The clock starts before the first goroutine does.
func qps(ctx context.Context, clients int, d time.Duration, q func(i int) error) (float64, int64) {
	var n, failed atomic.Int64
	t := time.Now()
	stop := t.Add(d)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := c * 1000003; time.Now().Before(stop) && ctx.Err() == nil; i++ {
				if q(i) == nil {
					n.Add(1)
				} else {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return Rate(int(n.Load()), time.Since(t)), failed.Load()
}

func loadKNN(ctx context.Context, st *store.Store, sp paper.Space, d *knnData, c KNNCase, lt *LoadTimes, log *slog.Logger) error {
	t0 := time.Now()
	_, err := st.Pool().CopyFrom(ctx, pgx.Identifier{"papers"}, []string{"id", "title", "abstract", "content_hash"},
		pgx.CopyFromSlice(len(d.ids), func(i int) ([]any, error) {
			a := paper.Abstract{Title: d.titles[i], Abstract: d.texts[i]}
			return []any{d.ids[i], d.titles[i], d.texts[i], a.ContentHash()}, nil
		}))
	if err != nil {
		return fmt.Errorf("copy papers: %w", err)
	}
	lt.PapersSeconds = round3(time.Since(t0).Seconds())
	log.Info("knn: papers copied", "case", c.Name, "seconds", lt.PapersSeconds)

	t0 = time.Now()
	for i := 0; i < len(d.ids); i += c.ChunkSize {
		j := min(i+c.ChunkSize, len(d.ids))
		embs := make([]paper.Embedding, 0, j-i)
		for k := i; k < j; k++ {
			embs = append(embs, paper.Embedding{PaperID: d.ids[k], Vector: d.vecs[k]})
		}
		r, err := st.LoadEmbeddings(ctx, sp.ID, embs)
		if err != nil {
			return err
		}
		if r.Loaded != len(embs) {
			return fmt.Errorf("loaded %d of %d vectors (%d unknown, %d stale)", r.Loaded, len(embs), len(r.Unknown), r.Stale)
		}
	}
	el := time.Since(t0)
	lt.EmbeddingsSeconds, lt.EmbeddingsPerSecond = round3(el.Seconds()), round3(Rate(len(d.ids), el))
	log.Info("knn: embeddings loaded", "case", c.Name, "seconds", lt.EmbeddingsSeconds)

	lt.IndexMaintenanceMem, lt.IndexParallelWorkers = benchIndexMem, 2
	t0 = time.Now()
	built, err := st.BuildSpaceIndex(ctx, sp.ID, store.IndexSettings{MaintenanceWorkMem: lt.IndexMaintenanceMem, ParallelWorkers: lt.IndexParallelWorkers})
	if err != nil {
		return err
	}
	if !built {
		return fmt.Errorf("space %d already had its index", sp.ID)
	}
	lt.IndexSeconds = round3(time.Since(t0).Seconds())
	lt.LoadAndIndexSeconds = round3(lt.EmbeddingsSeconds + lt.IndexSeconds)
	log.Info("knn: index built", "case", c.Name, "seconds", lt.IndexSeconds)
	// VACUUM as well as ANALYZE: a million fresh rows would otherwise set autovacuum off in
	// the middle of the latency measurements, on the same 2 cores.
	t0 = time.Now()
	if err := st.VacuumEmbeddings(ctx); err != nil { // what import-embeddings and reprocess do after a fill
		return err
	}
	if _, err := st.Pool().Exec(ctx, "VACUUM (ANALYZE) papers"); err != nil {
		return fmt.Errorf("vacuum papers: %w", err)
	}
	lt.VacuumSeconds = round3(time.Since(t0).Seconds())
	if err := st.Pool().QueryRow(ctx, "SELECT pg_relation_size(to_regclass($1)), pg_total_relation_size('embeddings')",
		storeIndexPrefix+strconv.FormatInt(sp.ID, 10)).Scan(&lt.IndexBytes, &lt.TableBytes); err != nil {
		return fmt.Errorf("sizes: %w", err)
	}
	return nil
}

// benchIndexMem is the maintenance_work_mem the benchmark builds indexes with. It is not
// import-embeddings's (importIndexMem): the load goal's row says so.
const benchIndexMem = "8GB"

// storeIndexPrefix names a space's index: the prefix of store/spaces.go's indexNamePrefix.
const storeIndexPrefix = "embeddings_hnsw_s"

// sweepIndex is a nearest-neighbour statement the sweep runs.
type sweepIndex struct {
	label string // vector, halfvec or binary
	q     store.KNNQuery
}

// storeSweepIndex is the store's own statement for a space indexed as kind.
func storeSweepIndex(spaceID int64, dims int, kind store.IndexKind) sweepIndex {
	return sweepIndex{label: storeSweepLabel(kind), q: store.NewKNNQuery(spaceID, dims, kind)}
}

// storeSweepLabel is how the sweep labels the store's index kind.
func storeSweepLabel(kind store.IndexKind) string {
	switch kind {
	case store.IndexHNSWBinary:
		return "binary"
	case store.IndexHNSWHalfvec:
		return "halfvec"
	}
	return "vector"
}

// mirrorKNN runs the statement v with ef_search ef, as the store runs it (Store.RunKNN).
func mirrorKNN(ctx context.Context, st *store.Store, v sweepIndex, ef int, q []float32, exclude string) ([]string, error) {
	hits, err := st.RunKNN(ctx, v.q, q, exclude, 10, ef)
	return hitIDs(hits), err
}

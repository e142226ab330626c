package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/ingest"
	"github.com/paperpipe/paperpipe/internal/llm"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/store"
	"github.com/paperpipe/paperpipe/summarize"
)

// models is the configured summarizer and embedder.
type models struct {
	sum pipeline.Summarizer
	emb embedder
	// lim is the API clients' shared rate limiter; nil with the offline models.
	lim *llm.Limiter
}

// embedder is what the CLI needs of an embedder: the pipeline's interface plus query embedding.
type embedder interface {
	pipeline.Embedder
	EmbedQuery(ctx context.Context, text string) ([]float32, paper.Usage, error)
}

// buildModels returns the summarizer and embedder the configuration names: the built-in
// offline models for "offline" and the offline models' own names, otherwise
// OpenAI-compatible clients sharing one rate limiter. st, when not nil, is where fitted offline
// embedders are read from: "offline" then means the active space's offline model when it has
// one (the hashed model of either version, or a fitted one: `paperpipe fit`), and otherwise
// the second version of the hashed model (see resolveOffline); without st it means the second
// version.
func buildModels(ctx context.Context, c *config, log *slog.Logger, st *store.Store) (*models, error) {
	if c.EmbedDims < 0 || c.EmbedDims > store.MaxDimensions {
		return nil, usageErr("--embed-dimensions is %d, want %s", c.EmbedDims, embedDimsRange)
	}
	c.resolveModels()
	var lim *llm.Limiter
	if !c.chatOffline() || !c.embedOffline() {
		lim = llm.NewLimiter(llm.LimiterConfig{RequestsPerMinute: c.RPM, TokensPerMinute: c.TPM, Logger: log})
	}
	hc := c.httpClient
	if hc == nil {
		hc = &http.Client{Transport: llm.PooledTransport(c.Concurrency)}
	}
	m := &models{lim: lim}
	if c.chatOffline() {
		m.sum = summarize.NewOffline(c.MaxWords)
	} else {
		s, err := summarize.New(summarize.Config{
			BaseURL: c.BaseURL, APIKey: c.APIKey, Model: c.ChatModel, MaxWords: c.MaxWords,
			Limiter: lim, Logger: log, HTTPClient: hc, Unusable: c.metrics.UnusableAnswer,
		})
		if err != nil {
			return nil, fmt.Errorf("summarizer: %w", err)
		}
		m.sum = s
	}
	if c.embedOffline() {
		e, err := offlineEmbedder(ctx, c.EmbedModel, st)
		if missing := (*missingModelError)(nil); c.modelMayBeMissing && errors.As(err, &missing) {
			if info, serr := st.FindSpace(ctx, missing.model); serr == nil {
				e, err = missingFitted{space: info.Space, err: err}, nil
			}
		}
		if err != nil {
			return nil, fmt.Errorf("embedder: %w", err)
		}
		m.emb = e
		if n := e.Space().Dimensions; c.embedDimsFlag && c.EmbedDims != 0 && c.EmbedDims != n {
			return nil, usageErr("--embed-dimensions %d: the offline model %s makes vectors of %d dimensions "+
				"(leave the flag out; `paperpipe fit --dimensions N` fits an offline model of another length)", c.EmbedDims, e.Space().Model, n)
		}
		if c.VectorIndex == string(store.IndexHNSWBinary) {
			// bench/results: recall@10 at ef_search 100 of 0.82 (hashed) and 0.32 (fitted)
			// against 0.91 and 0.86 on their vectors themselves.
			log.Warn("the offline models' vectors keep few of their neighbours in 1-bit codes; spaces created for them get a poor hnsw-binary index (check with `paperpipe spaces check`)",
				"PAPERPIPE_VECTOR_INDEX", c.VectorIndex)
		}
	} else {
		// PAPERPIPE_EMBED_BATCH_INPUTS and _TOKENS are in range: loadConfig refuses them
		// below their minimums, and checkWorkerFlags the flags that set them; it refuses a
		// PAPERPIPE_EMBED_ENCODING other than base64 or float too.
		e, err := embed.New(embed.Config{
			BaseURL: c.BaseURL, APIKey: c.APIKey, Model: c.EmbedModel, Dimensions: c.EmbedDims,
			SendDimensions: c.EmbedSendDims,
			MaxBatchInputs: c.EmbedBatchInputs, MaxBatchTokens: c.EmbedBatchTokens,
			EncodingFormat: c.EmbedEncoding,
			// One input must fit in a request: a smaller token budget truncates inputs to it.
			ContextTokens: min(embedInputTokens, c.EmbedBatchTokens),
			Limiter:       lim, Logger: log, HTTPClient: hc, Unusable: c.metrics.UnusableAnswer,
		})
		if err != nil {
			return nil, fmt.Errorf("embedder: %w", err)
		}
		m.emb = e
	}
	return m, nil
}

// offlineEmbedder returns the offline embedder model names (see buildModels and
// resolveOffline).
func offlineEmbedder(ctx context.Context, model string, st *store.Store) (embedder, error) {
	if model == offline {
		m, err := resolveOffline(ctx, st)
		if err != nil {
			return nil, err
		}
		model = m
	}
	if e, ok := embed.NewHashed(model); ok {
		return e, nil
	}
	if st == nil {
		return nil, fmt.Errorf("%s is fitted on an archive and stored in its database; this command reads no database (use the hashed model, %s, or \"offline\")",
			model, embed.OfflineModelV2)
	}
	return loadFitted(ctx, st, model)
}

// resolveOffline returns the model "offline" means to an archive st (nil: to a command that
// reads none): the active space's model when it is an offline one (the first hashed model, its
// second version or a fitted model), so that an archive made before the second version keeps
// its space and no worker starts filling another; when the active space is an API model's, the
// first hashed model if the archive has a space of it (the one "offline" filled before), and
// otherwise — a new archive, or none — the second version, OfflineModelV2.
func resolveOffline(ctx context.Context, st *store.Store) (string, error) {
	if st == nil {
		return embed.OfflineModelV2, nil
	}
	active, err := st.ActiveSpace(ctx)
	switch {
	case errors.Is(err, paper.ErrNotFound):
		return embed.OfflineModelV2, nil
	case err != nil:
		return "", err
	case embed.IsOfflineModel(active.Model):
		return active.Model, nil
	}
	switch _, err := st.FindSpace(ctx, embed.OfflineModel); {
	case err == nil, errors.Is(err, paper.ErrAmbiguous):
		return embed.OfflineModel, nil
	case errors.Is(err, paper.ErrNotFound):
		return embed.OfflineModelV2, nil
	default:
		return "", err
	}
}

// activeOffline is the embedder of a long-running server on the default offline embedder
// ("offline"): it follows the active space to whichever offline model it holds, loading a
// fitted model once, when its space becomes active (`paperpipe fit`), so that searches keep
// working across a fit without a restart.
type activeOffline struct {
	active func(ctx context.Context) (paper.Space, error)            // the store's ActiveSpace
	load   func(ctx context.Context, model string) (embedder, error) // an offline model by name
	log    *slog.Logger

	mu       sync.Mutex
	cur      embedder
	checked  time.Time     // when the active space was last read
	checking chan struct{} // while the active space is read: closed when done
}

// newActiveOffline returns the activeOffline of st, starting with cur.
func newActiveOffline(st *store.Store, log *slog.Logger, cur embedder) *activeOffline {
	return &activeOffline{
		active: st.ActiveSpace,
		load:   func(ctx context.Context, model string) (embedder, error) { return offlineEmbedder(ctx, model, st) },
		log:    log,
		cur:    cur,
	}
}

const (
	// activeRecheck is how often activeOffline reads the active space: a search calls Space
	// and EmbedQuery after the web layer has read it already, so the store is asked once a
	// second at most, not three times a search.
	activeRecheck = time.Second
	// activeCheckTimeout bounds one read of the active space and the load of its model.
	activeCheckTimeout = 30 * time.Second
	// activeSpaceWait bounds how long Space, which has no context, waits for a read.
	activeSpaceWait = 2 * time.Second
)

// resolve returns the embedder of the active space when that is an offline model's, and the
// current one otherwise (or when the active space cannot be read or its model loaded). One
// read is made at a time, outside the lock, and the callers that need it wait for it until
// their ctx ends, then go on with the current embedder: a slow database holds no caller past
// its own deadline, nor any caller at all between two reads.
func (a *activeOffline) resolve(ctx context.Context) embedder {
	a.mu.Lock()
	if time.Since(a.checked) < activeRecheck {
		defer a.mu.Unlock()
		return a.cur
	}
	if a.checking == nil {
		a.checking = make(chan struct{})
		// Not bound to the caller's ctx: a read that outlives its first caller still serves
		// the next ones.
		go a.check(a.cur, a.checking)
	}
	done, cur := a.checking, a.cur
	a.mu.Unlock()
	select {
	case <-done:
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.cur
	case <-ctx.Done():
		return cur
	}
}

// check reads the active space, loads its model when it is another offline model than cur's,
// makes the result current and closes done.
func (a *activeOffline) check(cur embedder, done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), activeCheckTimeout)
	defer cancel()
	next := cur
	active, err := a.active(ctx)
	_, missing := cur.(missingFitted) // its model made again since (paperpipe fit), under the same name
	if err == nil && (active.Model != cur.Space().Model || missing) && embed.IsOfflineModel(active.Model) {
		if e, err := a.load(ctx, active.Model); err != nil {
			a.log.Warn("cannot load the active space's offline model; queries keep the previous one", "model", active.Model, "err", err)
		} else {
			a.log.Info("queries follow the active space to another offline model", "from", cur.Space().Model, "to", active.Model)
			next = e
		}
	}
	a.mu.Lock()
	a.cur, a.checked, a.checking = next, time.Now(), nil
	a.mu.Unlock()
	close(done)
}

// Space returns the space of the active offline model. The interface gives it no context: it
// waits for a read of the active space at most activeSpaceWait.
func (a *activeOffline) Space() paper.Space {
	ctx, cancel := context.WithTimeout(context.Background(), activeSpaceWait)
	defer cancel()
	return a.resolve(ctx).Space()
}

// Embed embeds papers with the active offline model.
func (a *activeOffline) Embed(ctx context.Context, papers []paper.Abstract) ([]paper.Embedding, paper.Usage, error) {
	return a.resolve(ctx).Embed(ctx, papers)
}

// EmbedQuery embeds text with the active offline model.
func (a *activeOffline) EmbedQuery(ctx context.Context, text string) ([]float32, paper.Usage, error) {
	return a.resolve(ctx).EmbedQuery(ctx, text)
}

// loadFitted reads the fitted offline embedder model from the database.
func loadFitted(ctx context.Context, st *store.Store, model string) (*embed.Fitted, error) {
	sm, err := st.OfflineModel(ctx, model)
	if errors.Is(err, paper.ErrNotFound) {
		return nil, &missingModelError{model: model, err: err}
	}
	if err != nil {
		return nil, err
	}
	e, err := embed.Load(sm.Data)
	if err != nil {
		return nil, err
	}
	if e.Name() != model {
		return nil, fmt.Errorf("stored offline model %s loads as %s: the stored data is damaged", model, e.Name())
	}
	return e, nil
}

// missingModelError is loadFitted's error for a fitted offline model the database lacks (an
// archive imported from an export of a release before exports carried it). It wraps
// paper.ErrNotFound.
type missingModelError struct {
	model string
	err   error
}

func (e *missingModelError) Error() string {
	return fmt.Sprintf("no fitted offline model %s in the database (`paperpipe fit` makes one): %v", e.model, e.err)
}

func (e *missingModelError) Unwrap() error { return e.err }

// missingFitted is the embedder of a space whose fitted offline model the database lacks, for
// a command that only counts (status, with config.modelMayBeMissing): it names the space, and
// embeds nothing.
type missingFitted struct {
	space paper.Space
	err   error // a *missingModelError
}

func (m missingFitted) Space() paper.Space { return m.space }

func (m missingFitted) Embed(context.Context, []paper.Abstract) ([]paper.Embedding, paper.Usage, error) {
	return nil, paper.Usage{}, m.err
}

func (m missingFitted) EmbedQuery(context.Context, string) ([]float32, paper.Usage, error) {
	return nil, paper.Usage{}, m.err
}

// missingModelNote says that the fitted offline model of space sp is missing and how to make it
// again.
func missingModelNote(sp paper.Space) string {
	return fmt.Sprintf("the fitted offline model %s is not in the database (an import of an export made before exports carried it?): "+
		"semantic search and the workers stop on it; `paperpipe fit` makes it again from the same papers, embedding none of them anew", sp.Model)
}

// embedInputTokens is the input limit of OpenAI's embedding models (8,191 tokens).
const embedInputTokens = 8191

// checkFiles makes sure that each file of paths (not "-", nor a URL) can be opened, before a
// command that reads it opens the database: opened first, the database got its migrations (a
// typo in the path gave one paperpipe had never used its tables), or, out of reach, said so
// instead of "no such file". A named pipe or a device is only looked up: opening one waits
// for its writer, or consumes it. A directory is refused as it is not a file.
func checkFiles(paths ...string) error {
	for _, path := range paths {
		if path == "-" || ingest.IsURL(path) {
			continue
		}
		fi, err := os.Stat(path)
		switch {
		case err == nil && fi.IsDir():
			return fmt.Errorf("%s is a directory: name a file; nothing was done", path)
		case err == nil && !fi.Mode().IsRegular():
			continue
		}
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("%w; nothing was done", err)
		}
		f.Close()
	}
	return nil
}

// openStore connects to DATABASE_URL and applies migrations.
func openStore(ctx context.Context, c *config, log *slog.Logger) (*store.Store, error) {
	kind, err := store.ParseIndexKind(c.VectorIndex)
	if err != nil {
		return nil, fmt.Errorf("PAPERPIPE_VECTOR_INDEX: %w", err)
	}
	st, err := store.Open(ctx, store.Config{URL: c.DatabaseURL, EFSearch: c.EFSearch, KeywordRankLimit: c.KeywordRankLimit, VectorIndex: kind, IndexMemory: c.IndexBuildMemory, Logger: log})
	if err != nil {
		return nil, err
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) && pe.Code == "25006" {
			return nil, fmt.Errorf("%w (DATABASE_URL must name the primary; serve can send its queries to a replica named by PAPERPIPE_READ_DATABASE_URL)", err)
		}
		return nil, err
	}
	return st, nil
}

// readSchemaWait bounds how long serve waits for its read replica to replay the migrations
// the primary has (openReadStore): a replica a few seconds behind during an upgrade is
// waited for, one that lacks them for longer is refused.
var readSchemaWait = 30 * time.Second

// openReadStore connects to PAPERPIPE_READ_DATABASE_URL, a read replica (a hot standby) of
// DATABASE_URL's database, where serve sends its queries. Migrations are never applied there:
// openStore applies them on the primary, and the replica must have them (replayed) before
// serve starts on it, which it waits readSchemaWait for.
func openReadStore(ctx context.Context, c *config, log *slog.Logger) (*store.Store, error) {
	deadline := time.Now().Add(readSchemaWait)
	for {
		st, err := store.Open(ctx, store.Config{URL: c.ReadDBURL, EFSearch: c.EFSearch, KeywordRankLimit: c.KeywordRankLimit, Logger: log})
		if err == nil {
			if err = st.CheckSchema(ctx); err == nil {
				return st, nil
			}
			st.Close()
		}
		if !errors.Is(err, store.ErrSchemaBehind) || time.Now().After(deadline) {
			return nil, fmt.Errorf("PAPERPIPE_READ_DATABASE_URL: %w", err)
		}
		log.Info("waiting for the read replica to replay the primary's migrations", "err", err)
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// openModelsAndStore opens what most commands need: the logger, the migrated store and the
// configured models. The caller closes the store.
func openModelsAndStore(ctx context.Context, c *config) (*slog.Logger, *models, *store.Store, error) {
	log := newLogger(c)
	st, err := openStore(ctx, c, log)
	if err != nil {
		return nil, nil, nil, err
	}
	m, err := buildModels(ctx, c, log, st)
	if err != nil {
		st.Close()
		return nil, nil, nil, err
	}
	return log, m, st, nil
}

// lookupSpace returns the stored embedding space sp names, without creating it: a space that
// does not exist yet is returned with ID -1, which no stored vector has, so every paper counts
// as lacking its embedding there.
func lookupSpace(ctx context.Context, st *store.Store, sp paper.Space) (paper.Space, error) {
	info, err := st.FindSpace(ctx, sp.Name())
	switch {
	case err == nil:
		return info.Space, nil
	case errors.Is(err, paper.ErrNotFound):
		sp.ID = -1
		return sp, nil
	default:
		return sp, err
	}
}

// activeSpace returns the space queries use.
func activeSpace(ctx context.Context, st *store.Store) (paper.Space, error) {
	sp, err := st.ActiveSpace(ctx)
	if err != nil {
		return sp, fmt.Errorf("no active embedding space (has a worker processed any paper yet?): %w", err)
	}
	return sp, nil
}

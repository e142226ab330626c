package store_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

func activeCount(t *testing.T, s *store.Store) int64 {
	t.Helper()
	var n int64
	if err := s.Pool().QueryRow(t.Context(), "SELECT count(*) FROM embedding_spaces WHERE active").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func indexExists(t *testing.T, s *store.Store, name string) bool {
	t.Helper()
	var ok bool
	if err := s.Pool().QueryRow(t.Context(), "SELECT to_regclass($1) IS NOT NULL", name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestEnsureSpaceGetsOrCreatesAndActivatesTheFirst(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	if _, err := s.ActiveSpace(ctx); !errors.Is(err, paper.ErrNotFound) {
		t.Fatalf("ActiveSpace on an empty store: %v, want ErrNotFound", err)
	}
	first := space(t, s, "model-a", 8)
	if first.ID == 0 || !first.Active {
		t.Fatalf("first space = %+v, want an ID and active", first)
	}
	again := space(t, s, "model-a", 8)
	if again != first {
		t.Errorf("EnsureSpace twice: %+v then %+v", first, again)
	}
	second := space(t, s, "model-b", 8)
	if second.ID == first.ID || second.Active {
		t.Errorf("second space = %+v, want a new, inactive one", second)
	}
	active, err := s.ActiveSpace(ctx)
	if err != nil || active.ID != first.ID {
		t.Errorf("ActiveSpace = %+v, %v; want %d", active, err, first.ID)
	}
	for _, sp := range []paper.Space{first, second} {
		if name := "embeddings_hnsw_s" + strconv.FormatInt(sp.ID, 10); !indexExists(t, s, name) {
			t.Errorf("index %s missing", name)
		}
	}
	for _, bad := range []paper.Space{
		{Model: "", Dimensions: 8, Template: "t"},
		{Model: "m", Dimensions: 0, Template: "t"},
		{Model: "m", Dimensions: 16001, Template: "t"},
		{Model: "m", Dimensions: 8, Template: ""},
	} {
		if _, err := s.EnsureSpace(ctx, bad); !errors.Is(err, paper.ErrInvalid) {
			t.Errorf("EnsureSpace(%+v) error = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestActivateSwitchesExactlyOneActive(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	blue := space(t, s, "blue", 4)
	green := space(t, s, "green", 4)
	if err := s.Activate(ctx, green.ID); err != nil {
		t.Fatalf("Activate: %v", err)
	}
	active, err := s.ActiveSpace(ctx)
	if err != nil || active.ID != green.ID || !active.Active {
		t.Errorf("ActiveSpace = %+v, %v; want green", active, err)
	}
	if n := activeCount(t, s); n != 1 {
		t.Errorf("%d active spaces, want 1", n)
	}
	// Activating the active space again changes nothing.
	if err := s.Activate(ctx, green.ID); err != nil {
		t.Fatalf("Activate again: %v", err)
	}
	if err := s.Activate(ctx, blue.ID); err != nil {
		t.Fatalf("Activate back: %v", err)
	}
	if active, _ := s.ActiveSpace(ctx); active.ID != blue.ID || activeCount(t, s) != 1 {
		t.Errorf("after switching back: active %+v, %d active", active, activeCount(t, s))
	}
	if err := s.Activate(ctx, green.ID+100); !errors.Is(err, paper.ErrNotFound) {
		t.Errorf("Activate(missing) = %v, want ErrNotFound", err)
	}
	if active, _ := s.ActiveSpace(ctx); active.ID != blue.ID {
		t.Errorf("a failed Activate changed the active space to %+v", active)
	}
}

func TestDropSpaceRefusesActiveAndRemovesInactive(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	blue := space(t, s, "blue", 3)
	green := space(t, s, "green", 3)
	ps := abstracts(2)
	upsert(t, s, ps, store.Work{})
	for _, sp := range []paper.Space{blue, green} {
		if _, err := s.SaveEmbeddings(ctx, sp.ID, []paper.Embedding{embeddingOf(ps[0], 1, 2, 3), embeddingOf(ps[1], 3, 2, 1)}); err != nil {
			t.Fatal(err)
		}
	}

	err := s.DropSpace(ctx, blue.ID, store.DropOptions{})
	if !errors.Is(err, paper.ErrInvalid) || !strings.Contains(err.Error(), "active") {
		t.Fatalf("DropSpace(active) = %v, want a refusal naming the active space", err)
	}
	if n := countRows(t, s, "embeddings"); n != 4 {
		t.Fatalf("refused drop deleted vectors: %d left", n)
	}
	if err := s.DropSpace(ctx, green.ID, store.DropOptions{}); err != nil {
		t.Fatalf("DropSpace(inactive): %v", err)
	}
	if indexExists(t, s, "embeddings_hnsw_s"+strconv.FormatInt(green.ID, 10)) {
		t.Error("index of the dropped space still exists")
	}
	infos, err := s.Spaces(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].ID != blue.ID {
		t.Fatalf("Spaces after drop = %+v", infos)
	}
	if n := countRows(t, s, "embeddings"); n != 2 {
		t.Errorf("%d vectors left, want blue's 2", n)
	}
	if err := s.DropSpace(ctx, green.ID, store.DropOptions{}); !errors.Is(err, paper.ErrNotFound) {
		t.Errorf("DropSpace twice = %v, want ErrNotFound", err)
	}
	if _, err := s.SaveEmbeddings(ctx, green.ID, []paper.Embedding{embeddingOf(ps[0], 1, 2, 3)}); err == nil {
		t.Error("SaveEmbeddings into a dropped space succeeded")
	}
}

func TestSpacesReportsCoverageAndIndex(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	small := space(t, s, "small", 3)
	half := space(t, s, "large", 2048)    // halfvec index
	huge := space(t, s, "enormous", 5000) // beyond any HNSW index
	ps := abstracts(3)
	upsert(t, s, ps, store.Work{})
	if _, err := s.SaveEmbeddings(ctx, small.ID, []paper.Embedding{embeddingOf(ps[0], 1, 0, 0), embeddingOf(ps[1], 0, 1, 0)}); err != nil {
		t.Fatal(err)
	}
	// A paper whose text changed after it was embedded does not count as covered.
	changed := ps[1]
	changed.Abstract = "Changed after embedding."
	upsert(t, s, []paper.Abstract{changed}, store.Work{})

	infos, err := s.Spaces(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 3 {
		t.Fatalf("Spaces = %+v", infos)
	}
	got := infos[0]
	if got.ID != small.ID || !got.Active || got.Embedded != 1 || got.Papers != 3 ||
		got.IndexName != "embeddings_hnsw_s"+strconv.FormatInt(small.ID, 10) || got.CreatedAt.IsZero() {
		t.Errorf("Spaces[0] = %+v", got)
	}
	if infos[1].ID != half.ID || infos[1].IndexName == "" || infos[1].Active {
		t.Errorf("halfvec space = %+v, want an index", infos[1])
	}
	if infos[2].ID != huge.ID || infos[2].IndexName != "" {
		t.Errorf("5000-dimension space = %+v, want no index", infos[2])
	}
	var def string
	err = s.Pool().QueryRow(ctx, "SELECT pg_get_indexdef(to_regclass($1))", infos[1].IndexName).Scan(&def)
	if err != nil || !strings.Contains(def, "halfvec(2048)") || !strings.Contains(def, "halfvec_cosine_ops") {
		t.Errorf("halfvec index = %q, %v", def, err)
	}
}

func TestEnsureSpaceConcurrentCallersAgree(t *testing.T) {
	t.Parallel()
	s := setup(t)
	models := []string{"m0", "m1", "m2", "m0", "m1", "m2"}
	got := make([]paper.Space, len(models))
	errs := make([]error, len(models))
	var wg sync.WaitGroup
	for i, m := range models {
		wg.Go(func() {
			got[i], errs[i] = s.EnsureSpace(t.Context(), paper.Space{Model: m, Dimensions: 4, Template: "t"})
		})
	}
	wg.Wait()
	active := 0
	for i := range models {
		if errs[i] != nil {
			t.Fatalf("EnsureSpace(%s): %v", models[i], errs[i])
		}
		if got[i].ID != got[(i+3)%6].ID {
			t.Errorf("%s got ids %d and %d", models[i], got[i].ID, got[(i+3)%6].ID)
		}
	}
	if n := activeCount(t, s); n != 1 {
		t.Errorf("%d active spaces, want 1", n)
	}
	for i := range 3 {
		if got[i].Active || got[i+3].Active {
			active++
		}
	}
	if active != 1 {
		t.Errorf("%d spaces reported active to their callers, want 1", active)
	}
	if n := countRows(t, s, "embedding_spaces"); n != 3 {
		t.Errorf("%d spaces, want 3", n)
	}
}

// TestSpacesAndEnsureSpaceTakeAnInvalidIndexForNone: an interrupted CREATE INDEX CONCURRENTLY
// leaves an invalid index, which queries cannot use: `paperpipe spaces` must show the space
// without an index, and EnsureSpace warn that it has none.
func TestSpacesAndEnsureSpaceTakeAnInvalidIndexForNone(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	ps, active, fill := fillBesideActive(t, s, 3)
	inFlight := writeInFlight(t, s, active.ID, ps[0]) // holds the concurrent build in its wait
	builder, app := openWatched(t, s, "builder")
	buildCtx, cancelBuild := context.WithCancel(ctx)
	defer cancelBuild()
	done := make(chan error, 1)
	go func() {
		_, err := builder.BuildSpaceIndex(buildCtx, fill.ID, store.IndexSettings{})
		done <- err
	}()
	waitForLock(t, s, app, done, "BuildSpaceIndex")
	cancelBuild()
	if err := <-done; err == nil {
		t.Fatal("BuildSpaceIndex succeeded although cancelled")
	}
	waitForBuildToEnd(t, s, app) // the server cancels it a moment after the client gave up
	if err := inFlight.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	name := "embeddings_hnsw_s" + strconv.FormatInt(fill.ID, 10)
	var valid bool
	if err := s.Pool().QueryRow(ctx, "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)", name).Scan(&valid); err != nil || valid {
		t.Fatalf("want an invalid leftover %s to test with: valid %v, %v", name, valid, err)
	}

	if si := spacesByID(t, s)[fill.ID]; si.IndexName != "" {
		t.Errorf("Spaces shows the space's index as %q although it is invalid", si.IndexName)
	}
	var logs bytes.Buffer
	logged, err := store.Open(ctx, store.Config{URL: s.Pool().Config().ConnString(), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer logged.Close()
	if _, err := logged.EnsureSpace(ctx, paper.Space{Model: fill.Model, Dimensions: fill.Dimensions, Template: fill.Template}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "has no index") {
		t.Errorf("EnsureSpace of the space whose index is invalid logged %q; want its no-index warning", logs.String())
	}
}

// TestDropSpaceDropsAnInterruptedReindexsIndex: an interrupted `spaces reindex` leaves the new
// index, embeddings_hnsw_s<ID>_new, behind; dropping the space drops it too (it would
// otherwise stay forever: no space has its id any more).
func TestDropSpaceDropsAnInterruptedReindexsIndex(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	space(t, s, "active", 3)
	old := space(t, s, "old", 3)
	name := "embeddings_hnsw_s" + strconv.FormatInt(old.ID, 10) + "_new"
	if _, err := s.Pool().Exec(ctx, "CREATE INDEX "+name+" ON embeddings USING hnsw ((binary_quantize(embedding)::bit(3)) bit_hamming_ops) WHERE space_id = "+
		strconv.FormatInt(old.ID, 10)); err != nil {
		t.Fatal(err)
	}
	if err := s.DropSpace(ctx, old.ID, store.DropOptions{}); err != nil {
		t.Fatal(err)
	}
	if indexExists(t, s, name) {
		t.Errorf("after DropSpace, the dropped space's %s is still there", name)
	}
}

// TestDropSpaceRefusesASpaceThatOpenBatchJobsEmbedInto: a space's open Batch API jobs keep
// running, and being billed, at OpenAI; dropping the space would delete their records (ON
// DELETE CASCADE) and throw their vectors away. DropSpace refuses, naming the jobs, unless
// told to discard them; closed jobs do not stand in the way.
func TestDropSpaceRefusesASpaceThatOpenBatchJobsEmbedInto(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	space(t, s, "active", 3)
	old := space(t, s, "old", 3)
	ps := abstracts(2)
	upsert(t, s, ps, store.Work{})
	claim := func(p paper.Abstract) store.BatchJob {
		t.Helper()
		job, release, err := s.ClaimBatchJob(ctx, store.BatchJob{Kind: paper.KindEmbedding, Model: old.Model, SpaceID: old.ID,
			Target: store.BatchTarget(paper.KindEmbedding, old.Model, "", old.ID)}, []store.BatchItem{{PaperID: p.ID, ContentHash: p.ContentHash()}})
		release.Release()
		if err != nil || job.ID == 0 {
			t.Fatalf("ClaimBatchJob = %+v, %v", job, err)
		}
		return job
	}
	closed, open := claim(ps[0]), claim(ps[1])
	// The closed job's vector (a claim leaves out a paper whose vector is stored).
	if _, err := s.SaveEmbeddings(ctx, old.ID, []paper.Embedding{embeddingOf(ps[0], 1, 0, 0)}); err != nil {
		t.Fatal(err)
	}
	closed.Status = store.BatchDone
	if err := s.FinishBatchJob(ctx, closed, nil); err != nil {
		t.Fatal(err)
	}
	open.Status, open.OpenAIID = store.BatchSubmitted, "batch_abc123"
	if err := s.UpdateBatchJob(ctx, open); err != nil {
		t.Fatal(err)
	}

	err := s.DropSpace(ctx, old.ID, store.DropOptions{})
	var busy *store.OpenBatchJobsError
	if !errors.As(err, &busy) || !errors.Is(err, paper.ErrInvalid) || len(busy.Jobs) != 1 || busy.Jobs[0].ID != open.ID ||
		!strings.Contains(err.Error(), "batch_abc123") {
		t.Fatalf("DropSpace of a space with an open batch job: %v; want an OpenBatchJobsError (ErrInvalid) naming job %d, batch_abc123", err, open.ID)
	}
	if _, ok := spacesByID(t, s)[old.ID]; !ok || countRows(t, s, "embeddings") != 1 || countRows(t, s, "batch_jobs") != 2 {
		t.Fatal("the refused drop changed something")
	}
	if err := s.DropSpace(ctx, old.ID, store.DropOptions{DiscardBatchJobs: true}); err != nil {
		t.Fatalf("DropSpace discarding the open jobs: %v", err)
	}
	if _, ok := spacesByID(t, s)[old.ID]; ok || countRows(t, s, "batch_jobs") != 0 {
		t.Errorf("after the drop: space listed %v, %d batch jobs left", ok, countRows(t, s, "batch_jobs"))
	}
}

// TestBuildSpaceIndexOfASpaceDroppedMeanwhileBuildsNothing: a fill caches its space
// (EnsureSpaceForLoad); an operator drops the space while it runs; the fill's end builds the
// space's index. It must find the space gone (the lock it builds under is DropSpace's too) and
// build nothing: an index of a missing row would stay for ever, and the fill would report its
// space indexed.
func TestBuildSpaceIndexOfASpaceDroppedMeanwhileBuildsNothing(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	_ = space(t, s, "active", 3)
	fill, _, err := s.EnsureSpaceForLoad(ctx, paper.Space{Model: "green", Dimensions: 3, Template: "title+abstract"})
	if err != nil {
		t.Fatal(err)
	}
	operator, _ := openWatched(t, s, "operator")
	if err := operator.DropSpace(ctx, fill.ID, store.DropOptions{}); err != nil {
		t.Fatal(err)
	}
	built, err := s.BuildSpaceIndex(ctx, fill.ID, store.IndexSettings{})
	if !errors.Is(err, paper.ErrNotFound) || built {
		t.Errorf("BuildSpaceIndex of dropped space %d = %v, %v; want paper.ErrNotFound", fill.ID, built, err)
	}
	if name := "embeddings_hnsw_s" + strconv.FormatInt(fill.ID, 10); indexExists(t, s, name) {
		t.Errorf("BuildSpaceIndex of the dropped space built %s", name)
	}
}

// An index build without settings of its own uses the store's IndexMemory as its
// maintenance_work_mem (import-embeddings and a fill's build take PAPERPIPE_INDEX_BUILD_MEMORY
// so); settings that name one win. A size PostgreSQL refuses shows which one was used.
func TestIndexBuildsUseTheStoresIndexMemory(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := setup(t)
	small, err := store.Open(ctx, store.Config{URL: s.Pool().Config().ConnString(), IndexMemory: "32kB"})
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	sp, _, err := small.EnsureSpaceForLoad(ctx, paper.Space{Model: "bulk", Dimensions: 3, Template: "title+abstract"})
	if err != nil {
		t.Fatal(err)
	}
	// 32kB is below maintenance_work_mem's minimum (64kB).
	if _, err := small.BuildSpaceIndex(ctx, sp.ID, store.IndexSettings{}); err == nil || !strings.Contains(err.Error(), "maintenance_work_mem") {
		t.Errorf("BuildSpaceIndex with the store's IndexMemory of 32kB: %v, want PostgreSQL's refusal of maintenance_work_mem", err)
	}
	if built, err := small.BuildSpaceIndex(ctx, sp.ID, store.IndexSettings{MaintenanceWorkMem: "64MB"}); err != nil || !built {
		t.Errorf("BuildSpaceIndex with its own 64MB: %v, %v; want the index built", built, err)
	}
}

// TestEnsureSpaceRefusesTextPostgreSQLCannotHoldAsInvalid: a model or template with a NUL byte
// or bytes that are not UTF-8 (a vector line's "model" or "template" of a damaged file) is
// refused as paper.ErrInvalid before PostgreSQL sees it, as a paper's text is, and the message
// quotes it. It failed on PostgreSQL's 22021 ("invalid byte sequence for encoding"), not
// invalid input: `paperpipe import`, which leaves the vector lines of a space no store can hold
// to be rejected as bad lines (ErrInvalid from EnsureSpaceForLoad), stopped there instead, and
// printed the NUL byte itself.
func TestEnsureSpaceRefusesTextPostgreSQLCannotHoldAsInvalid(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	for _, bad := range []paper.Space{
		{Model: "m\x00", Dimensions: 8, Template: "t"},
		{Model: "m\xff", Dimensions: 8, Template: "t"},
		{Model: "m", Dimensions: 8, Template: "t\x00"},
	} {
		_, err := s.EnsureSpace(ctx, bad)
		if !errors.Is(err, paper.ErrInvalid) || strings.ContainsRune(err.Error(), 0) || !utf8.ValidString(err.Error()) {
			t.Errorf("EnsureSpace(%q) error = %q, want ErrInvalid, quoting the text", bad.Name(), err)
		}
		if _, _, err := s.EnsureSpaceForLoad(ctx, bad); !errors.Is(err, paper.ErrInvalid) {
			t.Errorf("EnsureSpaceForLoad(%q) error = %q, want ErrInvalid", bad.Name(), err)
		}
	}
	if n := countRows(t, s, "embedding_spaces"); n != 0 {
		t.Errorf("%d spaces made", n)
	}
}

package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

// import-tldrs and import-embeddings run on their own take the run locks import takes: the
// TL;DR version's and the space's. Started while a `paperpipe reprocess` writes the file's
// TL;DRs, or fills its space, each loaded beside it — the reprocess buying, for the same
// papers, what the file holds — and a reprocess started meanwhile was not refused. Each now
// stops before it loads anything, naming what holds the lock.
func TestImportTLDRsAndEmbeddingsAloneAreRefusedWhileAReprocessWritesThem(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	old, file, exp := vectorExport(t, 3)
	var errw bytes.Buffer
	moved := newArchiveEnv(t, openaitest.Config{})
	moved.seed(t, 3) // the same papers, with the same texts
	keep := configuredTLDR(old.c)

	unlock, err := moved.st.LockRun(ctx, store.TLDRRunKey(keep.Model, keep.PromptVersion))
	if err != nil {
		t.Fatal(err)
	}
	errw.Reset()
	tres, err := importTLDRs(ctx, moved.st, file, 1000, &errw)
	if !errors.Is(err, store.ErrRunInProgress) || !strings.Contains(err.Error(), "paperpipe reprocess") || tres.Saved != 0 {
		t.Errorf("import-tldrs while a reprocess writes its TL;DRs: %d saved, %v; want it refused before saving one, naming the reprocess\n%s",
			tres.Saved, err, errw.String())
	}
	unlock()

	sp, err := moved.st.EnsureSpace(ctx, paper.Space{Model: exp.Space.Model, Dimensions: exp.Space.Dimensions, Template: exp.Space.Template})
	if err != nil {
		t.Fatal(err)
	}
	unlock, err = moved.st.LockRun(ctx, store.SpaceRunKey(sp.ID))
	if err != nil {
		t.Fatal(err)
	}
	errw.Reset()
	eres, err := importEmbeddings(ctx, moved.st, file, 5000, &errw)
	if !errors.Is(err, store.ErrRunInProgress) || !strings.Contains(err.Error(), "paperpipe reprocess") || eres.Loaded != 0 {
		t.Errorf("import-embeddings while a reprocess fills its space: %d loaded, %v; want it refused before loading one, naming the reprocess\n%s",
			eres.Loaded, err, errw.String())
	}
	unlock()

	// Once the lock is free, both load the file; a reprocess of the TL;DRs started while
	// import-tldrs holds their lock (here as it says what it loaded) is refused, naming it.
	var (
		rerr error
		rout bytes.Buffer
	)
	w := &onWrite{trigger: "import-tldrs:", fire: func() {
		_, rerr = runReprocess(ctx, moved.c, reprocessOptions{tldrOnly: true}, &rout, &rout)
	}}
	if tres, err := importTLDRs(ctx, moved.st, file, 1000, w); err != nil || tres.Saved != 3 {
		t.Errorf("import-tldrs once no reprocess runs: %d saved, %v; want 3\n%s", tres.Saved, err, w.buf.String())
	}
	if !errors.Is(rerr, store.ErrRunInProgress) || !strings.Contains(rerr.Error(), "import-tldrs") {
		t.Errorf("a reprocess of the TL;DRs during import-tldrs: %v, want it refused, naming import-tldrs\n%s", rerr, rout.String())
	}
	if s := moved.fake.Stats(); s.ChatRequests != 0 {
		t.Errorf("a reprocess during import-tldrs bought %d TL;DR requests", s.ChatRequests)
	}
	if eres, err := importEmbeddings(ctx, moved.st, file, 5000, &errw); err != nil || eres.Loaded != 3 {
		t.Errorf("import-embeddings once no reprocess runs: %d loaded, %v; want 3\n%s", eres.Loaded, err, errw.String())
	}
}

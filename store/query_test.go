package store_test

import (
	"encoding/base64"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

func cosine(a, b []float32) float64 {
	var dot, na, nb float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	return dot / math.Sqrt(na*nb)
}

func hitIDs(hits []paper.Hit) []string {
	ids := make([]string, len(hits))
	for i, h := range hits {
		ids[i] = h.ID
	}
	return ids
}

func TestRelatedAndSearchStayInTheirSpace(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	ps := abstracts(6) // A..E have vectors, F has none
	upsert(t, s, ps, store.Work{})
	blue := space(t, s, "blue", 3)
	green := space(t, s, "green", 3)
	blueVecs := [][]float32{{1, 0, 0}, {0.9, 0.1, 0}, {0.6, 0.4, 0}, {0.1, 0, 1}, {0, 1, 0}}
	// In green, E is A's twin and B is far: a leak of green vectors into blue queries shows.
	greenVecs := [][]float32{{1, 0, 0}, {0, 0, 1}, {0, 1, 1}, {0, 1, 0}, {1, 0, 0.01}}
	for sp, vecs := range map[int64][][]float32{blue.ID: blueVecs, green.ID: greenVecs} {
		var embs []paper.Embedding
		for i, v := range vecs {
			embs = append(embs, embeddingOf(ps[i], v...))
		}
		if _, err := s.SaveEmbeddings(ctx, sp, embs); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.SaveSummaries(ctx, []paper.Summary{summaryOf(ps[1], testModel, testPrompt, "B's TL;DR.")}); err != nil {
		t.Fatal(err)
	}

	hits, err := s.Related(ctx, blue.ID, ps[0].ID, 3)
	if err != nil {
		t.Fatalf("Related: %v", err)
	}
	if got, want := hitIDs(hits), []string{ps[1].ID, ps[2].ID, ps[3].ID}; !slices.Equal(got, want) {
		t.Fatalf("Related(blue, A, 3) = %v, want %v", got, want)
	}
	for i, h := range hits {
		if want := cosine(blueVecs[0], blueVecs[i+1]); math.Abs(h.Score-want) > 1e-5 {
			t.Errorf("hit %s score %.6f, want cosine %.6f", h.ID, h.Score, want)
		}
		if h.Title != ps[i+1].Title {
			t.Errorf("hit %s title %q", h.ID, h.Title)
		}
	}
	if hits[0].TLDR != "B's TL;DR." {
		t.Errorf("hit B TLDR = %q", hits[0].TLDR)
	}
	// More than there are: every other vector of the space, never the paper itself.
	hits, err = s.Related(ctx, blue.ID, ps[0].ID, 10)
	if err != nil || len(hits) != 4 || slices.Contains(hitIDs(hits), ps[0].ID) {
		t.Errorf("Related(blue, A, 10) = %v, %v; want the 4 others", hitIDs(hits), err)
	}
	hits, err = s.Related(ctx, green.ID, ps[0].ID, 1)
	if err != nil || len(hits) != 1 || hits[0].ID != ps[4].ID {
		t.Errorf("Related(green, A, 1) = %v, %v; want E", hitIDs(hits), err)
	}

	if _, err := s.Related(ctx, blue.ID, ps[5].ID, 3); !errors.Is(err, paper.ErrNotFound) {
		t.Errorf("Related(paper without vector) = %v, want ErrNotFound", err)
	}
	if _, err := s.Related(ctx, blue.ID, ps[0].ID, 0); !errors.Is(err, paper.ErrInvalid) {
		t.Errorf("Related(k=0) = %v, want ErrInvalid", err)
	}

	hits, err = s.Search(ctx, blue.ID, []float32{0, 1, 0}, 2)
	if err != nil {
		t.Fatalf("Search: %v", err)
	}
	if got, want := hitIDs(hits), []string{ps[4].ID, ps[2].ID}; !slices.Equal(got, want) {
		t.Errorf("Search(blue, y) = %v, want %v", got, want)
	}
	if math.Abs(hits[0].Score-1) > 1e-6 {
		t.Errorf("identical vector scored %f, want 1", hits[0].Score)
	}
	if _, err := s.Search(ctx, blue.ID, []float32{0, 1}, 2); !errors.Is(err, paper.ErrSpaceMismatch) {
		t.Errorf("Search(2-d vector in 3-d space) = %v, want ErrSpaceMismatch", err)
	}
}

func TestSearchHalfvecSpace(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	const dims = 2048
	sp := space(t, s, "big", dims)
	ps := abstracts(3)
	upsert(t, s, ps, store.Work{})
	vecs := make([][]float32, len(ps))
	var embs []paper.Embedding
	for i := range ps {
		vecs[i] = make([]float32, dims)
		vecs[i][i] = 1
		vecs[i][dims-1] = 0.5
		embs = append(embs, embeddingOf(ps[i], vecs[i]...))
	}
	if _, err := s.SaveEmbeddings(ctx, sp.ID, embs); err != nil {
		t.Fatal(err)
	}
	hits, err := s.Search(ctx, sp.ID, vecs[1], 3)
	if err != nil {
		t.Fatalf("Search: %v", err)
	}
	if len(hits) != 3 || hits[0].ID != ps[1].ID || math.Abs(hits[0].Score-1) > 1e-3 {
		t.Errorf("Search(halfvec) = %+v", hits)
	}
	if hits, err := s.Related(ctx, sp.ID, ps[1].ID, 5); err != nil || len(hits) != 2 {
		t.Errorf("Related(halfvec) = %+v, %v", hits, err)
	}
}

// TestRelatedUsesTheSpaceHNSWIndex checks the plan of Related's statement with 1,000 vectors in
// the space and 200 in another, statistics gathered and no planner setting forced: it must be an
// index scan on the space's own partial HNSW index. (The planner already prefers the index at
// 300 rows; 1,000 leaves a margin while keeping the HNSW inserts fast.)
func TestRelatedUsesTheSpaceHNSWIndex(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	const n, nOther, dims = 1000, 200, 32
	other := space(t, s, "other", dims)
	sp := space(t, s, "planned", dims)
	ps := abstracts(n)
	upsert(t, s, ps, store.Work{})
	r := rand.New(rand.NewPCG(1, 2))
	for _, target := range []int64{other.ID, sp.ID} {
		embs := make([]paper.Embedding, n)
		if target == other.ID {
			embs = embs[:nOther]
		}
		for i := range embs {
			v := make([]float32, dims)
			for j := range v {
				v[j] = r.Float32()*2 - 1
			}
			embs[i] = embeddingOf(ps[i], v...)
		}
		if saved, err := s.SaveEmbeddings(ctx, target, embs); err != nil || saved != len(embs) {
			t.Fatalf("SaveEmbeddings = %d, %v", saved, err)
		}
	}
	if _, err := s.Pool().Exec(ctx, "ANALYZE embeddings"); err != nil {
		t.Fatal(err)
	}
	plan, err := s.ExplainRelated(ctx, sp.ID, ps[0].ID, 10)
	if err != nil {
		t.Fatalf("ExplainRelated: %v", err)
	}
	want := "Index Scan using embeddings_hnsw_s" + strconv.FormatInt(sp.ID, 10) + " "
	if !strings.Contains(plan, want) {
		t.Errorf("Related does not use the space's HNSW index; plan:\n%s", plan)
	}
	hits, err := s.Related(ctx, sp.ID, ps[0].ID, 10)
	if err != nil || len(hits) != 10 {
		t.Errorf("Related = %d hits, %v", len(hits), err)
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	mk := func(id, title string) paper.Abstract {
		return paper.Abstract{ID: id, Title: title, Abstract: "Abstract of " + title + "."}
	}
	ps := []paper.Abstract{
		mk("arxiv:2401.01234", "Demons in the Detail: Load Balancing Loss for Mixture-of-Experts"),
		mk("arxiv:2402.00001", "Sparse Mixture-of-Experts Routing"),
		mk("arxiv:2402.00002", "Dense Mixture-of-Experts Training"),
		mk("arxiv:2402.00003", "100% Accurate Models"),
		mk("arxiv:2402.00004", "A Study of 100 Percent Recall"),
		mk("arxiv:2402.00005", "Under_score Tricks"),
		mk("arxiv:2402.00006", "UnderXscore Tricks"),
		mk("arxiv:2402.00007", "Citing arxiv:2401.01234 Everywhere"),
		mk("arxiv:2402.00008", "Attention"),
		mk("arxiv:2402.00009", "Attention Is Not All You Need"),
		mk("arxiv:hep-th/9901001", "Old Style Strings"),
		mk("arxiv:2402.00010", "A Na\u00efve Bayes Baseline"), // stored in NFC, as ingest writes it
		mk("arxiv:2402.00011", "NLoRA: Nystr\u00f6m-Initiated Low-Rank Adaptation"),
		mk("arxiv:2402.00012", "Schrodinger Bridges Without Accents"),
	}
	upsert(t, s, ps, store.Work{})
	for _, tc := range []struct{ ref, want string }{
		{"arxiv:2401.01234", "arxiv:2401.01234"},                   // canonical id; wins over the title that contains it
		{"2401.01234v2", "arxiv:2401.01234"},                       // raw arXiv id with version
		{"https://arxiv.org/abs/2401.01234v1", "arxiv:2401.01234"}, // URL
		{"hep-th/9901001v3", "arxiv:hep-th/9901001"},               // old style
		{"load balancing LOSS", "arxiv:2401.01234"},                // unique fragment, any case
		{"100%", "arxiv:2402.00003"},                               // % is literal
		{"under_score", "arxiv:2402.00005"},                        // _ is literal
		{"  attention  ", "arxiv:2402.00008"},                      // a title equal to ref wins
		{"Attention Is Not", "arxiv:2402.00009"},                   // fragment
		{"nai\u0308ve bayes", "arxiv:2402.00010"},                  // typed or pasted decomposed (macOS, a PDF): the same title
		{"NAI\u0308VE", "arxiv:2402.00010"},                        // any case, decomposed
		{"naive bayes", "arxiv:2402.00010"},                        // without its accent, as keyword search folds it
		{"Nystrom-Initiated", "arxiv:2402.00011"},                  // without its accent
		{"schrödinger bridges", "arxiv:2402.00012"},                // with an accent the title does not have
		{"100\uff05", "arxiv:2402.00003"},                          // a fullwidth %, folded to %: literal too
		{"under\uff3fscore", "arxiv:2402.00005"},                   // a fullwidth _, folded to _: literal too
	} {
		got, err := s.Resolve(ctx, tc.ref)
		if err != nil || got != tc.want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", tc.ref, got, err, tc.want)
		}
	}

	_, err := s.Resolve(ctx, "mixture-of-experts")
	if !errors.Is(err, paper.ErrAmbiguous) {
		t.Fatalf("Resolve(ambiguous) = %v, want ErrAmbiguous", err)
	}
	for _, id := range []string{"arxiv:2401.01234", "arxiv:2402.00001", "arxiv:2402.00002"} {
		if !strings.Contains(err.Error(), id) {
			t.Errorf("ambiguous error does not list %s: %v", id, err)
		}
	}
	if !strings.Contains(err.Error(), "Sparse Mixture-of-Experts Routing") {
		t.Errorf("ambiguous error does not list titles: %v", err)
	}
	_, err = s.Resolve(ctx, "tricks")
	if !errors.Is(err, paper.ErrAmbiguous) {
		t.Errorf("Resolve(tricks) = %v, want ErrAmbiguous", err)
	}
	for _, ref := range []string{"quantum gravity", "arxiv:2999.99999", "2999.99999"} {
		if _, err := s.Resolve(ctx, ref); !errors.Is(err, paper.ErrNotFound) {
			t.Errorf("Resolve(%q) = %v, want ErrNotFound", ref, err)
		}
	}
	if _, err := s.Resolve(ctx, "   "); !errors.Is(err, paper.ErrInvalid) {
		t.Errorf("Resolve(blank) = %v, want ErrInvalid", err)
	}
}

func TestResolveListsAtMostFiveCandidates(t *testing.T) {
	t.Parallel()
	s := setup(t)
	upsert(t, s, abstracts(8), store.Work{}) // titles "Paper 1" … "Paper 8"
	_, err := s.Resolve(t.Context(), "paper")
	if !errors.Is(err, paper.ErrAmbiguous) {
		t.Fatalf("Resolve = %v, want ErrAmbiguous", err)
	}
	msg := err.Error()
	if got := strings.Count(msg, "arxiv:2401."); got != 5 {
		t.Errorf("%d candidates listed, want 5:\n%s", got, msg)
	}
	if !strings.Contains(msg, "8 papers") || !strings.Contains(msg, "3 more") {
		t.Errorf("message does not give the total:\n%s", msg)
	}
}

func TestInjectionInFragmentIsHarmless(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	evil := "'; DROP TABLE papers; --"
	upsert(t, s, abstracts(2), store.Work{})
	if _, err := s.Resolve(ctx, evil); !errors.Is(err, paper.ErrNotFound) {
		t.Errorf("Resolve(%q) = %v, want ErrNotFound", evil, err)
	}
	// The same text as a title is stored and found literally.
	a := paper.Abstract{ID: "id:evil", Title: "Robert" + evil, Abstract: `Little Bobby Tables'); DELETE FROM tldrs; --`}
	upsert(t, s, []paper.Abstract{a}, store.Work{})
	if id, err := s.Resolve(ctx, evil); err != nil || id != a.ID {
		t.Errorf("Resolve(%q) = %q, %v; want %s", evil, id, err, a.ID)
	}
	if _, err := s.Paper(ctx, evil); !errors.Is(err, paper.ErrNotFound) {
		t.Errorf("Paper(%q) = %v, want ErrNotFound", evil, err)
	}
	if n := countRows(t, s, "papers"); n != 3 {
		t.Errorf("%d papers after injection attempts, want 3", n)
	}
	rec, err := s.Paper(ctx, a.ID)
	if err != nil || rec.Title != a.Title || rec.Abstract.Abstract != a.Abstract {
		t.Errorf("Paper = %+v, %v", rec, err)
	}
}

func TestListPagesNewestFirst(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	ps := abstracts(25)
	// Three batches: three creation times, and ties within each batch broken by id.
	upsert(t, s, ps[:10], store.Work{})
	upsert(t, s, ps[10:20], store.Work{})
	upsert(t, s, ps[20:], store.Work{})
	if _, err := s.SaveSummaries(ctx, []paper.Summary{summaryOf(ps[24], testModel, testPrompt, "Newest paper's TL;DR.")}); err != nil {
		t.Fatal(err)
	}

	var (
		got    []string
		cursor *store.Cursor
		pages  int
	)
	for {
		recs, next, err := s.List(ctx, 10, cursor)
		if err != nil {
			t.Fatalf("List page %d: %v", pages+1, err)
		}
		pages++
		if pages == 1 && (recs[0].TLDR == nil || recs[0].TLDR.Text != "Newest paper's TL;DR.") {
			t.Errorf("first record %s TLDR = %+v", recs[0].ID, recs[0].TLDR)
		}
		for _, r := range recs {
			got = append(got, r.ID)
		}
		if next == nil {
			break
		}
		// The cursor travels as a string.
		cursor, err = store.DecodeCursor(next.Encode())
		if err != nil {
			t.Fatalf("DecodeCursor: %v", err)
		}
		if pages > 5 {
			t.Fatal("List does not end")
		}
	}
	var want []string
	for _, batch := range [][]paper.Abstract{ps[20:], ps[10:20], ps[:10]} {
		var ids []string
		for _, p := range batch {
			ids = append(ids, p.ID)
		}
		slices.Sort(ids)
		slices.Reverse(ids)
		want = append(want, ids...)
	}
	if pages != 3 || !slices.Equal(got, want) {
		t.Errorf("List over %d pages = %v\nwant %v", pages, got, want)
	}
	// A last page that is full has no next page: a cursor to an empty page is a "Next" link to
	// nothing.
	if recs, next, err := s.List(ctx, 25, nil); err != nil || len(recs) != 25 || next != nil {
		t.Errorf("List(25) of 25 papers = %d papers, next %v, %v; want all 25 and no next page", len(recs), next, err)
	}

	if _, err := store.DecodeCursor("not a cursor!"); !errors.Is(err, paper.ErrInvalid) {
		t.Errorf("DecodeCursor(garbage) = %v, want ErrInvalid", err)
	}
	if _, _, err := s.List(ctx, 0, nil); !errors.Is(err, paper.ErrInvalid) {
		t.Errorf("List(0) = %v, want ErrInvalid", err)
	}
}

func TestCounts(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	sp := space(t, s, "emb", 2)
	other := space(t, s, "emb-other", 2)
	ps := abstracts(5)
	upsert(t, s, ps, store.Work{})
	// Each paper has at most one output of a version or space, and papers with several of
	// other versions and spaces are counted once: one pass joins them all.
	sums := []paper.Summary{
		summaryOf(ps[0], testModel, testPrompt, "a."), summaryOf(ps[1], testModel, testPrompt, "b."),
		summaryOf(ps[2], testModel, "v0", "c."), summaryOf(ps[0], testModel, "v0", "a0."),
		summaryOf(ps[0], "another-model", testPrompt, "a1."), summaryOf(ps[3], testModel, testPrompt, "d."),
	}
	if _, err := s.SaveSummaries(ctx, sums); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveEmbeddings(ctx, sp.ID, []paper.Embedding{embeddingOf(ps[0], 1, 0), embeddingOf(ps[1], 0, 1)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveEmbeddings(ctx, other.ID, []paper.Embedding{embeddingOf(ps[0], 1, 0), embeddingOf(ps[2], 0, 1)}); err != nil {
		t.Fatal(err)
	}
	changed := ps[1]
	changed.Abstract = "Changed: its TL;DR and vector are stale now."
	upsert(t, s, []paper.Abstract{changed}, store.Work{})

	got, err := s.Counts(ctx, store.Work{Model: testModel, PromptVersion: testPrompt, SpaceID: sp.ID})
	if err != nil {
		t.Fatal(err)
	}
	if want := (store.Counts{Papers: 5, WithTLDR: 2, WithEmbedding: 1, TLDRsTotal: 6}); got != want {
		t.Errorf("Counts = %+v, want %+v", got, want)
	}
	got, err = s.Counts(ctx, store.Work{Model: testModel, PromptVersion: "v0", SpaceID: other.ID})
	if err != nil {
		t.Fatal(err)
	}
	if want := (store.Counts{Papers: 5, WithTLDR: 2, WithEmbedding: 2, TLDRsTotal: 6}); got != want {
		t.Errorf("Counts of prompt v0 and the other space = %+v, want %+v", got, want)
	}
	// status's count of another (active) space, in the same pass, is that space's coverage as
	// ResolveSpace counts it, after a paper with a vector there is removed (a third space,
	// empty, counts none).
	empty := space(t, s, "emb-empty", 2)
	if _, err := s.RemovePapers(ctx, []string{ps[2].ID}, false, nil); err != nil {
		t.Fatal(err)
	}
	w := store.Work{Model: testModel, PromptVersion: testPrompt, SpaceID: sp.ID}
	for _, sid := range []int64{other.ID, empty.ID, sp.ID} {
		c, n, err := s.CountsWith(ctx, w, sid)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.ResolveSpace(ctx, strconv.FormatInt(sid, 10))
		if err != nil {
			t.Fatal(err)
		}
		if want := (store.Counts{Papers: 4, WithTLDR: 2, WithEmbedding: 1, TLDRsTotal: 5}); c != want || n != info.Embedded {
			t.Errorf("CountsWith(space %d) = %+v, %d; want %+v, %d (ResolveSpace's coverage)", sid, c, n, want, info.Embedded)
		}
	}
	// `spaces` counts every space's coverage in one statement, each as ResolveSpace counts it.
	spaces, err := s.Spaces(ctx)
	if err != nil || len(spaces) != 3 {
		t.Fatalf("Spaces = %v, %v; want 3 spaces", spaces, err)
	}
	for _, got := range spaces {
		want, err := s.ResolveSpace(ctx, strconv.FormatInt(got.ID, 10))
		if err != nil {
			t.Fatal(err)
		}
		if got.Embedded != want.Embedded || got.Papers != want.Papers || got.Papers != 4 {
			t.Errorf("Spaces: space %d %d of %d embedded; ResolveSpace says %d of %d of 4", got.ID, got.Embedded, got.Papers, want.Embedded, want.Papers)
		}
	}
}

// TestRelatedReturnsKWhenKReachesEFSearch: the index scan of a query returns ef_search rows
// (never fewer than k), and Related leaves out the paper itself, which is the nearest of them;
// when k reaches ef_search the scan must walk on for the k-th paper instead of answering k-1.
func TestRelatedReturnsKWhenKReachesEFSearch(t *testing.T) {
	t.Parallel()
	bin, plain := setupBinary(t)
	half := openKind(t, plain.Pool().Config().ConnString(), store.IndexHNSWHalfvec)
	ctx := t.Context()
	const n, dims, ef = 1000, 16, 10
	ps := abstracts(n)
	upsert(t, plain, ps, store.Work{})
	for _, tc := range []struct {
		kind  store.IndexKind
		owner *store.Store
	}{{store.IndexHNSW, plain}, {store.IndexHNSWBinary, bin}, {store.IndexHNSWHalfvec, half}} {
		sp := space(t, tc.owner, "k-at-ef-"+string(tc.kind), dims)
		saveRandomVectors(t, plain, sp.ID, ps, dims, 7)
		if _, err := plain.Pool().Exec(ctx, "ANALYZE embeddings"); err != nil {
			t.Fatal(err)
		}
		s, err := store.Open(ctx, store.Config{URL: plain.Pool().Config().ConnString(), EFSearch: ef})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		plan, err := s.ExplainRelated(ctx, sp.ID, ps[0].ID, ef)
		if err != nil {
			t.Fatalf("%s: ExplainRelated: %v", tc.kind, err)
		}
		if !strings.Contains(plan, "Index Scan using embeddings_hnsw_s"+strconv.FormatInt(sp.ID, 10)+" ") {
			t.Fatalf("%s: Related does not use the space's index, so this test cannot see the scan run short; plan:\n%s", tc.kind, plan)
		}
		for _, k := range []int{ef, 3 * ef} {
			hits, err := s.Related(ctx, sp.ID, ps[0].ID, k)
			if err != nil {
				t.Fatalf("%s: Related k=%d: %v", tc.kind, k, err)
			}
			if len(hits) != k {
				t.Errorf("%s, ef_search %d: Related k=%d gave %d papers", tc.kind, ef, k, len(hits))
			}
			for i, h := range hits {
				if h.ID == ps[0].ID {
					t.Errorf("%s: Related k=%d returned the paper itself", tc.kind, k)
				}
				if i > 0 && h.Score > hits[i-1].Score {
					t.Errorf("%s: Related k=%d is not in order of similarity at %d", tc.kind, k, i)
				}
			}
		}
	}
}

// TestDecodeCursorRefusesWhatTheDatabaseCannotHold: a cursor is client input. One altered to
// an id PostgreSQL's text cannot hold (invalid UTF-8, NUL) is refused as invalid, as any
// cursor Encode did not make, instead of failing in SQL as a server error.
func TestDecodeCursorRefusesWhatTheDatabaseCannotHold(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	upsert(t, s, abstracts(3), store.Work{})
	enc := func(raw string) string { return base64.RawURLEncoding.EncodeToString([]byte(raw)) }
	for _, raw := range []string{
		"1796483913902748|\xff\xfe",
		"1796483913902748|a\x00b",
		"1796483913902748|",
		"-300000000000000000|arxiv:2401.00001", // before 4713 BC: PostgreSQL's "timestamp out of range"
		"-9223372036854775808|arxiv:2401.00001",
		"9223372036854775807|arxiv:2401.00001",
	} {
		c, err := store.DecodeCursor(enc(raw))
		if !errors.Is(err, paper.ErrInvalid) {
			t.Errorf("DecodeCursor(%q) = %v, want ErrInvalid", raw, err)
			if c != nil {
				if _, _, err := s.List(ctx, 2, c); err != nil {
					t.Logf("and List after it fails: %v", err)
				}
			}
		}
	}
	// A cursor of a stored paper still travels whole.
	_, next, err := s.List(ctx, 1, nil)
	if err != nil || next == nil {
		t.Fatalf("List = %v, %v", next, err)
	}
	c, err := store.DecodeCursor(next.Encode())
	if err != nil {
		t.Fatalf("DecodeCursor of Encode: %v", err)
	}
	if recs, _, err := s.List(ctx, 2, c); err != nil || len(recs) != 2 {
		t.Errorf("List after the cursor = %d papers, %v; want 2", len(recs), err)
	}
}

// TestRelatedVectorIsRelatedsFirstStep: the benchmarks' sweep times Related's two steps —
// the paper's stored vector (RelatedVector), then the space's statement (RunKNN) — and must
// find what Related finds; a missing vector is Related's error.
func TestRelatedVectorIsRelatedsFirstStep(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	ps := abstracts(5)
	upsert(t, s, ps, store.Work{})
	sp := space(t, s, "blue", 3)
	vecs := [][]float32{{1, 0, 0}, {0.9, 0.1, 0}, {0.6, 0.4, 0}, {0.1, 0, 1}}
	var embs []paper.Embedding
	for i, v := range vecs {
		embs = append(embs, embeddingOf(ps[i], v...))
	}
	if _, err := s.SaveEmbeddings(ctx, sp.ID, embs); err != nil {
		t.Fatal(err)
	}
	want, err := s.Related(ctx, sp.ID, ps[0].ID, 3)
	if err != nil {
		t.Fatal(err)
	}
	vec, err := s.RelatedVector(ctx, sp.ID, ps[0].ID, 3)
	if err != nil {
		t.Fatalf("RelatedVector: %v", err)
	}
	if !slices.Equal(vec, vecs[0]) {
		t.Errorf("RelatedVector = %v, want the stored %v", vec, vecs[0])
	}
	q := store.NewKNNQuery(sp.ID, 3, store.DefaultIndexKind)
	got, err := s.RunKNN(ctx, q, vec, ps[0].ID, 3, store.DefaultEFSearch(store.DefaultIndexKind))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(hitIDs(got), hitIDs(want)) {
		t.Errorf("RunKNN of RelatedVector = %v, want Related's %v", hitIDs(got), hitIDs(want))
	}
	// E has no vector in the space: the error Related gives.
	_, rerr := s.Related(ctx, sp.ID, ps[4].ID, 3)
	if _, err := s.RelatedVector(ctx, sp.ID, ps[4].ID, 3); !errors.Is(err, paper.ErrNotFound) || err.Error() != rerr.Error() {
		t.Errorf("RelatedVector of a paper without a vector = %v, want Related's %v", err, rerr)
	}
}

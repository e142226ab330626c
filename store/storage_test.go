package store_test

import (
	"slices"
	"testing"

	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

// toastBytes returns the size of the TOAST table of embeddings.
func toastBytes(t *testing.T, s *store.Store) int64 {
	t.Helper()
	var n int64
	err := s.Pool().QueryRow(t.Context(), `SELECT pg_relation_size(reltoastrelid) FROM pg_class
		WHERE oid = 'embeddings'::regclass`).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Vectors of a usual size (768 dimensions: 3 kB, past the 2 kB at which PostgreSQL would move
// them to TOAST) stay in the row, from the worker's path and from a bulk load; a vector too big
// for a page still goes to TOAST and reads back intact.
func TestVectorsStayInTheRowUnlessTooBigForAPage(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	papers := abstracts(20)
	upsert(t, s, papers, store.Work{})

	saved := saveRandomVectors(t, s, space(t, s, "saved", 768).ID, papers[:10], 768, 1)
	loadSpace, _, err := s.EnsureSpaceForLoad(ctx, paper.Space{Model: "loaded", Dimensions: 768, Template: "t"})
	if err != nil {
		t.Fatal(err)
	}
	loaded := make([]paper.Embedding, 10)
	for i := range loaded {
		loaded[i] = paper.Embedding{PaperID: papers[10+i].ID, Vector: slices.Clone(saved[i].Vector)}
		loaded[i].Vector[0] = float32(i)
	}
	if _, err := s.LoadEmbeddings(ctx, loadSpace.ID, loaded); err != nil {
		t.Fatal(err)
	}
	if n := toastBytes(t, s); n != 0 {
		t.Errorf("20 vectors of 768 dimensions took %d bytes of TOAST, want them in their rows", n)
	}

	big := saveRandomVectors(t, s, space(t, s, "big", 3000).ID, papers[:2], 3000, 2)
	if toastBytes(t, s) == 0 {
		t.Errorf("vectors of 3,000 dimensions (12 kB) are not in TOAST: where are they?")
	}
	for _, c := range []struct {
		space string
		e     paper.Embedding
	}{{"big", big[0]}, {"big", big[1]}, {"saved", saved[3]}, {"loaded", loaded[4]}} {
		var got []float32
		err := s.Pool().QueryRow(ctx, `SELECT e.embedding::real[] FROM embeddings e JOIN embedding_spaces s
			ON s.id = e.space_id WHERE s.model = $1 AND e.paper_id = $2`, c.space, c.e.PaperID).Scan(&got)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, c.e.Vector) {
			t.Errorf("the %s vector of %s reads back differently", c.space, c.e.PaperID)
		}
	}
}

// The primary key of embeddings carries content_hash as a non-key column, so that whether a
// paper's vector is current — asked of every paper by UpsertPapers, StalePapers, Counts and
// Spaces — can be answered by an index-only scan instead of reading rows that hold their
// vectors. (Whether the planner takes it depends on the visibility map, which VACUUM cannot set
// while other tests hold snapshots in the same database, so the test checks the key itself.)
func TestEmbeddingsKeyCoversContentHash(t *testing.T) {
	t.Parallel()
	s := setup(t)
	var keys, included []string
	err := s.Pool().QueryRow(t.Context(), `
		SELECT array_agg(a.attname ORDER BY k.n) FILTER (WHERE k.n <= i.indnkeyatts),
			array_agg(a.attname ORDER BY k.n) FILTER (WHERE k.n > i.indnkeyatts)
		FROM pg_index i
		CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
		WHERE i.indrelid = 'embeddings'::regclass AND i.indisprimary
		GROUP BY i.indnkeyatts`).Scan(&keys, &included)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys, []string{"space_id", "paper_id"}) || !slices.Equal(included, []string{"content_hash"}) {
		t.Errorf("primary key of embeddings: key %v, included %v; want (space_id, paper_id) INCLUDE (content_hash)", keys, included)
	}
}

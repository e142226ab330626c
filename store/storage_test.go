package store_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

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

// Whether a paper's vector is current (its content hash is the paper's) — the question
// UpsertPapers, StalePapers, Counts and Spaces ask of every paper — is answered from the primary
// key alone, without reading the rows and their vectors.
func TestCurrentVectorCheckNeedsNoRowReads(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	papers := abstracts(50)
	upsert(t, s, papers, store.Work{})
	sp := space(t, s, "m", 768)
	saveRandomVectors(t, s, sp.ID, papers, 768, 3)
	if _, err := s.Pool().Exec(ctx, "VACUUM ANALYZE embeddings"); err != nil {
		t.Fatal(err)
	}
	var plan []string
	err := pgx.BeginFunc(ctx, s.Pool(), func(tx pgx.Tx) error {
		// Ask whether the index alone can answer, whatever the planner prefers at 50 rows.
		if _, err := tx.Exec(ctx, "SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off"); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `EXPLAIN SELECT count(*) FROM papers p WHERE EXISTS (SELECT 1 FROM embeddings e
			WHERE e.space_id = $1 AND e.paper_id = p.id AND e.content_hash = p.content_hash)`, sp.ID)
		if err != nil {
			return err
		}
		plan, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if text := strings.Join(plan, "\n"); !strings.Contains(text, "Index Only Scan using embeddings_pkey") {
		t.Errorf("the current-vector check reads embedding rows:\n%s", text)
	}
}

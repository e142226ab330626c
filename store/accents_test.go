package store_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

// A word matches with or without its accents, both ways: a keyword search for Nystrom found
// none of the papers that write Nyström, nor naive naïve, Erdos Erdős, Poincare Poincaré,
// Schrodinger Schrödinger, and a query typed with the accent missed a paper written without it.
// The same in the listing's text filter, an exclusion, and a hybrid search's keyword ranking.
func TestKeywordSearchFoldsAccents(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	accented := topic(1, "Nyström approximation of Schrödinger operators",
		"A naïve Erdős–Rényi construction meets the Poincaré inequality in Gödel-style proofs.")
	plain := topic(2, "Nystrom approximation of Schrodinger operators",
		"A naive Erdos-Renyi construction meets the Poincare inequality in Godel-style proofs.")
	other := topic(3, "Kangaroo locomotion", "Hopping is efficient at speed.")
	upsert(t, s, []paper.Abstract{accented, plain, other}, store.Work{})
	both := []string{accented.ID, plain.ID}
	cases := []struct {
		q    string
		want []string
	}{
		{"Nystrom", both}, {"Nyström", both}, {"Schrodinger", both}, {"Schrödinger", both},
		{"naive", both}, {"naïve", both}, {"nai\u0308ve", both}, {"Erdos", both}, {"Erdős", both},
		{"Renyi", both}, {"Rényi", both}, {"Poincare inequality", both}, {"Poincaré", both},
		{"Gödel-style", both}, {"godel style", both}, {`"nystrom approximation"`, both},
		{"nystrom -kangaroo", both}, {"speed -nyström", []string{other.ID}},
		{"kangaroo or -erdos", []string{other.ID}},
	}
	for _, c := range cases {
		hits, err := s.KeywordSearch(ctx, c.q, 10)
		if err != nil {
			t.Fatalf("KeywordSearch(%q): %v", c.q, err)
		}
		got := hitIDs(hits)
		slices.Sort(got)
		if !slices.Equal(got, c.want) {
			t.Errorf("KeywordSearch(%q) = %v, want %v", c.q, got, c.want)
		}
		recs, _, err := s.ListFiltered(ctx, store.ListFilter{Text: c.q}, 10, nil)
		if err != nil {
			t.Fatalf("ListFiltered(%q): %v", c.q, err)
		}
		var listed []string
		for _, r := range recs {
			listed = append(listed, r.ID)
		}
		slices.Sort(listed)
		if !slices.Equal(listed, c.want) {
			t.Errorf("ListFiltered(text %q) = %v, want %v", c.q, listed, c.want)
		}
	}
	// The hybrid ranking's keyword side, and its exclusion in the semantic side: the vector is
	// nearest the kangaroo paper, which the keyword side does not find.
	sp := space(t, s, "accents", 2)
	if _, err := s.SaveEmbeddings(ctx, sp.ID, []paper.Embedding{
		embeddingOf(accented, 0, 1), embeddingOf(plain, 0.1, 1), embeddingOf(other, 1, 0),
	}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		q    string
		want []string
	}{
		{"Nystrom", []string{accented.ID, plain.ID, other.ID}},
		{"kangaroo -Nystrom", []string{other.ID}},
		{"kangaroo -Nyström", []string{other.ID}},
	} {
		hits, err := s.HybridSearch(ctx, sp.ID, c.q, []float32{1, 0}, 10)
		if err != nil {
			t.Fatal(err)
		}
		got := hitIDs(hits)
		slices.Sort(got)
		if !slices.Equal(got, c.want) {
			t.Errorf("HybridSearch(%q) = %v, want %v", c.q, got, c.want)
		}
		sem, err := s.SemanticSearch(ctx, sp.ID, c.q, []float32{1, 0}, 10)
		if err != nil {
			t.Fatal(err)
		}
		got = hitIDs(sem)
		slices.Sort(got)
		if !slices.Equal(got, c.want) {
			t.Errorf("SemanticSearch(%q) = %v, want %v", c.q, got, c.want)
		}
	}
}

// A paper an earlier release stored decomposed ("nai\u0308ve": i and a combining diaeresis, as
// macOS and PDF extractors write it) is found in either form too: unaccent drops the combining
// marks. It was found in neither form, a query being read in NFC.
func TestKeywordSearchFindsAPaperStoredDecomposed(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	decomposed := topic(1, "Nai\u0308ve Bayes for spam", "We revisit the Nystro\u0308m method.")
	upsert(t, s, []paper.Abstract{decomposed, topic(2, "Kangaroo locomotion", "Hopping is efficient.")}, store.Work{})
	for _, q := range []string{"naive", "na\u00efve", "nai\u0308ve", "Nystrom", "Nystr\u00f6m"} {
		hits, err := s.KeywordSearch(ctx, q, 10)
		if err != nil || !slices.Equal(hitIDs(hits), []string{decomposed.ID}) {
			t.Errorf("KeywordSearch(%+q) = %v, %v; want %s", q, hitIDs(hits), err, decomposed.ID)
		}
	}
}

// A role that may create tables in its schema but not extensions in the database (neither a
// superuser nor the database's owner, as hosted PostgreSQL services give) cannot create
// unaccent, which migration 00013 needs: Migrate says so, naming the extension and what to ask
// the database's owner or an administrator to run, and not a table privilege the role has. Once
// an administrator has created it — in a schema of its own, off the role's search_path, as some
// hosted services do — the role migrates, and keyword search folds accents.
func TestMigrateWithoutUnaccentSaysWhatToAsk(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	role, _, as := testRole(t)
	db := freshDatabase(t, "paperpipe_no_unaccent")
	admin := open(t, db) // creates the vector extension, as an administrator would
	if _, err := admin.Pool().Exec(ctx, "GRANT CREATE ON SCHEMA public TO "+role); err != nil {
		t.Fatal(err)
	}
	app := open(t, as(db))
	err := app.Migrate(ctx)
	if err == nil {
		t.Fatal("Migrate by a role that may not create the unaccent extension succeeded")
	}
	t.Logf("refused: %v", err)
	name := strings.TrimPrefix(db[strings.LastIndex(db, "/"):], "/")
	name, _, _ = strings.Cut(name, "?")
	for _, want := range []string{"unaccent", "CREATE EXTENSION unaccent", name} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Migrate without unaccent: %v\nwant it to say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "GRANT CREATE ON SCHEMA") {
		t.Errorf("Migrate without unaccent: %v\nwant no advice on a schema privilege the role has", err)
	}
	if _, err := admin.Pool().Exec(ctx, "CREATE SCHEMA extensions; CREATE EXTENSION unaccent SCHEMA extensions; GRANT USAGE ON SCHEMA extensions TO "+role); err != nil {
		t.Fatal(err)
	}
	if err := app.Migrate(ctx); err != nil {
		t.Fatalf("Migrate once unaccent exists: %v", err)
	}
	upsert(t, app, []paper.Abstract{topic(1, "Nyström features", "Kernel approximation.")}, store.Work{})
	if hits, err := app.KeywordSearch(ctx, "nystrom", 5); err != nil || len(hits) != 1 {
		t.Errorf("KeywordSearch(nystrom) = %v, %v; want the paper", hitIDs(hits), err)
	}
}

package store_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

// TestMetadataCorrectionRewritesNoIndex: a paper ingested again with corrected metadata (its
// authors, here) and the same text is updated in place, a HOT update that writes no index entry,
// when its page has room (migration 00010 leaves it). Its row's updated_at, which is indexed,
// moved to the time of the correction, so that every such update wrote an entry into each of the
// five indexes of papers (both GIN indexes among them): none was HOT.
func TestMetadataCorrectionRewritesNoIndex(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	at := time.Now().Add(-time.Hour)
	var papers []paper.Abstract
	for i := range 60 { // ~1.7 KB rows: three to a page at fillfactor 65, room for one more version
		papers = append(papers, paper.Abstract{ID: fmt.Sprintf("arxiv:2401.%05d", i+1), Title: fmt.Sprintf("Paper %d", i+1),
			Abstract: strings.Repeat(fmt.Sprintf("We study problem number %d and report results on it. ", i+1), 24),
			Authors:  []string{"A. Author"}, TextAt: at})
	}
	upsert(t, s, papers, store.Work{})
	// One paper per page, so that each new version finds the room its page kept.
	rows, err := s.Pool().Query(ctx, `SELECT DISTINCT ON (split_part(ctid::text, ',', 1)) id FROM papers
		ORDER BY split_part(ctid::text, ',', 1), id`)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	var fixed []paper.Abstract
	for _, p := range papers {
		for _, id := range ids {
			if p.ID == id {
				p.Authors = []string{"A. Author", "B. Coauthor"}
				fixed = append(fixed, p)
			}
		}
	}
	for _, p := range upsert(t, s, fixed, store.Work{}) {
		if p.Changed {
			t.Fatalf("%s with new authors reported changed", p.ID)
		}
	}
	// The statistics come from the session that wrote, within seconds.
	var upd, hot int64
	for deadline := time.Now().Add(time.Minute); ; {
		if err := s.Pool().QueryRow(ctx, `SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables
			WHERE schemaname = current_schema() AND relname = 'papers'`).Scan(&upd, &hot); err != nil {
			t.Fatal(err)
		}
		if upd >= int64(len(fixed)) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if upd != int64(len(fixed)) {
		t.Fatalf("papers shows %d updates after %d corrections", upd, len(fixed))
	}
	if hot != upd {
		t.Errorf("%d of %d metadata corrections were HOT updates; want all: each other one wrote an entry into every index of papers", hot, upd)
	}
	var authors []string
	if err := s.Pool().QueryRow(ctx, "SELECT authors FROM papers WHERE id = $1", fixed[0].ID).Scan(&authors); err != nil || len(authors) != 2 {
		t.Errorf("%s's authors after the correction: %v, %v", fixed[0].ID, authors, err)
	}
}

// Package webstore adapts the store and the queue to the web package's interfaces. It is the
// one adapter `paperpipe serve` and `up` run and the web package's tests serve through, so
// those tests exercise the code users run rather than a copy of it.
package webstore

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/store"
	"github.com/paperpipe/paperpipe/web"
)

// Store adapts *store.Store to web.Store.
type Store struct{ *store.Store }

// KeywordSearch is store.KeywordSearchRanked with the web package's Ranking.
func (s Store) KeywordSearch(ctx context.Context, q string, k int) ([]paper.Hit, web.Ranking, error) {
	hits, rk, err := s.KeywordSearchRanked(ctx, q, k)
	return hits, web.Ranking(rk), err
}

// HybridSearch is store.HybridSearchRanked with the web package's Ranking.
func (s Store) HybridSearch(ctx context.Context, spaceID int64, q string, vec []float32, k int) ([]paper.Hit, web.Ranking, error) {
	hits, rk, err := s.HybridSearchRanked(ctx, spaceID, q, vec, k)
	return hits, web.Ranking(rk), err
}

// ListPapers pages through the archive newest first; a cursor this server did not make is
// invalid input (paper.ErrInvalid), not a server error.
func (s Store) ListPapers(ctx context.Context, q web.ListQuery) (web.Page, error) {
	var cur *store.Cursor
	if q.Cursor != "" {
		c, err := store.DecodeCursor(q.Cursor)
		if err != nil {
			return web.Page{}, fmt.Errorf("cursor %.40q was not made by this server: %w", q.Cursor, paper.ErrInvalid)
		}
		cur = c
	}
	recs, next, err := s.ListFiltered(ctx, store.ListFilter{Since: q.Since, Category: q.Category, Text: q.Text}, q.Limit, cur)
	if err != nil {
		return web.Page{}, err
	}
	p := web.Page{Papers: recs}
	if next != nil {
		p.Next = next.Encode()
	}
	return p, nil
}

// ArchiveMap returns up to limit papers' vectors of a space for the archive map, with the
// space's total.
func (s Store) ArchiveMap(ctx context.Context, spaceID int64, limit int) ([]web.MapPoint, int, error) {
	pts, total, err := s.MapPoints(ctx, spaceID, limit)
	out := make([]web.MapPoint, len(pts))
	for i, p := range pts {
		out[i] = web.MapPoint{ID: p.ID, Title: p.Title, Categories: p.Categories, Vector: p.Vector}
	}
	return out, total, err
}

// Publisher queues posted papers on papers.new, like `paperpipe ingest`.
type Publisher struct{ JS jetstream.JetStream }

// Publish returns the ids the server acknowledged, with an error those acknowledged before it
// (web.Publisher): a request whose publishing failed part way reports the papers that were
// taken as accepted, and only the others as to be sent again. A paper too large for the queue
// is refused with the sizes (as `paperpipe ingest` rejects it), and the others go on.
func (p Publisher) Publish(ctx context.Context, papers []paper.Abstract) ([]string, map[int]error, error) {
	return pipeline.PublishAll(ctx, p.JS, pipeline.SubjectNew, 256, papers)
}

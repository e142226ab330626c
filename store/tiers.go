package store

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// tierFactors are the sizes of the windows a search by date looks for its matches in, newest
// first, in units of the matches it needs (tierUnit): the 4, 16 and 64 × unit newest papers,
// then every older paper (see tieredMatches).
var tierFactors = []int64{4, 16, 64}

// tierEdgesTTL is how long a Store uses the edges of its windows before it looks them up again.
// Any edges are correct (the windows are disjoint and cover the archive whatever they are);
// stale ones only make the newest window hold the papers added since, a minute of them.
const tierEdgesTTL = time.Minute

// tierEdges is the created_at of the 4, 16 and 64 × unit-th newest paper (tierFactors), as
// many of them as the archive holds, newest first; looked up at at.
type tierEdges struct {
	at    time.Time
	edges []time.Time
}

// tierCache holds a Store's window edges by unit (see tierEdges).
type tierCache struct {
	mu         sync.Mutex
	byUnit     map[int64]tierEdges
	refreshing map[int64]bool
	// now is time.Now; tests move it.
	now func() time.Time
	// always: full-text rankings use the windows whatever the plan (walksByDate); for tests.
	always bool
}

// tierEdgesSQL returns the created_at of the $1-th, $2-th and $3-th newest papers (by
// papers_created_at_id, the order of every search by date), those the archive holds: one walk
// of the index's newest $3 entries, once a minute (tierEdgesTTL), not per query.
const tierEdgesSQL = `SELECT created_at FROM (
	SELECT created_at, row_number() OVER () AS n FROM (
		SELECT created_at FROM papers ORDER BY created_at DESC, id DESC LIMIT $3
	) newest
) numbered WHERE n = $1 OR n = $2 OR n = $3 ORDER BY n`

// lookupTierEdges reads the edges of the windows of unit from the database.
func (s *Store) lookupTierEdges(ctx context.Context, unit int64) ([]time.Time, error) {
	args := make([]any, len(tierFactors))
	for i, f := range tierFactors {
		args[i] = f * unit
	}
	rows, err := s.pool.Query(ctx, tierEdgesSQL, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[time.Time])
}

// tierEdgesFor returns the edges of the windows of unit (see tierEdges): the cached ones while
// they are younger than tierEdgesTTL. Older ones are still returned (any edges are correct)
// while one lookup at a time refreshes them in the background; only a Store that has none yet
// looks them up before it answers.
func (s *Store) tierEdgesFor(ctx context.Context, unit int64) ([]time.Time, error) {
	c := &s.tiers
	c.mu.Lock()
	now := time.Now
	if c.now != nil {
		now = c.now
	}
	e, ok := c.byUnit[unit]
	if ok && now().Sub(e.at) < tierEdgesTTL {
		c.mu.Unlock()
		return e.edges, nil
	}
	if ok {
		if !c.refreshing[unit] {
			if c.refreshing == nil {
				c.refreshing = map[int64]bool{}
			}
			c.refreshing[unit] = true
			go s.refreshTierEdges(unit, now)
		}
		c.mu.Unlock()
		return e.edges, nil
	}
	c.mu.Unlock()
	edges, err := s.lookupTierEdges(ctx, unit)
	if err != nil {
		return nil, err
	}
	s.storeTierEdges(unit, tierEdges{at: now(), edges: edges})
	return edges, nil
}

// refreshTierEdges looks up the edges of unit again and caches them; on failure the old ones
// stay, and the next query after tierEdgesTTL tries again.
func (s *Store) refreshTierEdges(unit int64, now func() time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	at := now()
	edges, err := s.lookupTierEdges(ctx, unit)
	if err != nil {
		// Nothing else writes unit's edges while this refresh runs (c.refreshing).
		s.tiers.mu.Lock()
		edges = s.tiers.byUnit[unit].edges
		s.tiers.mu.Unlock()
	}
	s.storeTierEdges(unit, tierEdges{at: at, edges: edges})
}

func (s *Store) storeTierEdges(unit int64, e tierEdges) {
	c := &s.tiers
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byUnit == nil {
		c.byUnit = map[int64]tierEdges{}
	}
	c.byUnit[unit] = e
	delete(c.refreshing, unit)
}

package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/paperpipe/paperpipe/paper"
)

// MaxDimensions is the largest embedding dimension a space may have: pgvector 0.8's limit for a
// vector column. Spaces of up to 2,000 dimensions get an HNSW index on vector, up to 4,000 on
// halfvec; larger ones are searched exactly, without an index.
const MaxDimensions = 16000

const (
	maxVectorIndexDims  = 2000
	maxHalfvecIndexDims = 4000
	indexNamePrefix     = "embeddings_hnsw_s"
	defaultEfSearch     = 100
	// maxK is hnsw.ef_search's upper bound: more results could not come from the index.
	maxK = 1000

	lockSpacesStatement  = "LOCK TABLE embedding_spaces IN SHARE ROW EXCLUSIVE MODE"
	spaceColumns         = "id, model, dimensions, template, active"
	activeSpaceCondition = "SELECT id FROM embedding_spaces WHERE active"
)

// SpaceInfo is an embedding space with its coverage, as `paperpipe spaces` shows it.
type SpaceInfo struct {
	paper.Space
	// Embedded counts papers with an embedding in this space made from their current text.
	Embedded int64
	// Papers counts all papers: the coverage Embedded is measured against.
	Papers int64
	// IndexName is the space's HNSW index, or "" when it has none (more than 4,000 dimensions,
	// or not built yet).
	IndexName string
	CreatedAt time.Time
}

// vectorSQL is how one space's vectors appear in SQL: the indexed expression, the cast of a
// query vector parameter that matches it, and the operator class of its index.
type vectorSQL struct {
	expr      string // e.g. (embedding::vector(768))
	param     string // e.g. $1::vector(768)
	opclass   string // e.g. vector_cosine_ops; "" when the dimension cannot be indexed
	indexName string
}

// vectorSQLFor returns the SQL fragments of space id with dims dimensions; param is the query
// vector's placeholder ("$1"). Both numbers come from the database, never from user input.
func vectorSQLFor(id int64, dims int, param string) vectorSQL {
	d := itoa(int64(dims))
	v := vectorSQL{indexName: indexNamePrefix + itoa(id)}
	switch {
	case dims <= maxVectorIndexDims:
		v.expr = "(embedding::vector(" + d + "))"
		v.param = param + "::vector(" + d + ")"
		v.opclass = "vector_cosine_ops"
	case dims <= maxHalfvecIndexDims:
		v.expr = "(embedding::halfvec(" + d + "))"
		v.param = param + "::vector(" + d + ")::halfvec(" + d + ")"
		v.opclass = "halfvec_cosine_ops"
	default:
		v.expr = "(embedding::vector(" + d + "))"
		v.param = param + "::vector(" + d + ")"
	}
	return v
}

func validateSpace(sp paper.Space) error {
	switch {
	case strings.TrimSpace(sp.Model) == "":
		return fmt.Errorf("embedding space: empty model: %w", paper.ErrInvalid)
	case strings.TrimSpace(sp.Template) == "":
		return fmt.Errorf("embedding space %s: empty template: %w", sp.Name(), paper.ErrInvalid)
	case sp.Dimensions < 1 || sp.Dimensions > MaxDimensions:
		return fmt.Errorf("embedding space %s: %d dimensions, want 1 to %d: %w",
			sp.Name(), sp.Dimensions, MaxDimensions, paper.ErrInvalid)
	}
	return nil
}

// EnsureSpace returns the embedding space of sp's model, dimensions and template, creating it
// and its HNSW index when it does not exist yet. When no space is active, the space is
// activated. The result carries the space's ID and whether it is active. sp's ID and Active are
// ignored.
//
// The index is created with a plain CREATE INDEX inside the transaction, which blocks writes to
// embeddings while it is built; for a new space that is one scan of the table, since no rows
// belong to it yet.
func (s *Store) EnsureSpace(ctx context.Context, sp paper.Space) (paper.Space, error) {
	out, _, err := s.ensureSpace(ctx, sp, true)
	return out, err
}

// EnsureSpaceForLoad is EnsureSpace for a bulk fill: a space it creates gets no HNSW index, so
// that loading it does not update a live index row by row; build the index once the space is
// filled with BuildSpaceIndex. created reports whether the space is new. An existing space is
// returned as it is, with or without its index. Like EnsureSpace, it activates the space only
// when no space is active.
func (s *Store) EnsureSpaceForLoad(ctx context.Context, sp paper.Space) (out paper.Space, created bool, err error) {
	return s.ensureSpace(ctx, sp, false)
}

// IndexSettings are the session settings BuildSpaceIndex builds an index with.
type IndexSettings struct {
	// MaintenanceWorkMem is maintenance_work_mem: an HNSW build that fits in it is much faster.
	// Defaults to "1GB".
	MaintenanceWorkMem string
	// ParallelWorkers is max_parallel_maintenance_workers. Defaults to 2.
	ParallelWorkers int
}

// BuildSpaceIndex builds space id's HNSW index if it does not exist yet (after a bulk load),
// on one connection whose maintenance_work_mem and max_parallel_maintenance_workers are set
// from cfg for the build and reset after it. It reports whether it built the index; a space of
// more than 4,000 dimensions has none to build.
func (s *Store) BuildSpaceIndex(ctx context.Context, id int64, cfg IndexSettings) (bool, error) {
	if cfg.MaintenanceWorkMem == "" {
		cfg.MaintenanceWorkMem = "1GB"
	}
	if cfg.ParallelWorkers <= 0 {
		cfg.ParallelWorkers = 2
	}
	sp, err := s.space(ctx, id)
	if err != nil {
		return false, fmt.Errorf("build index: %w", err)
	}
	v := vectorSQLFor(sp.ID, sp.Dimensions, "$1")
	if v.opclass == "" {
		return false, nil
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return false, fmt.Errorf("build index of space %s: %w", sp.Name(), err)
	}
	defer conn.Release()
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", v.indexName).Scan(&exists); err != nil {
		return false, fmt.Errorf("look up index %s: %w", v.indexName, err)
	}
	if exists {
		return false, nil
	}
	// set_config(…, false) lasts for the session; the deferred RESET returns the pooled
	// connection to the server's defaults.
	if _, err := conn.Exec(ctx, `SELECT set_config('maintenance_work_mem', $1, false),
			set_config('max_parallel_maintenance_workers', $2, false)`,
		cfg.MaintenanceWorkMem, strconv.Itoa(cfg.ParallelWorkers)); err != nil {
		return false, fmt.Errorf("build index of space %s: settings: %w", sp.Name(), err)
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), "RESET maintenance_work_mem; RESET max_parallel_maintenance_workers")
	}()
	start := time.Now()
	q := "CREATE INDEX IF NOT EXISTS " + v.indexName + " ON embeddings USING hnsw (" + v.expr + " " + v.opclass +
		") WHERE space_id = " + itoa(sp.ID)
	if _, err := conn.Exec(ctx, q); err != nil {
		return false, fmt.Errorf("build index %s of space %s: %w", v.indexName, sp.Name(), err)
	}
	s.log.InfoContext(ctx, "built embedding space index", "space", sp.Name(), "index", v.indexName,
		"duration", time.Since(start).Round(time.Millisecond))
	return true, nil
}

// ensureSpace is EnsureSpace; withIndex false leaves a new space without its index.
func (s *Store) ensureSpace(ctx context.Context, sp paper.Space, withIndex bool) (paper.Space, bool, error) {
	if err := validateSpace(sp); err != nil {
		return paper.Space{}, false, err
	}
	var (
		out     paper.Space
		created bool
	)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockSpacesStatement); err != nil {
			return fmt.Errorf("lock embedding spaces: %w", err)
		}
		tag, err := tx.Exec(ctx, `INSERT INTO embedding_spaces (model, dimensions, template) VALUES ($1, $2, $3)
			ON CONFLICT (model, dimensions, template) DO NOTHING`, sp.Model, sp.Dimensions, sp.Template)
		if err != nil {
			return fmt.Errorf("insert: %w", err)
		}
		created = tag.RowsAffected() == 1
		err = tx.QueryRow(ctx, `SELECT `+spaceColumns+` FROM embedding_spaces
			WHERE model = $1 AND dimensions = $2 AND template = $3`, sp.Model, sp.Dimensions, sp.Template).
			Scan(&out.ID, &out.Model, &out.Dimensions, &out.Template, &out.Active)
		if err != nil {
			return fmt.Errorf("read back: %w", err)
		}
		v := vectorSQLFor(out.ID, out.Dimensions, "$1")
		switch {
		case !withIndex && created:
			s.log.InfoContext(ctx, "created embedding space without its index, for a bulk load", "space", out.Name())
		case !withIndex:
			// An existing space keeps what it has; BuildSpaceIndex adds a missing index.
		case v.opclass != "":
			var exists bool
			if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", v.indexName).Scan(&exists); err != nil {
				return fmt.Errorf("look up index %s: %w", v.indexName, err)
			}
			if !exists {
				q := "CREATE INDEX " + v.indexName + " ON embeddings USING hnsw (" + v.expr + " " + v.opclass +
					") WHERE space_id = " + itoa(out.ID)
				if _, err := tx.Exec(ctx, q); err != nil {
					return fmt.Errorf("create index %s: %w", v.indexName, err)
				}
				s.log.InfoContext(ctx, "created embedding space index", "space", out.Name(), "index", v.indexName)
			}
		default:
			s.log.WarnContext(ctx, "embedding space has too many dimensions for an HNSW index; its queries scan every vector",
				"space", out.Name(), "max_indexed_dimensions", maxHalfvecIndexDims)
		}
		if !out.Active {
			tag, err := tx.Exec(ctx, `UPDATE embedding_spaces SET active = true
				WHERE id = $1 AND NOT EXISTS (`+activeSpaceCondition+`)`, out.ID)
			if err != nil {
				return fmt.Errorf("activate: %w", err)
			}
			out.Active = tag.RowsAffected() == 1
		}
		return nil
	})
	if err != nil {
		return paper.Space{}, false, fmt.Errorf("ensure embedding space %s: %w", sp.Name(), err)
	}
	s.cacheSpace(out)
	return out, created, nil
}

// Spaces lists every embedding space, oldest first, with its coverage.
func (s *Store) Spaces(ctx context.Context) ([]SpaceInfo, error) {
	rows, err := s.pool.Query(ctx, `SELECT s.id, s.model, s.dimensions, s.template, s.active, s.created_at,
			(SELECT count(*) FROM embeddings e JOIN papers p ON p.id = e.paper_id AND p.content_hash = e.content_hash
				WHERE e.space_id = s.id),
			(SELECT count(*) FROM papers),
			coalesce(to_regclass('`+indexNamePrefix+`' || s.id)::text, '')
		FROM embedding_spaces s ORDER BY s.id`)
	if err != nil {
		return nil, fmt.Errorf("list embedding spaces: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SpaceInfo, error) {
		var si SpaceInfo
		err := r.Scan(&si.ID, &si.Model, &si.Dimensions, &si.Template, &si.Active, &si.CreatedAt,
			&si.Embedded, &si.Papers, &si.IndexName)
		return si, err
	})
	if err != nil {
		return nil, fmt.Errorf("list embedding spaces: %w", err)
	}
	return out, nil
}

// ActiveSpace returns the space queries use by default; paper.ErrNotFound when none is active.
func (s *Store) ActiveSpace(ctx context.Context) (paper.Space, error) {
	var sp paper.Space
	err := s.pool.QueryRow(ctx, `SELECT `+spaceColumns+` FROM embedding_spaces WHERE active`).
		Scan(&sp.ID, &sp.Model, &sp.Dimensions, &sp.Template, &sp.Active)
	if err != nil {
		return paper.Space{}, notFound(err, "active embedding space")
	}
	s.cacheSpace(sp)
	return sp, nil
}

// Activate makes space id the active one, in one transaction: queries switch from the old
// space to the new one at commit, never seeing none or two.
func (s *Store) Activate(ctx context.Context, id int64) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockSpacesStatement); err != nil {
			return fmt.Errorf("lock embedding spaces: %w", err)
		}
		var one int
		if err := tx.QueryRow(ctx, "SELECT 1 FROM embedding_spaces WHERE id = $1", id).Scan(&one); err != nil {
			return notFound(err, "look up")
		}
		// Unset first: the partial unique index allows one active row at every moment.
		if _, err := tx.Exec(ctx, "UPDATE embedding_spaces SET active = false WHERE active AND id <> $1", id); err != nil {
			return fmt.Errorf("deactivate the old space: %w", err)
		}
		if _, err := tx.Exec(ctx, "UPDATE embedding_spaces SET active = true WHERE id = $1 AND NOT active", id); err != nil {
			return fmt.Errorf("activate: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("activate embedding space %d: %w", id, err)
	}
	return nil
}

// DropSpace deletes space id with its vectors and its index. It refuses the active space, with
// an error wrapping paper.ErrInvalid: activate another one first.
func (s *Store) DropSpace(ctx context.Context, id int64) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockSpacesStatement); err != nil {
			return fmt.Errorf("lock embedding spaces: %w", err)
		}
		var sp paper.Space
		err := tx.QueryRow(ctx, `SELECT `+spaceColumns+` FROM embedding_spaces WHERE id = $1`, id).
			Scan(&sp.ID, &sp.Model, &sp.Dimensions, &sp.Template, &sp.Active)
		if err != nil {
			return notFound(err, "look up")
		}
		if sp.Active {
			return fmt.Errorf("%s is the active space; activate another space before dropping it: %w",
				sp.Name(), paper.ErrInvalid)
		}
		if _, err := tx.Exec(ctx, "DROP INDEX IF EXISTS "+indexNamePrefix+itoa(sp.ID)); err != nil {
			return fmt.Errorf("drop index: %w", err)
		}
		if _, err := tx.Exec(ctx, "DELETE FROM embeddings WHERE space_id = $1", sp.ID); err != nil {
			return fmt.Errorf("delete vectors: %w", err)
		}
		if _, err := tx.Exec(ctx, "DELETE FROM embedding_spaces WHERE id = $1", sp.ID); err != nil {
			return fmt.Errorf("delete space: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("drop embedding space %d: %w", id, err)
	}
	s.spacesMu.Lock()
	delete(s.spaces, id)
	s.spacesMu.Unlock()
	return nil
}

// space returns space id's identity, from the cache when it has been seen before.
func (s *Store) space(ctx context.Context, id int64) (paper.Space, error) {
	s.spacesMu.RLock()
	sp, ok := s.spaces[id]
	s.spacesMu.RUnlock()
	if ok {
		return sp, nil
	}
	err := s.pool.QueryRow(ctx, `SELECT `+spaceColumns+` FROM embedding_spaces WHERE id = $1`, id).
		Scan(&sp.ID, &sp.Model, &sp.Dimensions, &sp.Template, &sp.Active)
	if err != nil {
		return paper.Space{}, notFound(err, "embedding space %d", id)
	}
	s.cacheSpace(sp)
	return sp, nil
}

// cacheSpace remembers sp's identity. Active is not cached: it changes.
func (s *Store) cacheSpace(sp paper.Space) {
	sp.Active = false
	s.spacesMu.Lock()
	s.spaces[sp.ID] = sp
	s.spacesMu.Unlock()
}

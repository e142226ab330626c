package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/paperpipe/paperpipe/paper"
)

// MaxHalfvecValue is the largest magnitude a vector's value may have in a space indexed on
// halfvec (HalfvecIndexed): the largest finite half-precision number. The store refuses a
// larger one there as paper.ErrInvalid, and LoadEmbeddings refuses the whole batch for it, so
// a bulk loader checks each vector first.
const MaxHalfvecValue = maxHalf

// HalfvecIndexed reports whether a space of dims dimensions indexed as kind has its index and
// queries on half-precision copies of its vectors (hnsw-halfvec up to 4,000 dimensions, hnsw
// above 2,000), where a value beyond ±MaxHalfvecValue cannot be stored.
func HalfvecIndexed(kind IndexKind, dims int) bool {
	return vectorSQLFor(spaceRow{Space: paper.Space{Dimensions: dims}, index: kind}, "$1").opclass == "halfvec_cosine_ops"
}

// VectorIndex is the index kind of the spaces this store creates (Config.VectorIndex); a space
// that exists keeps its own (SpaceInfo.Index).
func (s *Store) VectorIndex() IndexKind { return s.index }

// DropEmptySpace drops space id if it holds no vector and has no index, active or not, and
// reports whether it did: for a bulk load that created the space (EnsureSpaceForLoad, which
// activates it when no space is active) and then stored nothing, which would otherwise leave an
// empty space behind — the active one, answering every query with nothing, when none was. The
// space's row is locked first, so no vector can be stored into it meanwhile. A space a
// `paperpipe reprocess` is filling (it holds the LockRun of SpaceRunKey) is kept.
func (s *Store) DropEmptySpace(ctx context.Context, id int64) (bool, error) {
	dropped := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := s.lockSpaces(ctx, tx); err != nil {
			return fmt.Errorf("lock embedding spaces: %w", err)
		}
		// An embedding's foreign key check takes a share lock on this row: none is stored
		// into the space until this transaction ends, and then the space is gone. The row is
		// locked first and looked at by the next statement, whose snapshot is taken after the
		// lock: one taken before a wait for a loader's uncommitted vectors would not see them
		// once committed, and the DELETE would cascade them away.
		var locked int64
		if err := tx.QueryRow(ctx, `SELECT id FROM embedding_spaces WHERE id = $1 FOR UPDATE`, id).Scan(&locked); err != nil {
			return notFound(err, "lock")
		}
		// A `reprocess` that found the space (created by this load, for the same model) and is
		// filling it holds its run lock: the space is its now. Held to the end of this
		// transaction, the lock keeps a run from starting on the space before it is gone (the
		// run then finds it dropped, and says so).
		if free, err := spaceRunFree(ctx, tx, id); err != nil || !free {
			return err
		}
		var empty bool
		err := tx.QueryRow(ctx, `SELECT NOT EXISTS (SELECT 1 FROM embeddings WHERE space_id = $1)
				AND `+ownIndexSQL("$2::text")+` IS NULL AND `+ownIndexSQL("$2::text || '_new'")+` IS NULL`, id, indexNamePrefix+itoa(id)).Scan(&empty)
		if err != nil {
			return fmt.Errorf("look at the space: %w", err)
		}
		if !empty {
			return nil
		}
		// Open batch jobs of the space keep it (their records reference it).
		tag, err := tx.Exec(ctx, `DELETE FROM embedding_spaces WHERE id = $1
			AND NOT EXISTS (SELECT 1 FROM batch_jobs WHERE space_id = $1)`, id)
		if err != nil {
			return fmt.Errorf("delete space: %w", err)
		}
		dropped = tag.RowsAffected() == 1
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("drop empty embedding space %d: %w", id, err)
	}
	if dropped {
		s.spacesMu.Lock()
		delete(s.spaces, id)
		s.spacesMu.Unlock()
	}
	return dropped, nil
}

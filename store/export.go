package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/pgvector/pgvector-go"

	"github.com/paperpipe/paperpipe/paper"
)

// ExportSelection chooses the papers Export reads and what it reads with them. The zero value
// reads every paper, without TL;DR or vector.
type ExportSelection struct {
	// TLDR is the model and prompt version whose TL;DR of its current text goes with each paper
	// (none when the paper has none). Defaults to a zero TLDRKeep: no TL;DR.
	TLDR TLDRKeep
	// SpaceID is the space whose vector of its current text goes with each paper (none when the
	// paper has none). Defaults to 0: no vector.
	SpaceID int64
	// Since keeps papers stored, or whose text changed, at or after this time (their
	// updated_at, as Selection.Since: not a change of metadata alone, and dated when its write
	// began, which commits later). Defaults to the zero time: every paper.
	Since time.Time
	// Category keeps papers with this category among theirs, compared exactly ("cs.LG") once
	// folded as ingest stores a category (foldCategory).
	// Defaults to "": any.
	Category string
	// IDs keeps only these (canonical) papers. Defaults to nil: every paper.
	IDs []string
}

// ExportedPaper is one paper as Export reads it.
type ExportedPaper struct {
	paper.Abstract
	ContentHash string
	// CreatedAt is when the paper was first stored, UpdatedAt when its text (title, abstract)
	// was last written: a correction of its metadata alone does not date it (see
	// Selection.Since).
	CreatedAt, UpdatedAt time.Time
	// TLDR is the paper's TL;DR of ExportSelection.TLDR for its current text, WrittenAt when it
	// was written; nil when none.
	TLDR *paper.Summary
	// Embedding is the paper's vector in ExportSelection.SpaceID of its current text; nil
	// when none.
	Embedding *paper.Embedding
	// Withheld is the record of the API withholding the paper's TL;DR of ExportSelection.TLDR
	// for its current text (RecordWithheld), when it has no such TL;DR; nil when none. An
	// archive imported elsewhere keeps it, or its first run buys every such refusal again.
	Withheld *paper.Withheld
}

// Export reads the papers sel selects, in id order, and calls each with every one; counted,
// when not nil, is called first with how many there are. Every statement runs in one
// REPEATABLE READ, READ ONLY transaction: the count and the papers are one snapshot of the
// archive, which writers that commit meanwhile neither wait for nor change (they are not seen
// half way: a paper, its TL;DR and its vector as they were at the start). The papers are one
// query, read as each returns: memory stays constant whatever the size of the archive, and a
// consumer that is slow (a pipe to another program) never leaves the transaction idle, which
// the server ends after IdleInTransactionTimeout — the query is running, waiting for the
// client to read on — but at its end: the server, done once the last rows are in the sockets'
// buffers (about 3 MB: the last thousand papers with 768-dimension vectors, on loopback), waits
// idle for the commit, and may end the session before a slow consumer reaches it. Every paper
// was read by then: that commit's failure is no error. The snapshot is held until the last paper is read: VACUUM leaves the rows
// changed meanwhile, and an index build CONCURRENTLY waits for the export to end. An error
// from each stops the read and is returned as it is.
func (s *Store) Export(ctx context.Context, sel ExportSelection, counted func(int64), each func(ExportedPaper) error) (err error) {
	var eachErr error // each's, returned as it is
	defer func() {
		if eachErr == nil {
			err = unavailable(ctx, err)
		}
	}()
	for _, v := range []string{sel.Category, sel.TLDR.Model, sel.TLDR.PromptVersion} {
		if err := validText(v); err != nil {
			return fmt.Errorf("export papers: %w", err)
		}
	}
	sel.Category = foldCategory(sel.Category)
	if sel.IDs != nil && len(sel.IDs) == 0 {
		if counted != nil {
			counted(0)
		}
		return nil
	}
	var sp spaceRow
	if sel.SpaceID != 0 {
		if sp, err = s.space(ctx, sel.SpaceID); err != nil {
			return fmt.Errorf("export papers: %w", err)
		}
	}
	where, whereArgs := exportWhere(sel, 4)
	args := append([]any{sel.TLDR.Model, sel.TLDR.PromptVersion, sel.SpaceID}, whereArgs...)
	countWhere, countArgs := exportWhere(sel, 1)
	// The TL;DR and the vector are looked up by their keys, paper by paper, in the papers' id
	// order: the rows stream from the first on, with no sort of the whole archive first.
	q := `SELECT p.id, p.title, p.abstract, p.authors, p.categories, p.published, coalesce(p.url, ''),
			coalesce(p.source, ''), p.content_hash, p.created_at, p.updated_at,
			t.tldr, t.validation, t.created_at, e.embedding, e.truncated, w.reason, w.withheld_at
		FROM papers p
		LEFT JOIN LATERAL (SELECT t.tldr, t.validation, t.created_at FROM tldrs t WHERE t.paper_id = p.id AND t.model = $1
			AND t.prompt_version = $2 AND t.content_hash = p.content_hash) t ON true
		LEFT JOIN LATERAL (SELECT w.reason, w.withheld_at FROM withheld_tldrs w WHERE w.paper_id = p.id AND w.model = $1
			AND w.prompt_version = $2 AND w.content_hash = p.content_hash AND t.tldr IS NULL) w ON true
		LEFT JOIN LATERAL (SELECT e.embedding, e.truncated FROM embeddings e WHERE e.space_id = $3
			AND e.paper_id = p.id AND e.content_hash = p.content_hash) e ON true` + where + `
		ORDER BY p.id`
	// A failure of each (a full disk, a closed pipe) cancels the query rather than reading
	// the rest of the archive to close it: every statement runs under qctx (rows.Close reads
	// a query's remaining rows unless the context the query was sent with ends).
	qctx, cancel := context.WithCancel(ctx)
	defer cancel()
	read := false // every paper read, each called with it
	err = pgx.BeginTxFunc(qctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		// The query runs until the consumer has read the last paper: as long as the archive is
		// big and the consumer slow, past any statement_timeout set for the role's requests.
		if _, err := tx.Exec(qctx, "SET LOCAL statement_timeout = 0"); err != nil {
			return err
		}
		if sel.SpaceID != 0 {
			// The space as the snapshot has it: dropped since it was named, it has no vectors.
			if _, err := spaceByID(qctx, tx, sel.SpaceID); err != nil {
				return notFound(err, "embedding space %d", sel.SpaceID)
			}
		}
		if counted != nil {
			var n int64
			if err := tx.QueryRow(qctx, `SELECT count(*) FROM papers p`+countWhere, countArgs...).Scan(&n); err != nil {
				return err
			}
			counted(n)
		}
		rows, err := tx.Query(qctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				p                ExportedPaper
				published        pgtype.Timestamptz
				tldr, validation *string
				tldrAt           *time.Time
				vec              *pgvector.Vector
				truncated        *bool
				withheld         *string
				withheldAt       *time.Time
			)
			if err := rows.Scan(&p.ID, &p.Title, &p.Abstract.Abstract, &p.Authors, &p.Categories, &published, &p.URL,
				&p.Source, &p.ContentHash, &p.CreatedAt, &p.UpdatedAt, &tldr, &validation, &tldrAt, &vec, &truncated,
				&withheld, &withheldAt); err != nil {
				return err
			}
			if withheld != nil {
				p.Withheld = &paper.Withheld{PaperID: p.ID, Model: sel.TLDR.Model, PromptVersion: sel.TLDR.PromptVersion,
					ContentHash: p.ContentHash, Reason: *withheld, At: *withheldAt}
			}
			if published.Valid {
				p.Published = published.Time
			}
			if tldr != nil {
				p.TLDR = &paper.Summary{PaperID: p.ID, Text: *tldr, Model: sel.TLDR.Model, PromptVersion: sel.TLDR.PromptVersion,
					ContentHash: p.ContentHash, Validation: *validation, WrittenAt: *tldrAt}
			}
			if vec != nil {
				p.Embedding = &paper.Embedding{PaperID: p.ID, Vector: vec.Slice(), ContentHash: p.ContentHash, Truncated: *truncated}
			}
			if err := each(p); err != nil {
				eachErr = err
				cancel()
				return err
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		read = true
		return nil
	})
	if eachErr != nil {
		return eachErr
	}
	if err != nil && read {
		// Only the commit failed. The server sends the last rows into the sockets' buffers and,
		// the query done, waits idle in the transaction while the caller consumes them: past
		// IdleInTransactionTimeout (a reader slow at the end — a pipe to an upload, an import on
		// another host) it ends the session. The transaction only read, and every paper of its
		// snapshot was read: the export is whole. (The pool drops the ended connection.)
		s.log.DebugContext(ctx, "export: the read-only transaction could not be committed after its last paper", "error", err)
		err = nil
	}
	if err != nil {
		if sel.SpaceID != 0 {
			return fmt.Errorf("export papers with vectors of space %s: %w", sp.Name(), err)
		}
		return fmt.Errorf("export papers: %w", err)
	}
	return nil
}

// exportWhere is the WHERE clause of sel's filters ("" for none), its parameters numbered
// from first, and their values.
func exportWhere(sel ExportSelection, first int) (string, []any) {
	var (
		conds []string
		args  []any
	)
	param := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(first+len(args)-1)
	}
	if !sel.Since.IsZero() {
		conds = append(conds, "p.updated_at >= "+param(sel.Since))
	}
	if sel.Category != "" {
		conds = append(conds, "p.categories @> ARRAY["+param(sel.Category)+"::text]")
	}
	if sel.IDs != nil {
		conds = append(conds, "p.id = ANY("+param(sel.IDs)+"::text[])")
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

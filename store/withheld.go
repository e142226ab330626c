package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/paperpipe/paperpipe/paper"
)

// Withheld is paper.Withheld: a TL;DR the API will not give for a paper's text under a target
// — its content filter withheld the answer (finish_reason content_filter), or the model
// refused (message.refusal) — recorded by the worker and by the Batch API's runner alike.
// StalePapers, CountStale, UpsertPapers and PendingFor leave the TL;DR out of the target's work
// while the paper's text and the target are these: every run bought the same refusal again.
type Withheld = paper.Withheld

// RecordWithheld records ws, each replacing the record of its paper and target, dated At (an
// imported record's time, as the export gives it) or, when At is zero, by the database's time;
// a paper no longer stored is left out. It returns how many were recorded.
func (s *Store) RecordWithheld(ctx context.Context, ws []Withheld) (_ int, err error) {
	defer func() { err = unavailable(ctx, err) }()
	if len(ws) == 0 {
		return 0, nil
	}
	ids, models, prompts, hashes, reasons := make([]string, len(ws)), make([]string, len(ws)),
		make([]string, len(ws)), make([]string, len(ws)), make([]string, len(ws))
	ats := make([]pgtype.Timestamptz, len(ws))
	for i, w := range ws {
		ids[i], models[i], prompts[i], hashes[i], reasons[i] = w.PaperID, w.Model, w.PromptVersion, w.ContentHash, w.Reason
		ats[i] = pgtype.Timestamptz{Time: w.At, Valid: !w.At.IsZero()}
	}
	tag, err := s.pool.Exec(ctx, `
		INSERT INTO withheld_tldrs (paper_id, model, prompt_version, content_hash, reason, withheld_at)
		SELECT DISTINCT ON (i.id, i.model, i.prompt) i.id, i.model, i.prompt, i.hash, i.reason, coalesce(i.at, now())
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[]) AS i(id, model, prompt, hash, reason, at)
		JOIN papers p ON p.id = i.id
		ORDER BY i.id, i.model, i.prompt
		ON CONFLICT (paper_id, model, prompt_version) DO UPDATE
			SET content_hash = excluded.content_hash, reason = excluded.reason, withheld_at = excluded.withheld_at`,
		ids, models, prompts, hashes, reasons, ats)
	if err != nil {
		return 0, fmt.Errorf("record %d withheld TL;DRs: %w", len(ws), err)
	}
	return int(tag.RowsAffected()), nil
}

// WithheldTLDRs returns the withheld TL;DRs recorded (RecordWithheld), oldest first; those of
// the papers ids only when ids is not nil.
func (s *Store) WithheldTLDRs(ctx context.Context, ids []string) (_ []Withheld, err error) {
	defer func() { err = unavailable(ctx, err) }()
	rows, err := s.pool.Query(ctx, `
		SELECT paper_id, model, prompt_version, content_hash, reason, withheld_at FROM withheld_tldrs
		WHERE $1::text[] IS NULL OR paper_id = ANY($1)
		ORDER BY withheld_at, paper_id, model, prompt_version`, ids)
	if err != nil {
		return nil, fmt.Errorf("read the withheld TL;DRs: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Withheld, error) {
		var w Withheld
		err := r.Scan(&w.PaperID, &w.Model, &w.PromptVersion, &w.ContentHash, &w.Reason, &w.At)
		return w, err
	})
	if err != nil {
		return nil, fmt.Errorf("read the withheld TL;DRs: %w", err)
	}
	return out, nil
}

// ClearWithheld deletes the records of withheld TL;DRs of the papers ids (nil: all of them), so
// that the next run asks for those TL;DRs again. It returns how many it deleted.
func (s *Store) ClearWithheld(ctx context.Context, ids []string) (_ int64, err error) {
	defer func() { err = unavailable(ctx, err) }()
	tag, err := s.pool.Exec(ctx, `DELETE FROM withheld_tldrs WHERE $1::text[] IS NULL OR paper_id = ANY($1)`, ids)
	if err != nil {
		return 0, fmt.Errorf("clear the withheld TL;DRs: %w", err)
	}
	return tag.RowsAffected(), nil
}

// ForgetWithheld deletes the records of withheld TL;DRs of papers' texts (each paper's id and
// the hash of the text given) under w's chat model and prompt version, so that they are asked
// for again: a dead letter replayed on purpose (`paperpipe dlq replay`). It returns how many it
// deleted.
func (s *Store) ForgetWithheld(ctx context.Context, papers []paper.Abstract, w paper.Work) (_ int, err error) {
	defer func() { err = unavailable(ctx, err) }()
	if len(papers) == 0 || w.Model == "" {
		return 0, nil
	}
	ids, hashes := make([]string, len(papers)), make([]string, len(papers))
	for i, a := range papers {
		ids[i], hashes[i] = a.ID, a.ContentHash()
	}
	tag, err := s.pool.Exec(ctx, `
		DELETE FROM withheld_tldrs w USING unnest($1::text[], $2::text[]) AS i(id, hash)
		WHERE w.paper_id = i.id AND w.content_hash = i.hash AND w.model = $3 AND w.prompt_version = $4::text`,
		ids, hashes, w.Model, w.PromptVersion)
	if err != nil {
		return 0, fmt.Errorf("forget the withheld TL;DRs of %s: %w", papersN(len(papers)), err)
	}
	return int(tag.RowsAffected()), nil
}

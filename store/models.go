package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/paperpipe/paperpipe/paper"
)

// OfflineModel is a stored archive-fitted offline embedder.
type OfflineModel struct {
	Name       string
	Documents  int
	Terms      int
	Components int
	Dimensions int
	// Data is the serialised model (embed.Load reads it); nil in OfflineModels' listing.
	Data      []byte
	CreatedAt time.Time
}

// SaveOfflineModel stores m; saving a model of a name already stored changes nothing (the
// name is a hash of the content).
func (s *Store) SaveOfflineModel(ctx context.Context, m OfflineModel) error {
	if m.Name == "" || len(m.Data) == 0 {
		return fmt.Errorf("save offline model: empty name or data: %w", paper.ErrInvalid)
	}
	_, err := s.pool.Exec(ctx, `
		INSERT INTO offline_models (name, documents, terms, components, dimensions, data)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (name) DO NOTHING`,
		m.Name, m.Documents, m.Terms, m.Components, m.Dimensions, m.Data)
	if err != nil {
		return fmt.Errorf("save offline model %s: %w", m.Name, err)
	}
	return nil
}

// OfflineModel returns the stored model name, data included; paper.ErrNotFound when there is
// none.
func (s *Store) OfflineModel(ctx context.Context, name string) (OfflineModel, error) {
	m := OfflineModel{Name: name}
	err := s.pool.QueryRow(ctx, `
		SELECT documents, terms, components, dimensions, data, created_at
		FROM offline_models WHERE name = $1`, name).
		Scan(&m.Documents, &m.Terms, &m.Components, &m.Dimensions, &m.Data, &m.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return m, fmt.Errorf("offline model %s: %w", name, paper.ErrNotFound)
	}
	if err != nil {
		return m, fmt.Errorf("load offline model %s: %w", name, err)
	}
	return m, nil
}

// HasOfflineModel says whether the database holds the offline model name (without reading
// its data, which OfflineModel loads): the status page's check that an active fitted space can
// embed a query.
func (s *Store) HasOfflineModel(ctx context.Context, name string) (bool, error) {
	var ok bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM offline_models WHERE name = $1)`, name).Scan(&ok); err != nil {
		return false, fmt.Errorf("look up offline model %s: %w", name, err)
	}
	return ok, nil
}

// FitSample returns up to limit papers to fit an offline model on: all of them when the
// archive is no larger, otherwise a sample that is the same for the same archive (ordered by
// a hash of the id, not by age or id, so it spreads over time and sources).
func (s *Store) FitSample(ctx context.Context, limit int) ([]paper.Abstract, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("fit sample of %s: %w", papersN(limit), paper.ErrInvalid)
	}
	rows, err := s.pool.Query(ctx, `
		SELECT id, title, abstract FROM papers ORDER BY md5(id), id LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("fit sample: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (paper.Abstract, error) {
		var a paper.Abstract
		err := r.Scan(&a.ID, &a.Title, &a.Abstract)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("fit sample: %w", err)
	}
	return out, nil
}

package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/pgvector/pgvector-go"

	"github.com/paperpipe/paperpipe/paper"
)

// Work is paper.Work: what the configured models would produce for a paper. An empty Model or
// a zero SpaceID means that output is not wanted, and UpsertPapers never asks for it.
type Work = paper.Work

// Pending is paper.Pending: what UpsertPapers found for one input paper.
type Pending = paper.Pending

// UpsertPapers stores papers, in one transaction (one statement unless an id repeats), and
// returns one Pending
// per input paper, in input order, saying which outputs of w are missing for the text now
// stored. A paper's text replaces the stored one only when it is not older (Abstract.TextAt,
// zero meaning now): a redelivered message of a paper's previous version, processed after the
// newer one, changes nothing and needs nothing (its Pending carries the stored hash), also when
// the newer one was stored by another call while this one ran; a text stored as given and read
// again later (a newer TextAt) keeps the later time, though nothing else is written; of calls storing one new paper
// at once, one reports it New and its outputs missing, and the others report it as a later
// call would (not New; Changed, its outputs missing, only for a newer text of their own; their
// metadata merged). It writes only rows whose text or
// metadata changed; metadata a record lacks (no
// authors, no URL…) keeps what an earlier source stored, so one paper from two sources is
// merged. A changed abstract makes existing outputs stale (they recorded the old hash) without
// deleting them. When an id appears more than once, the call stores what calls made one copy at
// a time would: the newest copy by TextAt (zero meaning now; of equally new ones, the last)
// is the one whose Pending asks for the missing outputs, after the copies before it were
// applied in input order as separate calls would apply them (so their metadata is merged, or
// they are refused as older than the stored text); the other copies,
// older versions or repeats of it, need nothing (their Pending carries the stored hash), so a
// redelivered or replayed older version in a worker's micro-batch neither replaces the newer
// text nor has the same outputs bought twice. An output that an open batch job of w's target
// holds for the stored text (see store.StalePapers) is not missing: the job buys it, and a
// paper ingested again unchanged while the job runs would be paid for twice. Nor is a TL;DR the
// API withheld for the stored text under w (RecordWithheld): each such ingest bought the same
// refusal. A copy of a
// paper removed (RemovePapers) no earlier than its TextAt is not stored: its Pending says
// Removed and needs nothing; a newer copy stores the paper again and ends the removal's record.
//
// Every paper is validated first (non-empty id, title and abstract; valid UTF-8 without NUL
// bytes); one invalid paper fails the call with an error wrapping paper.ErrInvalid that names
// it, and nothing is written. A paper whose row another session holds locked for longer than
// Config.RowLockTimeout fails the call with paper.ErrLocked (see writeTx), nothing written. A
// paper PostgreSQL refuses for its data (SQLSTATE class 22 or 54: an id too long for the index,
// say) fails the call with an error wrapping paper.ErrInvalid too (see refusedData).
func (s *Store) UpsertPapers(ctx context.Context, papers []paper.Abstract, w Work) ([]Pending, error) {
	for attempt := 1; ; attempt++ {
		out, err := s.upsertPapers(ctx, papers, w)
		var pgErr *pgconn.PgError
		if err == nil || attempt == 5 || !errors.As(err, &pgErr) || pgErr.Code != "40P01" {
			return out, unavailable(ctx, refusedData(err))
		}
	}
}

func (s *Store) upsertPapers(ctx context.Context, papers []paper.Abstract, w Work) ([]Pending, error) {
	if len(papers) == 0 {
		return nil, nil
	}
	for i, a := range papers {
		if err := validateAbstract(a); err != nil {
			return nil, fmt.Errorf("upsert papers: record %d: %w", i+1, err)
		}
	}
	now := time.Now()
	var (
		keep map[string]int
		// Of the papers applied in rounds, the first statement's answers and the hashes before it.
		first       map[string]Pending
		firstBefore map[string]*string
		byID        map[string]Pending
		// The copies not stored because their paper was removed after their text was read.
		refused []bool
	)
	// Papers another transaction inserted while this one ran: the hash it stored.
	theirs := make(map[string]string)
	prelock := upsertPrelock
	if slices.ContainsFunc(papers, hasLegacy) {
		prelock = upsertLegacyPrelock
	}
	// One transaction: the call writes all of its copies or none.
	err := s.writeTx(ctx, prelock, func(tx pgx.Tx) error {
		// Read after the table lock, which RemovePapers holds until its removals are committed.
		var (
			revived []string
			err     error
		)
		refused, revived, err = removedBefore(ctx, tx, papers)
		if err != nil {
			return err
		}
		var kept []paper.Abstract
		var rounds [][]paper.Abstract
		keep, kept, rounds = upsertPlan(papers, refused, now)
		if len(kept) == 0 {
			return nil
		}
		if err := adoptLegacy(ctx, tx, kept); err != nil {
			return err
		}
		for r, round := range rounds {
			pending, before, err := s.upsertStatement(ctx, tx, round, w, r == 0, theirs)
			if err != nil {
				return err
			}
			if r == 0 {
				first, firstBefore = pending, before
			}
		}
		byID, _, err = s.upsertStatement(ctx, tx, kept, w, false, theirs)
		if err != nil {
			return err
		}
		return forgetRemoval(ctx, tx, revived)
	})
	if err != nil {
		return nil, err
	}
	for id, old := range firstBefore {
		// New and Changed say what the call did, not its last statement.
		p := byID[id]
		p.New = first[id].New
		p.Changed = old != nil && *old != p.ContentHash
		byID[id] = p
	}
	for id, hash := range theirs {
		// The other transaction's caller was told the paper is new and does the work of the
		// text it stored; this call reports the paper not new, and needs nothing unless it
		// replaced that text with a newer one.
		p := byID[id]
		p.New = false
		if p.ContentHash == hash {
			p.Changed, p.NeedTLDR, p.NeedEmbedding = false, false, false
		}
		byID[id] = p
	}
	out := make([]Pending, len(papers))
	for i, a := range papers {
		if refused[i] {
			out[i] = Pending{ID: a.ID, ContentHash: a.ContentHash(), Removed: true}
			continue
		}
		p, ok := byID[a.ID]
		if !ok {
			return nil, fmt.Errorf("upsert papers: no result for %s", a.ID)
		}
		if keep[a.ID] != i {
			// Another copy of the paper in this call was stored (or was the one compared with
			// a newer stored text): this one, older or the same, changes nothing and needs
			// nothing, like an older text given to a later call.
			p = Pending{ID: p.ID, ContentHash: p.ContentHash}
		}
		out[i] = p
	}
	return out, nil
}

// upsertPlan returns, for the copies of papers not refused (a removed paper's: see
// removedBefore), which one of each id is stored (keep: id → its index in papers), those copies
// (kept, in input order) and the rounds of earlier copies applied before them.
func upsertPlan(papers []paper.Abstract, refused []bool, now time.Time) (keep map[string]int, kept []paper.Abstract, rounds [][]paper.Abstract) {
	// id → index of the copy stored: the newest (as the statement dates it: a zero TextAt is
	// now), the last of equally new ones, as the upsert's "not older" rule would have it.
	textAt := func(a paper.Abstract) time.Time {
		if a.TextAt.IsZero() {
			return now
		}
		return a.TextAt
	}
	keep = make(map[string]int, len(papers))
	for i, a := range papers {
		if refused[i] {
			continue
		}
		k, ok := keep[a.ID]
		if !ok || !textAt(a).Before(textAt(papers[k])) {
			keep[a.ID] = i
		}
	}
	// The copies before the stored one go first, in input order, one copy of each id per
	// statement: as calls made one copy at a time would, each is compared with what is stored
	// then, and the metadata of those the store takes is kept where a later copy lacks it (a
	// feed's record, then its corrected text from a file without authors or URL); one older
	// than the stored text lends nothing. Copies after the stored one are older: a later call
	// would change nothing with them.
	kept = make([]paper.Abstract, 0, len(keep))
	for i, a := range papers {
		if !refused[i] && keep[a.ID] == i {
			kept = append(kept, a)
		}
	}
	nth := make(map[string]int)
	for i, a := range papers {
		if refused[i] || i >= keep[a.ID] {
			continue // refused, the kept copy, or one after it (older: it would change nothing)
		}
		r := nth[a.ID]
		nth[a.ID]++
		if r == len(rounds) {
			rounds = append(rounds, nil)
		}
		rounds[r] = append(rounds[r], a)
	}
	return keep, kept, rounds
}

// upsertStatement runs upsertPapersSQL for papers, one copy of each id, and returns their
// Pendings by id and the hashes the papers had before it when wantBefore (nil: none, or not
// wanted). A paper another transaction inserted while the statement ran (lost, see
// upsertPapersSQL) is upserted again by a new statement, which sees that row like a later call
// would, so that its text and metadata are compared and merged as usual; the hash the other
// transaction stored is recorded in theirs (the first one seen, when an id is lost twice) and
// is the paper's hash before the call.
func (s *Store) upsertStatement(ctx context.Context, q querier, papers []paper.Abstract, w Work, wantBefore bool, theirs map[string]string) (map[string]Pending, map[string]*string, error) {
	byID, lost, before, err := s.upsertOnce(ctx, q, papers, w, wantBefore)
	for attempt := 1; err == nil && len(lost) > 0; attempt++ {
		if attempt == 5 {
			return nil, nil, fmt.Errorf("upsert %s: %s kept being stored by other transactions while this one ran", papersN(len(papers)), lost[0])
		}
		again := make([]paper.Abstract, 0, len(lost))
		for _, a := range papers {
			if slices.Contains(lost, a.ID) {
				again = append(again, a)
			}
		}
		var (
			redo map[string]Pending
			prev map[string]*string
		)
		redo, lost, prev, err = s.upsertOnce(ctx, q, again, w, true)
		for id, p := range redo {
			byID[id] = p
			if old := prev[id]; old != nil {
				if _, ok := theirs[id]; !ok {
					theirs[id] = *old
				}
			}
			if before != nil {
				before[id] = prev[id]
			}
		}
	}
	if err != nil {
		return nil, nil, err
	}
	return byID, before, nil
}

// upsertOnce runs upsertPapersSQL for papers, one copy of each id, and returns their Pendings
// by id, the ids another transaction inserted while it ran (lost: their Pendings mean
// nothing), and the hashes the papers had before it when wantBefore (nil: none, or not wanted).
func (s *Store) upsertOnce(ctx context.Context, q querier, papers []paper.Abstract, w Work, wantBefore bool) (map[string]Pending, []string, map[string]*string, error) {
	n := len(papers)
	var (
		ids, titles, abstracts, authors, cats = make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
		urls, sources, hashes                 = make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
		published, textAts, createdAts        = make([]pgtype.Timestamptz, 0, n), make([]pgtype.Timestamptz, 0, n), make([]pgtype.Timestamptz, 0, n)
	)
	for _, a := range papers {
		ids = append(ids, a.ID)
		titles = append(titles, a.Title)
		abstracts = append(abstracts, a.Abstract)
		authors = append(authors, jsonArray(a.Authors))
		cats = append(cats, jsonArray(a.Categories))
		published = append(published, pgtype.Timestamptz{Time: a.Published, Valid: !a.Published.IsZero()})
		urls = append(urls, a.URL)
		sources = append(sources, a.Source)
		hashes = append(hashes, a.ContentHash())
		textAts = append(textAts, pgtype.Timestamptz{Time: a.TextAt, Valid: !a.TextAt.IsZero()})
		createdAts = append(createdAts, pgtype.Timestamptz{Time: a.CreatedAt, Valid: !a.CreatedAt.IsZero()})
	}
	rows, err := q.Query(ctx, upsertPapersSQL, ids, titles, abstracts, authors, cats, published,
		urls, sources, hashes, w.Model, w.PromptVersion, w.SpaceID, textAts, createdAts)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("upsert %s: %w", papersN(n), err)
	}
	byID := make(map[string]Pending, n)
	var before map[string]*string
	if wantBefore {
		before = make(map[string]*string, n)
	}
	var lost []string
	for rows.Next() {
		var (
			p       Pending
			oldHash *string
			isLost  bool
		)
		if err := rows.Scan(&p.ID, &p.ContentHash, &oldHash, &isLost, &p.NeedTLDR, &p.NeedEmbedding, &p.NoSpace); err != nil {
			rows.Close()
			return nil, nil, nil, fmt.Errorf("upsert %s: read result: %w", papersN(n), err)
		}
		p.New = oldHash == nil && !isLost
		p.Changed = oldHash != nil && *oldHash != p.ContentHash
		if isLost {
			lost = append(lost, p.ID)
		}
		byID[p.ID] = p
		if before != nil {
			before[p.ID] = oldHash
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, nil, fmt.Errorf("upsert %s: %w", papersN(n), err)
	}
	return byID, lost, before, nil
}

// PendingFor returns, like UpsertPapers, one Pending per input paper in input order, but
// writes nothing: it is for messages that ask for outputs of a text read from the store
// (re-processing), which must never put that text back — the paper may have changed since the
// message was published, and the newer text would be lost. An output is wanted only for the
// text the store holds now: a paper whose stored text is not the message's (or that is gone)
// needs nothing, and its message is settled as done; the newer text is processed by its own.
// Like UpsertPapers, it asks for no output that an open batch job of w's target holds for the
// stored text (StalePapers leaves it out too): that job buys it; nor for a TL;DR the API
// withheld for that text (RecordWithheld), which a run publishing the paper for its vector
// bought again.
func (s *Store) PendingFor(ctx context.Context, papers []paper.Abstract, w Work) (_ []Pending, err error) {
	defer func() { err = unavailable(ctx, err) }()
	if len(papers) == 0 {
		return nil, nil
	}
	ids, hashes := make([]string, len(papers)), make([]string, len(papers))
	for i, a := range papers {
		ids[i], hashes[i] = a.ID, a.ContentHash()
	}
	rows, err := s.pool.Query(ctx, `
		SELECT i.id, i.content_hash, p.content_hash,
			p.content_hash = i.content_hash AND $3::text <> '' AND NOT EXISTS (SELECT 1 FROM tldrs t
				WHERE t.paper_id = i.id AND t.model = $3 AND t.prompt_version = $4::text AND t.content_hash = i.content_hash)
				AND NOT `+heldTLDRSQL+` AND NOT `+withheldTLDRSQL+`,
			p.content_hash = i.content_hash AND $5::bigint <> 0 AND EXISTS (SELECT 1 FROM embedding_spaces WHERE id = $5)
				AND NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.space_id = $5 AND e.paper_id = i.id AND e.content_hash = i.content_hash)
				AND NOT `+heldEmbeddingSQL+`,
			$5::bigint <> 0 AND NOT EXISTS (SELECT 1 FROM embedding_spaces WHERE id = $5)
		FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS i(id, content_hash, n)
		LEFT JOIN papers p ON p.id = i.id
		ORDER BY i.n`, ids, hashes, w.Model, w.PromptVersion, w.SpaceID)
	if err != nil {
		return nil, fmt.Errorf("pending work of %s: %w", papersN(len(papers)), err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Pending, error) {
		var (
			p      Pending
			stored *string
			tl, em *bool
		)
		err := r.Scan(&p.ID, &p.ContentHash, &stored, &tl, &em, &p.NoSpace)
		p.NeedTLDR, p.NeedEmbedding = tl != nil && *tl, em != nil && *em
		p.New = stored == nil
		p.Changed = stored != nil && *stored != p.ContentHash
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("pending work of %s: %w", papersN(len(papers)), err)
	}
	return out, nil
}

// hasLegacy reports whether a names the hash of its text's earlier form (LegacyHash).
func hasLegacy(a paper.Abstract) bool { return a.LegacyHash != "" && a.LegacyHash != a.ContentHash() }

// adoptLegacy gives the papers stored with the hash of their text's earlier form
// (paper.Abstract.LegacyHash: arXiv's TeX accents, which ingest now writes as letters) the
// hash of the form given, with their TL;DRs and vectors of it and their items in open batch
// jobs: the two are one text, and the upsert that follows in the transaction stores the new
// form without buying its outputs again, nor those a batch job is buying. A stored text with another hash is left alone: the upsert compares it as usual.
// papers holds one copy of each id (the one the call stores).
func adoptLegacy(ctx context.Context, tx pgx.Tx, papers []paper.Abstract) error {
	var ids, legacy, hashes []string
	for _, a := range papers {
		if hasLegacy(a) {
			ids, legacy, hashes = append(ids, a.ID), append(legacy, a.LegacyHash), append(hashes, a.ContentHash())
		}
	}
	if len(ids) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, adoptLegacySQL, ids, legacy, hashes); err != nil {
		return fmt.Errorf("upsert %s: adopt the outputs of their earlier form: %w", papersN(len(papers)), err)
	}
	return nil
}

// adoptLegacySQL re-keys the papers stored with their legacy hash ($2) to the new one ($3),
// and their TL;DRs, vectors and batch items with them (an open job holds the paper still, and
// its answer is stored at the item's hash); the rows are locked in id order, as the upsert's.
const adoptLegacySQL = `
WITH m AS (
	SELECT DISTINCT ON (id) id, legacy, hash FROM unnest($1::text[], $2::text[], $3::text[]) AS t(id, legacy, hash)
), p AS (
	UPDATE papers p SET content_hash = l.hash
	FROM (SELECT m.id, m.legacy, m.hash FROM m JOIN papers q ON q.id = m.id AND q.content_hash = m.legacy
		ORDER BY m.id FOR UPDATE OF q) l
	WHERE p.id = l.id
	RETURNING p.id, l.legacy, l.hash
), t AS (
	UPDATE tldrs t SET content_hash = p.hash FROM p WHERE t.paper_id = p.id AND t.content_hash = p.legacy
), e AS (
	UPDATE embeddings e SET content_hash = p.hash FROM p WHERE e.paper_id = p.id AND e.content_hash = p.legacy
), b AS (
	UPDATE batch_items b SET content_hash = p.hash FROM p WHERE b.paper_id = p.id AND b.content_hash = p.legacy
)
SELECT count(*) FROM p`

// upsertPrelock takes the table locks of upsertPapersSQL for writeTx.
const upsertPrelock = "LOCK TABLE papers IN ROW EXCLUSIVE MODE; " +
	"LOCK TABLE tldrs, embeddings, embedding_spaces, batch_items, batch_jobs, withheld_tldrs IN ACCESS SHARE MODE"

// upsertLegacyPrelock is upsertPrelock for a call that adopts outputs (adoptLegacy), which
// writes tldrs, embeddings and batch_items too; the tables are taken in upsertPrelock's order.
const upsertLegacyPrelock = "LOCK TABLE papers IN ROW EXCLUSIVE MODE; " +
	"LOCK TABLE tldrs, embeddings IN ROW EXCLUSIVE MODE; " +
	"LOCK TABLE embedding_spaces IN ACCESS SHARE MODE; " +
	"LOCK TABLE batch_items IN ROW EXCLUSIVE MODE; " +
	"LOCK TABLE batch_jobs, withheld_tldrs IN ACCESS SHARE MODE"

// upsertPapersSQL inserts or updates the papers and reports, per paper, its previous hash, the
// hash it stores after the statement, and the missing outputs. The main query sees the snapshot
// from before the INSERT, so old.content_hash is the previous hash; the stored one is the
// input's when the upsert wrote or matched it, and the previous one when the input's text was
// older (text_at) than the stored text — then nothing is missing for the input: its outputs
// would be of a text the paper no longer has. A paper neither in the snapshot nor written by
// the upsert (lost) was inserted by another transaction that committed while the INSERT
// waited for it; the upsert leaves such a row alone, since neither the snapshot nor RETURNING
// (PostgreSQL 17 has no OLD there) can tell the hash it held, and upsertStatement upserts the
// paper again in a new statement, which sees it. Rows are written in id
// order so that concurrent batches lock them in the same order and cannot deadlock — except
// beside a call with a repeated id, whose earlier copies lock their rows first in the same
// transaction: UpsertPapers tries a call PostgreSQL aborted for a deadlock again.
var upsertPapersSQL = `
WITH input AS (
	SELECT id, title, abstract,
		ARRAY(SELECT jsonb_array_elements_text(authors::jsonb)) AS authors,
		ARRAY(SELECT jsonb_array_elements_text(categories::jsonb)) AS categories,
		published, NULLIF(url, '') AS url, NULLIF(source, '') AS source, content_hash,
		coalesce(text_at, now()) AS text_at, created_at
	FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
		$6::timestamptz[], $7::text[], $8::text[], $9::text[], $13::timestamptz[], $14::timestamptz[])
		AS t(id, title, abstract, authors, categories, published, url, source, content_hash, text_at, created_at)
), changed AS (
	-- Papers stored exactly as given are left out before the INSERT: ON CONFLICT would skip
	-- them too, but only after building each proposed row, generated tsv column included —
	-- ten times the cost of this check on a re-ingest.
	SELECT i.* FROM input i
	WHERE NOT EXISTS (SELECT 1 FROM papers p WHERE p.id = i.id
		AND p.content_hash = i.content_hash AND p.title = i.title AND p.abstract = i.abstract
		AND (cardinality(i.authors) = 0 OR p.authors = i.authors)
		AND (cardinality(i.categories) = 0 OR p.categories = i.categories)
		AND (i.published IS NULL OR p.published = i.published)
		AND (i.url IS NULL OR p.url = i.url))
), reread AS (
	-- A text stored exactly as given and read again since (a follow's overlap, a re-ingest)
	-- keeps the time of its latest reading, or a redelivered message of another version read in
	-- between, handled after it, would be taken for the newer text and put back. Only text_at
	-- is written (no tsv, no updated_at: nothing changed), the rows locked in id order as the
	-- upsert's are.
	UPDATE papers p SET text_at = r.text_at
	FROM (SELECT i.id, i.text_at FROM input i JOIN papers q ON q.id = i.id AND q.content_hash = i.content_hash
		WHERE q.text_at < i.text_at AND NOT EXISTS (SELECT 1 FROM changed c WHERE c.id = i.id)
		ORDER BY i.id FOR UPDATE OF q) r
	WHERE p.id = r.id
), upsert AS (
	-- created_at and updated_at are the time of the row's own write (updated_at: of its text's), not the transaction's
	-- start: an upsert that waited on a locked row (up to RowLockTimeout) stamped the papers it
	-- wrote after the wait before polls and reprocess runs that could not see them
	-- (ListFilter.Since, Selection.Since). A paper moved from another archive (import) is
	-- created at the time that archive stored it (paper.Abstract.CreatedAt), within 1970 and now
	-- (a list's cursor holds no other time).
	INSERT INTO papers AS p (id, title, abstract, authors, categories, published, url, source, content_hash, text_at, created_at, updated_at)
	SELECT id, title, abstract, authors, categories, published, url, source, content_hash, text_at,
		CASE WHEN created_at IS NULL THEN clock_timestamp()
			ELSE least(greatest(created_at, 'epoch'::timestamptz), clock_timestamp()) END, clock_timestamp()
	FROM changed ORDER BY id
	ON CONFLICT (id) DO UPDATE SET
		title = excluded.title,
		abstract = excluded.abstract,
		content_hash = excluded.content_hash,
		text_at = CASE WHEN p.content_hash = excluded.content_hash THEN greatest(p.text_at, excluded.text_at)
			ELSE excluded.text_at END,
		authors = CASE WHEN cardinality(excluded.authors) > 0 THEN excluded.authors ELSE p.authors END,
		categories = CASE WHEN cardinality(excluded.categories) > 0 THEN excluded.categories ELSE p.categories END,
		published = coalesce(excluded.published, p.published),
		url = coalesce(excluded.url, p.url),
		source = coalesce(excluded.source, p.source),
		-- Only a new text dates the row: updated_at is indexed (Selection.Since), and a
		-- correction of metadata alone that moved it was never a HOT update, whatever room its
		-- page kept, and wrote an entry into every index of papers. Outputs are made from the
		-- text alone, so a run since a time misses nothing by it.
		updated_at = CASE WHEN p.title <> excluded.title OR p.abstract <> excluded.abstract
			THEN clock_timestamp() ELSE p.updated_at END
	-- A text older than the stored one (a redelivered message of the previous version) changes
	-- nothing. Nor does any text of a row the statement's snapshot cannot see: another
	-- transaction inserted it while this one ran, and RETURNING cannot tell the hash it stored
	-- (see lost below).
	WHERE (p.content_hash = excluded.content_hash OR excluded.text_at >= p.text_at)
	AND EXISTS (SELECT 1 FROM papers seen WHERE seen.id = excluded.id) AND (
		p.content_hash <> excluded.content_hash
		OR p.title <> excluded.title
		OR p.abstract <> excluded.abstract
		OR (cardinality(excluded.authors) > 0 AND p.authors <> excluded.authors)
		OR (cardinality(excluded.categories) > 0 AND p.categories <> excluded.categories)
		OR (excluded.published IS NOT NULL AND p.published IS DISTINCT FROM excluded.published)
		OR (excluded.url IS NOT NULL AND p.url IS DISTINCT FROM excluded.url))
	RETURNING p.id, p.content_hash
)
SELECT i.id, s.stored, old.content_hash, s.lost,
	NOT s.lost AND s.stored = i.content_hash AND $10::text <> '' AND NOT EXISTS (SELECT 1 FROM tldrs t
		WHERE t.paper_id = i.id AND t.model = $10 AND t.prompt_version = $11::text AND t.content_hash = i.content_hash)
		AND NOT ` + heldTLDR("i.id", "i.content_hash", "$10", "$11::text") + `
		AND NOT ` + withheldTLDR("i.id", "i.content_hash", "$10", "$11::text") + `,
	NOT s.lost AND s.stored = i.content_hash AND $12::bigint <> 0 AND EXISTS (SELECT 1 FROM embedding_spaces WHERE id = $12)
		AND NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.space_id = $12 AND e.paper_id = i.id AND e.content_hash = i.content_hash)
		AND NOT ` + heldEmbedding("i.id", "i.content_hash", "$12") + `,
	$12::bigint <> 0 AND NOT EXISTS (SELECT 1 FROM embedding_spaces WHERE id = $12)
FROM input i LEFT JOIN papers old ON old.id = i.id LEFT JOIN upsert u ON u.id = i.id,
	LATERAL (SELECT coalesce(u.content_hash, old.content_hash, i.content_hash) AS stored,
		u.id IS NULL AND old.id IS NULL AS lost) s`

// SaveSummaries stores TL;DRs, one per (paper, model, prompt version), in one statement. A
// summary whose ContentHash is not the paper's current hash (made from an older text, or for a
// paper that does not exist) is skipped. It returns how many distinct summaries were saved or
// were already stored as given; a summary repeated in one call (same paper, model, prompt
// version and text) counts once, the last one wins. Summaries of two texts of one paper are not
// repeats: the one of its current text is saved, wherever the other stands in the call (a
// worker's group commit can hold both, the older text's answered last, which took the current
// one's place and was then skipped as stale).
// A paper whose row another session holds locked for longer than Config.RowLockTimeout fails
// the call, nothing written, with a *paper.LockedError naming the locked papers when the store
// can tell (see lockedError): the others can be saved at once. SaveEmbeddings likewise.
func (s *Store) SaveSummaries(ctx context.Context, sums []paper.Summary) (_ int, err error) {
	saved, _, err := s.saveSummaries(ctx, sums, false)
	return saved, err
}

// ImportSummaries is SaveSummaries for TL;DRs read from a file (import-tldrs, import): a TL;DR
// this store holds of the same paper, model and prompt version made from the same text is kept,
// not replaced by the file's — it was paid for here, and the file fills what is missing. saved
// counts the summaries saved or already stored as given, kept those left out so (not counted in
// saved). One of another text (the paper's older one) is replaced, as SaveSummaries replaces it.
func (s *Store) ImportSummaries(ctx context.Context, sums []paper.Summary) (saved, kept int, err error) {
	return s.saveSummaries(ctx, sums, true)
}

// saveSummaries is SaveSummaries, or ImportSummaries when keep is set.
func (s *Store) saveSummaries(ctx context.Context, sums []paper.Summary, keep bool) (_, _ int, err error) {
	defer func() { err = unavailable(ctx, err) }()
	if len(sums) == 0 {
		return 0, 0, nil
	}
	// By text too: at most one text of a paper is current, so the statement still writes each
	// (paper, model, prompt version) row once.
	type key struct{ id, model, prompt, hash string }
	last := make(map[key]int, len(sums))
	for i, sm := range sums {
		if err := validateSummary(sm); err != nil {
			return 0, 0, fmt.Errorf("save summaries: record %d: %w", i+1, err)
		}
		last[key{sm.PaperID, sm.Model, sm.PromptVersion, sm.ContentHash}] = i
	}
	n := len(last)
	var (
		ids, models, prompts, hashes, texts, valids = make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
		inTok, outTok                               = make([]int32, 0, n), make([]int32, 0, n)
		written                                     = make([]*time.Time, 0, n)
	)
	for i, sm := range sums {
		if last[key{sm.PaperID, sm.Model, sm.PromptVersion, sm.ContentHash}] != i {
			continue
		}
		ids = append(ids, sm.PaperID)
		models = append(models, sm.Model)
		prompts = append(prompts, sm.PromptVersion)
		hashes = append(hashes, sm.ContentHash)
		texts = append(texts, sm.Text)
		valids = append(valids, sm.Validation)
		inTok = append(inTok, clampInt32(sm.Usage.InputTokens))
		outTok = append(outTok, clampInt32(sm.Usage.OutputTokens))
		var at *time.Time
		if !sm.WrittenAt.IsZero() {
			at = &sm.WrittenAt
		}
		written = append(written, at)
	}
	var saved, kept int
	err = s.writeTx(ctx, "LOCK TABLE papers IN ROW SHARE MODE; LOCK TABLE tldrs IN ROW EXCLUSIVE MODE", func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, saveSummariesSQL, ids, models, prompts, hashes, texts, valids, inTok, outTok, keep, written).Scan(&saved, &kept)
	})
	if err != nil {
		return 0, 0, fmt.Errorf("save %s: %w", countOf(n, "summary", "summaries"), s.lockedError(ctx, ids, err))
	}
	return saved, kept, nil
}

// saveSummariesSQL upserts the summaries made from their paper's current text (fresh). fresh
// share-locks those papers, in id order: the statement's snapshot can predate a text change
// (UpsertPapers) that commits while it runs, and ON CONFLICT acts on the newest tldrs row, so
// without the lock a summary of the old text could replace one of the new text saved meanwhile
// by another worker. With it the statement waits for a change in flight and, under READ
// COMMITTED, checks the join again against the changed paper, which drops the old summary.
// With $9 (ImportSummaries), a stored summary of the same text is kept (kept counts those that
// differ from the input's). $10 dates a summary written elsewhere (Summary.WrittenAt), no later
// than now; NULL, now.
const saveSummariesSQL = `
WITH input AS (
	SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int[], $8::int[], $10::timestamptz[])
		AS t(paper_id, model, prompt_version, content_hash, tldr, validation, input_tokens, output_tokens, written_at)
), fresh AS (
	SELECT i.* FROM input i JOIN papers p ON p.id = i.paper_id AND p.content_hash = i.content_hash
	ORDER BY i.paper_id FOR SHARE OF p
), kept AS (
	SELECT f.paper_id FROM fresh f JOIN tldrs t ON t.paper_id = f.paper_id AND t.model = f.model
		AND t.prompt_version = f.prompt_version AND t.content_hash = f.content_hash
	WHERE $9::bool AND (t.tldr, t.validation) IS DISTINCT FROM (f.tldr, f.validation)
), saved AS (
	INSERT INTO tldrs AS t (paper_id, model, prompt_version, content_hash, tldr, validation, input_tokens, output_tokens, created_at)
	SELECT paper_id, model, prompt_version, content_hash, tldr, validation, input_tokens, output_tokens, least(coalesce(written_at, now()), now())
	FROM fresh ORDER BY paper_id, model, prompt_version
	ON CONFLICT (paper_id, model, prompt_version) DO UPDATE SET
		content_hash = excluded.content_hash,
		tldr = excluded.tldr,
		validation = excluded.validation,
		input_tokens = excluded.input_tokens,
		output_tokens = excluded.output_tokens,
		created_at = excluded.created_at
	WHERE (t.content_hash, t.tldr, t.validation) IS DISTINCT FROM (excluded.content_hash, excluded.tldr, excluded.validation)
		AND NOT ($9::bool AND t.content_hash = excluded.content_hash)
)
SELECT count(*) - (SELECT count(*) FROM kept), (SELECT count(*) FROM kept) FROM fresh`

// SaveEmbeddings stores vectors in space spaceID, in one statement, with the semantics of
// SaveSummaries: a vector whose ContentHash is not its paper's current hash is skipped, and the
// count of distinct vectors saved (or already stored as given) is returned; a vector repeated
// (same paper and text) counts once, the last one wins, and of vectors of two texts of one
// paper the current text's is saved. A vector whose
// length is not the space's dimension fails the call with an error wrapping
// paper.ErrSpaceMismatch; a NaN or infinite value with paper.ErrInvalid; a space that does not
// exist (dropped, by this process or another) with paper.ErrSpaceDropped and
// paper.ErrNotFound. Nothing is written then.
func (s *Store) SaveEmbeddings(ctx context.Context, spaceID int64, embs []paper.Embedding) (_ int, err error) {
	defer func() { err = unavailable(ctx, err) }()
	if len(embs) == 0 {
		return 0, nil
	}
	sp, err := s.space(ctx, spaceID)
	if errors.Is(err, paper.ErrNotFound) {
		return 0, fmt.Errorf("save embeddings: embedding space %d: %w: %w", spaceID, paper.ErrSpaceDropped, paper.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("save embeddings: %w", err)
	}
	// By text too, as SaveSummaries: at most one text of a paper is current.
	type key struct{ id, hash string }
	last := make(map[key]int, len(embs))
	for i, e := range embs {
		if err := validateEmbedding(e, sp); err != nil {
			return 0, fmt.Errorf("save embeddings: record %d: %w", i+1, err)
		}
		last[key{e.PaperID, e.ContentHash}] = i
	}
	n := len(last)
	var (
		ids, hashes = make([]string, 0, n), make([]string, 0, n)
		vecs        = make([]pgvector.Vector, 0, n)
		truncated   = make([]bool, 0, n)
	)
	for i, e := range embs {
		if last[key{e.PaperID, e.ContentHash}] != i {
			continue
		}
		ids = append(ids, e.PaperID)
		hashes = append(hashes, e.ContentHash)
		vecs = append(vecs, pgvector.NewVector(e.Vector))
		truncated = append(truncated, e.Truncated)
	}
	var saved int
	// The space's row is locked first (without RowLockTimeout), before any table: DropSpace
	// holds it while it deletes the space's vectors, and a save into it waits for the drop,
	// then fails on the foreign key (paper.ErrSpaceDropped). Holding embeddings meanwhile would
	// deadlock with the drop's DROP INDEX.
	prelock := "SELECT FROM embedding_spaces WHERE id = " + strconv.FormatInt(spaceID, 10) + " FOR KEY SHARE; " +
		"LOCK TABLE papers IN ROW SHARE MODE; LOCK TABLE embeddings IN ROW EXCLUSIVE MODE"
	err = s.writeTx(ctx, prelock, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, saveEmbeddingsSQL, spaceID, ids, hashes, vecs, truncated).Scan(&saved)
	})
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == "23503" && pgErr.ConstraintName == "embeddings_space_id_fkey" {
		// Dropped by another process since this one cached the space.
		s.uncacheSpace(spaceID)
		return 0, fmt.Errorf("save %s: embedding space %d (%s): %w: %w", countOf(n, "embedding", "embeddings"), spaceID, sp.Name(), paper.ErrSpaceDropped, paper.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("save %s in space %s: %w", countOf(n, "embedding", "embeddings"), sp.Name(), s.lockedError(ctx, ids, err))
	}
	return saved, nil
}

// saveEmbeddingsSQL is saveSummariesSQL for vectors: the same lock, for the same reason.
const saveEmbeddingsSQL = `
WITH input AS (
	SELECT * FROM unnest($2::text[], $3::text[], $4::vector[], $5::bool[])
		AS t(paper_id, content_hash, embedding, truncated)
), fresh AS (
	SELECT i.* FROM input i JOIN papers p ON p.id = i.paper_id AND p.content_hash = i.content_hash
	ORDER BY i.paper_id FOR SHARE OF p
), saved AS (
	INSERT INTO embeddings AS e (space_id, paper_id, content_hash, embedding, truncated)
	SELECT $1::bigint, paper_id, content_hash, embedding, truncated FROM fresh ORDER BY paper_id
	ON CONFLICT (space_id, paper_id) DO UPDATE SET
		content_hash = excluded.content_hash,
		embedding = excluded.embedding,
		truncated = excluded.truncated,
		created_at = now()
	WHERE (e.content_hash, e.truncated) IS DISTINCT FROM (excluded.content_hash, excluded.truncated)
		OR e.embedding <> excluded.embedding
)
SELECT count(*) FROM fresh`

// UsageRow is one day's API usage of one model and kind.
type UsageRow struct {
	// Day is the UTC date, as midnight UTC.
	Day time.Time `json:"day"`
	paper.Usage
}

// RecordUsage adds u to today's (UTC) counters of each model and kind.
func (s *Store) RecordUsage(ctx context.Context, u []paper.Usage) error {
	return unavailable(ctx, recordUsage(ctx, s.pool, u))
}

// recordUsage adds u to today's counters through q (the pool, or a transaction), in one
// statement, one row per model and kind, in a fixed order, so that concurrent calls update the
// rows in the same order and cannot deadlock.
func recordUsage(ctx context.Context, q interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
}, u []paper.Usage) error {
	type key struct{ model, kind string }
	sum := make(map[key]paper.Usage)
	for _, x := range u {
		if x.Requests == 0 && x.InputTokens == 0 && x.OutputTokens == 0 {
			continue
		}
		k := key{x.Model, x.Kind}
		t := sum[k]
		t.Requests += x.Requests
		t.InputTokens += x.InputTokens
		t.OutputTokens += x.OutputTokens
		sum[k] = t
	}
	if len(sum) == 0 {
		return nil
	}
	keys := make([]key, 0, len(sum))
	for k := range sum {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int {
		return strings.Compare(a.model+"\x00"+a.kind, b.model+"\x00"+b.kind)
	})
	var (
		models, kinds = make([]string, len(keys)), make([]string, len(keys))
		req, in, out  = make([]int64, len(keys)), make([]int64, len(keys)), make([]int64, len(keys))
	)
	for i, k := range keys {
		models[i], kinds[i] = k.model, k.kind
		req[i], in[i], out[i] = int64(sum[k].Requests), int64(sum[k].InputTokens), int64(sum[k].OutputTokens)
	}
	_, err := q.Exec(ctx, `
		INSERT INTO api_usage AS a (day, model, kind, requests, input_tokens, output_tokens)
		SELECT (now() AT TIME ZONE 'UTC')::date, model, kind, r, i, o
		FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[]) WITH ORDINALITY AS t(model, kind, r, i, o, n)
		ORDER BY n
		ON CONFLICT (day, model, kind) DO UPDATE SET
			requests = a.requests + excluded.requests,
			input_tokens = a.input_tokens + excluded.input_tokens,
			output_tokens = a.output_tokens + excluded.output_tokens`,
		models, kinds, req, in, out)
	if err != nil {
		return fmt.Errorf("record API usage: %w", err)
	}
	return nil
}

// Usage returns the daily usage counters from since's UTC date on, by day, model and kind.
func (s *Store) Usage(ctx context.Context, since time.Time) ([]UsageRow, error) {
	rows, err := s.pool.Query(ctx, `SELECT day, model, kind, requests, input_tokens, output_tokens
		FROM api_usage WHERE day >= $1::date ORDER BY day, model, kind`, since.UTC().Format(time.DateOnly))
	if err != nil {
		return nil, fmt.Errorf("read API usage: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (UsageRow, error) {
		var u UsageRow
		err := r.Scan(&u.Day, &u.Model, &u.Kind, &u.Requests, &u.InputTokens, &u.OutputTokens)
		u.Day = u.Day.UTC()
		return u, err
	})
	if err != nil {
		return nil, fmt.Errorf("read API usage: %w", err)
	}
	return out, nil
}

// refusedData marks err with paper.ErrInvalid when PostgreSQL refused the statement for its
// data: SQLSTATE class 22 (data exception: a value out of range, an invalid byte sequence) or
// 54 (program limit exceeded: an id or category too long for a btree index entry, 2,704 bytes,
// or a text whose tsvector is over 1 MB). Sending the same papers again cannot help; the worker
// records them one by one (see paper.ErrInvalid) so that only the refused one is dead-lettered.
func refusedData(err error) error {
	var pgErr *pgconn.PgError
	if err == nil || errors.Is(err, paper.ErrInvalid) || !errors.As(err, &pgErr) {
		return err
	}
	if strings.HasPrefix(pgErr.Code, "22") || strings.HasPrefix(pgErr.Code, "54") {
		return fmt.Errorf("%w: %w", err, paper.ErrInvalid)
	}
	return err
}

// validateAbstract checks what the papers table would otherwise reject halfway through a batch.
func validateAbstract(a paper.Abstract) error {
	if strings.TrimSpace(a.ID) == "" {
		return fmt.Errorf("empty id: %w", paper.ErrInvalid)
	}
	if strings.TrimSpace(a.Title) == "" {
		return fmt.Errorf("paper %s: empty title: %w", a.ID, paper.ErrInvalid)
	}
	if strings.TrimSpace(a.Abstract) == "" {
		return fmt.Errorf("paper %s: empty abstract: %w", a.ID, paper.ErrInvalid)
	}
	fields := append([]string{a.ID, a.Title, a.Abstract, a.URL, a.Source}, a.Authors...)
	for _, f := range append(fields, a.Categories...) {
		if err := validText(f); err != nil {
			return fmt.Errorf("paper %s: %w", a.ID, err)
		}
	}
	return nil
}

func validateSummary(sm paper.Summary) error {
	switch {
	case sm.PaperID == "":
		return fmt.Errorf("summary without paper id: %w", paper.ErrInvalid)
	case sm.Model == "" || sm.PromptVersion == "":
		return fmt.Errorf("summary of %s: empty model or prompt version: %w", sm.PaperID, paper.ErrInvalid)
	case sm.ContentHash == "":
		return fmt.Errorf("summary of %s: empty content hash: %w", sm.PaperID, paper.ErrInvalid)
	case strings.TrimSpace(sm.Text) == "":
		return fmt.Errorf("summary of %s: empty text: %w", sm.PaperID, paper.ErrInvalid)
	}
	for _, f := range []string{sm.PaperID, sm.Model, sm.PromptVersion, sm.ContentHash, sm.Text, sm.Validation} {
		if err := validText(f); err != nil {
			return fmt.Errorf("summary of %s: %w", sm.PaperID, err)
		}
	}
	return nil
}

// maxHalf is the largest finite half-precision value: a larger component cannot be cast to
// halfvec, what a halfvec-indexed space's index and queries do (see vectorSQLFor).
const maxHalf = 65504

// validateEmbedding checks a vector for space sp: its dimensions, and values every statement of
// the space can take (finite, within half precision's range when the space's index is on
// halfvec), so that one bad vector is refused as paper.ErrInvalid before a batch is written.
func validateEmbedding(e paper.Embedding, sp spaceRow) error {
	switch {
	case e.PaperID == "":
		return fmt.Errorf("embedding without paper id: %w", paper.ErrInvalid)
	case e.ContentHash == "":
		return fmt.Errorf("embedding of %s: empty content hash: %w", e.PaperID, paper.ErrInvalid)
	case len(e.Vector) != sp.Dimensions:
		return fmt.Errorf("embedding of %s has %d dimensions, space %s holds %d: %w",
			e.PaperID, len(e.Vector), sp.Name(), sp.Dimensions, paper.ErrSpaceMismatch)
	}
	bad, zero := paper.VectorFault(e.Vector)
	if bad >= 0 {
		return fmt.Errorf("embedding of %s: value %d is %v: %w", e.PaperID, bad, e.Vector[bad], paper.ErrInvalid)
	}
	if vectorSQLFor(sp, "$1").opclass == "halfvec_cosine_ops" {
		for i, x := range e.Vector {
			if math.Abs(float64(x)) > maxHalf {
				return fmt.Errorf("embedding of %s: value %d is %v, beyond half precision's range (±%d) that space %s's %s index "+
					"stores vectors in: %w", e.PaperID, i, x, maxHalf, sp.Name(), sp.index, paper.ErrInvalid)
			}
		}
	}
	if zero {
		return fmt.Errorf("embedding of %s is the zero vector (nothing in its text the model could embed): %w", e.PaperID, paper.ErrInvalid)
	}
	return validText(e.PaperID)
}

// validText rejects what PostgreSQL's text type cannot hold.
func validText(s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("invalid UTF-8 in %.40q: %w", s, paper.ErrInvalid)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("NUL byte in %.40q: %w", s, paper.ErrInvalid)
	}
	return nil
}

// jsonArray encodes a string list as a JSON array, how text[] values of varying length travel
// in one array parameter.
func jsonArray(ss []string) string {
	if len(ss) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(ss) // []string always marshals
	return string(b)
}

func clampInt32(n int) int32 {
	return int32(max(math.MinInt32, min(n, math.MaxInt32)))
}

// papersN is "1 paper" or "n papers".
func papersN(n int) string {
	return countOf(n, "paper", "papers")
}

// countOf is n with the noun that agrees with it: "1 paper", "2 papers".
func countOf(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

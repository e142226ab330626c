package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/ingest"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

// cmdImport loads an export into this archive in one step that buys nothing: its papers,
// stored as ingest's records are stored by a worker but without the queue (no worker sees
// them, so none buys their TL;DR or vector), then their TL;DRs (as import-tldrs) and vectors
// (as import-embeddings).
func cmdImport(ctx context.Context, c *config, args []string) error {
	fs := newFlagSet("import", "FILE", "Load a `paperpipe export` with no API call and no queue: its papers, stored as ingest's are "+
		"(the same ids, text and metadata; a paper removed here after its exported text was written stays removed), "+
		"then their TL;DRs (as import-tldrs) and vectors (as import-embeddings: into the exported space, created when missing). "+
		"No worker sees the papers, so none buys their TL;DR or vector. A gzip-compressed file is read decompressed.")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("name one file")
	}
	if pos[0] == "-" {
		return usageErr("name a file: import reads it three times (papers, TL;DRs, vectors), which standard input cannot be")
	}
	if err := checkFiles(pos[0]); err != nil {
		return err
	}
	st, err := openStore(ctx, c, newLogger(c))
	if err != nil {
		return err
	}
	defer st.Close()
	_, err = runImport(ctx, st, pos[0], os.Stderr)
	return err
}

// importRun is what import did.
type importRun struct {
	Papers  importPapersResult
	TLDRs   importTLDRsResult
	Vectors importResult
}

// runImport stores the export at path: its papers first, then, when it has them, their TL;DRs
// and vectors, each pass as its own command does it. From before it stores the first paper
// with a TL;DR or a vector to its end, it holds the run lock (store.HoldRun) of each TL;DR
// version and of the space it loads (see importLocks): a `paperpipe reprocess` of them
// started between its passes would buy, for the papers just stored, the TL;DRs and vectors
// the next passes load for free.
func runImport(ctx context.Context, st *store.Store, path string, errw io.Writer) (res importRun, err error) {
	locks := newImportLocks(st, "import")
	defer func() { locks.release(ctx, res.Vectors.Loaded, errw) }()
	if res.Papers, err = importPapers(ctx, st, path, 1000, locks.claim, errw); err != nil {
		return res, err
	}
	// A lock lost during a pass (store.HoldRun notices within seconds) stops it, and one lost
	// after the last check is asked once more as the import ends, as a reprocess does: what
	// it loaded meanwhile another run may have bought beside it.
	pctx, stop := locks.context(ctx)
	defer stop()
	defer locks.checkAtEnd(&err)
	if res.Papers.TLDRs > 0 {
		if err := locks.check(); err != nil {
			return res, err
		}
		if res.TLDRs, err = loadTLDRs(pctx, st, path, 1000, nil, errw); err != nil {
			return res, err
		}
	}
	if res.Papers.Vectors > 0 {
		if err := locks.check(); err != nil {
			return res, err
		}
		// Its vectors of papers not stored (removed here, or rejected above) are counted
		// there as unknown, and said above.
		if res.Vectors, err = loadEmbeddings(pctx, st, path, 5000, locks.made(), nil, errw); err != nil {
			return res, err
		}
	}
	if bad := res.Papers.Bad + res.TLDRs.Bad + res.Vectors.Bad; bad > 0 {
		return res, fmt.Errorf("%s rejected (see the messages above); the others were imported", plural(bad, "line", "lines"))
	}
	return res, nil
}

// importPapersResult is what the papers' pass of import did.
type importPapersResult struct {
	Lines, Stored, Removed, Bad int
	// New counts the papers of Stored this archive did not hold before: a second import of a
	// file, or one resumed, stores none anew.
	New int
	// TLDRs and Vectors count the lines with a TL;DR and with a vector: the passes to run.
	TLDRs, Vectors int
	// Withheld counts the records of TL;DRs the API withheld recorded here (tldr_withheld):
	// no run here asks for them again, as none did in the exporting archive.
	Withheld int
}

// movedLine is what the papers' pass of import reads of an export line besides the paper.
type movedLine struct {
	Source            string    `json:"source"`
	CreatedAt         time.Time `json:"created_at"`
	UpdatedAt         time.Time `json:"updated_at"`
	TLDR              string    `json:"tldr"`
	TLDRModel         string    `json:"tldr_model"`
	TLDRPromptVersion string    `json:"tldr_prompt_version"`
	Embedding         []float32 `json:"embedding"`
	Dimensions        int       `json:"dimensions"`
	Model             string    `json:"model"`
	Template          string    `json:"template"`
	// TLDRWithheld is the record of the API withholding the paper's TL;DR (see exportLine).
	TLDRWithheld *withheldNote `json:"tldr_withheld"`
}

// importLocks are the run locks import holds: the LockRun of each TL;DR version
// (store.TLDRRunKey) and of the space (store.SpaceRunKey) whose outputs the export holds, each
// taken before the first paper with such an output is stored, and held to the import's end.
// import-tldrs and import-embeddings run alone hold the same, taken before they load the first
// TL;DR or vector (claimTLDRs, claimSpace).
// A `paperpipe reprocess` (or `fit`) of them is refused meanwhile, as a second run is, and
// `tldrs prune` and `spaces drop` leave them alone; import is refused while one of those holds
// a lock, before it stores a paper whose output it would buy or remove. A space that does not
// exist yet is created (as import-embeddings creates it) to be locked, and dropped again at
// the end when no vector was loaded into it.
type importLocks struct {
	st    *store.Store
	cmd   string          // the command, as its messages name it: import, import-tldrs, import-embeddings
	held  map[string]bool // keys taken, and keys of no use to take (a space no vector can be of)
	locks []*store.RunLock
	// lost ends the context of context (its cause wrapping store.ErrLockLost) when a lock
	// held is lost, also one taken after it was made; nil before. stops are its watches.
	lost  context.CancelCauseFunc
	stops []func() bool
	// tldrLocked: the lock of the first TL;DR version met is held. An export holds one version;
	// the versions of a file of several (exports joined) after the first are not locked, since
	// each lock keeps a pooled connection and the store's pool may have only store.MinConns:
	// with the space's lock, the index lock of the vectors' pass and its statements, four.
	tldrLocked bool
	space      paper.Space // the space locked, ID 0 when none
	created    bool        // space was created by this import
}

// newImportLocks returns the locks of command cmd (import, import-tldrs, import-embeddings),
// none held yet.
func newImportLocks(st *store.Store, cmd string) *importLocks {
	return &importLocks{st: st, cmd: cmd, held: map[string]bool{}}
}

// claim takes the locks of the outputs of line m, a paper about to be stored, not held yet.
func (l *importLocks) claim(ctx context.Context, m movedLine) error {
	if m.TLDR != "" && m.TLDRModel != "" && m.TLDRPromptVersion != "" {
		if err := l.claimTLDRs(ctx, m.TLDRModel, m.TLDRPromptVersion); err != nil {
			return err
		}
	}
	if len(m.Embedding) == 0 || strings.TrimSpace(m.Model) == "" || l.space.ID != 0 {
		return nil
	}
	if m.Dimensions != 0 && m.Dimensions != len(m.Embedding) {
		// import-embeddings rejects the line (a vector cut short): the file's space is its
		// good lines', which a later line names; locked here, a space one dimension short was
		// created and locked, and left behind, and the space loaded was not locked.
		return nil
	}
	sp := paper.Space{Model: m.Model, Dimensions: len(m.Embedding), Template: cmp.Or(m.Template, embed.TemplateTitleAbstract)}
	if l.held["space "+sp.Name()] {
		return nil
	}
	l.held["space "+sp.Name()] = true // a space found not to be made is not tried again
	if lengthNotMade(sp.Model, sp.Dimensions) != "" || validName("", sp.Model) != "" || validName("", sp.Template) != "" {
		return nil // import-embeddings rejects its lines
	}
	info, err := l.st.FindSpace(ctx, sp.Name())
	created := false
	switch {
	case err == nil:
		sp = info.Space
	case errors.Is(err, paper.ErrNotFound):
		if sp, created, err = l.st.EnsureSpaceForLoad(ctx, sp); errors.Is(err, paper.ErrInvalid) {
			return nil // a space no store holds: import-embeddings rejects its lines
		} else if err != nil {
			return err
		}
	default:
		return err
	}
	l.created = created // refused, a space the import created is dropped all the same (release)
	return l.claimSpace(ctx, sp, created)
}

// claimTLDRs takes the lock of the TL;DR version model and promptVersion unless the lock of a
// version is held already (see tldrLocked).
func (l *importLocks) claimTLDRs(ctx context.Context, model, promptVersion string) error {
	key := store.TLDRRunKey(model, promptVersion)
	if l.tldrLocked || l.held[key] {
		return nil
	}
	if err := l.take(ctx, key); errors.Is(err, store.ErrRunInProgress) {
		return fmt.Errorf("another command holds the TL;DRs (%s, %s) of this file: a `paperpipe reprocess`, which would buy "+
			"those of its papers, or a `paperpipe tldrs prune` removing them: wait for it to end, or stop it, then run "+
			"the same command again (what is stored is kept): %w", termSafe(model, false), termSafe(promptVersion, false), err)
	} else if err != nil {
		return err
	}
	l.tldrLocked = true
	return nil
}

// claimSpace takes the lock of space sp, which exists, unless a space's lock is held already;
// created: the command created sp, which release drops again when no vector was loaded into
// it (DropEmptySpace keeps a space whose run lock is held: it can be dropped only once the
// lock is released).
func (l *importLocks) claimSpace(ctx context.Context, sp paper.Space, created bool) error {
	if l.space.ID != 0 {
		return nil
	}
	l.space = sp
	if err := l.take(ctx, store.SpaceRunKey(sp.ID)); errors.Is(err, store.ErrRunInProgress) {
		return fmt.Errorf("a `paperpipe reprocess` (or `fit`) is filling space %d (%s), whose vectors this file holds: it would buy "+
			"those of its papers: wait for it to end, or stop it, then run the same command again (what is stored is kept): %w",
			sp.ID, sp.Name(), err)
	} else if err != nil {
		return err
	}
	l.created = l.created || created
	return nil
}

// made is the id of the space the import created to lock it, 0 when it created none.
func (l *importLocks) made() int64 {
	if !l.created {
		return 0
	}
	return l.space.ID
}

// take takes the run lock of key.
func (l *importLocks) take(ctx context.Context, key string) error {
	rl, err := l.st.HoldRun(ctx, key)
	if err != nil {
		return err
	}
	l.held[key] = true
	l.locks = append(l.locks, rl)
	if l.lost != nil {
		l.watch(rl)
	}
	return nil
}

// check asks each lock's session whether it still holds its lock (store.RunLock.Check, which
// takes it again on a new session when its own is gone): a lock that another run took meanwhile
// (its session ended by a restart, or cut off) is an error wrapping store.ErrLockLost, and the
// import stops before its next pass rather than load beside that run, or, asked as it ends,
// says so. A database that cannot be reached to tell is left to the pass, which fails on it or
// goes on.
func (l *importLocks) check() error {
	for _, rl := range l.locks {
		if err := rl.Check(); errors.Is(err, store.ErrLockLost) {
			return fmt.Errorf("%s %w; another command may be writing what it loads: "+
				"once it ends, run the same command again (what is stored is kept)", l.cmd, err)
		}
	}
	return nil
}

// context is ctx, ended (its cause wrapping store.ErrLockLost) when one of the locks held, or
// taken later, is lost; stop releases it. It is made once.
func (l *importLocks) context(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	l.lost = cancel
	for _, rl := range l.locks {
		l.watch(rl)
	}
	return ctx, func() {
		for _, s := range l.stops {
			s()
		}
		cancel(nil)
	}
}

// watch ends the context of context when rl is lost.
func (l *importLocks) watch(rl *store.RunLock) {
	lctx, lost := rl.Context(), l.lost
	l.stops = append(l.stops, context.AfterFunc(lctx, func() {
		if cause := context.Cause(lctx); errors.Is(cause, store.ErrLockLost) {
			lost(cause)
		}
	}))
}

// checkAtEnd is what an import does as it ends (deferred, before release): a lock lost after
// the last check is said, with the import's own error beside it unless that is the stop the
// loss caused.
func (l *importLocks) checkAtEnd(err *error) {
	if lerr := l.check(); lerr != nil {
		if *err != nil && !errors.Is(*err, store.ErrLockLost) && !errors.Is(*err, context.Canceled) {
			lerr = errors.Join(lerr, *err)
		}
		*err = lerr
	}
}

// release releases the locks and drops the space the import created when none of its vectors
// (loaded of them) was loaded into it, as import-embeddings drops one it created, and reports
// whether it dropped it.
func (l *importLocks) release(ctx context.Context, loaded int, errw io.Writer) (dropped bool) {
	for _, rl := range l.locks {
		rl.Unlock()
	}
	if !l.created || loaded > 0 {
		return false
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	dropped, err := l.st.DropEmptySpace(cctx, l.space.ID)
	switch {
	case errors.Is(err, paper.ErrNotFound):
	case err != nil:
		fmt.Fprintf(errw, "%s: space %d (%s) was created and nothing loaded into it; `paperpipe spaces drop %d` drops it: %v\n",
			l.cmd, l.space.ID, l.space.Name(), l.space.ID, err)
	case dropped:
		fmt.Fprintf(errw, "%s: no vector loaded: space %s, created by this import, was removed again\n", l.cmd, l.space.Name())
	}
	return dropped
}

// importPapers stores the papers of the export at path, chunk per transaction
// (store.UpsertPapers, as a worker stores a message's: a paper stored with a newer text keeps
// it, one removed here since the exported text was written is not stored again). Each line is
// read as ingest reads a JSON line (the same id, text and metadata), with the source the old
// archive recorded, as the time of its text its updated_at and, for a paper not stored here
// yet, its created_at: lists order it as the old archive did. Bad lines are reported on
// errw with file:line and skipped. claim, when not nil, is called with each good line before
// its paper is stored; an error from it stops the pass.
func importPapers(ctx context.Context, st *store.Store, path string, chunk int, claim func(context.Context, movedLine) error, errw io.Writer) (res importPapersResult, err error) {
	defer func() {
		if err != nil && ctx.Err() != nil {
			err = fmt.Errorf("interrupted; the %s stored so far are kept: run the same command again to import the rest: %w",
				plural(res.Stored, "paper", "papers"), err)
		}
	}()
	src, closer, err := ingest.OpenInput(ctx, path)
	if err != nil {
		return res, fmt.Errorf("open export: %w", err)
	}
	defer closer.Close()
	const want = `JSON lines of paperpipe export, {"id", "title", "abstract", "content_hash", …}`
	cr, err := ingest.Decode(src, path, "import", want)
	if err != nil {
		return res, err
	}
	name := ingest.Name(path)
	prog := newProgress(errw, path)
	br := bufio.NewReaderSize(cr, 1<<20)
	var buf []paper.Abstract
	var withheld []store.Withheld // of buf's papers
	good := 0                     // lines taken so far
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		pend, err := st.UpsertPapers(ctx, buf, store.Work{})
		if err != nil {
			return err
		}
		// After their papers: a record of a paper not stored (removed here) is not made, and
		// one of a text this archive holds a newer one of never matches it.
		n, err := st.RecordWithheld(ctx, withheld)
		if err != nil {
			return err
		}
		res.Withheld += n
		withheld = withheld[:0]
		for _, p := range pend {
			if p.Removed {
				res.Removed++
			} else {
				res.Stored++
				if p.New {
					res.New++
				}
			}
		}
		buf = buf[:0]
		return nil
	}
	bads := &badLines{errw: errw, name: name, count: &res.Bad}
	bad := func(line int, msg string) { bads.add(line, "%s", msg) }
	for n := 1; ; n++ {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		line, end, rerr := nextExportLine(br)
		if end {
			break
		}
		if rerr != nil {
			if err := flush(); err != nil {
				return res, err
			}
			return res, fmt.Errorf("%s:%d: reading stopped: %w; the papers before it were stored", name, n, rerr)
		}
		res.Lines++
		if len(line) == 0 || recordKind(line) != "" {
			continue // a record of the export that is no paper: the vectors' pass stores a model
		}
		if good == 0 && res.Bad >= maxBadLead {
			// Another file (a paperpipe embed's vectors, a spreadsheet): each line would be
			// one more message.
			return res, fmt.Errorf("%s: the first %d lines are all bad, so this is not an export of paperpipe (%s); stopped, nothing was stored: %w",
				name, maxBadLead, want, paper.ErrInvalid)
		}
		a, err := exportedAbstract(line, name)
		if err != nil {
			bad(n, err.Error())
			continue
		}
		good++
		var m movedLine
		if err := json.Unmarshal(line, &m); err != nil {
			bad(n, fmt.Sprintf("%s: not a line of paperpipe export: %v", a.ID, err))
			continue
		}
		if m.Source != "" && validText("the source", m.Source) == "" {
			a.Source = m.Source
		} else {
			a.Source = fmt.Sprintf("%s:%d", name, n)
		}
		a.TextAt, a.CreatedAt = m.UpdatedAt, m.CreatedAt
		if claim != nil {
			if err := claim(ctx, m); err != nil {
				if ferr := flush(); ferr != nil {
					return res, ferr
				}
				return res, fmt.Errorf("%s:%d: %w", name, n, err)
			}
		}
		if m.TLDR != "" {
			res.TLDRs++
		}
		if len(m.Embedding) > 0 {
			res.Vectors++
		}
		if w := m.TLDRWithheld; w != nil && m.TLDR == "" {
			if w.Model == "" || w.PromptVersion == "" {
				bad(n, fmt.Sprintf("%s: tldr_withheld without its model or prompt_version; the paper is stored, not the record", a.ID))
			} else if verr := cmp.Or(validName("tldr_withheld's model", w.Model), validName("tldr_withheld's prompt_version", w.PromptVersion),
				validText("tldr_withheld's reason", w.Reason)); verr != "" {
				bad(n, fmt.Sprintf("%s: %s; the paper is stored, not the record of its TL;DR the API withheld", a.ID, verr))
			} else {
				withheld = append(withheld, store.Withheld{PaperID: a.ID, Model: w.Model, PromptVersion: w.PromptVersion,
					ContentHash: a.ContentHash(), Reason: w.Reason, At: w.At})
			}
		}
		buf = append(buf, a)
		if len(buf) >= chunk {
			if err := flush(); err != nil {
				return res, fmt.Errorf("%s:%d: %w", name, n, err)
			}
		}
		prog.tick(res.Lines, cr.Offset())
	}
	if err := flush(); err != nil {
		return res, fmt.Errorf("%s: %w", name, err)
	}
	prog.done(cr.Offset())
	removed := ""
	if res.Removed > 0 {
		removed = fmt.Sprintf(", %s removed here since (not stored again)", plural(res.Removed, "paper", "papers"))
	}
	held := ""
	if res.New < res.Stored {
		held = fmt.Sprintf(" (%d of them new here, the others held already)", res.New)
	}
	if res.Withheld > 0 {
		removed += fmt.Sprintf(", %s the API withheld recorded (`paperpipe batches withheld`)", plural(res.Withheld, "TL;DR", "TL;DRs"))
	}
	fmt.Fprintf(errw, "import: %s: %s stored%s%s, %s\n", plural(res.Lines, "line", "lines"),
		plural(res.Stored, "paper", "papers"), held, removed, plural(res.Bad, "bad line", "bad lines"))
	return res, nil
}

// exportedAbstract reads the paper of one export line as ingest reads a JSON line: the same
// id, folded text (with LegacyHash when ingest rewrites it) and metadata. An abstract is read
// as long as any a queue message holds, as remove --from reads them: the old archive stored
// it, perhaps from an ingest with a larger --max-abstract-bytes.
func exportedAbstract(line []byte, name string) (paper.Abstract, error) {
	r, err := ingest.NewReader(bytes.NewReader(line), name,
		ingest.Options{Format: ingest.JSONL, OneRecord: true, Command: "import", MaxAbstractBytes: removeMaxAbstract})
	if err != nil {
		return paper.Abstract{}, err
	}
	a, err := r.Next()
	var rec *ingest.RecordError
	switch {
	case errors.As(err, &rec):
		msg := rec.Err.Error()
		if rec.ID != "" {
			msg = rec.ID + ": " + msg
		}
		return paper.Abstract{}, errors.New(strings.TrimPrefix(msg, "line 1: "))
	case err != nil:
		return paper.Abstract{}, fmt.Errorf("not a paper: %w", err)
	}
	return a, nil
}

// storedHash is the content hash of the text an import stores for the paper of an export
// line whose outputs are of the text hashed by hash. A paper an older release stored with a
// PDF's ligatures or arXiv's TeX accents as they came is exported so, and read with letters
// (its LegacyHash is hash): its TL;DR and vector are of the same text, and go with the new
// form, as the store keeps them when such a paper is ingested again (paper.Abstract.LegacyHash).
// Other lines keep hash. Only a line whose text has a byte outside ASCII, a backslash or a
// brace is read again.
func storedHash(title, abstract, hash string, line []byte, name string) string {
	if title == "" || !mayBeRewritten(title) && !mayBeRewritten(abstract) {
		return hash
	}
	a, err := exportedAbstract(line, name)
	if err != nil || a.LegacyHash == "" || a.LegacyHash != hash {
		return hash
	}
	return a.ContentHash()
}

// mayBeRewritten reports whether ingest may write s otherwise than it is: a ligature is
// outside ASCII, and a TeX accent or font command has a backslash or a brace.
func mayBeRewritten(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r >= 0x80 || r == '\\' || r == '{' })
}

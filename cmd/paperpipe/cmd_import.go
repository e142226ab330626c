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
	"math"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/ingest"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

func cmdImportEmbeddings(ctx context.Context, c *config, args []string) error {
	fs := newFlagSet("import-embeddings", "FILE|-", `Load precomputed vectors with no API call: JSON lines {"id", "embedding": [...], "model"} (optional "dimensions", "template", "content_hash", "truncated"), into the space of that model; `+
		`a vector whose content_hash is not its paper's current text's is skipped as stale. paperpipe embed writes such lines. `+
		`An id may be a JSON number, read as ingest reads it; a gzip-compressed file is read decompressed.`)
	chunk := fs.Int("chunk", 5000, "vectors copied per transaction (1 to 100000)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if *chunk < 1 || *chunk > maxImportChunk {
		return usageErr("--chunk is %d, want 1 to %d vectors per transaction", *chunk, maxImportChunk)
	}
	if len(pos) != 1 {
		return usageErr("name one file, or - for standard input")
	}
	if err := checkFiles(pos[0]); err != nil {
		return err
	}
	log := newLogger(c)
	st, err := openStore(ctx, c, log)
	if err != nil {
		return err
	}
	defer st.Close()
	r, err := importEmbeddings(ctx, st, pos[0], *chunk, os.Stderr)
	if err != nil {
		return err
	}
	if r.Bad > 0 || len(r.Unknown) > 0 {
		others := "the others were loaded"
		if r.Loaded == 0 {
			others = "nothing was loaded"
		}
		return fmt.Errorf("%s rejected and %s skipped (see the messages above); %s",
			plural(r.Bad, "line", "lines"), plural(len(r.Unknown), "unknown paper", "unknown papers"), others)
	}
	return nil
}

// maxImportChunk bounds import-embeddings' --chunk: a transaction of 100,000 768-dimension
// vectors is ~300 MB of COPY data held by the server's temporary table.
const maxImportChunk = 100_000

// maxBadLead is how many bad lines, from the first on, import, import-embeddings and import-tldrs
// report before they stop: a file none of whose first lines is a good line is another file
// (papers, a spreadsheet; vectors, to import-tldrs) or lines that all fail one check, and its
// every line would be one more message.
const maxBadLead = 100

// badLines reports the bad lines of an import as FILE:LINE: reason, counts them in *count, and
// keeps the first for the message that stops a file whose first maxBadLead lines are all bad.
// A reason quotes the line (its id, as written), which is the file's writer's: it is made
// terminal-safe (termSafe).
type badLines struct {
	errw  io.Writer
	name  string
	count *int
	first string // the first bad line's number and reason
}

func (b *badLines) add(line int, format string, args ...any) {
	*b.count++
	msg := termSafe(fmt.Sprintf(format, args...), false)
	if b.first == "" {
		b.first = fmt.Sprintf("line %d: %s", line, msg)
	}
	fmt.Fprintf(b.errw, "%s:%d: %s\n", b.name, line, msg)
}

// vectorLinesWanted is what import-embeddings reads, for the refusal of a PDF or binary data.
const vectorLinesWanted = `JSON lines {"id": "…", "embedding": [numbers], "model": "…"}, as paperpipe embed writes them`

// jsonID is a paper's id in a vector line: a string, or a number taken as its digits, as ingest
// reads a record's id ({"id": 5} is the paper ingest stored as id:5, {"id": 2401.01234} is
// arxiv:2401.01234), so that the vectors of every paper ingested can be imported.
type jsonID string

func (id *jsonID) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && (b[0] == '-' || '0' <= b[0] && b[0] <= '9') {
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return err
		}
		*id = jsonID(n.String())
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*id = jsonID(s)
	return nil
}

// lengthNotMade says why model cannot have made a vector of n values, or "" when it may have:
// the offline hashed embedder (either version) makes 768, and a model whose length is known (embed.
// NativeDimensions) makes at most that many (text-embedding-3 models shorten theirs, no model
// lengthens them). A space of such vectors could serve no query: every query the model embeds
// has another length.
func lengthNotMade(model string, n int) string {
	if embed.IsHashedModel(model) && n != embed.OfflineDimensions {
		return fmt.Sprintf("%s makes vectors of %d values, this one has %d: is \"model\" the model that made it?", termSafe(model, false), embed.OfflineDimensions, n)
	}
	if native := embed.NativeDimensions(model); native > 0 && n > native {
		return fmt.Sprintf("%s makes vectors of at most %d values, this one has %d: is \"model\" the model that made it?", termSafe(model, false), native, n)
	}
	return ""
}

// importResult is what import-embeddings did.
type importResult struct {
	Space   paper.Space
	Lines   int
	Loaded  int
	Stale   int
	Bad     int
	Unknown []string
	// NoVector counts the papers of an export without a vector (of the exported space, or
	// exported without --vectors).
	NoVector int
	// Models names the fitted offline models of the file stored (or held already).
	Models []string
}

// embeddingLine is one line of an embeddings file: what `paperpipe embed` writes and
// `import-embeddings` reads.
type embeddingLine struct {
	ID          jsonID    `json:"id"`
	Embedding   []float32 `json:"embedding"`
	Model       string    `json:"model"`
	Dimensions  int       `json:"dimensions"`
	Template    string    `json:"template"`
	ContentHash string    `json:"content_hash"`
	Truncated   bool      `json:"truncated,omitempty"`
	// Title is set on the lines of `paperpipe export`, which are papers: one without an
	// embedding but with its space's model (an export with vectors) is a paper without a
	// vector in that space, not a bad line. A file of papers, or an export without vectors,
	// has no model: its lines are bad.
	Title string `json:"title,omitempty"`
	// Abstract is set on the lines of `paperpipe export`: with Title, the text the vector is of
	// (storedHash).
	Abstract string `json:"abstract,omitempty"`
}

// importEmbeddings streams path into the space its first good line names, chunk by chunk with
// COPY; a space it creates gets its HNSW index after the load. Bad lines — among them a value
// the target space cannot store, beyond half precision's range in a space indexed on halfvec —
// are reported on errw with file:line and skipped. An input that cannot be read to its end (a
// gzip-compressed file cut short) is loaded up to the error, and the error returned after the
// space is finished. The space is created at the first chunk to
// load, and dropped again when the import stores nothing in it (every line bad, stale or of an
// unknown paper, or the load failed): an import never leaves an empty space behind, nor makes
// one active.
//
// From before it loads the first vector to its end it holds the run lock of the space that
// import holds (importLocks): a `paperpipe reprocess` or `fit` filling the space is refused
// meanwhile, as it is during an import, and one running stops it before it loads a vector,
// saying what holds the lock; a lock lost meanwhile (its session ended, another run took it)
// stops it, saying so.
func importEmbeddings(ctx context.Context, st *store.Store, path string, chunk int, errw io.Writer) (res importResult, err error) {
	locks := newImportLocks(st, "import-embeddings")
	defer func() {
		if locks.release(ctx, res.Loaded, errw) {
			res.Space.ID, res.Space.Active = 0, false
		}
	}()
	lctx, stop := locks.context(ctx)
	defer stop()
	defer locks.checkAtEnd(&err)
	return loadEmbeddings(lctx, st, path, chunk, 0, locks.claimSpace, errw)
}

// loadEmbeddings is importEmbeddings without its lock, for a caller that holds it (import) and
// that created space made (import, which creates the space to lock it before its papers' pass;
// 0 for none) and drops it again when nothing is loaded: made gets no index when no vector is
// loaded into it — one built on nothing would keep the caller from dropping the space as
// empty. claim, when not nil, is called with the space, once it exists, and whether this load
// created it, before each chunk is loaded into it; an error from it stops the load. A space
// created and claimed is the claimer's to drop when nothing is loaded into it.
func loadEmbeddings(ctx context.Context, st *store.Store, path string, chunk int, made int64,
	claim func(ctx context.Context, sp paper.Space, created bool) error, errw io.Writer) (res importResult, err error) {
	if chunk <= 0 {
		chunk = 5000
	}
	defer func() {
		// Interrupted (Ctrl-C, SIGTERM), the load or the index build failed with only
		// "context canceled", and left a space without its index, which queries scan whole.
		if err == nil || ctx.Err() == nil {
			return
		}
		if res.Loaded == 0 || res.Space.ID == 0 {
			err = fmt.Errorf("interrupted; nothing was loaded: %w", err)
			return
		}
		err = fmt.Errorf("interrupted; the %s loaded into space %d (%s) are kept: run the same command again "+
			"to load the rest and build the space's index, which a space this import created does not have yet: %w",
			plural(res.Loaded, "vector", "vectors"), res.Space.ID, res.Space.Name(), err)
	}()
	// Ctrl-C stops a read (or a named pipe's open) waiting for a stalled producer at once.
	src, closer, err := ingest.OpenInput(ctx, path)
	if err != nil {
		return res, fmt.Errorf("open embeddings: %w", err)
	}
	defer closer.Close()
	prog := newCountProgress(errw, path, 0, "records")
	if path != "-" {
		prog = newProgress(errw, path)
	}
	// As ingest reads its sources: gzip-compressed input decompressed; UTF-16 text, a zip
	// archive, a PDF or binary data refused at once, saying what it is.
	cr, err := ingest.Decode(src, path, "import-embeddings", vectorLinesWanted)
	if err != nil {
		return res, err
	}
	name := ingest.Name(path)
	br := bufio.NewReaderSize(cr, 1<<20)
	good := 0 // lines taken so far
	var (
		space   paper.Space // the file's space; ID 0 until it exists
		have    bool        // space is known (from the first good line)
		created bool        // this import created space
		claimed bool        // claim took space, which is then the claimer's to drop
		half    bool        // space is indexed on halfvec
		kind    store.IndexKind
		buf     []paper.Embedding
		lineOf  = map[string]int{}
	)
	defer func() {
		if !created || res.Loaded > 0 || claimed {
			return
		}
		// Also after an interruption or a failed load: the space is of no use empty.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		dropped, derr := st.DropEmptySpace(cctx, space.ID)
		switch {
		case errors.Is(derr, paper.ErrNotFound):
			// Dropped by someone else meanwhile (the load failed for it): nothing left to do.
		case derr != nil:
			fmt.Fprintf(errw, "import-embeddings: space %d (%s) was created and nothing loaded into it; `paperpipe spaces drop %d` drops it: %v\n",
				space.ID, space.Name(), space.ID, derr)
		case dropped:
			fmt.Fprintf(errw, "import-embeddings: no vector loaded: space %s, created by this import, was removed again\n", space.Name())
			res.Space.ID, res.Space.Active = 0, false
		}
	}()
	isObject := false                // a line parsed as a JSON object, whatever its fields hold
	models := &modelRestorer{st: st} // the fitted offline model of an export's space
	bads := &badLines{errw: errw, name: name, count: &res.Bad}
	bad := bads.add
	// lead is the error that ends an import whose first maxBadLead lines are all bad. It says
	// what the file is only when no line was a JSON object: a file of vector lines that all fail one
	// check (a dimensions that disagrees with the vectors) is still one, and is told why.
	lead := func() error {
		if !isObject {
			return fmt.Errorf("%s: the first %d lines are all bad and none is a JSON object, so this is not a file of paperpipe's vector lines (%s); the first, %s; stopped, nothing was loaded: %w",
				name, maxBadLead, vectorLinesWanted, bads.first, paper.ErrInvalid)
		}
		return fmt.Errorf("%s: the first %d lines are all bad (the first, %s); stopped, nothing was loaded: %w",
			name, maxBadLead, bads.first, paper.ErrInvalid)
	}
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		if space.ID == 0 {
			sp, c, err := st.EnsureSpaceForLoad(ctx, space)
			if err != nil {
				return err
			}
			space, created, res.Space = sp, c, sp
		}
		if claim != nil {
			if err := claim(ctx, space, created); err != nil {
				return err
			}
			claimed = true
		}
		first, last := math.MaxInt, 0
		for _, n := range lineOf {
			first, last = min(first, n), max(last, n)
		}
		lr, err := loadWaitingForLocks(ctx, st, space.ID, buf, fmt.Sprintf("%s:%d-%d", name, first, last), errw)
		if err != nil {
			return fmt.Errorf("%s:%d-%d: %w", name, first, last, err)
		}
		res.Loaded += lr.Loaded
		res.Stale += lr.Stale
		for _, id := range lr.Unknown {
			fmt.Fprintf(errw, "%s:%d: unknown paper %s: skipped\n", name, lineOf[id], termSafe(id, false)) // as badLines' ids
		}
		res.Unknown = append(res.Unknown, lr.Unknown...)
		buf = buf[:0]
		clear(lineOf)
		return nil
	}
	// readErr ends the reading of an input that cannot be read to its end (a gzip-compressed
	// file cut short): the lines before it are loaded and the space finished as at the end of
	// the file, since running the import again would stop at the same place, and the error is
	// returned then.
	var readErr error
	for n := 1; readErr == nil; n++ {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		raw, err := br.ReadBytes('\n')
		if len(raw) == 0 && errors.Is(err, io.EOF) {
			break
		}
		if err != nil && !errors.Is(err, io.EOF) {
			// What came before the error is a line cut short, or a last line without its
			// newline whose end was all there: it is taken as a line (one cut short is bad JSON).
			readErr = fmt.Errorf("%s:%d: reading stopped: %w; the lines before it were imported as said above, the rest of the file was not read",
				name, n, err)
			if len(raw) == 0 {
				break
			}
		}
		res.Lines++
		const bom = "\xef\xbb\xbf" // a UTF-8 byte order mark, as editors on Windows write
		if n == 1 {
			raw = bytes.TrimPrefix(raw, []byte(bom))
		}
		text := strings.TrimSpace(string(raw))
		if text == "" {
			continue
		}
		if strings.HasPrefix(text, bom) {
			bad(n, "the line starts with a UTF-8 byte order mark, which only a file's first line may have")
			continue
		}
		if good == 0 && res.Bad >= maxBadLead {
			return res, lead()
		}
		if kind := recordKind([]byte(text)); kind != "" {
			// A record of an export that is no paper: the fitted offline model of the space
			// its vectors are of is stored (others, of a later release, are skipped).
			isObject = true
			if kind != recordOfflineModel {
				continue
			}
			var ml modelLine
			if jerr := json.Unmarshal([]byte(text), &ml); jerr != nil {
				bad(n, "offline model: %s", embeddingLineProblem(jerr))
				continue
			}
			problem, err := models.add(ctx, n, ml)
			if err != nil {
				return res, fmt.Errorf("%s:%d: %w", name, n, err)
			}
			if problem != "" {
				bad(n, "%s", problem)
			}
			continue
		}
		var l embeddingLine
		if jerr := json.Unmarshal([]byte(text), &l); jerr != nil {
			var te *json.UnmarshalTypeError
			isObject = isObject || errors.As(jerr, &te) && te.Field != ""
			bad(n, "%s", embeddingLineProblem(jerr))
			continue
		}
		isObject = true
		// The paper's id as ingest stored it and every message names it (an unknown paper's
		// too): arxiv:2401.01234 for 2401.01234v2.
		id := string(l.ID)
		if c, err := paper.CanonicalID(id); err == nil {
			id = c
		}
		switch {
		case strings.TrimSpace(string(l.ID)) == "":
			bad(n, "no id")
			continue
		case len(l.Embedding) == 0 && l.Title != "" && l.Model != "":
			res.NoVector++ // a paper of an export with vectors that has none in its space
			continue
		case len(l.Embedding) == 0:
			bad(n, "%s: no embedding", id)
			continue
		case strings.TrimSpace(l.Model) == "":
			bad(n, "%s: no model", id)
			continue
		case l.Dimensions != 0 && l.Dimensions != len(l.Embedding):
			bad(n, "%s: dimensions %d but %d values", id, l.Dimensions, len(l.Embedding))
			continue
		}
		if why := cmp.Or(validName("the model", l.Model), validName("the template", l.Template)); why != "" {
			bad(n, "%s: %s", id, why)
			continue
		}
		if why := lengthNotMade(l.Model, len(l.Embedding)); why != "" {
			bad(n, "%s: %s", id, why)
			continue
		}
		sp := paper.Space{Model: l.Model, Dimensions: len(l.Embedding), Template: l.Template}
		if sp.Template == "" {
			sp.Template = embed.TemplateTitleAbstract
		}
		if !have {
			// The space's index kind says which values it can store: its own when it exists,
			// the store's for a new one.
			info, err := st.FindSpace(ctx, sp.Name())
			switch {
			case err == nil:
				space, kind = info.Space, info.Index
			case errors.Is(err, paper.ErrNotFound):
				space, kind = sp, st.VectorIndex()
			default:
				return res, err
			}
			half = store.HalfvecIndexed(kind, sp.Dimensions)
			have = true
			res.Space = space
		} else if sp.Name() != space.Name() {
			bad(n, "%s: space %s differs from the file's first, %s (one space per file)", id, sp.Name(), space.Name())
			continue
		}
		// A paper of an export stored by an older release with ligatures or TeX accents: its
		// vector is of the text ingest and import store with letters.
		hash := storedHash(l.Title, l.Abstract, l.ContentHash, []byte(text), name)
		e := paper.Embedding{PaperID: id, Vector: l.Embedding, ContentHash: hash, Truncated: l.Truncated}
		if verr := validText("the id", string(l.ID)); verr != "" {
			bad(n, "%q: %s", l.ID, verr) // as written: no paper has it
			continue
		}
		if verr := cmp.Or(validText("the content hash", l.ContentHash), validVector(e.Vector)); verr != "" {
			bad(n, "%s: %s", id, verr)
			continue
		}
		if i := beyondHalf(e.Vector); half && i >= 0 {
			bad(n, "%s: value %d is %v, beyond half precision's range (±%d), which space %s's %s index stores vectors in",
				id, i, e.Vector[i], store.MaxHalfvecValue, space.Name(), kind)
			continue
		}
		if _, dup := lineOf[id]; dup {
			// The last vector of a paper wins; keep the chunk free of repeats.
			if err := flush(); err != nil {
				return res, err
			}
		}
		good++
		lineOf[id] = n
		buf = append(buf, e)
		if len(buf) >= chunk {
			if err := flush(); err != nil {
				return res, err
			}
		}
		prog.tick(res.Lines, cr.Offset())
	}
	if err := flush(); err != nil {
		return res, err
	}
	if problem := models.unfinished(); problem != "" {
		bad(res.Lines, "%s", problem)
	}
	res.Models = models.Restored
	for _, m := range res.Models {
		fmt.Fprintf(errw, "import-embeddings: fitted offline model %s stored (or held already)\n", m)
	}
	prog.done(cr.Offset())
	if space.ID == 0 || (created || space.ID == made) && res.Loaded == 0 {
		fmt.Fprintf(errw, "import-embeddings: %s: no vector loaded, %d stale skipped, %s, %s%s\n",
			plural(res.Lines, "line", "lines"), res.Stale, plural(len(res.Unknown), "unknown paper", "unknown papers"), plural(res.Bad, "bad line", "bad lines"), noVectorNote(res.NoVector))
		if readErr == nil && good == 0 && res.Bad == 0 && res.NoVector > 0 {
			return res, fmt.Errorf("%s: none of its %s has a vector in the space it was exported with",
				name, plural(res.NoVector, "paper", "papers"))
		}
		return res, readErr
	}
	// Also when the space existed: an earlier import into it may have been interrupted before
	// its index was built (a no-op when the index is there).
	if err := buildAfterFill(ctx, st, space.ID); err != nil {
		return res, err
	}
	fmt.Fprintf(errw, "import-embeddings: %s: %s loaded into space %d (%s), %d stale skipped, %s, %s%s\n",
		plural(res.Lines, "line", "lines"), plural(res.Loaded, "vector", "vectors"), space.ID, space.Name(), res.Stale,
		plural(len(res.Unknown), "unknown paper", "unknown papers"), plural(res.Bad, "bad line", "bad lines"), noVectorNote(res.NoVector))
	return res, readErr
}

// noVectorNote is import-embeddings' count of an export's papers without a vector, "" for none.
func noVectorNote(n int) string {
	if n == 0 {
		return ""
	}
	return ", " + plural(n, "paper", "papers") + " without a vector"
}

// importLockedWait is how import-embeddings and import-tldrs wait for paper rows another
// session holds locked (a save that fails with paper.ErrLocked, after the store's
// RowLockTimeout), as a Batch API collection does: they save the chunk again every pause, up to
// tries times — a few minutes, for an operator's transaction to end — then stop.
var importLockedWait = struct {
	tries int
	pause time.Duration
}{tries: 24, pause: 5 * time.Second}

// loadWaitingForLocks loads embs into space spaceID (store.LoadEmbeddings), waiting for locked
// papers as waitForLockedPapers does.
func loadWaitingForLocks(ctx context.Context, st *store.Store, spaceID int64, embs []paper.Embedding, where string, errw io.Writer) (store.LoadResult, error) {
	return waitForLockedPapers(ctx, where, errw, func() (store.LoadResult, error) {
		return st.LoadEmbeddings(ctx, spaceID, embs)
	})
}

// waitForLockedPapers runs save, an import's save of a chunk. While papers of it are locked by
// another session it says on errw, once, which ones where holds them up, and tries again (see
// importLockedWait): without a bound, the import waited silently for as long as the lock
// lasted — a transaction left open in psql, for good; without the retry it stopped at the
// store's RowLockTimeout, the chunk's other papers unsaved.
func waitForLockedPapers[T any](ctx context.Context, where string, errw io.Writer, save func() (T, error)) (T, error) {
	start := time.Now()
	for try := 1; ; try++ {
		r, err := save()
		if !errors.Is(err, paper.ErrLocked) || ctx.Err() != nil {
			return r, err
		}
		what := "papers of these lines"
		if locked := (*paper.LockedError)(nil); errors.As(err, &locked) {
			what = pick(len(locked.IDs), "paper ", "papers ") + clip(strings.Join(locked.IDs, ", "), 200)
		}
		if try > importLockedWait.tries {
			return r, fmt.Errorf("%w; %s still locked by another session after %s: run the same command again once its transaction has ended "+
				"(pg_stat_activity shows it, as 'idle in transaction' when it was left open)", err, what, time.Since(start).Round(time.Second))
		}
		if try == 1 {
			fmt.Fprintf(errw, "%s: waiting for %s, which another session holds locked (a transaction left open?); "+
				"trying again for a few minutes, Ctrl-C stops\n", where, what)
		}
		select {
		case <-ctx.Done():
		case <-time.After(importLockedWait.pause):
		}
	}
}

// embeddingLineProblem says in plain words what is wrong with a line json.Unmarshal refused,
// without Go's type names ("json: cannot unmarshal number into Go struct field embeddingLine.id
// of type string").
func embeddingLineProblem(err error) string {
	const want = `want a JSON object {"id": "…", "embedding": [numbers], "model": "…"}`
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te) && te.Field == "":
		return fmt.Sprintf("the line is a JSON %s; %s", te.Value, want)
	case errors.As(err, &te) && te.Field == "embedding" && te.Type.Kind() == reflect.Float32:
		if v, ok := strings.CutPrefix(te.Value, "number "); ok {
			return fmt.Sprintf("embedding holds %s, beyond the range of a 32-bit float", v)
		}
		return fmt.Sprintf("embedding holds a JSON %s, want numbers only", te.Value)
	case errors.As(err, &te) && te.Field == "id":
		return fmt.Sprintf(`id is a JSON %s, want a string ("2401.01234") or a number`, strings.Fields(te.Value)[0])
	case errors.As(err, &te):
		if v, ok := strings.CutPrefix(te.Value, "number "); ok && te.Type.Kind() == reflect.Int {
			return fmt.Sprintf("%s is %s, want a whole number", te.Field, v)
		}
		kind := map[reflect.Kind]string{reflect.String: "a string", reflect.Slice: "an array of numbers",
			reflect.Int: "a whole number", reflect.Bool: "true or false"}[te.Type.Kind()]
		return fmt.Sprintf("%s is a JSON %s, want %s", te.Field, strings.Fields(te.Value)[0], cmp.Or(kind, "another type"))
	case errors.As(err, &se) && strings.HasPrefix(se.Error(), "unexpected end"):
		return "truncated JSON: the line ends before its object is closed"
	case errors.As(err, &se):
		return fmt.Sprintf("malformed JSON at byte %d: %v; %s", se.Offset, se, want)
	}
	return fmt.Sprintf("malformed JSON: %v", err)
}

// beyondHalf returns the index of v's first value beyond half precision's range, or -1.
func beyondHalf(v []float32) int {
	for i, x := range v {
		if math.Abs(float64(x)) > store.MaxHalfvecValue {
			return i
		}
	}
	return -1
}

// validVector says what is wrong with a vector ("" when nothing).
func validVector(v []float32) string {
	switch bad, zero := paper.VectorFault(v); {
	case bad >= 0:
		return fmt.Sprintf("value %d is not a finite number", bad)
	case zero:
		return "the zero vector (no direction: it cannot be anyone's neighbour)"
	}
	return ""
}

// validText says what is wrong with s as text the store can hold ("" when nothing): the store
// refuses a whole chunk for one such line, so the line is refused on its own first.
func validText(what, s string) string {
	switch {
	case !utf8.ValidString(s):
		return what + " is not valid UTF-8"
	case strings.IndexByte(s, 0) >= 0:
		return what + " contains a NUL byte"
	}
	return ""
}

// validName says what is wrong with s as a name paperpipe gives what it stores — a TL;DR's
// model and prompt version, a space's model and template — read from a file ("" when
// nothing): text the store can hold (validText) with no control or format character. These
// names are printed as they are (show, tldrs, spaces, every message naming a space), and one
// from another archive's export, or whoever wrote the file, could carry an escape sequence
// to the terminal (OSC 0 sets its title, CSI 2J clears it) or a bidi override; no model
// server names a model so.
func validName(what, s string) string {
	if v := validText(what, s); v != "" {
		return v
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return fmt.Sprintf("%s holds the control character %s, which no name has", what, strconv.QuoteRune(r))
		}
	}
	return ""
}

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
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/ingest"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
	"github.com/paperpipe/paperpipe/summarize"
)

// exportLine is one line of `paperpipe export`: a paper with its metadata and times, its
// TL;DR (tldr, tldr_model, tldr_prompt_version) and its vector (embedding, model, dimensions,
// template, content_hash, truncated: the keys of `paperpipe embed`'s lines, so that
// import-embeddings reads an export as it reads those; model, dimensions and template, the
// space's, are on every line of an export with vectors). ingest reads the paper's keys and
// ignores the rest.
type exportLine struct {
	ID          string     `json:"id"`
	Title       string     `json:"title"`
	Abstract    string     `json:"abstract"`
	Authors     []string   `json:"authors,omitempty"`
	Categories  []string   `json:"categories,omitempty"`
	Published   *time.Time `json:"published,omitempty"`
	URL         string     `json:"url,omitempty"`
	Source      string     `json:"source,omitempty"`
	ContentHash string     `json:"content_hash"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`

	TLDR              string `json:"tldr,omitempty"`
	TLDRModel         string `json:"tldr_model,omitempty"`
	TLDRPromptVersion string `json:"tldr_prompt_version,omitempty"`
	TLDRValidation    string `json:"tldr_validation,omitempty"`
	// TLDRCreatedAt is when the TL;DR was written: import-tldrs dates it so, and lists, which
	// show a paper's newest TL;DR, rank it as the old archive did.
	TLDRCreatedAt *time.Time `json:"tldr_created_at,omitempty"`
	// TLDRWithheld, on a paper without a TL;DR, is the record of the API withholding it for
	// the line's text (its content filter, or the model's refusal: `batches withheld`): import
	// keeps it, and no run there asks for that TL;DR again. An object of its own, not
	// tldr_model: import-tldrs (of this release or an earlier one) takes the line for a paper
	// without a TL;DR.
	TLDRWithheld *withheldNote `json:"tldr_withheld,omitempty"`

	Embedding  []float32 `json:"embedding,omitempty"`
	Model      string    `json:"model,omitempty"`
	Dimensions int       `json:"dimensions,omitempty"`
	Template   string    `json:"template,omitempty"`
	Truncated  bool      `json:"truncated,omitempty"`
}

// exportOptions are the flags of `paperpipe export`.
type exportOptions struct {
	out      string // file, "-" for standard output; FILE.gz is written gzip-compressed
	tldr     store.TLDRKeep
	vectors  bool   // the active space's vectors, or space's
	space    string // the space whose vectors go with the papers (--space); "" the active one
	since    time.Time
	category string
	idsFile  string
}

// exportResult is what an export wrote.
type exportResult struct {
	Papers, TLDRs, Vectors int64
	Space                  paper.Space // with ID 0 when no vectors were asked for
	// Model is the fitted offline model of Space written after the papers, "" when none.
	Model string
}

func cmdExport(ctx context.Context, c *config, args []string) error {
	fs := newFlagSet("export", "", "Write the archive as JSON lines, one a paper: id, title, abstract, authors, categories, published, url, source, "+
		"content_hash, created_at, updated_at; its TL;DR of the configured model and prompt version (tldr, tldr_model, tldr_prompt_version), "+
		"when it has one of its current text; with --vectors or --space, its vector (embedding, model, dimensions, template, truncated), "+
		"and after the papers the space's fitted offline model, when it is one (lines {\"record\": \"offline_model\", …}, which paperpipe import stores). "+
		"`paperpipe ingest` reads the file back as papers, `paperpipe import-embeddings` as vectors. One consistent snapshot of the archive, "+
		"read as it is written: workers go on writing meanwhile.")
	var o exportOptions
	var since, tldr string
	fs.StringVar(&o.out, "o", "-", "write to `FILE` (.gz: gzip-compressed), made whole or not at all: written as FILE.partial and renamed at the end; - for standard output")
	fs.StringVar(&tldr, "tldr", "", "the TL;DRs of `MODEL[@VERSION]` (without @VERSION, the prompt version paperpipe writes with that model and PAPERPIPE_TLDR_MAX_WORDS; paperpipe tldrs lists those stored) instead of the configured model's; none: no TL;DR")
	fs.BoolVar(&o.vectors, "vectors", false, "add each paper's vector in the active space (about 9 KB a paper at 768 dimensions, 6 times its text)")
	fs.StringVar(&o.space, "space", "", "add each paper's vector in this space (`ID` or model/dimensions/template, as paperpipe spaces lists them) instead of the active one's; implies --vectors")
	fs.StringVar(&since, "since", "", "only papers stored, or whose text changed, since `DATE` (2006-01-02 or RFC 3339), by their updated_at")
	fs.StringVar(&o.category, "category", "", "only papers of this `category` (exactly as stored: cs.LG)")
	fs.StringVar(&o.idsFile, "ids", "", "only the papers listed in `FILE` (one id per line; - for stdin)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if since != "" {
		t, err := parseDate(since)
		if err != nil {
			return usageErr("--since %q: want a date like 2024-01-31 or an RFC 3339 time", since)
		}
		o.since = t
	}
	switch {
	case tldr == "":
		o.tldr = configuredTLDR(c)
	case tldr == "none":
	default:
		model, version, _ := strings.Cut(tldr, "@")
		if model == "" || strings.HasSuffix(tldr, "@") {
			return usageErr("--tldr %q: want MODEL or MODEL@VERSION (paperpipe tldrs lists them), or none", tldr)
		}
		if version == "" {
			cc := *c
			cc.ChatModel = model
			o.tldr = configuredTLDR(&cc)
		} else {
			o.tldr = store.TLDRKeep{Model: model, PromptVersion: version}
		}
	}
	o.vectors = o.vectors || o.space != ""
	log := newLogger(c)
	st, err := openStore(ctx, c, log)
	if err != nil {
		return err
	}
	defer st.Close()
	_, err = runExport(ctx, st, o, os.Stderr)
	return err
}

// runExport writes the papers o selects to o.out, saying on errw what it wrote.
func runExport(ctx context.Context, st *store.Store, o exportOptions, errw io.Writer) (res exportResult, err error) {
	sel := store.ExportSelection{TLDR: o.tldr, Since: o.since, Category: o.category}
	if o.idsFile != "" {
		if sel.IDs, err = readIDs(ctx, "export", o.idsFile); err != nil {
			return res, err
		}
	}
	if o.vectors {
		if o.space == "" {
			sp, err := st.ActiveSpace(ctx)
			if errors.Is(err, paper.ErrNotFound) {
				return res, fmt.Errorf("--vectors: no space is active: name one with --space (paperpipe spaces lists them)")
			}
			if err != nil {
				return res, err
			}
			res.Space = sp
		} else {
			sp, err := st.ResolveSpace(ctx, o.space)
			if err != nil {
				return res, fmt.Errorf("--space: %w", err)
			}
			res.Space = sp.Space
		}
		sel.SpaceID = res.Space.ID
	}
	// The fitted offline model of the space, which a query or a new paper is embedded with in
	// the archive the export moves to (its lines follow the papers'). Read before the papers:
	// a model is never changed, only removed with its last space.
	var model *store.OfflineModel
	if embed.IsFittedModel(res.Space.Model) {
		m, err := st.OfflineModel(ctx, res.Space.Model)
		switch {
		case errors.Is(err, paper.ErrNotFound):
			fmt.Fprintf(errw, "export: warning: space %d's fitted offline model %s is not in this archive, and not in the export: "+
				"after an import, `paperpipe fit` there makes it again\n", res.Space.ID, res.Space.Model)
		case err != nil:
			return res, err
		default:
			model = &m
		}
	}
	name := "standard output"
	var (
		w    io.Writer = stdout
		file *os.File
		tmp  string // dest's partial file, renamed over it once whole
		dest string
	)
	if asIs, regular := writtenAsIs(o.out); asIs {
		// A device or a named pipe (/dev/null, a FIFO a loader reads), or the name of a file
		// descriptor (/dev/stdout), is written as it is: no file is made beside it, nor
		// renamed over it. A regular file so named is the one the shell opened for the
		// descriptor (> papers.jsonl, >> papers.jsonl), written at its end.
		name = o.out
		flags := os.O_WRONLY
		if regular {
			flags |= os.O_APPEND
		}
		if file, err = os.OpenFile(o.out, flags, 0); err != nil {
			return res, fmt.Errorf("export: %w", err)
		}
		defer file.Close()
		w, file = file, nil
	} else if o.out != "-" {
		name = o.out
		// Written whole or not at all: a file cut short by Ctrl-C, a full disk or a lost
		// database is never left under the name of a whole one.
		// A symbolic link is written through, as cp does: the file it leads to is replaced
		// (the partial file made beside it), and the link stays; one that leads nowhere is
		// refused. A file replaced keeps its mode: a private export stays private.
		dest = o.out
		if fi, lerr := os.Lstat(o.out); lerr == nil && fi.Mode()&os.ModeSymlink != 0 {
			if dest, err = filepath.EvalSymlinks(o.out); err != nil {
				return res, fmt.Errorf("export: %s is a symbolic link to a file that cannot be reached: %w", o.out, err)
			}
		}
		var keep os.FileMode
		if fi, serr := os.Stat(dest); serr == nil && fi.Mode().IsRegular() {
			keep = fi.Mode().Perm()
		}
		tmp = dest + ".partial"
		file, err = os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o666)
		if err != nil {
			return res, fmt.Errorf("export: %w", err)
		}
		if keep != 0 {
			if err = file.Chmod(keep); err != nil {
				file.Close()
				os.Remove(tmp)
				return res, fmt.Errorf("export: keep %s's mode: %w", o.out, err)
			}
		}
		w = file
		defer func() {
			if file != nil {
				file.Close()
				os.Remove(tmp)
				err = fmt.Errorf("%w; %s was not written (nor is %s left)", err, o.out, tmp)
			}
		}()
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	var (
		out io.Writer = bw
		gz  *gzip.Writer
	)
	if strings.HasSuffix(o.out, ".gz") {
		// Its fastest level: the standard library's default compressed 200k papers with their
		// 768-value vectors (2 GB) at 6 MB/s, 5.7 minutes of CPU; this one at 64 MB/s, to
		// 2.7 times smaller (the default, 2.9).
		gz, _ = gzip.NewWriterLevel(bw, gzip.BestSpeed) // a valid level: no error
		out = gz
	}
	enc := newJSONEncoder(out)
	var prog *progress
	err = st.Export(ctx, sel, func(n int64) {
		prog = newCountProgress(errw, "export", n, "papers")
	}, func(p store.ExportedPaper) error {
		l := exportLine{
			ID: p.ID, Title: p.Title, Abstract: p.Abstract.Abstract, Authors: p.Authors, Categories: p.Categories,
			URL: p.URL, Source: p.Source, ContentHash: p.ContentHash, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt,
		}
		if !p.Published.IsZero() {
			l.Published = &p.Published
		}
		if t := p.TLDR; t != nil {
			l.TLDR, l.TLDRModel, l.TLDRPromptVersion, l.TLDRValidation = t.Text, t.Model, t.PromptVersion, t.Validation
			if !t.WrittenAt.IsZero() {
				at := t.WrittenAt.UTC()
				l.TLDRCreatedAt = &at
			}
			res.TLDRs++
		}
		if w := p.Withheld; w != nil {
			l.TLDRWithheld = &withheldNote{Model: w.Model, PromptVersion: w.PromptVersion, Reason: w.Reason, At: w.At.UTC()}
		}
		if res.Space.ID != 0 {
			// On every line, with a vector or not: import-embeddings tells a paper of this
			// space without a vector from a line that is no vector line at all.
			l.Model, l.Dimensions, l.Template = res.Space.Model, res.Space.Dimensions, res.Space.Template
		}
		if e := p.Embedding; e != nil {
			l.Embedding, l.Truncated = e.Vector, e.Truncated
			res.Vectors++
		}
		if err := enc.Encode(l); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		res.Papers++
		prog.tick(int(res.Papers), 0)
		return nil
	})
	if err == nil && model != nil {
		for _, l := range modelLines(*model) {
			if err = enc.Encode(l); err != nil {
				err = fmt.Errorf("write %s: %w", name, err)
				break
			}
		}
		if err == nil {
			res.Model = model.Name
		}
	}
	if err == nil && gz != nil {
		err = gz.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil && file != nil {
		err = file.Sync()
		if cerr := file.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp, dest)
		}
		if err == nil {
			file = nil
		} else {
			err = fmt.Errorf("write %s: %w", name, err)
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("interrupted after %s: %w", plural(res.Papers, "paper", "papers"), err)
		}
		return res, err
	}
	if prog != nil {
		prog.done(0)
	}
	what := fmt.Sprintf("export: %s to %s", plural(res.Papers, "paper", "papers"), name)
	if o.tldr.Model != "" {
		what += fmt.Sprintf(", %d with a TL;DR of %s %s", res.TLDRs, o.tldr.Model, o.tldr.PromptVersion)
		if res.TLDRs == 0 && res.Papers > 0 {
			// The configured model is not the one that wrote them (no API key here, say).
			what += " (paperpipe tldrs lists the versions stored; --tldr MODEL@VERSION exports one)"
		}
	} else {
		what += ", no TL;DR"
	}
	if res.Space.ID != 0 {
		what += fmt.Sprintf(", %d with a vector of space %d (%s)", res.Vectors, res.Space.ID, res.Space.Name())
		if res.Model != "" {
			what += fmt.Sprintf(", and its fitted offline model (%d KB)", len(model.Data)/1024)
		}
	} else {
		what += ", no vector (--vectors adds them)"
	}
	fmt.Fprintln(errw, what)
	return res, nil
}

// writtenAsIs reports whether export's -o name is written as it is, not made whole beside it
// and renamed over it: a device or a named pipe, or a name of a file descriptor the process
// holds — /dev/stdout, /dev/fd/3, /proc/self/fd/1, or a link to one — which leads to what the
// descriptor is, a regular file when the output is redirected to one (then regular is true).
// A file cannot be made beside such a name in /proc, and one made in /dev (as root) would be
// renamed over the link /dev/stdout, the redirected file left empty.
func writtenAsIs(name string) (asIs, regular bool) {
	if name == "-" {
		return false, false
	}
	fi, err := os.Stat(name)
	if err != nil {
		return false, false
	}
	if !fi.Mode().IsRegular() {
		return true, false
	}
	p := name
	for range 8 { // a link to a link…, as far as a descriptor's name
		if fdName(p) {
			return true, true
		}
		target, err := os.Readlink(p)
		if err != nil {
			return false, false // not a link: a file of the file system
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(p), target)
		}
		p = target
	}
	return false, false
}

// fdName reports whether p names a file descriptor: /dev/stdout, /dev/stderr, /dev/fd/N,
// /proc/self/fd/N (or another process's, or thread-self's). Not any name in /dev: a file in
// /dev/shm is a file like another.
func fdName(p string) bool {
	abs, err := filepath.Abs(p)
	if err != nil {
		return false
	}
	if abs == "/dev/stdout" || abs == "/dev/stderr" || strings.HasPrefix(abs, "/dev/fd/") {
		return true
	}
	parts := strings.Split(abs, "/") // "", "proc", "self", "fd", "1"
	return len(parts) == 5 && parts[1] == "proc" && parts[3] == "fd"
}

// nextExportLine reads the next line of an export from br (import and import-tldrs read them
// so), trimmed and without a UTF-8 byte order mark: end at the end of the input; err when it
// cannot be read on, the line then lost.
func nextExportLine(br *bufio.Reader) (line []byte, end bool, err error) {
	raw, err := br.ReadBytes('\n')
	if len(raw) == 0 && errors.Is(err, io.EOF) {
		return nil, true, nil
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, false, err
	}
	return bytes.TrimSpace(bytes.TrimPrefix(raw, []byte("\ufeff"))), false, nil
}

// withheldNote is an export line's record of the API withholding the paper's TL;DR of its
// text (store.Withheld, without the paper and text the line gives).
type withheldNote struct {
	Model         string    `json:"model"`
	PromptVersion string    `json:"prompt_version"`
	Reason        string    `json:"reason"`
	At            time.Time `json:"withheld_at"`
}

// tldrLine is what import-tldrs reads of an export line.
type tldrLine struct {
	ID            jsonID    `json:"id"`
	Title         string    `json:"title"`
	Abstract      string    `json:"abstract"`
	ContentHash   string    `json:"content_hash"`
	TLDR          string    `json:"tldr"`
	Model         string    `json:"tldr_model"`
	PromptVersion string    `json:"tldr_prompt_version"`
	Validation    string    `json:"tldr_validation"`
	CreatedAt     time.Time `json:"tldr_created_at"`
}

// importTLDRsResult is what import-tldrs did.
type importTLDRsResult struct {
	Lines, Saved, Skipped, NoTLDR, Bad int
	// Kept counts the TL;DRs not loaded because this archive holds another of the same version
	// made from the same text (store.ImportSummaries).
	Kept int
	// Cleaned counts the TL;DRs that broke the summarizer's rules and were stored cleaned.
	Cleaned int
}

// checkedTLDR holds a TL;DR read from a file to the rules the summarizer holds every TL;DR it
// stores to (summarize.Accept: summarize.Validate at the prompt version's word limit, in the
// abstract's language): a valid one is stored as it is, with its validation outcome; one
// that is not is cleaned as the summarizer cleans an answer and marked paper.ValidCleaned when
// that makes it valid. why says what is wrong when neither works, or the outcome is none
// paperpipe writes. The web, the API and the CLI show a stored TL;DR as it is.
func checkedTLDR(l tldrLine) (text, validation string, cleaned bool, why string) {
	switch l.Validation {
	case "":
		l.Validation = paper.ValidOK
	case paper.ValidOK, paper.ValidRetried, paper.ValidCleaned:
	default:
		return "", "", false, fmt.Sprintf("tldr_validation %q is none paperpipe writes (%s, %s or %s)",
			termSafe(clip(l.Validation, 40), false), paper.ValidOK, paper.ValidRetried, paper.ValidCleaned)
	}
	_, words := summarize.Unversioned(l.PromptVersion)
	verr := summarize.Validate(l.TLDR, l.Abstract, words)
	if verr == nil {
		return l.TLDR, l.Validation, false, ""
	}
	if c := summarize.Clean(l.TLDR, words); summarize.Validate(c, l.Abstract, words) == nil {
		return c, paper.ValidCleaned, true, ""
	}
	return "", "", false, fmt.Sprintf("not a TL;DR paperpipe stores, nor made one by cleaning: %v", verr)
}

func cmdImportTLDRs(ctx context.Context, c *config, args []string) error {
	fs := newFlagSet("import-tldrs", "FILE|-", "Load the TL;DRs of a `paperpipe export` (tldr, tldr_model, tldr_prompt_version) with no API call: "+
		"each under its model and prompt version, for its paper when the paper is stored with the text it was made from (the line's content_hash); "+
		"the others are skipped; one this archive holds of the same version and text is kept. A gzip-compressed file is read decompressed.")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("name one file, or - for standard input")
	}
	if err := checkFiles(pos[0]); err != nil {
		return err
	}
	st, err := openStore(ctx, c, newLogger(c))
	if err != nil {
		return err
	}
	defer st.Close()
	r, err := importTLDRs(ctx, st, pos[0], 1000, os.Stderr)
	if err != nil {
		return err
	}
	if r.Bad > 0 {
		others := "the others were loaded"
		if r.Saved == 0 {
			others = "nothing was loaded"
		}
		return fmt.Errorf("%s rejected (see the messages above); %s", plural(r.Bad, "line", "lines"), others)
	}
	return nil
}

// importTLDRs is import-tldrs: loadTLDRs holding, from before it saves the first TL;DR to its
// end, the run lock of the file's TL;DR version (the first of a file of several) that import
// holds (importLocks): a `paperpipe reprocess` of that version is refused meanwhile, as it is
// during an import, and one running stops it before it saves a TL;DR, saying what holds the
// lock; a lock lost meanwhile (its session ended, another run took it) stops it, saying so.
func importTLDRs(ctx context.Context, st *store.Store, path string, chunk int, errw io.Writer) (res importTLDRsResult, err error) {
	locks := newImportLocks(st, "import-tldrs")
	defer locks.release(ctx, 0, errw)
	lctx, stop := locks.context(ctx)
	defer stop()
	defer locks.checkAtEnd(&err)
	return loadTLDRs(lctx, st, path, chunk, locks.claimTLDRs, errw)
}

// loadTLDRs streams the export at path into the store, chunk TL;DRs per transaction
// (store.ImportSummaries: a TL;DR of another text than its paper's, or of a paper not stored, is
// skipped; one stored under the same model and prompt version of the same text is kept, one of
// an older text replaced). Bad lines are reported on errw with
// file:line and skipped. claim, when not nil, is called with each good TL;DR's model and
// prompt version before it is saved; an error from it stops the load.
func loadTLDRs(ctx context.Context, st *store.Store, path string, chunk int, claim func(ctx context.Context, model, promptVersion string) error,
	errw io.Writer) (res importTLDRsResult, err error) {
	defer func() {
		if err != nil && ctx.Err() != nil {
			err = fmt.Errorf("interrupted; the %s saved so far are kept: run the same command again to load the rest: %w",
				plural(res.Saved, "TL;DR", "TL;DRs"), err)
		}
	}()
	src, closer, err := ingest.OpenInput(ctx, path)
	if err != nil {
		return res, fmt.Errorf("open TL;DRs: %w", err)
	}
	defer closer.Close()
	const want = `JSON lines of paperpipe export, {"id", "content_hash", "tldr", "tldr_model", "tldr_prompt_version", …}`
	cr, err := ingest.Decode(src, path, "import-tldrs", want)
	if err != nil {
		return res, err
	}
	name := ingest.Name(path)
	br := bufio.NewReaderSize(cr, 1<<20)
	var (
		buf         []paper.Summary
		first, last int // buf's lines
	)
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		n, err := waitForLockedPapers(ctx, fmt.Sprintf("%s:%d-%d", name, first, last), errw, func() ([2]int, error) {
			saved, kept, err := st.ImportSummaries(ctx, buf)
			return [2]int{saved, kept}, err
		})
		if err != nil {
			return err
		}
		res.Saved += n[0]
		res.Kept += n[1]
		res.Skipped += len(buf) - n[0] - n[1]
		buf = buf[:0]
		return nil
	}
	good := 0 // lines taken so far: a TL;DR, or a paper exported without one
	bads := &badLines{errw: errw, name: name, count: &res.Bad}
	bad := bads.add
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
			return res, fmt.Errorf("%s:%d: reading stopped: %w; the lines before it were imported", name, n, rerr)
		}
		res.Lines++
		text := string(line)
		if text == "" || recordKind(line) != "" {
			continue // a record of the export that is no paper (a fitted model)
		}
		if good == 0 && res.Bad >= maxBadLead {
			// Another file (paperpipe embed's vectors, a spreadsheet): each of its lines
			// would be one more message.
			return res, fmt.Errorf("%s: the first %d lines are all bad (the first, %s); stopped, nothing was loaded: this is not a file of paperpipe export: %w",
				name, maxBadLead, bads.first, paper.ErrInvalid)
		}
		var l tldrLine
		if jerr := json.Unmarshal([]byte(text), &l); jerr != nil {
			bad(n, "not a line of paperpipe export: %v", jerr)
			continue
		}
		id := string(l.ID)
		if c, err := paper.CanonicalID(id); err == nil {
			id = c
		}
		switch {
		case strings.TrimSpace(id) == "":
			bad(n, "no id")
			continue
		case l.TLDR == "" && l.Model == "" && l.Title != "":
			res.NoTLDR++ // a paper exported without a TL;DR
			good++
			continue
		case strings.TrimSpace(l.TLDR) == "":
			bad(n, "%s: no tldr", id)
			continue
		case l.Model == "" || l.PromptVersion == "":
			bad(n, "%s: no tldr_model or tldr_prompt_version", id)
			continue
		case l.ContentHash == "":
			bad(n, "%s: no content_hash: the text the TL;DR was made from is unknown", id)
			continue
		}
		if verr := invalidField(id, l.ContentHash, l.TLDR, l.Model, l.PromptVersion, l.Validation); verr != "" {
			bad(n, "%s: %s", id, verr)
			continue
		}
		if verr := cmp.Or(validName("tldr_model", l.Model), validName("tldr_prompt_version", l.PromptVersion)); verr != "" {
			bad(n, "%s: %s", id, verr)
			continue
		}
		l.ContentHash = storedHash(l.Title, l.Abstract, l.ContentHash, []byte(text), name)
		text, validation, cleaned, why := checkedTLDR(l)
		if why != "" {
			bad(n, "%s: %s", id, why)
			continue
		}
		if claim != nil {
			if err := claim(ctx, l.Model, l.PromptVersion); err != nil {
				if ferr := flush(); ferr != nil {
					return res, ferr
				}
				return res, fmt.Errorf("%s:%d: %w", name, n, err)
			}
		}
		if cleaned {
			res.Cleaned++
		}
		good++
		if len(buf) == 0 {
			first = n
		}
		last = n
		buf = append(buf, paper.Summary{PaperID: id, Text: text, Model: l.Model, PromptVersion: l.PromptVersion,
			ContentHash: l.ContentHash, Validation: validation, WrittenAt: l.CreatedAt})
		if len(buf) >= chunk {
			if err := flush(); err != nil {
				return res, fmt.Errorf("%s:%d: %w", name, n, err)
			}
		}
	}
	if err := flush(); err != nil {
		return res, fmt.Errorf("%s: %w", name, err)
	}
	cleaned := ""
	if res.Cleaned > 0 {
		cleaned = fmt.Sprintf(" (%d cleaned: they broke the summarizer's rules)", res.Cleaned)
	}
	kept := ""
	if res.Kept > 0 {
		kept = fmt.Sprintf(", %d kept (this archive holds another TL;DR of that version made from the same text, and keeps it)", res.Kept)
	}
	fmt.Fprintf(errw, "import-tldrs: %s: %s saved%s%s, %d skipped (their paper is not stored, or not with that text), %s without a TL;DR, %s\n",
		plural(res.Lines, "line", "lines"), plural(res.Saved, "TL;DR", "TL;DRs"), cleaned, kept, res.Skipped, plural(res.NoTLDR, "paper", "papers"), plural(res.Bad, "bad line", "bad lines"))
	if res.Lines > 0 && res.Saved == 0 && res.Kept == 0 && res.Skipped == 0 && res.Bad == 0 && res.NoTLDR > 0 {
		return res, fmt.Errorf("%s: none of its %s has a TL;DR: an export written with --tldr none, or of a model that wrote none (paperpipe tldrs lists them)",
			name, plural(res.NoTLDR, "paper", "papers"))
	}
	return res, nil
}

// invalidField says what makes the first of ss that is bad text the store cannot hold, "" when none does.
func invalidField(ss ...string) string {
	for _, s := range ss {
		if v := validText("a field", s); v != "" {
			return v
		}
	}
	return ""
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/webstore"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
	"github.com/paperpipe/paperpipe/web"
)

func cmdShow(ctx context.Context, c *config, args []string) error {
	fs := newFlagSet("show", "ID|TITLE", "Show one paper with its TL;DR. A title fragment works when it matches one paper.")
	c.addJSONFlag(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if isHelpWord(pos) {
		return askedHelp(fs)
	}
	if len(pos) == 0 {
		return usageErr("name a paper by id or title fragment")
	}
	st, err := openStore(ctx, c, newLogger(c))
	if err != nil {
		return err
	}
	defer st.Close()
	id, err := st.Resolve(ctx, strings.Join(pos, " "))
	if err != nil {
		return err
	}
	rec, err := st.Paper(ctx, id)
	if err != nil {
		return err
	}
	if c.JSON {
		return writeJSON(stdout, rec)
	}
	printRecord(rec)
	return nil
}

// printRecord prints a paper for the terminal: its text is the source's, made safe (termSafe,
// and in clip and wrap).
func printRecord(r paper.Record) {
	fmt.Fprintf(stdout, "%s\n%s\n", termSafe(r.ID, false), termSafe(r.Title, false))
	if r.TLDR != nil {
		fmt.Fprintf(stdout, "\nTL;DR (%s, %s):\n%s\n", r.TLDR.Model, r.TLDR.PromptVersion, wrap(r.TLDR.Text, 88, "  "))
	} else {
		fmt.Fprintf(stdout, "\nTL;DR: not yet written (is a worker running? or did the paper fail: see `paperpipe dlq list`)\n")
	}
	fmt.Fprintf(stdout, "\nAbstract:\n%s\n", wrap(r.Abstract.Abstract, 88, "  "))
	var meta []string
	if len(r.Authors) > 0 {
		meta = append(meta, "authors: "+clip(strings.Join(r.Authors, ", "), 200))
	}
	if len(r.Categories) > 0 {
		meta = append(meta, "categories: "+termSafe(strings.Join(r.Categories, " "), false))
	}
	if !r.Published.IsZero() {
		meta = append(meta, "published: "+r.Published.Format(time.DateOnly))
	}
	if r.URL != "" {
		meta = append(meta, "url: "+termSafe(r.URL, false))
	}
	if len(meta) > 0 {
		fmt.Fprintf(stdout, "\n%s\n", strings.Join(meta, "\n"))
	}
}

func cmdRelated(ctx context.Context, c *config, args []string) error {
	fs := newFlagSet("related", "ID|TITLE", "List the papers nearest to one paper in the active embedding space.")
	c.addJSONFlag(fs)
	k := fs.Int("k", 10, kHelp)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if isHelpWord(pos) {
		return askedHelp(fs)
	}
	if len(pos) == 0 {
		return usageErr("name a paper by id or title fragment")
	}
	if err := checkK(*k); err != nil {
		return err
	}
	st, err := openStore(ctx, c, newLogger(c))
	if err != nil {
		return err
	}
	defer st.Close()
	id, err := st.Resolve(ctx, strings.Join(pos, " "))
	if err != nil {
		return err
	}
	sp, err := activeSpace(ctx, st)
	if err != nil {
		return err
	}
	hits, err := st.Related(ctx, sp.ID, id, *k)
	if errors.Is(err, paper.ErrNotFound) {
		in, ierr := st.EmbeddedIn(ctx, id)
		if ierr != nil {
			return fmt.Errorf("%w (and the spaces holding a vector of it could not be read: %v)", err, ierr)
		}
		return errors.New(embed.NoVectorHint(id, sp, in))
	}
	if err != nil {
		return err
	}
	if c.JSON {
		// "results", as search --json and GET /api/papers/{id}/related name the list; "related",
		// its name before, for the scripts that read it.
		return writeJSON(stdout, map[string]any{"id": id, "space": sp.Name(), "results": nonNil(hits), "related": nonNil(hits)})
	}
	rec, err := st.Paper(ctx, id)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Related to %s  %s\n(space %s)\n\n", termSafe(id, false), clip(rec.Title, 80), sp.Name())
	printHits(hits)
	return nil
}

func cmdSearch(ctx context.Context, c *config, args []string) error {
	fs := newFlagSet("search", "TEXT", "Find papers by free text. --mode semantic (the default): the papers nearest in meaning, in the active "+
		"embedding space. --mode keyword: PostgreSQL full-text search (English stemming, title weighted above abstract), no embedding model involved. "+
		"--mode hybrid: both rankings fused, as the web UI's search box does. Semantic and hybrid embed the text with the configured "+
		"embedding model (PAPERPIPE_EMBED_MODEL, or --embed-model), which must be the active space's: set it after `paperpipe activate`. "+
		"Quotes, or and -excluded words (web-search syntax) are left out of the text that is embedded, and a paper with an excluded word or phrase "+
		"is left out of the results. A query matching more than PAPERPIPE_KEYWORD_RANK_LIMIT papers (10,000) has only the most recently added "+
		"of them ranked by keyword, and the output says so. A query that starts with - needs -- before it: paperpipe search -- -word other words.")
	c.addJSONFlag(fs)
	c.addEmbedModelFlags(fs)
	k := fs.Int("k", 10, kHelp)
	mode := fs.String("mode", web.ModeSemantic, "semantic, keyword or hybrid")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	q := strings.TrimSpace(strings.Join(pos, " "))
	if q == "" {
		return usageErr("give the text to search for")
	}
	if err := checkK(*k); err != nil {
		return err
	}
	var (
		st  *store.Store
		emb web.QueryVectors // nil in keyword mode: no embedding model involved
	)
	switch *mode {
	case web.ModeKeyword:
		var given string
		fs.Visit(func(f *flag.Flag) {
			if given == "" && (f.Name == "embed-model" || f.Name == "embed-dimensions") {
				given = f.Name
			}
		})
		if given != "" {
			return usageErr("--%s is not for --mode keyword, which involves no embedding model", given)
		}
		if st, err = openStore(ctx, c, newLogger(c)); err != nil {
			return err
		}
	case web.ModeSemantic, web.ModeHybrid:
		if err := c.checkAPI(false, true); err != nil {
			return err
		}
		log, m, s, err := openModelsAndStore(ctx, c)
		if err != nil {
			return err
		}
		st, emb = s, cliQueries{c: c, log: log, emb: m.emb, st: s}
	default:
		return usageErr("--mode is %q, want semantic, keyword or hybrid", *mode)
	}
	defer st.Close()
	// The web's search: the same fallback to keyword search, and the same notices.
	res, err := web.Search(ctx, webstore.Store{Store: st}, emb, q, *k, *mode)
	var nw *web.NoWordsError
	if errors.As(err, &nw) {
		return fmt.Errorf("the query has no words the embedding model %s can use (a stop word, an id, a symbol; excluded words do not count): "+
			"try other words, or a keyword search (--mode keyword)", nw.Model)
	}
	if err != nil {
		return err
	}
	if c.JSON {
		return writeJSON(stdout, res)
	}
	how := res.Mode
	if res.Space != "" {
		how = "space " + res.Space + ", " + how
	}
	fmt.Fprintf(stdout, "Search: %q\n(%s)\n", res.Query, how)
	if res.Notice != "" {
		fmt.Fprintln(stdout, wrap(res.Notice, 90, ""))
	}
	if b := res.BoundedRanking; b != nil {
		fmt.Fprintln(stdout, wrap(fmt.Sprintf("More than %d papers match: the keyword ranking covers only the %d most recently added of them. "+
			"Add words to narrow the search.", b.RankedNewest, b.RankedNewest), 90, ""))
	}
	fmt.Fprintln(stdout)
	printHits(res.Results)
	return nil
}

// cliQueries is `paperpipe search`'s web.QueryVectors: the configured embedder, which must
// make the active space's vectors, and the usage ledger its calls are recorded in.
type cliQueries struct {
	c   *config
	log *slog.Logger
	emb embedder
	st  *store.Store
}

func (q cliQueries) QuerySpace(ctx context.Context) (paper.Space, error) {
	sp, err := activeSpace(ctx, q.st)
	if err != nil {
		return sp, err
	}
	if es := q.emb.Space(); es.Model != sp.Model || es.Dimensions != sp.Dimensions || es.Template != sp.Template {
		return sp, fmt.Errorf("the active space is %s but the configured embedder makes %s; %s%s; "+
			"or search without vectors: --mode keyword: %w",
			sp.Name(), es.Name(), queryEmbedderHint(q.c, sp), q.switchHint(ctx, es), paper.ErrSpaceMismatch)
	}
	return sp, nil
}

// switchHint is the other way out of a mismatch when the configured embedder's space es is in
// the archive: fill it and make it the active one. The hint alone, to configure the active
// space's model, sent back to the old model a user who had just switched to a new one, whose
// workers were filling its space (found in session 28, walking a lab's journey).
func (q cliQueries) switchHint(ctx context.Context, es paper.Space) string {
	info, err := q.st.FindSpace(ctx, es.Name())
	if err != nil {
		return "" // not made yet, or not readable now: the hint above is the way
	}
	return fmt.Sprintf("; or, to search space %d (%s), which the configured embedder fills, embed what it lacks "+
		"(`paperpipe reprocess --embed-only`) and make it the active one (`paperpipe activate %d`)", info.ID, es.Name(), info.ID)
}

func (q cliQueries) EmbedQuery(ctx context.Context, _ paper.Space, text string) ([]float32, bool, error) {
	vec, usage, err := q.emb.EmbedQuery(ctx, text)
	recordQueryUsage(ctx, q.log, q.st, usage)
	return vec, false, err
}

// queryEmbedderHint says what configures an embedder that embeds queries into space sp: the
// model and its dimensions, as variables and as flags.
func queryEmbedderHint(c *config, sp paper.Space) string {
	switch {
	case sp.Template != embed.TemplateTitleAbstract:
		return fmt.Sprintf("its input template %q is not one paperpipe's embedders make, so no query can be embedded for it: "+
			"`paperpipe related` works in it, and so does a keyword search (`paperpipe search --mode keyword`)", sp.Template)
	case embed.IsOfflineModel(sp.Model):
		return "set PAPERPIPE_EMBED_MODEL=offline (or --embed-model offline), which follows the active space to any offline model"
	}
	hint := fmt.Sprintf("set PAPERPIPE_EMBED_MODEL=%s PAPERPIPE_EMBED_DIMENSIONS=%d (or --embed-model %s --embed-dimensions %d)",
		sp.Model, sp.Dimensions, sp.Model, sp.Dimensions)
	if !c.apiConfigured() {
		hint += ", and OPENAI_API_KEY, or OPENAI_BASE_URL, for its API"
	}
	return hint
}

// recordQueryUsage adds the API call of a query embedding to the usage ledger, as the workers
// do theirs: a local model's (no request) is not recorded, and a failure is logged, not
// returned, as the ledger is for reporting.
func recordQueryUsage(ctx context.Context, log *slog.Logger, st *store.Store, u paper.Usage) {
	if u.Requests == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := st.RecordUsage(ctx, []paper.Usage{u}); err != nil {
		log.Warn("recording the API usage of the query embedding failed", "err", err)
	}
}

// kHelp is the help of the -k flag of the commands that ask for nearest neighbours.
var kHelp = fmt.Sprintf("how many papers, 1 to %d", store.MaxK)

// checkK is the usage error of a -k the store would refuse (store.MaxK), before anything is
// opened.
func checkK(k int) error {
	if k < 1 || k > store.MaxK {
		return usageErr("-k is %d, want 1 to %d", k, store.MaxK)
	}
	return nil
}

func printHits(hits []paper.Hit) {
	if len(hits) == 0 {
		fmt.Fprintln(stdout, "no papers found")
		return
	}
	for i, h := range hits {
		fmt.Fprintf(stdout, "%2d. %.3f  %s  %s\n", i+1, h.Score, termSafe(h.ID, false), clip(h.Title, 90))
		if h.TLDR != "" {
			fmt.Fprintln(stdout, wrap(listedTLDR(h.TLDR, h.TLDRModel), 84, "           "))
		}
	}
}

func cmdList(ctx context.Context, c *config, args []string) error {
	fs := newFlagSet("list", "", "List papers with their TL;DRs, newest first.")
	c.addJSONFlag(fs)
	n := fs.Int("n", 20, fmt.Sprintf("how many papers, 1 to %d", store.MaxListLimit))
	cursor := fs.String("after", "", "continue from the cursor printed by a previous page")
	var since string
	var f store.ListFilter
	fs.StringVar(&since, "since", "", "only papers stored since `DATE` (2006-01-02 or RFC 3339), by the database's clock, as GET /api/papers?since= lists them")
	fs.StringVar(&f.Category, "category", "", "only papers of this `category` (exactly as stored: cs.LG)")
	fs.StringVar(&f.Text, "text", "", "only papers whose title or abstract matches this full-text `query` (web-search syntax, as search --mode keyword reads it)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *n < 1 || *n > store.MaxListLimit {
		return usageErr("-n is %d, want 1 to %d", *n, store.MaxListLimit)
	}
	if since != "" {
		t, err := parseDate(since)
		if err != nil {
			return usageErr("--since %q: want a date like 2024-01-31 or an RFC 3339 time", since)
		}
		f.Since = t
	}
	f.Category, f.Text = strings.TrimSpace(f.Category), strings.TrimSpace(f.Text)
	var cur *store.Cursor
	if *cursor != "" {
		cc, err := store.DecodeCursor(*cursor)
		if err != nil {
			return usageErr("--after %q is not a cursor: give the cursor a previous page printed (its `more:` line)", *cursor)
		}
		cur = cc
	}
	st, err := openStore(ctx, c, newLogger(c))
	if err != nil {
		return err
	}
	defer st.Close()
	recs, next, err := st.ListFiltered(ctx, f, *n, cur)
	notice := ""
	if errors.Is(err, paper.ErrNoSearchTerms) {
		// As GET /api/papers answers it: no paper, and why.
		notice, err = "--text: full-text search ignores every word of it (stop words such as the, of, and; punctuation), "+
			"so no paper can match: try other words", nil
	}
	if err != nil {
		return err
	}
	if c.JSON {
		out := map[string]any{"papers": nonNil(recs)}
		if next != nil {
			out["next"] = next.Encode()
		}
		if notice != "" {
			out["notice"] = notice
		}
		return writeJSON(stdout, out)
	}
	if notice != "" {
		fmt.Fprintf(os.Stderr, "list: %s\n", notice)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	for _, r := range recs {
		tldr := "(no TL;DR yet)"
		if r.TLDR != nil {
			tldr = listedTLDR(clip(r.TLDR.Text, 200), r.TLDR.Model)
		}
		fmt.Fprintf(tw, "%s\t%s\n\t%s\n", termSafe(r.ID, false), clip(r.Title, 90), tldr)
	}
	tw.Flush()
	if next != nil {
		// The next page is of the same list: the same filters, as given.
		var filters []string
		for _, fl := range []struct{ name, v string }{{"since", since}, {"category", f.Category}, {"text", f.Text}} {
			if fl.v != "" {
				filters = append(filters, "--"+fl.name, termSafe(shellWord(fl.v), false))
			}
		}
		fmt.Fprintf(os.Stderr, "\nmore: %s\n", strings.Join(append(append([]string{"paperpipe", "list", "-n", strconv.Itoa(*n)}, filters...), "--after", next.Encode()), " "))
	}
	return nil
}

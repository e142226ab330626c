package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/store"
	"github.com/paperpipe/paperpipe/summarize"
)

func cmdSpaces(ctx context.Context, c *config, args []string) error {
	fs := newFlagSet("spaces", "[list | drop SPACE [--force] | check [SPACE] | reindex SPACE --index KIND]", "List embedding spaces with their coverage, drop an inactive one (and the queue of an interrupted reprocess into it), check how well a space's index (default: the active space's) finds each paper's exact nearest neighbours at PAPERPIPE_EF_SEARCH, or rebuild a space's index as another kind (hnsw, hnsw-halfvec or hnsw-binary) while it stays in use. SPACE is an id, a name (model/dimensions/template) or a model with one space.")
	c.addJSONFlag(fs)
	sample := fs.Int("sample", 20, fmt.Sprintf("check: papers asked about (a fixed sample), 1 to %d; each costs a scan of the space", store.MaxK))
	k := fs.Int("k", 10, fmt.Sprintf("check: neighbours per paper, 1 to %d", store.MaxK))
	kind := fs.String("index", "", "reindex: the index kind to build, hnsw, hnsw-halfvec or hnsw-binary")
	force := fs.Bool("force", false, "drop: also a space that open Batch API jobs embed into (OpenAI still bills them; their vectors are thrown away)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	action := "list"
	if len(pos) > 0 {
		action = pos[0]
	}
	// Every usage error before the database is opened: opening it runs the migrations, which a
	// typo (`spaces help`) has no business doing to the database DATABASE_URL names. So is the
	// help asked for after an action (`spaces drop help`), not a space named "help".
	if action != "list" && isHelpWord(pos[1:]) {
		return askedHelp(fs)
	}
	switch action {
	case "list":
		err = onlyFor(fs, "spaces list", "json")
		if err == nil {
			err = noMoreArgs("spaces list", pos[min(1, len(pos)):])
		}
	case "check":
		err = onlyFor(fs, "spaces check", "json", "sample", "k")
		switch {
		case err != nil:
		case len(pos) > 2:
			err = usageErr("spaces check [SPACE]: one space at most, got %d", len(pos)-1)
		default:
			err = checkK(*k)
			if err == nil && (*sample < 1 || *sample > store.MaxK) {
				err = usageErr("--sample is %d, want 1 to %d", *sample, store.MaxK)
			}
		}
	case "reindex":
		err = onlyFor(fs, "spaces reindex", "index")
		if err == nil && (len(pos) != 2 || *kind == "") {
			err = usageErr("spaces reindex SPACE --index hnsw|hnsw-halfvec|hnsw-binary")
		}
		if err == nil {
			if _, kerr := store.ParseIndexKind(*kind); kerr != nil {
				err = usageErr("--index: %v", kerr)
			}
		}
	case "drop":
		err = onlyFor(fs, "spaces drop", "force")
		if err == nil && len(pos) != 2 {
			err = usageErr("spaces drop SPACE [--force]")
		}
	default:
		err = usageErr("unknown spaces action %q: want list, drop SPACE, check [SPACE] or reindex SPACE", action)
	}
	if err != nil {
		return err
	}
	st, err := openStore(ctx, c, newLogger(c))
	if err != nil {
		return err
	}
	defer st.Close()
	switch action {
	case "list":
		return listSpaces(ctx, st, c.JSON, stdout)
	case "check":
		return checkSpace(ctx, st, pos[1:], *sample, *k, c.JSON, stdout)
	case "reindex":
		return reindexSpace(ctx, st, pos[1], *kind, os.Stderr)
	}
	return dropSpace(ctx, c, st, pos[1], *force, os.Stderr)
}

// reprocessDescription is the description of the durable consumer of a reprocess run of w into
// space (none when w.SpaceID is 0; no TL;DRs when w.Model is ""): `paperpipe status` shows it,
// and reprocessSpaceOf reads the space's name back from it.
func reprocessDescription(w paper.Work, space paper.Space) string {
	switch {
	case w.SpaceID == 0:
		return fmt.Sprintf("re-processing: TL;DRs %s %s", w.Model, w.PromptVersion)
	case w.Model == "": // --embed-only: it read "re-processing: TL;DRs  , space X"
		return reprocessSpaceOnly + space.Name()
	}
	return fmt.Sprintf("re-processing: TL;DRs %s %s, space %s", w.Model, w.PromptVersion, space.Name())
}

// reprocessSpaceOnly begins the description of an embed-only reprocess run's consumer.
const reprocessSpaceOnly = "re-processing: space "

// reprocessSpaceOf is the name of the embedding space that a reprocess consumer's description
// (reprocessDescription) names, if any: also of a description written before embed-only runs
// had their own ("re-processing: TL;DRs  , space X"), which a stopped run's consumer keeps.
func reprocessSpaceOf(desc string) (string, bool) {
	if name, ok := strings.CutPrefix(desc, reprocessSpaceOnly); ok {
		return name, true
	}
	const sep = ", space "
	i := strings.LastIndex(desc, sep)
	if !strings.HasPrefix(desc, "re-processing: ") || i < 0 {
		return "", false
	}
	return desc[i+len(sep):], true
}

// dropSpace drops the named space (store.DropSpace) and says what it did, or what to do
// about the space's open Batch API jobs. It then removes the space's re-processing queues
// (removeSpaceQueues): a run stopped with messages left kept its consumer, which nothing would
// process once the space is gone. A name that no longer names a space but still has such
// queues (dropped while NATS could not be reached) has them removed.
func dropSpace(ctx context.Context, c *config, st *store.Store, name string, force bool, w io.Writer) error {
	sp, err := st.ResolveSpace(ctx, name)
	if errors.Is(err, paper.ErrNotFound) {
		if queues, msgs, qerr := removeSpaceQueues(ctx, c, name); qerr == nil && queues > 0 {
			fmt.Fprintf(w, "space %s no longer exists; removed its re-processing queue (%s)\n", name, plural(msgs, "message", "messages"))
			return nil
		}
		// An id: the same drop run again (one killed after its commit, or that could not reach
		// NATS) is given the id it was given before. A queue's consumer records its space's id
		// (pipeline.MetaSpaceID): the queues of that space are removed. One made before
		// consumers recorded it names its space only, which is gone with its id: such queues
		// of the spaces that no longer exist are removed, which nothing processes (status
		// flags them).
		if id, perr := strconv.ParseInt(strings.TrimSpace(name), 10, 64); perr == nil {
			dropped := func(info *jetstream.ConsumerInfo, space string) bool {
				if sid, ok := pipeline.ReprocessSpaceID(info.Config); ok {
					return sid == id
				}
				_, err := st.FindSpace(ctx, space)
				return errors.Is(err, paper.ErrNotFound)
			}
			if queues, msgs, spaces, qerr := removeQueues(ctx, c, dropped); qerr == nil && queues > 0 {
				// The spaces are named by the consumers' descriptions, any NATS client's to write.
				fmt.Fprintf(w, "space %s no longer exists; removed the re-processing %s of the dropped %s %s (%s)\n", name,
					pick(queues, "queue", "queues"), pick(len(spaces), "space", "spaces"), termSafe(strings.Join(spaces, ", "), false),
					plural(msgs, "message", "messages"))
				return nil
			}
		}
	}
	if err != nil {
		return err
	}
	err = st.DropSpace(ctx, sp.ID, store.DropOptions{DiscardBatchJobs: force})
	if busy := (*store.OpenBatchJobsError)(nil); errors.As(err, &busy) {
		return fmt.Errorf("%w.\nThey finish within 24 hours: let the `paperpipe reprocess --batch-api` run that submitted them "+
			"collect them (or run it again, with this space's embedding model configured, to wait for them; it also submits "+
			"the space's papers it has not submitted yet), or cancel them at OpenAI (https://platform.openai.com/batches) and "+
			"let that run record them as failed; `paperpipe spaces drop %d --force` drops the space now, and their vectors, "+
			"still billed, are thrown away", err, sp.ID)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "dropped space %d (%s) and its %s\n", sp.ID, sp.Name(), plural(sp.Embedded, "vector", "vectors"))
	queues, msgs, err := removeSpaceQueues(ctx, c, sp.Name())
	switch {
	case err != nil:
		fmt.Fprintf(w, "could not remove the space's re-processing queue, if it has one: %v; `paperpipe status` marks it, "+
			"and `paperpipe spaces drop %s` run again with NATS reachable removes it\n", err, sp.Name())
	case queues > 0:
		fmt.Fprintf(w, "removed its re-processing queue (%s of an interrupted `paperpipe reprocess`)\n", plural(msgs, "message", "messages"))
	}
	return nil
}

// removeSpaceQueues deletes the durable consumers of the reprocess targets into the space named
// space (see reprocessSpaceOf) and purges their subjects: with no consumer the messages would
// stay in the work-queue stream, handed to the next run of the target. It returns how many
// consumers it removed and how many messages they held.
// Dropped space or not, nothing is lost: a reprocess selects its stale papers from the
// database. NATS must answer within 10 seconds.
func removeSpaceQueues(ctx context.Context, c *config, space string) (queues, messages int, _ error) {
	queues, messages, _, err := removeQueues(ctx, c, func(_ *jetstream.ConsumerInfo, s string) bool { return s == space })
	return queues, messages, err
}

// removeQueues is removeSpaceQueues for the reprocess consumers that match accepts, given
// with the name of the space they name; it also returns those spaces' names, in the order
// found.
func removeQueues(ctx context.Context, c *config, match func(info *jetstream.ConsumerInfo, space string) bool) (queues, messages int, spaces []string, _ error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	b, err := connectBroker(ctx, c, newLogger(c), brokerClient)
	if err != nil {
		return 0, 0, nil, err
	}
	defer b.close()
	stream, err := b.js.Stream(ctx, pipeline.StreamPapers)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, 0, nil, nil
	}
	if err != nil {
		return 0, 0, nil, fmt.Errorf("stream %s: %w", pipeline.StreamPapers, err)
	}
	var found []*jetstream.ConsumerInfo
	lister := stream.ListConsumers(ctx)
	for info := range lister.Info() {
		if sp, ok := reprocessSpaceOf(info.Config.Description); ok && strings.HasPrefix(info.Name, "reprocess-") && match(info, sp) {
			found = append(found, info)
			if !slices.Contains(spaces, sp) {
				spaces = append(spaces, sp)
			}
		}
	}
	if err := lister.Err(); err != nil {
		return 0, 0, nil, fmt.Errorf("list consumers: %w", err)
	}
	held := 0
	for _, info := range found {
		if err := dropQueue(ctx, b.js, stream, info.Name, info.Config.FilterSubject); err != nil {
			return 0, 0, nil, err
		}
		held += int(info.NumPending) + info.NumAckPending
	}
	return len(found), held, spaces, nil
}

// dropQueue removes a reprocess run's queue: the messages on its filter subject, then its
// consumer. Purged first: a consumer deleted before a purge that failed would leave messages no
// status shows and no drop finds again.
func dropQueue(ctx context.Context, js jetstream.JetStream, stream jetstream.Stream, consumer, subject string) error {
	if err := stream.Purge(ctx, jetstream.WithPurgeSubject(subject)); err != nil {
		return fmt.Errorf("purge %s: %w", subject, err)
	}
	if err := js.DeleteConsumer(ctx, pipeline.StreamPapers, consumer); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("delete consumer %s: %w", consumer, err)
	}
	return nil
}

// reindexSpace rebuilds the named space's index as kind (store.Reindex) and says what it did.
func reindexSpace(ctx context.Context, st *store.Store, name, kind string, w io.Writer) error {
	k, err := store.ParseIndexKind(kind)
	if err != nil {
		return usageErr("--index: %v", err)
	}
	sp, err := st.FindSpace(ctx, name)
	if err != nil {
		return err
	}
	if k == store.IndexHNSWBinary && embed.IsOfflineModel(sp.Model) {
		// As for PAPERPIPE_VECTOR_INDEX (buildModels): bench/results measured recall@10 at
		// ef_search 100 of 0.82 (hashed) and 0.32 (fitted) on it.
		fmt.Fprintf(w, "warning: the offline models' vectors keep few of their neighbours in 1-bit codes: space %d's hnsw-binary index "+
			"will be poor (check it with `paperpipe spaces check %d`)\n", sp.ID, sp.ID)
	}
	start := time.Now()
	changed, err := st.Reindex(ctx, sp.ID, k, store.IndexSettings{})
	if err != nil {
		return err
	}
	if !changed {
		fmt.Fprintf(w, "space %d (%s) already has its %s index\n", sp.ID, sp.Name(), k)
		return nil
	}
	// A space without a usable index (a restore of the data alone, an interrupted fill) had
	// nothing to replace; running processes use a new index of the kind they know at once.
	was, restart := fmt.Sprintf("replacing its %s index", sp.Index), ""
	if sp.IndexName == "" {
		was = "where it had none"
	}
	if k != sp.Index {
		restart = "; restart running serve and up processes so that their queries use it"
	}
	fmt.Fprintf(w, "space %d (%s): %s index built in %s, %s%s\n",
		sp.ID, sp.Name(), k, time.Since(start).Round(time.Second), was, restart)
	return nil
}

// checkSpace prints store.CheckRecall of the named space, or of the active one.
func checkSpace(ctx context.Context, st *store.Store, names []string, sample, k int, asJSON bool, w io.Writer) error {
	var id int64
	switch len(names) {
	case 0:
		sp, err := activeSpace(ctx, st)
		if err != nil {
			return err
		}
		id = sp.ID
	case 1:
		sp, err := st.FindSpace(ctx, names[0])
		if err != nil {
			return err
		}
		id = sp.ID
	default:
		return usageErr("spaces check [SPACE]")
	}
	r, err := st.CheckRecall(ctx, id, sample, k)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(w, r)
	}
	fmt.Fprintf(w, "space %d (%s), %s index, ef_search %d: recall@%d %.3f over %s\n",
		r.Space.ID, r.Space.Name(), r.Index, r.EFSearch, r.K, r.Recall, plural(r.Questions, "paper", "papers"))
	fmt.Fprintf(w, "one indexed query %.1f ms on average, one exact scan %.1f ms\n", r.IndexedMillis, r.ExactMillis)
	// Its writes' cost, which the recall does not show.
	if sp, err := st.FindSpace(ctx, strconv.FormatInt(id, 10)); err == nil && sp.UnfinishedIndex != "" {
		fmt.Fprintln(w, "note: "+unfinishedIndexNote(sp))
	}
	return nil
}

func listSpaces(ctx context.Context, st *store.Store, asJSON bool, w io.Writer) error {
	spaces, err := st.Spaces(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(w, nonNil(spaces))
	}
	if len(spaces) == 0 {
		fmt.Fprintln(w, "no embedding spaces yet (a worker or `paperpipe reprocess` creates one)")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tACTIVE\tSPACE\tCOVERAGE\tINDEX\tCREATED")
	for _, s := range spaces {
		active := ""
		if s.Active {
			active = "*"
		}
		pct := 0.0
		if s.Papers > 0 {
			pct = 100 * float64(s.Embedded) / float64(s.Papers)
		}
		index := string(s.Index) + " " + s.IndexName
		if s.IndexName == "" {
			index = string(s.Index) + " (none)"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d/%d (%.0f%%)\t%s\t%s\n", s.ID, active, s.Name(), s.Embedded, s.Papers, pct, index,
			s.CreatedAt.Format(time.DateTime))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range spaces {
		if s.UnfinishedIndex != "" {
			fmt.Fprintln(w, "note: "+unfinishedIndexNote(s))
		}
	}
	return nil
}

// unfinishedIndexNote says what s's UnfinishedIndex is and what drops it.
func unfinishedIndexNote(s store.SpaceInfo) string {
	return fmt.Sprintf("space %d has the unfinished index %s: a build in progress, or one interrupted (a `paperpipe spaces reindex` "+
		"killed or its session ended); no query uses it, it takes disk space and, past its build's first phase, slows every write "+
		"of embeddings; `paperpipe spaces reindex %d --index KIND` run again finishes it, or, with KIND %s (the space's), drops it",
		s.ID, s.UnfinishedIndex, s.ID, s.Index)
}

func cmdActivate(ctx context.Context, c *config, args []string) error {
	fs := newFlagSet("activate", "SPACE", "Make an embedding space the one queries use, in one transaction (its index is built first if missing).")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if isHelpWord(pos) {
		return askedHelp(fs)
	}
	if len(pos) != 1 {
		return usageErr("name the space to activate: its id, name or model (see `paperpipe spaces`)")
	}
	st, err := openStore(ctx, c, newLogger(c))
	if err != nil {
		return err
	}
	defer st.Close()
	return runActivate(ctx, c, st, pos[0], os.Stderr)
}

// runActivate activates the space ref names and says what it did, what the space lacks, and
// what to change when the configured embedding model is not the space's.
func runActivate(ctx context.Context, c *config, st *store.Store, ref string, errw io.Writer) error {
	prev := activeBefore(ctx, st)
	sp, err := activateSpace(ctx, st, ref)
	if err != nil {
		return err
	}
	fmt.Fprintf(errw, "space %d (%s) is active: %d of %s embedded\n", sp.ID, sp.Name(), sp.Embedded, plural(sp.Papers, "paper", "papers"))
	if note := previousSpaceNote(prev, sp.Space); note != "" {
		fmt.Fprintln(errw, "note: "+note)
	}
	if sp.Embedded < sp.Papers {
		next, filling := spaceFillHint(ctx, st, sp.Space)
		if filling {
			next += ": until it ends, searches find only the papers it has embedded"
		}
		fmt.Fprintf(errw, "note: %s no vector in it yet; %s\n", plural(sp.Papers-sp.Embedded, "paper has", "papers have"), next)
	}
	if w := embedderMismatch(c, sp.Space); w != "" {
		fmt.Fprintln(errw, "warning: "+w)
	}
	return nil
}

// spaceFillHint says how to fill space sp (embed.FillHint), or, when a run (a `paperpipe
// reprocess` or `fit`, in any process) is filling it now, that it is, and filling reports
// which: a second run is refused while one fills the space, so the fill hint would send the
// user to a command that fails. activate, serve and the workers give this advice alike.
func spaceFillHint(ctx context.Context, st *store.Store, sp paper.Space) (hint string, filling bool) {
	if filling, err := st.SpaceFilling(ctx, sp.ID); err == nil && filling {
		return "a `paperpipe reprocess` (or `fit`, `import` or `import-embeddings`) is filling it now", true
	}
	return embed.FillHint(sp), false
}

// embedderMismatch says, when the embedder c configures (PAPERPIPE_EMBED_MODEL,
// PAPERPIPE_EMBED_DIMENSIONS) does not embed into space sp, what that means once sp is active
// and what to set; "" when it does. "offline" follows the active space to any offline model's;
// a model given by name stays on its own space, whatever is active.
func embedderMismatch(c *config, sp paper.Space) string {
	c.resolveModels()
	if sp.Template != embed.TemplateTitleAbstract {
		return fmt.Sprintf("space %d's input template %q is not one paperpipe's embedders make: `search` and the searches of serve and up "+
			"cannot embed queries for it (related papers work), and workers keep embedding new papers into the space of their own model", sp.ID, sp.Template)
	}
	want := settingsFor(c, sp)
	if want == "" {
		return ""
	}
	configured := c.EmbedModel
	if c.EmbedDims != 0 && !c.embedOffline() {
		configured += fmt.Sprintf(" with %d dimensions", c.EmbedDims)
	}
	return fmt.Sprintf("the configured embedding model (%s) does not embed into space %d (%s): a bare `search` is refused "+
		"(embedding space mismatch), and running worker, serve and up processes on it keep embedding new papers and searches "+
		"for their own space. Set %s, and restart worker, serve and up", configured, sp.ID, sp.Name(), want)
}

// settingsFor returns the settings that make the embedder c configures embed into space sp
// (a space of paperpipe's template), or "" when it does.
func settingsFor(c *config, sp paper.Space) string {
	c.resolveModels()
	switch {
	case embed.IsOfflineModel(sp.Model) && (c.EmbedModel == offline || c.EmbedModel == sp.Model):
		return ""
	case embed.IsOfflineModel(sp.Model):
		return "PAPERPIPE_EMBED_MODEL=offline (which follows the active space to any offline model)"
	case c.EmbedModel == sp.Model && (c.EmbedDims == sp.Dimensions || c.EmbedDims == 0 && embed.NativeDimensions(sp.Model) == sp.Dimensions):
		return ""
	}
	want := "PAPERPIPE_EMBED_MODEL=" + sp.Model
	// The dimensions too when the space's are not the model's own, or when another number is
	// configured: left set, it keeps the embedder out of the space whatever the model.
	if embed.NativeDimensions(sp.Model) != sp.Dimensions || c.EmbedDims != 0 && c.EmbedDims != sp.Dimensions {
		want += fmt.Sprintf(" PAPERPIPE_EMBED_DIMENSIONS=%d", sp.Dimensions)
	}
	if !c.apiConfigured() {
		want += " (and OPENAI_API_KEY, or OPENAI_BASE_URL, for its API)"
	}
	return want
}

// batchCollectCommand is the `reprocess --batch-api` command whose run collects the open jobs
// of the TL;DRs of chat model chatModel (with the word limit maxWords, part of the prompt
// version) and of the embeddings of space sp ("" and nil for none): a run collects only the
// jobs of its own targets.
func batchCollectCommand(chatModel string, maxWords int, sp *paper.Space) string {
	cmd := "paperpipe reprocess --batch-api"
	if chatModel != "" && maxWords != summarize.DefaultMaxWords {
		cmd = fmt.Sprintf("PAPERPIPE_TLDR_MAX_WORDS=%d %s", maxWords, cmd)
	}
	switch {
	case chatModel != "" && sp == nil:
		cmd += " --tldr-only"
	case chatModel == "" && sp != nil:
		cmd += " --embed-only"
	}
	if chatModel != "" {
		cmd += " --chat-model " + chatModel
	}
	if sp != nil {
		cmd += fmt.Sprintf(" --embed-model %s --embed-dimensions %d", sp.Model, sp.Dimensions)
	}
	return "`" + cmd + "`"
}

// activeBefore returns the active space, read before an activation replaces it; a zero Space
// when none is active or it cannot be read (it only feeds previousSpaceNote).
func activeBefore(ctx context.Context, st *store.Store) paper.Space {
	sp, err := st.ActiveSpace(ctx)
	if err != nil {
		return paper.Space{}
	}
	return sp
}

// previousSpaceNote says, when activating cur replaced prev, that prev keeps its vectors and
// index and how to go back to it or drop it: nothing drops a space on its own, and a space
// left behind at every refit or model change holds a vector of every paper (~5 KB a paper at
// 768 dimensions with its index). "" when prev is none or cur.
func previousSpaceNote(prev, cur paper.Space) string {
	if prev.ID == 0 || prev.ID == cur.ID {
		return ""
	}
	return fmt.Sprintf("space %d (%s), active before, keeps its vectors and index: `paperpipe activate %d` goes back to it; "+
		"`paperpipe spaces drop %d` removes them once you no longer need it", prev.ID, prev.Name(), prev.ID, prev.ID)
}

// activateSpace resolves ref, builds the space's index if missing, and activates it.
func activateSpace(ctx context.Context, st *store.Store, ref string) (store.SpaceInfo, error) {
	sp, err := st.ResolveSpace(ctx, ref)
	if err != nil {
		return sp, err
	}
	if _, err := st.BuildSpaceIndex(ctx, sp.ID, store.IndexSettings{}); err != nil {
		return sp, err
	}
	if err := st.Activate(ctx, sp.ID); err != nil {
		return sp, err
	}
	return sp, nil
}

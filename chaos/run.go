package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/summarize"
)

// Disruption is what a case does to the system mid-run.
type Disruption string

// Disruptions.
const (
	NoDisruption    Disruption = "none"
	KillWorker      Disruption = "kill -9 a worker, start another"
	RestartNATS     Disruption = "stop and restart the NATS server"
	RestartPostgres Disruption = "stop and restart PostgreSQL"
)

// Case is one chaos run.
type Case struct {
	// Name names the run's directory and its output.
	Name string
	// N is the number of abstracts.
	N int
	// Workers is the number of worker processes at the start. Defaults to 2.
	Workers int
	// Fake configures the API's latency and faults.
	Fake FakeConfig
	// Disrupt is what happens mid-run, once At of the papers are stored.
	Disrupt Disruption
	// At is the fraction of papers stored before the disruption. Defaults to 0.3.
	At float64
	// DatabaseURL is the database, unless Disrupt is RestartPostgres, which starts a private
	// PostgreSQL (see StartPostgres) to restart.
	DatabaseURL string
	// ChrootRoot is where StartPostgres finds PostgreSQL. Defaults to deploy/services.sh's
	// chroot: $PAPERPIPE_SERVICES_DIR/trixie-root, or DefaultChrootRoot.
	ChrootRoot string
	// Timeout bounds the run. Defaults to 10 minutes.
	Timeout time.Duration
	// Env is added to the workers' environment (PAPERPIPE_*).
	Env []string
}

// Env is what every run needs.
type Env struct {
	Bin  Binaries
	Dir  string           // scratch space: one directory per run for its logs and data
	Base []paper.Abstract // the sample archive the corpus is derived from
	Logf func(format string, args ...any)
}

// Models and settings of the workers in a run.
const (
	chatModel  = "gpt-4o-mini"
	embedModel = "text-embedding-3-small"
	embedDims  = 64
	ackWait    = 10 * time.Second
)

// Result is what a run measured.
type Result struct {
	In             int
	Stored         int   // papers with a TL;DR and an embedding
	Dead           int   // papers in the dead-letter stream
	Duplicates     int64 // results paid again for the same input, kill losses excepted
	TLDRsPaid      int64 // chat completions delivered
	EmbeddingsPaid int64 // embedding vectors delivered
	Requests       int64 // HTTP requests received by the fake
	LostInKill     int   // results the killed worker had received but not stored
	Kill           bool  // the case killed a worker

	StoredAndDead     []string // papers both stored and dead-lettered
	Missing           []string // papers neither stored nor dead-lettered
	ValidationRetried int      // TL;DRs whose first answer failed validation
	Faults            map[string]int64
	WorkerExits       []string // how the workers ended
	Elapsed           time.Duration
}

// Line is the run's one-line summary.
func (r Result) Line() string {
	s := fmt.Sprintf("in=%d stored=%d dead=%d duplicates=%d tldrs_paid=%d embeddings_paid=%d requests=%d",
		r.In, r.Stored, r.Dead, r.Duplicates, r.TLDRsPaid, r.EmbeddingsPaid, r.Requests)
	if r.Kill {
		s += fmt.Sprintf(" lost_in_kill=%d", r.LostInKill)
	}
	return s
}

// Violations lists what the run broke of the chaos rules; transient says every fault was.
func (r Result) Violations(transient bool) []string {
	var v []string
	if r.Stored+r.Dead != r.In {
		v = append(v, fmt.Sprintf("stored + dead = %d, want in = %d", r.Stored+r.Dead, r.In))
	}
	if len(r.StoredAndDead) > 0 {
		v = append(v, fmt.Sprintf("%d papers both stored and dead-lettered: %v", len(r.StoredAndDead), head(r.StoredAndDead)))
	}
	if len(r.Missing) > 0 {
		v = append(v, fmt.Sprintf("%d papers neither stored nor dead-lettered: %v", len(r.Missing), head(r.Missing)))
	}
	if r.Duplicates != 0 {
		v = append(v, fmt.Sprintf("duplicates = %d, want 0", r.Duplicates))
	}
	if transient && r.Dead != 0 {
		v = append(v, fmt.Sprintf("dead = %d although every fault was transient", r.Dead))
	}
	if limit := int64(float64(r.In) * 1.05); r.TLDRsPaid > limit || r.EmbeddingsPaid > limit {
		v = append(v, fmt.Sprintf("paid %d TL;DRs and %d embeddings for %d papers, above 1.05× (%d)", r.TLDRsPaid, r.EmbeddingsPaid, r.In, limit))
	}
	for _, e := range r.WorkerExits {
		if !strings.HasSuffix(e, "exit 0") {
			v = append(v, "worker ended badly: "+e)
		}
	}
	return v
}

func head(s []string) []string { return s[:min(len(s), 5)] }

// run is one case in progress.
type run struct {
	c       Case
	env     Env
	dir     string
	papers  []paper.Abstract
	fake    *Fake
	nats    *NATS
	pg      *Postgres
	dbURL   string
	js      jetstream.JetStream
	workers []*Proc
	killed  map[*Proc]bool
	res     Result

	// the kill snapshot: results delivered before the kill whose paper had not stored them
	lost map[string]bool // delivery keys
}

// Run runs one case and measures it. An error means the run could not be carried out or did
// not finish; the rules are checked by Result.Violations.
func Run(ctx context.Context, env Env, c Case) (res Result, err error) {
	if c.Workers <= 0 {
		c.Workers = 2
	}
	if c.At <= 0 {
		c.At = 0.3
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Minute
	}
	if env.Logf == nil {
		env.Logf = func(string, ...any) {}
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	dir, err := os.MkdirTemp(env.Dir, c.Name+"-")
	if err != nil {
		return res, err
	}
	r := &run{c: c, env: env, dir: dir, killed: map[*Proc]bool{}, lost: map[string]bool{}}
	r.res.In, r.res.Kill = c.N, c.Disrupt == KillWorker
	defer r.cleanup()
	start := time.Now()
	if err := r.setup(ctx); err != nil {
		return r.res, err
	}
	if err := r.process(ctx); err != nil {
		return r.res, r.withLogs(err)
	}
	if err := r.measure(ctx); err != nil {
		return r.res, err
	}
	r.res.Elapsed = time.Since(start)
	return r.res, nil
}

func (r *run) path(name string) string { return filepath.Join(r.dir, name) }

func (r *run) setup(ctx context.Context) error {
	r.papers = Corpus(r.env.Base, r.c.N, 1)
	f, err := os.Create(r.path("abstracts.jsonl"))
	if err != nil {
		return err
	}
	if err := WriteJSONL(f, r.papers); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if r.fake, err = StartFake(r.env.Bin.Fake, r.path("openai-fake.log"), r.c.Fake); err != nil {
		return err
	}
	if r.nats, err = StartNATS(r.env.Bin.NATS, r.path("jetstream"), r.path("nats-server.log")); err != nil {
		return err
	}
	r.dbURL = r.c.DatabaseURL
	if r.c.Disrupt == RestartPostgres {
		if r.pg, err = StartPostgres(ctx, r.c.ChrootRoot); err != nil {
			return err
		}
		r.dbURL = r.pg.URL()
	}
	if r.dbURL == "" {
		return errors.New("no database: set Case.DatabaseURL")
	}
	nc, err := nats.Connect(r.nats.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
	if err != nil {
		return fmt.Errorf("connect to NATS: %w", err)
	}
	if r.js, err = jetstream.New(nc); err != nil {
		return err
	}
	if out, err := r.paperpipe(ctx, "migrate"); err != nil {
		return fmt.Errorf("paperpipe migrate: %w\n%s", err, out)
	}
	out, err := r.paperpipe(ctx, "ingest", r.path("abstracts.jsonl"))
	if err != nil {
		return fmt.Errorf("paperpipe ingest: %w\n%s", err, out)
	}
	if want := fmt.Sprintf("%d published", r.c.N); !strings.Contains(out, want) {
		return fmt.Errorf("paperpipe ingest said %q, want %q", strings.TrimSpace(out), want)
	}
	return nil
}

// workerEnv is the environment of every paperpipe process of the run.
func (r *run) workerEnv() []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + r.dir,
		"PAPERPIPE_DATA=" + r.path("paperpipe-data"),
		"DATABASE_URL=" + r.dbURL,
		"NATS_URL=" + r.nats.URL(),
		"OPENAI_BASE_URL=" + r.fake.URL,
		"OPENAI_API_KEY=chaos-not-a-secret",
		"PAPERPIPE_CHAT_MODEL=" + chatModel,
		"PAPERPIPE_EMBED_MODEL=" + embedModel,
		fmt.Sprintf("PAPERPIPE_EMBED_DIMENSIONS=%d", embedDims),
		"PAPERPIPE_ACK_WAIT=" + ackWait.String(),
		"PAPERPIPE_LOG_LEVEL=info",
	}
	return append(env, r.c.Env...)
}

// paperpipe runs one paperpipe command to its end and returns its combined output.
func (r *run) paperpipe(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, r.env.Bin.Paperpipe, args...)
	cmd.Env = r.workerEnv()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (r *run) startWorker() error {
	n := len(r.workers) + 1
	p, err := startProc(fmt.Sprintf("worker-%d", n), r.path(fmt.Sprintf("worker-%d.log", n)), r.workerEnv(), nil,
		r.env.Bin.Paperpipe, "worker")
	if err != nil {
		return err
	}
	r.workers = append(r.workers, p)
	return nil
}

// process runs the workers until the work queue is empty, disrupting once on the way, then
// stops them with SIGINT.
func (r *run) process(ctx context.Context) error {
	for range r.c.Workers {
		if err := r.startWorker(); err != nil {
			return err
		}
	}
	disrupted := r.c.Disrupt == NoDisruption || r.c.Disrupt == ""
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("run did not finish: %w (%s)", ctx.Err(), r.progress(ctx))
		case <-tick.C:
		}
		for _, w := range r.workers {
			if w.Exited() && !r.killed[w] {
				code, _ := w.Wait(0)
				return fmt.Errorf("%s exited on its own with code %d", w.Name, code)
			}
		}
		if !disrupted {
			stored, err := r.storedCount(ctx)
			if err == nil && float64(stored) >= r.c.At*float64(r.c.N) {
				r.env.Logf("%s: %d of %d stored: %s", r.c.Name, stored, r.c.N, r.c.Disrupt)
				if err := r.disrupt(ctx); err != nil {
					return fmt.Errorf("%s: %w", r.c.Disrupt, err)
				}
				disrupted = true
			}
			continue
		}
		if left, err := r.queued(ctx); err == nil && left == 0 {
			break
		}
	}
	for _, w := range r.workers {
		if !r.killed[w] {
			_ = w.Signal(syscall.SIGINT)
		}
	}
	for _, w := range r.workers {
		if r.killed[w] {
			continue
		}
		code, err := w.Wait(2 * time.Minute)
		if err != nil {
			w.Stop(time.Second)
			r.res.WorkerExits = append(r.res.WorkerExits, fmt.Sprintf("%s: %v", w.Name, err))
			continue
		}
		r.res.WorkerExits = append(r.res.WorkerExits, fmt.Sprintf("%s: exit %d", w.Name, code))
	}
	return nil
}

func (r *run) progress(ctx context.Context) string {
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	stored, err1 := r.storedCount(pctx)
	left, err2 := r.queued(pctx)
	return fmt.Sprintf("%d stored, %d still queued (%v)", stored, left, errors.Join(err1, err2))
}

// disrupt does the case's disruption.
func (r *run) disrupt(ctx context.Context) error {
	switch r.c.Disrupt {
	case KillWorker:
		w := r.workers[0]
		if err := w.Signal(syscall.SIGKILL); err != nil {
			return err
		}
		r.killed[w] = true
		if _, err := w.Wait(30 * time.Second); err != nil {
			return err
		}
		// Let requests the dead worker left behind end, then note what it had bought.
		time.Sleep(500 * time.Millisecond)
		if err := r.snapshotKill(ctx); err != nil {
			return err
		}
		return r.startWorker()
	case RestartNATS:
		return r.nats.Restart(2 * time.Second)
	case RestartPostgres:
		if err := r.pg.Stop(ctx, "immediate"); err != nil {
			return err
		}
		time.Sleep(3 * time.Second)
		return r.pg.Start(ctx)
	}
	return fmt.Errorf("unknown disruption %q", r.c.Disrupt)
}

// snapshotKill records the results the fake had delivered when the only worker was killed and
// that the store did not hold: they died with the worker.
func (r *run) snapshotKill(ctx context.Context) error {
	ds, err := r.fake.Deliveries(ctx)
	if err != nil {
		return err
	}
	tldrs, embs, err := r.storedSets(ctx)
	if err != nil {
		return err
	}
	chat, vec := r.subjects()
	for _, d := range ds {
		switch d.Kind {
		case openaitest.KindChat:
			if id, ok := chat[d.Subject]; ok && !tldrs[id] {
				r.lost[d.Key] = true
			}
		case openaitest.KindEmbedding:
			if id, ok := vec[d.Subject]; ok && !embs[id] {
				r.lost[d.Key] = true
			}
		}
	}
	r.res.LostInKill = len(r.lost)
	r.env.Logf("%s: the killed worker had received %d results it had not stored", r.c.Name, len(r.lost))
	return nil
}

// subjects maps the fake's delivery subjects to paper ids: the abstract for chat, the
// embedding input for vectors.
func (r *run) subjects() (chat, vec map[string]string) {
	chat, vec = map[string]string{}, map[string]string{}
	for _, a := range r.papers {
		chat[openaitest.SubjectHash(strings.TrimSpace(a.Abstract))] = a.ID
		vec[openaitest.SubjectHash(embed.TitleAbstract(a))] = a.ID
	}
	return chat, vec
}

// queued is the number of messages left in the work queue: not yet acknowledged, terminated or
// removed as given up.
func (r *run) queued(ctx context.Context) (uint64, error) {
	s, err := r.js.Stream(ctx, pipeline.StreamPapers)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}

func (r *run) query(ctx context.Context, fn func(conn *pgx.Conn) error) error {
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(qctx, r.dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return fn(conn)
}

// storedSQL selects the papers with a current TL;DR of the run's model and prompt and a current
// embedding.
const storedSQL = `SELECT p.id FROM papers p
	WHERE EXISTS (SELECT 1 FROM tldrs t WHERE t.paper_id = p.id AND t.model = $1 AND t.prompt_version = $2 AND t.content_hash = p.content_hash)
	AND EXISTS (SELECT 1 FROM embeddings e WHERE e.paper_id = p.id AND e.content_hash = p.content_hash)`

func (r *run) storedCount(ctx context.Context) (int, error) {
	var n int
	err := r.query(ctx, func(conn *pgx.Conn) error {
		return conn.QueryRow(ctx, "SELECT count(*) FROM ("+storedSQL+") s", chatModel, summarize.PromptVersion).Scan(&n)
	})
	return n, err
}

func (r *run) storedSets(ctx context.Context) (tldrs, embs map[string]bool, err error) {
	tldrs, embs = map[string]bool{}, map[string]bool{}
	err = r.query(ctx, func(conn *pgx.Conn) error {
		ids, err := collect(ctx, conn, `SELECT t.paper_id FROM tldrs t JOIN papers p ON p.id = t.paper_id
			WHERE t.model = $1 AND t.prompt_version = $2 AND t.content_hash = p.content_hash`, chatModel, summarize.PromptVersion)
		if err != nil {
			return err
		}
		for _, id := range ids {
			tldrs[id] = true
		}
		ids, err = collect(ctx, conn, `SELECT e.paper_id FROM embeddings e JOIN papers p ON p.id = e.paper_id
			WHERE e.content_hash = p.content_hash`)
		for _, id := range ids {
			embs[id] = true
		}
		return err
	})
	return tldrs, embs, err
}

func collect(ctx context.Context, conn *pgx.Conn, sql string, args ...any) ([]string, error) {
	rows, err := conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// measure fills the result from the store, the dead-letter stream and the fake.
func (r *run) measure(ctx context.Context) error {
	var stored []string
	err := r.query(ctx, func(conn *pgx.Conn) error {
		var err error
		if stored, err = collect(ctx, conn, storedSQL, chatModel, summarize.PromptVersion); err != nil {
			return err
		}
		return conn.QueryRow(ctx, `SELECT count(*) FROM tldrs WHERE validation <> $1`, string(paper.ValidOK)).Scan(&r.res.ValidationRetried)
	})
	if err != nil {
		return fmt.Errorf("read the store: %w", err)
	}
	dls, err := pipeline.ListDeadLetters(ctx, r.js, 0)
	if err != nil {
		return fmt.Errorf("read the dead letters: %w", err)
	}
	isStored, isDead := map[string]bool{}, map[string]bool{}
	for _, id := range stored {
		isStored[id] = true
	}
	for _, d := range dls {
		isDead[d.PaperID] = true
	}
	for _, a := range r.papers {
		switch {
		case isStored[a.ID] && isDead[a.ID]:
			r.res.StoredAndDead = append(r.res.StoredAndDead, a.ID)
		case !isStored[a.ID] && !isDead[a.ID]:
			r.res.Missing = append(r.res.Missing, a.ID)
		}
	}
	r.res.Stored, r.res.Dead = len(isStored), len(isDead)

	st, err := r.fake.Stats(ctx)
	if err != nil {
		return err
	}
	ds, err := r.fake.Deliveries(ctx)
	if err != nil {
		return err
	}
	r.res.TLDRsPaid, r.res.EmbeddingsPaid = st.ChatDelivered, st.EmbedInputsDelivered
	r.res.Requests = st.ChatRequests + st.EmbedRequests
	r.res.Faults = st.Faults
	for _, d := range ds {
		extra := d.Count - 1
		if r.lost[d.Key] {
			extra-- // bought again because the killed worker took the first one with it
		}
		r.res.Duplicates += max(extra, 0)
	}
	if sum := st.ChatDistinctDelivered + st.EmbedInputsDistinctDelivered; sum != int64(len(ds)) {
		return fmt.Errorf("the fake's distinct counters (%d) disagree with its ledger (%d entries)", sum, len(ds))
	}
	return nil
}

// withLogs adds the tails of the processes' logs to a failed run's error.
func (r *run) withLogs(err error) error {
	var b strings.Builder
	b.WriteString(err.Error())
	procs := append([]*Proc(nil), r.workers...)
	if r.fake != nil {
		procs = append(procs, r.fake.Proc)
	}
	for _, p := range procs {
		fmt.Fprintf(&b, "\n--- %s (%s):\n%s", p.Name, p.LogPath, p.Tail(15))
	}
	return errors.New(b.String())
}

func (r *run) cleanup() {
	for _, w := range r.workers {
		w.Stop(5 * time.Second)
	}
	if r.js != nil {
		r.js.Conn().Close()
	}
	if r.nats != nil {
		r.nats.Stop()
	}
	if r.fake != nil {
		r.fake.Stop(5 * time.Second)
	}
	if r.pg != nil {
		r.pg.Close()
	}
}

// FaultSummary prints the injected faults, sorted.
func (r Result) FaultSummary() string {
	keys := make([]string, 0, len(r.Faults))
	for k := range r.Faults {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, r.Faults[k]))
	}
	return strings.Join(parts, " ")
}

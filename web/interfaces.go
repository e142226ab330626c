package web

import (
	"context"
	"strings"
	"time"

	"github.com/paperpipe/paperpipe/paper"
)

// Store is what the web surfaces read from the database. Errors wrap the paper sentinels:
// paper.ErrNotFound for a missing paper or space, paper.ErrInvalid for bad input,
// paper.ErrSpaceMismatch for a vector of the wrong length.
type Store interface {
	// Paper returns one paper with its latest TL;DR; id is canonical.
	Paper(ctx context.Context, id string) (paper.Record, error)
	// ListPapers returns one page of papers, newest first, that pass q's filters.
	ListPapers(ctx context.Context, q ListQuery) (Page, error)
	// ActiveSpace returns the embedding space queries use.
	ActiveSpace(ctx context.Context) (paper.Space, error)
	// Related returns the k papers nearest to paper id in space spaceID; paper.ErrNotFound
	// when the space holds no vector of it.
	Related(ctx context.Context, spaceID int64, id string, k int) ([]paper.Hit, error)
	// EmbeddedIn returns the spaces that hold a vector of paper id's current text, by id.
	EmbeddedIn(ctx context.Context, id string) ([]paper.Space, error)
	// SearchStore: the searches by meaning, by keyword and both.
	SearchStore
	// ArchiveMap returns up to limit vectors of space spaceID (a deterministic sample when
	// there are more) and how many the space holds.
	ArchiveMap(ctx context.Context, spaceID int64, limit int) ([]MapPoint, int, error)
}

// Ranking says how a search's full-text ranking was made (store.Ranking).
type Ranking struct {
	// Bounded is true when the query matched more than Limit papers and only the Limit most
	// recently stored of them were ranked.
	Bounded bool
	// Limit is how many matches a ranking ranks at most.
	Limit int
}

// ListQuery selects a page of papers.
type ListQuery struct {
	// Since keeps papers stored at or after this time (the time their write began, which
	// may commit seconds later); zero: no limit.
	Since time.Time
	// Category keeps papers with this category; "": any.
	Category string
	// Text keeps papers whose title or abstract matches this full-text query; "": any.
	Text string
	// Limit is the page size, 1 to MaxListLimit.
	Limit int
	// Cursor continues after a previous page (its Page.Next); "": the first page. A cursor
	// that was not made by the Store is an error wrapping paper.ErrInvalid.
	Cursor string
}

// Page is one page of papers and the cursor of the next one ("" on the last page).
type Page struct {
	Papers []paper.Record
	Next   string
}

// MapPoint is one paper's vector, with what the map labels it with.
type MapPoint struct {
	ID         string
	Title      string
	Categories []string
	Vector     []float32
}

// QueryEmbedder turns search text into a vector of its space.
type QueryEmbedder interface {
	// Space names the model, dimensions and template of the vectors it makes.
	Space() paper.Space
	// EmbedQuery returns the vector of text and what the call cost (Requests 0 for a local
	// model), also when it fails. The usage's Model is the model that made the vector: a
	// vector of another model than the active space's is refused (409).
	EmbedQuery(ctx context.Context, text string) ([]float32, paper.Usage, error)
}

// UsageRecorder adds API usage to the usage ledger that status reports (store.Store's
// RecordUsage).
type UsageRecorder interface {
	RecordUsage(ctx context.Context, u []paper.Usage) error
}

// Publisher queues abstracts for processing (POST /api/papers).
type Publisher interface {
	// Publish queues papers and returns the ids the queue accepted, once per message
	// acknowledged (an id sent twice and taken twice is in it twice); on error, those
	// accepted before it failed. A paper the queue can never take (its message is larger than the
	// queue's limit) is not sent and does not stop the others: it is in refused, by its index
	// in papers, with the reason in plain words.
	Publish(ctx context.Context, papers []paper.Abstract) (accepted []string, refused map[int]error, err error)
}

// RecordParser turns one posted JSON record into an Abstract: the same checks and
// normalisation as `paperpipe ingest` applies to a JSONL line. Its error says in plain words
// why the record is rejected.
type RecordParser func(raw []byte) (paper.Abstract, error)

// StatusProvider reports the state of the pipeline for the status page and GET /api/status.
type StatusProvider interface {
	Status(ctx context.Context) (Status, error)
}

// Status is the state of the pipeline.
type Status struct {
	Papers        int64  `json:"papers"`
	WithTLDR      int64  `json:"with_tldr"`
	WithEmbedding int64  `json:"with_embedding"`
	TLDRModel     string `json:"tldr_model"`
	PromptVersion string `json:"prompt_version"`
	Space         string `json:"space"`
	// TLDRsWithheld counts the papers without a TL;DR of TLDRModel and PromptVersion because
	// the API withheld it (its content filter, or the model refused): not asked for again
	// (`paperpipe batches withheld`), they are why WithTLDR stays short of Papers.
	TLDRsWithheld int64 `json:"tldrs_withheld"`
	// MissingModel, when set, is the active space's fitted offline model the database lacks
	// (an archive imported from an export that did not carry it): semantic search and the
	// workers stop on it until `paperpipe fit` makes it again.
	MissingModel *MissingModel `json:"missing_model,omitempty"`
	// Backlog is each durable consumer's queue.
	Backlog []Backlog `json:"backlog"`
	// DeadLetters counts dead-lettered messages; Recent lists the newest of them.
	DeadLetters int          `json:"dead_letters"`
	Recent      []DeadLetter `json:"recent_dead_letters"`
	// QueueError, when set, says why the queue could not be read (NATS is unavailable):
	// Backlog, DeadLetters and Recent are then empty, and the database's parts are given.
	QueueError string `json:"queue_error,omitempty"`
	// WorkersError, when set, says why the workers could not be read from NATS: Backlog's
	// Workers are then empty and its NoWorker false, unknown.
	WorkersError string `json:"workers_error,omitempty"`
	// NoWorkersBucket: the bucket the workers announce themselves in does not exist — no
	// worker of this version has run on the server, or workers of a NATS account that may not
	// create it run unannounced —, so an empty Workers and NoWorker do not show that none runs.
	NoWorkersBucket bool `json:"no_workers_bucket,omitempty"`
	// WorkerNotes warn of what the running workers write (`paperpipe status` prints them as
	// its notes): a worker whose vectors go to a space queries do not use, or to a dropped
	// one, and the workers of one backlog that write different things. Each is a sentence that
	// says what to do, commands in backquotes.
	WorkerNotes []string `json:"worker_notes,omitempty"`
	// WorkersUnread counts the older entries of the workers' bucket left unread: only its
	// newest pipeline.MaxAnnouncementsRead are, where the running workers are (each writes its
	// own every 10 s).
	WorkersUnread uint64 `json:"workers_unread,omitempty"`
	// Usage is API usage per day, model and kind, oldest first.
	Usage []Usage `json:"usage"`
	// UsageSince is the first day Usage covers.
	UsageSince time.Time `json:"usage_since"`
}

// MissingModel names a fitted offline model the database lacks, and says what makes it again.
type MissingModel struct {
	Model string `json:"model"`
	Note  string `json:"note"`
}

// Backlog is one durable consumer's queue.
type Backlog struct {
	Consumer    string `json:"consumer"`
	Pending     uint64 `json:"pending"`
	AckPending  int    `json:"ack_pending"`
	Redelivered int    `json:"redelivered"`
	// Workers are the consumer's workers as they announce themselves in NATS; empty with
	// Status.WorkersError set when they could not be read.
	Workers []Worker `json:"workers"`
	// NoWorker: messages wait, and no worker of the consumer is running (none is announced);
	// false for a DroppedSpace's.
	NoWorker bool `json:"no_worker_running"`
	// DroppedSpace names the embedding space a reprocess consumer re-processes into when that
	// space no longer exists: nothing processes its messages, and `paperpipe spaces drop NAME`
	// removes them.
	DroppedSpace string `json:"dropped_space,omitempty"`
	// Description is the consumer's: for a re-processing consumer, what its run writes
	// ("re-processing: TL;DRs gpt-4o-mini tldr-v1, space …"), which names the run to resume or
	// abandon.
	Description string `json:"description,omitempty"`
	// SpaceError says why whether a reprocess consumer's space still exists could not be
	// told (the database's error); DroppedSpace is then empty.
	SpaceError string `json:"space_error,omitempty"`
}

// Reprocess reports whether b is a `paperpipe reprocess` run's queue.
func (b Backlog) Reprocess() bool { return strings.HasPrefix(b.Consumer, "reprocess-") }

// Waiting counts the messages not yet acknowledged, pending or delivered: with no worker
// running (NoWorker, DroppedSpace), those handed back by a worker that stopped, or held by one
// killed until its AckWait ends, wait with the pending ones (pipeline.Backlog.Waiting).
func (b Backlog) Waiting() uint64 { return b.Pending + uint64(b.AckPending) }

// Worker is one running worker (paperpipe worker, up, a reprocess run).
type Worker struct {
	Host        string       `json:"host"`
	PID         int          `json:"pid"`
	Started     time.Time    `json:"started"`
	Target      string       `json:"target"`      // what it writes: the TL;DR model and prompt, the embedding space
	Concurrency int          `json:"concurrency"` // its TL;DR slots; 0 when it writes no TL;DRs
	State       string       `json:"state"`       // working, idle, paused, stalled or stopping
	Pause       *WorkerPause `json:"pause,omitempty"`
	Held        int          `json:"held"`      // messages held
	Processed   int64        `json:"processed"` // messages whose work it stored since it started
	Version     string       `json:"version"`
	LastSeen    time.Time    `json:"last_seen"` // its entry's last write
	// Overdue: its entry was not refreshed for twice its refresh (killed, or cut off from
	// NATS); it expires by itself.
	Overdue bool `json:"overdue"`
}

// WorkerPause is why a worker takes no work, and until when.
type WorkerPause struct {
	// Reason is one of api_refused, rate_limited, api_unavailable, api_unreachable,
	// api_failing, database_unreachable; database_waiting for a stalled worker (its writes wait
	// for the database, not long enough yet to pause it).
	Reason string `json:"reason"`
	Text   string `json:"text"`             // the pause in words, with its end
	Detail string `json:"detail,omitempty"` // the answer that caused it
	// Until is when the worker tries again; absent while it tries one message at a time.
	Until *time.Time `json:"until,omitempty"`
}

// DeadLetter is one dead-lettered message.
type DeadLetter struct {
	Seq      uint64    `json:"seq"`
	PaperID  string    `json:"paper_id"`
	Reason   string    `json:"reason"`
	Attempts int       `json:"attempts"`
	FailedAt time.Time `json:"failed_at"`
}

// Usage is one day's API usage of one model and kind, with its cost in US dollars when the
// model's price is known (nil otherwise; 0 for the offline models).
type Usage struct {
	Day          time.Time `json:"day"`
	Model        string    `json:"model"`
	Kind         string    `json:"kind"`
	Requests     int       `json:"requests"`
	InputTokens  int       `json:"input_tokens"`
	OutputTokens int       `json:"output_tokens"`
	CostUSD      *float64  `json:"cost_usd"`
}

// Check is one readiness check of GET /readyz: the database answers, NATS is connected.
type Check struct {
	Name  string
	Check func(ctx context.Context) error
	// ReportOnly makes the check's failure show in the answer's checks without making the
	// server unready: for what only some requests need (serve's NATS, which only POST
	// /api/papers and the status page's queue use), so that its outage does not take the
	// reads out of a load balancer.
	ReportOnly bool
}

package main

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/llm"
	"github.com/paperpipe/paperpipe/internal/metrics"
	"github.com/paperpipe/paperpipe/internal/pricing"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/store"
	"github.com/paperpipe/paperpipe/summarize"
)

// DefaultDatabaseURL is where `make services` runs PostgreSQL with pgvector.
const DefaultDatabaseURL = "postgres://paperpipe@127.0.0.1:55432/paperpipe?sslmode=disable"

// offline is the model name that selects a built-in offline model.
const offline = "offline"

// config is everything paperpipe reads from the environment, overridable by flags. Every field
// is documented in the README with its variable and default.
type config struct {
	// modelMayBeMissing: a fitted offline model the database lacks is no error (buildModels
	// gives its space a missingFitted embedder), for status, which only counts.
	modelMayBeMissing bool

	DatabaseURL string // DATABASE_URL
	ReadDBURL   string // PAPERPIPE_READ_DATABASE_URL: a read replica serve's queries go to; "": DATABASE_URL
	NATSURL     string // NATS_URL; empty: embedded server
	NATSNkey    string // PAPERPIPE_NATS_NKEY: a file holding the NKey seed NATS_URL's server knows
	NATSCA      string // PAPERPIPE_NATS_CA: a PEM file of the CA that signed NATS_URL's server certificate
	DataDir     string // PAPERPIPE_DATA
	// archive is the archive DATABASE_URL leads to as its server names it (archiveOwner), once
	// a worker's store is open; "": read from DATABASE_URL (see queueArchive).
	archive  string
	Replicas int // PAPERPIPE_NATS_REPLICAS; 0: 1 (applied when the streams are created)
	// NATSSyncAlways and NATSSyncInterval are PAPERPIPE_NATS_SYNC: how the embedded server syncs
	// its files to disk, at every write ("always") or every interval (0: the server's 2m).
	NATSSyncAlways   bool
	NATSSyncInterval time.Duration

	BaseURL    string // OPENAI_BASE_URL
	APIKey     string // OPENAI_API_KEY — never printed
	ChatModel  string // PAPERPIPE_CHAT_MODEL
	EmbedModel string // PAPERPIPE_EMBED_MODEL
	EmbedDims  int    // PAPERPIPE_EMBED_DIMENSIONS
	// embedDimsFlag: EmbedDims was given as --embed-dimensions (buildModels refuses one an
	// offline model cannot make; the variable, which an environment shared with the API's
	// models may hold, it leaves).
	embedDimsFlag bool
	EmbedSendDims embed.SendDimensions // PAPERPIPE_EMBED_SEND_DIMENSIONS
	MaxWords      int                  // PAPERPIPE_TLDR_MAX_WORDS
	RPM           int                  // PAPERPIPE_RPM
	TPM           int                  // PAPERPIPE_TPM

	EmbedBatchInputs int           // PAPERPIPE_EMBED_BATCH_INPUTS
	EmbedBatchTokens int           // PAPERPIPE_EMBED_BATCH_TOKENS
	EmbedEncoding    string        // PAPERPIPE_EMBED_ENCODING
	EmbedLinger      time.Duration // PAPERPIPE_EMBED_LINGER
	Prices           string        // PAPERPIPE_PRICES

	Concurrency int           // PAPERPIPE_CONCURRENCY
	BatchSize   int           // PAPERPIPE_BATCH_SIZE
	AckWait     time.Duration // PAPERPIPE_ACK_WAIT
	MaxDeliver  int           // PAPERPIPE_MAX_DELIVER
	MsgTimeout  time.Duration // PAPERPIPE_MSG_TIMEOUT; 0: half the AckWait

	EFSearch         int    // PAPERPIPE_EF_SEARCH
	KeywordRankLimit int    // PAPERPIPE_KEYWORD_RANK_LIMIT; 0: store.DefaultKeywordRankLimit
	VectorIndex      string // PAPERPIPE_VECTOR_INDEX
	// IndexBuildMemory is maintenance_work_mem of an HNSW index build (PAPERPIPE_INDEX_BUILD_MEMORY).
	IndexBuildMemory string

	FollowInterval time.Duration // PAPERPIPE_FOLLOW_INTERVAL

	LogLevel string // PAPERPIPE_LOG_LEVEL
	JSON     bool   // --json

	HTTPAddr    string // PAPERPIPE_HTTP_ADDR (serve, up)
	MetricsAddr string // PAPERPIPE_METRICS_ADDR (worker); empty: no metrics served
	// ShutdownDelay is how long serve and up go on serving, not ready, after SIGTERM
	// (PAPERPIPE_SHUTDOWN_DELAY).
	ShutdownDelay time.Duration
	APIToken      string // PAPERPIPE_API_TOKEN — never printed
	APITokenReads bool   // PAPERPIPE_API_TOKEN_READS
	emptyToken    string // PAPERPIPE_API_TOKEN is set but empty: how ("" when not)

	// fail stops the command with its reason (main sets it; nil in tests that build a config).
	fail         func(error)
	MaxBodyBytes int64 // PAPERPIPE_HTTP_MAX_BODY_BYTES
	// AllowedHosts are the names the server answers to besides localhost and IP addresses
	// (PAPERPIPE_HTTP_ALLOWED_HOSTS, comma-separated).
	AllowedHosts []string

	// Set at run time by the commands that serve HTTP (see cmd_serve.go), not from the
	// environment.
	serveHTTP  bool             // up: serve the web surfaces beside the worker
	metrics    *metrics.Metrics // nil: no metrics
	httpClient *http.Client     // the model clients' client; nil: the default
}

// apiConfigured reports whether an OpenAI-compatible API is set up.
func (c *config) apiConfigured() bool { return c.BaseURL != "" || c.APIKey != "" }

// checkAPI returns a usage error when the command is about to call a model (the TL;DR model
// with chat, the embedding model with emb) that is not an offline one, on OpenAI's API (no
// OPENAI_BASE_URL, or OpenAI's), with no OPENAI_API_KEY: every call would be refused, after
// the clients' retries, with no hint of why. A server elsewhere (Ollama, vLLM) may need no key.
func (c *config) checkAPI(chat, emb bool) error {
	c.resolveModels()
	if c.APIKey != "" {
		return nil
	}
	if c.BaseURL != "" {
		u, err := url.Parse(c.BaseURL)
		if err != nil || u.Hostname() != "api.openai.com" {
			return nil
		}
	}
	var models []string
	if chat && !c.chatOffline() {
		models = append(models, "the TL;DR model "+c.ChatModel)
	}
	if emb && !c.embedOffline() {
		models = append(models, "the embedding model "+c.EmbedModel)
	}
	if len(models) == 0 {
		return nil
	}
	return usageErr("%s would be called on OpenAI's API without a key: set OPENAI_API_KEY, or OPENAI_BASE_URL "+
		"to another OpenAI-compatible server (a local one such as Ollama needs no key), or choose the offline models "+
		"(--chat-model offline, --embed-model offline)", strings.Join(models, " and "))
}

func loadConfig() *config {
	c := &config{
		DatabaseURL: env("DATABASE_URL", DefaultDatabaseURL),
		ReadDBURL:   getenv("PAPERPIPE_READ_DATABASE_URL"),
		NATSURL:     getenv("NATS_URL"),
		NATSNkey:    getenv("PAPERPIPE_NATS_NKEY"),
		NATSCA:      getenv("PAPERPIPE_NATS_CA"),
		DataDir:     dataDir(),
		Replicas:    envInt("PAPERPIPE_NATS_REPLICAS", 1),
		BaseURL:     getenv("OPENAI_BASE_URL"),
		APIKey:      getenv("OPENAI_API_KEY"),
		ChatModel:   getenv("PAPERPIPE_CHAT_MODEL"),
		EmbedModel:  getenv("PAPERPIPE_EMBED_MODEL"),
		EmbedDims:   envInt("PAPERPIPE_EMBED_DIMENSIONS", 0),
		MaxWords:    envInt("PAPERPIPE_TLDR_MAX_WORDS", 30),
		RPM:         envInt("PAPERPIPE_RPM", 0),
		TPM:         envInt("PAPERPIPE_TPM", 0),

		EmbedBatchInputs: envInt("PAPERPIPE_EMBED_BATCH_INPUTS", 2048),
		EmbedBatchTokens: envInt("PAPERPIPE_EMBED_BATCH_TOKENS", 300000),
		EmbedEncoding:    env("PAPERPIPE_EMBED_ENCODING", "base64"),
		EmbedLinger:      envDuration("PAPERPIPE_EMBED_LINGER", pipeline.DefaultEmbedLinger),
		Prices:           getenv("PAPERPIPE_PRICES"),
		Concurrency:      envInt("PAPERPIPE_CONCURRENCY", 16),
		BatchSize:        envInt("PAPERPIPE_BATCH_SIZE", 64),
		AckWait:          envDuration("PAPERPIPE_ACK_WAIT", 60*time.Second),
		MaxDeliver:       envInt("PAPERPIPE_MAX_DELIVER", 8),
		MsgTimeout:       envDuration("PAPERPIPE_MSG_TIMEOUT", 0),
		EFSearch:         envInt("PAPERPIPE_EF_SEARCH", 0),
		KeywordRankLimit: envInt("PAPERPIPE_KEYWORD_RANK_LIMIT", 0),
		VectorIndex:      env("PAPERPIPE_VECTOR_INDEX", string(store.DefaultIndexKind)),
		IndexBuildMemory: env("PAPERPIPE_INDEX_BUILD_MEMORY", "1GB"),
		FollowInterval:   envDuration("PAPERPIPE_FOLLOW_INTERVAL", 30*time.Second),
		LogLevel:         env("PAPERPIPE_LOG_LEVEL", "info"),
		HTTPAddr:         env("PAPERPIPE_HTTP_ADDR", DefaultHTTPAddr),
		MetricsAddr:      getenv("PAPERPIPE_METRICS_ADDR"),
		ShutdownDelay:    envDuration("PAPERPIPE_SHUTDOWN_DELAY", 0),
		APIToken:         getenv("PAPERPIPE_API_TOKEN"),
		APITokenReads:    envBool("PAPERPIPE_API_TOKEN_READS"),
		MaxBodyBytes:     int64(envInt("PAPERPIPE_HTTP_MAX_BODY_BYTES", 4<<20)),
	}
	// Set but empty, DATABASE_URL is a variable a script or template meant to fill
	// (`DATABASE_URL=$NEW_DATABASE_URL paperpipe …` with it unset, a Secret without a value):
	// taken as unset, the command went on the default archive without a word, migrating it,
	// and an import, a remove or a prune wrote there.
	if raw, set := os.LookupEnv("DATABASE_URL"); set && strings.TrimSpace(raw) == "" {
		fatalf("DATABASE_URL is set but empty (a variable of a script or a template that was not set?): set it to the "+
			"database to use, or unset it for the default archive, %s", DefaultDatabaseURL)
	}
	// A connection string the store would refuse (mysql://…, a bad port, an unescaped "@" in
	// the password) is a setting to fix, said before anything is reached: found at connect, it
	// was a command's failure, exit 1, as if the database were down.
	for _, v := range []struct{ name, url string }{{"DATABASE_URL", c.DatabaseURL}, {"PAPERPIPE_READ_DATABASE_URL", c.ReadDBURL}} {
		if v.url == "" {
			continue
		}
		if err := store.CheckURL(v.url); err != nil {
			fatalf("%s: %s", v.name, errorMessage(err))
		}
	}
	// A value below the minimum would silently mean the default further down (the pipeline's
	// zero values): refused, like a value that does not parse. So is one above what it can mean
	// (see the maximums below): a typo's extra digits are not taken for a wish.
	for _, v := range []struct {
		name string
		bad  bool
		want string
	}{
		// The workers set PAPERPIPE_ACK_WAIT on the consumer they all share before they start
		// (connectBroker): checked here, before NATS is reached, a value a worker would refuse
		// (it marks each message InProgress every quarter of the AckWait, and needs room for
		// the work between) never reaches the consumer the running workers use. Below
		// pipeline.MinAckWait a NATS restart hands the messages the workers hold to others.
		{"PAPERPIPE_ACK_WAIT", c.AckWait < pipeline.MinAckWait || c.AckWait > maxAckWait,
			fmt.Sprintf("a duration from %s to %s, like 60s", pipeline.MinAckWait, fmtDuration(maxAckWait))},
		// A message timeout of milliseconds ends every API call before its answer: each
		// paper's work fails, and after its deliveries the whole queue is dead-lettered.
		{"PAPERPIPE_MSG_TIMEOUT", c.MsgTimeout < 0 || (c.MsgTimeout > 0 && c.MsgTimeout < time.Second) || c.MsgTimeout >= c.AckWait,
			fmt.Sprintf("a duration of at least 1s and below PAPERPIPE_ACK_WAIT (%s), or 0 for half the AckWait", c.AckWait)},
		{"PAPERPIPE_MAX_DELIVER", c.MaxDeliver < 1 || c.MaxDeliver > maxDeliver,
			fmt.Sprintf("1 to %d deliveries (after the 9th each waits up to 5 minutes: %d are days of retries)", maxDeliver, maxDeliver)},
		{"PAPERPIPE_CONCURRENCY", c.Concurrency < 1 || c.Concurrency > pipeline.DefaultMaxAckPending, concurrencyRange},
		{"PAPERPIPE_BATCH_SIZE", c.BatchSize < 1 || c.BatchSize > pipeline.DefaultMaxAckPending, batchSizeRange},
		{"PAPERPIPE_TLDR_MAX_WORDS", c.MaxWords < 1 || c.MaxWords > maxTLDRWords,
			fmt.Sprintf("1 to %d words (a TL;DR is one sentence)", maxTLDRWords)},
		{"PAPERPIPE_EMBED_DIMENSIONS", c.EmbedDims < 0 || c.EmbedDims > store.MaxDimensions, embedDimsRange},
		{"PAPERPIPE_EMBED_BATCH_INPUTS", c.EmbedBatchInputs < 1, "at least 1 abstract per request"},
		{"PAPERPIPE_EMBED_BATCH_TOKENS", c.EmbedBatchTokens < minEmbedBatchTokens, embedBatchTokensRange},
		{"PAPERPIPE_EMBED_LINGER", c.EmbedLinger <= 0, "a duration above 0, like 1s (values below 10ms mean 10ms)"},
		{"PAPERPIPE_EF_SEARCH", c.EFSearch < 0 || c.EFSearch > store.MaxK,
			fmt.Sprintf("0 (each index kind's default) or 1 to %d candidates", store.MaxK)},
		{"PAPERPIPE_KEYWORD_RANK_LIMIT", c.KeywordRankLimit < 0 || c.KeywordRankLimit > store.MaxKeywordRankLimit,
			fmt.Sprintf("0 (the default, %d) to %d matches", store.DefaultKeywordRankLimit, store.MaxKeywordRankLimit)},
		{"PAPERPIPE_RPM", c.RPM < 0 || c.RPM > maxRPM, fmt.Sprintf("0 (no client-side limit) to %d requests per minute", maxRPM)},
		{"PAPERPIPE_TPM", c.TPM < 0 || c.TPM > maxTPM, fmt.Sprintf("0 (no client-side limit) to %d tokens per minute", maxTPM)},
		// Each check is a query: 1ms (or 1ns) had every offline worker query the database
		// back to back, for as long as it ran.
		{"PAPERPIPE_FOLLOW_INTERVAL", c.FollowInterval < 0 || (c.FollowInterval > 0 && c.FollowInterval < time.Second) || c.FollowInterval > maxFollowInterval,
			fmt.Sprintf("a duration from 1s to %s, like 30s, or 0 to turn it off", fmtDuration(maxFollowInterval))},
		{"PAPERPIPE_SHUTDOWN_DELAY", c.ShutdownDelay < 0 || c.ShutdownDelay > maxShutdownDelay,
			fmt.Sprintf("a duration from 0 (shut down at once) to %s, like 5s", fmtDuration(maxShutdownDelay))},
		{"PAPERPIPE_HTTP_MAX_BODY_BYTES", c.MaxBodyBytes < 1 || c.MaxBodyBytes > maxBodyBytes,
			fmt.Sprintf("1 to %d bytes (a body is held in memory while it is read)", maxBodyBytes)},
	} {
		if v.bad {
			fatalf("%s=%q: want %s", v.name, os.Getenv(v.name), v.want)
		}
	}
	// Before the database and NATS are reached: the connection would fail with it as if NATS
	// were down (serve would go on connecting in the background, and then stop). One of white
	// space only names no server, as one of commas does: refused too, not the embedded server
	// (only an unset or empty NATS_URL means that).
	if raw := os.Getenv("NATS_URL"); c.NATSURL == "" && raw != "" {
		c.NATSURL = raw
	}
	if err := checkNATSURL(c.NATSURL); err != nil {
		fatalf("NATS_URL: %v", err)
	}
	for name, path := range map[string]string{"PAPERPIPE_NATS_NKEY": c.NATSNkey, "PAPERPIPE_NATS_CA": c.NATSCA} {
		if path == "" {
			continue
		}
		if c.NATSURL == "" {
			fatalf("%s is set but NATS_URL is not: it is for the NATS server NATS_URL names (the embedded server needs none)", name)
		}
		if f, err := os.Open(path); err != nil {
			if name == "PAPERPIPE_NATS_NKEY" && secretNotPath(path) {
				// Quoted, the value was the secret, in the error and the logs of whatever ran
				// paperpipe (its os.Open error quotes it again).
				fatalf("PAPERPIPE_NATS_NKEY holds an NKey seed or a credentials file's content (not shown), not a file's path: " +
					"write it to a file only paperpipe's user can read, and set PAPERPIPE_NATS_NKEY to that file's path")
			}
			fatalf("%s=%q: %v", name, path, err)
		} else {
			f.Close()
		}
	}
	if _, err := store.ParseIndexKind(c.VectorIndex); err != nil {
		fatalf("PAPERPIPE_VECTOR_INDEX=%q: want %s, %s or %s", c.VectorIndex, store.IndexHNSWHalfvec, store.IndexHNSW, store.IndexHNSWBinary)
	}
	// Checked here with the others, for every command: found where the API embedder was made,
	// it exited 1 from `worker` or `embed` (the usage error's 2 is what a bad setting gives) and
	// passed unseen wherever the offline embedder, or none, was used.
	if c.EmbedEncoding != "base64" && c.EmbedEncoding != "float" {
		fatalf("PAPERPIPE_EMBED_ENCODING=%q: want base64 or float", c.EmbedEncoding)
	}
	if !validIndexMemory(c.IndexBuildMemory) {
		fatalf("PAPERPIPE_INDEX_BUILD_MEMORY=%q: want a PostgreSQL memory size from 1MB to below 2TB (maintenance_work_mem's range), such as 1GB, 4GB or 512MB", c.IndexBuildMemory)
	}
	sd, err := embed.ParseSendDimensions(getenv("PAPERPIPE_EMBED_SEND_DIMENSIONS"))
	if err != nil {
		fatalf("PAPERPIPE_EMBED_SEND_DIMENSIONS=%q: want auto, always or never", os.Getenv("PAPERPIPE_EMBED_SEND_DIMENSIONS"))
	}
	c.EmbedSendDims = sd
	if c.NATSSyncAlways, c.NATSSyncInterval, err = natsSync(getenv("PAPERPIPE_NATS_SYNC")); err != nil {
		fatalf("PAPERPIPE_NATS_SYNC=%q: %v", os.Getenv("PAPERPIPE_NATS_SYNC"), err)
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		fatalf("PAPERPIPE_NATS_REPLICAS=%d: want 1 to 5 (JetStream's limit)", c.Replicas)
	}
	// Settings that only serve and up use are checked here too, with the others: found by
	// web.New they failed after the database, NATS and (in up) the workers had started, in the
	// web package's field names.
	if c.AllowedHosts, err = allowedHosts(getenv("PAPERPIPE_HTTP_ALLOWED_HOSTS")); err != nil {
		fatalf("PAPERPIPE_HTTP_ALLOWED_HOSTS=%q: %v", os.Getenv("PAPERPIPE_HTTP_ALLOWED_HOSTS"), err)
	}
	if raw, set := os.LookupEnv("PAPERPIPE_API_TOKEN"); set && c.APIToken == "" {
		c.emptyToken = "empty"
		if raw != "" {
			c.emptyToken = "empty (white space only)"
		}
	}
	if c.BaseURL != "" {
		if err := llm.CheckBaseURL(c.BaseURL); err != nil {
			fatalf("OPENAI_BASE_URL %v (the key is OPENAI_API_KEY)", err)
		}
	}
	if _, err := pricing.Parse(c.Prices); err != nil {
		fatalf("PAPERPIPE_PRICES: %v", err)
	}
	return c
}

// Maximums of settings, beyond which a value cannot mean what it says (see loadConfig).
const (
	// maxDeliver: a message failing for a cause that is not its own (a server error) is
	// retried every 5 minutes at most; 1000 deliveries are about three days.
	maxDeliver = 1000
	// maxTLDRWords: a TL;DR is one sentence. Each request's token estimate counts 2 per word
	// allowed, against PAPERPIPE_TPM: a limit of thousands would spend a minute's budget on one.
	maxTLDRWords = 200
	// maxBodyBytes: serve holds a request's body in memory as it reads it, one per request in
	// flight; 10,000 records (web.MaxRecordsPerPost) of the longest title and abstract a
	// record may have take about a third of it.
	maxBodyBytes = 1 << 30
	// minEmbedBatchTokens: one input must fit in an embeddings request whole, and is cut to
	// PAPERPIPE_EMBED_BATCH_TOKENS when it does not. An arXiv abstract at its limit of 1,920
	// characters, with its title, is estimated (llm.EstimateTokens) at about 700 tokens: a
	// smaller budget cut abstracts of ordinary length, and 100 cut every one, silently.
	minEmbedBatchTokens = 1024
	// maxAckWait: a killed worker's messages come back only after the AckWait, and a
	// message's API work (PAPERPIPE_MSG_TIMEOUT, below it) of a slow local model takes
	// minutes, not hours: 60h (a typo of 60s or 60m) held a killed worker's papers for days.
	maxAckWait = time.Hour
	// maxShutdownDelay: a load balancer takes a pod out within seconds of /readyz failing, and
	// a supervisor kills the process after its grace period (Kubernetes: 30 s by default).
	maxShutdownDelay = 10 * time.Minute
	// maxFollowInterval: beyond it a worker follows a new offline space so late that it is
	// better turned off (0).
	maxFollowInterval = time.Hour
	// maxRPM, maxTPM: far above any API's limits (OpenAI's largest tiers: tens of thousands
	// of requests and hundreds of millions of tokens a minute); above them a value is a typo,
	// and would mean no limit at all.
	maxRPM = 1_000_000
	maxTPM = 1_000_000_000
)

// The ranges of the settings checked again as flags (checkWorkerFlags, buildModels).
var (
	concurrencyRange = fmt.Sprintf("1 to %d requests in flight (no more messages are delivered to the workers at once)", pipeline.DefaultMaxAckPending)
	batchSizeRange   = fmt.Sprintf("1 to %d messages (no more are delivered to the workers at once)", pipeline.DefaultMaxAckPending)
	embedDimsRange   = fmt.Sprintf("0 (the model's own length) to %d (pgvector's limit)", store.MaxDimensions)
	// embedBatchTokensRange: see minEmbedBatchTokens.
	embedBatchTokensRange = fmt.Sprintf("at least %d tokens per request (an abstract longer than a request's budget is cut to it: "+
		"an arXiv abstract at its 1,920-character limit, with its title, is estimated at about 700)", minEmbedBatchTokens)
)

// hostNamePattern is a host name as PAPERPIPE_HTTP_ALLOWED_HOSTS takes it: letters, digits,
// '-', '_' and dots, no port.
var hostNamePattern = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?$`)

// allowedHosts parses PAPERPIPE_HTTP_ALLOWED_HOSTS: host names separated by commas, spaces
// around them ignored.
func allowedHosts(v string) ([]string, error) {
	var out []string
	for h := range strings.SplitSeq(v, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if !hostNamePattern.MatchString(h) {
			return nil, fmt.Errorf("%q is not a host name: want names separated by commas, without scheme or port, such as papers.example.com,papers (localhost and IP addresses are always answered)", h)
		}
		out = append(out, h)
	}
	return out, nil
}

// pgMemory is a memory size as PostgreSQL's settings take it: a number and kB, MB, GB or TB.
var pgMemory = regexp.MustCompile(`^([1-9][0-9]*)(kB|MB|GB|TB)$`)

// validIndexMemory reports whether size is a memory size PostgreSQL takes as
// maintenance_work_mem: 1024kB to 2147483647kB. Outside that range the index build would
// fail, after an import's whole load.
func validIndexMemory(size string) bool {
	m := pgMemory.FindStringSubmatch(size)
	if m == nil {
		return false
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return false
	}
	unit := map[string]int64{"kB": 1, "MB": 1 << 10, "GB": 1 << 20, "TB": 1 << 30}[m[2]]
	return n <= math.MaxInt32/unit && n*unit >= 1024
}

// chatOffline reports whether the TL;DR model is the built-in offline summarizer, by "offline"
// or by its own name (the one TL;DRs are stored under).
func (c *config) chatOffline() bool {
	return c.ChatModel == offline || c.ChatModel == summarize.OfflineModel
}

// embedOffline reports whether the embedding model is a built-in offline one: "offline", the
// hashed model (either version) or a fitted model, each by name.
func (c *config) embedOffline() bool {
	return c.EmbedModel == offline || embed.IsOfflineModel(c.EmbedModel)
}

// resolveModels fills in default model names once flags are parsed.
func (c *config) resolveModels() {
	if c.ChatModel == "" {
		c.ChatModel = offline
		if c.apiConfigured() {
			c.ChatModel = "gpt-4o-mini"
		}
	}
	if c.EmbedModel == "" {
		c.EmbedModel = offline
		if c.apiConfigured() {
			c.EmbedModel = "text-embedding-3-small"
		}
	}
}

// addModelFlags registers the flags that choose models.
func (c *config) addModelFlags(fs *flag.FlagSet) {
	c.addChatModelFlag(fs)
	c.addEmbedModelFlags(fs)
}

// storelessOffline is what --embed-model offline means to the commands that use no database
// (summarize, embed): no fitted model is found without the store.
const storelessOffline = "the hashed model's second version, " + embed.OfflineModelV2 + "; a fitted model's name, paperpipe-offline-tfidf-…, is read from the database"

// addChatModelFlag registers --chat-model, for the commands that use the TL;DR model.
func (c *config) addChatModelFlag(fs *flag.FlagSet) {
	fs.StringVar(&c.ChatModel, "chat-model", c.ChatModel, "TL;DR model (`name`, or \"offline\"); env PAPERPIPE_CHAT_MODEL")
}

// addEmbedModelFlags registers --embed-model and --embed-dimensions, for the commands that use
// the embedding model; offline, when given, says what "offline" means to the command (default:
// the active space's offline model, or the hashed model's second version: resolveOffline).
func (c *config) addEmbedModelFlags(fs *flag.FlagSet, offline ...string) {
	what := "the active space's offline model; " + embed.OfflineModelV2 + " in a new archive"
	if len(offline) > 0 {
		what = offline[0]
	}
	fs.StringVar(&c.EmbedModel, "embed-model", c.EmbedModel, "embedding model (`name`; \"offline\": "+what+"); env PAPERPIPE_EMBED_MODEL")
	fs.Var(&dimsFlag{c}, "embed-dimensions", "embedding dimensions to request, `N` (0: the model's own); env PAPERPIPE_EMBED_DIMENSIONS")
}

// dimsFlag is --embed-dimensions: c.EmbedDims, noting that the flag set it.
type dimsFlag struct{ c *config }

func (f *dimsFlag) String() string {
	if f.c == nil {
		return "0"
	}
	return strconv.Itoa(f.c.EmbedDims)
}

func (f *dimsFlag) Set(v string) error {
	n, err := strconv.ParseInt(v, 0, strconv.IntSize)
	if err != nil {
		return errors.New("not a whole number")
	}
	f.c.EmbedDims, f.c.embedDimsFlag = int(n), true
	return nil
}

// addWorkerFlags registers the flags of commands that run a worker.
func (c *config) addWorkerFlags(fs *flag.FlagSet) {
	c.addModelFlags(fs)
	c.addWorkerTuningFlags(fs)
}

// addWorkerTuningFlags registers the flags of how workers run, without the models (fit's
// workers embed with the model it fits).
func (c *config) addWorkerTuningFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "TL;DR requests in flight per worker, `N`; a worker holds up to max(4×N, 256) messages, so that embedding requests gather many abstracts; env PAPERPIPE_CONCURRENCY")
	fs.IntVar(&c.BatchSize, "batch-size", c.BatchSize, "messages pulled and recorded per micro-batch; env PAPERPIPE_BATCH_SIZE")
	fs.IntVar(&c.EmbedBatchInputs, "embed-batch-inputs", c.EmbedBatchInputs, "most abstracts per embeddings request (the worker gathers at most 64 across messages); env PAPERPIPE_EMBED_BATCH_INPUTS")
	fs.IntVar(&c.EmbedBatchTokens, "embed-batch-tokens", c.EmbedBatchTokens, "most estimated tokens per embeddings request; env PAPERPIPE_EMBED_BATCH_TOKENS")
	fs.DurationVar(&c.EmbedLinger, "embed-linger", c.EmbedLinger, "how long an embeddings request waits for more abstracts (up to 64) when there is no backlog, once the API has billed a request; at most half of PAPERPIPE_MSG_TIMEOUT; env PAPERPIPE_EMBED_LINGER")
}

// checkWorkerFlags is the usage error of a --concurrency or --batch-size below 1 (which the
// workers would silently replace by their defaults) or above what the consumer delivers at once,
// an --embed-batch-inputs below 1 or --embed-batch-tokens below its minimum, or an
// --embed-linger not above 0.
func (c *config) checkWorkerFlags() error {
	switch {
	case c.Concurrency < 1 || c.Concurrency > pipeline.DefaultMaxAckPending:
		return usageErr("--concurrency is %d, want %s", c.Concurrency, concurrencyRange)
	case c.BatchSize < 1 || c.BatchSize > pipeline.DefaultMaxAckPending:
		return usageErr("--batch-size is %d, want %s", c.BatchSize, batchSizeRange)
	case c.EmbedBatchInputs < 1:
		return usageErr("--embed-batch-inputs is %d, want at least 1", c.EmbedBatchInputs)
	case c.EmbedBatchTokens < minEmbedBatchTokens:
		return usageErr("--embed-batch-tokens is %d, want %s", c.EmbedBatchTokens, embedBatchTokensRange)
	case c.EmbedLinger <= 0:
		return usageErr("--embed-linger is %s, want a duration above 0", c.EmbedLinger)
	}
	return nil
}

func (c *config) addJSONFlag(fs *flag.FlagSet) {
	fs.BoolVar(&c.JSON, "json", false, "print JSON instead of a table")
}

// dataDir is PAPERPIPE_DATA, a leading ~ standing for the home directory, or its default. A
// crontab line, a systemd unit or `docker run -e` pass `PAPERPIPE_DATA=~/pp` as it is, and the
// embedded server made a directory named ~ in the working directory: a second queue, which
// the commands run from a shell (where ~ is expanded) did not see. "" without a home.
func dataDir() string {
	d := getenv("PAPERPIPE_DATA")
	switch {
	case d == "":
		return defaultDataDir()
	case d == "~" || strings.HasPrefix(d, "~/"):
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		return filepath.Join(home, d[1:])
	}
	return d
}

// tildeDataDir is the directory that releases before a leading ~ of PAPERPIPE_DATA stood for
// the home directory (dataDir) made for it: one named ~ in the working directory
// (PAPERPIPE_DATA=~/pp from a crontab line, whose working directory is HOME: HOME/~/pp), when it
// holds an embedded server's store, or "". What was queued there never reached the workers,
// and nothing else would say it is there.
func tildeDataDir() string {
	d := getenv("PAPERPIPE_DATA")
	if d != "~" && !strings.HasPrefix(d, "~/") {
		return ""
	}
	abs, err := filepath.Abs(d)
	if err != nil || !holdsQueue(abs) {
		return ""
	}
	return abs
}

// defaultDataDir is PAPERPIPE_DATA's default: $XDG_DATA_HOME/paperpipe, else
// ~/.local/share/paperpipe; "" without a home directory (a cron job or a unit run with no
// HOME), which the embedded server refuses, naming PAPERPIPE_DATA (dataDirError). It was
// $TMPDIR/paperpipe: a queue that the user's own commands, with HOME set, never saw, shared by
// every user of the machine and emptied at reboot.
func defaultDataDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "paperpipe")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "paperpipe")
	}
	return ""
}

// dataDirError is the error of a data directory that cannot be used, naming the settings
// that choose it: PAPERPIPE_DATA, or NATS_URL for a NATS server of one's own. Without a home
// directory it names the queue that releases before this one kept in $TMPDIR/paperpipe
// (earlierNoHomeDataDir) when there is one: the same commands upgraded stop here, and a new
// directory would leave that queue's papers and dead letters behind.
func dataDirError(c *config, err error) error {
	if c.DataDir == "" {
		if old := earlierNoHomeDataDir(); old != "" {
			return fmt.Errorf("no data directory for the embedded NATS server: HOME is not set (a cron job or a service without it?), "+
				"and an earlier paperpipe run so kept its queue in %s, which may hold papers not yet stored and dead letters: "+
				"set PAPERPIPE_DATA=%s in every paperpipe command to keep them (or move that directory, while no paperpipe runs, "+
				"out of the temporary directory, which a reboot may empty, and set PAPERPIPE_DATA to where it went), or NATS_URL", old, old)
		}
		return errors.New("no data directory for the embedded NATS server: HOME is not set (a cron job or a service without it?); " +
			"set PAPERPIPE_DATA to the full path of the directory the other paperpipe commands use (~/.local/share/paperpipe by default), or NATS_URL")
	}
	setting := "PAPERPIPE_DATA"
	if getenv("PAPERPIPE_DATA") == "" {
		setting = "the default data directory; set PAPERPIPE_DATA to another"
	}
	return fmt.Errorf("data directory %s (%s): %w", c.DataDir, setting, err)
}

// earlierNoHomeDataDir is $TMPDIR/paperpipe when it holds an embedded server's store: the data
// directory of the releases before this one without HOME (defaultDataDir), or "".
func earlierNoHomeDataDir() string {
	dir := filepath.Join(os.TempDir(), "paperpipe")
	if !holdsQueue(dir) {
		return ""
	}
	return dir
}

// holdsQueue reports whether dir holds an embedded server's store (its nats directory).
func holdsQueue(dir string) bool {
	fi, err := os.Stat(filepath.Join(dir, "nats"))
	return err == nil && fi.IsDir()
}

// getenv is the value of the environment variable key without the white space around it. A
// value read from a file (a Secret made --from-file, an env file) keeps its final newline: an
// OPENAI_API_KEY with it failed every call (no Authorization header carries a newline), each
// retried until its paper was dead-lettered, and a DATABASE_URL with a space before it was
// read as a keyword/value string naming nothing, which connected to the local server's
// default database instead. A value in quotes stops the command, naming the variable (and not
// the value, which may be a secret): a shell removes them, but an env file read by
// `docker run --env-file` or `kubectl create configmap --from-env-file` keeps them, and
// `DATABASE_URL="postgres://…"` so given connected to the default database too.
func getenv(key string) string {
	v := strings.TrimSpace(os.Getenv(key))
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		fatalf("%s is in quotes, which are taken as part of its value: an env file read by docker run --env-file "+
			"or kubectl create configmap --from-env-file keeps them (a shell does not); remove them", key)
	}
	return v
}

func env(key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

func envInt(key string, def int) int {
	v := getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		fatalf("%s=%q is not a whole number", key, v)
		return def // help shows the default (see settingsOnlyShown)
	}
	return n
}

// envBool reads a yes/no variable: 1, true, yes or on (any case) is true; unset or empty is false.
func envBool(key string) bool {
	switch strings.ToLower(getenv(key)) {
	case "", "0", "false", "no", "off":
		return false
	case "1", "true", "yes", "on":
		return true
	}
	fatalf("%s=%q: want 1 or 0", key, os.Getenv(key))
	return false
}

// natsSync reads PAPERPIPE_NATS_SYNC: "always" (fsync every write before it is answered), a
// duration (sync every interval), or "" (nats-server's default, every 2 minutes).
func natsSync(v string) (always bool, interval time.Duration, err error) {
	switch strings.ToLower(v) {
	case "":
		return false, 0, nil
	case "always":
		return true, 0, nil
	}
	d, perr := time.ParseDuration(v)
	if perr != nil || d <= 0 {
		return false, 0, errors.New("want always, or a duration above zero (like 10s or 2m)")
	}
	return false, d, nil
}

func envDuration(key string, def time.Duration) time.Duration {
	v := getenv(key)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		fatalf("%s=%q is not a duration (like 30s or 2m)", key, v)
		return def // help shows the default (see settingsOnlyShown)
	}
	return d
}

func fatalf(format string, args ...any) {
	if settingsOnlyShown {
		fmt.Fprintf(os.Stderr, "paperpipe: warning: "+format+" (commands refuse to run until it is fixed)\n", args...)
		return
	}
	fmt.Fprintf(os.Stderr, "paperpipe: "+format+"\n", args...)
	os.Exit(2)
}

// settingsOnlyShown is set for a command's help (`paperpipe CMD -h`), which uses no setting but
// to show its value as a flag's default: a bad setting is a warning there, the help printed as
// asked. Refused, as for a command that runs (exit 2), it kept the help from the user trying to
// mend the setting.
var settingsOnlyShown bool

// checkAPIToken refuses a PAPERPIPE_API_TOKEN set but empty (and PAPERPIPE_API_TOKEN_READS
// without a token), for the commands that serve HTTP:
// a Secret without a value would leave writes open while the deployment means them closed.
// Other commands do not read the token, and a shared env file may hold an empty placeholder.
func (c *config) checkAPIToken() error {
	if c.emptyToken != "" {
		return usageErr("PAPERPIPE_API_TOKEN is set but %s: set a token, or unset the variable to leave writes open", c.emptyToken)
	}
	if c.APITokenReads && c.APIToken == "" {
		return usageErr("PAPERPIPE_API_TOKEN_READS=%q needs PAPERPIPE_API_TOKEN: reads cannot require a token that is not set", os.Getenv("PAPERPIPE_API_TOKEN_READS"))
	}
	return nil
}

// nkeySeed is the shape of an NKey seed: S, the key's kind, and base32 (58 characters in all).
var nkeySeed = regexp.MustCompile(`S[A-Z][A-Z2-7]{56}`)

// secretNotPath reports whether v, PAPERPIPE_NATS_NKEY's value that names no file, is what the
// file should hold, an NKey seed or a credentials file's content (other tools take the seed
// itself in their variable), rather than a path.
func secretNotPath(v string) bool {
	return nkeySeed.MatchString(v) || strings.Contains(v, "-----BEGIN") || strings.ContainsAny(v, "\n\r")
}

// fmtDuration says d as it is written in a setting: 1h, 10m, 30s — not time.Duration's 1h0m0s.
func fmtDuration(d time.Duration) string {
	s := d.String()
	if t, ok := strings.CutSuffix(s, "m0s"); ok {
		s = t + "m"
	}
	if t, ok := strings.CutSuffix(s, "h0m"); ok {
		s = t + "h"
	}
	return s
}

// Command openai-fake runs paperpipe's OpenAI-compatible test server
// (internal/openaitest) as a separate process, for chaos runs and
// benchmarks that need the API on its own port or to be restarted.
//
// Usage:
//
//	openai-fake [-listen 127.0.0.1:8089] [-chat-latency 400ms] [-rate-limit 0.05] [-vectors text|random] …
//
// It prints the base URL (to use as OPENAI_BASE_URL) on startup. Besides the
// API under /v1 it serves:
//
//	GET  /_stats   the server's Stats as JSON
//	GET  /_deliveries  the ledger of delivered results (Server.Deliveries) as JSON
//	POST /_faults  replace the fault rates with a JSON object such as
//	               {"rate_limit":0.05,"retry_after":"2s","server_error":0.2},
//	               any field of openaitest.Faults by its JSON name;
//	               fields left out are 0 (durations: Go syntax or nanoseconds)
//
// SIGINT or SIGTERM shuts it down gracefully: held requests are answered,
// in-flight ones finish.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/paperpipe/paperpipe/internal/openaitest"
)

func main() {
	os.Exit(exitCode(run(os.Args[1:], os.Stdout, os.Stderr), os.Stderr))
}

// exitCode reports a run's error on stderr and returns the process's exit status: 0 after -h
// (the usage is printed; flag.ErrHelp is no error), 2 for a bad flag (the flag package has
// printed it and the usage), 1 otherwise.
func exitCode(err error, stderr io.Writer) int {
	var usage usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &usage):
		return 2
	default:
		fmt.Fprintln(stderr, "openai-fake:", err)
		return 1
	}
}

// usageError is a flag the flag package refused, which it has reported with the usage.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func run(args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	cfg, logger := o.cfg, o.cfg.Logger
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	fake := openaitest.New(cfg)

	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	srv := &http.Server{
		Handler:           routes(fake, logger),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	fmt.Fprintf(stdout, "http://%s/v1\n", ln.Addr())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		fake.Close()
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	fake.Close() // answers held requests, stops batch work
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	return nil
}

// options are the command line's settings.
type options struct {
	listen     string
	cpuProfile string
	cfg        openaitest.Config // its Logger writes to the stderr parseFlags was given
}

// parseFlags reads the command line args, reporting a bad flag's usage on stderr.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("openai-fake", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8089", "address to listen on")
	chatLatency := fs.Duration("chat-latency", 0, "latency added before each chat answer")
	embedLatency := fs.Duration("embed-latency", 0, "latency added before each embeddings answer")
	rateLimit := fs.Float64("rate-limit", 0, "rate of 429 answers, in [0,1]")
	retryAfter := fs.Duration("retry-after", time.Second, "Retry-After of a 429")
	serverError := fs.Float64("server-error", 0, "rate of 500/502/503 answers, in [0,1]")
	serverErrorStatus := fs.Int("server-error-status", 0, "status of every -server-error answer instead of 500, 502 and 503 in turn (502 or 504: nginx's HTML page for a server behind it that is down)")
	unavailableFor := fs.Duration("unavailable-for", 0, "Retry-After of every 503 a -server-error answers (0: none)")
	timeout := fs.Float64("timeout", 0, "rate of requests held until the client gives up, then 504, in [0,1]")
	timeoutHold := fs.Duration("timeout-hold", 30*time.Second, "how long a timeout fault holds a request")
	truncated := fs.Float64("truncated", 0, "rate of 200 answers with the JSON body cut in half, in [0,1]")
	malformed := fs.Float64("malformed", 0, "rate of 200 answers with a body that is not JSON, in [0,1]")
	junk := fs.Float64("junk", 0, "rate of chat answers with a junk TL;DR, in [0,1]")
	seed := fs.Int64("seed", 1, "seed of the fault random source")
	dims := fs.Int("dimensions", 1536, "embedding size when a request gives none, for models other than OpenAI's (text-embedding-3-small, text-embedding-3-large and text-embedding-ada-002 answer their own: 1536, 3072, 1536)")
	vectors := fs.String("vectors", openaitest.VectorsText, "embedding vectors: text (lexical vectors of the input, clustered like a real model's) or random (uniformly random, the worst case for an HNSW index)")
	apiKey := fs.String("api-key", "", "when set, require \"Authorization: Bearer <key>\"")
	chatRPM := fs.Int64("chat-rpm", 10000, "chat requests per minute advertised in x-ratelimit-* headers")
	chatTPM := fs.Int64("chat-tpm", 2000000, "chat tokens per minute advertised in x-ratelimit-* headers")
	embedRPM := fs.Int64("embed-rpm", 10000, "embedding requests per minute advertised in x-ratelimit-* headers")
	embedTPM := fs.Int64("embed-tpm", 10000000, "embedding tokens per minute advertised in x-ratelimit-* headers")
	validateEvery := fs.Int("validate-every", 1, "check every request and answer against OpenAI's published description (1), or, above 1, the first 100 of each endpoint and then one in N (for benchmarks: checking costs about as much CPU as answering)")
	verbose := fs.Bool("v", false, "log every request")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the server to this file (until shutdown)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return options{}, err
		}
		return options{}, usageError{err}
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	faults := openaitest.Faults{
		RateLimit: *rateLimit, RetryAfter: *retryAfter, ServerError: *serverError, ServerErrorStatus: *serverErrorStatus,
		UnavailableFor: *unavailableFor,
		Timeout:        *timeout, TimeoutHold: *timeoutHold, Truncated: *truncated,
		Malformed: *malformed, Junk: *junk,
	}
	if err := faults.Validate(); err != nil {
		return options{}, err
	}
	cfg := openaitest.Config{
		ChatLatency: *chatLatency, EmbedLatency: *embedLatency, Faults: faults,
		Seed: *seed, Dimensions: *dims, Vectors: *vectors, APIKey: *apiKey, Logger: logger, ValidateEvery: *validateEvery,
		ChatLimits:  openaitest.Limits{Requests: *chatRPM, Tokens: *chatTPM},
		EmbedLimits: openaitest.Limits{Requests: *embedRPM, Tokens: *embedTPM},
	}
	if *chatLatency < 0 || *embedLatency < 0 || *dims <= 0 || *validateEvery < 1 {
		return options{}, errors.New("latencies must be >= 0, -dimensions > 0 and -validate-every >= 1")
	}
	// openaitest takes a zero budget for "the default": refuse it here rather than advertise
	// the default while the operator asked for something else.
	for _, l := range []struct {
		name string
		v    int64
	}{{"chat-rpm", *chatRPM}, {"chat-tpm", *chatTPM}, {"embed-rpm", *embedRPM}, {"embed-tpm", *embedTPM}} {
		if l.v < 1 {
			return options{}, fmt.Errorf("-%s %d: a per-minute budget must be at least 1", l.name, l.v)
		}
	}
	if *vectors != openaitest.VectorsText && *vectors != openaitest.VectorsRandom {
		return options{}, fmt.Errorf("-vectors %q: want %s or %s", *vectors, openaitest.VectorsText, openaitest.VectorsRandom)
	}
	return options{listen: *listen, cpuProfile: *cpuProfile, cfg: cfg}, nil
}

// routes adds the control endpoints to the API handler.
func routes(fake *openaitest.Server, logger *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_stats", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewEncoder(w).Encode(fake.Stats()); err != nil {
			logger.Warn("writing stats", "err", err)
		}
	})
	mux.HandleFunc("GET /_deliveries", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewEncoder(w).Encode(fake.Deliveries()); err != nil {
			logger.Warn("writing deliveries", "err", err)
		}
	})
	mux.HandleFunc("POST /_faults", func(w http.ResponseWriter, r *http.Request) {
		var in faultsJSON
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			http.Error(w, "decoding faults: "+err.Error(), http.StatusBadRequest)
			return
		}
		f := in.faults()
		if err := f.Validate(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fake.SetFaults(f)
		logger.Info("faults set", "faults", fmt.Sprintf("%+v", f))
		w.WriteHeader(http.StatusNoContent)
	})
	mux.Handle("/", fake.Handler())
	return mux
}

// faultsJSON is the body of POST /_faults: openaitest.Faults, whose fields it takes by their
// JSON names, with its durations also in Go syntax ("2s"). A list of its own fell behind
// Faults: "unavailable_for" and "daily_quota" were refused as unknown fields.
type faultsJSON struct {
	openaitest.Faults
	// The durations of Faults, under the same names: a field of the outer struct wins.
	RetryAfter     duration `json:"retry_after"`
	TimeoutHold    duration `json:"timeout_hold"`
	UnavailableFor duration `json:"unavailable_for"`
}

func (f faultsJSON) faults() openaitest.Faults {
	out := f.Faults
	out.RetryAfter, out.TimeoutHold, out.UnavailableFor = time.Duration(f.RetryAfter), time.Duration(f.TimeoutHold), time.Duration(f.UnavailableFor)
	return out
}

// duration decodes a Go duration string ("1.5s") or a number of
// nanoseconds.
type duration time.Duration

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("parsing duration: %w", err)
		}
		*d = duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("duration %s: want a string like \"2s\" or nanoseconds", b)
	}
	*d = duration(n)
	return nil
}

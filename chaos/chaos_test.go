package chaos

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/internal/pgtest"
	"github.com/paperpipe/paperpipe/internal/sampledata"
)

// EnvFull, set to "full", runs the full chaos cases (2,000 abstracts each; `make chaos`);
// otherwise only the quick ones run.
const EnvFull = "PAPERPIPE_CHAOS"

// bin holds the binaries TestMain builds for every test of the package.
var bin Binaries

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "paperpipe-chaos-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	bin, err = Build(ctx, "..", dir)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	// Interrupted (Ctrl-C, a CI stop), the harness dies before its cleanups run: the workers,
	// servers and clusters it started would run on, writing into the test database.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "chaos: %v: stopping what the tests started\n", s)
		StopAll()
		os.RemoveAll(dir)
		os.Exit(130)
	}()
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func full() bool { return os.Getenv(EnvFull) == "full" }

// transientFaults is case 4's API: 20% of calls fail transiently — 5xx, timeouts, truncated
// and malformed bodies — and 5% more answer 429 with Retry-After.
var transientFaults = openaitest.Faults{
	RateLimit: 0.05, RetryAfter: time.Second,
	ServerError: 0.08, Timeout: 0.04, TimeoutHold: time.Second, Truncated: 0.04, Malformed: 0.04,
}

// cases are the four chaos cases with n abstracts.
func cases(n int) []Case {
	latency := FakeConfig{ChatLatency: 40 * time.Millisecond, EmbedLatency: 20 * time.Millisecond}
	faulty := latency
	faulty.Faults = transientFaults
	return []Case{
		{Name: "kill-worker", N: n, Workers: 1, Fake: latency, Disrupt: KillWorker},
		{Name: "restart-nats", N: n, Fake: latency, Disrupt: RestartNATS},
		{Name: "restart-postgres", N: n, Fake: latency, Disrupt: RestartPostgres},
		{Name: "api-faults", N: n, Fake: faulty, Disrupt: NoDisruption},
	}
}

func runCase(t *testing.T, c Case) {
	t.Helper()
	if c.Disrupt != RestartPostgres {
		c.DatabaseURL = pgtest.URL(t)
	}
	env := Env{Bin: bin, Dir: keepOnFailure(t), Base: sampledata.Papers(t), Logf: t.Logf}
	res, err := Run(context.Background(), env, c)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s (%s): %s; %d TL;DRs needed a second answer; faults: %s; workers: %v; %s",
		c.Name, c.Disrupt, res.Line(), res.ValidationRetried, res.FaultSummary(), res.WorkerExits, res.Elapsed.Round(time.Second))
	if full() {
		fmt.Printf("%-16s %s\n", c.Name, res.Line())
	}
	// Every fault of every case is transient: nothing may end in the dead-letter stream.
	for _, v := range res.Violations(true) {
		t.Error(v)
	}
}

// TestChaosQuick runs the cases that fit in `make test`: a worker killed with -9 (2,000
// abstracts, as the rules say: the answers a killed worker takes with it — up to 16 TL;DRs,
// its concurrency, and the vectors of the embedding batches it was committing, up to
// pipeline.MaxEmbedBatch each — must stay within the 5% the rules allow), the NATS server
// restarted, and an API failing 20% of calls transiently and rate-limiting 5% (200 abstracts
// each).
func TestChaosQuick(t *testing.T) {
	if full() {
		t.Skip("the full run covers these")
	}
	for _, c := range cases(200) {
		switch c.Disrupt {
		case KillWorker:
			c.N = 2000
		case RestartPostgres:
			continue
		}
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			runCase(t, c)
		})
	}
}

// TestChaosFull runs the four chaos cases with 2,000 abstracts each, one after another, when
// PAPERPIPE_CHAOS=full (make chaos), and prints their lines.
func TestChaosFull(t *testing.T) {
	if !full() {
		t.Skipf("set %s=full (make chaos) to run the four cases with 2,000 abstracts", EnvFull)
	}
	for _, c := range cases(2000) {
		c.Timeout = 20 * time.Minute
		t.Run(c.Name, func(t *testing.T) { runCase(t, c) })
	}
}

// keepOnFailure returns a scratch directory that is removed when the test passes and kept,
// with the processes' logs, when it fails.
func keepOnFailure(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "paperpipe-chaos-"+filepath.Base(t.Name())+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs and data kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	return dir
}

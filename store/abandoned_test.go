package store_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/internal/nettest"
	"github.com/paperpipe/paperpipe/internal/pgtest"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

// TestATransactionItsClientAbandonsDoesNotHoldItsLocksForHours: a command whose host dies or
// is cut off in the middle of a store transaction other than a worker's write (here a new
// space's EnsureSpace, as `paperpipe spaces create` or a worker's start runs it; DropSpace,
// activate, reindex, a load, a batch job's claim are alike) never tells the server, which
// keeps the transaction and its locks until its TCP keepalive gives up, two hours and more by
// default. Every worker's start (EnsureSpace takes the spaces table's lock) and every space
// command waited behind it that long. The server now ends such a transaction on its own.
func TestATransactionItsClientAbandonsDoesNotHoldItsLocksForHours(t *testing.T) {
	t.Parallel()
	s := setup(t)
	u, err := url.Parse(s.Pool().Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	app := "paperpipe-abandoned-" + time.Now().Format("150405.000000000")
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	proxy, purl := nettest.ProxyURL(t, u.String())
	cut := open(t, purl)

	// Another session holds the spaces table: the command's transaction waits for it after
	// its BEGIN; its LOCK TABLE then runs, and the answer goes nowhere.
	release := lockRows(t, s, "LOCK TABLE embedding_spaces IN SHARE ROW EXCLUSIVE MODE")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := cut.EnsureSpace(ctx, paper.Space{Model: "m-new", Dimensions: 3, Template: "title+abstract"})
		done <- err
	}()
	waitForLock(t, s, app, done, "the command's EnsureSpace")
	proxy.Blackhole() // the command's host is gone, as far as the database can tell
	release()
	waitForSession(t, s, app, done, "the command's EnsureSpace", `state = 'idle in transaction'`)

	// A worker starting now finds its space once the server has ended the abandoned
	// transaction, well within a supervisor's patience.
	wctx, wcancel := context.WithTimeout(t.Context(), time.Minute)
	defer wcancel()
	start := time.Now()
	if _, err := s.EnsureSpace(wctx, paper.Space{Model: "m", Dimensions: 3, Template: "title+abstract"}); err != nil {
		t.Fatalf("a worker's start behind the abandoned transaction: %v after %s", err, time.Since(start).Round(time.Second))
	}
	var left int
	if err := s.Pool().QueryRow(t.Context(), "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state LIKE 'idle in transaction%'",
		app).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("%d abandoned transactions left open", left)
	}
	t.Logf("a worker's start waited %s", time.Since(start).Round(time.Millisecond))
}

// TestIdleInTransactionTimeoutKeepsAShorterOne: the store lowers a longer (or no)
// idle_in_transaction_session_timeout to store.IdleInTransactionTimeout and keeps a shorter
// one, wherever it was set (here in the URL).
func TestIdleInTransactionTimeoutKeepsAShorterOne(t *testing.T) {
	t.Parallel()
	base := pgtest.URL(t)
	for _, tc := range []struct{ set, want string }{{"", "10s"}, {"0", "10s"}, {"60000", "10s"}, {"2000", "2s"}} {
		u, err := url.Parse(base)
		if err != nil {
			t.Fatal(err)
		}
		if tc.set != "" {
			q := u.Query()
			q.Set("idle_in_transaction_session_timeout", tc.set)
			u.RawQuery = q.Encode()
		}
		s := open(t, u.String())
		var got string
		if err := s.Pool().QueryRow(t.Context(), "SHOW idle_in_transaction_session_timeout").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("URL setting %q: the store's sessions have %s, want %s", tc.set, got, tc.want)
		}
	}
	if store.IdleInTransactionTimeout != 10*time.Second {
		t.Errorf("IdleInTransactionTimeout is %s; this test expects 10s", store.IdleInTransactionTimeout)
	}
}

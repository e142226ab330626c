package store_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
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
	app := "paperpipe-abandoned-" + time.Now().Format("150405.000000000")
	proxy, purl := nettest.ProxyURL(t, withParams(t, s.Pool().Config().ConnString(), map[string]string{"application_name": app}))
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
		var set map[string]string
		if tc.set != "" {
			set = map[string]string{"idle_in_transaction_session_timeout": tc.set}
		}
		s := open(t, withParams(t, base, set))
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

// TestKeepalivesKeepShorterOnes: the store lowers the server's TCP keepalive settings of its
// sessions to store.KeepaliveIdle, KeepaliveInterval and KeepaliveCount and keeps shorter
// ones, wherever they were set (here in the URL; the kernel's, which the server shows when it
// sets none, are 7200 s, 75 s and 9 on Linux).
func TestKeepalivesKeepShorterOnes(t *testing.T) {
	t.Parallel()
	base := pgtest.URL(t)
	if h := hostOf(t, base); h != "127.0.0.1" && h != "localhost" && h != "::1" {
		t.Skipf("the test database is at %q, not on loopback TCP: its sessions may have no keepalive", h)
	}
	check := func(set map[string]string, want [3]string) {
		t.Helper()
		s := open(t, withParams(t, base, set))
		var got [3]string
		if err := s.Pool().QueryRow(t.Context(), "SELECT current_setting('tcp_keepalives_idle'), current_setting('tcp_keepalives_interval'), "+
			"current_setting('tcp_keepalives_count')").Scan(&got[0], &got[1], &got[2]); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("URL settings %v: the store's sessions have keepalives (idle, interval, count) %v, want %v", set, got, want)
		}
	}
	check(nil, [3]string{"30", "10", "3"})
	check(map[string]string{"tcp_keepalives_idle": "600", "tcp_keepalives_interval": "60", "tcp_keepalives_count": "5"}, [3]string{"30", "10", "3"})
	check(map[string]string{"tcp_keepalives_idle": "5", "tcp_keepalives_interval": "2", "tcp_keepalives_count": "2"}, [3]string{"5", "2", "2"})
	if store.KeepaliveIdle != 30*time.Second || store.KeepaliveInterval != 10*time.Second || store.KeepaliveCount != 3 {
		t.Errorf("keepalives %s, %s, %d; this test expects 30s, 10s, 3", store.KeepaliveIdle, store.KeepaliveInterval, store.KeepaliveCount)
	}
}

// hostOf is the host of the database URL u.
func hostOf(t *testing.T, u string) string {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return pu.Hostname()
}

// TestASessionLockItsHolderAbandonsIsFreedInMinutes: a session advisory lock (here a
// re-processing run's, LockRun; a batch job's, the index build lock and the migration lock are
// alike) whose holder's host vanishes without a word (a crash, a laptop closed, a partition:
// here every packet of its connection is dropped) is freed once the server's TCP keepalive
// gives up on the session: its session sits idle, outside a transaction, which
// idle_in_transaction_session_timeout does not end. That took the server's default keepalive,
// two hours and more, and every run of the same output was refused meanwhile ("another run is
// in progress"). It needs tc (iproute2) and the privilege to filter loopback traffic (root, or
// CAP_NET_ADMIN); it skips without them.
func TestASessionLockItsHolderAbandonsIsFreedInMinutes(t *testing.T) {
	t.Parallel()
	lockLoopback(t)
	s := setup(t)
	if h := hostOf(t, s.Pool().Config().ConnString()); h != "127.0.0.1" && h != "localhost" {
		t.Skipf("the test database is at %q, not on IPv4 loopback", h)
	}
	holder, app := openWatched(t, s, "run-holder")
	const key = "test:abandoned-run"
	l, err := holder.HoldRun(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	// The holder's process is gone with its host: its watch no longer asks the lock's session
	// or takes the lock again (a living holder cut off from that one connection does, see
	// TestARunLockItsHolderIsCutOffFromIsTakenAgain).
	l.StopWatching()
	unlock := l.Unlock
	var port int
	if err := s.Pool().QueryRow(t.Context(), `SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a USING (pid)
			WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = $1`, app).Scan(&port); err != nil {
		t.Fatal(err)
	}

	// The server has had the acknowledgement of all it sent the holder (a delayed ACK cut off
	// would leave it retransmitting, a wait TCP keepalive does not govern).
	waitAcked(t, int(s.Pool().Config().ConnConfig.Port), port)

	// The holder's host vanishes: its connection's packets, either way, are dropped.
	defer unlock() // after the filter's removal: the connection answers again, or is closed
	defer dropLoopbackConn(t, int(s.Pool().Config().ConnConfig.Port), port)()
	// Another run of the output gets the lock once the server has ended the holder's session:
	// about KeepaliveIdle + KeepaliveCount × KeepaliveInterval after its last packet.
	start := time.Now()
	bound := 3 * (store.KeepaliveIdle + store.KeepaliveCount*store.KeepaliveInterval)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		again, err := s.LockRun(ctx, key)
		cancel()
		if err == nil {
			again()
			break
		}
		if !errors.Is(err, store.ErrRunInProgress) {
			t.Fatal(err)
		}
		if time.Since(start) > bound {
			t.Fatalf("the lock of a holder whose host vanished is still held %s later", bound)
		}
		time.Sleep(time.Second)
	}
	t.Logf("the lock was freed %s after its holder vanished", time.Since(start).Round(time.Second))
}

// waitAcked waits until the server's end (local port server) of the loopback TCP connection to
// client has no data its peer has not acknowledged (/proc/net/tcp's tx_queue); it skips the
// test without /proc/net/tcp.
func waitAcked(t *testing.T, server, client int) {
	t.Helper()
	local := fmt.Sprintf("0100007F:%04X", server)
	remote := fmt.Sprintf("0100007F:%04X", client)
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, err := os.ReadFile("/proc/net/tcp")
		if err != nil {
			t.Skipf("needs /proc/net/tcp: %v", err)
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			// sl local rem st tx_queue:rx_queue …
			if len(f) > 4 && f[1] == local && f[2] == remote {
				if strings.HasPrefix(f[4], "00000000:") {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server's end of the connection from port %d still has unacknowledged data after 20 s (or is not in /proc/net/tcp)", client)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestARunLockItsHolderIsCutOffFromIsTakenAgain: the connection of a run's lock is cut off
// (every packet of it dropped: a NAT or firewall dropping the flow) while the holder can still
// make new ones. The server keeps the old session, and with it the lock, until its keepalive
// ends it about a minute later; meanwhile another run could take the lock, and the holder went
// on working as if it held it. HoldRun's watch asks the session every few seconds: one that
// gives no answer is ended on the server and the lock taken again on a new session (it was
// taken for a loss to another run, which stopped the run for nothing, see
// TestARunLockWhoseSessionWentSilentIsTakenAgain). Needs tc and root, as
// TestASessionLockItsHolderAbandonsIsFreedInMinutes.
func TestARunLockItsHolderIsCutOffFromIsTakenAgain(t *testing.T) {
	t.Parallel()
	lockLoopback(t)
	s := setup(t)
	if h := hostOf(t, s.Pool().Config().ConnString()); h != "127.0.0.1" && h != "localhost" {
		t.Skipf("the test database is at %q, not on IPv4 loopback", h)
	}
	holder, app := openWatched(t, s, "cut-run-holder")
	const key = "test:cut-off-run"
	l, err := holder.HoldRun(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock() // after the filter's removal
	var port int
	if err := s.Pool().QueryRow(t.Context(), `SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a USING (pid)
			WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = $1`, app).Scan(&port); err != nil {
		t.Fatal(err)
	}
	waitAcked(t, int(s.Pool().Config().ConnConfig.Port), port)
	undrop := dropLoopbackConn(t, int(s.Pool().Config().ConnConfig.Port), port)
	defer undrop()
	for i := 0; i < 3; i++ {
		if err = l.Check(); err == nil || errors.Is(err, store.ErrLockLost) {
			break
		}
		t.Logf("Check %d: %v", i+1, err)
	}
	if err != nil {
		t.Fatalf("Check once the lock's connection was cut off: %v; want the lock taken again", err)
	}
	var cut int
	if err := s.Pool().QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity WHERE client_port = $1`, port).Scan(&cut); err != nil {
		t.Fatal(err)
	}
	if cut != 0 {
		t.Errorf("the cut-off session is still on the server")
	}
	if again, err := s.LockRun(t.Context(), key); !errors.Is(err, store.ErrRunInProgress) {
		if err == nil {
			again()
		}
		t.Errorf("another run while the lock is held again: %v; want ErrRunInProgress", err)
	}
}

// TestARunLockWhoseSessionEndsEndsItsContext: the server ends the session holding a run's lock
// (pg_terminate_backend here; its keepalive giving up on a client gone, a restart): the lock is
// free for another run at once, and the holder learned it only at its next statement, if ever.
// Its Context now ends, and Check says so.
func TestARunLockWhoseSessionEndsEndsItsContext(t *testing.T) {
	t.Parallel()
	s := setup(t)
	holder, app := openWatched(t, s, "ended-run-holder")
	const key = "test:ended-run"
	l, err := holder.HoldRun(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	if err := l.Check(); err != nil {
		t.Fatalf("Check of a lock held: %v", err)
	}
	var n int
	// The timeout makes pg_terminate_backend wait for the session to end (and free its locks):
	// without it, the LockRun below could find the ending session still holding the lock.
	if err := s.Pool().QueryRow(t.Context(), `SELECT count(pg_terminate_backend(l.pid, 5000)) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
			WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = $1`, app).Scan(&n); err != nil || n != 1 {
		t.Fatalf("ending the lock's session: %d ended, %v", n, err)
	}
	again, err := s.LockRun(t.Context(), key)
	if err != nil {
		t.Fatalf("another run after the holder's session ended: %v", err)
	}
	defer again()
	select {
	case <-l.Context().Done():
	case <-time.After(2 * time.Minute):
		t.Fatal("the lock's Context still runs 2 minutes after its session ended")
	}
	if cause := context.Cause(l.Context()); !errors.Is(cause, store.ErrLockLost) {
		t.Errorf("the lock's Context ended with %v; want ErrLockLost", cause)
	}
}

// TestARunLockWhoseSessionEndsIsTakenAgain: a session the database ended with no other run
// waiting (a restart: every session ends) is not a lost lock: Check takes it again on a new
// session, the run goes on (a `reprocess --batch-api` rides a restart out while it waits), and
// another run is refused as before.
func TestARunLockWhoseSessionEndsIsTakenAgain(t *testing.T) {
	t.Parallel()
	s := setup(t)
	holder, app := openWatched(t, s, "retaken-run-holder")
	const key = "test:retaken-run"
	l, err := holder.HoldRun(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	var n int
	if err := s.Pool().QueryRow(t.Context(), `SELECT count(pg_terminate_backend(l.pid, 5000)) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
			WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = $1`, app).Scan(&n); err != nil || n != 1 {
		t.Fatalf("ending the lock's session: %d ended, %v", n, err)
	}
	if err := l.Check(); err != nil {
		t.Fatalf("Check after the lock's session ended, no other run waiting: %v; want the lock taken again", err)
	}
	if err := l.Context().Err(); err != nil {
		t.Errorf("the lock's Context ended (%v) though the lock was taken again", context.Cause(l.Context()))
	}
	if again, err := s.LockRun(t.Context(), key); !errors.Is(err, store.ErrRunInProgress) {
		if err == nil {
			again()
		}
		t.Errorf("another run while the lock is held again: %v; want ErrRunInProgress", err)
	}
}

// TestARunLockWhoseSessionWentSilentIsTakenAgain: the connection of a run's lock goes silent
// (a network blip that outlasts the check's 15 s, a NAT dropping the flow) while new
// connections can be made. The server still has the old session, which still holds the lock:
// no other run does. Check gave the session up and, finding the lock held, said the lock was
// lost to another run (ErrLockLost), which stopped the run for nothing ("run the same command
// again once no other run of it is in progress"). It now ends its own former session and
// takes the lock again on a new one.
func TestARunLockWhoseSessionWentSilentIsTakenAgain(t *testing.T) {
	t.Parallel()
	s := setup(t)
	app := "paperpipe-silent-run-" + time.Now().Format("150405.000000000")
	proxy, purl := nettest.ProxyURL(t, withParams(t, s.Pool().Config().ConnString(), map[string]string{"application_name": app}))
	holder := open(t, purl)
	const key = "test:silent-run"
	l, err := holder.HoldRun(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	proxy.Blackhole() // the lock's connection (and the pool's idle ones) answer nothing from now on
	// The first Check may spend its time on the silent connection; the next ones on new ones.
	for i := 0; i < 3; i++ {
		err = l.Check()
		if err == nil || errors.Is(err, store.ErrLockLost) {
			break
		}
		t.Logf("Check %d: %v", i+1, err)
	}
	if err != nil {
		t.Fatalf("Check once the lock's connection went silent, no other run about: %v; want the lock taken again", err)
	}
	if err := l.Context().Err(); err != nil {
		t.Errorf("the lock's Context ended (%v) though no other run took the lock", context.Cause(l.Context()))
	}
	if again, err := s.LockRun(t.Context(), key); !errors.Is(err, store.ErrRunInProgress) {
		if err == nil {
			again()
		}
		t.Errorf("another run while the lock is held again: %v; want ErrRunInProgress", err)
	}
}

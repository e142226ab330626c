package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	neturl "net/url"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/paperpipe/paperpipe/internal/redact"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/store"
)

// broker is a connection to NATS JetStream, and the embedded server behind it when this
// process runs one.
type broker struct {
	nc *nats.Conn
	js jetstream.JetStream

	mu       sync.Mutex // guards what follows: a takeover sets them while the process runs
	embedded *pipeline.Embedded
	lock     *os.File
	urlFile  string
	closed   bool
	closing  bool // close has begun (done is closed)
	// dataDir and url are set when this process uses another one's embedded server: if that
	// process stops, this one takes the server over (see takeOver).
	dataDir, url string

	// natsURL is NATS_URL ("" for the embedded server), and fail stops the command: NATS
	// closing the connection after refusing paperpipe's credentials ends it (see
	// stopIfRefused), which log says once.
	natsURL string
	fail    func(error)
	log     *slog.Logger
	// syncAlways and syncInterval are how an embedded server this process starts syncs its
	// files (PAPERPIPE_NATS_SYNC), a takeover's too.
	syncAlways   bool
	syncInterval time.Duration
	refused      sync.Once     // stopIfRefused's stop
	done         chan struct{} // closed by close: ends watchRefusals
}

// brokerRole is what a process does with the consumer of new papers (pipeline.ConsumerNew).
type brokerRole int

const (
	// brokerClient publishes, reads or counts, and runs no worker of the consumer (ingest,
	// status, dlq, serve, reprocess): PAPERPIPE_ACK_WAIT and PAPERPIPE_MAX_DELIVER apply to the
	// consumer only if this process creates it. Run from another shell without them, such a
	// command would otherwise set a running worker's consumer back to the defaults.
	brokerClient brokerRole = iota
	// newPaperWorkers runs workers of the consumer (worker, up): its PAPERPIPE_ACK_WAIT and
	// PAPERPIPE_MAX_DELIVER are applied to the consumer (a shorter AckWait or a lower
	// MaxDeliver once the running workers follow it, see pipeline.TopologyConfig).
	newPaperWorkers
)

// connectBroker connects to NATS_URL, or, with none set, to the embedded server of the data
// directory: the one another paperpipe process is running (found through its URL file), or a
// new one started in this process. One flock on the data directory makes sure only one process
// runs the embedded server on its files at a time. The embedded server takes only clients that
// present its token, which the URL file (nats://TOKEN@127.0.0.1:PORT, mode 0600, in the data
// directory, 0700 when paperpipe makes it) gives the processes of the user who runs it.
func connectBroker(ctx context.Context, c *config, log *slog.Logger, role brokerRole) (*broker, error) {
	// The server another process runs may be going away as this one joins it (that process
	// was stopped a moment ago: a command run again right after Ctrl-C): its address file is
	// still there, the connection or the first requests fail. Until the lock is free, or the
	// next server's address is written, try again for a while.
	if stray := tildeDataDir(); c.NATSURL == "" && stray != "" && stray != c.DataDir {
		log.Warn("an earlier paperpipe, given PAPERPIPE_DATA="+os.Getenv("PAPERPIPE_DATA")+" without a shell to expand ~, made its queue in "+stray+
			", not in the home directory: the papers ingested there never reached the workers. Run `PAPERPIPE_DATA="+stray+
			" paperpipe worker --exit-when-idle` (and `dlq list` with it) to process what it holds, then delete that directory",
			"queue", stray, "data", c.DataDir)
	}
	deadline := time.Now().Add(joinRetry)
	for {
		b, joined, err := connectBrokerOnce(ctx, c, log, role)
		if errors.Is(err, errLockFreed) && ctx.Err() == nil {
			continue // the lock is free now: take it, whatever the time spent waiting
		}
		if err == nil || !joined || ctx.Err() != nil || time.Now().After(deadline) {
			return b, err
		}
		log.Debug("the embedded NATS server of another paperpipe process did not answer; trying again", "err", err)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// connectBrokerLater is connectBroker for serve, whose reads need only PostgreSQL: when
// NATS_URL's server cannot be reached (a NATS outage while a serve pod restarts), it returns a
// broker that connects in the background, for ever, and creates the topology once connected;
// until then POST /api/papers answers 503, and /readyz and the status page report NATS. A server
// that answers and refuses (credentials, certificate, no JetStream) is an error as with
// connectBroker, and so is any failure of the embedded server. One that comes back and refuses
// the credentials (nats.go then closes the connection, see natsOptions) or whose certificate
// cannot be verified (nats.go retries that for ever, silently: three refusals in a row here)
// stops serve naming the setting (config.fail), instead of answering 503 for ever.
func connectBrokerLater(ctx context.Context, c *config, log *slog.Logger, role brokerRole) (*broker, error) {
	b, err := connectBroker(ctx, c, log, role)
	var ue *unreachableError
	if c.NATSURL == "" || !errors.As(err, &ue) {
		return b, err
	}
	log.Warn("NATS cannot be reached; serving reads and connecting in the background (POST /api/papers answers 503 until then)",
		"url", redact.URLs(c.NATSURL), "err", ue.cause)
	b = &broker{natsURL: c.NATSURL, fail: c.fail, log: log}
	connected := make(chan struct{})
	var once sync.Once
	opts, err := natsSecurity(c)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(c.NATSURL, append(append(opts, b.natsOptions(log)...),
		nats.RetryOnFailedConnect(true),
		nats.ConnectHandler(func(*nats.Conn) { once.Do(func() { close(connected) }) }),
	)...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", redact.URLs(c.NATSURL), err)
	}
	b.nc = nc
	if b.js, err = newJetStream(nc); err != nil {
		b.close()
		return nil, err
	}
	topo := c.topology(role)
	b.watchRefusals(log)
	go func() {
		select {
		case <-ctx.Done():
			return
		case <-connected:
		}
		log.Info("NATS connected", "url", redact.URL(nc.ConnectedUrl()))
		for wait := time.Second; ; wait = min(2*wait, time.Minute) {
			err := pipeline.Setup(ctx, b.js, topo)
			if err == nil || ctx.Err() != nil {
				return
			}
			log.Error("could not set up the queue on NATS; trying again", "url", redact.URLs(c.NATSURL), "in", wait, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
	}()
	return b, nil
}

// watchRefusals stops the command (b.fail) when a NATS_URL server refuses paperpipe — its
// credentials, or a certificate it cannot verify — for three seconds in a row while the
// connection is down: nats.go reports no refusal while it retries a connection (at start in
// serve's background connect, or after a restart), and retries an unverifiable certificate for
// ever, so the process would sit idle, saying nothing. It runs until close.
func (b *broker) watchRefusals(log *slog.Logger) {
	if b.natsURL == "" || b.fail == nil || b.nc == nil {
		return
	}
	b.mu.Lock()
	b.done = make(chan struct{})
	done := b.done
	b.mu.Unlock()
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for refusals := 0; ; {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			r := natsRefusal(b.natsURL, b.nc.LastError())
			if b.nc.IsConnected() || r == nil {
				refusals = 0
				continue
			}
			if refusals++; refusals < 3 {
				continue
			}
			log.Error("NATS refuses paperpipe; stopping", "err", r)
			b.fail(r)
			return
		}
	}()
}

// natsRefusal is the error of a connection to NATS at url that the server refused — its
// credentials, or its certificate unknown — saying which setting fixes it, and nil for any
// other err.
func natsRefusal(url string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired), errors.Is(err, nats.ErrAuthRevoked),
		errors.Is(err, nats.ErrAccountAuthExpired):
		return fmt.Errorf("connect to NATS at %s: %w (the server refused paperpipe's credentials: "+
			"a user and password (or a token) go in NATS_URL, an NKey seed's file or a .creds file in PAPERPIPE_NATS_NKEY)", redact.URLs(url), err)
	case strings.Contains(err.Error(), "x509:"):
		return fmt.Errorf("connect to NATS at %s: %w (the server's certificate is not one a system CA signed? "+
			"PAPERPIPE_NATS_CA names the PEM file of the CA that did)", redact.URLs(url), err)
	case errors.Is(err, nats.ErrSecureConnWanted):
		return fmt.Errorf("connect to NATS at %s: %w (NATS_URL asks for TLS, and the server does not offer it: "+
			"write nats:// instead of tls://, or enable TLS on the server)", redact.URLs(url), err)
	case errors.Is(err, nats.ErrSecureConnRequired):
		return fmt.Errorf("connect to NATS at %s: %w (the server takes only TLS: write tls:// in NATS_URL)", redact.URLs(url), err)
	}
	return nil
}

// notNATS reports whether err, nats.Connect's, is of an address that accepted the connection
// and did not speak NATS: a read that timed out waiting for the server's INFO (a server that
// waits for its client to speak first, as HTTP and PostgreSQL do), a first line that is not
// INFO (an SSH banner), or a connection closed before it (a proxy with nothing behind it).
func notNATS(err error) bool {
	var op *net.OpError
	return errors.Is(err, nats.ErrNoInfoReceived) || errors.Is(err, io.EOF) || (errors.As(err, &op) && op.Op == "read")
}

// unreachableError is connectBroker's error when NATS_URL's server could not be reached (as
// opposed to one that refused paperpipe's credentials or certificate).
type unreachableError struct {
	msg   string
	cause error
}

func (e *unreachableError) Error() string { return e.msg }
func (e *unreachableError) Unwrap() error { return e.cause }

// joinRetry bounds how long a process tries to join the embedded server of another process
// that does not answer (see connectBroker).
const joinRetry = 15 * time.Second

// connectBrokerOnce is one attempt of connectBroker; joined reports that it joined the server
// of another process (whose failure may be that process stopping).
func connectBrokerOnce(ctx context.Context, c *config, log *slog.Logger, role brokerRole) (_ *broker, joined bool, _ error) {
	b := &broker{syncAlways: c.NATSSyncAlways, syncInterval: c.NATSSyncInterval}
	url := c.NATSURL
	if url == "" {
		if c.DataDir == "" {
			return nil, false, dataDirError(c, nil)
		}
		dir := filepath.Join(c.DataDir, "nats")
		// Made private when paperpipe makes them; an existing directory keeps its mode (it
		// may be shared on purpose: the token's file is private in any case).
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, false, dataDirError(c, err)
		}
		if err := checkDataDir(c.DataDir); err != nil {
			return nil, false, dataDirError(c, err)
		}
		if role == newPaperWorkers {
			if err := claimDataDir(c.DataDir, c.queueArchive(), c.DatabaseURL); err != nil {
				return nil, false, err
			}
		}
		b.urlFile = filepath.Join(c.DataDir, "nats.url")
		lock, err := lockDataDir(c.DataDir)
		if err != nil {
			return nil, false, fmt.Errorf("data directory lock: %w", err)
		}
		if lock != nil {
			b.lock = lock
			// On the address and with the token of the server that ran last, when its port is
			// free: processes still connected to it (their server's process was killed, or
			// stopped while this one started) reconnect to this one.
			emb, err := (*pipeline.Embedded)(nil), error(nil)
			host, port, token, last := lastAddress(b.urlFile)
			// Until the new address is written, a process that finds the lock taken waits for
			// the file (see readURLFile) rather than read the last server's.
			if err := os.Remove(b.urlFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
				b.close()
				return nil, false, fmt.Errorf("data directory: %w", err)
			}
			if last {
				emb, err = pipeline.StartEmbedded(pipeline.EmbeddedConfig{Dir: dir, Host: host, Port: port, Token: token, Logger: log,
					SyncAlways: b.syncAlways, SyncInterval: b.syncInterval})
				if err != nil {
					log.Debug("could not start the embedded NATS server on its last address", "err", err)
				}
			}
			if emb == nil {
				emb, err = pipeline.StartEmbedded(pipeline.EmbeddedConfig{Dir: dir, Port: -1, Logger: log,
					SyncAlways: b.syncAlways, SyncInterval: b.syncInterval})
			}
			if err != nil {
				b.close()
				return nil, false, err
			}
			b.embedded = emb
			url = emb.ClientURL()
			if err := writeURLFile(b.urlFile, url); err != nil {
				b.close()
				return nil, false, err
			}
			log.Debug("started embedded NATS", "url", redact.URL(url), "dir", dir)
		} else {
			b.urlFile = ""
			raw, err := readURLFile(ctx, c.DataDir, filepath.Join(c.DataDir, "nats.url"))
			switch {
			case errors.Is(err, errLockFreed):
				return nil, true, err // joined: tried again
			case ctx.Err() != nil:
				return nil, false, ctx.Err()
			case err != nil:
				return nil, false, fmt.Errorf("another paperpipe process holds the embedded NATS server of %s, but its address is unreadable: %w", c.DataDir, err)
			}
			url = strings.TrimSpace(string(raw))
			b.dataDir, b.url = c.DataDir, url
			log.Debug("using the embedded NATS of another paperpipe process", "url", redact.URL(url))
		}
	}
	opts, err := natsSecurity(c)
	if err != nil {
		b.close()
		return nil, false, err
	}
	b.natsURL, b.fail, b.log = c.NATSURL, c.fail, log
	nc, err := nats.Connect(url, append(append(opts, b.natsOptions(log)...), nats.RetryOnFailedConnect(false))...)
	if err != nil {
		b.close()
		// url.Parse's error quotes the URL as given, password and all: keep only its cause.
		var ue *neturl.Error
		if errors.As(err, &ue) {
			err = redact.ParseError(url, ue.Err)
		}
		if c.NATSURL == "" {
			return nil, b.dataDir != "", fmt.Errorf("connect to the embedded NATS server at %s: %w", redact.URL(url), err)
		}
		if refused := natsRefusal(url, err); refused != nil {
			return nil, false, refused
		}
		hint := "is a NATS server running there, and reachable from here?"
		switch {
		case notNATS(err):
			hint = "the address accepted the connection but did not answer as a NATS server: its HTTP monitoring port (8222) " +
				"rather than its client port (4222 by default)? another service's port? a port-forward or proxy whose server is down?"
		case loopbackURL(url):
			hint = "is nats-server running? or unset NATS_URL to use the embedded server"
		}
		return nil, false, &unreachableError{msg: fmt.Sprintf("connect to NATS at %s: %v (%s)", redact.URLs(url), err, hint), cause: err}
	}
	b.nc = nc
	js, err := newJetStream(nc)
	if err != nil {
		b.close()
		return nil, false, err
	}
	b.js = js
	if err := b.acrossTakeover(ctx, func(ctx context.Context) error { return pipeline.Setup(ctx, js, c.topology(role)) }); err != nil {
		joined := b.dataDir != ""
		b.close()
		switch {
		case c.NATSURL != "" && (errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount)):
			return nil, false, fmt.Errorf("NATS_URL %s: %w", redact.URLs(url), err)
		case c.NATSURL != "" && errors.Is(err, context.DeadlineExceeded):
			return nil, false, fmt.Errorf("NATS_URL %s: %w", redact.URLs(url), err)
		}
		return nil, joined, err
	}
	b.watchRefusals(log)
	return b, false, nil
}

// takeoverRetry bounds how long acrossTakeover tries a step again while the embedded server
// changes hands.
const takeoverRetry = joinRetry

// acrossTakeover runs step, JetStream requests that set the command's queue up (Setup, a
// reprocess run's consumer) or read it (status, `dlq list` and `dlq show`), and, on the
// embedded server, runs it again while it fails as requests do while that server changes
// hands: the process that ran it stops (a `status` or `ingest` that started it a moment before)
// and this one, or another, takes it over (see takeOver). A request sent as the old server goes
// away is answered "JetStream not enabled" (its JetStream stops first) or never (lost with the
// connection); one sent while no server runs, "no responders". Without this, a command joined
// to a server at that moment failed at once, or after the request's 5 s, with "consumer
// reprocess-…: context deadline exceeded", while its connection went on to the new server (a
// worker's pulls and publishes survive the takeover so). An attempt ends when the connection
// drops, rather than waiting for an answer that cannot come. Steps are idempotent. On
// NATS_URL's server such failures are the server's (no JetStream, a cluster without a leader:
// see pipeline.Setup) and are reported at once.
func (b *broker) acrossTakeover(ctx context.Context, step func(context.Context) error) error {
	deadline := time.Now().Add(takeoverRetry)
	for {
		err := b.attempt(ctx, step)
		if err == nil || b.natsURL != "" || ctx.Err() != nil || !serverChangingHands(err) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w (the embedded NATS server did not answer for %s: was the paperpipe process that ran it stopping? "+
				"run the command again)", err, takeoverRetry)
		}
		b.log.Debug("the embedded NATS server did not answer (taken over?); trying again", "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// attempt runs step with a context that ends when b's connection drops.
func (b *broker) attempt(ctx context.Context, step func(context.Context) error) error {
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	dropped := b.nc.StatusChanged(nats.DISCONNECTED, nats.RECONNECTING, nats.CLOSED)
	defer b.nc.RemoveStatusListener(dropped)
	go func() {
		select {
		case <-dropped:
			cancel(errConnectionDropped)
		case <-actx.Done():
		}
	}()
	err := step(actx)
	if err != nil && errors.Is(context.Cause(actx), errConnectionDropped) {
		return fmt.Errorf("%w: %w", errConnectionDropped, err)
	}
	return err
}

var errConnectionDropped = errors.New("the connection to NATS dropped")

// serverChangingHands reports whether err, a JetStream request's, is one a request meets while
// the embedded server stops or starts (see acrossTakeover).
func serverChangingHands(err error) bool {
	return errors.Is(err, errConnectionDropped) || errors.Is(err, nats.ErrConnectionClosed) || pipeline.NoAnswer(err)
}

// natsOptions are the options of every connection of b: its name, reconnecting for ever, a
// connection gone silent noticed within natsStaleAfter, and the logs (and takeover, see
// takeOver) of disconnections.
func (b *broker) natsOptions(log *slog.Logger) []nats.Option {
	return []nats.Option{
		nats.Name("paperpipe"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.PingInterval(natsPingInterval),
		nats.MaxPingsOutstanding(natsMaxPingsOut),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected; reconnecting", "err", err)
			}
			if b.dataDir != "" {
				go b.takeOver(nc, log)
			}
		}),
		// nats.go's default prints its asynchronous errors bare on stderr, beside the log.
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if sub != nil {
				log.Warn("NATS error", "subject", sub.Subject, "err", err)
				return
			}
			log.Warn("NATS error", "err", err)
		}),
		// nats.go's ConnectedUrlRedacted keeps a token given as nats://TOKEN@host.
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("NATS reconnected", "url", redact.URL(nc.ConnectedUrl())) }),
		// A running command whose connection NATS closes stops (see stopIfRefused); close
		// checks too, for a command that ended before this handler came.
		nats.ClosedHandler(b.stopIfRefused),
	}
}

// A connection whose server stops answering without closing it (a server frozen or cut off by
// a partition, a node gone without a reset) is given up after natsMaxPingsOut pings unanswered,
// one every natsPingInterval: within natsStaleAfter, and the client reconnects to another
// server of NATS_URL or of the cluster. nats.go's defaults (2 minutes, 2 pings) left workers
// connected to such a server idle for up to 6 minutes while the cluster's other servers served
// the queue.
const (
	natsPingInterval = 10 * time.Second
	natsMaxPingsOut  = 2
	natsStaleAfter   = (natsMaxPingsOut + 1) * natsPingInterval
)

// stopIfRefused stops the command (b.fail), once, when nc was closed after NATS_URL's server
// refused paperpipe's credentials. A server that comes back refusing them (rotated, expired,
// revoked) makes nats.go close the connection after the same refusal twice: nothing would be
// done again, so the command stops, naming the setting, as it would at start. The command may
// have closed the connection itself already, on the error the refusal caused (a publish on the
// closed connection): the refusal is still why. nats.go calls it as nc's close handler, which
// may come after the command has ended; close calls it too, so that the reason is known
// before the command's error is shown.
func (b *broker) stopIfRefused(nc *nats.Conn) {
	if b.natsURL == "" || b.fail == nil {
		return
	}
	if r := natsRefusal(b.natsURL, nc.LastError()); r != nil {
		b.refused.Do(func() {
			b.log.Error("NATS closed the connection, refusing paperpipe's credentials; stopping", "err", r)
			b.fail(r)
		})
	}
}

// newJetStream is the JetStream context of nc, as every paperpipe process uses it.
func newJetStream(nc *nats.Conn) (jetstream.JetStream, error) {
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(1024), jetstream.WithPublishAsyncTimeout(30*time.Second))
	if err != nil {
		return nil, fmt.Errorf("JetStream: %w", err)
	}
	return js, nil
}

// topology is the topology the process sets up: its consumer's settings apply only when it
// runs workers of the consumer (see brokerRole).
func (c *config) topology(role brokerRole) pipeline.TopologyConfig {
	t := pipeline.TopologyConfig{Replicas: c.Replicas, AckWait: c.AckWait, MaxDeliver: c.MaxDeliver, KeepConsumer: role != newPaperWorkers}
	if role == newPaperWorkers && c.NATSURL != "" {
		// The embedded server's queue is bound to its database by its data directory
		// (claimDataDir), which also says how to hand it over.
		t.Archive = c.queueArchive()
	}
	return t
}

// checkNATSURL returns the error of a NATS_URL that nats.go cannot parse (localhost:4222x), naming
// the server URL at fault (redacted): the connection would fail with it at once, and every time,
// which must not pass for an outage ("cannot be reached", serve connecting in the background).
// Each comma-separated URL is read as nats.go reads it: nats:// is assumed without a scheme.
// A value that names no server (only commas or spaces: a template whose variables were empty)
// is refused too: nats.go would connect to 127.0.0.1:4222, and only an unset NATS_URL means
// the embedded server (one run in its place would be a queue no other process reads).
func checkNATSURL(urls string) error {
	servers := natsServers(urls)
	for _, u := range servers {
		if _, err := neturl.Parse(u.full); err != nil {
			// url.Parse's error quotes the URL as given, password and all: keep only its cause.
			var ue *neturl.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			var esc neturl.EscapeError
			if errors.As(err, &esc) {
				// Its text quotes the escape, which may be part of a password.
				err = errors.New("a % not followed by two hexadecimal digits (a % in a password is written %25)")
			}
			err = redact.ParseError(u.full, err)
			return fmt.Errorf("%s is not a URL: %w (want nats://HOST:PORT, or several separated by commas)", redact.URL(u.given), err)
		}
	}
	if urls != "" && len(servers) == 0 {
		return fmt.Errorf("%q names no server (want nats://HOST:PORT, or several separated by commas; unset it for the embedded server)", urls)
	}
	return nil
}

// natsServer is one server URL of a NATS_URL list: as given, and as nats.go reads it (nats://
// assumed without a scheme).
type natsServer struct{ given, full string }

// natsServers splits the NATS_URL list urls as nats.go does: comma-separated, spaces trimmed,
// empty entries left out.
func natsServers(urls string) []natsServer {
	var out []natsServer
	for _, raw := range strings.Split(urls, ",") {
		u := strings.TrimSpace(raw)
		if u == "" {
			continue
		}
		full := u
		if !strings.Contains(full, "://") {
			full = "nats://" + full
		}
		out = append(out, natsServer{given: u, full: full})
	}
	return out
}

// loopbackURL reports whether every server of the NATS URL list urls is on this host
// (localhost, a loopback address): there, the embedded server may stand in for it.
func loopbackURL(urls string) bool {
	servers := natsServers(urls)
	for _, srv := range servers {
		u, err := neturl.Parse(srv.full)
		if err != nil || u.Hostname() == "" {
			return false
		}
		if u.Hostname() == "localhost" {
			continue
		}
		if ip, err := netip.ParseAddr(u.Hostname()); err != nil || !ip.IsLoopback() {
			return false
		}
	}
	return len(servers) > 0
}

// where says which server b is connected to, for `up` to announce: NATS_URL's, the embedded
// server this process runs, or the one another paperpipe process runs on the data directory.
func (b *broker) where(c *config) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.embedded != nil:
		return "embedded, data in " + c.DataDir
	case c.NATSURL == "":
		return "the embedded server of PAPERPIPE_DATA " + c.DataDir + ", run by another paperpipe process"
	default:
		return "NATS_URL"
	}
}

// takeOver runs the embedded server of the data directory in this process when the process
// that ran it stopped: its server is gone, and the clients of it (this one among them) would
// retry its address for ever. While nc is disconnected, it tries the directory's lock; the
// process that gets it starts the server on the same address, so every client reconnects to it.
func (b *broker) takeOver(nc *nats.Conn, log *slog.Logger) {
	for !nc.IsConnected() && !nc.IsClosed() {
		b.mu.Lock()
		if b.closed || b.embedded != nil {
			b.mu.Unlock()
			return
		}
		done, err := b.tryTakeOver(log)
		b.mu.Unlock()
		if done {
			return
		}
		if err != nil {
			log.Error("could not take over the embedded NATS server", "dir", b.dataDir, "err", err)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// tryTakeOver takes the data directory's lock if it is free and starts the server on the
// address the clients know, with the token they know (all read it from the same URL file); b.mu
// is held. done is true once this process runs the server.
func (b *broker) tryTakeOver(log *slog.Logger) (done bool, err error) {
	lock, err := lockDataDir(b.dataDir)
	if err != nil || lock == nil {
		return false, err // nil: another process has it, or is taking it over
	}
	u, err := neturl.Parse(b.url)
	if err != nil {
		unlockDataDir(lock)
		return false, fmt.Errorf("the server's address %s does not parse", redact.URL(b.url))
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		unlockDataDir(lock)
		return false, fmt.Errorf("the server's address %s has no port", redact.URL(b.url))
	}
	if u.User == nil || u.User.Username() == "" {
		// A new token would shut out every client of the address, this process too.
		unlockDataDir(lock)
		return false, errors.New("its address has no token: it was run by a paperpipe from before tokens; restart the paperpipe processes of this data directory")
	}
	emb, err := pipeline.StartEmbedded(pipeline.EmbeddedConfig{Dir: filepath.Join(b.dataDir, "nats"), Host: u.Hostname(), Port: port,
		Token: u.User.Username(), Logger: log, SyncAlways: b.syncAlways, SyncInterval: b.syncInterval})
	if err != nil {
		unlockDataDir(lock)
		return false, err
	}
	urlFile := filepath.Join(b.dataDir, "nats.url")
	if err := writeURLFile(urlFile, emb.ClientURL()); err != nil {
		log.Warn("could not write the embedded server's address", "err", err)
	}
	b.embedded, b.lock, b.urlFile = emb, lock, urlFile
	log.Warn("the paperpipe process that ran the embedded NATS server stopped; this one runs it now", "url", redact.URL(emb.ClientURL()), "dir", b.dataDir)
	return true, nil
}

// close drains the connection, then stops the embedded server and releases the data directory.
func (b *broker) close() {
	b.mu.Lock()
	if !b.closing && b.done != nil {
		close(b.done)
	}
	b.closing = true
	b.mu.Unlock()
	if b.nc != nil {
		_ = b.nc.Drain()
		for i := 0; i < 100 && !b.nc.IsClosed(); i++ {
			time.Sleep(20 * time.Millisecond)
		}
		b.nc.Close()
		b.stopIfRefused(b.nc)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	if b.embedded != nil {
		b.embedded.Shutdown()
	}
	if b.lock != nil {
		unlockDataDir(b.lock)
	}
}

// lastAddress returns the loopback host, port and token of the URL file a server of the data
// directory wrote last (it is left in place when that server stops, for this), if its port is
// free now.
func lastAddress(file string) (host string, port int, token string, ok bool) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return "", 0, "", false
	}
	u, err := neturl.Parse(strings.TrimSpace(string(raw)))
	if err != nil || u.User == nil || u.User.Username() == "" {
		return "", 0, "", false
	}
	port, err = strconv.Atoi(u.Port())
	if ip, perr := netip.ParseAddr(u.Hostname()); err != nil || port <= 0 || perr != nil || !ip.IsLoopback() {
		return "", 0, "", false
	}
	l, err := net.Listen("tcp", u.Host)
	if err != nil {
		return "", 0, "", false // taken by another program since
	}
	_ = l.Close()
	return u.Hostname(), port, u.User.Username(), true
}

// urlFileWait bounds how long a process waits for the address of a server another process
// is starting (JetStream recovers its store first: seconds for a large queue).
const urlFileWait = 30 * time.Second

// errLockFreed is readURLFile's error when the process that was starting the server let go of
// the lock without writing an address (it stopped, or failed to start it): the caller tries
// again, and takes the lock.
var errLockFreed = errors.New("the process starting the embedded server stopped before it wrote its address")

// readURLFile reads the address file of the server another process holds the lock of
// dataDir for, waiting for it while that process starts the server (it removes the last
// server's file first, and writes the new one once the server accepts connections).
func readURLFile(ctx context.Context, dataDir, file string) ([]byte, error) {
	deadline := time.Now().Add(urlFileWait)
	for {
		raw, err := os.ReadFile(file)
		if err == nil || !errors.Is(err, fs.ErrNotExist) || time.Now().After(deadline) {
			return raw, err
		}
		if lock, lerr := lockDataDir(dataDir); lerr == nil && lock != nil {
			unlockDataDir(lock)
			return nil, errLockFreed
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// writeURLFile writes the embedded server's URL, token and all, to file, readable by its owner
// only (0600): to a new file renamed over the old one, so that a process reading it never sees
// a part, and a file left with another mode (by a paperpipe from before tokens) is replaced.
func writeURLFile(file, url string) error {
	f, err := os.CreateTemp(filepath.Dir(file), ".nats.url-*") // mode 0600
	if err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	_, err = f.WriteString(url + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), file)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", file, err)
	}
	return nil
}

// queueOwnerFile, in the data directory, names the database that the workers of its embedded
// server store the queued papers in (see claimDataDir).
const queueOwnerFile = "nats.database"

// claimDataDir records in dataDir the database that the workers of its embedded server store
// papers in, owner (see archiveOwner), the first time a worker runs on it, and refuses a worker
// on another database: a worker takes each new paper off the queue and acknowledges it once
// stored, so a worker on a copy of the archive (a restore into another database or schema,
// tried out by the same user, whose PAPERPIPE_DATA is the same directory unless set) would
// store the archive's new papers in the copy, and the archive would never get them. A database
// is its name and schema: not its host, so an archive moved to another server, under the same
// name, keeps its queue.
//
// A directory an earlier release claimed records the archive as that release read it from
// the URL (queueOwner of databaseURL, its search_path as the URL sets it, not as the role's or
// the database's settings do): a worker whose URL reads so is the archive's, and the record
// is brought up to owner.
func claimDataDir(dataDir, owner, databaseURL string) error {
	file := filepath.Join(dataDir, queueOwnerFile)
	f, err := os.CreateTemp(dataDir, ".nats.database-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	_, err = f.WriteString(owner + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// A link fails when the file exists: the first worker's database stays recorded.
		if err = os.Link(f.Name(), file); errors.Is(err, fs.ErrExist) {
			err = nil
		}
	}
	defer os.Remove(f.Name())
	if err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("read %s: %w", file, err)
	}
	recorded := strings.TrimSuffix(string(raw), "\n")
	if recorded != owner && recorded == queueOwner(databaseURL) {
		// An earlier release's record of this archive.
		if err := os.Rename(f.Name(), file); err != nil {
			return fmt.Errorf("write %s: %w", file, err)
		}
		return nil
	}
	if recorded != owner {
		return fmt.Errorf("the embedded NATS queue in %s (PAPERPIPE_DATA) is %s's, and DATABASE_URL names %s: "+
			"a worker here would take that archive's new papers and store them in this database, where that archive never gets them. "+
			"Give this database a data directory of its own (PAPERPIPE_DATA=DIR), or, if it is now that archive's home "+
			"(restored or renamed), delete %s and start again", dataDir, recorded, owner, file)
	}
	return nil
}

// queueArchive is the archive the new-paper queue is bound to: archiveOwner's, once a
// worker's store is open (c.archive), else queueOwner's reading of DATABASE_URL.
func (c *config) queueArchive() string {
	return cmp.Or(c.archive, queueOwner(c.DatabaseURL))
}

// archiveOwner is the archive st's sessions work in, as claimDataDir records it: "database
// NAME (schema SCHEMA)", both as the server names them (current_database(), current_schema()):
// the URL's database, or the user's when it names none, and the schema paperpipe's tables are
// in, the first of the search_path that exists, whoever set it — the URL (search_path,
// options=-c search_path=…), the role (ALTER ROLE … SET) or the database (ALTER DATABASE …
// SET). The schema is always there, so that no record of this form is one an earlier release
// made (queueOwner), which claimDataDir brings up to this form.
func archiveOwner(ctx context.Context, st *store.Store) (string, error) {
	var (
		database string
		schema   *string
	)
	if err := st.Pool().QueryRow(ctx, "SELECT current_database(), current_schema()").Scan(&database, &schema); err != nil {
		return "", fmt.Errorf("read the database's name and schema: %w", err)
	}
	if schema == nil {
		return "", fmt.Errorf("database %s: no schema of the search_path exists", database)
	}
	return "database " + database + " (schema " + *schema + ")", nil
}

// queueOwner is the archive that databaseURL names, as an earlier release's claimDataDir
// recorded it, and as it records it when no store is open (archiveOwner): "database
// NAME", with " (search_path PATH)" when the URL sets one. NAME is the user's name when the URL
// names no database, as the server takes it. PATH is pgx's search_path parameter, else the one
// libpq's options parameter (or PGOPTIONS) sets (-c search_path=…, --search_path=…), the way
// libpq's tools take it: the server applies options first, then the parameter. Its spaces are
// left out. A URL that does not parse (which loadConfig refuses first) names no archive: it was
// recorded as given, its password too.
func queueOwner(databaseURL string) string {
	cfg, err := pgconn.ParseConfig(databaseURL)
	if err != nil {
		return "database (DATABASE_URL does not parse)"
	}
	owner := "database " + cmp.Or(cfg.Database, cfg.User)
	path, ok := cfg.RuntimeParams["search_path"]
	if !ok {
		path = optionsSearchPath(cfg.RuntimeParams["options"])
	}
	if path = strings.ReplaceAll(path, " ", ""); path != "" {
		owner += " (search_path " + path + ")"
	}
	return owner
}

// optionsSearchPath is the search_path that libpq's options parameter sets, the last one
// given, or "": its arguments are separated by spaces, a backslash escaping the character
// after it, and a setting is "-c name=value", "-cname=value" or "--name=value", with dashes
// in the name standing for underscores.
func optionsSearchPath(options string) string {
	var (
		args []string
		arg  strings.Builder
		esc  bool
	)
	for _, r := range options + " " {
		switch {
		case esc:
			arg.WriteRune(r)
			esc = false
		case r == '\\':
			esc = true
		case unicode.IsSpace(r):
			if arg.Len() > 0 {
				args = append(args, arg.String())
				arg.Reset()
			}
		default:
			arg.WriteRune(r)
		}
	}
	path := ""
	for i := 0; i < len(args); i++ {
		var setting string
		switch a := args[i]; {
		case a == "-c" && i+1 < len(args):
			i++
			setting = args[i]
		case strings.HasPrefix(a, "-c"):
			setting = a[2:]
		case strings.HasPrefix(a, "--"):
			setting = a[2:]
		default:
			continue
		}
		if name, value, ok := strings.Cut(setting, "="); ok && strings.ReplaceAll(strings.ToLower(name), "-", "_") == "search_path" {
			path = value
		}
	}
	return path
}

// checkDataDir refuses a data directory that another user of the machine may write to, as
// ssh refuses such a ~/.ssh: one writable by every user (even with the sticky bit, which
// still lets them create the names paperpipe has not made yet), or one that belongs to another
// user than this one and root. There another user could put their own files in place of the
// queue's (nats.url: the address, and the token, of a server of theirs, which `ingest` would
// send the papers to and a worker take papers from; the server's store; nats.database), or
// move them aside and read them. A directory shared with a group on purpose is left alone.
// So is the way to it (checkPathTo): a directory that another user could rename aside, with a
// directory of theirs put in its place, is no safer than one they may write to.
func checkDataDir(dir string) error {
	if err := checkPathTo(dir); err != nil {
		return err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() && st.Uid != 0 {
		return fmt.Errorf("it belongs to user id %d, not to this user (%d): that user could put their own files in place of "+
			"the queue's (the embedded server's address and token, its store) or read them; use a directory of your own", st.Uid, os.Getuid())
	}
	if fi.Mode().Perm()&0o002 != 0 && fi.Mode()&os.ModeSticky != 0 {
		// A directory every user shares on purpose (/tmp, /var/tmp): making it private would
		// break every other user's and service's use of it.
		own := filepath.Join(dir, "paperpipe-"+userName())
		return fmt.Errorf("every user of this machine may write to it (%s, a directory they share, as /tmp is): another user could put "+
			"their own files in place of the queue's (the embedded server's address and token, its store) or read them; "+
			"use a directory of your own in it (mkdir -m 700 %s, and PAPERPIPE_DATA=%s) or another", fi.Mode(), own, own)
	}
	if fi.Mode().Perm()&0o002 != 0 {
		return fmt.Errorf("every user of this machine may write to it (%s): another user could put their own files "+
			"in place of the queue's (the embedded server's address and token, its store) or read them; "+
			"make it yours alone (chmod 700 %s) or use another", fi.Mode(), dir)
	}
	return nil
}

// userName is this user's login name, for a directory of theirs; its uid when it has none.
func userName() string {
	if u, err := user.Current(); err == nil && u.Username != "" && !strings.ContainsAny(u.Username, "/ \t\n") {
		return u.Username
	}
	return strconv.Itoa(os.Getuid())
}

// checkPathTo refuses a path to dir that another user of the machine could make lead to a
// directory of theirs: one through a directory (the path's own, or a symbolic link's on the
// way) that every user may write to, or that belongs to another user than this one and root,
// as ssh refuses such a path to ~/.ssh. Such a user could rename the data directory, or a
// symbolic link to it, aside and put their own in its place — after checkDataDir has looked
// at it, or at any time while the embedded server writes there. A directory every user may
// write to that has the sticky bit (/tmp) is refused only when the name in it is another
// user's: a symbolic link /tmp/paperpipe that user made, which passes for the directory it
// leads to until they point it elsewhere. A directory shared with a group is left alone, as
// the data directory itself.
func checkPathTo(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	uid := uint32(os.Getuid())
	mine := func(fi fs.FileInfo) (uint32, bool) {
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return 0, true
		}
		return st.Uid, st.Uid == uid || st.Uid == 0
	}
	cur, rest, links := "/", strings.Split(abs, "/"), 0
	for len(rest) > 0 {
		name := rest[0]
		rest = rest[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur) // cur has no symbolic link left in it
			continue
		}
		parent, err := os.Stat(cur)
		if err != nil {
			return err
		}
		next := filepath.Join(cur, name)
		fi, err := os.Lstat(next)
		if err != nil {
			return err
		}
		if owner, ok := mine(parent); !ok {
			return fmt.Errorf("%s, on the way to it, belongs to user id %d, not to this user (%d): that user could put a directory "+
				"of their own in its place, with their files in place of the queue's (the embedded server's address and token, "+
				"its store); use a directory of your own", cur, owner, uid)
		}
		if parent.Mode().Perm()&0o002 != 0 {
			if owner, ok := mine(fi); parent.Mode()&fs.ModeSticky == 0 || !ok {
				what := fmt.Sprintf("every user of this machine may write to %s (%s), on the way to it", cur, parent.Mode())
				if parent.Mode()&fs.ModeSticky != 0 {
					what = fmt.Sprintf("%s belongs to user id %d, not to this user (%d)", next, owner, uid)
				}
				return fmt.Errorf("%s: another user could put a directory of their own in its place, with their files in place of the "+
					"queue's (the embedded server's address and token, its store); use a directory of your own", what)
			}
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if links++; links > 40 {
			return fmt.Errorf("%s: too many levels of symbolic links", abs)
		}
		target, err := os.Readlink(next)
		if err != nil {
			return err
		}
		if filepath.IsAbs(target) {
			cur = "/"
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return nil
}

// lockDataDir takes the data directory's lock (nats.lock), under which one process runs the
// embedded server on its files, without waiting: nil when another process holds it.
func lockDataDir(dataDir string) (*os.File, error) {
	lock, err := os.OpenFile(filepath.Join(dataDir, "nats.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		lock.Close()
		return nil, nil
	}
	return lock, nil
}

// unlockDataDir releases a lock lockDataDir took.
func unlockDataDir(lock *os.File) {
	_ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	lock.Close()
}

// natsSecurity returns the options that authenticate paperpipe to NATS_URL's server and
// verify that server: an NKey seed or a credentials file (PAPERPIPE_NATS_NKEY; a user and password, or a token, go
// in NATS_URL itself) and the CA of a server certificate no system CA signed
// (PAPERPIPE_NATS_CA). None for the embedded server.
func natsSecurity(c *config) ([]nats.Option, error) {
	if c.NATSURL == "" {
		return nil, nil
	}
	var opts []nats.Option
	if c.NATSNkey != "" {
		b, err := os.ReadFile(c.NATSNkey)
		if err != nil {
			return nil, fmt.Errorf("PAPERPIPE_NATS_NKEY=%q: %w", c.NATSNkey, err)
		}
		if bytes.Contains(b, []byte("BEGIN NATS USER JWT")) {
			// A credentials file (.creds) of a server in operator mode: the user's JWT with
			// its seed. The seed alone, without the JWT, is refused there. nats.go reads the
			// file at each connection attempt, and a seed missing from it failed each as a
			// server down would: it is checked here.
			kp, err := nkeys.ParseDecoratedUserNKey(b)
			if err != nil {
				return nil, fmt.Errorf("PAPERPIPE_NATS_NKEY=%q: a credentials file (.creds) whose user NKey seed (SU…, after its JWT) "+
					"cannot be read: %w; use the file as nsc or your NATS provider made it", c.NATSNkey, err)
			}
			kp.Wipe()
			opts = append(opts, nats.UserCredentials(c.NATSNkey))
		} else {
			o, err := nats.NkeyOptionFromSeed(c.NATSNkey)
			if err != nil {
				return nil, fmt.Errorf("PAPERPIPE_NATS_NKEY=%q: %w", c.NATSNkey, err)
			}
			opts = append(opts, o)
		}
	}
	if c.NATSCA != "" {
		opts = append(opts, nats.RootCAs(c.NATSCA))
	}
	return opts, nil
}

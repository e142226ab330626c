package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/paperpipe/paperpipe/internal/nettest"
)

// Defaults of the PostgreSQL a run can start for itself: the Debian chroot deploy/services.sh
// builds (in $PAPERPIPE_SERVICES_DIR, as the script does), and the PostgreSQL 17 binaries
// inside it.
const (
	DefaultChrootRoot = "/var/lib/paperpipe-services/trixie-root"
	chrootPGBin       = "/usr/lib/postgresql/17/bin"
)

// chrootRoot is the chroot deploy/services.sh builds: under PAPERPIPE_SERVICES_DIR when set.
func chrootRoot() string {
	if dir := os.Getenv("PAPERPIPE_SERVICES_DIR"); dir != "" {
		return filepath.Join(dir, "trixie-root")
	}
	return DefaultChrootRoot
}

// Postgres is a private PostgreSQL cluster with pgvector, run from the chroot's binaries as
// its postgres user on a temporary data directory inside the chroot. Unlike the shared test
// server, it may be stopped and restarted.
type Postgres struct {
	Root string // the chroot
	Dir  string // the cluster's directory, as seen inside the chroot
	Port int
	uid  int
	gid  int
}

// StartPostgres creates and starts a cluster on a free loopback port, creates database
// "chaos" with the vector extension, and returns once it accepts connections.
func StartPostgres(ctx context.Context, root string) (*Postgres, error) {
	if root == "" {
		root = chrootRoot()
	}
	if err := chrootUsable(root); err != nil {
		return nil, err
	}
	uid, gid, err := chrootUser(root, "postgres")
	if err != nil {
		return nil, err
	}
	pg, err := newCluster(root, "chaos-", "cluster directory", uid, gid)
	if err != nil {
		return nil, err
	}
	if out, err := pg.run(ctx, "initdb", "-D", pg.Dir+"/data", "-U", "postgres", "--auth=trust",
		"--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"); err != nil {
		pg.remove()
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	conf := fmt.Sprintf(`
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
max_connections = 100
shared_buffers = 64MB
fsync = on
synchronous_commit = on
log_min_messages = warning
`, pg.Port, pg.Dir)
	if err := pg.configure(conf); err != nil {
		pg.remove()
		return nil, fmt.Errorf("configure the cluster: %w", err)
	}
	if err := pg.Start(ctx); err != nil {
		pg.remove()
		return nil, err
	}
	if err := pg.exec(ctx, "postgres", "CREATE DATABASE chaos"); err != nil {
		pg.Close()
		return nil, err
	}
	if err := pg.exec(ctx, "chaos", "CREATE EXTENSION IF NOT EXISTS vector"); err != nil {
		pg.Close()
		return nil, err
	}
	live.Lock()
	live.pgs[pg] = true
	live.Unlock()
	return pg, nil
}

// StartStandby creates a hot standby of pg — a base backup streaming pg's WAL, on a free
// loopback port of its own — starts it, and returns once it accepts connections. It replays
// everything written on pg (a few milliseconds behind) and refuses writes, as a production
// read replica does.
func (pg *Postgres) StartStandby(ctx context.Context) (*Postgres, error) {
	sb, err := newCluster(pg.Root, "chaos-standby-", "standby directory", pg.uid, pg.gid)
	if err != nil {
		return nil, err
	}
	// -R writes standby.signal and primary_conninfo; -X stream copies the WAL written meanwhile.
	if out, err := sb.run(ctx, "pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(pg.Port), "-U", "postgres",
		"-D", sb.Dir+"/data", "-R", "-X", "stream", "--checkpoint=fast", "--no-sync"); err != nil {
		sb.remove()
		return nil, fmt.Errorf("pg_basebackup: %w\n%s", err, out)
	}
	if err := sb.configure(fmt.Sprintf("\nport = %d\nunix_socket_directories = '%s'\nhot_standby = on\n", sb.Port, sb.Dir)); err != nil {
		sb.remove()
		return nil, fmt.Errorf("configure the standby: %w", err)
	}
	if err := sb.Start(ctx); err != nil {
		sb.remove()
		return nil, err
	}
	live.Lock()
	live.pgs[sb] = true
	live.Unlock()
	return sb, nil
}

// chrootUsable says why StartPostgres cannot run a cluster from the chroot root, or returns nil.
// Only deploy/services.sh's chroot back end (root on Debian) builds one: make services on its
// Docker back end does not, so "run make services" would send the user round in a circle.
func chrootUsable(root string) error {
	if _, err := os.Stat(filepath.Join(root, chrootPGBin, "pg_ctl")); err != nil {
		return fmt.Errorf("no PostgreSQL in the chroot %s: a private cluster runs from the chroot that deploy/services.sh "+
			"builds on its chroot back end (make services as root on Debian; its Docker back end builds none): %w", root, err)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("a private cluster runs in the chroot %s as its postgres user, and only root may enter a chroot", root)
	}
	return nil
}

// newCluster makes a cluster's directory under root's /tmp (named prefix…, owned by uid and
// gid; what is its name in errors) and picks it a free port: the cluster itself is for the
// caller to create.
func newCluster(root, prefix, what string, uid, gid int) (*Postgres, error) {
	host, err := os.MkdirTemp(filepath.Join(root, "tmp"), prefix)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := os.Chown(host, uid, gid); err != nil {
		os.RemoveAll(host)
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	port, err := nettest.PickPort()
	if err != nil {
		os.RemoveAll(host)
		return nil, err
	}
	return &Postgres{Root: root, Dir: "/tmp/" + filepath.Base(host), Port: port, uid: uid, gid: gid}, nil
}

// configure appends settings to the cluster's postgresql.conf (the last of a setting wins).
func (pg *Postgres) configure(settings string) error {
	f, err := os.OpenFile(filepath.Join(pg.Root, pg.Dir, "data", "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(settings)
	return errors.Join(err, f.Close())
}

// URL is the connection URL of the chaos database.
func (pg *Postgres) URL() string { return pg.url("chaos") }

func (pg *Postgres) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", pg.Port, db)
}

// Start starts the cluster and waits until it accepts connections.
func (pg *Postgres) Start(ctx context.Context) error {
	if out, err := pg.run(ctx, "pg_ctl", "start", "-D", pg.Dir+"/data", "-l", pg.Dir+"/log", "-w", "-t", "60", "-s"); err != nil {
		return fmt.Errorf("pg_ctl start: %w\n%s\n%s", err, out, pg.Log(20))
	}
	return nil
}

// Stop stops the cluster in the given mode: "fast" (disconnects clients, clean shutdown) or
// "immediate" (like a crash: recovery from the WAL at the next start).
func (pg *Postgres) Stop(ctx context.Context, mode string) error {
	if out, err := pg.run(ctx, "pg_ctl", "stop", "-D", pg.Dir+"/data", "-m", mode, "-w", "-t", "60", "-s"); err != nil {
		return fmt.Errorf("pg_ctl stop: %w\n%s", err, out)
	}
	return nil
}

// Log returns the last n lines of the server log.
func (pg *Postgres) Log(n int) string {
	raw, _ := os.ReadFile(filepath.Join(pg.Root, pg.Dir, "log"))
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Close stops the cluster and removes its directory.
func (pg *Postgres) Close() {
	live.Lock()
	delete(live.pgs, pg)
	live.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = pg.Stop(ctx, "immediate")
	pg.remove()
}

func (pg *Postgres) remove() { os.RemoveAll(filepath.Join(pg.Root, pg.Dir)) }

// run runs one of the chroot's PostgreSQL programs as its postgres user.
func (pg *Postgres) run(ctx context.Context, prog string, args ...string) ([]byte, error) {
	full := append([]string{"--userspec=" + strconv.Itoa(pg.uid) + ":" + strconv.Itoa(pg.gid), pg.Root,
		"/usr/bin/env", "-i", "PATH=" + chrootPGBin + ":/usr/bin:/bin", "HOME=" + pg.Dir, "LC_ALL=C.UTF-8", "PGTZ=UTC",
		chrootPGBin + "/" + prog}, args...)
	cmd := exec.CommandContext(ctx, "chroot", full...)
	return cmd.CombinedOutput()
}

func (pg *Postgres) exec(ctx context.Context, db, sql string) error {
	conn, err := pgx.Connect(ctx, pg.url(db))
	if err != nil {
		return fmt.Errorf("connect to the private PostgreSQL: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}

// chrootUser looks a user up in the chroot's /etc/passwd.
func chrootUser(root, name string) (uid, gid int, err error) {
	f, err := os.Open(filepath.Join(root, "etc", "passwd"))
	if err != nil {
		return 0, 0, fmt.Errorf("chroot users: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) > 3 && fields[0] == name {
			uid, err1 := strconv.Atoi(fields[2])
			gid, err2 := strconv.Atoi(fields[3])
			if err := errors.Join(err1, err2); err != nil {
				return 0, 0, fmt.Errorf("chroot user %s: %w", name, err)
			}
			return uid, gid, nil
		}
	}
	return 0, 0, fmt.Errorf("no user %s in %s/etc/passwd", name, root)
}

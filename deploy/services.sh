#!/usr/bin/env bash
# services.sh — start, stop and inspect the local PostgreSQL 17 + pgvector that
# paperpipe's tests, benchmarks and dev runs use.
#
#   deploy/services.sh up           start (building it the first time), print DATABASE_URL=...
#   deploy/services.sh down         stop PostgreSQL cleanly, keep the data
#   deploy/services.sh restart      down, then up (data kept)
#   deploy/services.sh status       exit 0 if up, 3 if not
#   deploy/services.sh url [test]   print the URL of database paperpipe (or paperpipe_test)
#   deploy/services.sh psql [test] [psql args...]
#                                   psql as paperpipe (the host needs no psql of its own)
#
# Only `up`, `restart` and `url` write to stdout (one line each); every message goes to stderr.
#
# Two back ends, picked by PAPERPIPE_SERVICES (auto, chroot or docker; default auto):
#   chroot  Debian as root: Debian trixie's postgresql-17 and postgresql-17-pgvector in a
#           debootstrap chroot under $PAPERPIPE_SERVICES_DIR, serving on 127.0.0.1 only.
#   docker  deploy/compose.yaml (pgvector/pgvector:pg17) where a Docker engine answers.
# auto uses chroot where it can (root on Debian), else docker, else explains what is missing.
#
# Environment:
#   PAPERPIPE_PG_PORT        TCP port on 127.0.0.1 (default 55432)
#   PAPERPIPE_SERVICES_DIR   chroot back end's home (default /var/lib/paperpipe-services)
#   PAPERPIPE_SERVICES       auto | chroot | docker (default auto)
#   PAPERPIPE_DEBIAN_MIRROR  Debian mirror for debootstrap (default: the one apt already uses)
set -euo pipefail

readonly PORT="${PAPERPIPE_PG_PORT:-55432}"
readonly SERVICES_DIR="${PAPERPIPE_SERVICES_DIR:-/var/lib/paperpipe-services}"
readonly ROOT="$SERVICES_DIR/trixie-root"
readonly SUITE=trixie
readonly PG_BIN=/usr/lib/postgresql/17/bin # inside the chroot
readonly PGDATA=/var/lib/paperpipe/pgdata  # inside the chroot
readonly SOCKET_DIR=/run/postgresql        # inside the chroot
readonly LOG_FILE=/var/log/paperpipe/postgresql.log # inside the chroot
readonly ROLE=paperpipe
readonly DATABASES=(paperpipe paperpipe_test)
# The directory of this script, also when it runs through a symlink (~/bin/services -> here):
# compose.yaml lies beside the script, not beside the link.
script_dir() {
	local src="${BASH_SOURCE[0]}" dir
	while [[ -L "$src" ]]; do
		dir="$(cd "$(dirname "$src")" && pwd)"
		src="$(readlink "$src")"
		[[ "$src" == /* ]] || src="$dir/$src"
	done
	cd "$(dirname "$src")" && pwd
}
DEPLOY_DIR="$(script_dir)"
readonly DEPLOY_DIR
readonly COMPOSE_FILE="$DEPLOY_DIR/compose.yaml"

log() { printf 'services: %s\n' "$*" >&2; }
die() {
	printf 'services: error: %s\n' "$*" >&2
	exit 1
}

usage() {
	sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

database_url() { # database_url DBNAME
	printf 'postgres://%s@127.0.0.1:%s/%s?sslmode=disable\n' "$ROLE" "$PORT" "$1"
}

# ---------------------------------------------------------------------------------------------
# Choosing a back end

is_debian() {
	[[ -r /etc/os-release ]] || return 1
	local id
	# shellcheck source=/dev/null
	id="$(. /etc/os-release && printf '%s' "${ID:-}")"
	[[ "$id" == debian ]]
}

# chroot_possible says why the chroot back end cannot run here (on stdout) and fails, or succeeds.
chroot_possible() {
	if [[ $EUID -ne 0 ]]; then
		echo "the chroot back end needs root (it runs debootstrap, chroot and mount)"
		return 1
	fi
	if [[ -x "$ROOT$PG_BIN/postgres" ]]; then
		return 0 # already built: any Linux host can run it
	fi
	if ! is_debian && [[ -z "${PAPERPIPE_DEBIAN_MIRROR:-}" ]]; then
		echo "the chroot back end needs a Debian host (or PAPERPIPE_DEBIAN_MIRROR and debootstrap)"
		return 1
	fi
	if ! command -v debootstrap >/dev/null && ! command -v apt-get >/dev/null; then
		echo "the chroot back end needs debootstrap (or apt-get to install it)"
		return 1
	fi
	return 0
}

# docker_ok succeeds when a Docker engine answers and Compose (plugin or docker-compose) exists.
docker_ok() {
	command -v docker >/dev/null 2>&1 && timeout 20 docker info >/dev/null 2>&1 &&
		{ docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1; }
}

# pick_backend prints chroot or docker, or dies explaining what this machine lacks.
pick_backend() {
	local why
	case "${PAPERPIPE_SERVICES:-auto}" in
	chroot)
		why="$(chroot_possible)" || die "PAPERPIPE_SERVICES=chroot: $why"
		echo chroot
		;;
	docker)
		docker_ok || die "PAPERPIPE_SERVICES=docker but no Docker engine answers ('docker info' fails) or Docker Compose is missing"
		echo docker
		;;
	auto)
		if why="$(chroot_possible)"; then
			echo chroot
		elif docker_ok; then
			echo docker
		else
			die "cannot start PostgreSQL + pgvector here: $why, and no Docker engine answers.
  Either run as root on Debian (12 or later; needs only Debian's package mirror), or start a
  Docker engine (then: docker compose -f deploy/compose.yaml up -d --wait postgres), or point
  DATABASE_URL at your own PostgreSQL 17 with the pgvector extension available."
		fi
		;;
	*) die "PAPERPIPE_SERVICES must be auto, chroot or docker, not '${PAPERPIPE_SERVICES}'" ;;
	esac
}

# ---------------------------------------------------------------------------------------------
# Chroot back end

# debian_mirror prints the Debian mirror that apt already uses for this host's release.
debian_mirror() {
	if [[ -n "${PAPERPIPE_DEBIAN_MIRROR:-}" ]]; then
		echo "$PAPERPIPE_DEBIAN_MIRROR"
		return
	fi
	local codename mirror=""
	# shellcheck source=/dev/null
	codename="$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")"
	local files=()
	[[ -r /etc/apt/sources.list ]] && files+=(/etc/apt/sources.list)
	local f
	for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
		[[ -r "$f" ]] && files+=("$f")
	done
	for f in "${files[@]}"; do
		if [[ "$f" == *.sources ]]; then
			# deb822: stanzas split by blank lines; want an enabled "deb" stanza for $codename.
			mirror="$(awk -v want="$codename" '
				function flush() {
					if (types ~ /(^|[ \t])deb([ \t]|$)/ && enabled != "no" && suites_ok && uris != "") {
						split(uris, u, /[ \t]+/); print u[1]; found = 1; exit
					}
					types = ""; uris = ""; suites_ok = 0; enabled = ""
				}
				/^[ \t]*#/ { next }
				/^[ \t]*$/ { flush(); next }
				{
					key = tolower($1); sub(/:$/, "", key); $1 = ""; sub(/^[ \t]+/, "")
					if (key == "types") types = $0
					else if (key == "uris") uris = $0
					else if (key == "enabled") enabled = tolower($0)
					else if (key == "suites") { n = split($0, s, /[ \t]+/); for (i = 1; i <= n; i++) if (s[i] == want) suites_ok = 1 }
				}
				END { if (!found) flush() }' "$f")"
		else
			# one-line format: deb [options] URI SUITE COMPONENTS...
			mirror="$(awk -v want="$codename" '
				$1 == "deb" {
					i = 2
					if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
					if ($(i + 1) == want) { print $i; exit }
				}' "$f")"
		fi
		if [[ "$mirror" == http://* || "$mirror" == https://* ]]; then
			echo "${mirror%/}"
			return
		fi
	done
	log "no Debian mirror for '$codename' found in apt's sources; using http://deb.debian.org/debian"
	echo http://deb.debian.org/debian
}

ensure_debootstrap() {
	command -v debootstrap >/dev/null && return 0
	log "installing debootstrap (apt-get)"
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get -o DPkg::Lock::Timeout=600 install -y -q debootstrap >&2; then
		log "apt-get install failed; refreshing package lists (apt-get update) and retrying"
		apt-get -o DPkg::Lock::Timeout=600 update -q >&2
		apt-get -o DPkg::Lock::Timeout=600 install -y -q debootstrap >&2
	fi
	command -v debootstrap >/dev/null || die "debootstrap is still missing after apt-get install"
}

# umount_under DIR unmounts every mount point at or below DIR, deepest first.
umount_under() {
	local dir mnt
	dir="$(realpath -m "$1")"
	awk '{ print $2 }' /proc/mounts | sed 's/\\040/ /g' | sort -r | while IFS= read -r mnt; do
		if [[ "$mnt" == "$dir" || "$mnt" == "$dir"/* ]]; then
			umount "$mnt" 2>/dev/null || umount -l "$mnt" || log "could not unmount $mnt"
		fi
	done
}

# remove_tree DIR removes a (partial) root file system without crossing into mounts.
remove_tree() {
	[[ -e "$1" ]] || return 0
	umount_under "$1"
	rm -rf --one-file-system -- "$1"
}

# build_root debootstraps trixie with PostgreSQL 17 and pgvector into a temporary directory and
# renames it to $ROOT only when complete, so an interrupted build never leaves a broken root.
build_root() {
	ensure_debootstrap
	local mirror tmp started
	mirror="$(debian_mirror)"
	tmp="$SERVICES_DIR/trixie-root.partial"
	# debootstrap does not hold the lock (a daemon a package starts could keep it for ever), so
	# an interrupted build's debootstrap may still be writing into its tree.
	local pids
	if pids="$(pgrep -f -- "debootstrap.* $tmp( |$)")"; then
		die "a debootstrap of an interrupted build still writes into $tmp (pid ${pids//$'\n'/, }): let it end or kill it, then run up again"
	fi
	remove_tree "$tmp" # left by an interrupted build
	started=$SECONDS
	log "building the $SUITE chroot with postgresql-17 and postgresql-17-pgvector from $mirror"
	log "(once, about a minute; output in $SERVICES_DIR/debootstrap.log)"
	# The build's mounts must go even if we are interrupted.
	trap 'umount_under "'"$tmp"'"' EXIT
	if ! debootstrap --variant=minbase --include=postgresql-17,postgresql-17-pgvector \
		"$SUITE" "$tmp" "$mirror" >"$SERVICES_DIR/debootstrap.log" 2>&1 9>&-; then
		tail -n 20 "$SERVICES_DIR/debootstrap.log" >&2
		die "debootstrap failed (full log: $SERVICES_DIR/debootstrap.log)"
	fi
	umount_under "$tmp"
	trap - EXIT
	rm -f "$tmp"/var/cache/apt/archives/*.deb # downloaded packages, no longer needed
	[[ -x "$tmp$PG_BIN/postgres" ]] || die "debootstrap finished but $PG_BIN/postgres is missing"
	compgen -G "$tmp/usr/lib/postgresql/17/lib/vector.so" >/dev/null ||
		die "debootstrap finished but pgvector (vector.so) is missing"
	mv -T "$tmp" "$ROOT"
	log "chroot ready in $((SECONDS - started)) s: $ROOT"
}

# ensure_devices gives the chroot the device nodes PostgreSQL uses (debootstrap inside a
# container may leave /dev empty) and a tmpfs /dev/shm for dynamic shared memory.
ensure_devices() {
	local spec name major minor
	for spec in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9; do
		IFS=: read -r name major minor <<<"$spec"
		if [[ ! -c "$ROOT/dev/$name" ]]; then
			rm -f "$ROOT/dev/$name"
			mknod -m 666 "$ROOT/dev/$name" c "$major" "$minor" ||
				die "cannot create $ROOT/dev/$name (mknod)"
		fi
	done
	mkdir -p "$ROOT/dev/shm"
	if ! mountpoint -q "$ROOT/dev/shm"; then
		mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$ROOT/dev/shm"
	fi
}

ensure_mounts() {
	mkdir -p "$ROOT/proc"
	if ! mountpoint -q "$ROOT/proc"; then
		mount -t proc proc "$ROOT/proc"
	fi
	ensure_devices
}

release_mounts() {
	local m
	for m in "$ROOT/dev/shm" "$ROOT/proc"; do
		if mountpoint -q "$m"; then
			umount "$m" 2>/dev/null || umount -l "$m" || log "could not unmount $m"
		fi
	done
}

# in_root PATH prints where the chroot's absolute PATH lives on the host, and dies if a symlink
# in the chroot (like its /var/run -> /run) would lead it out onto the host's own files.
in_root() {
	local real root
	root="$(realpath "$ROOT")"
	real="$(cd "$root" && realpath -m "$root$1")"
	case "$real" in
	"$root" | "$root"/*) echo "$real" ;;
	*) die "$1 in the chroot resolves to $real, outside $root" ;;
	esac
}

pg_ids() { # prints "UID:GID" of the chroot's postgres user
	local ids
	ids="$(awk -F: '$1 == "postgres" { print $3 ":" $4; exit }' "$ROOT/etc/passwd")"
	[[ -n "$ids" ]] || die "no postgres user in $ROOT/etc/passwd"
	echo "$ids"
}

# as_postgres CMD... runs CMD in the chroot as its postgres user with a clean environment.
as_postgres() {
	chroot --userspec="$(pg_ids)" "$ROOT" /usr/bin/env -i \
		PATH="$PG_BIN:/usr/bin:/bin" HOME=/var/lib/postgresql LC_ALL=C.UTF-8 PGTZ=UTC \
		"$@" 9>&-
}

# chroot_psql DB [psql args...] runs the chroot's psql over TCP loopback as postgres.
chroot_psql() {
	local db="$1"
	shift
	as_postgres psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres -d "$db" "$@"
}

# is_our_postgres PID succeeds when PID is a live (not zombie) postgres process of this chroot.
is_our_postgres() {
	local pid="$1"
	[[ "$pid" =~ ^[0-9]+$ && -d "/proc/$pid" ]] || return 1
	[[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == postgres ]] || return 1
	# A zombie's root link cannot be read, so a killed, unreaped postmaster does not count.
	[[ "$(readlink "/proc/$pid/root" 2>/dev/null)" == "$(realpath "$ROOT")" ]]
}

# postmaster_pid prints the PID of our running postmaster, or fails.
postmaster_pid() {
	local pid
	pid="$(head -n 1 "$ROOT$PGDATA/postmaster.pid" 2>/dev/null)" || return 1
	is_our_postgres "$pid" || return 1
	echo "$pid"
}

# remove_stale_locks removes the lock files a killed postmaster leaves behind. PostgreSQL clears
# them itself when their PID is gone, but not while that PID is an unreaped zombie (a container
# whose PID 1 does not reap) or has been reused by another process.
remove_stale_locks() {
	local f pid
	for f in "$(in_root "$PGDATA/postmaster.pid")" "$(in_root "$SOCKET_DIR/.s.PGSQL.$PORT.lock")"; do
		[[ -f "$f" ]] || continue
		pid="$(head -n 1 "$f" 2>/dev/null || true)"
		if ! is_our_postgres "$pid"; then
			log "removing stale $f (PID $pid is not a running postmaster)"
			rm -f "$f"
			[[ "$f" == *.lock ]] && rm -f "${f%.lock}"
		fi
	done
}

postmaster_port() { # the port the running postmaster listens on (line 4 of postmaster.pid)
	sed -n 4p "$ROOT$PGDATA/postmaster.pid" 2>/dev/null
}

# init_cluster makes the cluster once. Like the root, it is built in a .partial directory and
# renamed when complete (initdb, then the include of paperpipe.conf): initdb writes PG_VERSION
# first, so a first `up` interrupted during initdb left a cluster that looked made and could
# never start, or started without paperpipe.conf on PostgreSQL's default port.
init_cluster() {
	local ids d dirs=() data="$ROOT$PGDATA" partial="$PGDATA.partial"
	ids="$(pg_ids)"
	for d in "$(dirname "$PGDATA")" "$SOCKET_DIR" "$(dirname "$LOG_FILE")"; do
		dirs+=("$(in_root "$d")")
	done
	mkdir -p "${dirs[@]}"
	chown "$ids" "${dirs[@]}"
	if [[ -f "$data/PG_VERSION" ]] && grep -qxF "include 'paperpipe.conf'" "$data/postgresql.conf" 2>/dev/null; then
		chmod 700 "$data"
		return 0
	fi
	if [[ -e "$data" ]] && [[ -n "$(ls -A "$data" 2>/dev/null)" ]]; then
		# Made by an earlier version of this script before it built in .partial, interrupted:
		# no database was ever created in it. Kept aside, not deleted.
		local aside
		aside="$data.unfinished-$(date +%Y%m%dT%H%M%S)"
		log "$data holds a cluster whose initdb did not finish; moving it to $aside"
		mv -T "$data" "$aside"
	fi
	rm -rf "$ROOT$partial"
	mkdir -p "$ROOT$partial"
	chown "$ids" "$ROOT$partial"
	chmod 700 "$ROOT$partial"
	log "initializing the cluster in $data"
	as_postgres initdb -D "$partial" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
		>>"$SERVICES_DIR/initdb.log" 2>&1 ||
		die "initdb failed (log: $SERVICES_DIR/initdb.log)"
	echo "include 'paperpipe.conf'" >>"$ROOT$partial/postgresql.conf"
	rm -rf "$data" # an empty directory, if any
	mv -T "$ROOT$partial" "$data"
}

# memory_settings sizes PostgreSQL's memory from the machine's: shared_buffers a quarter of RAM
# (128MB to 8GB), so that the HNSW index of a million 768-dimensional vectors (about 4 GB)
# stays in PostgreSQL's own cache on a 24 GiB box; effective_cache_size three quarters.
memory_settings() {
	local kb mb
	kb="$(awk '/^MemTotal:/ {print $2}' /proc/meminfo 2>/dev/null || true)"
	mb=$(( ${kb:-4194304} / 1024 ))
	local shared=$(( mb / 4 )) cache=$(( mb * 3 / 4 ))
	(( shared < 128 )) && shared=128
	(( shared > 8192 )) && shared=8192
	echo "shared_buffers = ${shared}MB"
	echo "effective_cache_size = ${cache}MB"
}

# write_config (re)writes the settings paperpipe owns; postgresql.conf includes this file last.
# Memory settings take effect at the next start (`deploy/services.sh restart`).
write_config() {
	cat >"$ROOT$PGDATA/paperpipe.conf" <<EOF
# Written by deploy/services.sh on every start; edit the script, not this file.
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$SOCKET_DIR'
max_connections = 200

# Sized from this machine's memory (see memory_settings in the script).
$(memory_settings)
work_mem = 16MB
maintenance_work_mem = 1GB
max_parallel_maintenance_workers = 2
max_parallel_workers_per_gather = 2
random_page_cost = 1.1
dynamic_shared_memory_type = posix

# Durable (benchmarks measure real commits); no replication, so minimal WAL.
fsync = on
synchronous_commit = on
wal_level = minimal
max_wal_senders = 0
max_wal_size = 4GB
checkpoint_timeout = 15min

# Logs go to $LOG_FILE (pg_ctl -l); $SERVICES_DIR/postgresql.log links to it.
log_line_prefix = '%m [%p] %q%u@%d '
log_min_messages = warning
log_checkpoints = off
timezone = 'UTC'
EOF
	cat >"$ROOT$PGDATA/pg_hba.conf" <<'EOF'
# Written by deploy/services.sh: a local dev database, trusted on loopback only.
# TYPE  DATABASE  USER  ADDRESS        METHOD
local   all       all                  trust
host    all       all   127.0.0.1/32   trust
host    all       all   ::1/128        trust
EOF
	chown "$(pg_ids)" "$ROOT$PGDATA/paperpipe.conf" "$ROOT$PGDATA/pg_hba.conf"
}

rotate_log() { # keep the log file from growing without bound across many starts
	local f="$ROOT$LOG_FILE"
	if [[ -f "$f" ]] && (($(stat -c %s "$f") > 100 * 1024 * 1024)); then
		mv -f "$f" "$f.1"
	fi
	ln -sfn "trixie-root$LOG_FILE" "$SERVICES_DIR/postgresql.log"
}

# port_holder prints " (NAME, pid PID)" of the program listening on $PORT when ss can tell.
port_holder() {
	ss -Hltnp "sport = :$PORT" 2>/dev/null |
		sed -nE '1s/.*users:\(\("([^"]*)",pid=([0-9]+).*/ (\1, pid \2)/p' || true
}

start_postgres() {
	local ids attempt sockdir from
	ids="$(pg_ids)"
	sockdir="$(in_root "$SOCKET_DIR")"
	mkdir -p "$sockdir"
	chown "$ids" "$sockdir"
	rotate_log
	for attempt in 1 2 3; do
		remove_stale_locks
		log "starting PostgreSQL 17 on 127.0.0.1:$PORT"
		from=$(($(stat -c %s "$ROOT$LOG_FILE" 2>/dev/null || echo 0) + 1)) # this attempt's log lines
		if as_postgres pg_ctl start -D "$PGDATA" -l "$LOG_FILE" -w -t 120 -s >&2; then
			return 0
		fi
		# pg_ctl gave up waiting, but the postmaster it started runs on (a crash recovery that
		# replays much WAL): another start would be refused; wait_ready waits for it.
		if postmaster_pid >/dev/null; then
			log "PostgreSQL runs but is not ready yet (recovering?); waiting for it"
			return 0
		fi
		# Another program holds the port: no retry frees it, and PostgreSQL's own hint ("Is
		# another postmaster already running ...? If not, wait a few seconds and retry") misleads.
		if tail -c +"$from" "$ROOT$LOG_FILE" 2>/dev/null | grep -q 'could not bind .*Address already in use'; then
			die "port $PORT on 127.0.0.1 is taken by another program$(port_holder): stop it, or set PAPERPIPE_PG_PORT to a free port (and use the DATABASE_URL that up prints)"
		fi
		# After a kill -9 of the postmaster its backends may still hold the old shared memory
		# for a moment; PostgreSQL then refuses to start. Give them time to go.
		log "start attempt $attempt failed; last lines of $SERVICES_DIR/postgresql.log:"
		tail -n 5 "$ROOT$LOG_FILE" >&2 || true
		sleep $((attempt * 2))
	done
	die "PostgreSQL did not start (log: $SERVICES_DIR/postgresql.log)"
}

# wait_ready waits until the server accepts connections (a running postmaster may still be in
# crash recovery after one of its backends was killed).
wait_ready() {
	local i
	for ((i = 0; i < 1200; i++)); do # 10 minutes or more: a crash recovery after a big load
		as_postgres pg_isready -q -h 127.0.0.1 -p "$PORT" -t 5 && return 0
		postmaster_pid >/dev/null || die "PostgreSQL exited while starting (log: $SERVICES_DIR/postgresql.log)"
		((i == 0)) && log "waiting for PostgreSQL to accept connections"
		sleep 0.5
	done
	die "PostgreSQL runs but does not accept connections (log: $SERVICES_DIR/postgresql.log)"
}

# provision creates role paperpipe and both databases with the vector extension, idempotently,
# in one psql run, and prints the pgvector version of the last database.
provision() {
	local db script
	script="SELECT 'CREATE ROLE $ROLE LOGIN SUPERUSER'
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$ROLE') \\gexec
SELECT 'CREATE DATABASE ' || d || ' OWNER $ROLE'
  FROM unnest(ARRAY['${DATABASES[0]}', '${DATABASES[1]}']) AS d
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = d) \\gexec
"
	for db in "${DATABASES[@]}"; do
		script+="\\connect $db
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS vector;
"
	done
	script+="SELECT extversion FROM pg_extension WHERE extname = 'vector';"
	chroot_psql postgres -At <<<"$script"
}

chroot_up() {
	local pid version started=$SECONDS
	mkdir -p "$SERVICES_DIR"
	[[ -x "$ROOT$PG_BIN/postgres" ]] || build_root
	ensure_mounts
	if pid="$(postmaster_pid)" && [[ "$(postmaster_port)" != "$PORT" ]]; then
		# Restarting it would cut off whoever uses it on its port (another checkout, a test run).
		die "PostgreSQL already runs from $ROOT on port $(postmaster_port), not $PORT (PAPERPIPE_PG_PORT); use that port, or move it: deploy/services.sh down, then up with the new port (or PAPERPIPE_SERVICES_DIR for a second server)"
	fi
	if ! postmaster_pid >/dev/null; then
		init_cluster
		write_config
		start_postgres
	fi
	wait_ready
	version="$(provision)"
	[[ -n "$version" ]] || die "extension vector is missing from ${DATABASES[1]}"
	log "PostgreSQL 17 + pgvector $version up on 127.0.0.1:$PORT ($((SECONDS - started)) s; log: $SERVICES_DIR/postgresql.log)"
}

chroot_down() {
	if [[ ! -x "$ROOT$PG_BIN/pg_ctl" ]]; then
		log "nothing to stop: no chroot at $ROOT"
		return 0
	fi
	if postmaster_pid >/dev/null; then
		log "stopping PostgreSQL (fast shutdown; data kept in $ROOT$PGDATA)"
		as_postgres pg_ctl stop -D "$PGDATA" -m fast -w -t 120 -s >&2 ||
			die "pg_ctl stop failed (log: $SERVICES_DIR/postgresql.log)"
	else
		log "PostgreSQL is not running"
	fi
	release_mounts
}

chroot_status() {
	local pid
	if pid="$(postmaster_pid)" && [[ "$(postmaster_port)" != "$PORT" ]]; then
		log "up on 127.0.0.1:$(postmaster_port), not on PAPERPIPE_PG_PORT $PORT: \`url\` would name a port nothing serves"
		return 3
	fi
	if pid="$(postmaster_pid)" &&
		as_postgres pg_isready -q -h 127.0.0.1 -p "$(postmaster_port)" -t 5; then
		log "up: PostgreSQL 17 (pid $pid) on 127.0.0.1:$(postmaster_port), data in $ROOT$PGDATA"
		return 0
	fi
	log "down (chroot back end, $ROOT)"
	return 3
}

# ---------------------------------------------------------------------------------------------
# Docker back end

compose() {
	if docker compose version >/dev/null 2>&1; then
		PAPERPIPE_PG_PORT="$PORT" docker compose -f "$COMPOSE_FILE" "$@"
	else
		PAPERPIPE_PG_PORT="$PORT" docker-compose -f "$COMPOSE_FILE" "$@"
	fi
}

docker_psql() { # docker_psql DB [psql args...]
	local db="$1"
	shift
	compose exec -T postgres psql -X -q -v ON_ERROR_STOP=1 -U "$ROLE" -d "$db" "$@"
}

docker_up() {
	log "starting postgres with Docker Compose ($COMPOSE_FILE)"
	compose up -d --wait postgres >&2
	docker_psql postgres >&2 <<EOF
SELECT 'CREATE DATABASE ' || d || ' OWNER $ROLE'
  FROM unnest(ARRAY['${DATABASES[0]}', '${DATABASES[1]}']) AS d
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = d) \gexec
EOF
	local db
	for db in "${DATABASES[@]}"; do
		docker_psql "$db" -c 'SET client_min_messages = warning' \
			-c 'CREATE EXTENSION IF NOT EXISTS vector' >&2
	done
	log "PostgreSQL + pgvector $(docker_psql "${DATABASES[1]}" -At -c "SELECT extversion FROM pg_extension WHERE extname = 'vector'") up on 127.0.0.1:$PORT"
}

docker_down() {
	log "stopping postgres (Docker Compose; the volume keeps the data)"
	compose stop postgres >&2
}

docker_status() {
	if [[ -n "$(compose ps -q --status running postgres 2>/dev/null)" ]] &&
		compose exec -T postgres pg_isready -q -U "$ROLE" >/dev/null 2>&1; then
		log "up: postgres container (Docker Compose) on 127.0.0.1:$PORT"
		return 0
	fi
	log "down (docker back end)"
	return 3
}

# ---------------------------------------------------------------------------------------------

lock() { # serialize up/down/restart between concurrent callers (make test in parallel, ...)
	local lockdir="$SERVICES_DIR"
	if [[ "$1" == docker ]]; then
		lockdir="${TMPDIR:-/tmp}"
	fi
	mkdir -p "$lockdir"
	exec 9>"$lockdir/.paperpipe-services.lock"
	if ! flock -n 9; then
		log "waiting for another services.sh to finish"
		flock -w 900 9 || die "timed out waiting for the lock $lockdir/.paperpipe-services.lock"
	fi
}

main() {
	[[ "$PORT" =~ ^[0-9]+$ ]] || die "PAPERPIPE_PG_PORT must be a port number, not '$PORT'"
	local cmd="${1:-}" backend
	[[ $# -gt 0 ]] && shift
	case "$cmd" in
	url)
		case "${1:-}" in
		"") database_url "${DATABASES[0]}" ;;
		test) database_url "${DATABASES[1]}" ;;
		*) usage ;;
		esac
		return 0
		;;
	up | down | restart | status | psql) ;;
	-h | --help | help) usage ;;
	*) usage ;;
	esac
	if [[ "$cmd" == status ]]; then
		backend="$(pick_backend)" || exit 3
	else
		backend="$(pick_backend)"
	fi
	case "$cmd" in
	up)
		lock "$backend"
		"${backend}_up"
		echo "DATABASE_URL=$(database_url "${DATABASES[0]}")"
		;;
	down)
		lock "$backend"
		"${backend}_down"
		;;
	restart)
		lock "$backend"
		"${backend}_down"
		"${backend}_up"
		echo "DATABASE_URL=$(database_url "${DATABASES[0]}")"
		;;
	status)
		"${backend}_status"
		;;
	psql)
		local db="${DATABASES[0]}"
		if [[ "${1:-}" == test ]]; then
			db="${DATABASES[1]}"
			shift
		fi
		if [[ "$backend" == docker ]]; then
			local tty=(-T)
			[[ -t 0 ]] && tty=()
			compose exec "${tty[@]}" postgres psql -U "$ROLE" -d "$db" "$@"
		else
			[[ -x "$ROOT$PG_BIN/psql" ]] || die "no chroot at $ROOT yet: run '$0 up' first"
			chroot --userspec="$(pg_ids)" "$ROOT" /usr/bin/env -i \
				PATH="$PG_BIN:/usr/bin:/bin" HOME=/tmp LC_ALL=C.UTF-8 TERM="${TERM:-dumb}" \
				psql -X -h 127.0.0.1 -p "$PORT" -U "$ROLE" -d "$db" "$@"
		fi
		;;
	esac
}

main "$@"

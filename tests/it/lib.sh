# Shared by the shell tests in tests/it: sourced, never run on its own (it is
# not executable, so tests/run does not take it for a test).
#
#   it_setup NAME [VEILD-ARGS...]  temp dir $T, free ports $CP/$HP, $URL, the
#                                  extra flags veild starts with; cleans up on exit
#                                  (KEEP=1 keeps $T for a look)
#   start / stop                   veild on those ports, stopped by its PID
#   ${IT_STORE_ARGS[@]}            --store URL of veild's database under VEIL_IT_PG
#   check NAME COMMAND...          prints PASS/FAIL NAME, counts $fails
#   it_sql QUERY                   runs QUERY on veild's store (SQLite or PostgreSQL)
#   it_sqlite_only REASON          under VEIL_IT_PG, prints SKIP and exits 0
#
# VEIL_IT_PG=postgresql://USER:PW@HOST:PORT (tests/run-pg sets it): the first
# start of a test creates a fresh database there (USER needs CREATEDB) and
# veild keeps its store in it; the exit trap drops it.
BIN=${VEIL_BIN:-$PWD/build}
# Every profile a test makes is encrypted under this passphrase at the cheapest
# KDF level: the encrypted path is what every test runs, without paying
# Argon2id's full cost on each of the hundreds of veil commands.
IT_PASSPHRASE_FILE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/passphrase.txt
export VEIL_PASSPHRASE_FILE=$IT_PASSPHRASE_FILE VEIL_KDF=min
fails=0
pid=
IT_DB=

# A free port below the ephemeral range (32768 and up), where TIME_WAIT sockets
# of earlier connections cannot collide with the listener.
port() {
	python3 -c '
import random, socket
for _ in range(1000):
    p = random.randint(20000, 32000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); print(p); break
    except OSError:
        pass
    finally:
        s.close()'
}

it_setup() {
	T=$(mktemp -d "/tmp/veil-$1.XXXXXX")
	shift
	VEILD_EXTRA=("$@")
	CP=$(port)
	HP=$(port)
	URL=http://127.0.0.1:$HP
	it_pg_args # IT_STORE_ARGS: --store URL under VEIL_IT_PG (for veilctl), else empty
	trap 'stop 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
}

# Under VEIL_IT_PG: a database of this test's own, created once, as --store.
it_pg_args() {
	IT_STORE_ARGS=()
	[ -n "${VEIL_IT_PG:-}" ] || return 0
	local a
	for a in "${VEILD_EXTRA[@]}"; do [ "$a" = --store ] && return 0; done
	if [ -z "$IT_DB" ]; then
		IT_DB=veil_it_$$_$RANDOM
		psql -qAt -v ON_ERROR_STOP=1 -d "$VEIL_IT_PG/postgres" -c "CREATE DATABASE $IT_DB" \
			>/dev/null || { echo "cannot create database $IT_DB"; exit 1; }
	fi
	IT_STORE_ARGS=(--store "$VEIL_IT_PG/$IT_DB")
}
# A test that sets an EXIT trap of its own still drops its database.
trap() {
	if [ $# -ge 2 ] && [ "${!#}" = EXIT ]; then builtin trap "$1; it_pg_drop" EXIT; else builtin trap "$@"; fi
}
it_pg_drop() {
	[ -n "$IT_DB" ] || return 0
	psql -qAt -d "$VEIL_IT_PG/postgres" -c "DROP DATABASE IF EXISTS $IT_DB WITH (FORCE)" \
		>/dev/null 2>&1
	IT_DB=
}
# Runs one SQL query on the store of this test's veild (SQLite or PostgreSQL).
it_sql() {
	if [ -n "$IT_DB" ]; then psql -qAt -d "$VEIL_IT_PG/$IT_DB" -c "$1"; else sqlite3 "$T/srv/veil.db" "$1"; fi
}
# Prints the mediator's store as text to search: under PostgreSQL the data of
# the md_* tables (bytea as hex, text as is); on SQLite the hex of mediator.db's
# files, so a text ID is found as its hex and a binary key as its hex.
it_md_store_text() {
	if [ -n "$IT_DB" ]; then
		pg_dump -a -t 'md_*' "$VEIL_IT_PG/$IT_DB"
	else
		cat "$T/srv/mediator.db"* | xxd -p | tr -d '\n'
	fi
}
it_sqlite_only() { # reason
	[ -n "${VEIL_IT_PG:-}" ] || return 0
	echo "SKIP $(basename "$0"): SQLite only ($1)"
	exit 0
}

start() {
	# VEIL_IT_CHAT_THREADS=N: the whole suite with N chat loops (default: one per CPU).
	it_pg_args
	"$BIN/veild" --data "$T/srv" --chat-port "$CP" --http-port "$HP" "${IT_STORE_ARGS[@]}" \
		${VEIL_IT_CHAT_THREADS:+--chat-threads "$VEIL_IT_CHAT_THREADS"} "${VEILD_EXTRA[@]}" \
		>>"$T/veild.log" 2>&1 &
	pid=$!
	for _ in $(seq 100); do
		curl -sf "$URL/.well-known/veil/provisioning" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "veild did not start"; cat "$T/veild.log"; exit 1
}

stop() { [ -n "$pid" ] && kill "$pid" && wait "$pid"; pid=; }

check() { # name, command...
	local name=$1; shift
	if "$@"; then echo "PASS $name"; else echo "FAIL $name"; fails=$((fails + 1)); fi
}

# --- PostgreSQL for a test (root and Debian's postgresql) ---
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
# Prints a SKIP line and ends the test (passing) without root or PostgreSQL.
pg_need() { # test name
	if [ "$(id -u)" != 0 ] || [ ! -x "$PGBIN/initdb" ] || ! id postgres >/dev/null 2>&1; then
		echo "SKIP $1: needs root and PostgreSQL in $PGBIN (apt-get install postgresql)"
		exit 0
	fi
}
# Starts PostgreSQL as its own user in a new temp dir on a loopback port and
# makes a role and database veil: sets PGT, PGPORT, PGPID and DB (the URL).
# The test's cleanup calls pg_stop and removes $PGT.
pg_start() {
	PGT=$(mktemp -d /tmp/veil-pg.XXXXXX)
	PGPORT=$(port)
	chown postgres "$PGT"
	chmod 700 "$PGT"
	runuser -u postgres -- "$PGBIN/initdb" -D "$PGT/data" -U postgres --auth-local=trust \
		--auth-host=scram-sha-256 >"$PGT/initdb.log" 2>&1 ||
		{ echo "initdb failed"; cat "$PGT/initdb.log"; return 1; }
	runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGT/data" -l "$PGT/log" -w -t 60 \
		-o "-p $PGPORT -k $PGT -c listen_addresses=127.0.0.1" start >/dev/null ||
		{ echo "PostgreSQL did not start"; cat "$PGT/log"; return 1; }
	PGPID=$(head -1 "$PGT/data/postmaster.pid")
	local pw
	pw=pw-$(python3 -c 'import secrets; print(secrets.token_hex(8))')
	psql_su -c "CREATE ROLE veil LOGIN PASSWORD '$pw'" &&
		psql_su -c "CREATE DATABASE veil OWNER veil" ||
		{ echo "cannot create the database"; return 1; }
	DB=postgresql://veil:$pw@127.0.0.1:$PGPORT/veil
}
pg_stop() {
	[ -n "${PGPID:-}" ] || return 0
	kill -INT "$PGPID" 2>/dev/null
	for _ in $(seq 300); do kill -0 "$PGPID" 2>/dev/null || break; sleep 0.1; done
	PGPID=
}
# A second node's data directory with the first node's key files (same server keys).
node_b_dir() {
	mkdir -p "$T/srvb"
	chmod 700 "$T/srvb"
	cp -p "$T/srv/chat.key" "$T/srv/directory.key" "$T/srv/sign.key" "$T/srvb/"
}
psql_su() { runuser -u postgres -- "$PGBIN/psql" -h "$PGT" -p "$PGPORT" -qAt -v ON_ERROR_STOP=1 "$@"; }

# The browser tests need Debian's chromium and the built web client; each says
# which is missing as a failure of its own.
web_require() {
	if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
		echo "FAIL chromium_missing (install Debian's chromium: scripts/install-deps)"
		exit 1
	fi
	if [ ! -f "$BIN/web/index.html" ] || [ ! -d web/node_modules/puppeteer-core ]; then
		echo "FAIL web_not_built (node and npm are needed: make builds web/)"
		exit 1
	fi
}

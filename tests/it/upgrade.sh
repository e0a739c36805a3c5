#!/bin/bash
# Upgrades: this veild on stores that veild made before invite codes (the
# fixtures in tests/it/fixtures/, written by veild of commit f682592 and
# dumped: SQLite at schema 2, PostgreSQL at schema 3). Each holds three
# identities and four queued messages (three for the second identity, one
# for the third). veild must migrate the schema at start (and say so),
# keep every identity (the directory serves the same public keys) and
# every queued message, and the new part must work: an invite code made
# with veilctl lets a new user join, who then writes to an old identity.
# A store newer than veild is refused. The PostgreSQL half needs root and
# PostgreSQL 15 (as tests/it/pg.sh) and is left out without them.
set -u
. "$(dirname "$0")/lib.sh"
it_sqlite_only "opens stores of older versions from fixtures; its PostgreSQL half starts its own server"
it_setup upgrade --signup invite
FX=$(cd "$(dirname "$0")" && pwd)/fixtures

# The identities and queue of a fixture, from its INSERT/COPY lines.
ids_sqlite=$(sed -nE "s/^INSERT INTO identities VALUES\('([0-9A-Z]{8})',X'([0-9a-f]{64})'.*/\1 \2/p" \
	"$FX/store-sqlite-v2.sql")
ids_pg=$(awk '/^COPY public.identities/ { on = 1; next } on && /^\\\./ { on = 0 } on { sub(/^\\\\x/, "", $2); print $1, $2 }' \
	"$FX/store-pg-v3.sql")

# Every identity of the list is served with its public key (base64 in the answer).
ids_served() { # "ID HEX" lines
	local id hex b64
	[ "$(echo "$1" | wc -l)" = 3 ] || return 1
	while read -r id hex; do
		b64=$(python3 -c "import base64, sys; print(base64.b64encode(bytes.fromhex(sys.argv[1])).decode())" "$hex")
		curl -sf "$URL/directory/identity/$id" | grep -qF "\"publicKey\":\"$b64\"" || return 1
	done <<<"$1"
}

# Joins with an invite and writes to the old identity $1; prints nothing on success.
new_user_writes_to() {
	local code
	code=$("$BIN/veilctl" --data "$T/srv" invite create 2>/dev/null) || return 1
	VEIL_HOME=$T/new-$1 "$BIN/veil" init --server "$URL" --invite "$code" >/dev/null || return 1
	VEIL_HOME=$T/new-$1 "$BIN/veil" send "$1" "after the upgrade" >/dev/null
}

refuses_newer() { # name, store flags...
	local name=$1; shift
	timeout 20 "$BIN/veild" --data "$T/srv" --chat-port "$CP" --http-port "$HP" "$@" \
		>"$T/$name.out" 2>"$T/$name.err"
	local rc=$?
	if [ $rc = 1 ] && grep -q 'schema version 99 is newer than this veild knows' "$T/$name.err"; then
		echo "PASS $name"
	else
		echo "FAIL $name (rc=$rc: $(cat "$T/$name.err"))"
		fails=$((fails + 1))
	fi
}

# --- SQLite
mkdir -m 700 "$T/srv"
sqlite3 "$T/srv/veil.db" <"$FX/store-sqlite-v2.sql"
sq() { sqlite3 "$T/srv/veil.db" "$@"; }
bob=$(sq "SELECT recipient FROM messages GROUP BY recipient HAVING count(*) = 3")
check sqlite_fixture_is_old bash -c "[ \"\$(sqlite3 '$T/srv/veil.db' 'PRAGMA user_version')\" = 2 ] && [ -n '$bob' ]"
start
check sqlite_migrated_logged grep -q 'store: schema upgraded from version 2 to 4' "$T/veild.log"
check sqlite_schema_4 bash -c "[ \"\$(sqlite3 '$T/srv/veil.db' 'PRAGMA user_version')\" = 4 ] &&
	sqlite3 '$T/srv/veil.db' 'SELECT count(*) FROM invites' >/dev/null &&
	sqlite3 '$T/srv/veil.db' 'SELECT count(*) FROM logins' >/dev/null"
check sqlite_identities_kept ids_served "$ids_sqlite"
check sqlite_queue_kept test "$(sq 'SELECT count(*) FROM messages')" = 4
check sqlite_invite_and_write new_user_writes_to "$bob"
check sqlite_new_message_queued test "$(sq "SELECT count(*) FROM messages WHERE recipient = '$bob'")" = 4
stop
# A second start finds nothing to migrate.
start
check sqlite_second_start_quiet test "$(grep -c 'schema upgraded' "$T/veild.log")" = 1
stop
sq 'PRAGMA user_version = 99'
refuses_newer sqlite_refuses_newer

# --- PostgreSQL
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
if [ "$(id -u)" != 0 ] || [ ! -x "$PGBIN/initdb" ] || ! id postgres >/dev/null 2>&1; then
	echo "upgrade.sh: no PostgreSQL (needs root and $PGBIN), its half left out" >&2
	exit $((fails > 0))
fi
PGT=$(mktemp -d /tmp/veil-pgup.XXXXXX)
PGPORT=$(port)
trap 'stop 2>/dev/null; runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGT/data" -m fast stop >/dev/null 2>&1;
	[ -n "${KEEP:-}" ] || rm -rf "$T" "$PGT"' EXIT
chown postgres "$PGT"
chmod 700 "$PGT"
runuser -u postgres -- "$PGBIN/initdb" -D "$PGT/data" -U postgres --auth-local=trust \
	--auth-host=scram-sha-256 >"$PGT/initdb.log" 2>&1 || { echo "FAIL initdb"; exit 1; }
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGT/data" -l "$PGT/log" -w -t 30 \
	-o "-p $PGPORT -k $PGT -c listen_addresses=127.0.0.1" start >/dev/null || { echo "FAIL pg_start"; exit 1; }
PW=pw-$(python3 -c 'import secrets; print(secrets.token_hex(8))')
psql_as() { # role, args...
	local u=$1; shift
	runuser -u postgres -- "$PGBIN/psql" -h "$PGT" -p "$PGPORT" -U "$u" -qAt -v ON_ERROR_STOP=1 "$@"
}
psql_as postgres -c "CREATE ROLE veil LOGIN PASSWORD '$PW'" -c "CREATE DATABASE veil OWNER veil" ||
	{ echo "FAIL pg_setup"; exit 1; }
psql_as veil -d veil -f "$FX/store-pg-v3.sql" >/dev/null || { echo "FAIL pg_restore"; exit 1; }
pq() { psql_as veil -d veil -c "$1"; }
pbob=$(pq "SELECT recipient FROM messages GROUP BY recipient HAVING count(*) = 3")
check pg_fixture_is_old bash -c "[ '$(pq 'SELECT version FROM veil_schema')' = 3 ] && [ -n '$pbob' ]"
stop 2>/dev/null
rm -rf "$T/srv"
: >"$T/veild.log"
VEILD_EXTRA=(--signup invite --store "postgresql://veil:$PW@127.0.0.1:$PGPORT/veil")
start
check pg_migrated_logged grep -q 'store: schema upgraded from version 3 to 6' "$T/veild.log"
check pg_schema_6 bash -c "[ '$(pq 'SELECT version FROM veil_schema')' = 6 ]"
# Schema 5: the mediator's, the Gateway's and the Safe's tables; 6: the blobs' (empty).
check pg_schema_5_6_tables test "$(pq "SELECT count(*) FROM md_groups, gw_accounts, safe_backups, blobs")" = 0
check pg_identities_kept ids_served "$ids_pg"
check pg_queue_kept test "$(pq 'SELECT count(*) FROM messages')" = 4
check pg_invite_and_write new_user_writes_to "$pbob"
check pg_new_message_queued test "$(pq "SELECT count(*) FROM messages WHERE recipient = '$pbob'")" = 4
stop
pq 'UPDATE veil_schema SET version = 99' >/dev/null
refuses_newer pg_refuses_newer --store "postgresql://veil:$PW@127.0.0.1:$PGPORT/veil"
exit $((fails > 0))

#!/bin/bash
# The PostgreSQL store against a real PostgreSQL 15 server started here, in a
# temporary directory, as the postgres user (so it needs root):
#   - the store unit tests (build/tests/test_store) on it;
#   - veild --store URL with the CLI: a round trip, a message kept across a
#     kill -9 of veild, and across a restart of PostgreSQL under veild;
#   - build/tests/it/it_chat entirely on it (VEIL_IT_STORE), whose crash test
#     kills veild -9 mid-stream and finds every acked message.
# Without root or PostgreSQL it prints a SKIP line and passes.
set -u
. "$(dirname "$0")/lib.sh"
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
if [ "$(id -u)" != 0 ] || [ ! -x "$PGBIN/initdb" ] || ! id postgres >/dev/null 2>&1; then
	echo "SKIP pg.sh: needs root and PostgreSQL in $PGBIN (apt-get install postgresql)"
	exit 0
fi

PGT=$(mktemp -d /tmp/veil-pg.XXXXXX)
PGPORT=$(port)
PGPID=
pg_stop() { # stops the server by its PID and waits for it
	[ -n "$PGPID" ] || return 0
	kill -INT "$PGPID" 2>/dev/null
	for _ in $(seq 100); do kill -0 "$PGPID" 2>/dev/null || break; sleep 0.1; done
	PGPID=
}
pg_start() {
	runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGT/data" -l "$PGT/log" -w -t 30 \
		-o "-p $PGPORT -k $PGT -c listen_addresses=127.0.0.1" start >/dev/null ||
		{ echo "PostgreSQL did not start"; cat "$PGT/log"; exit 1; }
	PGPID=$(head -1 "$PGT/data/postmaster.pid")
}
it_setup pg
trap 'stop 2>/dev/null; pg_stop; [ -n "${KEEP:-}" ] || rm -rf "$T" "$PGT"' EXIT
chown postgres "$PGT"
chmod 700 "$PGT"
# Local (socket) connections as postgres are trusted; TCP needs a password.
runuser -u postgres -- "$PGBIN/initdb" -D "$PGT/data" -U postgres --auth-local=trust \
	--auth-host=scram-sha-256 >"$PGT/initdb.log" 2>&1 ||
	{ echo "initdb failed"; cat "$PGT/initdb.log"; exit 1; }
pg_start
PW=pw-$(python3 -c 'import secrets; print(secrets.token_hex(8))')
psql_su() { runuser -u postgres -- "$PGBIN/psql" -h "$PGT" -p "$PGPORT" -qAt -v ON_ERROR_STOP=1 "$@"; }
psql_su -c "CREATE ROLE veil LOGIN PASSWORD '$PW'" &&
	for db in veil veil_unit veil_it; do psql_su -c "CREATE DATABASE $db OWNER veil"; done ||
	{ echo "cannot create the databases"; exit 1; }
DB=postgresql://veil:$PW@127.0.0.1:$PGPORT

# (a) The store unit tests, each reported as pg:NAME.
VEIL_TEST_STORE=$DB/veil_unit "$BIN/tests/test_store" >"$T/unit.out" 2>"$T/unit.err"
urc=$?
sed -E 's/^(PASS|FAIL) /\1 pg:/' "$T/unit.out"
grep -q '^FAIL' "$T/unit.out" && { fails=$((fails + 1)); tail -n 20 "$T/unit.err"; }
[ $urc -ne 0 ] && ! grep -q '^FAIL' "$T/unit.out" && { echo "FAIL pg:test_store (exit $urc)"; fails=$((fails + 1)); }

# (b) veild on PostgreSQL with the CLI.
VEILD_EXTRA=(--store "$DB/veil")
start
va() { VEIL_HOME=$T/a "$BIN/veil" "$@"; }
vb() { VEIL_HOME=$T/b "$BIN/veil" "$@"; }
KEY=$(curl -sf "$URL/.well-known/veil/provisioning" | head -1 | python3 -c 'import sys,json,base64; print(base64.b64decode(json.load(sys.stdin)["chat"]["publicKey"]).hex())')
A=$(va init --server "$URL" --server-key "$KEY" --nickname Alice)
B=$(vb init --server "$URL" --nickname Bob)
check pg_identities_in_postgres bash -c "[ \$(PGPASSWORD='$PW' psql '$DB/veil' -qAt -c 'SELECT count(*) FROM identities') = 2 ]"
va send "$B" "hello over postgres" >/dev/null
vb recv >"$T/b1"
check pg_round_trip grep -q "$A: hello over postgres" "$T/b1"
vb send "$A" "and back" >/dev/null
va recv >"$T/a1"
check pg_round_trip_back grep -q "$B: and back" "$T/a1"

# A message queued before a kill -9 of veild is there after the restart; the
# database holds it sealed (no plaintext in any row).
va send "$B" "kept across a crash" >/dev/null
check pg_no_plaintext_in_db bash -c "[ \$(PGPASSWORD='$PW' psql '$DB/veil' -qAt -c \"SELECT count(*) FROM messages WHERE position(convert_to('kept across', 'UTF8') in data) > 0\") = 0 ]"
kill -9 "$pid"
wait "$pid" 2>/dev/null
pid=
start
vb recv >"$T/b2"
check pg_kept_across_kill9 grep -q "kept across a crash" "$T/b2"

# PostgreSQL restarts under a running veild: it reconnects, nothing is lost.
pg_stop
pg_start
sent=0
for _ in 1 2 3 4 5; do
	va send "$B" "after the database came back" >/dev/null 2>&1 && { sent=1; break; }
	sleep 1
done
check pg_send_after_db_restart [ $sent = 1 ]
vb recv >"$T/b3"
check pg_recv_after_db_restart grep -q "after the database came back" "$T/b3"
check pg_loss_logged_once_per_connection bash -c "[ \$(grep -c 'PostgreSQL connection (queue) was lost' '$T/veild.log') -le 1 ] && grep -q 'PostgreSQL connection (.*) is back' '$T/veild.log'"
stop
check pg_password_never_shown bash -c "! grep -q -- '$PW' '$T/veild.log'"

# (c) The chat integration test on PostgreSQL, its crash test included.
VEIL_IT_STORE=$DB/veil_it timeout 600 "$BIN/tests/it/it_chat" >"$T/it.out" 2>"$T/it.err"
irc=$?
sed -E 's/^(PASS|FAIL) /\1 pg:/' "$T/it.out"
grep -q '^FAIL' "$T/it.out" && { fails=$((fails + 1)); tail -n 20 "$T/it.err"; }
[ $irc -ne 0 ] && ! grep -q '^FAIL' "$T/it.out" && { echo "FAIL pg:it_chat (exit $irc)"; fails=$((fails + 1)); }
grep 'crash test' "$T/it.err" >&2

exit $fails

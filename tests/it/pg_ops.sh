#!/bin/bash
# veilctl on a veild whose store is PostgreSQL (started here, as in pg.sh):
# list, show, block, queue, status and delete through the admin socket of
# the running veild, then the same answers from the stopped server's data
# directory and --store URL; /metrics and /readyz report the PostgreSQL
# store. Without root or PostgreSQL it prints a SKIP line and passes.
set -u
. "$(dirname "$0")/lib.sh"
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
if [ "$(id -u)" != 0 ] || [ ! -x "$PGBIN/initdb" ] || ! id postgres >/dev/null 2>&1; then
	echo "SKIP pg_ops.sh: needs root and PostgreSQL in $PGBIN (apt-get install postgresql)"
	exit 0
fi
PGT=$(mktemp -d /tmp/veil-pgops.XXXXXX)
PGPORT=$(port)
PGPID=
pg_stop() {
	[ -n "$PGPID" ] || return 0
	kill -INT "$PGPID" 2>/dev/null
	for _ in $(seq 100); do kill -0 "$PGPID" 2>/dev/null || break; sleep 0.1; done
	PGPID=
}
AP=$(port)
it_setup pg_ops
trap 'stop 2>/dev/null; pg_stop; [ -n "${KEEP:-}" ] || rm -rf "$T" "$PGT"' EXIT
chown postgres "$PGT"
chmod 700 "$PGT"
runuser -u postgres -- "$PGBIN/initdb" -D "$PGT/data" -U postgres --auth-local=trust \
	--auth-host=scram-sha-256 >"$PGT/initdb.log" 2>&1 ||
	{ echo "initdb failed"; cat "$PGT/initdb.log"; exit 1; }
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGT/data" -l "$PGT/log" -w -t 30 \
	-o "-p $PGPORT -k $PGT -c listen_addresses=127.0.0.1" start >/dev/null ||
	{ echo "PostgreSQL did not start"; cat "$PGT/log"; exit 1; }
PGPID=$(head -1 "$PGT/data/postmaster.pid")
PW=pw-$(python3 -c 'import secrets; print(secrets.token_hex(8))')
runuser -u postgres -- "$PGBIN/psql" -h "$PGT" -p "$PGPORT" -qAt -v ON_ERROR_STOP=1 \
	-c "CREATE ROLE veil LOGIN PASSWORD '$PW'" -c "CREATE DATABASE veil OWNER veil" ||
	{ echo "cannot create the database"; exit 1; }
DB=postgresql://veil:$PW@127.0.0.1:$PGPORT/veil
VEILD_EXTRA=(--store "$DB" --admin-listen "$AP")
CTL() { "$BIN/veilctl" --data "$T/srv" "$@"; }
va() { VEIL_HOME=$T/a "$BIN/veil" "$@"; }
vb() { VEIL_HOME=$T/b "$BIN/veil" "$@"; }

start
A=$(va init --server "$URL" --nickname Alice)
B=$(vb init --server "$URL" --nickname Bob)
vb recv >/dev/null # Bob logs in once: his last login
va send "$B" "one" >/dev/null
va send "$B" "two" >/dev/null
check pg_metrics_store_up bash -c "curl -sf http://127.0.0.1:$AP/metrics | grep -qx 'veil_store_up{backend=\"postgresql\"} 1'"
check pg_readyz bash -c "[ \"\$(curl -sf http://127.0.0.1:$AP/readyz)\" = ready ]"
CTL --json list >"$T/list.json"
check pg_list_running python3 -c "
import json
ids = {i['id']: i for i in json.load(open('$T/list.json'))['identities']}
assert ids['$B']['queued'] == 2 and ids['$B']['last_login_ms'] > 0, ids
assert ids['$A']['state'] == 'active', ids
"
CTL queue >"$T/queue"
check pg_queue grep -q "^longest     $B, 2 messages" "$T/queue"
CTL --json status >"$T/status.json"
check pg_status python3 -c "
import json
s = json.load(open('$T/status.json'))
assert s['running'] and s['store']['backend'] == 'postgresql' and s['store']['up'], s
assert '$PW' not in open('$T/status.json').read()
"
check pg_block CTL block "$A"
va send "$B" "blocked" >/dev/null 2>&1
check pg_blocked_cannot_send bash -c "! grep -q blocked <(VEIL_HOME=$T/b $BIN/veil recv 2>/dev/null)"
CTL list >"$T/list_running"
stop

CTL --store "$DB" list >"$T/list_stopped"
check pg_list_same_stopped diff "$T/list_running" "$T/list_stopped"
check pg_unblock_stopped CTL --store "$DB" unblock "$A"
# Bob's receipts wait for Alice: delete her with them.
NQ=$(CTL --store "$DB" --json show "$A" | python3 -c 'import json,sys; print(json.load(sys.stdin)["identity"]["queued"])')
CTL --store "$DB" delete "$A" --yes >"$T/del"
check pg_delete_stopped bash -c "[ $NQ -ge 1 ] && grep -q 'deleted; $NQ queued messages removed' $T/del"
CTL --store "$DB" queue >"$T/queue2"
check pg_queue_empty_after_delete grep -q "^queued      0 messages" "$T/queue2"
CTL --store "$DB" --json show "$A" >"$T/showB.json"
check pg_deleted_state python3 -c "import json; assert json.load(open('$T/showB.json'))['identity']['state'] == 'revoked'"
CTL --store "$DB" status >"$T/status_stopped"
check pg_status_stopped bash -c "grep -q '^veild       not running' $T/status_stopped && grep -q '^store       postgresql postgresql://veil:\\*\\*\\*@' $T/status_stopped"
exit $fails

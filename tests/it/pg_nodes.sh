#!/bin/bash
# Two veild nodes on one PostgreSQL 15 (started here in a temporary directory,
# as the postgres user, like pg.sh): different data directories (the same key
# files) and ports, the same --store.
#   - a message sent on node A to a recipient logged in on node B arrives at
#     once (within a second), without a new login;
#   - a second login on node B closes the first one on node A, with the
#     close-error of a second login on one node;
#   - PostgreSQL restarts under both nodes: the listening connections come
#     back, and delivery across nodes works again without a login;
#   - kill -9 of node A loses no message it acked: node B delivers them all.
# Without root or PostgreSQL it prints a SKIP line and passes.
set -u
. "$(dirname "$0")/lib.sh"
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
if [ "$(id -u)" != 0 ] || [ ! -x "$PGBIN/initdb" ] || ! id postgres >/dev/null 2>&1; then
	echo "SKIP pg_nodes.sh: needs root and PostgreSQL in $PGBIN (apt-get install postgresql)"
	exit 0
fi

PGT=$(mktemp -d /tmp/veil-pgn.XXXXXX)
PGPORT=$(port)
PGPID=
pg_stop() {
	[ -n "$PGPID" ] || return 0
	kill -INT "$PGPID" 2>/dev/null
	for _ in $(seq 100); do kill -0 "$PGPID" 2>/dev/null || break; sleep 0.1; done
	PGPID=
}
it_setup pg_nodes
pidb=
bgpids=()
cleanup() {
	for p in "${bgpids[@]}"; do kill "$p" 2>/dev/null; done
	[ -n "$pidb" ] && kill "$pidb" 2>/dev/null && wait "$pidb" 2>/dev/null
	stop 2>/dev/null
	pg_stop
	[ -n "${KEEP:-}" ] || rm -rf "$T" "$PGT"
}
trap cleanup EXIT
chown postgres "$PGT"
chmod 700 "$PGT"
runuser -u postgres -- "$PGBIN/initdb" -D "$PGT/data" -U postgres --auth-local=trust \
	--auth-host=scram-sha-256 >"$PGT/initdb.log" 2>&1 ||
	{ echo "initdb failed"; cat "$PGT/initdb.log"; exit 1; }
pg_start() {
	runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGT/data" -l "$PGT/log" -w -t 30 \
		-o "-p $PGPORT -k $PGT -c listen_addresses=127.0.0.1" start >/dev/null ||
		{ echo "PostgreSQL did not start"; cat "$PGT/log"; exit 1; }
	PGPID=$(head -1 "$PGT/data/postmaster.pid")
}
pg_start
PW=pw-$(python3 -c 'import secrets; print(secrets.token_hex(8))')
psql_su() { runuser -u postgres -- "$PGBIN/psql" -h "$PGT" -p "$PGPORT" -qAt -v ON_ERROR_STOP=1 "$@"; }
psql_su -c "CREATE ROLE veil LOGIN PASSWORD '$PW'" && psql_su -c "CREATE DATABASE veil OWNER veil" ||
	{ echo "cannot create the database"; exit 1; }
DB=postgresql://veil:$PW@127.0.0.1:$PGPORT/veil

# Node A is lib.sh's veild ($CP, $HP, $T/srv); node B has its own ports and
# data directory with A's key files, so clients trust both.
VEILD_EXTRA=(--store "$DB")
start
CPB=$(port)
HPB=$(port)
URLB=http://127.0.0.1:$HPB
mkdir -p "$T/srvb"
chmod 700 "$T/srvb"
cp -p "$T/srv/chat.key" "$T/srv/directory.key" "$T/srv/sign.key" "$T/srvb/"
start_b() {
	"$BIN/veild" --data "$T/srvb" --chat-port "$CPB" --http-port "$HPB" --store "$DB" \
		>>"$T/veildb.log" 2>&1 &
	pidb=$!
	for _ in $(seq 100); do
		curl -sf "$URLB/.well-known/veil/provisioning" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "veild B did not start"; cat "$T/veildb.log"; exit 1
}
start_b

va() { VEIL_HOME=$T/a "$BIN/veil" "$@"; }
A=$(va init --server "$URL" --nickname Alice)
B=$(VEIL_HOME=$T/b "$BIN/veil" init --server "$URL" --nickname Bob)
# Bob's profile twice: one copy talks to node A (b), one to node B (b2).
cp -a "$T/b" "$T/b2"
python3 - "$T/b2/profile.json" "$CPB" "$URLB" <<'EOF'
import json, sys
p = json.load(open(sys.argv[1]))
p["chat_port"] = int(sys.argv[2])
for k in ("server_url", "directory_url"):
    if isinstance(p.get(k), str) and p[k]:
        p[k] = p[k].replace(p[k].split("/")[2], sys.argv[3].split("/")[2])
json.dump(p, open(sys.argv[1], "w"))
EOF
vb() { VEIL_HOME=$T/b "$BIN/veil" "$@"; }
vb2() { VEIL_HOME=$T/b2 "$BIN/veil" "$@"; }
# A receiver in the background is started without these functions, so that $!
# is veil's own PID.
va send "$B" "first" >/dev/null
vb2 recv >"$T/r0"
check nodes_share_the_store grep -q "$A: first" "$T/r0"

# (1) Bob waits on node B; Alice sends on node A: it arrives without a login.
VEIL_HOME=$T/b2 "$BIN/veil" recv --wait 8 >"$T/r1" 2>"$T/r1.err" &
rpid=$!
bgpids+=("$rpid")
sleep 1.5
va send "$B" "across nodes" >/dev/null
t0=$(date +%s%N)
got=0
for _ in $(seq 20); do
	grep -q "$A: across nodes" "$T/r1" && { got=1; break; }
	sleep 0.05
done
ms=$((($(date +%s%N) - t0) / 1000000))
check cross_node_delivery_within_1s bash -c "[ $got = 1 ] && [ $ms -le 1000 ]"
echo "  (arrived after ${ms} ms)" >&2
# And back: Bob on B to Alice, read on A.
vb2 send "$A" "answer from B" >/dev/null
wait "$rpid" 2>/dev/null
va recv >"$T/a1"
check cross_node_reply grep -q "$B: answer from B" "$T/a1"

# (2) Bob logged in on node A; a second login on node B closes the first.
VEIL_HOME=$T/b "$BIN/veil" recv --wait 15 >"$T/r2" 2>"$T/r2.err" &
rpid=$!
bgpids+=("$rpid")
sleep 1.5
vb2 recv >/dev/null 2>&1
closed=0
for _ in $(seq 40); do
	kill -0 "$rpid" 2>/dev/null || { closed=1; break; }
	sleep 0.05
done
wait "$rpid" 2>/dev/null
check second_login_other_node_closes_first bash -c "[ $closed = 1 ] && grep -q 'Another connection for the same identity' '$T/r2.err'"
# The newer connection survives an older login's notice: Bob on B stays.
VEIL_HOME=$T/b2 "$BIN/veil" recv --wait 4 >"$T/r3" 2>"$T/r3.err" &
rpid=$!
bgpids+=("$rpid")
sleep 1
va send "$B" "still here" >/dev/null
wait "$rpid"
check newest_login_keeps_session bash -c "grep -q '$A: still here' '$T/r3' && ! grep -q 'Another connection' '$T/r3.err'"

# (3) PostgreSQL restarts under both nodes; Bob waits on node B meanwhile.
VEIL_HOME=$T/b2 "$BIN/veil" recv --wait 20 >"$T/r5" 2>"$T/r5.err" &
rpid=$!
bgpids+=("$rpid")
sleep 1.5
pg_stop
pg_start
for _ in $(seq 100); do
	grep -q 'connection (listen) is back' "$T/veild.log" &&
		grep -q 'connection (listen) is back' "$T/veildb.log" && break
	sleep 0.1
done
check listeners_reconnect bash -c "grep -q 'connection (listen) is back' '$T/veild.log' && grep -q 'connection (listen) is back' '$T/veildb.log'"
sent=0
for _ in 1 2 3 4 5; do
	va send "$B" "after the restart" >/dev/null 2>&1 && { sent=1; break; }
	sleep 1
done
got=0
for _ in $(seq 40); do
	grep -q "$A: after the restart" "$T/r5" && { got=1; break; }
	sleep 0.05
done
check cross_node_after_db_restart bash -c "[ $sent = 1 ] && [ $got = 1 ]"
# The resync's reads find the queue connection gone and retry on a new one.
check resync_keeps_receiver bash -c "! grep -q 'Temporary server error' '$T/r5.err'"
kill "$rpid" 2>/dev/null
wait "$rpid" 2>/dev/null

# (4) kill -9 of node A after it acked: node B has every message.
n=0
for i in $(seq 1 20); do va send "$B" "acked $i" >/dev/null && n=$((n + 1)); done
kill -9 "$pid"
wait "$pid" 2>/dev/null
pid=
vb2 recv >"$T/r4"
check kill9_node_loses_nothing bash -c "[ $n = 20 ] && [ \$(grep -c '$A: acked ' '$T/r4') = 20 ]"
echo "  (sent $n, received $(grep -c "$A: acked " "$T/r4"))" >&2
exit $fails

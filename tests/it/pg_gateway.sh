#!/bin/bash
# Gateway callbacks with two veild nodes on one PostgreSQL (started here as
# the postgres user, like pg_shared.sh): an API identity's callbacks are
# delivered by one node only (the one holding the identity's advisory lock),
# so no message is POSTed twice although both nodes poll the queue; when that
# node is killed (kill -9), the other takes over and delivers what arrives
# next. The receiver (gw_receiver.py) answers slowly, so that two nodes
# posting the same message would both be recorded.
# Without root or PostgreSQL it prints a SKIP line and passes.
set -u
. "$(dirname "$0")/lib.sh"
pg_need pg_gateway.sh

PGT=
PGPID=
it_setup pg_gateway
pidb=
rpid=
cleanup() {
	[ -n "$rpid" ] && kill "$rpid" 2>/dev/null
	[ -n "$pidb" ] && kill "$pidb" 2>/dev/null && wait "$pidb" 2>/dev/null
	stop 2>/dev/null
	pg_stop
	[ -n "${KEEP:-}" ] || rm -rf "$T" "$PGT"
}
trap cleanup EXIT
pg_start || exit 1
EX=$(cd "$(dirname "$0")/../../examples" && pwd)
RCV=$(cd "$(dirname "$0")" && pwd)/gw_receiver.py
RP=$(port)
HPB=$(port)
CPB=$(port)
URLB=http://127.0.0.1:$HPB

# Node A, the account, then the receiver.
VEILD_EXTRA=(--store "$DB")
start
read -r RSK RPK < <(python3 "$EX/gateway-echo-bot.py" --keygen)
read -r RID RSEC < <("$BIN/veilctl" gateway --data "$T/srv" --store "$DB" create --id '*RECVTST' \
	--public-key "$RPK" --callback "http://127.0.0.1:$RP/cb")
touch "$T/slow"
# The receiver looks senders' keys up on node B, which outlives node A.
python3 "$RCV" "$RP" "$T" "$RSEC" "$RSK" "$URLB/gateway" "$RID" >"$T/rcv.log" 2>&1 &
rpid=$!
# Node A takes the identity's callbacks at its next poll (every 0.5 s); then node B starts.
locks() { psql_su -d veil -c "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = $((0x56474342)) AND granted"; }
for _ in $(seq 50); do [ "$(locks)" = 1 ] && break; sleep 0.1; done
check node_a_delivers [ "$(locks)" = 1 ]
node_b_dir
"$BIN/veild" --data "$T/srvb" --chat-port "$CPB" --http-port "$HPB" --store "$DB" \
	>>"$T/veildb.log" 2>&1 &
pidb=$!
for _ in $(seq 100); do curl -sf "$URLB/.well-known/veil/provisioning" >/dev/null 2>&1 && break; sleep 0.1; done
sleep 1 # node B's callback worker has polled: it must not take the identity
check one_holder_with_two_nodes [ "$(locks)" = 1 ]

# Twelve messages while both nodes poll: each arrives once.
count() { # distinct message IDs, lines
	python3 -c 'import json,sys; l=[json.loads(x)["messageId"] for x in open(sys.argv[1])]; print(len(set(l)), len(l))' "$T/got.jsonl" 2>/dev/null || echo "0 0"
}
VEIL_HOME=$T/a "$BIN/veil" init --server "$URL" --nickname Alice >/dev/null
for i in $(seq 12); do VEIL_HOME=$T/a "$BIN/veil" send '*RECVTST' "both up $i" >/dev/null; done
for _ in $(seq 150); do [ "$(count | cut -d' ' -f1)" = 12 ] && break; sleep 0.1; done
sleep 2 # time for a second node's copy, if there were one
check twelve_delivered [ "$(count | cut -d' ' -f1)" = 12 ]
check none_twice [ "$(count)" = "12 12" ]

# Node A dies: node B takes the callbacks over (PostgreSQL frees A's lock).
kill -9 "$pid"
wait "$pid" 2>/dev/null
pid=
VEIL_HOME=$T/c "$BIN/veil" init --server "$URLB" --nickname Carol >/dev/null
for i in $(seq 5); do VEIL_HOME=$T/c "$BIN/veil" send '*RECVTST' "after the kill $i" >/dev/null; done
for _ in $(seq 200); do [ "$(count | cut -d' ' -f1)" = 17 ] && break; sleep 0.1; done
sleep 1
check taken_over_by_node_b [ "$(count | cut -d' ' -f1)" = 17 ]
check still_none_twice [ "$(count)" = "17 17" ]
check node_b_holds [ "$(locks)" = 1 ]
check texts_readable bash -c "[ \$(grep -c '\"text\": \"after the kill' $T/got.jsonl) = 5 ] && ! grep -q UNREADABLE $T/got.jsonl"
check mac_verified bash -c "[ ! -e $T/badmac ]"
[ "$fails" = 0 ] || { tail -n 20 "$T/veild.log" "$T/veildb.log" "$T/rcv.log" >&2; }
[ "$fails" = 0 ]

#!/bin/bash
# Several chat addresses and fail-over: two veild nodes on one PostgreSQL 15
# (started here in a temporary directory as the postgres user, like
# pg_nodes.sh), both started with --chat-address for each node, A first.
#   - the provisioning document lists both in chat.addresses (the single
#     chat.hostname/ports entry stays for older clients), and a new profile
#     keeps the list;
#   - Alice and Bob run `veil daemon`, both on node A; Alice sends a stream
#     of messages to Bob through her daemon; node A is killed with -9 in the
#     middle of it; both daemons move to node B by themselves;
#   - every message whose send was acked is in Bob's log exactly once, and
#     no message is there twice.
# Without root or PostgreSQL it prints a SKIP line and passes.
set -u
. "$(dirname "$0")/lib.sh"
pg_need pg_failover.sh
PGT=
PGPID=
it_setup pg_failover
pidb=
bgpids=()
cleanup() {
	for p in "${bgpids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	[ -n "$pidb" ] && kill "$pidb" 2>/dev/null && wait "$pidb" 2>/dev/null
	stop 2>/dev/null
	pg_stop
	[ -n "${KEEP:-}" ] || rm -rf "$T" "$PGT"
}
trap cleanup EXIT
pg_start || exit 1

# Node A is lib.sh's veild; node B has its own ports and data directory with
# A's key files. Both announce both chat addresses, A first.
CPB=$(port)
HPB=$(port)
URLB=http://127.0.0.1:$HPB
ADDRS=(--chat-address "127.0.0.1:$CP" --chat-address "127.0.0.1:$CPB")
VEILD_EXTRA=(--store "$DB" "${ADDRS[@]}")
start
mkdir -p "$T/srvb"
chmod 700 "$T/srvb"
cp -p "$T/srv/chat.key" "$T/srv/directory.key" "$T/srv/sign.key" "$T/srvb/"
"$BIN/veild" --data "$T/srvb" --chat-port "$CPB" --http-port "$HPB" --store "$DB" "${ADDRS[@]}" \
	>>"$T/veildb.log" 2>&1 &
pidb=$!
for _ in $(seq 100); do
	curl -sf "$URLB/.well-known/veil/provisioning" >/dev/null 2>&1 && break
	sleep 0.1
done

curl -sf "$URL/.well-known/veil/provisioning" | head -1 >"$T/prov.json"
check provisioning_lists_both python3 -c "
import json; c = json.load(open('$T/prov.json'))['chat']
assert c['addresses'] == [{'hostname': '127.0.0.1', 'port': $CP}, {'hostname': '127.0.0.1', 'port': $CPB}], c
assert c['hostname'] == '127.0.0.1' and c['ports'] == [$CP], c"

va() { VEIL_HOME=$T/a "$BIN/veil" "$@"; }
vb() { VEIL_HOME=$T/b "$BIN/veil" "$@"; }
A=$(va init --server "$URL" --nickname Alice)
B=$(vb init --server "$URL" --nickname Bob)
check profile_keeps_the_list python3 -c "
import json; p = json.load(open('$T/a/profile.json'))
assert [(a['host'], a['port']) for a in p['chat_addresses']] == [('127.0.0.1', $CP), ('127.0.0.1', $CPB)], p"

# Both daemons connect to node A, the first of the list.
VEIL_HOME=$T/a "$BIN/veil" daemon 2>"$T/da.log" &
bgpids+=($!)
VEIL_HOME=$T/b "$BIN/veil" daemon 2>"$T/db.log" &
bgpids+=($!)
for _ in $(seq 100); do
	grep -q connected "$T/da.log" && grep -q connected "$T/db.log" && break
	sleep 0.1
done
check daemons_on_node_a bash -c "grep -q 'connected to 127.0.0.1:$CP\$' '$T/da.log' && grep -q 'connected to 127.0.0.1:$CP\$' '$T/db.log'"

# The stream: N sends through Alice's daemon, one line per send: i and the
# exit status (0 = the server acked the message).
N=60
(
	export VEIL_HOME=$T/a
	for i in $(seq 1 $N); do
		timeout 60 "$BIN/veil" send "$B" "stream $i" >/dev/null 2>>"$T/send.err"
		echo "$i $?"
	done
) >"$T/sent" 2>/dev/null </dev/null &
spid=$!
bgpids+=($spid)
for _ in $(seq 600); do [ "$(wc -l <"$T/sent")" -ge 20 ] && break; sleep 0.1; done
kill -9 "$pid"
wait "$pid" 2>/dev/null
pid=
echo "  node A killed after $(wc -l <"$T/sent") sends" >&2
wait "$spid"
acked=$(awk '$2 == 0' "$T/sent" | wc -l)
echo "  $acked of $N sends acked" >&2
# A daemon reconnects 1 s after the loss, which may be after the last send.
for _ in $(seq 100); do
	grep -q "connected to 127.0.0.1:$CPB\$" "$T/da.log" && grep -q "connected to 127.0.0.1:$CPB\$" "$T/db.log" && break
	sleep 0.1
done
check daemons_moved_to_node_b bash -c "grep -q 'connected to 127.0.0.1:$CPB\$' '$T/da.log' && grep -q 'connected to 127.0.0.1:$CPB\$' '$T/db.log'"
check most_sends_acked [ "$acked" -ge $((N - 5)) ]

# Bob's daemon receives on node B: wait until every acked message is in his log.
logged() { vb log "$A" 2>/dev/null | grep -oE 'stream [0-9]+$' | sort | uniq -c; }
for _ in $(seq 150); do
	missing=0
	logged >"$T/log.txt"
	for i in $(awk '$2 == 0 {print $1}' "$T/sent"); do
		grep -qE "^ *[0-9]+ stream $i\$" "$T/log.txt" || { missing=1; break; }
	done
	[ $missing = 0 ] && break
	sleep 0.2
done
sleep 1 # a duplicate would come right behind
logged >"$T/log.txt"
every_acked_once() {
	local i bad=0
	for i in $(awk '$2 == 0 {print $1}' "$T/sent"); do
		grep -qE "^ *1 stream $i\$" "$T/log.txt" || { echo "  stream $i: $(grep -E " stream $i\$" "$T/log.txt" || echo missing)"; bad=1; }
	done
	return $bad
}
check no_acked_message_lost_or_doubled every_acked_once
check no_message_twice bash -c "! grep -qvE '^ *1 stream' '$T/log.txt'"
exit $fails

#!/bin/bash
# The mediator across two nodes on one PostgreSQL 15 (started here in a
# temporary directory as the postgres user, like pg_shared.sh) when a node
# dies or loses a connection (tests/tools/md_nodes.c, failover):
#   - device 1 on node A leads, device 3 is on node B; the connection of
#     node A that holds the leadership's advisory lock is terminated and kept
#     from coming back: device 3 is promoted; once node A reconnects it finds
#     the leadership taken and closes device 1 (1011), which comes back and
#     does not lead;
#   - a device group with device 1 on node A (the leader) and devices 3 and
#     4 on node B; both nodes' LISTEN connections are terminated
#     (pg_terminate_backend, found in pg_stat_activity) and kept from coming
#     back while device 1 reflects: once they are back, B's devices get the
#     reflect all the same (the notification of it never reached node B);
#   - device 1 holds the group's transaction lock and device 3 was rejected
#     for it; node A is killed with -9: a device on B is promoted, B's
#     devices are told the transaction ended, a reflect from B's other
#     device reaches the new leader, and a transaction is begun and
#     committed on B.
# Without root or PostgreSQL it prints a SKIP line and passes.
set -u
. "$(dirname "$0")/lib.sh"
pg_need pg_md_failover.sh

PGT=
PGPID=
it_setup pg_md_failover
pidb=
cleanup() {
	[ -n "$pidb" ] && kill "$pidb" 2>/dev/null && wait "$pidb" 2>/dev/null
	stop 2>/dev/null
	pg_stop
	[ -n "${KEEP:-}" ] || rm -rf "$T" "$PGT"
}
trap cleanup EXIT
pg_start || exit 1

VEILD_EXTRA=(--store "$DB")
start
HPB=$(port)
CPB=$(port)
mkdir -p "$T/srvb"
chmod 700 "$T/srvb"
cp -p "$T/srv/chat.key" "$T/srv/directory.key" "$T/srv/sign.key" "$T/srvb/"
"$BIN/veild" --data "$T/srvb" --chat-port "$CPB" --http-port "$HPB" --store "$DB" \
	>>"$T/veildb.log" 2>&1 &
pidb=$!
for _ in $(seq 100); do
	curl -sf "http://127.0.0.1:$HPB/.well-known/veil/provisioning" >/dev/null 2>&1 && break
	sleep 0.1
done

# The mediator's LISTEN connections (off) or the one holding the advisory locks
# (locks-off): ended and kept out; let back (on).
cat >"$T/listen.sh" <<EOS
#!/bin/bash
sql() { runuser -u postgres -- "$PGBIN/psql" -h "$PGT" -p "$PGPORT" -qAt -v ON_ERROR_STOP=1 -c "\$1"; }
listeners="SELECT count(*) FROM pg_stat_activity WHERE application_name = 'veild-mediator-listen'"
# A failure lets the connections back, so that one failed check fails alone.
fail() { sql "ALTER DATABASE veil ALLOW_CONNECTIONS true"; exit 1; }
if [ "\$1" = off ]; then
	[ "\$(sql "\$listeners")" = 2 ] || { echo "listen.sh: not two listeners" >&2; exit 1; }
	sql "ALTER DATABASE veil ALLOW_CONNECTIONS false" &&
		sql "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		     WHERE application_name = 'veild-mediator-listen'" >/dev/null || fail
	for _ in \$(seq 100); do [ "\$(sql "\$listeners")" = 0 ] && exit 0; sleep 0.1; done
	fail
fi
holders="SELECT DISTINCT l.pid FROM pg_locks l JOIN pg_stat_activity a USING (pid)
         WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = 'veild-mediator'"
if [ "\$1" = locks-off ]; then
	[ "\$(sql "SELECT count(*) FROM (\$holders) h")" = 1 ] || { echo "listen.sh: not one lock holder" >&2; exit 1; }
	# Waits for that backend to be gone, not for no holder at all: the other
	# node may take the leadership it held at once.
	gone=\$(sql "SELECT pid FROM (\$holders) h")
	sql "ALTER DATABASE veil ALLOW_CONNECTIONS false" &&
		sql "SELECT pg_terminate_backend(\$gone)" >/dev/null || fail
	for _ in \$(seq 100); do
		[ "\$(sql "SELECT count(*) FROM pg_stat_activity WHERE pid = \$gone")" = 0 ] && exit 0
		sleep 0.1
	done
	fail
fi
sql "ALTER DATABASE veil ALLOW_CONNECTIONS true"
EOS
chmod 755 "$T/listen.sh"

"$BIN/tests/tools/md_nodes" failover "$HP" "$HPB" "$pid" "$T/listen.sh off" "$T/listen.sh locks-off" "$T/listen.sh on" \
	2>"$T/md_nodes.err" || {
	echo "md_nodes failover failed:" >&2
	fails=$((fails + 1))
	tail -n 20 "$T/md_nodes.err" >&2
	tail -n 20 "$T/veild.log" "$T/veildb.log" >&2
}
# Node A is gone (or, if the tool stopped early, goes now).
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
pid=
check node_b_listener_back grep -q 'PostgreSQL connection (listen) is back' "$T/veildb.log"
check node_a_lost_its_leadership grep -q 'leadership was lost with the PostgreSQL connection' "$T/veild.log"
check node_b_alive kill -0 "$pidb"
[ "$fails" = 0 ]

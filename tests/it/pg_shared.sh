#!/bin/bash
# The state that is not the chat service's on PostgreSQL (--store
# postgresql://...), shared by two nodes, with a PostgreSQL 15 started here in
# a temporary directory as the postgres user (like pg.sh). The mediator:
#   - it_mediator's whole suite against one node on that store;
#   - two nodes on the database, devices 1 and 2 of one group on node A and
#     device 3 on node B (tests/tools/md_nodes.c): reflects reach every other
#     device both ways, one leader across the nodes and it moves to node B
#     when node A's devices go, a transaction on one node makes the other
#     node's device get TransactionRejected and then the commit and
#     TransactionEnded, a newer connection on the other node closes the
#     older one (4112), dropping a device connected to the other node
#     closes it there (4113);
#   - no mediator.db on the nodes, and the mediator's tables in PostgreSQL
#     hold no identity and no identity's public key (as it_mediator checks
#     the SQLite file).
# The Gateway: an account made through node A (veilctl gateway on the
# running node) sends through node B, credits are one count for both nodes,
# and the secret is not stored in clear. Safe backups: stored through one
# node, read, replaced and deleted through the other; no backup file on
# either node.
# Without root or PostgreSQL it prints a SKIP line and passes.
set -u
. "$(dirname "$0")/lib.sh"
pg_need pg_shared.sh

PGT=
PGPID=
it_setup pg_shared
pidb=
cleanup() {
	[ -n "$pidb" ] && kill "$pidb" 2>/dev/null && wait "$pidb" 2>/dev/null
	stop 2>/dev/null
	pg_stop
	[ -n "${KEEP:-}" ] || rm -rf "$T" "$PGT"
}
trap cleanup EXIT
pg_start || exit 1
psql_db() { psql_su -d veil "$@"; }

# (1) it_mediator's suite on one node with this store; its PASS/FAIL lines count here.
VEIL_IT_STORE=$DB "$BIN/tests/it/it_mediator" 2>"$T/it_mediator.err" || {
	echo "it_mediator on PostgreSQL failed:" >&2
	fails=$((fails + 1))
	tail -n 20 "$T/it_mediator.err" >&2
}

# (2) Two nodes on the database; node B has node A's key files.
VEILD_EXTRA=(--store "$DB" --mediator-max-slots 3)
start
HPB=$(port)
CPB=$(port)
mkdir -p "$T/srvb"
chmod 700 "$T/srvb"
cp -p "$T/srv/chat.key" "$T/srv/directory.key" "$T/srv/sign.key" "$T/srvb/"
"$BIN/veild" --data "$T/srvb" --chat-port "$CPB" --http-port "$HPB" --store "$DB" \
	--mediator-max-slots 3 >>"$T/veildb.log" 2>&1 &
pidb=$!
for _ in $(seq 100); do
	curl -sf "http://127.0.0.1:$HPB/.well-known/veil/provisioning" >/dev/null 2>&1 && break
	sleep 0.1
done
"$BIN/tests/tools/md_nodes" "$HP" "$HPB" 2>"$T/md_nodes.err" || {
	echo "md_nodes failed:" >&2
	fails=$((fails + 1))
	tail -n 20 "$T/md_nodes.err" >&2
	tail -n 20 "$T/veild.log" "$T/veildb.log" >&2
}

# (3) The state is in PostgreSQL, not in the nodes' data directories, and
# holds no identity or public key (in any form: raw bytes or hex).
check no_mediator_db_on_nodes bash -c "[ ! -e '$T/srv/mediator.db' ] && [ ! -e '$T/srvb/mediator.db' ]"
groups=$(psql_db -c "SELECT COUNT(*) FROM md_groups")
ids=$(psql_db -c "SELECT COUNT(*) FROM identities")
check mediator_tables_in_postgresql bash -c "[ '${groups:-0}' -ge 5 ] && [ '${ids:-0}' -ge 2 ]"
leaks=$(psql_db -c "
	WITH r(s) AS (SELECT t::text FROM md_groups t UNION ALL SELECT t::text FROM md_devices t
	              UNION ALL SELECT t::text FROM md_reflected t UNION ALL SELECT t::text FROM md_tx t)
	SELECT COUNT(*) FROM r, identities i
	WHERE position(encode(i.pk, 'hex') IN r.s) > 0
	   OR position(encode(convert_to(i.id, 'UTF8'), 'hex') IN r.s) > 0
	   OR position(encode(convert_to(encode(i.pk, 'hex'), 'UTF8'), 'hex') IN r.s) > 0")
check no_identity_in_mediator_tables [ "$leaks" = 0 ]

# (4) The Gateway: credentials made through node A work on node B.
URLB=http://127.0.0.1:$HPB
read -r GID GSEC < <("$BIN/veilctl" gateway --data "$T/srv" --store "$DB" create --credits 5)
A=$(VEIL_HOME=$T/a "$BIN/veil" init --server "$URL" --nickname Alice)
check gateway_account_made bash -c "[[ '$GID' == \** && ${#GSEC} == 16 ]]"
check gateway_send_through_other_node bash -c "curl -s --data-urlencode 'from=$GID' --data-urlencode 'secret=$GSEC' --data-urlencode 'to=$A' --data-urlencode 'text=via node B' $URLB/gateway/send_simple | grep -qx '[0-9a-f]\{16\}'"
check gateway_credits_shared bash -c "[ \"\$(curl -s '$URL/gateway/credits?from=$GID&secret=$GSEC')\" = 4 ] && [ \"\$(curl -s '$URLB/gateway/credits?from=$GID&secret=$GSEC')\" = 4 ]"
check gateway_bad_secret_refused_on_other_node [ "$(curl -s -o /dev/null -w '%{http_code}' "$URLB/gateway/credits?from=$GID&secret=${GSEC}x")" = 401 ]
check gateway_message_arrives bash -c "VEIL_HOME=$T/a $BIN/veil recv --wait 5 | grep -q '$GID: via node B'"
check gateway_no_file_and_secret_not_in_clear bash -c "[ ! -e '$T/srv/gateway.db' ] && [ ! -e '$T/srvb/gateway.db' ] && ! runuser -u postgres -- $PGBIN/psql -h $PGT -p $PGPORT -d veil -qAt -c 'SELECT t::text, encode(secret_sealed, '\''escape'\'') FROM gw_accounts t' | grep -q '$GSEC'"

# (5) Safe backups are rows in PostgreSQL: any node serves any backup.
H1=$(printf 'e%.0s' $(seq 64))
head -c 5000 /dev/urandom >"$T/sb1"
head -c 7000 /dev/urandom >"$T/sb2"
sput() { curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/octet-stream' --data-binary @"$1" "$2/safe/backups/$H1"; }
check safe_put_on_b [ "$(sput "$T/sb1" "$URLB")" = 204 ]
check safe_get_on_a bash -c "curl -sf $URL/safe/backups/$H1 | cmp -s - $T/sb1"
check safe_replace_on_a [ "$(sput "$T/sb2" "$URL")" = 204 ]
check safe_get_replaced_on_b bash -c "curl -sf $URLB/safe/backups/$H1 | cmp -s - $T/sb2"
check safe_no_backup_file bash -c "[ ! -e '$T/srv/safe/$H1' ] && [ ! -e '$T/srvb/safe/$H1' ] && [ -z \"\$(find $T/srv/safe/tmp $T/srvb/safe/tmp -type f)\" ]"
check safe_delete_on_a [ "$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$URL/safe/backups/$H1")" = 204 ]
check safe_gone_on_b [ "$(curl -s -o /dev/null -w '%{http_code}' "$URLB/safe/backups/$H1")" = 404 ]
[ "$fails" = 0 ]

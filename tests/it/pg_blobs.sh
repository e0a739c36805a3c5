#!/bin/bash
# Blobs across two nodes: both on one PostgreSQL 15 (started here in a
# temporary directory as the postgres user, see lib.sh's pg_start) and on one
# --blob-dir, as several veild on a shared directory (NFS or the like):
#   - a file sent with the CLI by Alice, logged in on node A, to Bob, logged
#     in on node B, arrives byte-identical (uploaded to A, downloaded from B),
#     and Bob's done through node B deletes the row and the file;
#   - the blob table holds no plaintext (and the file is not the plaintext);
#   - an owner's quota is counted from the shared table: a blob stored
#     through node A counts against an upload through node B;
#   - an upload in progress on node A survives node B's restart (which
#     empties only node B's temporary directory) and is then served by B;
#   - expired blobs are refused by the other node (410) and swept by a
#     node's start, the one whose file is already gone included;
#   - a blobs.db left in the blob directory (a node that ran on SQLite) is
#     copied into PostgreSQL at start, its blobs still served;
#   - no blobs.db anywhere.
# The quota and in-progress uploads go over raw HTTP with a blob token made
# here from the shared directory.key (blob.c's layout), so that one owner
# uploads through both nodes. Without root or PostgreSQL it prints a SKIP
# line and passes.
set -u
. "$(dirname "$0")/lib.sh"
pg_need pg_blobs.sh

PGT=
PGPID=
it_setup pg_blobs
pidb=
uppid=
cleanup() {
	[ -n "$uppid" ] && kill "$uppid" 2>/dev/null
	[ -n "$pidb" ] && kill "$pidb" 2>/dev/null && wait "$pidb" 2>/dev/null
	stop 2>/dev/null
	pg_stop
	[ -n "${KEEP:-}" ] || rm -rf "$T" "$PGT"
}
trap cleanup EXIT
pg_start || exit 1
psql_db() { psql_su -d veil "$@"; }

SH=$T/shared
mkdir -m 700 "$SH"
QUOTA=500000
VEILD_EXTRA=(--store "$DB" --blob-dir "$SH" --blob-quota $QUOTA)
start
HPB=$(port)
CPB=$(port)
URLB=http://127.0.0.1:$HPB
node_b_dir
start_b() {
	"$BIN/veild" --data "$T/srvb" --chat-port "$CPB" --http-port "$HPB" "${VEILD_EXTRA[@]}" \
		>>"$T/veildb.log" 2>&1 &
	pidb=$!
	for _ in $(seq 100); do
		curl -sf "$URLB/.well-known/veil/provisioning" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "veild B did not start"; cat "$T/veildb.log"; exit 1
}
stop_b() { [ -n "$pidb" ] && kill "$pidb" && wait "$pidb"; pidb=; }
start_b

# (1) Alice on node A sends Bob on node B a file with the CLI.
va() { VEIL_HOME=$T/a "$BIN/veil" "$@"; }
vb() { VEIL_HOME=$T/b "$BIN/veil" "$@"; }
A=$(va init --server "$URL" --nickname Alice)
B=$(vb init --server "$URLB" --nickname Bob)
head -c 300000 /dev/urandom >"$T/photo.bin"
check cli_send_on_a bash -c "VEIL_HOME=$T/a $BIN/veil send '$B' --file '$T/photo.bin' >/dev/null"
rows=$(psql_db -c "SELECT count(*) FROM blobs")
check row_in_postgresql [ "$rows" = 1 ]
blobfile=$(find "$SH" -mindepth 2 -type f -not -path "$SH/tmp/*" | head -1)
check file_in_shared_dir [ -n "$blobfile" ]
# No plaintext: the row holds metadata only, the file is ciphertext.
check table_has_no_plaintext python3 -c "
import subprocess, sys
rows = subprocess.run(sys.argv[1:], capture_output=True, check=True).stdout
pt = open('$T/photo.bin', 'rb').read()
chunks = [pt[i:i + 16] for i in range(0, 4096, 16)]
assert all(c.hex().encode() not in rows and c not in rows for c in chunks)
assert b'photo' not in rows
" runuser -u postgres -- "$PGBIN/psql" -h "$PGT" -p "$PGPORT" -d veil -qAt -c "SELECT t::text FROM blobs t"
check file_is_ciphertext python3 -c "
pt = open('$T/photo.bin', 'rb').read()
ct = open('$blobfile', 'rb').read()
assert len(ct) == len(pt) + 16 and pt[1000:1032] not in ct
"
vb recv --download-dir "$T/dl" >"$T/recv.out" 2>&1
check cli_recv_on_b_identical cmp -s "$T/photo.bin" "$T/dl/photo.bin"
check done_on_b_removed_row [ "$(psql_db -c "SELECT count(*) FROM blobs")" = 0 ]
check done_on_b_removed_file [ ! -e "$blobfile" ]

# A raw upload of $3 bytes from file $4 as owner $2 to the node at port $1,
# with a blob token made from directory.key: prints the status and the body.
# With $5 = pause it sends half the body, creates $T/half and waits for $T/go.
cat >"$T/up.py" <<'EOF'
import hashlib, socket, struct, sys, time, os
port, owner, n, src = int(sys.argv[1]), sys.argv[2].encode(), int(sys.argv[3]), sys.argv[4]
pause = len(sys.argv) > 5 and sys.argv[5] == 'pause'
dk = open(os.environ['DIRKEY'], 'rb').read()
k = hashlib.blake2b(b'', key=dk, salt=b'blob', person=b'veil-dir', digest_size=32).digest()
body = bytes([1]) + owner + struct.pack('<Q', int(time.time() * 1000) + 600000)
tok = body + hashlib.blake2b(body, key=k, digest_size=32).digest()
import base64
head = b'--XyZ\r\nContent-Disposition: form-data; name="blob"\r\n\r\n'
tail = b'\r\n--XyZ--\r\n'
data = head + open(src, 'rb').read(n) + tail
req = ('POST /blob/upload HTTP/1.1\r\nHost: x\r\nAuthorization: ThreemaBlobToken %s\r\n'
       'Content-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: %d\r\n'
       'Connection: close\r\n\r\n' % (base64.b64encode(tok).decode(), len(data))).encode()
s = socket.create_connection(('127.0.0.1', port), timeout=60)
s.sendall(req)
if pause:
    s.sendall(data[:len(data) // 2])
    open(sys.argv[6], 'w').close()
    while not os.path.exists(sys.argv[7]):
        time.sleep(0.05)
    s.sendall(data[len(data) // 2:])
else:
    s.sendall(data)
resp = b''
while True:
    c = s.recv(65536)
    if not c:
        break
    resp += c
status = resp.split(b' ', 2)[1].decode()
print(status, resp.split(b'\r\n\r\n', 1)[1].decode().strip())
EOF
export DIRKEY=$T/srv/directory.key
up() { python3 "$T/up.py" "$@"; }
head -c 400000 /dev/urandom >"$T/q.bin"

# (2) The quota is one count across nodes: 300 kB through A, then 300 kB through B
# goes over 500 kB; once the first is done, B takes it.
read -r st1 id1 < <(up "$HP" QUOTA001 300000 "$T/q.bin")
check quota_first_on_a [ "$st1" = 200 ]
read -r st2 _ < <(up "$HPB" QUOTA001 300000 "$T/q.bin")
check quota_counted_across_nodes [ "$st2" = 507 ]
check raw_download_on_b bash -c "curl -sf $URLB/blob/$id1 | cmp -s - <(head -c 300000 $T/q.bin)"
check raw_done_on_b [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$URLB/blob/$id1/done")" = 204 ]
check raw_done_on_a_after_b [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$URL/blob/$id1/done")" = 404 ]
read -r st3 id3 < <(up "$HPB" QUOTA001 300000 "$T/q.bin")
check quota_freed_across_nodes [ "$st3" = 200 ]

# (3) An upload in progress on A survives B's restart.
up "$HP" INPROG01 200000 "$T/q.bin" pause "$T/half" "$T/go" >"$T/inprog.out" &
uppid=$!
for _ in $(seq 200); do [ -e "$T/half" ] && break; sleep 0.05; done
parts() { find "$SH/tmp" -name '*.part' | wc -l; }
for _ in $(seq 100); do [ "$(parts)" = 1 ] && break; sleep 0.05; done
check inprog_part_on_a [ "$(parts)" = 1 ]
stop_b
start_b
check inprog_part_survives_b_restart [ "$(parts)" = 1 ]
touch "$T/go"
wait "$uppid"
uppid=
read -r st4 id4 <"$T/inprog.out"
check inprog_upload_stored [ "$st4" = 200 ]
check inprog_served_by_b bash -c "curl -sf $URLB/blob/$id4 | cmp -s - <(head -c 200000 $T/q.bin)"
check per_node_tmp_dirs [ "$(find "$SH/tmp" -mindepth 1 -maxdepth 1 -type d | wc -l)" = 2 ]

# (4) Expiry: both rows expire; one file is already gone (as if the other
# node's sweep had unlinked it first). B does not serve them (410, or 404 if
# its own once-a-minute sweep came first); A's start sweeps what is left.
psql_db -c "UPDATE blobs SET expires_ms = 1" >/dev/null
f3=$SH/${id3:0:2}/$id3
f4=$SH/${id4:0:2}/$id4
check expired_not_served_by_b bash -c "c=\$(curl -s -o /dev/null -w '%{http_code}' $URLB/blob/$id4); [ \$c = 410 ] || [ \$c = 404 ]"
rm -f "$f3"
stop
start
check sweep_removed_rows [ "$(psql_db -c "SELECT count(*) FROM blobs")" = 0 ]
check sweep_removed_files bash -c "[ ! -e '$f3' ] && [ ! -e '$f4' ]"
check sweep_logged bash -c "cat '$T/veild.log' '$T/veildb.log' | grep -q 'expired blobs deleted'"

# (5) A node that kept its blob metadata in SQLite (blobs.db in its blob
# directory) starts on PostgreSQL: the live rows are copied, the file is
# renamed, and its blobs stay served (here through the other node).
stop
LID=$(head -c 16 /dev/urandom | xxd -p)
XID=$(head -c 16 /dev/urandom | xxd -p)
mkdir -p "$SH/${LID:0:2}"
head -c 5000 /dev/urandom >"$SH/${LID:0:2}/$LID"
now=$(($(date +%s) * 1000))
sqlite3 "$SH/blobs.db" "CREATE TABLE blobs (id BLOB PRIMARY KEY, owner BLOB NOT NULL,
	size INTEGER NOT NULL, created_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL,
	persist INTEGER NOT NULL);
	INSERT INTO blobs VALUES (x'$LID', CAST('OLDOWNER' AS BLOB), 5000, $now, $((now + 3600000)), 0),
	(x'$XID', CAST('OLDOWNER' AS BLOB), 1, 1, 2, 0);"
start
check import_live_row [ "$(psql_db -c "SELECT count(*) FROM blobs WHERE id = decode('$LID', 'hex')")" = 1 ]
check import_not_expired_row [ "$(psql_db -c "SELECT count(*) FROM blobs WHERE id = decode('$XID', 'hex')")" = 0 ]
check import_renamed_file bash -c "[ ! -e '$SH/blobs.db' ] && [ -e '$SH/blobs.db.imported' ]"
check imported_served_by_b bash -c "curl -sf $URLB/blob/$LID | cmp -s - '$SH/${LID:0:2}/$LID'"

# (6) The metadata is in PostgreSQL only.
check no_blobs_db bash -c "[ -z \"\$(find $T/srv $T/srvb $SH -name blobs.db -o -name 'blobs.db-*')\" ]"
[ "$fails" = 0 ]

#!/bin/bash
# Files with the veil CLI against a real veild on loopback: a 200 MiB file
# both ways with the resident memory of veild and of each veil process
# measured (VmHWM / GNU time's maximum RSS) and held below 64 MiB, a caption,
# JSON output, the blob deleted once received, name clashes, a missing file,
# a file over the size limit, progress output only on a terminal, and the
# thumbnail of an image.
set -u
. "$(dirname "$0")/lib.sh"
it_setup files --blob-max-size $((256 * 1024 * 1024)) --blob-quota $((1024 * 1024 * 1024))
BIG_MIB=${VEIL_FILES_BIG_MIB:-200}
LIMIT_KB=$((64 * 1024))
# Runs veil under GNU time; the peak RSS in KiB lands in $T/rss.
timed() { # home, args...
	local home=$1; shift
	VEIL_HOME=$home /usr/bin/time -f '%M' -o "$T/rss" "$BIN/veil" "$@"
}
hwm() { awk '/VmHWM/ {print $2}' "/proc/$pid/status"; }

start
va() { VEIL_HOME=$T/a "$BIN/veil" "$@"; }
vb() { VEIL_HOME=$T/b "$BIN/veil" "$@"; }
A=$(va init --server "$URL" --nickname Alice)
B=$(vb init --server "$URL" --nickname Bob)

# A small file with a caption, received as JSON.
head -c 100000 /dev/urandom >"$T/photo.jpg"
va send "$B" --file "$T/photo.jpg" --caption "Grüße vom See" >"$T/mid" 2>"$T/send.err"
check small_send bash -c "[[ \$(cat $T/mid) =~ ^[0-9a-f]{16}$ ]]"
check quiet_off_terminal [ ! -s "$T/send.err" ]
vb recv --json --download-dir "$T/dl" >"$T/r1" 2>"$T/r1.err"
check small_recv_json python3 -c "
import json,sys
o=json.loads(open('$T/r1').read().splitlines()[0])
assert o['type']=='file' and o['from']=='$A' and o['name']=='photo.jpg', o
assert o['mime']=='image/jpeg' and o['size']==100000 and o['caption']=='Grüße vom See', o
assert o['path']=='$T/dl/photo.jpg', o
"
check small_same cmp -s "$T/photo.jpg" "$T/dl/photo.jpg"
check blob_deleted_after_done bash -c "[ -z \"\$(find $T/srv/blobs -type f -not -name 'blobs.db*' -not -name .dirid)\" ]"

# The same name again: saved beside it, not over it.
va send "$B" --file "$T/photo.jpg" >/dev/null
vb recv --download-dir "$T/dl" >"$T/r2"
check name_clash_kept cmp -s "$T/photo.jpg" "$T/dl/photo (1).jpg"
check recv_prints_path grep -q "$A: file saved to $T/dl/photo (1).jpg (100000 bytes, image/jpeg)" "$T/r2"

# Default download directory.
va send "$B" --file "$T/photo.jpg" >/dev/null
vb recv >"$T/r3"
check default_dir cmp -s "$T/photo.jpg" "$T/b/files/photo.jpg"

# An image gets a thumbnail (at most 512x512, the same format) as a blob of its
# own; recv saves it beside the file and says where. The PNG is written here
# with zlib: 1200x900 RGB.
python3 -c "
import struct, zlib
w, h = 1200, 900
raw = b''.join(b'\\0' + bytes(v for x in range(w) for v in (x * 255 // w, y * 255 // h, 90)) for y in range(h))
def chunk(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))
open('$T/view.png', 'wb').write(b'\\x89PNG\\r\\n\\x1a\\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0))
    + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))
"
va send "$B" --file "$T/view.png" --caption "the view" >/dev/null
vb recv --json --download-dir "$T/dlt" >"$T/rt" 2>"$T/rt.err"
check thumb_recv_json python3 -c "
import json, struct
o = json.loads(open('$T/rt').read().splitlines()[0])
assert o['name'] == 'view.png' and o['thumbnail'] == '$T/dlt/view.png.thumb.png', o
t = open(o['thumbnail'], 'rb').read()
assert t[:8] == b'\\x89PNG\\r\\n\\x1a\\n', t[:8]
w, h = struct.unpack('>II', t[16:24])
assert (w, h) == (512, 384), (w, h)
"
check thumb_file_same cmp -s "$T/view.png" "$T/dlt/view.png"
check thumb_blobs_deleted bash -c "[ -z \"\$(find $T/srv/blobs -type f -not -name 'blobs.db*' -not -name .dirid)\" ]"
va send "$B" --file "$T/view.png" >/dev/null
vb recv --download-dir "$T/dlt" >"$T/rt2"
check thumb_recv_human grep -q "file saved to $T/dlt/view (1).png (.* bytes, image/png; thumbnail $T/dlt/view (1).png.thumb.png)" "$T/rt2"
# A file that only claims to be an image goes without a thumbnail.
check no_thumb_for_random_jpg bash -c "! ls $T/dl | grep -q thumb"

# Errors: a missing file, a file over the server's limit (stopped by its length).
va send "$B" --file "$T/nope" >/dev/null 2>"$T/e1"
check missing_file grep -q "cannot open $T/nope" "$T/e1"

# The big file both ways, with memory measured.
head -c $((BIG_MIB * 1024 * 1024)) /dev/urandom >"$T/big.bin"
t0=$(date +%s.%N)
timed "$T/a" send "$B" --file "$T/big.bin" >/dev/null 2>"$T/e2"
rc=$?
t1=$(date +%s.%N)
up_rss=$(cat "$T/rss")
check big_send [ $rc = 0 ]
timed "$T/b" recv --download-dir "$T/dl" >"$T/r4" 2>"$T/e3"
rc=$?
t2=$(date +%s.%N)
down_rss=$(cat "$T/rss")
check big_recv [ $rc = 0 ]
check big_same cmp -s "$T/big.bin" "$T/dl/big.bin"
rm -f "$T/dl/big.bin"
# And back from Bob to Alice.
timed "$T/b" send "$A" --file "$T/big.bin" >/dev/null 2>>"$T/e2"
up2_rss=$(cat "$T/rss")
timed "$T/a" recv --download-dir "$T/dla" >/dev/null 2>>"$T/e3"
down2_rss=$(cat "$T/rss")
check big_back cmp -s "$T/big.bin" "$T/dla/big.bin"
srv_hwm=$(hwm)
echo "  figures: ${BIG_MIB} MiB file: upload $(python3 -c "print(f'{$BIG_MIB/($t1-$t0):.0f}')") MiB/s," \
	"download+decrypt $(python3 -c "print(f'{$BIG_MIB/($t2-$t1):.0f}')") MiB/s (CLI end to end)"
echo "  figures: peak RSS veil send ${up_rss} KiB / ${up2_rss} KiB, veil recv ${down_rss} KiB / ${down2_rss} KiB, veild VmHWM ${srv_hwm} KiB (limit ${LIMIT_KB} KiB)"
check cli_memory_below_64MiB [ "$up_rss" -lt $LIMIT_KB ] && [ "$down_rss" -lt $LIMIT_KB ] &&
	[ "$up2_rss" -lt $LIMIT_KB ] && [ "$down2_rss" -lt $LIMIT_KB ]
check veild_memory_below_64MiB [ "$srv_hwm" -lt $LIMIT_KB ]
stop

# Over the limit: a server with a 1 MiB maximum.
"$BIN/veild" --data "$T/srv" --chat-port "$CP" --http-port "$HP" "${IT_STORE_ARGS[@]}" --blob-max-size 1048576 \
	>>"$T/veild.log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -sf "$URL/.well-known/veil/provisioning" >/dev/null 2>&1 && break; sleep 0.1; done
head -c 2000000 /dev/urandom >"$T/two.bin"
va send "$B" --file "$T/two.bin" >/dev/null 2>"$T/e4"
check too_large grep -q "upload refused (HTTP 413: blob too large)" "$T/e4"
# A progress bar on a terminal (script gives the command a pseudo-terminal).
if command -v script >/dev/null; then
	VEIL_HOME=$T/a script -qec "$BIN/veil send $B --file $T/photo.jpg" /dev/null >"$T/tty" 2>&1
	check progress_on_terminal grep -q "upload photo.jpg 100% \[=" "$T/tty"
fi
stop

[ $fails = 0 ]

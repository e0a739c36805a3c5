#!/bin/bash
# veil log as a history against a real veild on loopback: every message type
# in words (texts, group texts with the group's name, files with name and
# size, receipts), ordered by date, and the filters --peer (ID or group),
# --since, --limit, --grep and --json (JSON Lines).
set -u
. "$(dirname "$0")/lib.sh"
it_setup log --dir-rate 100000 --http-conn-rate 1000000
v() { local who=$1; shift; VEIL_HOME=$T/$who "$BIN/veil" "$@"; }
# py FILE EXPR: a Python assertion over the JSON lines of FILE as `rows`.
py() {
	python3 -c "
import json,sys
rows=[json.loads(l) for l in open('$1') if l.strip()]
$2
" || { echo "  in $1:"; sed 's/^/    /' "$1"; return 1; }
}

start
A=$(v a init --server "$URL" --nickname Alice)
B=$(v b init --server "$URL" --nickname Bob)
C=$(v c init --server "$URL" --nickname Carol)

M1=$(v a send "$B" "Hello Bob")
v b recv >/dev/null
M2=$(v b send "$A" "Hi Alice")
G=$(v a group create Hikers "$B" "$C")
v b recv >/dev/null
v c recv >/dev/null
MG=$(v b group send "$G" "Sunday at nine?")
printf 'a map' >"$T/map.pdf"
MF=$(v a group send "$G" --file "$T/map.pdf" --caption "the route")
head -c 1234 /dev/urandom >"$T/photo.jpg"
v a send "$B" --file "$T/photo.jpg" >/dev/null
v a recv >/dev/null
v b recv --download-dir "$T/dl" >/dev/null
v c recv --download-dir "$T/dlc" >/dev/null

v b log >"$T/b.log"
check log_text grep -q "<- $A: Hello Bob$" "$T/b.log"
check log_sent_text_state grep -q "$M2 -> $A: Hi Alice \[received\]$" "$T/b.log"
check log_group_text_with_name grep -q "$MG -> in Hikers ($G): Sunday at nine?" "$T/b.log"
check log_group_file_words grep -q "$MF <- $A in Hikers ($G): file map.pdf (5 bytes, application/pdf): the route" "$T/b.log"
check log_file_words grep -q "<- $A: file photo.jpg (1234 bytes, image/jpeg)$" "$T/b.log"
check log_group_setup_words grep -q "<- $A in Hikers ($G): group setup: members $A (creator)" "$T/b.log"
check log_no_hex_types bash -c "! grep -q '(0x' $T/b.log"
v a log >"$T/a.log"
check log_receipt_words grep -q "<- $B: receipt: received $M1" "$T/a.log"

# Ordered by date, whatever order the messages were stored in.
check log_by_date python3 -c "
import re
d=[re.match(r'\[([^]]+)\]', l).group(1) for l in open('$T/b.log')]
assert d and d==sorted(d), d
"

# JSON Lines: one object per line, words for the status.
v b log --json >"$T/b.json"
check log_json_lines py "$T/b.json" "
f=[r for r in rows if r['type']=='group-file']
assert len(f)==1 and f[0]['name']=='map.pdf' and f[0]['size']==5 and f[0]['caption']=='the route', f
assert f[0]['group']=={'id':'$G','creator':'$A','name':'Hikers'}, f
t=[r for r in rows if r['type']=='text' and r['dir']=='out']
assert t and t[0]['status']=='received' and t[0]['text']=='Hi Alice', t
"
v a log --json >"$T/a.json"
check log_json_receipt py "$T/a.json" "
r=[r for r in rows if r['type']=='receipt']
assert r and r[0]['status']=='received' and '$M1' in r[0]['ids'], r
"

# Filters.
v b log --peer "$G" >"$T/g.log"
check log_peer_group bash -c "[ \$(wc -l <$T/g.log) -ge 3 ] && ! grep -v '($G)' $T/g.log"
v b log --peer "$A" --json >"$T/pa.json"
check log_peer_id py "$T/pa.json" "assert rows and all(r['peer']=='$A' for r in rows), rows"
v b log --grep 'SUNDAY' >"$T/gr.log"
check log_grep bash -c "[ \$(wc -l <$T/gr.log) = 1 ] && grep -q 'Sunday at nine' $T/gr.log"
v b log --limit 2 >"$T/l2.log"
check log_limit_newest bash -c "[ \$(wc -l <$T/l2.log) = 2 ] && diff <(tail -2 $T/b.log) $T/l2.log"
v b log --since 1h >"$T/s1.log"
check log_since_duration cmp -s "$T/b.log" "$T/s1.log"
v b log --since 2999-01-01 >"$T/s2.log"
check log_since_future_empty [ ! -s "$T/s2.log" ]
v b log --since "$(date -u +%Y-%m-%d)" >"$T/s3.log"
check log_since_date cmp -s "$T/b.log" "$T/s3.log"
bad_since() {
	v b log --since yesterday >/dev/null 2>"$T/err"
	[ $? = 2 ] && grep -q 'since needs a date' "$T/err"
}
check log_bad_since bad_since
stop
exit $fails

#!/bin/bash
# The veil CLI against a real veild on loopback, as a newcomer uses it:
# two identities exchange messages both ways, offline delivery, receipts,
# JSON output, and one clear error line for each common mistake.
set -u
. "$(dirname "$0")/lib.sh"
it_setup cli
# Runs a veil command that must fail with exactly one stderr line matching a pattern.
fails_with() { # home, pattern, args...
	local home=$1 pat=$2; shift 2
	VEIL_HOME=$home "$BIN/veil" "$@" >"$T/out" 2>"$T/err"
	local rc=$?
	[ $rc -ne 0 ] && [ "$(wc -l <"$T/err")" = 1 ] && grep -qi -- "$pat" "$T/err" ||
		{ echo "  rc=$rc stderr: $(cat "$T/err")"; return 1; }
}

start
va() { VEIL_HOME=$T/a "$BIN/veil" "$@"; }
vb() { VEIL_HOME=$T/b "$BIN/veil" "$@"; }
KEY=$(curl -sf "$URL/.well-known/veil/provisioning" | head -1 | python3 -c 'import sys,json,base64; print(base64.b64decode(json.load(sys.stdin)["chat"]["publicKey"]).hex())')

A=$(va init --server "$URL" --server-key "$KEY" --nickname Alice)
B=$(vb init --server "$URL" --nickname Bob)
check init_prints_ids [ ${#A} = 8 ] && [ ${#B} = 8 ] && [ "$A" != "$B" ]
check whoami bash -c "VEIL_HOME=$T/a $BIN/veil whoami | grep -q '^$A [0-9a-f]\{64\}\$'"

# Alice writes to Bob, who is offline (the CLI only connects to send or receive).
MID=$(va send "$B" "Hello Bob, grüezi")
check send_prints_id bash -c "[[ '$MID' =~ ^[0-9a-f]{16}$ ]]"
vb recv >"$T/b1" 2>"$T/b1.err"
check recv_human grep -q "$A: Hello Bob, grüezi" "$T/b1"
# Bob's recv acked the message: a second recv finds nothing.
vb recv >"$T/b2"
check queue_drained [ ! -s "$T/b2" ]

vb send "$A" "Hi Alice" >/dev/null
va recv --json >"$T/a1"
check recv_json_text python3 -c "
import json,sys
rows=[json.loads(l) for l in open('$T/a1')]
t=[r for r in rows if r['type']=='text']
assert len(t)==1 and t[0]['from']=='$B' and t[0]['text']=='Hi Alice', rows
assert len(t[0]['id'])==16 and t[0]['date'].endswith('Z'), t
r=[r for r in rows if r['type']=='receipt']
assert r and r[0]['status']=='received' and '$MID' in r[0]['ids'], rows
"

# Many messages queued for an offline recipient arrive complete and in order.
for i in $(seq 1 30); do va send "$B" "msg $i" >/dev/null || echo "send $i failed"; done
vb recv --json >"$T/b3"
check offline_queue_in_order python3 -c "
import json
t=[json.loads(l)['text'] for l in open('$T/b3') if json.loads(l)['type']=='text']
assert t==['msg %d'%i for i in range(1,31)], t
"

# A waiting receiver gets a message sent while it waits.
vb recv --wait 6 --json >"$T/b4" &
rpid=$!
sleep 1.5
va send "$B" "live one" >/dev/null
wait $rpid
check recv_wait_live grep -q '"text":"live one"' "$T/b4"

# Contacts.
va contact add "$B" >/dev/null
check contact_list bash -c "VEIL_HOME=$T/a $BIN/veil contact list | grep -q '^$B '"
OTHER=$(python3 -c 'import os; print(os.urandom(32).hex())')
check contact_add_offline bash -c "VEIL_HOME=$T/a $BIN/veil contact add ECHOECHO --key $OTHER >/dev/null && VEIL_HOME=$T/a $BIN/veil contact list | grep -q '^ECHOECHO $OTHER'"

# One clear line for each common mistake.
check err_unknown_id fails_with "$T/a" "unknown ID" send ZZZZ9999 "hi"
check err_bad_id fails_with "$T/a" "ID" send lowercase "hi"
LONG=$(python3 -c 'print("x"*7000)')
check err_too_long fails_with "$T/a" "too long" send "$B" "$LONG"
WRONG=$(python3 -c 'import os; print(os.urandom(32).hex())')
check err_wrong_server_key fails_with "$T/c" "key" init --server "$URL" --server-key "$WRONG"
check err_not_initialised fails_with "$T/nobody" "init" send "$B" "hi"
unknown_cmd() {
	VEIL_HOME=$T/a "$BIN/veil" frobnicate >/dev/null 2>"$T/err" && return 1
	head -1 "$T/err" | grep -q "unknown command 'frobnicate'"
}
check err_unknown_command unknown_cmd

# Everyday details: --version, '--' ends the options, an option after the text
# is an error (not part of the text), recv --json with nothing waiting.
check version bash -c "$BIN/veil --version | grep -qx 'veil [0-9]\+\.[0-9]\+\.[0-9]\+'"
vb recv >/dev/null 2>&1
option_after_text() {
	va send "$B" "hi" --json >"$T/out" 2>"$T/err"
	local rc=$?
	[ $rc = 2 ] && [ ! -s "$T/out" ] && head -1 "$T/err" | grep -q "unexpected option '--json'" ||
		{ echo "  rc=$rc stderr: $(cat "$T/err")"; return 1; }
}
check send_option_after_text_is_error option_after_text
va send "$B" -- --json >/dev/null
va send "$B" -- -5 degrees >/dev/null
vb recv --json >"$T/dd"
check send_double_dash_ends_options python3 -c "
import json
t=[json.loads(l)['text'] for l in open('$T/dd') if json.loads(l)['type']=='text']
assert t==['--json','-5 degrees'], t
"
check recv_json_nothing_waiting bash -c "VEIL_HOME=$T/b $BIN/veil recv --json >$T/empty 2>$T/empty.err && [ ! -s $T/empty ] && [ ! -s $T/empty.err ]"

# Every --json is JSON Lines (one object per line), and the status of a message
# is one of the same words in every command.
G1=$(va group create One "$B")
G2=$(va group create Two "$B")
va send "$B" "for the status words" >/dev/null
vb recv >/dev/null
: >"$T/jl"
for args in "whoami --json" "contact list --json" "group list --json" "group show $G1 --json" \
	"log --json" "recv --json"; do
	# shellcheck disable=SC2086
	va $args >>"$T/jl.$(echo $args | cut -d' ' -f1-2 | tr ' ' _)" || echo "  veil $args failed"
done
check json_lines_everywhere python3 -c "
import json, glob
n = {}
for f in glob.glob('$T/jl.*'):
    for l in open(f):
        o = json.loads(l)
        assert isinstance(o, dict), (f, l)
        n[f] = n.get(f, 0) + 1
assert n['$T/jl.group_list'] == 2, n
assert len(n) == 6, n
"
check status_words_everywhere python3 -c "
import json, glob
words = {'sent', 'received', 'read', 'acknowledged', 'declined'}
seen = 0
for f in glob.glob('$T/jl.*'):
    for l in open(f):
        o = json.loads(l)
        if 'status' in o:
            assert o['status'] in words, o
            seen += 1
assert seen >= 2, seen
"

# init in a VEIL_HOME that cannot be written: one clear line, and no ID made
# on the server (the directory is checked before the server is asked).
ids_on_server() { it_sql 'SELECT count(*) FROM identities'; }
n_ids=$(ids_on_server)
touch "$T/afile"
check init_file_in_the_way fails_with "$T/afile/home" "cannot create VEIL_HOME $T/afile/home: not a directory" init --server "$URL"
check init_home_is_a_file fails_with "$T/afile" "VEIL_HOME $T/afile is not a directory" init --server "$URL"
mkdir -p "$T/ro"
if [ "$(id -u)" = 0 ]; then
	# Root ignores modes: a read-only bind mount in a private mount namespace.
	unshare -m sh -c "mount --bind '$T/ro' '$T/ro' && mount -o remount,bind,ro '$T/ro' &&
		VEIL_HOME='$T/ro' '$BIN/veil' init --server '$URL'" >"$T/out" 2>"$T/err"
else
	chmod 0555 "$T/ro"
	VEIL_HOME=$T/ro "$BIN/veil" init --server "$URL" >"$T/out" 2>"$T/err"
fi
check init_read_only_home bash -c "[ ! -s $T/out ] && [ \"\$(wc -l <$T/err)\" = 1 ] && grep -q 'cannot write VEIL_HOME $T/ro: \(read-only file system\|permission denied\)' $T/err || { cat $T/err; false; }"
chmod 0755 "$T/ro"
same_ids() { [ -n "$n_ids" ] && [ "$(ids_on_server)" = "$n_ids" ]; }
check init_failures_make_no_id same_ids
stop
check err_unreachable fails_with "$T/a" "cannot reach" send "$B" "hi"
check err_unreachable_init fails_with "$T/d" "reach" init --server "$URL"

# The server's files never hold the plaintext.
check no_plaintext_on_server bash -c "! grep -r -q -a 'grüezi\|live one\|msg 17' '$T/srv'"

exit $fails

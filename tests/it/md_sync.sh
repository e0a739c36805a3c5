#!/bin/bash
# Multi-device sync with the veil CLI against a real veild on loopback: three
# devices of Alice (linked with `veil device link` / `veil init --join`) and
# Bob. `veil read` on one device: Bob gets a read receipt, every device's log
# shows [read]; read receipts off (`veil settings`) on one device reach the
# others; the nickname (`veil nickname`) and groups made on one device are
# the same on all (`veil group list`); a file from Bob reaches every device.
set -u
. "$(dirname "$0")/lib.sh"
it_setup md_sync
start
va() { VEIL_HOME=$T/a "$BIN/veil" "$@"; }
va2() { VEIL_HOME=$T/a2 "$BIN/veil" "$@"; }
va3() { VEIL_HOME=$T/a3 "$BIN/veil" "$@"; }
vb() { VEIL_HOME=$T/b "$BIN/veil" "$@"; }
A=$(va init --server "$URL" --nickname Alice 2>>"$T/err") || { echo "FAIL init"; exit 1; }
B=$(vb init --server "$URL" --nickname Bob 2>>"$T/err") || { echo "FAIL init"; exit 1; }
link() { # home label
	va device link --yes --timeout 60 >"$T/link.out" 2>"$T/link.err" &
	local lpid=$!
	for _ in $(seq 100); do grep -q '^threema://device-group/join#' "$T/link.out" && break; sleep 0.1; done
	VEIL_HOME=$1 "$BIN/veil" init --join "$(head -1 "$T/link.out")" --label "$2" --yes >/dev/null 2>>"$T/err"
	local rc=$?
	wait "$lpid" && [ $rc = 0 ]
}
check link_second link "$T/a2" phone
check link_third link "$T/a3" laptop
va send "$B" "hello bob" >/dev/null
vb recv >/dev/null
vb send "$A" "read me" >/dev/null
va recv >/dev/null; va2 recv >/dev/null; va3 recv >/dev/null
check unread_before bash -c "! VEIL_HOME=$T/a $BIN/veil log --peer $B | grep 'read me' | grep -q '\[read\]'"
check read_on_phone bash -c "[ \"\$(VEIL_HOME=$T/a2 $BIN/veil read $B)\" = 1 ]"
check read_on_phone_log bash -c "VEIL_HOME=$T/a2 $BIN/veil log --peer $B | grep 'read me' | grep -q '\[read\]'"
va recv >/dev/null; va3 recv >/dev/null
check read_on_desk bash -c "VEIL_HOME=$T/a $BIN/veil log --peer $B | grep 'read me' | grep -q '\[read\]'"
check read_on_laptop bash -c "VEIL_HOME=$T/a3 $BIN/veil log --peer $B --json | grep 'read me' | grep -q '\"read\":true'"
check nothing_left_to_read bash -c "[ \"\$(VEIL_HOME=$T/a $BIN/veil read $B)\" = 0 ]"
check bob_gets_one_read_receipt bash -c "[ \"\$(VEIL_HOME=$T/b $BIN/veil recv --json | grep -c '\"status\":\"read\"')\" = 1 ]"
check bob_sees_read bash -c "VEIL_HOME=$T/b $BIN/veil log --peer $A | grep 'hello' >/dev/null && VEIL_HOME=$T/b $BIN/veil log --peer $A | grep 'read me' >/dev/null && VEIL_HOME=$T/b $BIN/veil log --peer $A | grep -q 'read me.*\[read\]'"
# Bob's receipts for Alice's message reach every device of Alice.
vb read "$A" >/dev/null
va recv >/dev/null; va2 recv >/dev/null; va3 recv >/dev/null
for h in a a2 a3; do
	check "out_read_$h" bash -c "VEIL_HOME=$T/$h $BIN/veil log --peer $B | grep 'hello bob' | grep -q '\[read\]'"
done
# Read receipts off on the laptop: off everywhere; a read sends Bob nothing.
check settings_default bash -c "[ \"\$(VEIL_HOME=$T/a $BIN/veil settings)\" = 'read-receipts on' ]"
check settings_off va3 settings read-receipts off
va recv >/dev/null; va2 recv >/dev/null
check settings_off_desk bash -c "[ \"\$(VEIL_HOME=$T/a $BIN/veil settings)\" = 'read-receipts off' ]"
check settings_off_phone bash -c "[ \"\$(VEIL_HOME=$T/a2 $BIN/veil settings)\" = 'read-receipts off' ]"
vb send "$A" "quiet read" >/dev/null
va recv >/dev/null; va2 recv >/dev/null
check read_quietly bash -c "[ \"\$(VEIL_HOME=$T/a2 $BIN/veil read $B)\" = 1 ]"
va recv >/dev/null
check quiet_read_on_desk bash -c "VEIL_HOME=$T/a $BIN/veil log --peer $B | grep 'quiet read' | grep -q '\[read\]'"
check bob_gets_no_receipt bash -c "! VEIL_HOME=$T/b $BIN/veil recv --json | grep -q '\"status\":\"read\"'"
check settings_usage bash -c "! VEIL_HOME=$T/a $BIN/veil settings read-receipts maybe 2>/dev/null"
# The nickname set on the phone.
check nickname_set va2 nickname "Alice P."
va recv >/dev/null; va3 recv >/dev/null
check nickname_desk bash -c "[ \"\$(VEIL_HOME=$T/a $BIN/veil nickname)\" = 'Alice P.' ]"
check nickname_laptop bash -c "[ \"\$(VEIL_HOME=$T/a3 $BIN/veil whoami --json | grep -o '\"nickname\":\"[^\"]*\"')\" = '\"nickname\":\"Alice P.\"' ]"
# Groups: made on the desk, renamed on the laptop; `veil group list` agrees.
G=$(va group create Hikers "$B" 2>>"$T/err")
va2 recv >/dev/null; va3 recv >/dev/null
check group_on_all bash -c "[ -n '$G' ] && VEIL_HOME=$T/a2 $BIN/veil group list | grep -q Hikers && VEIL_HOME=$T/a3 $BIN/veil group list | grep -q Hikers"
check group_rename va3 group rename "$G" Climbers
va recv >/dev/null; va2 recv >/dev/null
check group_lists_agree bash -c "[ \"\$(VEIL_HOME=$T/a $BIN/veil group list)\" = \"\$(VEIL_HOME=$T/a2 $BIN/veil group list)\" ] && [ \"\$(VEIL_HOME=$T/a $BIN/veil group list)\" = \"\$(VEIL_HOME=$T/a3 $BIN/veil group list)\" ] && VEIL_HOME=$T/a $BIN/veil group list | grep -q Climbers"
# A file from Bob: each of Alice's devices downloads it (none deletes it for the others).
head -c 70000 /dev/urandom >"$T/doc.bin"
vb send "$A" --file "$T/doc.bin" >/dev/null 2>>"$T/err"
for h in a a2 a3; do
	check "file_on_$h" bash -c "VEIL_HOME=$T/$h $BIN/veil recv --download-dir $T/dl-$h >/dev/null 2>>$T/err && cmp -s $T/doc.bin $T/dl-$h/doc.bin"
done
# A file from the desk to Bob: Bob's download does not take it from the phone.
vb recv >/dev/null 2>>"$T/err"
va2 recv >/dev/null 2>>"$T/err"
va send "$B" --file "$T/doc.bin" >/dev/null 2>>"$T/err"
check file_to_bob bash -c "VEIL_HOME=$T/b $BIN/veil recv --download-dir $T/dl-b >/dev/null 2>>$T/err && cmp -s $T/doc.bin $T/dl-b/doc.bin"
check sent_file_on_phone bash -c "VEIL_HOME=$T/a2 $BIN/veil recv --download-dir $T/dl-a2-out >/dev/null 2>>$T/err && cmp -s $T/doc.bin $T/dl-a2-out/doc.bin"
[ "$fails" = 0 ]

#!/bin/bash
# The server's keys change (its operator made new ones): the client says so
# and `veil server accept-key` pins the new ones after showing old and new
# fingerprints, instead of an edit of profile.json by hand.
set -u
. "$(dirname "$0")/lib.sh"
it_setup server_key
v() { local who=$1; shift; VEIL_HOME=$T/$who "$BIN/veil" "$@"; }
start
A=$(v a init --server "$URL" --nickname Alice)
B=$(v b init --server "$URL" --nickname Bob)
v a server key >"$T/k1"
check key_shows_fingerprint grep -q "^fingerprint: *[0-9a-f]\{4\}\( [0-9a-f]\{4\}\)\{7\}$" "$T/k1"
check accept_unchanged bash -c "VEIL_HOME=$T/a $BIN/veil server accept-key | grep -q 'nothing to change'"

# New chat and signature keys.
stop
rm "$T/srv/chat.key" "$T/srv/sign.key"
start
v a send "$B" "hello" >/dev/null 2>"$T/err"
check wrong_key_hint grep -q "wrong server key.*veil server accept-key" "$T/err"
# No answer (stdin is /dev/null): nothing changes.
v a server accept-key >"$T/out" 2>"$T/err" </dev/null
rc=$?
check accept_needs_yes bash -c "[ $rc = 1 ] && grep -q 'not confirmed' $T/err && cmp -s <(VEIL_HOME=$T/a $BIN/veil server key) $T/k1"
check accept_shows_both grep -q "chat key: *CHANGED" "$T/out"
echo n | v a server accept-key >/dev/null 2>&1
check accept_no_keeps cmp -s <(v a server key) "$T/k1"
echo y | v a server accept-key >"$T/out" 2>&1
check accept_yes grep -q "pinned the server's new keys" "$T/out"
check key_changed bash -c "! cmp -s <(VEIL_HOME=$T/a $BIN/veil server key) $T/k1"
check send_after_accept bash -c "VEIL_HOME=$T/a $BIN/veil send $B 'after the change' >/dev/null"
v b server accept-key --yes >/dev/null 2>&1
v b recv >"$T/r"
check recv_after_accept grep -q "after the change" "$T/r"
stop
exit $fails

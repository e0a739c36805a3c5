#!/bin/bash
# The browser client as a linked device: headless Chromium links to A's CLI
# identity, leads the device group, shows B's message (which A's CLI
# device gets by reflection), sends an answer that B receives and A's CLI
# device sees as sent by another device, shows what the CLI device sends,
# notifies of a message that arrives while the tab is hidden (and not while
# shown), verifies B by fingerprint (A's CLI device then shows B green) and shows C
# green once the CLI device verifies C, lists the devices and renames
# itself, shows a group B creates and writes in it, finds messages by search (this conversation or all), shows a message the server replays once, keeps only ciphertext in IndexedDB, blocks an injected inline script,
# and after a reload is locked until the passphrase (a wrong one refused),
# with its history; at the end it drops A's CLI device. The checks are in web/test/chat.mjs; screenshots in
# $T/shots (KEEP=1 keeps them).
set -u
. "$(dirname "$0")/lib.sh"
web_require
it_setup web_chat
# A Gateway ID that replays one message (web/test/gw_replay.py); the data
# directory exists once veild has run.
start
stop
read -r GSK GPK < <(python3 examples/gateway-echo-bot.py --keygen)
read -r GID GSEC < <("$BIN/veilctl" gateway --data "$T/srv" "${IT_STORE_ARGS[@]}" create --id '*REPLAY1' --public-key "$GPK")
start
va() { VEIL_HOME=$T/a "$BIN/veil" "$@"; }
vb() { VEIL_HOME=$T/b "$BIN/veil" "$@"; }
A=$(va init --server "$URL" --nickname Alice 2>>"$T/err") || { echo "FAIL init"; exit 1; }
B=$(vb init --server "$URL" --nickname Bob 2>>"$T/err") || { echo "FAIL init"; exit 1; }
C=$(VEIL_HOME=$T/c "$BIN/veil" init --server "$URL" --nickname Carol 2>>"$T/err") || { echo "FAIL init"; exit 1; }
check a_knows_b va send "$B" "hello bob"
va device link --yes --timeout 90 >"$T/link.out" 2>"$T/link.err" &
lpid=$!
for _ in $(seq 100); do grep -q '^threema://device-group/join#' "$T/link.out" && break; sleep 0.1; done
LINK=$(head -1 "$T/link.out")
T=$T BIN=$BIN URL=$URL A=$A B=$B LINK=$LINK C=$C GID=$GID GSEC=$GSEC GSK=$GSK node web/test/chat.mjs 2>"$T/node.err" || fails=$((fails + 1))
check cli_link_finished wait "$lpid"
[ "$fails" = 0 ] || { tail -5 "$T/node.err"; tail -20 "$T/veild.log"; }
[ "$fails" = 0 ]

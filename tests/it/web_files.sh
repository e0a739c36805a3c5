#!/bin/bash
# Files and delivered/read states in the browser client, linked as a device
# of A (whose CLI device stays): B's file (random bytes) and B's PNG (with
# its thumbnail shown inline) reach the browser, which downloads them with
# progress, decrypts and offers them to save (the saved file is
# byte-identical); a tampered blob shows an error, not a download; the
# browser sends a file and an image (picked, and dropped on the
# conversation), B saves them byte-identical (and the image's thumbnail),
# and A's CLI device sees them as sent from another device; a file the
# browser sends to B's group reaches B byte-identical, and B's file to the
# group shows in the browser. States: what
# the browser sends shows sent, then delivered once B receives it, then read
# once B reads it (B's daemon, markRead); opening B's conversation in the
# browser sends B a read receipt (`veil log` on B shows its message read).
# Rows stay: a receipt changes a message's state in place, and a file's
# download button keeps the keyboard focus (and its row its element) through
# the download (Enter), a new message from B and a receipt; the same button
# then saves the file again.
# The checks are in web/test/files.mjs; screenshots in $T/shots (KEEP=1 keeps them).
set -u
. "$(dirname "$0")/lib.sh"
web_require
it_setup web_files
start
va() { VEIL_HOME=$T/a "$BIN/veil" "$@"; }
vb() { VEIL_HOME=$T/b "$BIN/veil" "$@"; }
A=$(va init --server "$URL" --nickname Alice 2>>"$T/err") || { echo "FAIL init"; exit 1; }
B=$(vb init --server "$URL" --nickname Bob 2>>"$T/err") || { echo "FAIL init"; exit 1; }
check a_knows_b va send "$B" "hello bob"
vb recv >/dev/null 2>>"$T/err"
va device link --yes --timeout 90 >"$T/link.out" 2>"$T/link.err" &
lpid=$!
for _ in $(seq 100); do grep -q '^threema://device-group/join#' "$T/link.out" && break; sleep 0.1; done
LINK=$(head -1 "$T/link.out")
T=$T BIN=$BIN URL=$URL A=$A B=$B LINK=$LINK node web/test/files.mjs 2>"$T/node.err" || fails=$((fails + 1))
check cli_link_finished wait "$lpid"
[ "$fails" = 0 ] || { tail -5 "$T/node.err"; tail -20 "$T/veild.log"; }
[ "$fails" = 0 ]

#!/bin/bash
# A new identity created in the browser, as `veil init` does: on a server
# that wants an invite code it is refused without one, then the directory
# gives it an ID for the browser's key, the browser registers as the first
# device of a new device group, writes to B's CLI identity and gets B's
# answer; after a reload the passphrase opens the same identity with its
# history, still receiving. The checks are in web/test/newid.mjs.
set -u
. "$(dirname "$0")/lib.sh"
web_require
it_setup web_newid --signup invite
start
CODE=$("$BIN/veilctl" --data "$T/srv" invite create --uses 2 2>>"$T/err")
B=$(VEIL_HOME=$T/b "$BIN/veil" init --server "$URL" --invite "$CODE" --nickname Bob 2>>"$T/err") || { echo "FAIL init"; exit 1; }
T=$T BIN=$BIN URL=$URL B=$B INVITE=$CODE node web/test/newid.mjs 2>"$T/node.err" || fails=$((fails + 1))
[ "$fails" = 0 ] || { tail -5 "$T/node.err"; tail -20 "$T/veild.log"; }
[ "$fails" = 0 ]

#!/bin/bash
# The browser client with its tab open while its connection stalls (Chromium's
# offline mode leaves an open WebSocket open but silent: the client's echo
# request goes unanswered and it gives the connection up), while the network
# goes away and comes back, and while veild is killed (kill -9) and started
# again on the same ports and data directory: B's messages of meanwhile show once each, what the
# browser wrote while it could not send reaches B once each, and the attempts to
# connect back off. The browser reaches veild through a forwarder the test cuts
# (veild's --public-url names it). The checks are in web/test/offline.mjs.
set -u
. "$(dirname "$0")/lib.sh"
web_require
PP=$(port)
it_setup web_offline --public-url "http://127.0.0.1:$PP" --signup open
start
ARGS=$(printf '%s\n' --data "$T/srv" --chat-port "$CP" --http-port "$HP" "${IT_STORE_ARGS[@]}" \
	${VEIL_IT_CHAT_THREADS:+--chat-threads "$VEIL_IT_CHAT_THREADS"} "${VEILD_EXTRA[@]}")
# offline.mjs makes B's CLI identity (once its forwarder is up: the server's
# announced URLs name it), kills this veild and starts (and at its end stops) the next one itself.
disown "$pid"
T=$T BIN=$BIN URL=$URL PROXY_PORT=$PP HP=$HP VEILD_PID=$pid VEILD_ARGS=$ARGS \
	node web/test/offline.mjs 2>"$T/node.err" || fails=$((fails + 1))
pid=
[ "$fails" = 0 ] || { tail -n 5 "$T/node.err"; tail -n 30 "$T/veild.log"; }
[ "$fails" = 0 ]

#!/bin/bash
# Per-address limits of the HTTP listener against a real veild: identity/
# blob_cred (which tells known from unknown IDs) answers 429 once the
# directory's dir-rate is used up instead of serving as an unlimited oracle;
# a fourth connection from one address is closed with --http-conn-per-addr 3,
# and the log line about it holds counts, never the address.
set -u
. "$(dirname "$0")/lib.sh"
it_setup http_limits --http-conn-per-addr 3

start
# 130 lookups of an unknown ID on one keep-alive connection (dir-rate is 120).
urls=()
for _ in $(seq 130); do urls+=(-o /dev/null "$URL/directory/identity/blob_cred"); done
curl -s -w '%{http_code}\n' -H 'Content-Type: application/json' \
	-d '{"identity":"ZZZZZZZZ"}' "${urls[@]}" >"$T/codes"
ok=$(grep -c '^200$' "$T/codes")
limited=$(grep -c '^429$' "$T/codes")
echo "  blob_cred: $ok answered, $limited refused"
check blob_cred_limited [ "$limited" -ge 9 ] && [ "$ok" -le 121 ] && [ $((ok + limited)) = 130 ]

# Three connections held open, a fourth refused before it is read.
python3 - "$HP" >"$T/conns" <<'PY'
import socket, sys
port = int(sys.argv[1])
def conn():
    s = socket.create_connection(("127.0.0.1", port), timeout=3)
    s.sendall(b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        return s, s.recv(100).startswith(b"HTTP/1.1 404")
    except OSError:
        return s, False
held = [conn() for _ in range(3)]
extra = conn()
print(sum(ok for _, ok in held), int(extra[1]))
PY
check conn_cap [ "$(cat "$T/conns")" = "3 0" ]
sleep 0.2
check conn_cap_logged grep -q 'http: refused 1 connections over the per-address cap' "$T/veild.log"
check log_has_no_address bash -c "! grep '127\.0\.0\.1' '$T/veild.log' | grep -qv -e '^  ' -e 'veild '"
stop

[ $fails = 0 ]

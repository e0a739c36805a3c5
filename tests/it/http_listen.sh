#!/bin/bash
# The HTTP listener binds exactly --listen, as the chat port does: with
# 127.0.0.1 a connection to 127.0.0.2 (also loopback on Linux, so a wildcard
# bind would answer it) is refused on both ports, one to 127.0.0.1 works.
set -u
. "$(dirname "$0")/lib.sh"
it_setup http_listen --listen 127.0.0.1
# Prints "ok" if a TCP connection to host:port is accepted, else the errno name.
tcp() { # host, port
	python3 -c '
import errno, socket, sys
s = socket.socket()
s.settimeout(3)
rc = s.connect_ex((sys.argv[1], int(sys.argv[2])))
print("ok" if rc == 0 else errno.errorcode.get(rc, rc))' "$1" "$2"
}

start
check http_on_listen_address [ "$(tcp 127.0.0.1 "$HP")" = ok ]
check http_not_on_other_address [ "$(tcp 127.0.0.2 "$HP")" = ECONNREFUSED ]
check chat_not_on_other_address [ "$(tcp 127.0.0.2 "$CP")" = ECONNREFUSED ]
check provisioning_served curl -sf -o /dev/null "$URL/.well-known/veil/provisioning"
stop

[ $fails = 0 ]

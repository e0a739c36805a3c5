#!/bin/bash
# The reverse-proxy recipe of docs/OPERATIONS.md, tested: nginx (Debian's)
# terminates TLS with a certificate this test makes, in front of veild's HTTP
# services; the chat port is reached directly. veild announces the https URL
# (--public-url) and two users made with `veil init --server https://...
# --cacert` exchange a message and a file through it. nginx's access log must
# show every HTTP request the clients made, and with nginx stopped the HTTP
# services must be out of the clients' reach while chat still works.
# Certificates: init without --cacert, or with another CA, is refused.
set -u
. "$(dirname "$0")/lib.sh"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [ ! -x "$NGINX" ]; then
	echo "tls_proxy: nginx is missing (scripts/install-deps installs nginx-light)"
	exit 1
fi
it_setup tls_proxy
NP=$(port)
PUB=https://127.0.0.1:$NP
VEILD_EXTRA=(--public-url "$PUB" --trusted-proxy 127.0.0.1)
CTL() { "$BIN/veilctl" --data "$T/srv" "$@"; }
ngx_pid=
trap 'ngx_stop 2>/dev/null; stop 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT

# A certificate for 127.0.0.1 (the name the clients use) and another one
# that has nothing to do with this server.
mkcert() { # name
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
		-subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" \
		-keyout "$T/$1.key" -out "$T/$1.pem" 2>/dev/null
}
mkcert proxy
mkcert other

# The recipe's server block with this test's ports, certificate and files.
mkdir -p "$T/nginx"
cat >"$T/nginx/nginx.conf" <<EOF
# Test-only settings: foreground, files in the temp dir.
daemon off;
pid $T/nginx/nginx.pid;
error_log $T/nginx/error.log warn;
worker_processes 1;
$([ "$(id -u)" = 0 ] && echo "user root;")
events { worker_connections 256; }
http {
	client_body_temp_path $T/nginx/body;
	proxy_temp_path $T/nginx/proxy;
	fastcgi_temp_path $T/nginx/fastcgi;
	uwsgi_temp_path $T/nginx/uwsgi;
	scgi_temp_path $T/nginx/scgi;
	log_format veil '\$remote_addr "\$request" \$status';
	access_log $T/nginx/access.log veil;

	# From here on as in docs/OPERATIONS.md.
	map \$http_upgrade \$connection_upgrade { default upgrade; '' close; }
	server {
		listen 127.0.0.1:$NP ssl;
		ssl_certificate $T/proxy.pem;
		ssl_certificate_key $T/proxy.key;
		ssl_protocols TLSv1.2 TLSv1.3;
		client_max_body_size 0;
		location / {
			proxy_pass http://127.0.0.1:$HP;
			proxy_http_version 1.1;
			proxy_set_header Host \$host;
			proxy_set_header X-Forwarded-For \$remote_addr;
			proxy_set_header Forwarded "";
			proxy_set_header X-Forwarded-Proto https;
			proxy_set_header Upgrade \$http_upgrade;
			proxy_set_header Connection \$connection_upgrade;
			proxy_request_buffering off;
			proxy_buffering off;
			proxy_read_timeout 300s;
		}
	}
}
EOF
ngx_start() {
	"$NGINX" -p "$T/nginx" -c "$T/nginx/nginx.conf" -e "$T/nginx/error.log" \
		>>"$T/nginx/stdout.log" 2>&1 &
	ngx_pid=$!
	for _ in $(seq 100); do
		curl -sf --cacert "$T/proxy.pem" "$PUB/.well-known/veil/provisioning" >/dev/null 2>&1 &&
			return 0
		sleep 0.1
	done
	echo "nginx did not start"; cat "$T/nginx/error.log" "$T/nginx/stdout.log"; exit 1
}
ngx_stop() { [ -n "$ngx_pid" ] && kill "$ngx_pid" && wait "$ngx_pid"; ngx_pid=; }

start
ngx_start

# veild announces the proxy's URL for every HTTP endpoint, never its own port.
curl -sf --cacert "$T/proxy.pem" "$PUB/.well-known/veil/provisioning" | head -1 >"$T/prov.json"
check provisioning_announces_https python3 -c "
import json
d = json.load(open('$T/prov.json'))
assert d['directory']['url'] == '$PUB/directory/', d
assert d['blob']['uploadUrl'] == '$PUB/blob/upload', d
assert d['blob']['downloadUrl'] == '$PUB/blob/{blobId}', d
assert d['chat']['hostname'] == '127.0.0.1' and d['chat']['ports'] == [$CP], d
assert ':$HP' not in open('$T/prov.json').read()
"
check startup_names_public_url grep -q "public URL  $PUB" "$T/veild.log"

va() { VEIL_HOME=$T/a "$BIN/veil" "$@"; }
vb() { VEIL_HOME=$T/b "$BIN/veil" "$@"; }

# The certificate is verified: unknown to the system store, and against another CA.
VEIL_HOME=$T/x "$BIN/veil" init --server "$PUB" >/dev/null 2>"$T/x.err"
check init_without_ca_refused grep -qi "certificate" "$T/x.err"
VEIL_HOME=$T/y "$BIN/veil" init --server "$PUB" --cacert "$T/other.pem" >/dev/null 2>"$T/y.err"
check init_wrong_ca_refused grep -qi "certificate" "$T/y.err"
check refused_init_no_profile bash -c "[ ! -e $T/x/profile.json ] && [ ! -e $T/y/profile.json ]"
echo "not a certificate" >"$T/junk.pem"
VEIL_HOME=$T/z "$BIN/veil" init --server "$PUB" --cacert "$T/junk.pem" >/dev/null 2>"$T/z.err"
check init_junk_ca_refused grep -q "holds no PEM certificate" "$T/z.err"

# Published through a proxy, veild lets only invited people join by default.
check signup_default_invite grep -q "sign-up     invite" "$T/veild.log"
cp "$T/proxy.pem" "$T/ca.pem"
CODE=$(CTL invite create --uses 2 2>/dev/null)
A=$(va init --server "$PUB" --cacert "$T/ca.pem" --nickname Alice --invite "$CODE")
B=$(vb init --server "$PUB" --cacert "$T/ca.pem" --nickname Bob --invite "$CODE")
check init_through_proxy bash -c "[[ '$A' =~ ^[0-9A-Z]{8}$ ]] && [[ '$B' =~ ^[0-9A-Z]{8}$ ]]"
check profile_keeps_ca cmp -s "$T/ca.pem" "$T/a/ca.pem"
check profile_uses_public_dir grep -q "\"directory_url\": \"$PUB/directory/\"" "$T/a/profile.json"
# The CA file given to init may go away: the profile has its own copy.
rm "$T/ca.pem"

# A message round trip (chat direct) and a file (blob service through the proxy).
check contact_add_through_proxy va contact add "$B"
va send "$B" "hello through the proxy" >/dev/null
vb recv >"$T/r1"
check message_round_trip grep -q "$A: hello through the proxy" "$T/r1"
vb send "$A" "and back" >/dev/null
va recv >"$T/r2"
check message_back grep -q "$B: and back" "$T/r2"
head -c 300000 /dev/urandom >"$T/holiday.jpg"
va send "$B" --file "$T/holiday.jpg" >/dev/null 2>"$T/send.err"
vb recv --download-dir "$T/dl" >"$T/r3" 2>&1
check file_through_proxy cmp -s "$T/holiday.jpg" "$T/dl/holiday.jpg"

# Every kind of request the clients made is in nginx's log, answered.
L=$T/nginx/access.log
seen() { grep -qE "^127\.0\.0\.1 \"$1 HTTP/1\.1\" $2\$" "$L"; }
check log_provisioning seen "GET /\.well-known/veil/provisioning" 200
check log_identity_create seen "POST /directory/identity/create" 200
check log_identity_lookup seen "GET /directory/identity/$B" 200
check log_blob_cred seen "POST /directory/identity/blob_cred" 200
check log_blob_upload seen "POST /blob/upload" 200
check log_blob_download seen "GET /blob/[0-9a-f]{32}" 200
check log_blob_done seen "POST /blob/[0-9a-f]{32}/done" 204
# Init: one provisioning fetch and two challenge phases each, for A and B (the
# refused inits never got past TLS, so nginx logged nothing for them).
check log_init_count bash -c "[ \$(grep -c 'POST /directory/identity/create' $L) = 4 ]"

# With the proxy down the HTTP services are out of reach (no client falls
# back to veild's own port) while the chat port, reached directly, works.
ngx_stop
head -c 1000 /dev/urandom >"$T/note.txt"
va send "$B" --file "$T/note.txt" >/dev/null 2>"$T/down.err"
check no_bypass_when_proxy_down grep -q "127.0.0.1:$NP" "$T/down.err"
va send "$B" "chat without the proxy" >/dev/null
vb recv >"$T/r4"
check chat_direct grep -q "$A: chat without the proxy" "$T/r4"
ngx_start
va send "$B" --file "$T/note.txt" >/dev/null
vb recv --download-dir "$T/dl" >/dev/null 2>&1
check file_after_restart cmp -s "$T/note.txt" "$T/dl/note.txt"

# A second device for Bob, linked through the proxy: the rendezvous relay and
# the mediator are reached over wss:// at the public URL, verified with the CA.
vb device link --yes --timeout 60 >"$T/link.out" 2>"$T/link.err" &
lpid=$!
for _ in $(seq 100); do grep -q '^threema://device-group/join#' "$T/link.out" && break; sleep 0.1; done
VEIL_HOME=$T/b2 "$BIN/veil" init --join "$(head -1 "$T/link.out")" --cacert "$T/proxy.pem" \
	--label laptop --yes >"$T/join.out" 2>"$T/join.err"
check join_through_proxy [ "$(cat "$T/join.out")" = "$B" ]
check link_through_proxy wait "$lpid"
check mediator_announced_wss bash -c "VEIL_HOME=$T/b2 $BIN/veil whoami --json | grep -q '\"mediator_url\":\"wss://127.0.0.1:$NP/mediator/\"'"
va send "$B" "to both of Bob's devices" >/dev/null
check first_device_through_proxy bash -c "VEIL_HOME=$T/b $BIN/veil recv | grep -q \"both of Bob's devices\""
check second_device_through_proxy bash -c "VEIL_HOME=$T/b2 $BIN/veil recv | grep -q \"both of Bob's devices\""
check log_rendezvous_wss seen "GET /rendezvous/[0-9a-f]{64}" 101
check log_mediator_wss seen "GET /mediator/[0-9a-f]+" 101

# Revocation without the profile (a lost device) names the server and its CA itself.
va revoke --set-password "lost phone" >/dev/null
echo "lost phone" | VEIL_HOME=$T/none "$BIN/veil" revoke "$A" --password - --server "$PUB" \
	--yes >/dev/null 2>"$T/rv1.err"
check revoke_without_ca_refused grep -qi "certificate" "$T/rv1.err"
echo "lost phone" | VEIL_HOME=$T/none "$BIN/veil" revoke "$A" --password - --server "$PUB" \
	--cacert "$T/proxy.pem" --yes >"$T/rv2.out" 2>&1
check revoke_with_ca grep -q "$A revoked" "$T/rv2.out"

ngx_stop
stop
exit $((fails > 0))

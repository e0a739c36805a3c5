#!/bin/bash
# veild serves the browser client under /app/: the files of build/web with
# their MIME types, a strict Content-Security-Policy, caching by name, and
# nothing outside the web root whatever the path.
set -u
. "$(dirname "$0")/lib.sh"
if [ ! -f "$BIN/web/index.html" ]; then
	echo "FAIL web_built (no $BIN/web/index.html: node and npm are needed to build web/)"
	exit 1
fi
it_setup web_serve
start
hdr() { curl -s -o "$T/body" -D - "$URL$1" | tr -d '\r'; }
hdr /app/ >"$T/index.h"
check index_200 grep -q '^HTTP/1.1 200' "$T/index.h"
check index_html grep -qi '^content-type: text/html; charset=utf-8' "$T/index.h"
check index_no_cache grep -qi '^cache-control: no-cache$' "$T/index.h"
check csp_present grep -qi "^content-security-policy: default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self';" "$T/index.h"
check csp_no_inline bash -c "! grep -i '^content-security-policy:' $T/index.h | grep -q -e unsafe-inline -e \"'unsafe-eval'\" -e '\\*'"
check csp_connect_ws grep -qi "^content-security-policy:.*connect-src 'self' ws://127.0.0.1:$HP;" "$T/index.h"
check csp_frame_ancestors grep -qi "^content-security-policy:.*frame-ancestors 'none'" "$T/index.h"
check nosniff grep -qi '^x-content-type-options: nosniff' "$T/index.h"
check no_referrer grep -qi '^referrer-policy: no-referrer' "$T/index.h"
check index_body grep -q '<title>Veil</title>' "$T/body"
JS=$(grep -o 'app-[A-Z0-9]*\.js' "$T/body" | head -1)
CSS=$(grep -o 'app-[A-Z0-9]*\.css' "$T/body" | head -1)
check index_names_assets [ -n "$JS" ] && [ -n "$CSS" ]
hdr "/app/$JS" >"$T/js.h"
check js_200 grep -q '^HTTP/1.1 200' "$T/js.h"
check js_mime grep -qi '^content-type: text/javascript; charset=utf-8' "$T/js.h"
check js_immutable grep -qi '^cache-control: public, max-age=31536000, immutable' "$T/js.h"
check js_bytes cmp -s "$T/body" "$BIN/web/$JS"
hdr "/app/$CSS" >"$T/css.h"
check css_mime grep -qi '^content-type: text/css; charset=utf-8' "$T/css.h"
hdr /app >"$T/redir.h"
check bare_app_redirects grep -q '^HTTP/1.1 308' "$T/redir.h"
check redirect_location grep -qi '^location: /app/$' "$T/redir.h"
code() { curl -s -o /dev/null -w '%{http_code}' --path-as-is "$URL$1"; }
# Nothing outside the web root, nothing hidden, nothing but plain names.
echo secret >"$T/srv/secret.txt"
for p in '/app/../srv/secret.txt' '/app/..%2fsrv%2fsecret.txt' '/app/%2e%2e/srv/secret.txt' \
	'/app/%2e%2e%2fsrv%2fsecret.txt' '/app/.hidden.txt' '/app//etc/passwd' \
	'/app/sub/index.html' '/app/nothere.js' \
	'/app/build.mjs' '/app/index.htm' '/appendix' '/app/..' '/app/...js' '/app/\\index.html'; do
	c=$(code "$p")
	check "refused:$p" bash -c "[ '$c' = 404 ] || [ '$c' = 400 ] || [ '$c' = 403 ]"
done
# lws decodes %00 and ends the path there: at most a file of the root comes back.
for p in '/app/index.html%00.js' '/app/%00' '/app/..%00/srv/secret.txt'; do
	curl -s --path-as-is -D "$T/nul.h" -o "$T/nul.body" "$URL$p"
	check "nul_stays_in_root:$p" bash -c "! grep -q secret $T/nul.body && ! grep -qi 'content-type: text/javascript' $T/nul.h"
done
# A root given with --web-root: a symbolic link in it is not followed.
stop
mkdir -p "$T/root"
cp "$BIN/web/index.html" "$T/root/"
ln -s "$T/srv/secret.txt" "$T/root/link.txt"
VEILD_EXTRA=(--web-root "$T/root")
start
check web_root_flag bash -c "curl -sf $URL/app/ | grep -q '<title>Veil</title>'"
check symlink_refused [ "$(code /app/link.txt)" = 404 ]
check startup_names_root grep -q "web app .*/app/ (browser client, files in $T/root)" "$T/veild.log"
check help_mentions_web_root bash -c "$BIN/veild --help | grep -q -- --web-root"
[ "$fails" = 0 ]

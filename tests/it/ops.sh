#!/bin/bash
# Operating veild (issue 19): the admin listener (/healthz, /readyz,
# Prometheus /metrics with counters that move after a real message round
# trip), veilctl on a running and on a stopped server with the same output
# (list, show, block/unblock, revoke, delete, status, queue, gateway, --json),
# SIGHUP changing the sign-up mode and a rate live without dropping a
# connection and naming what needs a restart, rate-limited refusal log lines,
# --log-ip, and veilctl check.
set -u
. "$(dirname "$0")/lib.sh"
it_sqlite_only "veilctl on a stopped server's veil.db; pg_ops.sh is its PostgreSQL counterpart"
AP=$(port)
it_setup ops --config "$(mktemp -u)" # replaced below: the config lives in $T
CONF=$T/veild.conf
printf 'signup = open\nlog-level = info\nadmin-listen = %s\n' "$AP" >"$CONF"
VEILD_EXTRA=(--config "$CONF")
M=http://127.0.0.1:$AP
CTL() { "$BIN/veilctl" --data "$T/srv" "$@"; }
metric() { # name (with labels): its value in a fresh scrape
	curl -sf "$M/metrics" | awk -v n="$1" '$1 == n { print $2 }'
}
va() { VEIL_HOME=$T/a "$BIN/veil" "$@"; }
vb() { VEIL_HOME=$T/b "$BIN/veil" "$@"; }

"$BIN/veild" --help >"$T/help"
check help_admin_listen grep -q -- "--admin-listen \[ADDR:\]PORT" "$T/help"
check help_sighup grep -q "SIGHUP reads the" "$T/help"
"$BIN/veilctl" --help >"$T/chelp"
check ctl_help_commands bash -c "for c in list show block unblock revoke delete status queue check gateway invite; do grep -q \"^  \$c \" $T/chelp || exit 1; done"

# veilctl check before the start: config parses, ports free.
"$BIN/veilctl" --config "$CONF" --data "$T/srv" check >"$T/check1" 2>&1
check check_ok_before_start bash -c "grep -q '^ok    config .* parses' $T/check1 && grep -q '^ok    admin listener 127.0.0.1:$AP is free' $T/check1 && tail -1 $T/check1 | grep -q '^0 failed'"

start
check startup_names_metrics grep -q "metrics     http://127.0.0.1:$AP/metrics" "$T/veild.log"
check healthz bash -c "[ \"\$(curl -sf $M/healthz)\" = ok ]"
check readyz bash -c "[ \"\$(curl -sf $M/readyz)\" = ready ] && [ \"\$(curl -sf '$M/healthz?ready')\" = ready ]"
check unknown_path_404 bash -c "[ \$(curl -s -o /dev/null -w '%{http_code}' $M/nope) = 404 ]"
check post_405 bash -c "[ \$(curl -s -o /dev/null -w '%{http_code}' -d x $M/metrics) = 405 ]"
check metrics_content_type bash -c "curl -sfI $M/metrics 2>/dev/null | grep -qi '^Content-Type: text/plain; version=0.0.4' || curl -sf -D - -o /dev/null $M/metrics | grep -qi 'text/plain; version=0.0.4'"
"$BIN/veilctl" --config "$CONF" --data "$T/srv" check >"$T/check2" 2>&1
check check_sees_running grep -q "admin listener 127.0.0.1:$AP is bound (by the running veild)" "$T/check2"

# A real round trip moves the counters.
in0=$(metric veil_messages_in_total)
c0=$(metric veil_store_commit_seconds_count)
A=$(va init --server "$URL" --nickname Alice)
B=$(vb init --server "$URL" --nickname Bob)
D=$(VEIL_HOME=$T/d "$BIN/veil" init --server "$URL")
va send "$B" "hello Bob" >/dev/null
vb recv >"$T/recv"
check round_trip grep -q "$A: hello Bob" "$T/recv"
curl -sf "$M/metrics" >"$T/m1"
check metrics_signups grep -qx "veil_signups_total 3" "$T/m1"
check metrics_messages_in_moved bash -c "[ \$(awk '\$1==\"veil_messages_in_total\"{print \$2}' $T/m1) -ge $((in0 + 1)) ]"
check metrics_messages_out_moved bash -c "[ \$(awk '\$1==\"veil_messages_out_total\"{print \$2}' $T/m1) -ge 1 ]"
check metrics_logins_moved bash -c "[ \$(awk '\$1==\"veil_chat_logins_total\"{print \$2}' $T/m1) -ge 2 ]"
check metrics_commits_moved bash -c "[ \$(awk '\$1==\"veil_store_commit_seconds_count\"{print \$2}' $T/m1) -gt $c0 ]"
check metrics_histogram_inf bash -c "grep -q '^veil_store_commit_seconds_bucket{le=\"+Inf\"} ' $T/m1 && grep -q '^# TYPE veil_store_commit_seconds histogram' $T/m1"
check metrics_store_up grep -qx 'veil_store_up{backend="sqlite"} 1' "$T/m1"
check metrics_queue_gauge grep -q "^veil_queue_messages [0-9]" "$T/m1"
check metrics_no_ids bash -c "! grep -q -e '$A' -e '$B' $T/m1"

va send "$D" "for D" >/dev/null
# Messages for Bob wait in his queue: queue stats and list show them.
va send "$B" "one" >/dev/null
va send "$B" "two" >/dev/null
CTL queue >"$T/queue"
check queue_counts bash -c "grep -qE '^queued      [0-9]+ messages, [0-9]+ bytes, for [0-9]+ identities' $T/queue && grep -q \"^longest     $B, 2 messages\" $T/queue"
check queue_gauge_metrics bash -c "[ \"\$(curl -sf $M/metrics | awk '\$1==\"veil_queue_longest\"{print \$2}')\" = 2 ]"
CTL list >"$T/list_running"
check list_shows_ids bash -c "grep -q \"^$A active \" $T/list_running && grep -qE \"^$B active +created .* last login 20[0-9-]+T.* queue 2\\\$\" $T/list_running"
CTL --json list >"$T/list.json"
check list_json python3 -c "
import json
ids = {i['id']: i for i in json.load(open('$T/list.json'))['identities']}
assert ids['$B']['queued'] == 2 and ids['$B']['state'] == 'active', ids
assert ids['$A']['last_login_ms'] > 0 and ids['$A']['created_ms'] > 0, ids
"
CTL list --limit 1 >"$T/page1" 2>"$T/page1.err"
FIRST=$(cut -d' ' -f1 "$T/page1")
CTL list --after "$FIRST" --limit 1000 >"$T/page2"
check list_paging bash -c "[ \$(wc -l <$T/page1) = 1 ] && grep -q 'more: veilctl list --after' $T/page1.err && [ \$((\$(wc -l <$T/page2) + 1)) = \$(wc -l <$T/list_running) ]"
CTL show "$B" >"$T/show"
check show_one bash -c "grep -q '^state       active' $T/show && grep -qE '^public key  [0-9a-f]{64}\$' $T/show"
CTL --json status >"$T/status.json"
check status_running python3 -c "
import json
s = json.load(open('$T/status.json'))
assert s['running'] is True and s['version'] and s['uptime_s'] >= 0, s
assert 'chat' in s['services'] and s['store']['backend'] == 'sqlite' and s['store']['up'], s
assert s['queue']['longest']['messages'] == 2 and s['messages_in'] >= 3, s
"

# Block: Bob's logins are refused; unblock lets him in again.
check block CTL block "$B"
vb recv >"$T/blocked.out" 2>"$T/blocked.err"
check blocked_login_refused bash -c "! grep -q 'one' $T/blocked.out"
CTL block "$B" 2>"$T/block2.err"
check block_twice_says grep -q "is already blocked" "$T/block2.err"
check unblock CTL unblock "$B"
vb recv >"$T/unblocked.out"
check unblocked_receives grep -q "$A: two" "$T/unblocked.out"

# SIGHUP: signup closed, a lower directory rate and a port change from the file.
python3 - "$CP" "$T/conn.ok" <<'PY' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
time.sleep(2)   # SIGHUP arrives meanwhile (the handshake timeout is 10 s)
s.setblocking(False)
try:
    closed = s.recv(1) == b""
except BlockingIOError:
    closed = False
if not closed:
    open(sys.argv[2], "w").write("open")
PY
holder=$!
sleep 0.5
check no_ip_in_log bash -c "! grep -e 'sign-up of' -e 'limits:' $T/veild.log | grep -q '127\\.0\\.0\\.'"
printf 'signup = closed\nlog-level = info\nadmin-listen = %s\nlog-ip = 1\nqueue-limit = 5\n' "$AP" >"$CONF"
kill -HUP "$pid"
for _ in $(seq 50); do grep -q "reload: done" "$T/veild.log" && break; sleep 0.1; done
wait "$holder"
check hup_keeps_connections test -f "$T/conn.ok"
check hup_logs_signup grep -q "reload: signup open -> closed" "$T/veild.log"
check hup_names_restart grep -q "reload: queue-limit changed in the configuration but needs a restart" "$T/veild.log"
VEIL_HOME=$T/c "$BIN/veil" init --server "$URL" >/dev/null 2>"$T/c.err"
check hup_signup_closed grep -q "sign-up is closed" "$T/c.err"
check hup_same_pid kill -0 "$pid"
check log_ip_truncated grep -q "limits: 1 sign-ups (signup = closed) refused; the last one came from 127.0.0.0/24" "$T/veild.log"
printf 'signup = open\nlog-level = info\nadmin-listen = %s\ndir-rate = 3\n' "$AP" >"$CONF"
kill -HUP "$pid"
for _ in $(seq 50); do grep -q "reload: dir-rate 120 -> 3 a minute" "$T/veild.log" && break; sleep 0.1; done
check hup_logs_rate grep -q "reload: dir-rate 120 -> 3 a minute" "$T/veild.log"
check hup_log_ip_off grep -q "reload: log-ip 1 -> 0" "$T/veild.log"
# The new rate: the directory refuses, the refusals are counted and logged once.
for _ in $(seq 12); do curl -s -o /dev/null "$URL/directory/identity/$A"; done
check rate_refusals_counted bash -c "[ \"\$(curl -sf $M/metrics | awk '\$1==\"veil_refusals_total{limit=\\\"http_rate\\\"}\"{print \$2}')\" -ge 5 ]"
check rate_refusal_logged_once bash -c "[ \$(grep -c 'limits: .* HTTP requests over a per-address rate' $T/veild.log) = 1 ]"
check signup_refusal_counted bash -c "[ \"\$(curl -sf $M/metrics | awk '\$1==\"veil_refusals_total{limit=\\\"signup\\\"}\"{print \$2}')\" -ge 1 ]"
# A broken config changes nothing.
printf 'signup = sometimes\n' >"$CONF"
kill -HUP "$pid"
for _ in $(seq 50); do grep -q "reload: the configuration has an error" "$T/veild.log" && break; sleep 0.1; done
check hup_bad_config_kept grep -q "reload: the configuration has an error (above): nothing changed" "$T/veild.log"
printf 'signup = open\nlog-level = info\nadmin-listen = %s\n' "$AP" >"$CONF"
kill -HUP "$pid"

# Gateway accounts on the running server.
GW=$(CTL gateway create --id '*OPSBOT1' --credits 7)
check gateway_create_running bash -c "[[ '$GW' == '*OPSBOT1 '* ]]"
check gateway_credits_running bash -c "[ \"\$($BIN/veilctl --data $T/srv gateway credits '*OPSBOT1' +3)\" = 10 ]"
CTL gateway list >"$T/gw_running"

# Delete: the queue goes with the identity; revoke.
CTL delete "$D" 2>"$T/del_noyes.err"
check delete_needs_yes bash -c "[ $? = 2 ] && grep -q -- '--yes' $T/del_noyes.err"
CTL delete "$D" --yes >"$T/del.out"
check delete_drops_queue grep -q "deleted; 1 queued messages removed" "$T/del.out"
check revoke CTL revoke "$A"
CTL show "$A" >"$T/showA"
check revoked_state grep -q "^state       revoked" "$T/showA"
CTL list >"$T/list_running2"
CTL status >"$T/status_running"

# Stopped: the same answers from the data directory.
stop
CTL list >"$T/list_stopped"
check list_same_stopped diff "$T/list_running2" "$T/list_stopped"
CTL gateway list >"$T/gw_stopped"
check gateway_same_stopped diff "$T/gw_running" "$T/gw_stopped"
CTL status >"$T/status_stopped"
check status_stopped bash -c "grep -q '^veild       not running' $T/status_stopped && grep -q '^queued      ' $T/status_stopped"
check unblock_stopped_refuses_active bash -c "! $BIN/veilctl --data $T/srv unblock $B 2>/dev/null"
check block_stopped CTL block "$B"
CTL --json show "$B" >"$T/showB.json"
check block_stopped_json python3 -c "import json; assert json.load(open('$T/showB.json'))['identity']['state'] == 'blocked'"
check no_socket_left test ! -e "$T/srv/admin.sock"

# veilctl check finds a taken port and an open sign-up on a public address.
P2=$(port)
python3 -c "
import socket, time
s = socket.socket()
s.bind(('0.0.0.0', $P2)); s.listen(1); open('$T/bound', 'w').close(); time.sleep(4)" &
for _ in $(seq 100); do [ -e "$T/bound" ] && break; sleep 0.1; done
printf 'chat-port = %s\nlisten = 0.0.0.0\nsignup = open\n' "$P2" >"$T/pub.conf"
"$BIN/veilctl" --config "$T/pub.conf" --data "$T/srv" check >"$T/check3" 2>&1
rc=$?
wait
check check_fails_on_taken_port bash -c "[ $rc = 1 ] && grep -q '^FAIL  chat port 0.0.0.0:$P2 is in use' $T/check3"
check check_warns_open_signup grep -q "^warn  signup = open on 0.0.0.0" "$T/check3"
check check_warns_no_public_url grep -q "^warn  no --public-url" "$T/check3"
"$BIN/veilctl" --json --config "$T/pub.conf" --data "$T/srv" check >"$T/check3.json" 2>/dev/null
check check_json python3 -c "import json; j = json.load(open('$T/check3.json')); assert j['warnings'] >= 2 and isinstance(j['checks'], list), j"

[ $fails -eq 0 ] || { echo "--- veild.log"; tail -n 30 "$T/veild.log"; }
exit $fails

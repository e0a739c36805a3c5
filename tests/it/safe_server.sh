#!/bin/bash
# veild's own Threema Safe server (/safe/): the specification's endpoints
# with good and bad input (curl), its limits (size, count, rate, retention
# at start), the provisioning document naming it, and a backup and restore
# with the veil CLI through it.
set -u
. "$(dirname "$0")/lib.sh"
it_setup safe --dir-rate 100000 --http-conn-rate 1000000 --safe-max-size 65536 \
	--safe-max-backups 3 --safe-rate 1000
v() { local who=$1; shift; VEIL_HOME=$T/$who "$BIN/veil" "$@"; }
S=$URL/safe
H1=$(printf 'a%.0s' $(seq 64))
H2=$(printf 'b%.0s' $(seq 64))
H3=$(printf 'c%.0s' $(seq 64))
H4=$(printf 'd%.0s' $(seq 64))
code() { curl -s -o "$T/body" -w '%{http_code}' "$@"; }
# A stored backup's bytes, and whether it is there: files in DATA/safe, or
# the safe_backups table with a PostgreSQL store (make check-pg).
safe_get() {
	if [ -n "$IT_DB" ]; then
		it_sql "SELECT encode(data, 'hex') FROM safe_backups WHERE id = '\\x$1'" | xxd -r -p
	else cat "$T/srv/safe/$1"; fi
}
safe_has() {
	if [ -n "$IT_DB" ]; then
		[ "$(it_sql "SELECT count(*) FROM safe_backups WHERE id = '\\x$1'")" = 1 ]
	else [ -f "$T/srv/safe/$1" ]; fi
}
not() { ! "$@"; }
safe_same() { safe_get "$1" | cmp -s - "$2"; } # ID, file
put() { code -X PUT -H 'Content-Type: application/octet-stream' --data-binary @"$1" "$S/backups/$2"; }
head -c 5000 /dev/urandom >"$T/blob"
head -c 70000 /dev/urandom >"$T/big"

start
check provisioning_names_safe bash -c "curl -sf $URL/.well-known/veil/provisioning | head -1 | grep -q '\"safe\":{\"url\":\"$URL/safe/\"}'"
check config bash -c "[ \$(curl -s -o $T/cfg -w '%{http_code}' $S/config) = 200 ] && python3 -c \"import json; d=json.load(open('$T/cfg')); assert d=={'maxBackupBytes':65536,'retentionDays':180}, d\""
check config_post_405 [ "$(code -X POST "$S/config")" = 405 ]
check get_missing_404 [ "$(code "$S/backups/$H1")" = 404 ]
check put_ok [ "$(code -X PUT -H 'Content-Type: application/octet-stream' --data-binary @"$T/blob" "$S/backups/$H1")" = 204 ]
check get_same_bytes bash -c "curl -sf $S/backups/$H1 | cmp -s - $T/blob"
# An upload cut short (the client goes away after 100 of 5000 bytes) leaves the old one.
python3 - "$HP" "$H1" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(("PUT /safe/backups/%s HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
           "Content-Length: 5000\r\n\r\n" % sys.argv[2]).encode() + b"x" * 100)
s.close()
PY
check cut_upload_keeps_old bash -c "curl -sf $S/backups/$H1 | cmp -s - $T/blob"
check put_too_big_413 [ "$(code -X PUT -H 'Content-Type: application/octet-stream' --data-binary @"$T/big" "$S/backups/$H2")" = 413 ]
check too_big_not_stored [ "$(code "$S/backups/$H2")" = 404 ]
check put_wrong_type_415 [ "$(code -X PUT -H 'Content-Type: text/plain' --data-binary @"$T/blob" "$S/backups/$H2")" = 415 ]
check put_empty_411 [ "$(code -X PUT -H 'Content-Type: application/octet-stream' --data-binary '' "$S/backups/$H2")" = 411 ]
check upper_hex_404 [ "$(code "$S/backups/$(echo "$H1" | tr a-f A-F)")" = 404 ]
check short_id_404 [ "$(code "$S/backups/abcd")" = 404 ]
check post_backup_405 [ "$(code -X POST --data-binary @"$T/blob" "$S/backups/$H1")" = 405 ]
check unknown_path_404 [ "$(code "$S/other")" = 404 ]
# At most three backups: a fourth new one is refused, replacing one is not.
for h in $H2 $H3; do put "$T/blob" "$h" >/dev/null; done
check fourth_backup_507 [ "$(put "$T/blob" "$H4")" = 507 ]
check replace_when_full [ "$(put "$T/blob" "$H3")" = 204 ]
check delete_204 [ "$(code -X DELETE "$S/backups/$H3")" = 204 ]
check delete_again_404 [ "$(code -X DELETE "$S/backups/$H3")" = 404 ]
check room_again [ "$(put "$T/blob" "$H4")" = 204 ]
check stored_as_sent safe_same "$H4" "$T/blob"
if [ -z "$IT_DB" ]; then
	check no_tmp_left bash -c "[ -z \"\$(ls $T/srv/safe/tmp)\" ]"
	check file_mode_0600 [ "$(stat -c %a "$T/srv/safe/$H4")" = 600 ]
fi

# --- the CLI through veild's Safe server ---
for w in a b; do v $w init --server "$URL" --nickname "$w" >"$T/$w.id" || exit 1; done
A=$(cat "$T/a.id"); B=$(cat "$T/b.id")
v a contact add "$B" >/dev/null && v b contact add "$A" >/dev/null
v a contact name "$B" "Bee" >/dev/null
curl -s -o /dev/null -X DELETE "$S/backups/$H4"
printf 'correct horse battery\n' >"$T/pw"
export VEIL_BACKUP_PASSWORD_FILE=$T/pw
check cli_config_safe bash -c "VEIL_HOME=$T/a $BIN/veil backup config --url $S | grep -q 'Safe server'"
check cli_backup_now v a backup now
check cli_backup_padded bash -c "f=\$(ls $T/srv/safe | grep -v tmp | grep -v $H1 | grep -v $H2 | head -1); s=\$(stat -c %s $T/srv/safe/\$f); [ \$s = 4096 ]"
mv "$T/a" "$T/a.old"
check cli_restore v a backup restore --url "$S" --id "$A" --server "$URL"
check cli_restored_name bash -c "[ \"\$(VEIL_HOME=$T/a $BIN/veil contact name $B)\" = Bee ]"
check cli_send_after_restore bash -c "VEIL_HOME=$T/a $BIN/veil send $B 'hi again' >/dev/null && VEIL_HOME=$T/b $BIN/veil recv | grep -q 'hi again'"
check cli_wrong_id_refused bash -c "! VEIL_HOME=$T/c $BIN/veil backup restore --url $S --id $B --server $URL 2>$T/err && grep -q 'wrong ID or password' $T/err"

# --- veil daemon uploads by itself, at most daily ---
curl -s -o /dev/null -X DELETE "$S/backups/$H2" # room under --safe-max-backups 3
check b_config bash -c "VEIL_HOME=$T/b $BIN/veil backup config --url $S >/dev/null"
# The password asked on the terminal (a pseudo-terminal here) is not echoed.
prompt_no_echo() {
	env -u VEIL_BACKUP_PASSWORD_FILE VEIL_HOME="$T/b" python3 - "$BIN/veil" "$S" <<'PY'
import os, pty, select, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], [sys.argv[1], "backup", "config", "--url", sys.argv[2]])
out, deadline, sent, pos = b"", time.monotonic() + 60, 0, 0
prompts = [b"backup password: ", b"again: "]
while time.monotonic() < deadline:
    r, _, _ = select.select([fd], [], [], 1)
    if not r:
        continue
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
    # Each prompt in turn gets the password once it shows.
    if sent < 2 and prompts[sent] in out[pos:]:
        pos = out.index(prompts[sent], pos) + len(prompts[sent])
        os.write(fd, b"correct horse battery\n")
        sent += 1
_, st = os.waitpid(pid, 0)
text = out.decode(errors="replace")
ok = os.WEXITSTATUS(st) == 0 and sent == 2 and "correct horse" not in text and "Safe server" in text
if not ok:
    print("  exit %d, sent %d, output %r" % (os.WEXITSTATUS(st), sent, text))
sys.exit(0 if ok else 1)
PY
}
check prompt_no_echo prompt_no_echo
dpid=
run_daemon() { # waits for the daemon's word on backups (at most 30 s), then stops it
	VEIL_HOME=$T/b "$BIN/veil" daemon 2>"$T/daemon.log" &
	dpid=$!
	for _ in $(seq 300); do grep -q 'backup ' "$T/daemon.log" && break; sleep 0.1; done
	kill "$dpid"; wait "$dpid"; dpid=
}
trap '[ -n "$dpid" ] && kill "$dpid"; stop 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
run_daemon
check daemon_uploads grep -q 'backup uploaded (4096 bytes)' "$T/daemon.log"
check daemon_status bash -c "VEIL_HOME=$T/b $BIN/veil backup status | grep -q 'size: *4096 bytes'"
# The backup ID as the specification derives it (scrypt of the password, salted with the ID), in Python's own scrypt.
BF=$(python3 -c "import hashlib,sys; print(hashlib.scrypt(b'correct horse battery', salt=sys.argv[1].encode(), n=65536, r=8, p=1, maxmem=128 << 20, dklen=64)[:32].hex())" "$B")
check daemon_file_there safe_has "$BF"
safe_get "$BF" >"$T/b.first"
v b contact name "$A" "Ay" >/dev/null
run_daemon
check daemon_not_twice_a_day grep -q 'backup up to date' "$T/daemon.log"
check daemon_left_backup safe_same "$BF" "$T/b.first"
check now_forces v b backup now
check now_uploaded_new not safe_same "$BF" "$T/b.first"

# --- retention: a backup older than the retention time is gone after a restart ---
stop
if [ -n "$IT_DB" ]; then
	it_sql "UPDATE safe_backups SET updated_ms = updated_ms - 200::int8 * 86400000 WHERE id = '\\x$H1'" >/dev/null
else
	touch -d '200 days ago' "$T/srv/safe/$H1"
fi
start
check expired_swept [ "$(code "$S/backups/$H1")" = 404 ]
check expired_file_gone not safe_has "$H1"
check young_kept [ "$(code "$S/backups/$BF")" = 200 ]
stop

# --- the rate limit ---
VEILD_EXTRA=(--safe-rate 5)
start
n429=0
for _ in $(seq 10); do [ "$(code "$S/config")" = 429 ] && n429=$((n429 + 1)); done
check rate_limited [ "$n429" -ge 1 ]
stop
exit $((fails > 0))

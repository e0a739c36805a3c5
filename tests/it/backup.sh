#!/bin/bash
# Threema Safe backups with the veil CLI against a real WebDAV server (Apache
# httpd with mod_dav_fs and basic auth, started here on loopback with its own
# config file and stopped by its PID) and a real veild: back up, wipe
# VEIL_HOME, restore, and the identity, contacts (keys, levels, names) and
# groups are back and messages flow both ways; a wrong password, a truncated
# and a tampered backup are refused; a failed upload leaves the previous
# backup intact.
set -u
. "$(dirname "$0")/lib.sh"
it_setup backup --dir-rate 100000 --http-conn-rate 1000000
v() { local who=$1; shift; VEIL_HOME=$T/$who "$BIN/veil" "$@"; }

# --- the WebDAV server ---
DAV=$T/dav
DP=$(port)
SP=$(port)
mkdir -p "$DAV/root" "$DAV/run"
chmod 711 "$T"
htpasswd -bc "$DAV/htpasswd" alice 'dav secret' 2>/dev/null
printf 'dav secret\n' >"$T/davpw"
printf 'wrong\n' >"$T/badpw"
M=/usr/lib/apache2/modules
# The same collection over https, with a certificate for 127.0.0.1 that is its own CA.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
	-subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" \
	-keyout "$DAV/cert.key" -out "$DAV/cert.pem" 2>/dev/null
cat >"$DAV/httpd.conf" <<CONF
ServerName 127.0.0.1
Listen 127.0.0.1:$DP
PidFile $DAV/run/httpd.pid
DefaultRuntimeDir $DAV/run
ErrorLog $DAV/error.log
LogLevel warn
LoadModule mpm_event_module $M/mod_mpm_event.so
LoadModule authz_core_module $M/mod_authz_core.so
LoadModule authn_core_module $M/mod_authn_core.so
LoadModule authn_file_module $M/mod_authn_file.so
LoadModule auth_basic_module $M/mod_auth_basic.so
LoadModule authz_user_module $M/mod_authz_user.so
LoadModule dav_module $M/mod_dav.so
LoadModule dav_fs_module $M/mod_dav_fs.so
LoadModule ssl_module $M/mod_ssl.so
Listen 127.0.0.1:$SP
<VirtualHost 127.0.0.1:$SP>
	SSLEngine on
	SSLCertificateFile $DAV/cert.pem
	SSLCertificateKeyFile $DAV/cert.key
</VirtualHost>
$( [ "$(id -u)" = 0 ] && printf 'User nobody\nGroup nogroup\n' )
DavLockDB $DAV/run/davlock
DocumentRoot $DAV/root
<Directory $DAV/root>
	Dav On
	AuthType Basic
	AuthName veil
	AuthUserFile $DAV/htpasswd
	Require valid-user
	<IfDefine NOMOVE>
		<If "%{REQUEST_METHOD} == 'MOVE'">
			Require all denied
		</If>
	</IfDefine>
</Directory>
CONF
[ "$(id -u)" = 0 ] && chown -R nobody:nogroup "$DAV/root" "$DAV/run"
dpid=
dav_start() { # [-DNOMOVE]
	/usr/sbin/apache2 -f "$DAV/httpd.conf" -DFOREGROUND "$@" >>"$DAV/stdout" 2>&1 &
	dpid=$!
	for _ in $(seq 100); do
		curl -s -o /dev/null "http://127.0.0.1:$DP/" && return 0
		sleep 0.1
	done
	echo "apache did not start"; cat "$DAV/error.log" "$DAV/stdout"; exit 1
}
dav_stop() { [ -n "$dpid" ] && kill "$dpid" && wait "$dpid"; dpid=; }
trap 'dav_stop 2>/dev/null; stop 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
DURL=http://127.0.0.1:$DP/safe
mkdir -p "$DAV/root/safe"
[ "$(id -u)" = 0 ] && chown nobody:nogroup "$DAV/root/safe"

start
dav_start
for w in a b c; do v $w init --server "$URL" --nickname "$w" >"$T/$w.id" || exit 1; done
A=$(cat "$T/a.id"); B=$(cat "$T/b.id"); C=$(cat "$T/c.id")
v a contact add "$B" >/dev/null && v a contact add "$C" >/dev/null
v b contact add "$A" >/dev/null
v a contact name "$B" "Bob the builder" >/dev/null
QR=$(v b qr --text 2>/dev/null || true)
[ -n "$QR" ] && v a contact verify "$B" --scan "$QR" >/dev/null
G=$(v a group create Friends "$B" "$C")
v b recv >/dev/null
check level_green_before bash -c "VEIL_HOME=$T/a $BIN/veil contact show $B | grep -q 'level: *green'"

printf 'correct horse battery\n' >"$T/pw"
export VEIL_BACKUP_PASSWORD_FILE=$T/pw
check config_short_password_refused bash -c "printf 'short\n' >$T/short; ! VEIL_BACKUP_PASSWORD_FILE=$T/short VEIL_HOME=$T/a $BIN/veil backup config --url $DURL --user alice --password-file $T/davpw 2>$T/err && grep -q 'at least 8' $T/err"
check config_bad_dav_password bash -c "! VEIL_HOME=$T/a $BIN/veil backup config --url $DURL --user alice --password-file $T/badpw 2>$T/err && grep -q '401' $T/err"
check config_webdav bash -c "VEIL_HOME=$T/a $BIN/veil backup config --url $DURL --user alice --password-file $T/davpw | grep -q WebDAV"
# The settings are a sealed record of the encrypted profile: neither password, nor the
# backup key (which opens the backup, which holds the secret key), in any file.
BKEY=$(python3 -c "import hashlib,sys; print(hashlib.scrypt(b'correct horse battery', salt=sys.argv[1].encode(), n=65536, r=8, p=1, maxmem=128 << 20, dklen=64)[32:].hex())" "$A")
check config_no_plain_file [ ! -e "$T/a/backup.json" ]
check config_has_no_secret python3 -c "
import os, sys
k = bytes.fromhex(sys.argv[2])
bad = [b'correct horse', b'dav secret', sys.argv[2].encode(), k]
for d, _, fs in os.walk(sys.argv[1]):
    for f in fs:
        data = open(os.path.join(d, f), 'rb').read()
        assert not any(b in data for b in bad), f
" "$T/a" "$BKEY"
check status_never bash -c "VEIL_HOME=$T/a $BIN/veil backup status | grep -q 'last success: never'"
check backup_now v a backup now
F=$(ls "$DAV/root/safe/backups/" 2>/dev/null | head -1)
check one_file_stored bash -c "[ \$(ls $DAV/root/safe/backups | wc -l) = 1 ] && [[ '$F' =~ ^[0-9a-f]{64}$ ]]"
SIZE=$(stat -c %s "$DAV/root/safe/backups/$F")
check size_is_bucket bash -c "[ $SIZE -ge 4096 ] && [ \$(( $SIZE & ($SIZE - 1) )) = 0 ]"
check status_after bash -c "VEIL_HOME=$T/a $BIN/veil backup status >$T/st && grep -q 'size: *$SIZE bytes' $T/st && ! grep -q 'last success: never' $T/st && ! grep -q 'last error' $T/st"
cp "$DAV/root/safe/backups/$F" "$T/good"

# --- a failed upload leaves the previous backup whole ---
v a contact name "$C" "Carol" >/dev/null
dav_stop
check upload_server_down_fails bash -c "! VEIL_HOME=$T/a $BIN/veil backup now 2>$T/err"
check status_shows_error bash -c "VEIL_HOME=$T/a $BIN/veil backup status | grep -q 'last error'"
dav_start -DNOMOVE
check upload_move_refused_fails bash -c "! VEIL_HOME=$T/a $BIN/veil backup now 2>$T/err && grep -q MOVE $T/err"
check previous_backup_intact cmp -s "$T/good" "$DAV/root/safe/backups/$F"
check no_temporary_left bash -c "[ \$(ls $DAV/root/safe/backups | wc -l) = 1 ]"
dav_stop
dav_start

# --- restore into an empty VEIL_HOME ---
mv "$T/a" "$T/a.old"
rst() { v a backup restore --url "$DURL" --user alice --password-file "$T/davpw" --id "$A" --server "$URL" "$@"; }
check wrong_password_refused bash -c "! VEIL_BACKUP_PASSWORD_FILE=$T/badpw VEIL_HOME=$T/a $BIN/veil backup restore --url $DURL --user alice --password-file $T/davpw --id $A --server $URL 2>$T/err && grep -q 'wrong ID or password' $T/err && [ ! -e $T/a/profile.json ]"
head -c $((SIZE - 100)) "$T/good" >"$DAV/root/safe/backups/$F"
check truncated_refused bash -c "! VEIL_HOME=$T/a $BIN/veil backup restore --url $DURL --user alice --password-file $T/davpw --id $A --server $URL 2>$T/err && grep -q 'wrong password, or the backup is damaged' $T/err && [ ! -e $T/a/profile.json ]"
python3 -c "
import sys
b=bytearray(open('$T/good','rb').read()); b[200]^=1
open('$DAV/root/safe/backups/$F','wb').write(b)"
check tampered_refused bash -c "! VEIL_HOME=$T/a $BIN/veil backup restore --url $DURL --user alice --password-file $T/davpw --id $A --server $URL 2>$T/err && grep -q 'damaged' $T/err && [ ! -e $T/a/profile.json ]"
cp "$T/good" "$DAV/root/safe/backups/$F"
rm -rf "$T/a"
check restore rst
check same_identity bash -c "VEIL_HOME=$T/a $BIN/veil whoami | grep -q $A"
check same_key bash -c "[ \"\$(VEIL_HOME=$T/a $BIN/veil whoami)\" = \"\$(VEIL_HOME=$T/a.old $BIN/veil whoami)\" ]"
check contacts_back bash -c "VEIL_HOME=$T/a $BIN/veil contact list >$T/cl && grep -q $B $T/cl && grep -q $C $T/cl"
check level_back bash -c "VEIL_HOME=$T/a $BIN/veil contact show $B | grep -q 'level: *green'"
check name_back bash -c "[ \"\$(VEIL_HOME=$T/a $BIN/veil contact name $B)\" = 'Bob the builder' ]"
check group_back bash -c "VEIL_HOME=$T/a $BIN/veil group list | grep -q '^$G  Friends  (creator $A = you, 3 members)'"
check config_kept bash -c "VEIL_HOME=$T/a $BIN/veil backup status | grep -q WebDAV"
check send_after_restore bash -c "VEIL_HOME=$T/a $BIN/veil send $B 'back again' >/dev/null && VEIL_HOME=$T/b $BIN/veil recv | grep -q 'back again'"
check receive_after_restore bash -c "VEIL_HOME=$T/b $BIN/veil send $A 'welcome back' >/dev/null && VEIL_HOME=$T/a $BIN/veil recv | grep -q 'welcome back'"
check group_after_restore bash -c "VEIL_HOME=$T/a $BIN/veil group send $G 'group again' >/dev/null && VEIL_HOME=$T/c $BIN/veil recv | grep -q 'group again'"
check restore_twice_refused bash -c "! VEIL_HOME=$T/a $BIN/veil backup restore --url $DURL --user alice --password-file $T/davpw --id $A --server $URL 2>/dev/null"

# --- https with the server's CA given by --cacert ---
SURL=https://127.0.0.1:$SP/safe
check https_without_cacert_refused bash -c "! VEIL_HOME=$T/a $BIN/veil backup config --url $SURL --user alice --password-file $T/davpw 2>$T/err && grep -qi 'certificate' $T/err"
check https_config bash -c "VEIL_HOME=$T/a $BIN/veil backup config --url $SURL --user alice --password-file $T/davpw --cacert $DAV/cert.pem | grep -q WebDAV"
v a contact name "$C" "Carol" >/dev/null
check https_backup v a backup now
check https_uploaded_new bash -c "! cmp -s $T/good $DAV/root/safe/backups/$F"
mv "$T/a" "$T/a.https"
check https_restore v a backup restore --url "$SURL" --user alice --password-file "$T/davpw" --cacert "$DAV/cert.pem" --id "$A" --server "$URL"
check https_restored_name bash -c "[ \"\$(VEIL_HOME=$T/a $BIN/veil contact name $C)\" = Carol ]"

dav_stop
stop
exit $((fails > 0))

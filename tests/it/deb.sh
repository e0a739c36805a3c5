#!/bin/bash
# `make deb`: the package's metadata and contents, and its maintainer
# scripts run for real by dpkg, without touching this machine.
#
# How: dpkg installs into a throwaway root ($R) with --root=$R (files and
# dpkg's database under $R) and --force-script-chrootless (the maintainer
# scripts run here, not chrooted into $R, which has no shell; they prefix
# every path with $DPKG_ROOT, which dpkg sets to $R, and create the user
# with `useradd --prefix $R`). $R starts with a root-only /etc/passwd,
# group, shadow and gshadow and an empty dpkg database, so dependencies are
# forced (--force-depends; the libraries are this machine's). No systemd
# runs in $R, so the scripts must not touch units. Afterwards the host's
# /etc/passwd and /etc/group are unchanged, and the veild installed in $R
# runs (as $R's veil user, via setpriv) and answers, and its unit passes
# `systemd-analyze verify --root=$R`.
set -u
. "$(dirname "$0")/lib.sh"
it_setup deb
if [ "$(id -u)" != 0 ]; then
	echo "deb.sh: not root, nothing tested" >&2
	exit 0
fi
make -s --no-print-directory deb >"$T/make.log" 2>&1 || { echo "FAIL make_deb"; cat "$T/make.log"; exit 1; }
DEB=$(ls -t "$BIN"/veil_*.deb | head -1)

dpkg-deb --info "$DEB" >"$T/info"
dpkg-deb --contents "$DEB" >"$T/contents"
check deb_control bash -c "grep -q '^ Package: veil$' '$T/info' && grep -q '^ Depends: .*libsodium23' '$T/info' &&
	grep -qE '^ Version: [0-9.]+-1$' '$T/info'"
check deb_conffiles bash -c "[ \"\$(dpkg-deb --ctrl-tarfile '$DEB' | tar -xO ./conffiles)\" = /etc/veil/veild.conf ]"
check deb_contents bash -c "for f in ./usr/bin/veild ./usr/bin/veil ./usr/bin/veilctl \
	./usr/lib/systemd/system/veild.service ./etc/veil/veild.conf ./usr/share/doc/veil/OPERATIONS.md; do
	grep -q \" \$f\$\" '$T/contents' || exit 1; done; ! grep -q ' ./var/' '$T/contents'"
check deb_unit_paths bash -c "dpkg-deb --fsys-tarfile '$DEB' | tar -xO ./usr/lib/systemd/system/veild.service |
	grep -qx 'ExecStart=/usr/bin/veild --config /etc/veil/veild.conf'"

R=$T/root
mkdir -p "$R/etc" "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates"
touch "$R/var/lib/dpkg/status" "$R/var/lib/dpkg/available"
echo 'root:x:0:0:root:/root:/bin/sh' >"$R/etc/passwd"
echo 'root:x:0:' >"$R/etc/group"
echo 'root:*:19000:0:99999:7:::' >"$R/etc/shadow"
echo 'root:*::' >"$R/etc/gshadow"
chmod 600 "$R/etc/shadow" "$R/etc/gshadow"
host_before=$(cat /etc/passwd /etc/group | sha256sum)
DPKG=(dpkg --root="$R" --force-script-chrootless --force-depends --force-not-root)

"${DPKG[@]}" -i "$DEB" >"$T/install.log" 2>&1
check dpkg_install bash -c "grep -q '^Status: install ok installed' <(dpkg --root='$R' -s veil)" ||
	cat "$T/install.log"
vuid=$(awk -F: '$1 == "veil" { print $3 }' "$R/etc/passwd")
vgid=$(awk -F: '$1 == "veil" { print $4 }' "$R/etc/passwd")
check user_created bash -c "[ -n '$vuid' ] && [ '$vuid' -lt 1000 ] &&
	grep -q '^veil:x:$vuid:$vgid:.*:/var/lib/veil:/usr/sbin/nologin$' '$R/etc/passwd' && grep -q '^veil:' '$R/etc/group'"
check data_dir_made bash -c "[ \"\$(stat -c '%u %g %a' '$R/var/lib/veil')\" = '$vuid $vgid 700' ]"
check config_mode bash -c "[ \"\$(stat -c '%u %g %a' '$R/etc/veil/veild.conf')\" = '0 $vgid 640' ]"
check host_untouched test "$(cat /etc/passwd /etc/group | sha256sum)" = "$host_before"
# The unit as installed, verified inside $R (where /usr/bin/veild exists);
# systemd's own targets and slices are copied in for its dependencies.
cp -n /usr/lib/systemd/system/*.target /usr/lib/systemd/system/*.slice \
	/usr/lib/systemd/system/*.socket "$R/usr/lib/systemd/system/" 2>/dev/null
check installed_unit_verifies bash -c "out=\$(systemd-analyze verify --man=no --root='$R' \
	/usr/lib/systemd/system/veild.service 2>&1) && [ -z \"\$out\" ] || { echo \"\$out\"; exit 1; }"

# The installed veild, as veil, on its default data directory under $R.
chmod 755 "$T"
cat >>"$R/etc/veil/veild.conf" <<EOC
data = $R/var/lib/veil
chat-port = $CP
http-port = $HP
EOC
setpriv --reuid="$vuid" --regid="$vgid" --clear-groups "$R/usr/bin/veild" \
	--config "$R/etc/veil/veild.conf" >"$T/veild.log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -sf "$URL/.well-known/veil/provisioning" -o /dev/null && break; sleep 0.1; done
check installed_veild_answers curl -sf "$URL/.well-known/veil/provisioning" -o /dev/null
A=$(VEIL_HOME=$T/a "$BIN/veil" init --server "$URL")
check installed_veild_signup test -n "$A"
stop
check data_owned_by_veil test -z "$(find "$R/var/lib/veil" ! -uid "$vuid")"

# Reinstalling (an upgrade to the same version) keeps the edited config.
"${DPKG[@]}" -i "$DEB" >>"$T/install.log" 2>&1
check reinstall_keeps_config grep -q "^http-port = $HP" "$R/etc/veil/veild.conf"

# Remove: binaries go, config and data stay.
"${DPKG[@]}" -r veil >"$T/remove.log" 2>&1
check remove_keeps_data bash -c "[ ! -e '$R/usr/bin/veild' ] && [ -f '$R/var/lib/veil/chat.key' ] &&
	[ -f '$R/var/lib/veil/veil.db' ] && [ -f '$R/etc/veil/veild.conf' ]"
# Purge: the config goes, the data stays and the purge says where.
"${DPKG[@]}" -P veil >"$T/purge.log" 2>&1
check purge_keeps_data bash -c "[ ! -e '$R/etc/veil/veild.conf' ] && [ -f '$R/var/lib/veil/chat.key' ] &&
	grep -q 'remains in $R/var/lib/veil' '$T/purge.log'"
# Installing again finds the old data directory and user: the same server key.
key_before=$(sha256sum <"$R/var/lib/veil/chat.key")
"${DPKG[@]}" -i "$DEB" >>"$T/install.log" 2>&1
check reinstall_after_purge bash -c "[ \$(grep -c '^veil:' '$R/etc/passwd') = 1 ] &&
	[ \"\$(sha256sum <'$R/var/lib/veil/chat.key')\" = '$key_before' ] &&
	[ \"\$(stat -c %u '$R/var/lib/veil')\" = '$vuid' ]"
check host_still_untouched test "$(cat /etc/passwd /etc/group | sha256sum)" = "$host_before"
exit $((fails > 0))

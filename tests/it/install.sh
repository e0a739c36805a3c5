#!/bin/bash
# `make install`: what lands where, the installed binaries' default paths,
# the example config (every key of `veild --help`, each default accepted by
# veild) and the systemd unit, checked by `systemd-analyze verify` (which
# also has to reject a broken copy of it, so that the check can fail).
#
# The install goes to a temporary prefix (PREFIX, SYSCONFDIR and
# LOCALSTATEDIR all under $T): verify resolves ExecStart= on this machine, so
# the unit must name binaries that exist; the machine itself is not touched.
set -u
. "$(dirname "$0")/lib.sh"
it_setup install

P=$T/inst
make -s --no-print-directory install PREFIX="$P/usr" SYSCONFDIR="$P/etc" LOCALSTATEDIR="$P/var" \
	>"$T/make.log" 2>&1 || { echo "FAIL make_install"; cat "$T/make.log"; exit 1; }
U=$P/usr/lib/systemd/system/veild.service
check installed_files bash -c "for f in usr/bin/veild usr/bin/veil usr/bin/veilctl; do
	[ -x '$P'/\$f ] || exit 1; done
	[ -f '$U' ] && [ -f '$P/etc/veil/veild.conf' ] && [ -f '$P/usr/share/doc/veil/OPERATIONS.md' ] &&
	[ -f '$P/usr/share/doc/veil/veild.conf.example' ] &&
	[ \"\$(stat -c %a '$P/etc/veil/veild.conf')\" = 640 ]"

# The installed binaries default to the installed paths, the checkout's do not.
check installed_defaults bash -c "'$P/usr/bin/veild' --help | grep -q 'SQLite store ($P/var/lib/veil)' &&
	'$P/usr/bin/veild' --help | grep -q '($P/etc/veil/veild.conf)' &&
	'$P/usr/bin/veilctl' --help | grep -q '$P/var/lib/veil' &&
	'$BIN/veild' --help | grep -q 'SQLite store (./var/veil)'"

# An edited config survives a second `make install`.
echo '# edited' >>"$P/etc/veil/veild.conf"
make -s --no-print-directory install PREFIX="$P/usr" SYSCONFDIR="$P/etc" LOCALSTATEDIR="$P/var" \
	>>"$T/make.log" 2>&1
check config_kept grep -q '^# edited' "$P/etc/veil/veild.conf"

# Every flag of --help (but --config, --help, --version) is a key of the example.
flags=$("$BIN/veild" --help | grep -oE '^  --[a-z-]+' | sed 's/^  --//' | grep -vxE 'config|help|version' | sort -u)
missing=$(for k in $flags; do grep -qE "^# $k =" "$P/etc/veil/veild.conf" || echo "$k"; done)
check example_lists_every_key test -z "$missing"
[ -z "$missing" ] || echo "not in the example config: $missing"
extra=$(sed -nE 's/^# ([a-z-]+) =.*/\1/p' "$P/etc/veil/veild.conf" | sort -u | grep -vxF "$flags")
check example_only_real_keys test -z "$extra"

# Uncommented, the example's defaults are a config veild takes: it starts on
# it (ports and data given on the command line win over the file).
sed -nE 's/^# ([a-z-]+ = .+)$/\1/p' "$P/etc/veil/veild.conf" | grep -v '^store = ' >"$T/defaults.conf"
sed -i '1i [veild]' "$T/defaults.conf"
VEILD_EXTRA=(--config "$T/defaults.conf")
start
check example_defaults_start curl -sf "$URL/.well-known/veil/provisioning" -o /dev/null
stop

# The installed veild reads its default config file without --config.
mkdir -p "$P/var/lib"
printf '[veild]\nchat-port = %s\nhttp-port = %s\n' "$CP" "$HP" >"$P/etc/veil/veild.conf"
"$P/usr/bin/veild" >"$T/inst.log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -sf "$URL/.well-known/veil/provisioning" -o /dev/null && break; sleep 0.1; done
check reads_default_config_and_data grep -q "data in $P/var/lib/veil" "$T/inst.log"
# ... and serves the browser client from the installed share/veil/web (when it was built).
if [ -f "$BIN/web/index.html" ]; then
	check installed_web_served bash -c "curl -sf '$URL/app/' | cmp -s - '$P/usr/share/veil/web/index.html'"
fi
stop

# systemd-analyze verify: quiet on the unit, loud on a broken copy of it.
mkdir -p "$P/var/lib/veil"
check unit_verifies bash -c "out=\$(systemd-analyze verify --man=no '$U' 2>&1) && [ -z \"\$out\" ] ||
	{ echo \"\$out\"; exit 1; }"
sed 's/^ProtectSystem=strict/ProtectSystem=stricter/' "$U" >"$T/broken.service"
check unit_verify_can_fail bash -c "[ -n \"\$(systemd-analyze verify --man=no '$T/broken.service' 2>&1)\" ]"
for k in 'User=veil' 'NoNewPrivileges=yes' 'ProtectSystem=strict' 'ProtectHome=yes' \
	'PrivateTmp=yes' 'PrivateDevices=yes' 'SystemCallFilter=@system-service' \
	"ReadWritePaths=$P/var/lib/veil" 'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6' \
	"ExecStart=$P/usr/bin/veild --config $P/etc/veil/veild.conf"; do
	grep -qxF "$k" "$U" || { echo "unit lacks $k"; fails=$((fails + 1)); }
done
# systemd's own rating of the sandbox (lower is better; 10 is none at all).
exposure=$(systemd-analyze security --offline=yes "$U" 2>/dev/null | sed -nE 's/.*exposure level for veild.service: ([0-9.]+).*/\1/p')
echo "systemd-analyze security: exposure $exposure"
check unit_exposure_low awk -v e="${exposure:-10}" 'BEGIN { exit !(e < 2.5) }'
exit $((fails > 0))

#!/bin/bash
# veild --user: started as root it binds, then runs as that user (every
# thread: real, effective, saved and file-system ids), with everything in
# the data directory that user's; it refuses a data directory owned by
# someone else, an unknown user, root, and it exits rather than go on as
# root when it cannot drop. Needs root (the CI runs as root); elsewhere it
# says so and passes nothing.
set -u
. "$(dirname "$0")/lib.sh"
it_setup privdrop
if [ "$(id -u)" != 0 ]; then
	echo "privdrop.sh: not root, nothing tested" >&2
	exit 0
fi
U=nobody
uid=$(id -u "$U")
gid=$(id -g "$U")
chmod 755 "$T"

# Started as root with --user: the ports answer, the process is U's.
VEILD_EXTRA=(--user "$U")
start
check ids_dropped bash -c "grep -E '^(Uid|Gid):' /proc/$pid/status |
	awk -v u=$uid -v g=$gid '\$1 == \"Uid:\" && (\$2 != u || \$3 != u || \$4 != u || \$5 != u) { exit 1 }
	\$1 == \"Gid:\" && (\$2 != g || \$3 != g || \$4 != g || \$5 != g) { exit 1 }'"
check every_thread_dropped bash -c "n=0; for t in /proc/$pid/task/*/status; do
	grep -qE \"^Uid:\\s+$uid\\s+$uid\\s+$uid\\s+$uid\$\" \$t || exit 1; n=\$((n + 1)); done; [ \$n -gt 1 ]"
check root_groups_gone bash -c "! grep -qE '^Groups:.*\\b0\\b' /proc/$pid/status"
# Files it made before and after the drop: all U's.
A=$(VEIL_HOME=$T/a "$BIN/veil" init --server "$URL")
B=$(VEIL_HOME=$T/b "$BIN/veil" init --server "$URL")
VEIL_HOME=$T/a "$BIN/veil" send "$B" "as nobody" >/dev/null
check data_owned_by_user bash -c "[ -z \"\$(find '$T/srv' ! -user $U)\" ] &&
	[ -S '$T/srv/admin.sock' ] && { [ -n '$IT_DB' ] || [ -f '$T/srv/veil.db' ]; }"
stop
# A restart on its own data directory: the queued message is still there.
start
VEIL_HOME=$T/b timeout 20 "$BIN/veil" recv >"$T/recv"
check restart_same_dir_message_kept grep -q "$A: as nobody" "$T/recv"
stop

fails_with() { # name, pattern, command...
	local name=$1 pat=$2; shift 2
	timeout 20 "$@" >"$T/$name.out" 2>"$T/$name.err"
	local rc=$?
	if [ $rc = 1 ] && grep -qi -- "$pat" "$T/$name.err" &&
		! curl -sf "$URL/.well-known/veil/provisioning" -o /dev/null; then
		echo "PASS $name"
	else
		echo "FAIL $name (rc=$rc, stderr: $(cat "$T/$name.err"))"
		fails=$((fails + 1))
	fi
}
V=("$BIN/veild" --chat-port "$CP" --http-port "$HP")
mkdir -m 700 "$T/rootdir"
fails_with dir_of_other_owner 'belongs to uid 0' "${V[@]}" --data "$T/rootdir" --user "$U"
check dir_not_taken_over test "$(stat -c %u "$T/rootdir")" = 0
fails_with unknown_user 'no such user' "${V[@]}" --data "$T/d1" --user no-such-user-veil
fails_with user_root 'that is root' "${V[@]}" --data "$T/d2" --user root
# Not root: only its own user is accepted.
fails_with not_root_other_user 'only root' setpriv --reuid="$uid" --regid="$gid" --clear-groups \
	"${V[@]}" --data "$T/srv" --user daemon
# Root without the capability to change its ids: veild stops instead of
# serving as root.
fails_with cannot_drop 'cannot' setpriv --bounding-set=-setuid,-setgid --inh-caps=-setuid,-setgid \
	"${V[@]}" --data "$T/d3" --user "$U"
exit $((fails > 0))

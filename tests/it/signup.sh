#!/bin/bash
# Who may join: veild --signup invite|closed|open with invite codes made by
# veilctl through the admin socket, and `veil init --invite CODE`: a missing,
# malformed, unknown, revoked or used-up invite is refused with its reason;
# single- and multi-use codes; veilctl list/revoke and its JSON output; the
# admin socket is the owner's alone; the store keeps no code in clear.
set -u
. "$(dirname "$0")/lib.sh"
it_setup signup --signup invite
CTL() { "$BIN/veilctl" --data "$T/srv" "$@"; }
vinit() { # home, args...
	local home=$1; shift
	VEIL_HOME=$T/$home "$BIN/veil" init --server "$URL" "$@"
}

"$BIN/veilctl" --help >"$T/help"
check ctl_help grep -q "invite .*create, list and revoke invite codes" "$T/help"
"$BIN/veilctl" invite --help >"$T/ihelp"
check ctl_invite_help grep -q "invite create \[--uses N\] \[--expires DAYS\]" "$T/ihelp"
"$BIN/veilctl" frobnicate 2>/dev/null
check ctl_unknown_usage [ $? = 2 ]
CTL invite list >/dev/null 2>"$T/norun.err"
check ctl_without_veild grep -q "no data directory $T/srv" "$T/norun.err"

start
check startup_names_mode grep -q "sign-up     invite" "$T/veild.log"
check socket_owner_only bash -c "[ \$(stat -c %a $T/srv/admin.sock) = 600 ]"

vinit a >/dev/null 2>"$T/a.err"
check no_invite_refused grep -q "needs an invite code to join (veil init --invite CODE)" "$T/a.err"
check no_invite_no_profile test ! -e "$T/a/profile.json"
vinit a --invite "not-a-code" >/dev/null 2>"$T/a2.err"
check malformed_refused grep -q "that is not an invite code" "$T/a2.err"
vinit a --invite "AAAAA-BBBBB-CCCCC-DDDDD" >/dev/null 2>"$T/a3.err"
check unknown_refused grep -q "unknown or revoked invite code" "$T/a3.err"

# A single-use code: one identity, then used up.
ONE=$(CTL invite create 2>"$T/create.err")
check code_format bash -c "[[ '$ONE' =~ ^[2-9A-HJKMNP-Z]{5}(-[2-9A-HJKMNP-Z]{5}){3}\$ ]]"
check create_says_id grep -qE "^invite [0-9a-f]{12}: 1 use\(s\), expires " "$T/create.err"
A=$(vinit a --invite "$ONE" --nickname Alice)
check single_use_joins bash -c "[[ '$A' =~ ^[0-9A-Z]{8}\$ ]]"
vinit b --invite "$ONE" >/dev/null 2>"$T/b.err"
check used_up_refused grep -q "this invite code has been used up" "$T/b.err"

# A code for three, typed in lower case without dashes.
THREE=$(CTL invite create --uses 3 --expires 30 2>/dev/null)
LOWER=$(echo "$THREE" | tr -d - | tr 'A-Z' 'a-z')
B=$(vinit b --invite "$LOWER" --nickname Bob)
C=$(vinit c --invite "$THREE")
check multi_use_joins bash -c "[ -n '$B' ] && [ -n '$C' ] && [ '$B' != '$C' ]"
CTL --json invite list >"$T/list.json"
check list_json python3 -c "
import json
inv = json.load(open('$T/list.json'))['invites']
assert [(i['uses'], i['used'], i['state']) for i in inv] == [(1, 1, 'used'), (3, 2, 'active')], inv
assert inv[0]['expires_ms'] - inv[0]['created_ms'] == 7 * 86400000, inv
assert inv[1]['expires_ms'] - inv[1]['created_ms'] == 30 * 86400000, inv
"
CTL invite list >"$T/list.txt"
check list_text grep -qE "^[0-9a-f]{12} 2/3 created .* expires .* active\$" "$T/list.txt"

# Revoked: the third use is refused.
ID=$(python3 -c "import json; print(json.load(open('$T/list.json'))['invites'][1]['id'])")
check revoke CTL invite revoke "$ID"
vinit d --invite "$THREE" >/dev/null 2>"$T/d.err"
check revoked_refused grep -q "unknown or revoked invite code" "$T/d.err"
CTL invite revoke "$ID" 2>"$T/rev2.err"
check revoke_twice_fails grep -q "no live invite $ID" "$T/rev2.err"
CTL invite create --uses 0 2>"$T/bad.err"
rc=$?
check bad_uses_usage bash -c "[ $rc = 2 ] && grep -q -- '--uses takes a number' $T/bad.err"

# The invited users talk as usual.
VEIL_HOME=$T/a "$BIN/veil" send "$B" "hello Bob" >/dev/null
VEIL_HOME=$T/b "$BIN/veil" recv >"$T/recv"
check invited_users_chat grep -q "$A: hello Bob" "$T/recv"

# Only hashes of the codes are stored.
check no_code_in_store bash -c "! grep -rqa -e '$ONE' -e '$(echo "$THREE" | tr -d -)' $T/srv/veil.db*"

# The socket is veild's user's: another user cannot give commands.
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
	chmod 755 "$T" "$T/srv"
	runuser -u nobody -- "$BIN/veilctl" --data "$T/srv" invite create >/dev/null 2>"$T/nobody.err"
	check other_user_refused grep -q "permission denied" "$T/nobody.err"
	chmod 700 "$T/srv"
fi
stop

# Closed: nobody joins, not even with a code.
VEILD_EXTRA=(--signup closed)
start
vinit e --invite "$ONE" >/dev/null 2>"$T/e.err"
check closed_refused grep -q "sign-up is closed on this server" "$T/e.err"
stop
check socket_removed test ! -e "$T/srv/admin.sock"
exit $((fails > 0))

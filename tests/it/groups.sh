#!/bin/bash
# Group chats with the veil CLI against a real veild on loopback: five
# identities create a group, talk, rename it, add and remove members, one
# leaves, one loses its group state and gets it back with a sync request, a
# non-member's injected message is dropped, and members react with group
# receipts.
set -u
. "$(dirname "$0")/lib.sh"
it_setup groups --dir-rate 100000 --http-conn-rate 1000000
v() { local who=$1; shift; VEIL_HOME=$T/$who "$BIN/veil" "$@"; }
# recv WHO: JSON lines on $T/WHO.N (stdout) and $T/WHO.N.err, N counting up.
declare -A seq
rcv() {
	local who=$1
	seq[$who]=$(( ${seq[$who]:-0} + 1 ))
	R=$T/$who.${seq[$who]}
	v "$who" recv --json >"$R" 2>"$R.err" || echo "  recv $who failed: $(cat "$R.err")"
}
# py FILE EXPR: evaluates a Python assertion over the JSON lines of FILE as `rows`.
py() {
	python3 -c "
import json,sys
rows=[json.loads(l) for l in open('$1') if l.strip()]
$2
" || { echo "  in $1:"; sed 's/^/    /' "$1"; return 1; }
}

start
ipids=()
for w in a b c d e x; do v $w init --server "$URL" --nickname "$w" >"$T/$w.id" & ipids+=($!); done
wait "${ipids[@]}"
A=$(cat "$T/a.id"); B=$(cat "$T/b.id"); C=$(cat "$T/c.id"); D=$(cat "$T/d.id")
E=$(cat "$T/e.id"); X=$(cat "$T/x.id")
check six_identities [ "$(sort -u "$T"/?.id | wc -l)" = 6 ]

# --- create ---
G=$(v a group create Friends "$B" "$C" "$D")
check create_prints_gid bash -c "[[ '$G' =~ ^[0-9a-f]{16}$ ]]"
check creator_lists_group bash -c "VEIL_HOME=$T/a $BIN/veil group list | grep -q '^$G  Friends  (creator $A = you, 4 members)'"
for w in b c d; do rcv $w; cp "$R" "$T/$w.setup"; done
check members_get_setup_and_name py "$T/c.setup" "
s=[r for r in rows if r['type']=='group-setup']
n=[r for r in rows if r['type']=='group-name']
assert len(s)==1 and s[0]['from']=='$A' and s[0]['group']['id']=='$G', rows
assert sorted(s[0]['group']['members'])==sorted(['$B','$C','$D']), s
assert len(n)==1 and n[0]['group']['name']=='Friends', rows
"
check member_lists_group bash -c "VEIL_HOME=$T/b $BIN/veil group list | grep -q '^$G  Friends  (creator $A, 4 members)'"
check member_show bash -c "VEIL_HOME=$T/d $BIN/veil group show $G | grep -q '^  $D (you)'"

# --- talk: a member writes to the group; creator and members get it, outsiders do not ---
M1=$(v b group send "$G" "hello from B")
check send_prints_msgid bash -c "[[ '$M1' =~ ^[0-9a-f]{16}$ ]]"
for w in a c d e; do rcv $w; done
check all_members_receive bash -c "grep -q '\"text\":\"hello from B\"' $T/a.1 && grep -q '\"text\":\"hello from B\"' $T/c.2 && grep -q '\"text\":\"hello from B\"' $T/d.2"
check same_id_for_all py "$T/a.1" "
t=[r for r in rows if r['type']=='group-text']
assert len(t)==1 and t[0]['id']=='$M1' and t[0]['from']=='$B' and t[0]['group']=={'id':'$G','creator':'$A','name':'Friends'}, rows
"
check same_id_for_all_c grep -q "\"id\":\"$M1\"" "$T/c.2"
check outsider_gets_nothing [ ! -s "$T/e.1" ]
v c recv >"$T/c.human" 2>&1 # nothing left; a human-readable line comes next
v c group send "$G" "hi all" >/dev/null
v a recv >"$T/a.human" 2>&1
check recv_human_shows_group grep -q "^\[.*\] $C in Friends ($G): hi all\$" "$T/a.human"
# Group messages carry no automatic delivery receipts.
rcv b; rcv c
check no_auto_receipts py "$T/b.2" "
assert not [r for r in rows if r['type'] in ('receipt','group-receipt')], rows
assert [r for r in rows if r.get('text')=='hi all'], rows
"

# --- rename ---
v a group rename "$G" "Best Friends"
for w in b c d; do rcv $w; done
check rename_reaches_members py "$T/d.3" "
n=[r for r in rows if r['type']=='group-name']
assert len(n)==1 and n[0]['group']['name']=='Best Friends', rows
"
check rename_shown bash -c "VEIL_HOME=$T/b $BIN/veil group show $G | grep -q '^name:    Best Friends'"
check rename_only_creator bash -c "! VEIL_HOME=$T/b $BIN/veil group rename $G Mine 2>$T/err && grep -q 'only the group.s creator' $T/err"

# --- add ---
v a group add "$G" "$E"
rcv e; rcv b
check added_member_gets_state py "$T/e.2" "
s=[r for r in rows if r['type']=='group-setup']
n=[r for r in rows if r['type']=='group-name']
assert s and sorted(s[0]['group']['members'])==sorted(['$B','$C','$D','$E']), rows
assert n and n[0]['group']['name']=='Best Friends', rows
"
check members_see_addition py "$T/b.4" "
s=[r for r in rows if r['type']=='group-setup']
assert s and '$E' in s[0]['group']['members'], rows
"
v e group send "$G" "E here" >/dev/null
rcv a; rcv c; rcv d
check added_member_talks bash -c "grep -q 'E here' $T/a.2 && grep -q 'E here' $T/c.5 && grep -q 'E here' $T/d.4"

# --- remove ---
v a group remove "$G" "$D"
rcv d
check removed_member_told py "$T/d.5" "
s=[r for r in rows if r['type']=='group-setup']
assert len(s)==1 and s[0]['group']['removed'] is True, rows
"
check removed_member_state bash -c "VEIL_HOME=$T/d $BIN/veil group show $G | grep -q '^state:   left'"
check removed_member_cannot_send bash -c "! VEIL_HOME=$T/d $BIN/veil group send $G 'still here?' 2>$T/err && grep -q 'no longer a member' $T/err"
v c group send "$G" "after removal" >/dev/null
rcv d; rcv b
check removed_member_gets_nothing bash -c "[ ! -s $T/d.6 ] && grep -q 'after removal' $T/b.5"

# --- leave (C first reads what is queued for it) ---
rcv c
v c group leave "$G"
rcv a; rcv b; rcv e
check leave_announced py "$T/b.6" "
l=[r for r in rows if r['type']=='group-leave']
assert len(l)==1 and l[0]['from']=='$C', rows
"
check leaver_removed_from_list bash -c "! VEIL_HOME=$T/a $BIN/veil group show $G | grep -q '$C' && ! VEIL_HOME=$T/b $BIN/veil group show $G | grep -q '$C'"
v b group send "$G" "after leave" >/dev/null
rcv c; rcv e
check leaver_gets_nothing bash -c "[ ! -s $T/c.7 ] && grep -q 'after leave' $T/e.4"

# --- sync after state loss: B forgets the group, E writes, B asks A, A answers ---
VEIL_HOME=$T/b "$BIN/tests/tools/profile_poke" group-forget
check state_lost bash -c "[ -z \"\$(VEIL_HOME=$T/b $BIN/veil group list)\" ]"
v e group send "$G" "lost message" >/dev/null
rcv b
check unknown_group_dropped bash -c "grep -q 'unknown group $G dropped; asked its creator' $T/b.7.err && ! grep -q 'lost message' $T/b.7"
rcv a
check creator_answers_sync py "$T/a.4" "
s=[r for r in rows if r['type']=='group-sync-request']
assert len(s)==1 and s[0]['from']=='$B', rows
"
rcv b
check state_restored bash -c "VEIL_HOME=$T/b $BIN/veil group list | grep -q '^$G  Best Friends  (creator $A, 3 members)'"
v e group send "$G" "found again" >/dev/null
rcv b
check talks_after_sync grep -q 'found again' "$T/b.9"

# --- a non-member's injected message is dropped ---
# X fakes the group locally (creator A, members B and X) and sends to it.
v x group list >/dev/null
VEIL_HOME=$T/x "$BIN/tests/tools/profile_poke" group-put "$A" "$G" fake "$B" "$X"
v x group send "$G" "intruder" >/dev/null
rcv b; rcv a
check nonmember_dropped_by_member bash -c "! grep -q intruder $T/b.10 && grep -q 'not a member of group $G' $T/b.10.err"
check nonmember_dropped_by_creator bash -c "! grep -q intruder $T/a.5 && grep -q 'not a member of group $G' $T/a.5.err"
rcv x
check nonmember_gets_empty_setup py "$T/x.1" "
s=[r for r in rows if r['type']=='group-setup']
assert len(s)==1 and s[0]['from']=='$A' and s[0]['group']['removed'] is True, rows
"

# --- group receipts (acknowledge / decline) ---
M2=$(v a group send "$G" "please react")
rcv b; rcv e
v b group ack "$G" "$M2"
v e group decline "$G" "$M2"
rcv a
check group_receipts py "$T/a.6" "
r=[x for x in rows if x['type']=='group-receipt']
st={x['from']:x['status'] for x in r}
assert st=={'$B':'acknowledged','$E':'declined'}, rows
assert all(x['ids']==['$M2'] and x['group']['id']=='$G' for x in r), r
"
check receipt_in_log bash -c "VEIL_HOME=$T/a $BIN/veil log --json | grep '\"id\":\"$M2\"' | grep -q '\"status\":\"\(acknowledged\|declined\)\"'"

# --- disband: the creator's leave sends an empty setup to everyone ---
v a group leave "$G"
rcv b
check disband_reaches_members py "$T/b.12" "
s=[r for r in rows if r['type']=='group-setup']
assert len(s)==1 and s[0]['group']['removed'] is True, rows
"

# --- group files: one upload, every member downloads the same blob ---
head -c 1048576 /dev/urandom >"$T/photo.bin"
G2=$(v a group create Files "$B" "$E")
F1=$(v a group send "$G2" --file "$T/photo.bin" --caption "for all" 2>/dev/null)
check group_file_sent bash -c "[[ '$F1' =~ ^[0-9a-f]{16}$ ]]"
rcv b; rcv e
check group_file_received py "$T/b.13" "
f=[r for r in rows if r['type']=='group-file']
assert len(f)==1 and f[0]['id']=='$F1' and f[0]['group']['id']=='$G2' and f[0]['caption']=='for all', rows
import hashlib
assert hashlib.sha256(open(f[0]['path'],'rb').read()).digest()==hashlib.sha256(open('$T/photo.bin','rb').read()).digest()
"
# B downloaded first; the blob stays for E (group blobs are not marked done).
check group_file_second_member py "$T/e.6" "
f=[r for r in rows if r['type']=='group-file']
assert len(f)==1 and f[0]['id']=='$F1', rows
assert open(f[0]['path'],'rb').read()==open('$T/photo.bin','rb').read()
"
v b group send "$G2" --file "$T/photo.bin" >/dev/null 2>&1
v a recv >"$T/a.file" 2>&1
check group_file_human grep -q "^\[.*\] $B in Files ($G2): file saved to .*photo.bin" "$T/a.file"

# --- a revoked member: the others still get every message, and the exit status says so ---
v r init --server "$URL" --nickname r >"$T/r.id"; R_=$(cat "$T/r.id")
G3=$(v a group create Revoked "$B" "$C")
rcv b; rcv c
# R joined long ago: added to A's and B's group state directly, so that no
# message to R passes the chat server (which caches known IDs for a minute).
for w in a b; do VEIL_HOME=$T/$w "$BIN/tests/tools/profile_poke" group-add "$A" "$G3" "$R_"; done
v a contact add "$R_" >/dev/null
v r revoke --yes >/dev/null 2>&1
v a group send "$G3" "hi" --json >/dev/null 2>"$T/g3o.err"; st=$?
check group_send_option_after_text_is_error bash -c "[ $st = 2 ] && grep -q \"unexpected option '--json'\" $T/g3o.err"
v a group send "$G3" "creator after revoke" >"$T/g3.out" 2>"$T/g3.err"; st=$?
check revoked_creator_send_exit0 bash -c "[ $st = 0 ] && [ -s $T/g3.out ]"
check revoked_creator_send_names_member bash -c "[ \"\$(grep -c $R_ $T/g3.err)\" = 1 ] && grep -q 'did not get the message (unreachable)' $T/g3.err"
v b group send "$G3" "member after revoke" >"$T/g3b.out" 2>"$T/g3b.err"; st=$?
check revoked_member_send_exit0 bash -c "[ $st = 0 ] && [ -s $T/g3b.out ] && grep -q $R_ $T/g3b.err"
rcv a; rcv c
check revoked_others_got_both bash -c "grep -q 'creator after revoke' $T/c.${seq[c]} && grep -q 'member after revoke' $T/c.${seq[c]} && grep -q 'member after revoke' $T/a.${seq[a]}"
v a group remove "$G3" "$R_" >"$T/g3r.out" 2>"$T/g3r.err"; st=$?
check revoked_remove_exit0 bash -c "[ $st = 0 ] && ! VEIL_HOME=$T/a $BIN/veil group show $G3 | grep -q $R_"
rcv b
check revoked_remove_reaches_others py "$T/b.${seq[b]}" "
s=[r for r in rows if r['type']=='group-setup']
assert len(s)==1 and '$R_' not in s[0]['group']['members'], rows
"

stop
check no_plaintext_on_server bash -c "! grep -r -q -a 'hello from B\|Best Friends\|please react' '$T/srv'"
exit $fails

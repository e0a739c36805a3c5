#!/bin/bash
# The encrypted local store against a real veild on loopback: no file of a
# profile holds a message text, a contact's nickname or local name, a group's
# name or the secret key (hex or raw); a wrong or missing passphrase changes
# nothing; passphrase change and removal; the conversion of a plaintext
# profile, killed mid-way and after its rename; the daemon serves without the
# passphrase; export and import (a second import doubles nothing, a tampered
# or truncated file or a wrong passphrase imports nothing).
set -u
. "$(dirname "$0")/lib.sh"
it_setup store
start
POKE=$BIN/tests/tools/profile_poke
va() { VEIL_HOME=$T/a "$BIN/veil" "$@"; }
vb() { VEIL_HOME=$T/b "$BIN/veil" "$@"; }
A=$(va init --server "$URL" --nickname Alice)
B=$(vb init --server "$URL" --nickname Bartholomew-Nick)
TEXT="the owl flies at midnight 4711"
va send "$B" "$TEXT" >/dev/null
vb recv >/dev/null
vb send "$A" "reply from bob" >/dev/null
va recv >/dev/null
va contact name "$B" "Localname-Quixote" >/dev/null
G=$(va group create "Secret Garden Club" "$B")
vb recv >/dev/null

# --- nothing readable in the files ---
SK=$(VEIL_HOME=$T/a "$POKE" print-sk)
printf '%s' "$SK" | xxd -r -p >"$T/sk.raw"
check sk_known [ ${#SK} = 64 ]
no_plaintext() { # dir
	local f bad=0
	for f in $(find "$1" -type f); do
		for s in "$TEXT" Bartholomew-Nick Localname-Quixote "Secret Garden Club" "$SK"; do
			grep -qaF -- "$s" "$f" && { echo "  '$s' in $f"; bad=1; }
		done
		python3 -c 'import sys; sys.exit(open(sys.argv[2],"rb").read().find(open(sys.argv[1],"rb").read()) >= 0)' \
			"$T/sk.raw" "$f" || { echo "  raw secret key in $f"; bad=1; }
	done
	return $bad
}
check log_has_text bash -c "VEIL_HOME=$T/a $BIN/veil log | grep -q '$TEXT'"
check nickname_known bash -c "VEIL_HOME=$T/a $BIN/veil contact list | grep -q Bartholomew-Nick"
check no_plaintext_a no_plaintext "$T/a"
check no_plaintext_b no_plaintext "$T/b"
check no_key_file [ ! -e "$T/a/key" ]

# --- a wrong or missing passphrase: a clear error, nothing changed ---
echo "not the passphrase" >"$T/wrong"
sums() { find "$T/a" -type f -exec sha256sum {} + | sort; }
sums >"$T/sums.before"
VEIL_HOME=$T/a VEIL_PASSPHRASE_FILE=$T/wrong "$BIN/veil" log >"$T/out" 2>"$T/err" </dev/null
st=$?
export -n VEIL_PASSPHRASE_FILE
VEIL_HOME=$T/a setsid "$BIN/veil" log >"$T/out2" 2>"$T/err2" </dev/null
st2=$?
export VEIL_PASSPHRASE_FILE
sums >"$T/sums.after"
check wrong_passphrase bash -c "[ $st = 1 ] && grep -q 'wrong passphrase for the profile' $T/err && [ ! -s $T/out ]"
check missing_passphrase bash -c "[ $st2 = 1 ] && grep -q 'has a passphrase: type it on a terminal' $T/err2"
check nothing_changed cmp -s "$T/sums.before" "$T/sums.after"

# --- change, remove, set again ---
echo "a new and better passphrase" >"$T/p2"
check change bash -c "VEIL_HOME=$T/a VEIL_NEW_PASSPHRASE_FILE=$T/p2 $BIN/veil passphrase change | grep -q 'passphrase set'"
check old_refused bash -c "! VEIL_HOME=$T/a $BIN/veil whoami 2>/dev/null"
check new_opens bash -c "VEIL_HOME=$T/a VEIL_PASSPHRASE_FILE=$T/p2 $BIN/veil log | grep -q '$TEXT'"
check set_refused_when_set bash -c "VEIL_HOME=$T/a VEIL_PASSPHRASE_FILE=$T/p2 $BIN/veil passphrase set 2>&1 | grep -q 'already has a passphrase'"
check remove bash -c "VEIL_HOME=$T/a VEIL_PASSPHRASE_FILE=$T/p2 $BIN/veil passphrase remove | grep -q 'passphrase removed'"
check store_key_private [ "$(stat -c %a "$T/a/store.key")" = 600 ]
check opens_without bash -c "VEIL_HOME=$T/a VEIL_PASSPHRASE_FILE= setsid $BIN/veil log </dev/null | grep -q '$TEXT'"
check no_plaintext_without_passphrase no_plaintext "$T/a"
check set_again bash -c "VEIL_HOME=$T/a $BIN/veil passphrase set | grep -q 'passphrase set' && [ ! -e $T/a/store.key ]"
check opens_again bash -c "VEIL_HOME=$T/a $BIN/veil log | grep -q '$TEXT'"

# --- the daemon unlocks once; what it serves needs no passphrase ---
VEIL_HOME=$T/a "$BIN/veil" daemon 2>"$T/daemon.log" &
dpid=$!
trap 'kill $dpid 2>/dev/null; stop 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
for _ in $(seq 100); do [ -S "$T/a/daemon.sock" ] && grep -q connected "$T/daemon.log" && break; sleep 0.1; done
check send_through_daemon_without_passphrase bash -c "VEIL_HOME=$T/a VEIL_PASSPHRASE_FILE= setsid $BIN/veil send $B 'via the daemon' </dev/null >/dev/null"
kill "$dpid" && wait "$dpid"
check daemon_sent bash -c "VEIL_HOME=$T/b $BIN/veil recv | grep -q 'via the daemon'"

# --- export and import ---
echo "export passphrase" >"$T/px"
export VEIL_EXPORT_PASSPHRASE_FILE=$T/px
N=$(va log --json | wc -l)
check export bash -c "VEIL_HOME=$T/a $BIN/veil export $T/hist.veil | grep -q '^$N messages exported'"
check export_no_overwrite bash -c "! VEIL_HOME=$T/a $BIN/veil export $T/hist.veil 2>/dev/null"
check export_no_plaintext bash -c "! grep -qaF '$TEXT' $T/hist.veil"
VEIL_HOME=$T/c "$BIN/veil" init --server "$URL" >/dev/null
vc_count() { VEIL_HOME=$T/c "$BIN/veil" log --json | wc -l; }
# Damaged copies: a flipped byte in the middle, a cut end, a cut at a chunk's end.
size=$(stat -c %s "$T/hist.veil")
cp "$T/hist.veil" "$T/tampered.veil"
printf '\xff' | dd of="$T/tampered.veil" bs=1 seek=$((size / 2)) conv=notrunc status=none
head -c $((size - 7)) "$T/hist.veil" >"$T/cut.veil"
check import_tampered_refused bash -c "! VEIL_HOME=$T/c $BIN/veil import $T/tampered.veil 2>$T/e1 && grep -q 'nothing imported' $T/e1"
check import_cut_refused bash -c "! VEIL_HOME=$T/c $BIN/veil import $T/cut.veil 2>$T/e2 && grep -q 'nothing imported' $T/e2"
check import_wrong_pass bash -c "! VEIL_HOME=$T/c VEIL_EXPORT_PASSPHRASE_FILE=$T/wrong $BIN/veil import $T/hist.veil 2>$T/e3 && grep -q 'wrong passphrase' $T/e3"
check nothing_imported [ "$(vc_count)" = 0 ]
check import bash -c "VEIL_HOME=$T/c $BIN/veil import $T/hist.veil | grep -q '^$N messages imported, 0 already there'"
check import_again_doubles_nothing bash -c "VEIL_HOME=$T/c $BIN/veil import $T/hist.veil | grep -q '^0 messages imported, $N already there'"
check imported_count [ "$(vc_count)" = "$N" ]
check imported_text bash -c "VEIL_HOME=$T/c $BIN/veil log | grep -q '$TEXT'"
check import_into_own_doubles_nothing bash -c "VEIL_HOME=$T/a $BIN/veil import $T/hist.veil | grep -q '^0 messages imported'"

# --- a plaintext profile of the first format, converted ---
# Made as the first format's code made it: the key in hex, profile.json, and
# veil.db with that schema, here with A's identity, contacts and M messages.
M=3000
plaintext_profile() { # dir
	mkdir -m 700 "$1"
	cp "$T/a/profile.json" "$1/"
	(umask 077; echo "$SK" >"$1/key")
	python3 - "$1/veil.db" "$B" "$M" "$TEXT" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1]); peer, m, text = sys.argv[2], int(sys.argv[3]), sys.argv[4]
db.executescript("""PRAGMA journal_mode=WAL;
CREATE TABLE contacts(id TEXT PRIMARY KEY, pk BLOB NOT NULL, nickname TEXT NOT NULL DEFAULT '',
 first_seen INTEGER NOT NULL);
CREATE TABLE nonces(nonce BLOB PRIMARY KEY, seen INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE messages(seq INTEGER PRIMARY KEY, dir INTEGER NOT NULL, peer TEXT NOT NULL,
 msg_id INTEGER NOT NULL, date INTEGER NOT NULL, type INTEGER NOT NULL, body BLOB NOT NULL,
 status INTEGER NOT NULL DEFAULT 0, UNIQUE(dir, peer, msg_id));
CREATE TABLE contact_names(id TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE groups(creator TEXT NOT NULL, gid INTEGER NOT NULL, name TEXT NOT NULL DEFAULT '',
 is_left INTEGER NOT NULL DEFAULT 0, created INTEGER NOT NULL, PRIMARY KEY(creator, gid));
CREATE TABLE group_members(creator TEXT NOT NULL, gid INTEGER NOT NULL, pos INTEGER NOT NULL,
 member TEXT NOT NULL, PRIMARY KEY(creator, gid, member)) WITHOUT ROWID;""")
db.execute("INSERT INTO contacts VALUES(?,?,?,?)", (peer, bytes(32), "Bartholomew-Nick", 1))
db.execute("INSERT INTO contact_names VALUES(?,?)", (peer, "Localname-Quixote"))
db.execute("INSERT INTO groups VALUES(?,?,?,0,1)", (peer, 77, "Secret Garden Club"))
db.execute("INSERT INTO group_members VALUES(?,77,0,?)", (peer, peer))
db.execute("INSERT INTO nonces VALUES(?,1)", (bytes(range(24)),))
for i in range(m):
    # Long bodies: 12 MB of history, so that an export that held it would show.
    body = (text if i == 0 else "message %d " % i + "x" * 4000).encode()
    db.execute("INSERT INTO messages(dir,peer,msg_id,date,type,body,status) VALUES(?,?,?,?,1,?,0)",
               (i % 2, peer, i + 1, 1700000000000 + i, body))
db.commit()
PY
}
plaintext_profile "$T/old"
vo() { VEIL_HOME=$T/old "$BIN/veil" "$@"; }
check plaintext_refused bash -c "! VEIL_HOME=$T/old $BIN/veil log 2>$T/e4 && grep -q \"plaintext format: convert it with 'veil passphrase set'\" $T/e4"
VEIL_TEST_KILL_MIGRATION=0:1500 vo passphrase set >/dev/null 2>&1
st=$?
check killed_mid_way [ $st = 137 ]
check old_kept_after_kill bash -c "[ -e $T/old/key ] && VEIL_HOME=$T/old $BIN/veil log 2>&1 | grep -q 'plaintext format'"
check old_db_whole_after_kill bash -c "[ \"\$(python3 -c \"import sqlite3; print(sqlite3.connect('$T/old/veil.db').execute('SELECT count(*) FROM messages').fetchone()[0])\")\" = $M ]"
check convert bash -c "VEIL_HOME=$T/old $BIN/veil passphrase set | grep -q 'converted'"
check converted_count [ "$(vo log --json | wc -l)" = "$M" ]
check converted_text bash -c "VEIL_HOME=$T/old $BIN/veil log --peer $B | grep -q '$TEXT'"
check converted_name bash -c "VEIL_HOME=$T/old $BIN/veil contact name $B | grep -q Localname-Quixote"
check converted_group bash -c "VEIL_HOME=$T/old $BIN/veil group list | grep -q 'Secret Garden Club'"
check converted_no_plaintext no_plaintext "$T/old"
check converted_no_leftovers bash -c "[ ! -e $T/old/key ] && [ ! -e $T/old/veil.db.new ]"
# Killed right after the rename: the new profile stands; the next open removes the old key.
plaintext_profile "$T/old2"
VEIL_TEST_KILL_MIGRATION=1:$M VEIL_HOME=$T/old2 "$BIN/veil" passphrase remove >/dev/null 2>&1
st=$?
check killed_after_rename bash -c "[ $st = 137 ] && [ -e $T/old2/key ]"
check new_after_rename bash -c "[ \"\$(VEIL_HOME=$T/old2 $BIN/veil log --json | wc -l)\" = $M ] && [ ! -e $T/old2/key ]"
check no_plaintext_after_rename no_plaintext "$T/old2"

# --- export memory stays the same for any size ---
maxrss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
small=$(VEIL_HOME=$T/a maxrss "$BIN/veil" export "$T/small.veil")
big=$(VEIL_HOME=$T/old maxrss "$BIN/veil" export "$T/big.veil")
echo "  export max RSS: $small KiB for $N messages, $big KiB for $M"
check export_memory_flat [ "$big" -lt $((small + 4096)) ]

exit $fails

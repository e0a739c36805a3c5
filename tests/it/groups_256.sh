#!/bin/bash
# A group of the specification's maximum size, 256 identities (the creator
# and 255 members), on loopback: create it, send one message, check that
# every member receives it. Prints the time each step took (no limit is
# asserted; bench/ is where speed is judged).
set -u
. "$(dirname "$0")/lib.sh"
it_setup groups256 --dir-rate 100000 --http-conn-rate 1000000 --log-level warn
N=256
JOBS=${JOBS:-16}
now() { date +%s.%N; }
took() { python3 -c "print('%.2f' % ($2 - $1))"; }
export BIN T URL

start
t0=$(now)
seq 0 $((N - 1)) | xargs -P "$JOBS" -I{} sh -c \
	'VEIL_HOME=$T/u{} "$BIN/veil" init --server "$URL" >"$T/id.{}" 2>"$T/init.{}.err" || cat "$T/init.{}.err"'
t1=$(now)
cat "$T"/id.* | sort -u >"$T/ids"
check identities_created [ "$(wc -l <"$T/ids")" = "$N" ]
echo "# $N identities registered in $(took "$t0" "$t1") s ($JOBS at a time)"

CREATOR=$(cat "$T/id.0")
mapfile -t MEMBERS < <(for i in $(seq 1 $((N - 1))); do cat "$T/id.$i"; done)
t2=$(now)
G=$(VEIL_HOME=$T/u0 "$BIN/veil" group create "Two fifty-six" "${MEMBERS[@]}")
t3=$(now)
check group_created bash -c "[[ '$G' =~ ^[0-9a-f]{16}$ ]]"
echo "# group of $N created (setup and name to $((N - 1)) members: $((2 * (N - 1))) messages) in $(took "$t2" "$t3") s"
check too_many_refused bash -c "! VEIL_HOME=$T/u1 $BIN/veil group create Over ${MEMBERS[*]} $CREATOR 2>$T/err && grep -q 'at most 256' $T/err"

t4=$(now)
MID=$(VEIL_HOME=$T/u0 "$BIN/veil" group send "$G" "hello two hundred fifty-five")
t5=$(now)
check message_sent bash -c "[[ '$MID' =~ ^[0-9a-f]{16}$ ]]"
echo "# one group message sent to $((N - 1)) members in $(took "$t4" "$t5") s"

t6=$(now)
seq 1 $((N - 1)) | xargs -P "$JOBS" -I{} sh -c \
	'VEIL_HOME=$T/u{} "$BIN/veil" recv --json >"$T/recv.{}" 2>"$T/recv.{}.err"'
t7=$(now)
echo "# $((N - 1)) members received (3 messages each) in $(took "$t6" "$t7") s ($JOBS at a time)"
got=$(grep -l "\"id\":\"$MID\".*\"text\":\"hello two hundred fifty-five\"" "$T"/recv.[0-9]* | wc -l)
check all_members_received [ "$got" = $((N - 1)) ]
[ "$got" = $((N - 1)) ] || echo "  only $got of $((N - 1)); e.g. $(cat "$T"/recv.*.err | head -3)"
check members_know_group bash -c "VEIL_HOME=$T/u200 $BIN/veil group show $G | grep -q '^members: $N'"
echo "# whole test $(took "$t0" "$(now)") s"
exit $fails

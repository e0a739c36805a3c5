#!/bin/bash
# README's tour, run as written and in order against a loopback veild: the
# shell blocks of "A short tour" and of the group chats that follow it,
# with the IDs each `veil init` and `group create` prints put in place of
# ALICES_ID, BOBS_ID, CAROLS_ID, DAVES_ID and GID, the test's server URL in
# place of http://127.0.0.1:8080 and the test's directory in place of /tmp
# and ~. Any step that fails stops the tour and names the README line.
set -u
. "$(dirname "$0")/lib.sh"
it_setup tour
README=$(cd "$(dirname "$0")/../.." && pwd)/README.md
start

# The tour's command lines, one per step, as the README has them.
python3 - "$README" >"$T/steps" <<'PY'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
a = text.index("## A short tour")
b = text.index("A member who cannot get a group message")
for block in re.findall(r"```sh\n(.*?)```", text[a:b], re.S):
    for line in block.splitlines():
        line = re.sub(r"\s+#\s.*$", "", line).strip()
        if line and not line.startswith("#"):
            print(line)
PY
# Turns one README line into a shell step for this test.
python3 - "$T/steps" >"$T/tour.run" <<'PY'
import re, shlex, sys
out = ['set -u', 'fail() { echo "tour step failed: $1"; exit 1; }']
for n, line in enumerate(open(sys.argv[1], encoding="utf-8").read().splitlines(), 1):
    cmd = line.replace("$PWD/build", "$BIN").replace("http://127.0.0.1:8080", "$URL")
    cmd = cmd.replace("/tmp/", "$T/home/").replace("~/", "$T/")
    cmd = re.sub(r"\b(ALICES_ID|BOBS_ID|CAROLS_ID|DAVES_ID|GID)\b", r"${\1}", cmd)
    home = re.search(r"VEIL_HOME=\S*/(\w+)", line)
    var = None
    if " veil init " in line and home:
        var = home.group(1).upper() + "S_ID"
    elif " veil group create " in line:
        var = "GID"
    q = shlex.quote(line)
    if var:
        out.append(f'{var}=$({cmd} 2>>"$T/step.{n}.err") || fail {q}; echo "${var}" >"$T/step.{n}"')
    else:
        out.append(f'{{ {cmd}; }} >"$T/step.{n}" 2>"$T/step.{n}.err" || fail {q}')
print("\n".join(out))
PY
mkdir -p "$T/home"
export BIN URL T
(cd "$(dirname "$0")/../.." && TMPDIR=$T bash "$T/tour.run") >"$T/tour.log" 2>&1
rc=$?
check tour_runs_as_written bash -c "[ $rc = 0 ] || { cat $T/tour.log; for f in $T/step.*.err; do [ -s \$f ] && echo \"\$f: \$(cat \$f)\"; done; false; }"

# What the tour promises along the way.
step() { grep -n -F -- "$1" "$T/steps" | head -1 | cut -d: -f1; }
last() { grep -n -x -F -- "$1" "$T/steps" | tail -1 | cut -d: -f1; } # the last step that is exactly $1
A=$(cat "$T/step.$(step 'VEIL_HOME=/tmp/alice veil init')" 2>/dev/null)
B=$(cat "$T/step.$(step 'VEIL_HOME=/tmp/bob   veil init')" 2>/dev/null)
G=$(cat "$T/step.$(step 'veil group create Hikers')" 2>/dev/null)
check tour_ids [ ${#A} = 8 ] && [ ${#B} = 8 ] && [ ${#G} = 16 ]
check tour_bob_reads grep -q "$A: Hello Bob" "$T/step.$(step 'veil recv --wait 5')"
check tour_alice_receipt grep -q '"type":"receipt"' "$T/step.$(step 'veil recv --json')"
check tour_file_saved bash -c "ls $T/Downloads | grep -q holiday.jpg"
check tour_group_text grep -q "$B in Hikers ($G): Sunday at nine?" "$T/step.$(last 'VEIL_HOME=/tmp/alice veil recv')"
check tour_group_log grep -q "file map.pdf" "$T/step.$(step 'veil log --peer GID')"
stop
exit $fails

# Shared by the shell tests in tests/it: sourced, never run on its own (it is
# not executable, so tests/run does not take it for a test).
#
#   it_setup NAME [VEILD-ARGS...]  temp dir $T, free ports $CP/$HP, $URL, the
#                                  extra flags veild starts with; cleans up on exit
#                                  (KEEP=1 keeps $T for a look)
#   start / stop                   veild on those ports, stopped by its PID
#   check NAME COMMAND...          prints PASS/FAIL NAME, counts $fails
BIN=${VEIL_BIN:-$PWD/build}
# Every profile a test makes is encrypted under this passphrase at the cheapest
# KDF level: the encrypted path is what every test runs, without paying
# Argon2id's full cost on each of the hundreds of veil commands.
IT_PASSPHRASE_FILE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/passphrase.txt
export VEIL_PASSPHRASE_FILE=$IT_PASSPHRASE_FILE VEIL_KDF=min
fails=0
pid=

# A free port below the ephemeral range (32768 and up), where TIME_WAIT sockets
# of earlier connections cannot collide with the listener.
port() {
	python3 -c '
import random, socket
for _ in range(1000):
    p = random.randint(20000, 32000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); print(p); break
    except OSError:
        pass
    finally:
        s.close()'
}

it_setup() {
	T=$(mktemp -d "/tmp/veil-$1.XXXXXX")
	shift
	VEILD_EXTRA=("$@")
	CP=$(port)
	HP=$(port)
	URL=http://127.0.0.1:$HP
	trap 'stop 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
}

start() {
	# VEIL_IT_CHAT_THREADS=N: the whole suite with N chat loops (default: one per CPU).
	"$BIN/veild" --data "$T/srv" --chat-port "$CP" --http-port "$HP" \
		${VEIL_IT_CHAT_THREADS:+--chat-threads "$VEIL_IT_CHAT_THREADS"} "${VEILD_EXTRA[@]}" \
		>>"$T/veild.log" 2>&1 &
	pid=$!
	for _ in $(seq 100); do
		curl -sf "$URL/.well-known/veil/provisioning" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "veild did not start"; cat "$T/veild.log"; exit 1
}

stop() { [ -n "$pid" ] && kill "$pid" && wait "$pid"; pid=; }

check() { # name, command...
	local name=$1; shift
	if "$@"; then echo "PASS $name"; else echo "FAIL $name"; fails=$((fails + 1)); fi
}

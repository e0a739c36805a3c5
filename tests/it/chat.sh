#!/bin/bash
# veil chat under a pseudo-terminal (python3's pty module): the history is
# shown, a typed line arrives at the peer, the peer's answer and its receipt
# appear on the screen, /quit leaves. No daemon runs: chat runs its own.
set -u
. "$(dirname "$0")/lib.sh"
it_setup chat
start
va() { VEIL_HOME=$T/a "$BIN/veil" "$@"; }
vb() { VEIL_HOME=$T/b "$BIN/veil" "$@"; }
A=$(va init --server "$URL" --nickname Alice)
echo "$A" >"$T/a_id"
B=$(vb init --server "$URL" --nickname Bob)
va send "$B" "earlier from alice" >/dev/null
# A message Alice received but has not read: opening the chat reads it.
vb send "$A" "waiting before chat" >/dev/null
va recv >/dev/null
check chat_help bash -c "$BIN/veil chat --help | grep -q '/file PATH'"

# The script drives chat and, in between, runs Bob's side with the CLI.
VEIL_HOME=$T/a BIN=$BIN B=$B T=$T python3 - >"$T/chat.out" 2>&1 <<'PY'
import os, pty, select, subprocess, sys, time
B, T, BIN = os.environ["B"], os.environ["T"], os.environ["BIN"]
pid, fd = pty.fork()
if pid == 0:
    os.execv(BIN + "/veil", [BIN + "/veil", "chat", B])
screen = b""
def read_until(text, secs):
    global screen
    end = time.monotonic() + secs
    while time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                screen += os.read(fd, 4096)
            except OSError:
                break
        if text.encode() in screen:
            return True
    return False
def bob(*args):
    return subprocess.run([BIN + "/veil", *args], env=dict(os.environ, VEIL_HOME=T + "/b"),
                          capture_output=True, text=True).stdout
def result(name, ok):
    print(("PASS " if ok else "FAIL ") + name, flush=True)
result("chat_shows_history", read_until("me: earlier from alice", 10))
time.sleep(1)
os.write(fd, "hi from chat, grüezi\r".encode())
result("chat_echoes_own_line", read_until("me: hi from chat", 5))
got = ""
for _ in range(20):
    got += bob("recv")
    if "hi from chat, grüezi" in got:
        break
    time.sleep(0.5)
result("typed_line_arrives_at_peer", "hi from chat, grüezi" in got)
result("delivery_receipt_shown", read_until('received your message "hi from chat', 10))
bob("send", os.environ["VEIL_HOME"] and open(T + "/a_id").read().strip(), "answer from bob")
result("peer_message_appears_live", read_until("(Bob): answer from bob", 10))
# Alice's chat marked Bob's message read: Bob's recv shows the read receipt.
time.sleep(1)
result("read_receipt_sent", "(receipt: read" in bob("recv"))
os.write(fd, b"/quit\r")
end, status = time.monotonic() + 10, None
while time.monotonic() < end:
    read_until("\0", 0.2)
    p, st = os.waitpid(pid, os.WNOHANG)
    if p == pid:
        status = st
        break
result("quit_leaves_cleanly", status is not None and os.waitstatus_to_exitcode(status) == 0)
sys.stdout.write("--- screen\n" + screen.decode(errors="replace") + "\n")
PY
grep -E '^(PASS|FAIL) ' "$T/chat.out"
fails=$((fails + $(grep -c '^FAIL ' "$T/chat.out")))
[ "$(grep -c '^PASS ' "$T/chat.out")" = 7 ] || { cat "$T/chat.out"; fails=$((fails + 1)); }
check no_daemon_left_behind [ ! -e "$T/a/daemon.sock" ]
check history_marked_read bash -c "VEIL_HOME=$T/a $BIN/veil log --peer $B | grep 'waiting before chat' | grep -q '\[read\]'"
exit $fails

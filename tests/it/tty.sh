#!/bin/bash
# `make check` in a real terminal must finish: runs tests/run (only
# tty_probe.sh, which uses script(1)) with a pseudo-terminal as its
# controlling terminal and stdin, as a shell in a terminal would, and
# requires it to end, within a minute, with every test passed.
set -u
cd "$(dirname "$0")/../.."
python3 - <<'PY'
import os, pty, select, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.environ["ONLY"] = "tty_probe.sh"
    os.execvp("tests/run", ["tests/run"])
out, deadline = b"", time.monotonic() + 60
while time.monotonic() < deadline:
    r, _, _ = select.select([fd], [], [], 1)
    if r:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    elif os.waitpid(pid, os.WNOHANG)[0] == pid:
        break
else:
    # Stopped tests may sit in other process groups of the session: end them all.
    for p in os.listdir("/proc"):
        try:
            if p.isdigit() and int(open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[3]) == pid:
                os.kill(int(p), 9)
        except (OSError, ValueError, IndexError):
            pass
    os.waitpid(pid, 0)
    sys.stdout.write(out.decode(errors="replace"))
    print("FAIL tests_run_under_a_terminal (still running after 60 s: stopped by SIGTTOU?)")
    sys.exit(1)
text = out.decode(errors="replace")
ok = "1 passed, 0 failed" in text
sys.stdout.write("" if ok else text)
print(("PASS" if ok else "FAIL") + " tests_run_under_a_terminal")
sys.exit(0 if ok else 1)
PY

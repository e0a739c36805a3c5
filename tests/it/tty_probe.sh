#!/bin/bash
# Uses a pseudo-terminal the way files.sh does (script(1) around a command).
# Trivial on its own; tests/it/tty.sh runs it through tests/run under a
# pseudo-terminal, where a test that is not in the terminal's foreground
# process group but still holds the terminal as stdin is stopped by SIGTTOU.
set -u
command -v script >/dev/null || { echo "PASS tty_probe_skipped_no_script"; exit 0; }
out=$(script -qec 'echo probe-ok' /dev/null)
if [[ "$out" == *probe-ok* ]]; then echo "PASS tty_probe"; else echo "FAIL tty_probe"; exit 1; fi

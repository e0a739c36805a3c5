#!/bin/bash
# A smoke run of the web client's benchmarks (bench/web/bench.mjs) with one
# run each: opening a conversation of 10,000 messages (the full size, a few
# seconds) builds only the rows in view, labelled with their position, the
# last one shown and the first one reached from the keyboard; scrolling keeps
# the rows that stay and a focused row's focus, and the history read in after
# its newest chunks keeps the view in place; three messages from the browser
# and three from a CLI device reach the peer's `veil daemon`. The figures are
# printed, never asserted (the full runs: docs/OPERATIONS.md).
set -u
cd "$(dirname "$0")/../.."
. tests/it/lib.sh
BIN=${VEIL_BIN:-$PWD/build}
web_require
rc=0
node bench/web/bench.mjs open --messages 10000 --runs 1 --adds 3 --check || rc=1
node bench/web/bench.mjs send --messages 3 --bin "$BIN" --check || rc=1
exit $rc

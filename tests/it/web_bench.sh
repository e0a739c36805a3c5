#!/bin/bash
# A smoke run of the web client's benchmarks (bench/web/bench.mjs) at tiny
# sizes: opening a conversation of 2,000 messages builds only the rows in
# view, labelled with their position, the last one shown and the first one
# reached from the keyboard; three messages from the browser and three from a
# CLI device reach the peer's `veil daemon`. The figures are printed, never
# asserted (the full sizes: docs/OPERATIONS.md).
set -u
cd "$(dirname "$0")/../.."
BIN=${VEIL_BIN:-$PWD/build}
web_require
rc=0
node bench/web/bench.mjs open --messages 2000 --runs 1 --check || rc=1
node bench/web/bench.mjs send --messages 3 --bin "$BIN" --check || rc=1
exit $rc

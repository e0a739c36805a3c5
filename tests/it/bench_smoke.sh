#!/bin/sh
# The chat benchmark in its short form, for correctness only: every
# workload must finish with no lost or duplicated message (chatbench exits
# non-zero otherwise). Figures are printed but not judged here.
set -eu
BIN=${VEIL_BIN:-$PWD/build}
exec "$BIN/bench/chatbench" --smoke --bin "$BIN"

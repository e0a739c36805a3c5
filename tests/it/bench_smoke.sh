#!/bin/sh
# The chat and reflection benchmarks in their short form, for correctness only: every
# workload must finish with no lost or duplicated message (chatbench exits
# non-zero otherwise). Figures are printed but not judged here.
set -eu
BIN=${VEIL_BIN:-$PWD/build}
"$BIN/bench/chatbench" --smoke --bin "$BIN"
# The reflection benchmark likewise: every reflect reaches both other
# devices of its group exactly once, or md_bench exits non-zero.
exec "$BIN/bench/md_bench" --runs 1 --secs 1 --groups 2 --idle 20 --rate 200 --bin "$BIN"

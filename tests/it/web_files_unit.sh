#!/bin/bash
# The web client's file messages and delivery receipts in node: the file
# message JSON as the C client writes it, round trips, the blob box and its
# fixed nonces, and both parsers on hostile and random input
# (web/test/unit_files.ts).
set -u
cd "$(dirname "$0")/../.."
if [ ! -d web/node_modules/esbuild ]; then
	echo "FAIL web_not_built (node and npm are needed: make builds web/)"
	exit 1
fi
node web/test/run-unit.mjs tests/vectors unit_files.ts

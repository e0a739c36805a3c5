#!/bin/bash
# The web client's protocol code in node: known-answer vectors (rendezvous
# and device group keys), BLAKE2b against libsodium, the protobuf codec,
# join links and join messages on hostile input, the QR encoder against
# libqrencode module by module (web/test/unit.ts, tests/tools/qr_modules.c).
set -u
cd "$(dirname "$0")/../.."
if [ ! -d web/node_modules/esbuild ]; then
	echo "FAIL web_not_built (node and npm are needed: make builds web/)"
	exit 1
fi
node web/test/run-unit.mjs tests/vectors "${VEIL_BIN:-$PWD/build}/tests/tools/qr_modules"

#!/bin/bash
# The browser client's encrypted store in headless Chromium (web/test/store.mjs,
# store_page.ts): a profile written in the layout before chunked conversations
# (web/test/legacy.ts) opens, its conversation moves into chunks and its records
# come to name their row; adding or changing one message writes only its chunk
# and the index; a record copied to another row, an older copy of a chunk and a
# record of the old format in an upgraded store are refused; messages out of
# order split a chunk; the oldest chunks go past 10,000 messages.
set -u
cd "$(dirname "$0")/../.."
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
	echo "FAIL chromium_missing (install Debian's chromium: scripts/install-deps)"
	exit 1
fi
if [ ! -d web/node_modules/puppeteer-core ]; then
	echo "FAIL web_not_built (node and npm are needed: make builds web/)"
	exit 1
fi
node web/test/store.mjs

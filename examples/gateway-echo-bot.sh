#!/bin/bash
# An echo bot on Veil's Gateway with nothing but bash and curl.
#
# It uses basic mode: veild keeps the bot's private key, so veild encrypts
# what the bot sends (send_simple) and decrypts what it receives (the
# receive endpoint, Veil's extension of the published API). The operator of
# veild can therefore read this bot's messages: use basic mode for bots, not
# for people, and end-to-end mode (examples/gateway-echo-bot.py) where that
# matters.
#
#   veilctl gateway create --id '*ECHOSH1'     # prints "*ECHOSH1 API_SECRET" (no --public-key: basic mode)
#   GW_URL=http://127.0.0.1:8080/gateway GW_ID='*ECHOSH1' GW_SECRET=API_SECRET \
#       examples/gateway-echo-bot.sh
#   veil send '*ECHOSH1' hello        # -> veil recv shows "*ECHOSH1: echo: hello"
#
# The loop: GET receive?after=CURSOR&wait=30 answers with the messages that
# wait, one per line in form encoding (from, to, messageId, date, nonce, box,
# mac, cursor, type and, for a text, text), after removing those up to
# CURSOR, the last one the bot has handled. A message is thus removed only
# after the bot answered it; if the bot dies in between, it sees it again.
# With GW_LOG=FILE every text received is appended as "FROM TEXT".
set -u
case "${1:-}" in -h | --help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
: "${GW_URL:?set GW_URL, e.g. http://127.0.0.1:8080/gateway}"
: "${GW_ID:?set GW_ID, the API identity of the bot}"
: "${GW_SECRET:?set GW_SECRET, its API secret}"

# The value of field $1 in the form-encoded line $2, decoded.
field() {
	local v
	v=$(printf '%s\n' "$2" | tr '&' '\n' | sed -n "s/^$1=//p" | head -1)
	v=${v//+/ }
	printf '%b' "${v//%/\\x}"
}

cursor=0
while :; do
	body=$(curl -sS --fail -G --max-time 40 --data-urlencode "from=$GW_ID" \
		--data-urlencode "secret=$GW_SECRET" -d "after=$cursor" -d wait=30 "$GW_URL/receive") || {
		sleep 5
		continue
	}
	while IFS= read -r line; do
		[ -n "$line" ] || continue
		from=$(field from "$line")
		text=$(field text "$line")
		if [ -n "$text" ]; then
			[ -z "${GW_LOG:-}" ] || printf '%s %s\n' "$from" "$text" >>"$GW_LOG"
			curl -sS --fail -o /dev/null --data-urlencode "from=$GW_ID" --data-urlencode "to=$from" \
				--data-urlencode "text=echo: $text" --data-urlencode "secret=$GW_SECRET" \
				"$GW_URL/send_simple" || break # not answered: not acknowledged either
		fi
		cursor=$(field cursor "$line")
	done <<<"$body"
done

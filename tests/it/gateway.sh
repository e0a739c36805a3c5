#!/bin/bash
# The Gateway (srv/gateway): the published Gateway message API under
# /gateway/, driven with curl in the request forms the public client SDKs
# use (threema-msgapi-sdk-python, threema-gateway-rs), with veil as the
# human peer and real HTTP servers (Python's http.server) as callback
# receivers that check the MAC with Python's own hmac.
set -u
. "$(dirname "$0")/lib.sh"
it_setup gateway --gateway-retry-max 2
RP=$(port)  # SMS webhook (phone link codes)
RP2=$(port) # callback receiver of *RECVTST
EP=$(port)  # the echo bot of examples/
VEILD_EXTRA+=(--sms-webhook "http://127.0.0.1:$RP/sms")
EX=$(cd "$(dirname "$0")/../../examples" && pwd)
RCV=$(cd "$(dirname "$0")" && pwd)/gw_receiver.py
GW=$URL/gateway
pids=()
cleanup() { stop 2>/dev/null; for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; }
trap 'cleanup; [ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
va() { VEIL_HOME=$T/a "$BIN/veil" "$@"; }
ctl() { "$BIN/veilctl" gateway --data "$T/srv" "${IT_STORE_ARGS[@]}" "$@"; }
code() { curl -s -o "$T/body" -w '%{http_code}' "$@"; }

# The data directory exists once veild has run.
start
stop
read -r SK PK < <(python3 "$EX/gateway-echo-bot.py" --keygen)
read -r RSK RPK < <(python3 "$EX/gateway-echo-bot.py" --keygen)
read -r EID ESEC < <(ctl create --id '*ECHOBOT' --public-key "$PK" \
	--callback "http://127.0.0.1:$EP/callback")
read -r RID RSEC < <(ctl create --id '*RECVTST' --public-key "$RPK" \
	--callback "http://127.0.0.1:$RP2/cb")
read -r BID BSEC < <(ctl create --credits 3)
read -r SID SSEC < <(ctl create --id '*ECHOSH1')
check create_prints_id_and_secret bash -c "[[ '$EID' == '*ECHOBOT' && ${#ESEC} == 16 && '$BID' == \\** ]]"
check create_taken_id_refused bash -c "! $BIN/veilctl gateway --data $T/srv ${IT_STORE_ARGS[*]} create --id '*ECHOBOT' 2>/dev/null"
check create_bad_id_refused bash -c "! $BIN/veilctl gateway --data $T/srv ${IT_STORE_ARGS[*]} create --id 'NOSTAR12' 2>/dev/null"
check list_shows_modes bash -c "ctl() { $BIN/veilctl gateway --data $T/srv ${IT_STORE_ARGS[*]} \"\$@\"; }; ctl list | grep -q '^\\*ECHOBOT e2e 1000000 http' && ctl list | grep -q '^$BID basic+e2e 3 -'"
check secret_not_stored_in_clear bash -c "! grep -qa '$ESEC' $T/srv/gateway.db"

python3 "$RCV" "$RP" "$T" x 00 "$GW" '*NOTUSE' >"$T/rcv1.log" 2>&1 &
pids+=($!)
start
check ctl_works_while_running bash -c "$BIN/veilctl gateway --data $T/srv ${IT_STORE_ARGS[*]} list | grep -q '^\\*ECHOBOT e2e 1000000 http'"
check provisioning_announces_gateway bash -c "curl -s $URL/.well-known/veil/provisioning | head -1 | grep -q '\"gateway\":{\"url\":\"http://127.0.0.1:$HP/gateway\"}'"
A=$(va init --server "$URL" --nickname Alice)
APK=$(va whoami | cut -d' ' -f2)

# Lookups, as the SDKs ask: GET BASE/pubkeys/ID?from=..&secret=..
check pubkeys_ok bash -c "[ \"\$(curl -s '$GW/pubkeys/$A?from=$BID&secret=$BSEC')\" = '$APK' ]"
check pubkeys_of_gateway_id bash -c "[ \"\$(curl -s '$GW/pubkeys/*ECHOBOT?from=$BID&secret=$BSEC')\" = '$PK' ]"
check pubkeys_bad_secret_401 [ "$(code "$GW/pubkeys/$A?from=$BID&secret=${BSEC}x")" = 401 ]
check pubkeys_no_secret_401 [ "$(code "$GW/pubkeys/$A?from=$BID")" = 401 ]
check pubkeys_unknown_from_401 [ "$(code "$GW/pubkeys/$A?from=*NOSUCH1&secret=$BSEC")" = 401 ]
check pubkeys_unknown_id_404 [ "$(code "$GW/pubkeys/ZZZZZZZZ?from=$BID&secret=$BSEC")" = 404 ]
check capabilities_ok bash -c "[ \"\$(curl -s '$GW/capabilities/$A?from=$BID&secret=$BSEC')\" = 'text,image,video,audio,file' ]"
check capabilities_unknown_404 [ "$(code "$GW/capabilities/ZZZZZZZZ?from=$BID&secret=$BSEC")" = 404 ]
check credits_ok bash -c "[ \"\$(curl -s '$GW/credits?from=$BID&secret=$BSEC')\" = 3 ]"
check unknown_endpoint_404 [ "$(code "$GW/nothing?from=$BID&secret=$BSEC")" = 404 ]
check lookup_phone_unknown_404 [ "$(code "$GW/lookup/phone/41790000000?from=$BID&secret=$BSEC")" = 404 ]
check lookup_hash_bad_400 [ "$(code "$GW/lookup/email_hash/abcd?from=$BID&secret=$BSEC")" = 400 ]
# Alice links her phone (the code comes through the SMS webhook); then she is found.
va link phone '+41 79 555 12 34' >/dev/null
for _ in $(seq 50); do grep -q 'code is' "$T/sms.log" 2>/dev/null && break; sleep 0.1; done
va link verify "$(grep -o 'code is [0-9]*' "$T/sms.log" | head -1 | grep -o '[0-9]*$')" >/dev/null
PH=$(python3 -c 'import hmac,hashlib; print(hmac.new(bytes.fromhex("85adf8226953f3d96cfd5d09bf29555eb955fcd8aa5ec4f9fcd869e258370723"), b"41795551234", hashlib.sha256).hexdigest())')
check lookup_phone_ok bash -c "[ \"\$(curl -s '$GW/lookup/phone/41795551234?from=$BID&secret=$BSEC')\" = '$A' ]"
check lookup_phone_hash_ok bash -c "[ \"\$(curl -s '$GW/lookup/phone_hash/$PH?from=$BID&secret=$BSEC')\" = '$A' ]"
# Bulk lookup, as the PHP SDK sends it: JSON body, from and secret in the query.
Z64=$(printf '0%.0s' $(seq 64))
bulk() { code -H 'content-type: application/json' --data-binary "$1" "$GW/lookup/bulk?from=$BID&secret=${2:-$BSEC}"; }
check lookup_bulk_ok bash -c "[ \"\$(curl -s -H 'content-type: application/json' --data-binary '{\"phoneHashes\":[\"$PH\",\"$Z64\"],\"emailHashes\":[\"$Z64\"]}' '$GW/lookup/bulk?from=$BID&secret=$BSEC' | python3 -c 'import json,sys; r=json.load(sys.stdin); print(len(r), r[0][\"identity\"], r[0][\"publicKey\"], r[0][\"phoneHash\"], \"emailHash\" in r[0])')\" = '1 $A $APK $PH False' ]"
check lookup_bulk_none_404 [ "$(bulk "{\"phoneHashes\":[\"$Z64\"]}")" = 404 ]
check lookup_bulk_bad_json_400 [ "$(bulk '{"phoneHashes":[')" = 400 ]
check lookup_bulk_bad_hash_400 [ "$(bulk '{"emailHashes":["abcd"]}')" = 400 ]
check lookup_bulk_bad_secret_401 [ "$(bulk "{\"phoneHashes\":[\"$PH\"]}" nope)" = 401 ]
MANY=$(python3 -c 'import json; print(json.dumps({"phoneHashes": ["%064x" % i for i in range(1001)]}))')
check lookup_bulk_too_many_413 [ "$(bulk "$MANY")" = 413 ]

# Basic mode, the Rust SDK's form: from, text, secret, to|phone, Accept: application/json.
check send_simple_ok bash -c "curl -s -H 'accept: application/json' --data-urlencode 'from=$BID' --data-urlencode 'text=grüezi from basic mode' --data-urlencode 'secret=$BSEC' --data-urlencode 'to=$A' $GW/send_simple | grep -qx '[0-9a-f]\{16\}'"
check send_simple_by_phone bash -c "curl -s -d 'from=$BID&text=by+phone&secret=$BSEC&phone=41795551234' $GW/send_simple | grep -qx '[0-9a-f]\{16\}'"
check send_simple_arrives bash -c "VEIL_HOME=$T/a $BIN/veil recv --wait 5 >$T/recv1; grep -q '$BID: grüezi from basic mode' $T/recv1 && grep -q '$BID: by phone' $T/recv1"
LONG=$(head -c 3501 /dev/zero | tr '\0' 'x')
check send_simple_too_long_413 [ "$(code -d "from=$BID&secret=$BSEC&to=$A&text=$LONG" "$GW/send_simple")" = 413 ]
check send_simple_unknown_to_400 [ "$(code -d "from=$BID&secret=$BSEC&to=ZZZZZZZZ&text=x" "$GW/send_simple")" = 400 ]
check send_simple_no_text_400 [ "$(code -d "from=$BID&secret=$BSEC&to=$A" "$GW/send_simple")" = 400 ]
check send_simple_phone_unknown_404 [ "$(code -d "from=$BID&secret=$BSEC&phone=41790000000&text=x" "$GW/send_simple")" = 404 ]
check send_simple_e2e_only_400 [ "$(code -d "from=$EID&secret=$ESEC&to=$A&text=x" "$GW/send_simple")" = 400 ]
check send_simple_bad_secret_401 [ "$(code -d "from=$BID&secret=nope&to=$A&text=x" "$GW/send_simple")" = 401 ]
check send_simple_last_credit [ "$(code -d "from=$BID&secret=$BSEC&to=$A&text=third" "$GW/send_simple")" = 200 ]
check send_simple_no_credits_402 [ "$(code -d "from=$BID&secret=$BSEC&to=$A&text=fourth" "$GW/send_simple")" = 402 ]
check credits_counted_down bash -c "[ \"\$(curl -s '$GW/credits?from=$BID&secret=$BSEC')\" = 0 ]"

# End-to-end mode: the bot encrypts (with its own key, libsodium via ctypes)
# and sends the Python SDK's form: to, nonce, box, from, secret.
seal() { # text -> "NONCEHEX BOXHEX" from the echo bot's key to Alice
	python3 - "$EX/gateway-echo-bot.py" "$SK" "$APK" "$1" <<'PY'
import importlib.util, secrets, sys
s = importlib.util.spec_from_file_location("b", sys.argv[1]); b = importlib.util.module_from_spec(s)
s.loader.exec_module(b)
n = secrets.token_bytes(24)
c = b.box(b.pad(1, sys.argv[4].encode()), n, bytes.fromhex(sys.argv[3]), bytes.fromhex(sys.argv[2]))
print(n.hex(), c.hex())
PY
}
read -r N1 B1 < <(seal "sealed by the bot")
check send_e2e_ok bash -c "curl -s --data-urlencode 'to=$A' --data-urlencode 'nonce=$N1' --data-urlencode 'box=$B1' --data-urlencode 'from=$EID' --data-urlencode 'secret=$ESEC' $GW/send_e2e >$T/mid && grep -qx '[0-9a-f]\{16\}' $T/mid"
read -r N2 B2 < <(seal "no receipts please")
check send_e2e_no_receipts_ok [ "$(code -d "from=$EID&to=$A&secret=$ESEC&nonce=$N2&box=$B2&noDeliveryReceipts=1" "$GW/send_e2e")" = 200 ]
check send_e2e_arrives bash -c "VEIL_HOME=$T/a $BIN/veil recv --wait 5 >$T/recv2; grep -q '\\*ECHOBOT: sealed by the bot' $T/recv2 && grep -q '\\*ECHOBOT: no receipts please' $T/recv2"
check send_e2e_bad_nonce_400 [ "$(code -d "from=$EID&to=$A&secret=$ESEC&nonce=abcd&box=$B1" "$GW/send_e2e")" = 400 ]
check send_e2e_bad_box_400 [ "$(code -d "from=$EID&to=$A&secret=$ESEC&nonce=$N1&box=zz" "$GW/send_e2e")" = 400 ]
BIG=$(head -c 4001 /dev/zero | od -An -tx1 -v | tr -d ' \n')
check send_e2e_too_big_413 [ "$(code -d "from=$EID&to=$A&secret=$ESEC&nonce=$N1&box=$BIG" "$GW/send_e2e")" = 413 ]
check send_e2e_to_self_400 [ "$(code -d "from=$EID&to=$EID&secret=$ESEC&nonce=$N1&box=$B1" "$GW/send_e2e")" = 400 ]
check send_e2e_unknown_to_400 [ "$(code -d "from=$EID&to=ZZZZZZZZ&secret=$ESEC&nonce=$N1&box=$B1" "$GW/send_e2e")" = 400 ]
check send_e2e_bad_secret_401 [ "$(code -d "from=$EID&to=$A&secret=x&nonce=$N1&box=$B1" "$GW/send_e2e")" = 401 ]
check get_send_e2e_404 [ "$(code "$GW/send_e2e?from=$EID&secret=$ESEC")" = 404 ]

# A recipient online while the Gateway stores for it gets the message at once
# (the chat service is told), not at its next login.
SOCK=$T/a/daemon.sock
VEIL_HOME=$T/a "$BIN/veil" daemon 2>"$T/daemon.log" &
dpid=$!
pids+=($dpid)
for _ in $(seq 100); do [ -S "$SOCK" ] && grep -q connected "$T/daemon.log" && break; sleep 0.1; done
python3 "$(dirname "$0")/rpc.py" "$SOCK" --wait-text "while you were online" 15 >"$T/live" 2>"$T/live.err" &
spid=$!
for _ in $(seq 50); do grep -q subscribed "$T/live.err" && break; sleep 0.1; done
read -r N3 B3 < <(seal "while you were online")
curl -s -d "from=$EID&to=$A&secret=$ESEC&nonce=$N3&box=$B3" "$GW/send_e2e" >/dev/null
wait $spid
check send_e2e_delivered_live grep -q "while you were online" "$T/live"
kill "$dpid" && wait "$dpid" 2>/dev/null

# Blobs, as the SDKs upload them: from and secret in the query, multipart field "blob".
head -c 70000 /dev/urandom >"$T/blob.bin"
check upload_blob_ok bash -c "curl -s -F 'blob=@$T/blob.bin;type=application/octet-stream' '$GW/upload_blob?from=$EID&secret=$ESEC' >$T/blobid && grep -qx '[0-9a-f]\{32\}' $T/blobid"
BLOBID=$(cat "$T/blobid" 2>/dev/null)
check blobs_download_ok bash -c "curl -s -o $T/blob.got '$GW/blobs/$BLOBID?from=$EID&secret=$ESEC' && cmp -s $T/blob.bin $T/blob.got"
check blobs_bad_secret_401 [ "$(code "$GW/blobs/$BLOBID?from=$EID&secret=x")" = 401 ]
check blobs_unknown_404 [ "$(code "$GW/blobs/00000000000000000000000000000000?from=$EID&secret=$ESEC")" = 404 ]
check upload_blob_bad_secret_401 [ "$(code -F "blob=@$T/blob.bin" "$GW/upload_blob?from=$EID&secret=x")" = 401 ]
check upload_blob_no_field_400 [ "$(code -F "other=x" "$GW/upload_blob?from=$EID&secret=$ESEC")" = 400 ]

# The echo bot of examples/: veil send -> callback -> send_e2e -> veil recv.
GW_URL=$GW GW_ID=$EID GW_SECRET=$ESEC GW_KEY=$SK python3 "$EX/gateway-echo-bot.py" \
	--port "$EP" --log "$T/bot.log" >"$T/bot.out" 2>&1 &
pids+=($!)
va send '*ECHOBOT' 'hello bot' >/dev/null
got=
for _ in $(seq 40); do got+=$(va recv --wait 1); [[ $got == *"echo: hello bot"* ]] && break; done
check echo_bot_round_trip bash -c "[[ '$got' == *'*ECHOBOT: echo: hello bot'* ]]"
check echo_bot_saw_sender grep -qx "$A hello bot" "$T/bot.log"

# Receiving without a callback (our extension): GET receive, acknowledged by after=CURSOR.
recv_gw() { curl -s -G --data-urlencode "from=$SID" --data-urlencode "secret=$SSEC" "$@" "$GW/receive"; }
fld() { python3 -c 'import sys, urllib.parse as u; print(u.parse_qs(sys.argv[2].splitlines()[0])[sys.argv[1]][0])' "$1" "$2"; }
check receive_empty bash -c "[ \"\$(curl -s -w '%{http_code}' '$GW/receive?from=$SID&secret=$SSEC')\" = 200 ]"
check receive_callback_identity_409 [ "$(code "$GW/receive?from=$EID&secret=$ESEC")" = 409 ]
check receive_bad_after_400 [ "$(code "$GW/receive?from=$SID&secret=$SSEC&after=x1")" = 400 ]
check receive_wait_too_long_400 [ "$(code "$GW/receive?from=$SID&secret=$SSEC&wait=61")" = 400 ]
check receive_bad_secret_401 [ "$(code "$GW/receive?from=$SID&secret=nope")" = 401 ]
va send '*ECHOSH1' 'first & only = 100% ü' >/dev/null
for _ in $(seq 50); do L1=$(recv_gw); [ -n "$L1" ] && break; sleep 0.1; done
check receive_line_fields bash -c "[ \"\$(python3 -c 'import sys, urllib.parse as u; r = {k: v[0] for k, v in u.parse_qs(sys.argv[1].strip()).items()}; print(r[\"from\"], r[\"to\"], r[\"type\"], r[\"text\"], len(r[\"messageId\"]), r[\"nickname\"])' '$L1')\" = '$A *ECHOSH1 1 first & only = 100% ü 16 Alice' ]"
check receive_line_mac bash -c "python3 - '$L1' '$SSEC' <<'PY'
import hmac, hashlib, sys, urllib.parse as u
r = {k: v[0] for k, v in u.parse_qs(sys.argv[1].strip()).items()}
m = ''.join(r[k] for k in ('from', 'to', 'messageId', 'date', 'nonce', 'box'))
assert hmac.compare_digest(hmac.new(sys.argv[2].encode(), m.encode(), hashlib.sha256).hexdigest(), r['mac'])
PY"
C1=$(fld cursor "$L1")
check receive_kept_until_acknowledged bash -c "[ \"\$(curl -s '$GW/receive?from=$SID&secret=$SSEC')\" = '$L1' ]"
check receive_after_removes [ -z "$(recv_gw -d "after=$C1")" ]
check receive_after_removed_for_good [ -z "$(recv_gw)" ]
recv_gw -d wait=20 >"$T/longpoll" &
lp=$!
sleep 1
va send '*ECHOSH1' 'while you waited' >/dev/null
wait $lp
check receive_long_poll_answers_on_arrival bash -c "[ \"\$(python3 -c 'import sys, urllib.parse as u; print(u.parse_qs(open(sys.argv[1]).read().strip())[\"text\"][0])' $T/longpoll)\" = 'while you waited' ]"
recv_gw -d "after=$(fld cursor "$(cat "$T/longpoll")")" >/dev/null

# The bash-and-curl echo bot of examples/ (basic mode, over receive).
GW_URL=$GW GW_ID=$SID GW_SECRET=$SSEC GW_LOG=$T/shbot.log "$EX/gateway-echo-bot.sh" >"$T/shbot.out" 2>&1 &
pids+=($!)
va send '*ECHOSH1' 'hi there & 50% more' >/dev/null
got=
for _ in $(seq 40); do got+=$(va recv --wait 1); [[ $got == *"echo: hi there"* ]] && break; done
check shell_echo_bot_round_trip bash -c "[[ '$got' == *'*ECHOSH1: echo: hi there & 50% more'* ]]"
check shell_echo_bot_saw_sender grep -qx "$A hi there & 50% more" "$T/shbot.log"

# Callbacks while the receiver is away: refused connections, then 503s,
# then a veild restart; once it answers, each message arrives once, in order.
for i in 1 2 3; do va send '*RECVTST' "in order $i" >/dev/null; done
sleep 2
touch "$T/down"
python3 "$RCV" "$RP2" "$T" "$RSEC" "$RSK" "$GW" "$RID" >"$T/rcv2.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s "$T/tries" ] && break; sleep 0.1; done
check callback_retried_on_503 test -s "$T/tries"
stop
check list_shows_callback_failures bash -c "$BIN/veilctl gateway --data $T/srv ${IT_STORE_ARGS[*]} list | grep '^\\*RECVTST' | grep -q 'callback failures in a row, last .*: answered 503'"
start
va send '*RECVTST' "in order 4" >/dev/null
rm -f "$T/down"
for _ in $(seq 150); do [ "$(cat "$T/got.jsonl" 2>/dev/null | wc -l)" = 4 ] && break; sleep 0.1; done
sleep 2 # time for a duplicate, if there were one
check callbacks_in_order_once bash -c "[ \"\$(python3 -c 'import json,sys; print(\"|\".join(json.loads(l)[\"text\"] for l in open(sys.argv[1])))' $T/got.jsonl)\" = 'in order 1|in order 2|in order 3|in order 4' ]"
check callback_fields bash -c "python3 - $T/got.jsonl '$A' <<'PY'
import json, sys, time
for l in open(sys.argv[1]):
    r = json.loads(l)
    assert r['from'] == sys.argv[2] and r['to'] == '*RECVTST', r
    assert len(r['messageId']) == 16 and abs(int(r['date']) - time.time()) < 600, r
    assert r['nickname'] == 'Alice', r
PY"
check callback_mac_verified bash -c "[ ! -e $T/badmac ]"

# Per-identity request limit; a node with --gateway-callbacks 0 leaves the queue alone.
stop
SAVED=("${VEILD_EXTRA[@]}")
VEILD_EXTRA+=(--gateway-rate 3 --gateway-callbacks 0)
start
for i in 1 2 3 4 5; do code "$GW/credits?from=$EID&secret=$ESEC" >"$T/rl$i"; done
check rate_limit_429 grep -q 429 "$T/rl5"
check rate_limit_per_identity [ "$(code "$GW/credits?from=$BID&secret=$BSEC")" = 200 ]
va send '*RECVTST' "held back" >/dev/null
sleep 2
check no_callbacks_when_off [ "$(wc -l <"$T/got.jsonl")" = 4 ]
stop
VEILD_EXTRA=("${SAVED[@]}")
start
for _ in $(seq 100); do [ "$(wc -l <"$T/got.jsonl")" = 5 ] && break; sleep 0.1; done
check callbacks_resume_when_on bash -c "tail -1 $T/got.jsonl | grep -q '\"held back\"'"

# The benchmark in its short form, for correctness only (every answer as expected).
check gw_bench_smoke "$BIN/bench/gw_bench" --bin "$BIN" --runs 1 --secs 0.3 --conns 4
exit $((fails > 0))

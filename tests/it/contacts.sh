#!/bin/bash
# Contact discovery with the veil CLI against a real veild on loopback:
# link codes by e-mail (a real SMTP sink: Debian's python3-aiosmtpd) and by
# SMS (a local webhook), wrong codes, matching a vCard both ways (private
# OPRF and the specification's hashes), verification levels up to green by
# QR text, a changed key refused, rate limits, revocation.
set -u
. "$(dirname "$0")/lib.sh"
T=$(mktemp -d /tmp/veil-contacts.XXXXXX)
CP=$(port); HP=$(port); SP=$(port); WP=$(port)
it_pg_args # --store under VEIL_IT_PG
URL=http://127.0.0.1:$HP
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done; rm -rf "$T"; }
trap cleanup EXIT

if ! /usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null; then
	echo "FAIL smtp_sink_available (install python3-aiosmtpd: scripts/install-deps)"; exit 1
fi
PYTHONUNBUFFERED=1 /usr/bin/python3 -m aiosmtpd -n -l "127.0.0.1:$SP" -c aiosmtpd.handlers.Debugging \
	>"$T/smtp.log" 2>&1 &
pids+=($!)
cat >"$T/hook.py" <<'PY'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(sys.argv[2], "ab") as f: f.write(body + b"\n")
        self.send_response(200); self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
/usr/bin/python3 "$T/hook.py" "$WP" "$T/sms.log" &
pids+=($!)
"$BIN/veild" --data "$T/srv" --chat-port "$CP" --http-port "$HP" "${IT_STORE_ARGS[@]}" \
	--smtp-url "smtp://127.0.0.1:$SP" --smtp-from "veil@localhost" \
	--sms-webhook "http://127.0.0.1:$WP/sms" --link-rate 3 >>"$T/veild.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf "$URL/.well-known/veil/provisioning" >/dev/null 2>&1 && break; sleep 0.1; done

va() { VEIL_HOME=$T/a "$BIN/veil" "$@"; }
vb() { VEIL_HOME=$T/b "$BIN/veil" "$@"; }
vc() { VEIL_HOME=$T/c "$BIN/veil" "$@"; }
A=$(va init --server "$URL" --nickname Alice)
B=$(vb init --server "$URL" --nickname Bob)
C=$(vc init --server "$URL" --nickname Carol)
# Waits for the n-th code in a log and prints it.
code_in() { # file, n
	for _ in $(seq 100); do
		c=$(grep -o 'code is [0-9]\{6\}' "$1" 2>/dev/null | sed -n "${2}p" | grep -o '[0-9]\{6\}')
		[ -n "$c" ] && { echo "$c"; return 0; }
		sleep 0.1
	done
	return 1
}

# Alice links her phone; the SMS gateway gets the code.
check link_phone_sends_code bash -c "VEIL_HOME=$T/a $BIN/veil link phone '+41 79 123 45 67' | grep -q 'code sent'"
CODE=$(code_in "$T/sms.log" 1)
check sms_to_number grep -q '"to":"+41791234567"' "$T/sms.log"
WRONG=$(printf '%06d' $(( (10#$CODE + 1) % 1000000 )))
check wrong_code_refused bash -c "! VEIL_HOME=$T/a $BIN/veil link verify $WRONG 2>$T/err && grep -q 'wrong code' $T/err"
check right_code_links bash -c "VEIL_HOME=$T/a $BIN/veil link verify $CODE | grep -q 'phone number linked'"

# Bob links his e-mail; the SMTP sink receives the code.
check link_email_sends_code bash -c "VEIL_HOME=$T/b $BIN/veil link email Bob@Example.org | grep -q 'code sent'"
ECODE=$(code_in "$T/smtp.log" 1)
check smtp_sink_got_mail grep -qi 'bob@example.org' "$T/smtp.log"
check email_code_links bash -c "VEIL_HOME=$T/b $BIN/veil link verify $ECODE | grep -q 'e-mail address linked'"

# Carol matches her address book: private (default) and hashed.
cat >"$T/book.vcf" <<VCF
BEGIN:VCARD
VERSION:3.0
FN:Alice Example
TEL;TYPE=CELL:+41 79 123 45 67
END:VCARD
BEGIN:VCARD
VERSION:3.0
FN:Bob Example
EMAIL:bob@example.org
END:VCARD
BEGIN:VCARD
VERSION:3.0
FN:Nobody
TEL:+1 415 555 0000
END:VCARD
VCF
vc contact match "$T/book.vcf" >"$T/m1" 2>"$T/m1.err"
check match_private_vcard bash -c "grep -q '^$A orange Alice Example' $T/m1 && grep -q '^$B orange Bob Example' $T/m1 && [ \$(wc -l <$T/m1) = 2 ]"
printf 'name,phone,email\nAl,+41791234567,\n' >"$T/book.csv"
check match_hashed_csv bash -c "VEIL_HOME=$T/c $BIN/veil contact match --hashed $T/book.csv | grep -q '^$A orange Al'"
check match_single_phone bash -c "VEIL_HOME=$T/c $BIN/veil contact match --phone 0791234567 --country 41 | grep -q '^$A '"
# A spreadsheet's CSV export: semicolons, quotes, a byte order mark, CRLF.
printf '\xef\xbb\xbfName;Phone;E-Mail\r\n"Example; Alice";+41 79 123 45 67;\r\nBob;;bob@example.org\r\n' >"$T/excel.csv"
vc contact match "$T/excel.csv" >"$T/m3" 2>"$T/m3.err"
check match_semicolon_csv bash -c "grep -q '^$A orange Example; Alice' $T/m3 && grep -q '^$B orange Bob' $T/m3 || { cat $T/m3 $T/m3.err; false; }"
printf 'name\tphone\nAl Tab\t+41791234567\n' >"$T/tab.csv"
check match_tab_csv bash -c "VEIL_HOME=$T/c $BIN/veil contact match $T/tab.csv | grep -q '^$A orange Al Tab'"
# A file that cannot be read is explained in one line.
unreadable() { # file, pattern
	VEIL_HOME=$T/c "$BIN/veil" contact match "$1" >/dev/null 2>"$T/err"
	local rc=$?
	[ $rc = 1 ] && [ "$(wc -l <"$T/err")" = 1 ] && grep -q -- "$2" "$T/err" ||
		{ echo "  rc=$rc stderr: $(cat "$T/err")"; return 1; }
}
printf 'name,phone\nAl,+41791234567\n' | iconv -f UTF-8 -t UTF-16 >"$T/u16.csv"
check match_utf16_explained unreadable "$T/u16.csv" "UTF-16 text: save it as UTF-8"
printf 'PK\003\004rest of a zip' >"$T/book.xlsx"
check match_xlsx_explained unreadable "$T/book.xlsx" "ZIP file.*export it as CSV"
printf 'just some words\nand more\n' >"$T/notes.txt"
check match_nothing_explained unreadable "$T/notes.txt" "holds no phone number or e-mail address"
check match_missing_explained unreadable "$T/nope.csv" "cannot open $T/nope.csv: No such file"

# A local name, shown by recv and log.
vc contact name "$A" "Alice at work"
check contact_name_get bash -c "[ \"\$(VEIL_HOME=$T/c $BIN/veil contact name $A)\" = 'Alice at work' ]"
va send "$C" "lunch?" >/dev/null
vc recv >"$T/cr" 2>&1
check recv_shows_local_name grep -q "\] $A (Alice at work): lunch?" "$T/cr"
check log_shows_local_name bash -c "VEIL_HOME=$T/c $BIN/veil log --peer $A | grep -q '<- $A (Alice at work): lunch?'"
check log_json_local_name bash -c "VEIL_HOME=$T/c $BIN/veil log --json --grep lunch | grep -q '\"contact_name\":\"Alice at work\"'"
check contact_name_unknown bash -c "! VEIL_HOME=$T/c $BIN/veil contact name ZZZZ9999 X 2>$T/err && grep -q 'not a contact' $T/err"
check show_orange bash -c "VEIL_HOME=$T/c $BIN/veil contact show $A | grep -q 'level: *orange (phone)'"

# Green by scanning Alice's QR text; a code with another key is refused loudly.
QR=$(va qr --text)
check qr_text bash -c "[[ '$QR' =~ ^3mid:$A,[0-9a-f]{64}$ ]]"
check qr_terminal bash -c "VEIL_HOME=$T/a $BIN/veil qr | grep -q '▀\|▄'"
BAD="3mid:$A,$(python3 -c 'import os; print(os.urandom(32).hex())')"
check verify_wrong_key_refused bash -c "! VEIL_HOME=$T/c $BIN/veil contact verify $A --scan $BAD 2>$T/err && grep -q 'KEY MISMATCH' $T/err"
check verify_green bash -c "VEIL_HOME=$T/c $BIN/veil contact verify $A --scan '$QR' | grep -q green"
check show_green bash -c "VEIL_HOME=$T/c $BIN/veil contact show $A | grep -q 'level: *green (qr)'"
# Matching again never lowers the level.
vc contact match "$T/book.vcf" >"$T/m2" 2>/dev/null
check match_keeps_green grep -q "^$A green" "$T/m2"

# Rate limit on link codes (--link-rate 3): the fourth in a minute is refused with 429.
for i in 1 2 3; do vc link phone "+4179000000$i" >/dev/null 2>&1; done
check link_rate_limited bash -c "! VEIL_HOME=$T/c $BIN/veil link phone +41790000009 2>$T/err && grep -q '429' $T/err"

vc contact add "$B" >/dev/null 2>&1
# Revocation: confirmation required; afterwards the ID is reported revoked and cannot log in.
check revoke_needs_confirmation bash -c "echo NOTMYID | VEIL_HOME=$T/b $BIN/veil revoke 2>$T/err; grep -q 'not confirmed' $T/err"
check revoke bash -c "echo $B | VEIL_HOME=$T/b $BIN/veil revoke 2>/dev/null | grep -q revoked"
check revoked_state bash -c "curl -sf $URL/directory/identity/$B | grep -q '\"state\":2'"
check revoked_cannot_login bash -c "! VEIL_HOME=$T/b $BIN/veil recv 2>$T/err"
# The revoked client says its own ID was revoked, not a generic refusal.
check revoked_says_so grep -q "your ID $B has been revoked" "$T/err"
check revoked_one_line [ "$(wc -l <"$T/err")" = 1 ]
vc contact show "$B" >"$T/show" 2>&1
check show_revoked_contact grep -q "^state: *REVOKED" "$T/show"
vc contact show "$A" >"$T/show" 2>&1
check show_active_contact grep -q "^state: *active" "$T/show"

# Revocation with the revocation password, without the profile.
D=$(VEIL_HOME=$T/d "$BIN/veil" init --server "$URL")
VEIL_HOME=$T/d "$BIN/veil" revoke --set-password 'lost phone' >/dev/null
echo 'wrong one' | VEIL_HOME=$T/nobody "$BIN/veil" revoke "$D" --password - --server "$URL" --yes \
	>/dev/null 2>"$T/err"
check revoke_password_wrong bash -c "grep -q 'not revoked: .*wrong revocation key' $T/err && curl -sf $URL/directory/identity/$D | grep -q '\"state\":0'"
echo 'lost phone' | VEIL_HOME=$T/nobody "$BIN/veil" revoke "$D" --password - --server "$URL" --yes \
	>"$T/out" 2>"$T/err"
check revoke_password grep -q "^$D revoked$" "$T/out"
check revoke_password_state bash -c "curl -sf $URL/directory/identity/$D | grep -q '\"state\":2'"
check revoke_password_needs_server bash -c "! VEIL_HOME=$T/nobody $BIN/veil revoke $D --password x --yes 2>$T/err && grep -q -- '--server URL' $T/err"
check revoked_not_matched bash -c "! VEIL_HOME=$T/c $BIN/veil contact match --email bob@example.org | grep -q $B"

# The server's files never hold the linked addresses.
check no_address_on_server bash -c "! grep -r -q -a -i 'bob@example.org\|41791234567' '$T/srv'"
exit $fails

#!/bin/bash
# The browser client links to an identity that has a CLI device: the CLI
# offers the link (`veil device link`), headless Chromium takes it on
# veild's /app/ page, both show the same confirmation code, the browser
# registers with the mediator and the CLI lists it as a second device. A group
# that A made before the link comes with it: the browser lists it and writes
# in it, and the member B gets that message. The page draws the pasted link's
# QR code (its modules are checked in web_unit.sh) and this identity's, whose
# text is what `veil qr --text` prints.
set -u
. "$(dirname "$0")/lib.sh"
web_require
it_setup web_link
start
va() { VEIL_HOME=$T/a "$BIN/veil" "$@"; }
A=$(va init --server "$URL" --nickname Alice 2>>"$T/err") || { echo "FAIL init"; exit 1; }
B=$(VEIL_HOME=$T/b "$BIN/veil" init --server "$URL" --nickname Bob 2>>"$T/err") || { echo "FAIL init"; exit 1; }
G=$(va group create Climbers "$B" 2>>"$T/err")
check group_made_before_link bash -c "[ -n '$G' ]"
va device link --yes --timeout 90 >"$T/link.out" 2>"$T/link.err" &
lpid=$!
for _ in $(seq 100); do grep -q '^threema://device-group/join#' "$T/link.out" && break; sleep 0.1; done
LINK=$(head -1 "$T/link.out")
check link_printed bash -c "echo '$LINK' | grep -q '^threema://device-group/join#'"
GROUP="g:$A:$G" node web/test/link.mjs "$T/chrome" "$URL" "$LINK" "correct horse" "my browser" >"$T/browser.out" 2>"$T/browser.err"
check browser_linked grep -q '^status linked$' "$T/browser.out"
check cli_link_finished wait "$lpid"
check cli_said_linked grep -q linked "$T/link.out"
CODE=$(sed -n 's/^code //p' "$T/browser.out")
check same_code_both_sides bash -c "[ -n '$CODE' ] && grep -q -- '$CODE' $T/link.err"
check browser_has_identity grep -q "^id $A\$" "$T/browser.out"
check no_page_problems grep -q '^problems 0$' "$T/browser.out"
check browser_lists_old_group grep -q '^group Climbers (group)' "$T/browser.out"
check browser_sent_to_old_group grep -q '^group_send sent$' "$T/browser.out"
check member_gets_browser_group_text bash -c "VEIL_HOME=$T/b $BIN/veil recv | grep -q 'hello group from the browser'"
check link_qr_shows_link grep -qxF "link_qr_text $LINK" "$T/browser.out"
check link_qr_labelled grep -q '^link_qr_label QR code of the join link img [0-9][0-9]' "$T/browser.out"
check link_qr_hidden_after_link grep -q '^link_qr_hidden true$' "$T/browser.out"
check own_qr_as_cli bash -c "grep -qxF \"my_qr_text \$(VEIL_HOME=$T/a $BIN/veil qr --text)\" $T/browser.out"
check two_devices bash -c "VEIL_HOME=$T/a $BIN/veil device list | grep -q 'my browser'"
check web_platform bash -c "VEIL_HOME=$T/a $BIN/veil device list --json | grep -q 'Veil web'"
[ "$fails" = 0 ] || { cat "$T/browser.out" "$T/browser.err"; tail -5 "$T/link.err"; }
[ "$fails" = 0 ]

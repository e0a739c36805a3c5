#!/bin/bash
# veild's start: every way it can fail prints one clear line and exits 1
# (never a crash), the data directory has one owner at a time, files are
# private whatever the umask, and a damaged store is found and reported.
set -u
. "$(dirname "$0")/lib.sh"
it_sqlite_only "damages veil.db on purpose and checks what veild says"
it_setup startup

# Runs veild with args; it must exit 1 at once with one stderr line matching pat.
fails_with() { # name, pattern, veild args...
	local name=$1 pat=$2; shift 2
	timeout 20 "$BIN/veild" "$@" >"$T/$name.out" 2>"$T/$name.err"
	local rc=$?
	local lines
	lines=$(grep -vc ' warn: ' "$T/$name.err")
	if [ $rc = 1 ] && [ "$lines" = 1 ] && grep -qi -- "$pat" "$T/$name.err"; then
		echo "PASS $name"
	else
		echo "FAIL $name (rc=$rc, stderr: $(cat "$T/$name.err"))"
		fails=$((fails + 1))
	fi
}

# A fresh data directory under a permissive umask: everything veild and a
# client's use of it create is private.
umask 000
start
umask 022
VEIL_HOME=$T/a "$BIN/veil" init --server "$URL" >/dev/null
B=$(VEIL_HOME=$T/b "$BIN/veil" init --server "$URL")
head -c 2000 /dev/urandom >"$T/f.bin"
VEIL_HOME=$T/a "$BIN/veil" send "$B" --file "$T/f.bin" >/dev/null
check files_private bash -c "[ -z \"\$(find '$T/srv' -type f ! -perm 0600)\" ] &&
	[ -z \"\$(find '$T/srv' -type d ! -perm 0700)\" ] && [ -n \"\$(find '$T/srv' -name 'veil.db*')\" ]"

# The same data directory, a second veild: refused while the first runs.
fails_with second_on_same_data 'in use by another veild' --data "$T/srv" \
	--chat-port "$(port)" --http-port "$(port)"
# Busy ports, an address the machine does not have.
fails_with busy_chat_port 'address already in use' --data "$T/d1" --chat-port "$CP" \
	--http-port "$(port)"
fails_with busy_http_port 'HTTP' --data "$T/d2" --chat-port "$(port)" --http-port "$HP"
fails_with address_not_here 'no network interface' --data "$T/d3" --listen 192.0.2.1 \
	--chat-port "$(port)" --http-port "$(port)"
stop

# Store problems, each on a copy of the data directory.
copy() { rm -rf "$T/$1" && cp -a "$T/srv" "$T/$1" && rm -f "$T/$1/veild.lock"; }
copy dir_db && rm -f "$T/dir_db"/veil.db* && mkdir "$T/dir_db/veil.db"
fails_with store_is_a_directory 'is a directory' --data "$T/dir_db" --chat-port "$(port)" \
	--http-port "$(port)"
copy trunc && truncate -s 5000 "$T/trunc/veil.db" && rm -f "$T/trunc"/veil.db-*
fails_with store_truncated 'damaged' --data "$T/trunc" --chat-port "$(port)" --http-port "$(port)"
# Random pages over the middle of the file (the first page, the header, stays).
copy pages
pages=$(( $(stat -c %s "$T/pages/veil.db") / 4096 ))
for p in $(seq 2 2 $((pages - 1))); do
	head -c 4096 /dev/urandom | dd of="$T/pages/veil.db" bs=4096 seek="$p" conv=notrunc status=none
done
fails_with store_random_pages 'damaged' --data "$T/pages" --chat-port "$(port)" --http-port "$(port)"

# With the check off, a damaged identities table is a store error at login:
# logged as one, and a temporary server error to the client, never "unknown".
copy idx
for name in identities sqlite_autoindex_identities_1 sqlite_autoindex_identities_2; do
	root=$(sqlite3 "$T/idx/veil.db" "SELECT rootpage FROM sqlite_master WHERE name='$name'")
	[ -n "$root" ] && head -c 4096 /dev/urandom |
		dd of="$T/idx/veil.db" bs=4096 seek=$((root - 1)) conv=notrunc status=none
done
rm -f "$T/idx"/veil.db-*
"$BIN/veild" --data "$T/idx" --chat-port "$CP" --http-port "$HP" --store-check-ms 0 \
	>"$T/idx.log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -sf "$URL/.well-known/veil/provisioning" >/dev/null && break; sleep 0.1; done
# The client retries with backoff for half a minute; a few seconds show enough.
VEIL_HOME=$T/a timeout 5 "$BIN/veil" recv >"$T/idx.out" 2>"$T/idx.err"
rc=$?
check store_error_at_login_is_temporary bash -c "[ $rc != 0 ] && grep -qi 'temporary server error' '$T/idx.err' &&
	! grep -qi 'unknown identity' '$T/idx.err'"
check store_error_at_login_is_logged grep -q 'error: chat: store error while looking up an identity' "$T/idx.log"
stop

# A data directory open to others gets a warning, and the server still starts.
chmod 755 "$T/srv"
start
check warns_open_data_dir grep -q 'open to other users' "$T/veild.log"
stop

echo "startup: $fails failed"
exit $((fails > 0))

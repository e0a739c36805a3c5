/*
 * veil: the command-line client. A table of subcommands in the manner of
 * WireGuard's wg(8); each subcommand lives in its own file.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"

const char *cli_prog = "veil";

static const struct cli_cmd commands[] = {
    {"init", cmd_init, "create a new identity on a server",
     "init --server URL [--server-key HEX] [--nickname NAME] [--cacert FILE]\n"
     "          [--invite CODE] [--kdf LEVEL | --no-passphrase]\n"
     "       veil init --join LINK [--server URL] [--cacert FILE] [--label LABEL]\n"
     "          [--yes] [--kdf LEVEL | --no-passphrase]\n"
     "\n"
     "Creates a key pair, fetches the server's signed provisioning document from\n"
     "URL/.well-known/veil/provisioning, registers with the server's directory and\n"
     "saves the profile in $VEIL_HOME (default ~/.veil). Prints the new ID.\n"
     "$VEIL_HOME is created and test-written first: if it cannot be written, init\n"
     "says why and asks the server for nothing.\n"
     "\n"
     "  --server URL       the server's base URL, e.g. http://127.0.0.1:8080, or\n"
     "                     https://chat.example.org behind a TLS proxy: its\n"
     "                     certificate is verified (system CA store)\n"
     "  --cacert FILE      verify https certificates against the CA certificates in\n"
     "                     FILE (PEM) instead of the system store: a private CA. A\n"
     "                     copy is kept in the profile ($VEIL_HOME/ca.pem) and used\n"
     "                     by every later command\n"
     "  --server-key HEX   the chat server's public key (64 hex digits); init fails\n"
     "                     if the server presents another one. Without it the key in\n"
     "                     the provisioning document is trusted and pinned (TLS\n"
     "                     does not replace this pin).\n"
     "  --nickname NAME    the nickname sent along with your messages\n"
     "  --invite CODE      the invite code from the server's operator, for a server\n"
     "                     that lets only invited people join (veild --signup invite)\n"
     "\n"
     "The profile is encrypted at rest (messages, contacts, groups, keys). init asks\n"
     "for a passphrase twice on the terminal, or reads it from the file named by\n"
     "$VEIL_PASSPHRASE_FILE; every later command asks for it again (or reads that\n"
     "file), except the commands a running 'veil daemon' serves.\n"
     "  --kdf LEVEL        how costly the passphrase is to guess: interactive (64 MiB),\n"
     "                     moderate (256 MiB, the default), sensitive (1 GiB), or min\n"
     "                     (1 MiB, for tests); $VEIL_KDF sets the default\n"
     "  --no-passphrase    no passphrase: the store key lies in $VEIL_HOME/store.key\n"
     "                     (mode 0600); 'veil passphrase set' adds one later\n"
     "\n"
     "--join makes this a new device of an existing identity: LINK is what\n"
     "'veil device link' prints on a device of that identity. Both devices then\n"
     "show a code (xx-xx-xx); init asks whether they match (--yes: without\n"
     "asking) and takes the identity, its keys, contacts and groups. --server\n"
     "defaults to the server of the link's relay; --label names this device.\n"},
    {"whoami", cmd_whoami, "show your ID and public key",
     "whoami [--json]\n"
     "\n"
     "Prints your ID and public key (hex), separated by a space. The secret key is\n"
     "never printed.\n"
     "\n"
     "  --json   print a JSON object instead (with mediator_url on a device of a\n"
     "           device group)\n"},
    {"contact", cmd_contact, "add, list, find and verify contacts",
     "contact add ID [--key HEX]\n"
     "       veil contact list [--json]\n"
     "       veil contact match [FILE] [--phone NUMBER]... [--email ADDR]...\n"
     "                          [--country CC] [--private | --hashed]\n"
     "       veil contact show ID\n"
     "       veil contact verify ID --scan TEXT\n"
     "       veil contact name ID [NAME]\n"
     "\n"
     "add:    fetches ID's public key from the directory and stores the contact; with\n"
     "        --key HEX stores the given key without asking the directory.\n"
     "list:   prints ID, public key, nickname and first-seen date of each contact.\n"
     "match:  finds who in an address book (a vCard, or CSV with commas,\n"
     "        semicolons or tabs, FILE '-' for stdin, and\n"
     "        --phone/--email entries) has linked that number or address, adds them\n"
     "        as contacts and prints \"ID LEVEL NAME\" for each. --private (the\n"
     "        default) uses the server's oblivious PRF so the server cannot test\n"
     "        guesses offline; --hashed uses the specification's HMAC hashes.\n"
     "        --country CC (digits, e.g. 41) completes national numbers.\n"
     "show:   prints the contact's key fingerprint and verification level\n"
     "        (red: directory only, orange: matched by phone or e-mail, green: QR).\n"
     "verify: checks a scanned QR text (3mid:ID,KEYHEX) against the stored key and\n"
     "        raises the contact to green; a different key is refused loudly.\n"
     "name:   gives the contact a local name, your own and never sent, shown\n"
     "        after its ID by recv, log and list (JSON: contact_name); '' removes\n"
     "        it, no NAME prints it.\n"},
    {"link", cmd_link, "link an e-mail address or phone number",
     "link email ADDR | phone NUMBER [--country CC] | verify CODE\n"
     "\n"
     "Links an address or number to your ID so that people who have it in their\n"
     "address book can find you: the server sends a 6-digit code to it, which\n"
     "'veil link verify CODE' confirms. An empty ADDR or NUMBER ('') unlinks.\n"},
    {"qr", cmd_qr, "show your contact QR code",
     "qr [--text]\n"
     "\n"
     "Prints your QR code (3mid:ID,KEYHEX) in the terminal for others to scan with\n"
     "'veil contact verify'; --text prints only the text.\n"},
    {"revoke", cmd_revoke, "revoke your identity",
     "revoke [--yes] | --set-password PASSWORD\n"
     "       veil revoke ID --password PASSWORD|- [--server URL [--cacert FILE]] [--yes]\n"
     "\n"
     "Revokes your ID for good after you type it to confirm (--yes skips the\n"
     "question): nobody can write to it and it can no longer log in.\n"
     "--set-password sets a revocation password instead, with which the ID can be\n"
     "revoked later without this profile (identity/ws/revoke).\n"
     "--password revokes ID with its revocation password, without its profile (a\n"
     "lost device): '-' reads the password from standard input; --server URL\n"
     "names the server when $VEIL_HOME holds no profile; --cacert FILE verifies\n"
     "its https certificate against a private CA (as for init).\n"},
    {"device", cmd_device, "the devices of this identity: link, list, rename, drop",
     "device link [--label LABEL] [--yes] [--timeout SECONDS]\n"
     "       veil device list [--json]\n"
     "       veil device rename LABEL\n"
     "       veil device drop DEVICE\n"
     "       veil device enable [--label LABEL]\n"
     "\n"
     "One identity can be used from several devices at once: each device has its\n"
     "own profile directory and connects through the server's mediator, which\n"
     "reflects every message received or sent to the other devices, end-to-end\n"
     "encrypted under the device group's key (the mediator never learns the ID).\n"
     "\n"
     "link:    adds a new device: prints a link (and a QR code on a terminal) for\n"
     "         'veil init --join LINK' on the new device and waits for it (600 s);\n"
     "         both show a code (xx-xx-xx): link asks whether they match (--yes:\n"
     "         without asking), then hands over the identity, contacts and groups.\n"
     "         A profile that has one device becomes a device group first.\n"
     "list:    prints each device: its ID (16 hex digits), label, platform, and\n"
     "         since when it is connected or when it was last seen; * marks this\n"
     "         device (--json: one object per line).\n"
     "rename:  sets the label the other devices see for this one.\n"
     "drop:    removes DEVICE from the group; the mediator disconnects it and it\n"
     "         can no longer connect.\n"
     "enable:  makes this profile the first device of a device group (a new\n"
     "         device group key, registered with the mediator). From then on every\n"
     "         command connects through the mediator.\n"},
    {"server", cmd_server, "show or accept the server's keys",
     "server key\n"
     "       veil server accept-key [--yes]\n"
     "\n"
     "key:         prints the server's address and the pinned chat and signature\n"
     "             keys with their fingerprints.\n"
     "accept-key:  after the operator changed the server's keys (commands then\n"
     "             fail with \"wrong server key\"), fetches the server's current\n"
     "             provisioning document, shows the pinned and the new fingerprints\n"
     "             and, once you agree (--yes: without asking), pins the new keys.\n"
     "             Compare the fingerprints with the operator first: a changed key\n"
     "             is also what an attacker in the middle would show.\n"},
    {"send", cmd_send, "send a text message or a file",
     "send ID [--] TEXT...\n"
     "       veil send ID --file PATH [--caption TEXT]\n"
     "\n"
     "Encrypts TEXT for ID and sends it; prints the message ID (16 hex digits) once\n"
     "the server has stored the message. Several TEXT arguments are joined with\n"
     "spaces; TEXT '-' reads the message from standard input. At most 6000 bytes of\n"
     "UTF-8. Unknown IDs are looked up in the directory and added as contacts.\n"
     "An argument starting with '-' is an option, not text (an error after the\n"
     "text): put '--' before a text that starts with '-'.\n"
     "\n"
     "--file encrypts the file with a fresh key, uploads it to the server's blob\n"
     "service and sends a file message (with an optional caption). A progress bar\n"
     "is drawn on a terminal. A JPEG or PNG image gets a thumbnail of at most\n"
     "512x512 pixels in its own format, uploaded as a blob of its own.\n"},
    {"recv", cmd_recv, "receive messages",
     "recv [--wait SECONDS] [--json] [--download-dir DIR]\n"
     "\n"
     "Connects, prints every queued message as \"[date] FROM: text\" and sends\n"
     "delivery receipts; then waits up to SECONDS (default 0) for more.\n"
     "\n"
     "  --wait SECONDS   keep listening this long after the queue is empty\n"
     "  --json           one JSON object per line: from, id, date, type, nickname,\n"
     "                   text (text messages), status and ids (receipts),\n"
     "                   typing (typing indicators); files: name, mime, size,\n"
     "                   caption, path, thumbnail\n"
     "  --download-dir DIR  where received files are saved ($VEIL_HOME/files);\n"
     "                   each is downloaded, checked and decrypted, then its path\n"
     "                   is printed; its thumbnail, if it has one, is saved beside\n"
     "                   it as NAME.thumb.jpg (or .png)\n"
     "\n"
     "A message is acknowledged to the server only once it is stored. One that\n"
     "cannot be decrypted or decoded is stored as it came and shown as \"stored\n"
     "raw: type 0xNN, N bytes\" (JSON: raw, size, error). Other problems with\n"
     "single messages and server alerts are reported on stderr.\n"},
    {"group", cmd_group, "group chats: create, list, show, change, leave, send",
     "group create NAME ID...\n"
     "       veil group list [--json]\n"
     "       veil group show GID [--json]\n"
     "       veil group add GID ID...\n"
     "       veil group remove GID ID...\n"
     "       veil group rename GID NAME\n"
     "       veil group leave GID\n"
     "       veil group send GID [--] TEXT...\n"
     "       veil group send GID --file PATH [--caption TEXT]\n"
     "       veil group ack|decline GID MSGID...\n"
     "\n"
     "A group is named by its ID, 16 hex digits as 'veil group list' prints it\n"
     "(CREATOR:GID where two groups share an ID). The creator manages the group;\n"
     "every message goes to each member end-to-end encrypted separately.\n"
     "\n"
     "create:  makes a group with you as creator and the given members (at most\n"
     "         255 besides you) and prints its ID.\n"
     "list:    prints ID, name, creator and size of every group you are in\n"
     "         (--json: one JSON object per line).\n"
     "show:    prints the group's name, creator, state and members.\n"
     "add, remove, rename:  change the group (creator only); removed members get\n"
     "         nothing more.\n"
     "leave:   leaves the group; for its creator, disbands it.\n"
     "send:    sends TEXT, or the file at PATH, to every member; prints the\n"
     "         message ID. 'veil recv' saves received group files like others.\n"
     "         A member who cannot get it (revoked ID, say) does not stop the\n"
     "         others: each is named on stderr; the exit status is 0 if every\n"
     "         reachable member got it, 3 if some did not (see 'veil --help').\n"
     "ack, decline:  react to group messages (the group's delivery receipts).\n"
     "\n"
     "'veil recv' shows group messages with the group's name and ID.\n"},
    {"log", cmd_log, "show the message history",
     "log [--peer ID|GID] [--since DATE|DURATION] [--limit N] [--grep TEXT] [--json]\n"
     "\n"
     "Prints the messages stored in the profile, sent and received, ordered by\n"
     "date: \"[date] MSGID <- FROM: words\" (\"->\" for sent ones, with their\n"
     "state: sent, received, read, acknowledged, declined; received ones that\n"
     "you read, on this or another device, with [read], see 'veil read'). Texts, files (name,\n"
     "size, type, caption), receipts and group messages (with the group's name and\n"
     "ID) are shown in words; one that could not be decoded as \"stored raw: type\n"
     "0xNN, N bytes\".\n"
     "\n"
     "  --peer ID|GID   only messages with this contact, or of this group\n"
     "                  (GID or CREATOR:GID as 'veil group list' prints it)\n"
     "  --since WHEN    only messages since a UTC date (2024-05-01,\n"
     "                  2024-05-01T12:00Z) or for a duration (30m, 12h, 7d, 2w)\n"
     "  --limit N       only the N newest (still printed oldest first)\n"
     "  --grep TEXT     only messages whose words contain TEXT (any case)\n"
     "  --json          JSON Lines: dir, peer, id, date, type, type_code, status,\n"
     "                  read (received messages: true or false),\n"
     "                  text, group {id, creator, name}, name, mime, size,\n"
     "                  caption (files), ids (receipts), raw and size (raw)\n"},
    {"read", cmd_read, "mark a conversation read",
     "read ID\n"
     "\n"
     "Marks every unread message from ID read and prints how many. With read\n"
     "receipts on ('veil settings') ID gets a read receipt; in a device group the\n"
     "other devices mark the messages read too (through the reflected receipt or,\n"
     "with receipts off, a read update that only they see) and send none of their\n"
     "own. 'veil log' does not mark anything read; 'veil chat ID' reads the\n"
     "conversation when it opens and each message it shows.\n"
     "'veil log' prints read incoming messages with [read].\n"},
    {"nickname", cmd_nickname, "show or set your nickname",
     "nickname [NAME]\n"
     "\n"
     "Prints the nickname sent along with your messages, or sets it to NAME (UTF-8,\n"
     "at most 256 bytes; \"\" clears it). In a device group the other devices take\n"
     "it too.\n"},
    {"settings", cmd_settings, "show or change your settings",
     "settings\n"
     "       veil settings read-receipts on|off\n"
     "\n"
     "Without arguments prints the settings. read-receipts: whether 'veil read' and\n"
     "'veil chat' send read receipts (default on). In a device group the other\n"
     "devices take the change too.\n"},
    {"passphrase", cmd_passphrase, "set, change or remove the profile's passphrase",
     "passphrase set [--kdf LEVEL]\n"
     "       veil passphrase change [--kdf LEVEL]\n"
     "       veil passphrase remove\n"
     "\n"
     "set:     gives a profile without passphrase one. A profile of the old,\n"
     "         plaintext format (a 'key' file in $VEIL_HOME) is converted: the new,\n"
     "         encrypted database is built beside the old one and replaces it in\n"
     "         one rename, then the plaintext key is removed; a crash leaves the\n"
     "         old profile or the new one, never neither.\n"
     "change:  asks for the current passphrase, then twice for the new one.\n"
     "remove:  keeps the profile encrypted, with the store key in\n"
     "         $VEIL_HOME/store.key (mode 0600) instead of behind a passphrase;\n"
     "         converts a plaintext profile that way.\n"
     "\n"
     "Only the wrap of the keys changes: a running daemon keeps working. Scripts\n"
     "name files holding the passphrases: $VEIL_PASSPHRASE_FILE (the current one)\n"
     "and $VEIL_NEW_PASSPHRASE_FILE (the new one; default: the current file).\n"
     "  --kdf LEVEL   min, interactive, moderate or sensitive (see 'veil init')\n"},
    {"export", cmd_export, "write the message history to an encrypted file",
     "export FILE [--kdf LEVEL]\n"
     "\n"
     "Writes every stored message, sent and received, to FILE (created, mode 0600,\n"
     "never overwritten), encrypted under a passphrase of its own: asked twice on\n"
     "the terminal, or read from the file named by $VEIL_EXPORT_PASSPHRASE_FILE\n"
     "(default: $VEIL_PASSPHRASE_FILE). The file is a libsodium secretstream, one\n"
     "message per chunk: memory stays the same for any size.\n"
     "  --kdf LEVEL   the cost of the export passphrase (default moderate)\n"},
    {"import", cmd_import, "add the messages of an exported file",
     "import FILE\n"
     "\n"
     "Reads a file written by 'veil export' (its passphrase as for export) and adds\n"
     "the messages this profile does not have yet; a second import of the same\n"
     "file adds nothing. A tampered or truncated file, or a wrong passphrase,\n"
     "imports nothing at all.\n"},
    {"daemon", cmd_daemon, "hold the connection: receive all the time, serve JSON-RPC",
     CLI_DAEMON_USAGE},
    {"chat", cmd_chat, "talk with a contact or a group in the terminal", CLI_CHAT_USAGE},
    {"backup", cmd_backup, "Threema Safe backups to a Safe or WebDAV server",
     "backup config --url URL [--user USER --password-file FILE] [--cacert FILE]\n"
     "       veil backup now\n"
     "       veil backup status\n"
     "       veil backup restore --url URL --id ID --server URL [--server-key HEX]\n"
     "          [--server-cacert FILE] [--user USER --password-file FILE] [--cacert FILE]\n"
     "\n"
     "Backs up the identity, contacts (keys, verification levels, nicknames, local\n"
     "names) and groups in the Threema Safe format: gzip'd JSON, padded to a size\n"
     "bucket, encrypted under a key derived from the backup password and the ID.\n"
     "Messages are not part of a backup.\n"
     "\n"
     "config   where backups go: a Safe server (veild serves one at URL/safe/) or a\n"
     "         WebDAV collection (told apart by asking the server). --user and\n"
     "         --password-file give HTTP basic auth; they are kept in the\n"
     "         encrypted profile with the key derived from the backup password\n"
     "         (asked twice, at least 8 characters), never the password itself.\n"
     "now      upload a backup at once. 'veil daemon' uploads one by itself after\n"
     "         changes, at most once a day.\n"
     "status   the last success, its size, when the next is due, the last error.\n"
     "restore  into an empty $VEIL_HOME: fetches the backup of ID from URL,\n"
     "         registers nothing new: the server at --server must know ID with\n"
     "         the backup's key (--server-key and --server-cacert as --server-key\n"
     "         and --cacert of 'veil init'). Later backups go to the same URL.\n"
     "\n"
     "--cacert FILE verifies an https backup URL against the CA certificates in\n"
     "FILE (PEM) instead of the system store; config keeps its absolute path.\n"
     "\n"
     "The backup password is asked on the terminal without echo, or read from the\n"
     "first line of the file named by $VEIL_BACKUP_PASSWORD_FILE (for scripts).\n"},
};

static const struct cli_cmd *find(const char *name)
{
	for (size_t i = 0; i < VEIL_ARRAY_LEN(commands); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static void show_usage(FILE *f)
{
	fprintf(f, "usage: %s <command> [arguments]\n       %s --version\n\ncommands:\n", cli_prog,
	        cli_prog);
	for (size_t i = 0; i < VEIL_ARRAY_LEN(commands); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(f,
	        "\n'%s <command> --help' describes a command. The profile lives in\n"
	        "$VEIL_HOME (default ~/.veil). Options go before a message's text; '--'\n"
	        "ends the options, so that a text may start with '-'.\n"
	        "\n"
	        "environment:\n"
	        "  VEIL_HOME               the profile directory\n"
	        "  VEIL_IGNORE_CLOCK_SKEW  1: connect through the mediator although this\n"
	        "                          computer's clock is more than 20 minutes off\n"
	        "\n"
	        "exit status:\n"
	        "  0  success\n"
	        "  1  failure (one line on stderr says why)\n"
	        "  2  usage error\n"
	        "  3  a group operation reached some members but not all: each one\n"
	        "     missed is named on stderr; the others got it, so do not resend.\n"
	        "     (A member whose ID is revoked or unknown is named too, but counts\n"
	        "     as unreachable: the status is 0 if everyone else got it.)\n",
	        cli_prog);
}

int cli_err(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", cli_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

void cli_usage(FILE *f, const char *name)
{
	const struct cli_cmd *c = find(name);
	if (c != NULL)
		fprintf(f, "usage: %s %s", cli_prog, c->usage);
}

int cli_usage_err(const char *name, const char *why)
{
	cli_err("%s", why);
	cli_usage(stderr, name);
	return 2;
}

int cli_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			return 0;
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			return 1;
	}
	return 0;
}

int cli_text_args(const char *cmd, int *argc, char **argv, int from, int *start)
{
	*start = from;
	for (int i = from; i < *argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			if (i == from) {
				*start = from + 1;
			} else {
				memmove(argv + i, argv + i + 1,
				        (size_t)(*argc - i - 1) * sizeof *argv);
				(*argc)--;
			}
			return 0;
		}
		if (argv[i][0] == '-' && argv[i][1] != 0) {
			char why[160];
			snprintf(why, sizeof why,
			         "unexpected option '%.40s': options go before the text; put '--' "
			         "before a text that starts with '-'",
			         argv[i]);
			return cli_usage_err(cmd, why);
		}
	}
	return 0;
}

int cli_opt(int argc, char **argv, int *i, const char *name, const char **val)
{
	const char *a = argv[*i];
	size_t n = strlen(name);
	if (strncmp(a, "--", 2) != 0 || strncmp(a + 2, name, n) != 0)
		return 0;
	if (a[2 + n] == '=') {
		*val = a + 3 + n;
		return 1;
	}
	if (a[2 + n] != 0)
		return 0;
	if (*i + 1 >= argc)
		return -1;
	*val = argv[++*i];
	return 1;
}

int cli_parse_id(uint8_t id[static VEIL_ID_LEN], const char *s)
{
	char up[VEIL_ID_LEN + 1];
	size_t n = strlen(s);
	if (n == VEIL_ID_LEN) {
		for (size_t i = 0; i < n; i++)
			up[i] = (char)toupper((unsigned char)s[i]);
		up[n] = 0;
		if (veil_id_parse(id, up) == 0)
			return 0;
	}
	cli_err("invalid ID '%.40s' (8 characters: A-Z, 0-9)", s);
	return 2;
}

int cli_parse_key(uint8_t key[static VEIL_KEY_LEN], const char *s, const char *what)
{
	if (veil_hex_decode(key, VEIL_KEY_LEN, s, strlen(s)) == 0)
		return 0;
	cli_err("invalid %s: expected %d hex digits", what, 2 * VEIL_KEY_LEN);
	return 2;
}

int cli_open(struct veil_msgr *m)
{
	char home[VEIL_PROFILE_PATH_MAX];
	if (veil_profile_home(home, sizeof home) != 0)
		return cli_err("not initialised: set VEIL_HOME or HOME");
	if (veil_msgr_open(m, home) != 0)
		return cli_err("%s", m->errtext);
	return 0;
}

const char *cli_type(char buf[static 8], uint8_t type)
{
	const char *t = veil_msgr_type_name(type);
	if (t != NULL)
		return t;
	snprintf(buf, 8, "0x%02x", type);
	return buf;
}

void cli_raw_desc(uint8_t type, size_t len)
{
	if (type == 0)
		printf("stored raw: not decrypted, %zu bytes", len);
	else
		printf("stored raw: type 0x%02x, %zu bytes", type, len);
}

void cli_msgid(char out[static 17], uint64_t id)
{
	uint8_t b[8];
	veil_store_u64le(b, id);
	if (veil_hex_encode(out, 17, b, 8) != 0)
		out[0] = 0;
}

void cli_date(char out[static 32], uint64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	if (gmtime_r(&t, &tm) == NULL || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, 32, "1970-01-01T00:00:00Z");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		show_usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
		printf("%s %s\n", cli_prog, CLI_VERSION);
		return 0;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		if (argc > 2 && find(argv[2]) != NULL)
			cli_usage(stdout, argv[2]);
		else
			show_usage(stdout);
		return 0;
	}
	const struct cli_cmd *c = find(argv[1]);
	if (c == NULL) {
		cli_err("unknown command '%.40s'", argv[1]);
		show_usage(stderr);
		return 2;
	}
	if (cli_wants_help(argc - 1, argv + 1)) {
		cli_usage(stdout, c->name);
		return 0;
	}
	if (veil_crypto_init() != 0)
		return cli_err("cannot initialise the cryptography library");
	/* The library logs only at debug level; keep the output to our own lines. */
	veil_log_set_level(VEIL_LOG_ERROR);
	cli_pass_setup();
	return c->fn(argc - 1, argv + 1);
}

/*
 * veil server: the pinned server keys. "key" shows them; "accept-key"
 * fetches the server's current provisioning document and, once the user
 * agreed to the new fingerprints, pins its keys instead of the old ones.
 */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "veil/dir.h"
#include "cli.h"

/* The first 16 bytes of SHA-256(key) in groups of four hex digits, as contact show prints. */
static void fingerprint(char out[static 40], const uint8_t key[static VEIL_KEY_LEN])
{
	uint8_t fp[32];
	char hex[VEIL_HEX_LEN(16)];
	crypto_hash_sha256(fp, key, VEIL_KEY_LEN);
	if (veil_hex_encode(hex, sizeof hex, fp, 16) != 0) {
		out[0] = 0;
		return;
	}
	size_t o = 0;
	for (int i = 0; i < 32; i += 4) {
		memcpy(out + o, hex + i, 4);
		o += 4;
		if (i < 28)
			out[o++] = ' ';
	}
	out[o] = 0;
}

static int server_key(struct veil_msgr *m)
{
	char fp[40], hex[VEIL_HEX_LEN(VEIL_KEY_LEN)];
	struct veil_profile *p = &m->prof;
	printf("server:        %s\n", p->server_url);
	printf("chat server:   %s:%u\n", p->chat_host, (unsigned)p->chat_port);
	fingerprint(fp, p->server_pk);
	if (veil_hex_encode(hex, sizeof hex, p->server_pk, VEIL_KEY_LEN) == 0)
		printf("chat key:      %s\nfingerprint:   %s\n", hex, fp);
	fingerprint(fp, p->sign_pk);
	printf("signature key: %s (fingerprint)\n", fp);
	return 0;
}

static int ask(const char *question)
{
	char line[16];
	fprintf(stderr, "%s [y/N] ", question);
	if (fgets(line, sizeof line, stdin) == NULL)
		return 0;
	return line[0] == 'y' || line[0] == 'Y';
}

static int accept_key(struct veil_msgr *m, int yes)
{
	struct veil_profile *p = &m->prof;
	struct veil_dir_provisioning prov;
	char a[40], b[40];
	/* Nothing pinned: the document is checked with its own signature key, shown below. */
	if (veil_dir_fetch_provisioning(p->server_url, NULL, NULL, &prov) != 0)
		return cli_err("cannot read the provisioning document of %s: %s", p->server_url,
		               veil_dir_errmsg());
	int chat_same = memcmp(prov.csp_pk, p->server_pk, VEIL_KEY_LEN) == 0;
	int sign_same = memcmp(prov.sign_pk, p->sign_pk, VEIL_KEY_LEN) == 0;
	if (chat_same && sign_same) {
		printf("the server's keys are the pinned ones; nothing to change\n");
		return 0;
	}
	fingerprint(a, p->server_pk);
	fingerprint(b, prov.csp_pk);
	printf("chat key:      %s\n", chat_same ? "unchanged" : "CHANGED");
	printf("  pinned:      %s\n  server now:  %s\n", a, b);
	fingerprint(a, p->sign_pk);
	fingerprint(b, prov.sign_pk);
	printf("signature key: %s\n", sign_same ? "unchanged" : "CHANGED");
	printf("  pinned:      %s\n  server now:  %s\n", a, b);
	fflush(stdout);
	if (!yes && !ask("Compare the new fingerprints with the server's operator. Pin them?"))
		return cli_err("not confirmed; the pinned keys are unchanged");
	if (strlen(prov.chat_host) >= sizeof p->chat_host ||
	    strlen(prov.directory_url) >= sizeof p->dir_url)
		return cli_err("the provisioning document's addresses are too long");
	memcpy(p->server_pk, prov.csp_pk, VEIL_KEY_LEN);
	memcpy(p->sign_pk, prov.sign_pk, VEIL_KEY_LEN);
	snprintf(p->chat_host, sizeof p->chat_host, "%s", prov.chat_host);
	p->chat_port = prov.chat_port;
	snprintf(p->dir_url, sizeof p->dir_url, "%s", prov.directory_url);
	int rc = veil_profile_save(p);
	if (rc != 0)
		return cli_err("cannot save the profile: %s", veil_strerror(rc));
	printf("pinned the server's new keys\n");
	return 0;
}

int cmd_server(int argc, char **argv)
{
	struct veil_msgr m;
	int yes = 0, rc;
	if (argc < 2)
		return cli_usage_err("server", "server needs key or accept-key");
	const char *sub = argv[1];
	int is_key = strcmp(sub, "key") == 0, is_accept = strcmp(sub, "accept-key") == 0;
	if (!is_key && !is_accept)
		return cli_usage_err("server", "server needs key or accept-key");
	for (int i = 2; i < argc; i++) {
		if (is_accept && strcmp(argv[i], "--yes") == 0)
			yes = 1;
		else
			return cli_usage_err("server", "unexpected argument");
	}
	if (cli_open(&m) != 0)
		return 1;
	rc = is_key ? server_key(&m) : accept_key(&m, yes);
	veil_msgr_close(&m);
	return rc;
}

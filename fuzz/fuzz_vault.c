/*
 * Fuzzes what of the encrypted store reads bytes from outside: the import
 * of an exported history (header, chunk lengths, the secretstream, the
 * records inside) into a scratch profile, and the message record decoder.
 * The first input byte picks. Imports use the passphrase "fuzz"; inputs
 * that ask for more than the min KDF level are skipped (only cost, no
 * parsing, lies beyond). The seeds are exports made with that passphrase.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "veil/client.h"
#include "veil/vault.h"
#include "../lib/client/vault_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct veil_profile prof;
static int ready;
static char home_dir[64];

static void cleanup(void)
{
	static const char *const names[] = {"veil.db", "veil.db-wal", "veil.db-shm", "store.key",
	                                    "profile.json"};
	char path[128];
	veil_profile_release(&prof);
	for (size_t i = 0; i < VEIL_ARRAY_LEN(names); i++) {
		snprintf(path, sizeof path, "%s/%s", home_dir, names[i]);
		(void)unlink(path);
	}
	(void)rmdir(home_dir);
}

static int setup(void)
{
	snprintf(home_dir, sizeof home_dir, "/tmp/fuzz_vault.XXXXXX");
	if (mkdtemp(home_dir) == NULL || veil_crypto_init() != 0 ||
	    veil_profile_init(&prof, home_dir) != 0)
		return -1;
	atexit(cleanup);
	memcpy(prof.id, "ECHOECHO", VEIL_ID_LEN);
	veil_keypair(prof.pk, prof.sk);
	snprintf(prof.chat_host, sizeof prof.chat_host, "127.0.0.1");
	prof.chat_port = 5222;
	return veil_profile_create(&prof);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t sel = data[0];
	data++;
	size--;
	if (sel % 2 == 0) {
		struct veil_log_entry e;
		(void)!veil_log_decode(data, size, &e);
		return 0;
	}
	/* magic (8), algorithm (1), opslimit (8), memlimit (8): keep Argon2id cheap. */
	if (size >= 25 &&
	    (veil_load_u64le(data + 9) > 1 || veil_load_u64le(data + 17) > (8u << 20)))
		return 0;
	if (!ready) {
		if (setup() != 0)
			abort();
		ready = 1;
	}
	FILE *f = tmpfile();
	if (f == NULL)
		return 0;
	if (fwrite(data, 1, size, f) == size && fflush(f) == 0 && fseek(f, 0, SEEK_SET) == 0) {
		uint64_t added = 0, skipped = 0;
		(void)!veil_profile_import(&prof, fileno(f), (const uint8_t *)"fuzz", 4, &added,
		                           &skipped);
	}
	fclose(f);
	return 0;
}

/*
 * Test helper: changes a profile's encrypted store the way a bug, a lost
 * database or an attacker with the passphrase would, through libveil (the
 * store cannot be edited with sqlite3 any more). Not installed.
 *
 *   profile_poke group-forget                      forgets every group
 *   profile_poke group-put CREATOR GIDHEX NAME ID...  stores a group as given
 *   profile_poke group-add CREATOR GIDHEX ID       adds a member at the end
 *   profile_poke print-sk                          prints the secret key in hex
 *                                                  (to look for it in the files)
 *
 * GIDHEX is the group ID as `veil group list` prints it (16 hex digits of its
 * little-endian bytes). The profile is $VEIL_HOME's; its passphrase as for veil.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "veil/client.h"

static int parse_gid(const char *s, uint64_t *gid)
{
	uint8_t b[8];
	if (strlen(s) != 16 || veil_hex_decode(b, 8, s, 16) != 0)
		return -1;
	*gid = veil_load_u64le(b);
	return 0;
}

struct forget {
	struct veil_group *v;
	size_t n;
};

static int collect(const struct veil_group *g, void *ctx)
{
	struct forget *f = ctx;
	struct veil_group *nv = realloc(f->v, (f->n + 1) * sizeof *nv);
	if (nv == NULL)
		return VEIL_ENOMEM;
	f->v = nv;
	f->v[f->n++] = *g;
	return 0;
}

int main(int argc, char **argv)
{
	char home[VEIL_PROFILE_PATH_MAX];
	struct veil_profile p;
	struct veil_group *g = calloc(1, sizeof *g);
	int rc = 2;
	if (g == NULL || argc < 2 || veil_crypto_init() != 0 ||
	    veil_profile_home(home, sizeof home) != 0) {
		fprintf(stderr,
		        "usage: profile_poke group-forget | group-put ... | group-add ...\n");
		return 2;
	}
	if ((rc = veil_profile_open(&p, home)) != 0) {
		fprintf(stderr, "profile_poke: cannot open %s: %s\n", home, veil_strerror(rc));
		return 1;
	}
	if (strcmp(argv[1], "print-sk") == 0 && argc == 2) {
		char hex[VEIL_HEX_LEN(VEIL_KEY_LEN)];
		rc = veil_hex_encode(hex, sizeof hex, p.sk, VEIL_KEY_LEN);
		if (rc == 0)
			printf("%s\n", hex);
		sodium_memzero(hex, sizeof hex);
	} else if (strcmp(argv[1], "group-forget") == 0 && argc == 2) {
		struct forget f = {0};
		rc = veil_profile_group_list(&p, collect, &f);
		for (size_t i = 0; rc == 0 && i < f.n; i++)
			rc = veil_profile_group_delete(&p, f.v[i].creator, f.v[i].gid);
		free(f.v);
	} else if (strcmp(argv[1], "group-put") == 0 && argc >= 5) {
		if (veil_id_parse(g->creator, argv[2]) != 0 || parse_gid(argv[3], &g->gid) != 0)
			goto usage;
		snprintf(g->name, sizeof g->name, "%s", argv[4]);
		for (int i = 5; i < argc && g->n_members < VEIL_GROUP_MAX_MEMBERS; i++)
			if (veil_id_parse(g->members[g->n_members++], argv[i]) != 0)
				goto usage;
		rc = veil_profile_group_put(&p, g);
	} else if (strcmp(argv[1], "group-add") == 0 && argc == 5) {
		uint8_t creator[VEIL_ID_LEN], id[VEIL_ID_LEN];
		uint64_t gid;
		if (veil_id_parse(creator, argv[2]) != 0 || parse_gid(argv[3], &gid) != 0 ||
		    veil_id_parse(id, argv[4]) != 0)
			goto usage;
		if ((rc = veil_profile_group_get(&p, creator, gid, g)) == 0) {
			if (g->n_members >= VEIL_GROUP_MAX_MEMBERS)
				rc = VEIL_ELIMIT;
			else {
				memcpy(g->members[g->n_members++], id, VEIL_ID_LEN);
				rc = veil_profile_group_put(&p, g);
			}
		}
	} else {
		goto usage;
	}
	if (rc != 0)
		fprintf(stderr, "profile_poke: %s\n", veil_strerror(rc));
	veil_profile_release(&p);
	free(g);
	return rc != 0;
usage:
	fprintf(stderr, "profile_poke: bad arguments\n");
	veil_profile_release(&p);
	free(g);
	return 2;
}

/* veilctl gateway: Gateway API identities (see ctl.h and srv/gateway/gateway.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "ctl.h"

#define CREATE_ATTEMPTS 16

/* The options every gateway subcommand takes, and the positional arguments left. */
struct gw_args {
	const char *data, *store, *id, *pk, *callback, *credits;
	const char *pos[3];
	int npos;
};

static int parse(int argc, char **argv, struct gw_args *a)
{
	memset(a, 0, sizeof *a);
	for (int i = 1; i < argc; i++) {
		int r;
		if ((r = ctl_opt(argc, argv, &i, "data", &a->data)) ||
		    (r = ctl_opt(argc, argv, &i, "store", &a->store)) ||
		    (r = ctl_opt(argc, argv, &i, "id", &a->id)) ||
		    (r = ctl_opt(argc, argv, &i, "public-key", &a->pk)) ||
		    (r = ctl_opt(argc, argv, &i, "callback", &a->callback)) ||
		    (r = ctl_opt(argc, argv, &i, "credits", &a->credits))) {
			if (r < 0)
				return ctl_err("%s needs a value", argv[i]) + 1;
			continue;
		}
		if (strncmp(argv[i], "--", 2) == 0)
			return ctl_err("unknown option %s (see veilctl gateway --help)", argv[i]) +
			       1;
		if (a->npos == 3)
			return ctl_err("too many arguments (see veilctl gateway --help)") + 1;
		a->pos[a->npos++] = argv[i];
	}
	return 0;
}

static int parse_gw_id(uint8_t id[static VEIL_ID_LEN], const char *s)
{
	if (strlen(s) != VEIL_ID_LEN || s[0] != '*' || veil_id_parse(id, s) != 0)
		return ctl_err("'%s' is not a Gateway ID ('*' and 7 characters of A-Z, 0-9)", s);
	return 0;
}

static int parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char *end;
	long long v = strtoll(s, &end, 10);
	if (end == s || *end != '\0' || v < min || v > max)
		return ctl_err("'%s' is not a number from %" PRId64 " to %" PRId64, s, min, max);
	*out = v;
	return 0;
}

static int create(struct ctl *c, const struct gw_args *a)
{
	struct veil_gw_account acc = {0};
	struct veil_identity_rec rec;
	uint8_t pk[VEIL_KEY_LEN];
	int64_t credits = VEIL_GW_DEFAULT_CREDITS;
	if (a->credits != NULL && parse_i64(a->credits, 0, INT64_MAX / 2, &credits) != 0)
		return 2;
	if (a->callback != NULL &&
	    (strlen(a->callback) > VEIL_GW_URL_MAX ||
	     (strncmp(a->callback, "https://", 8) != 0 && strncmp(a->callback, "http://", 7) != 0)))
		return ctl_err("the callback must be an http:// or https:// URL") + 1;
	if (a->id != NULL && parse_gw_id(acc.id, a->id) != 0)
		return 2;
	acc.modes = VEIL_GW_MODE_E2E;
	if (a->pk != NULL) {
		if (strlen(a->pk) != 2 * VEIL_KEY_LEN ||
		    veil_hex_decode(pk, VEIL_KEY_LEN, a->pk, strlen(a->pk)) != 0)
			return ctl_err("--public-key needs 64 hex digits") + 1;
	} else {
		crypto_box_keypair(pk, acc.sk);
		acc.has_sk = 1;
		acc.modes |= VEIL_GW_MODE_BASIC;
	}
	acc.credits = credits;
	snprintf(acc.callback, sizeof acc.callback, "%s", a->callback ? a->callback : "");
	veil_gw_secret_new(acc.secret);
	int rc = VEIL_EEXIST;
	for (int i = 0; i < (a->id != NULL ? 1 : CREATE_ATTEMPTS) && rc == VEIL_EEXIST; i++) {
		if (a->id == NULL) {
			static const char chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
			acc.id[0] = '*';
			for (int k = 1; k < VEIL_ID_LEN; k++)
				acc.id[k] = (uint8_t)chars[randombytes_uniform(sizeof chars - 1)];
		}
		rc = veil_store_identity_create_id(c->srv.store, acc.id, pk, &rec);
	}
	char ids[VEIL_ID_LEN + 1];
	veil_id_str(ids, acc.id);
	if (rc == VEIL_EEXIST) {
		sodium_memzero(&acc, sizeof acc);
		return ctl_err(a->id != NULL ? "%s is taken, or the key already has an identity"
		                             : "no free ID found (%s last tried)",
		               ids);
	}
	if (rc == 0)
		rc = veil_gwdb_add(c->gw, &acc);
	if (rc != 0) {
		sodium_memzero(&acc, sizeof acc);
		return ctl_err("cannot create %s: %s", ids, veil_strerror(rc));
	}
	printf("%s %s\n", ids, acc.secret);
	sodium_memzero(&acc, sizeof acc);
	return 0;
}

static void print_account(const struct veil_gw_account *acc)
{
	char ids[VEIL_ID_LEN + 1];
	veil_id_str(ids, acc->id);
	printf("%s %s %" PRId64 " %s", ids, (acc->modes & VEIL_GW_MODE_BASIC) ? "basic+e2e" : "e2e",
	       acc->credits, acc->callback[0] ? acc->callback : "-");
	if (acc->cb_failures > 0) {
		char when[32] = "?";
		time_t t = (time_t)(acc->cb_error_ms / 1000);
		struct tm tm;
		if (gmtime_r(&t, &tm) != NULL)
			strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
		printf(" (%" PRId64 " callback failures in a row, last %s: %s)", acc->cb_failures,
		       when, acc->cb_error);
	}
	putchar('\n');
}

static int list(struct ctl *c)
{
	static uint8_t ids[100000][VEIL_ID_LEN];
	size_t n;
	if (veil_gwdb_list(c->gw, ids, sizeof ids / sizeof ids[0], &n) != 0)
		return ctl_err("cannot read the accounts");
	for (size_t i = 0; i < n; i++) {
		struct veil_gw_account acc;
		if (veil_gwdb_get(c->gw, ids[i], 0, &acc) == 0)
			print_account(&acc);
	}
	return 0;
}

static int callback(struct ctl *c, const struct gw_args *a)
{
	uint8_t id[VEIL_ID_LEN];
	struct veil_gw_account acc;
	if (a->npos < 2 || parse_gw_id(id, a->pos[1]) != 0)
		return 2;
	if (a->npos == 3) {
		const char *u = a->pos[2];
		if (u[0] != '\0' && strncmp(u, "https://", 8) != 0 && strncmp(u, "http://", 7) != 0)
			return ctl_err("the callback must be an http:// or https:// URL") + 1;
		if (veil_gwdb_set_callback(c->gw, id, u) != 0)
			return ctl_err("no Gateway identity %s", a->pos[1]);
	}
	if (veil_gwdb_get(c->gw, id, 0, &acc) != 0)
		return ctl_err("no Gateway identity %s", a->pos[1]);
	printf("%s\n", acc.callback[0] ? acc.callback : "-");
	return 0;
}

static int credits(struct ctl *c, const struct gw_args *a)
{
	uint8_t id[VEIL_ID_LEN];
	struct veil_gw_account acc;
	int64_t n;
	if (a->npos < 2 || parse_gw_id(id, a->pos[1]) != 0)
		return 2;
	if (a->npos == 3) {
		if (parse_i64(a->pos[2], -INT64_MAX / 2, INT64_MAX / 2, &n) != 0)
			return 2;
		if (veil_gwdb_add_credits(c->gw, id, n) != 0)
			return ctl_err("no Gateway identity %s", a->pos[1]);
	}
	if (veil_gwdb_get(c->gw, id, 0, &acc) != 0)
		return ctl_err("no Gateway identity %s", a->pos[1]);
	printf("%" PRId64 "\n", acc.credits);
	return 0;
}

int ctl_gateway(int argc, char **argv)
{
	struct gw_args a;
	struct ctl c;
	if (parse(argc, argv, &a) != 0)
		return 2;
	if (a.npos == 0)
		return ctl_err("which gateway command? (see veilctl gateway --help)") + 1;
	const char *sub = a.pos[0];
	if (strcmp(sub, "create") != 0 && strcmp(sub, "list") != 0 &&
	    strcmp(sub, "callback") != 0 && strcmp(sub, "credits") != 0)
		return ctl_err("unknown gateway command '%s'", sub) + 1;
	if (ctl_open(&c, a.data, a.store) != 0)
		return 1;
	int rc;
	if (strcmp(sub, "create") == 0)
		rc = create(&c, &a);
	else if (strcmp(sub, "list") == 0)
		rc = list(&c);
	else if (strcmp(sub, "callback") == 0)
		rc = callback(&c, &a);
	else
		rc = credits(&c, &a);
	ctl_close(&c);
	return rc;
}

/*
 * veil contact match / show / verify: find contacts from an address book
 * (vCard or CSV) through the directory, show a contact's key fingerprint
 * and verification level, and raise it to green by a scanned QR code.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "veil/contacts.h"
#include "veil/dir.h"
#include "cli.h"

#define MATCH_MAX_ENTRIES 4000
#define MATCH_NAME_MAX 64

struct entry {
	int kind;
	char norm[VEIL_CONTACT_MAX + 1];
	size_t len;
	char name[MATCH_NAME_MAX];
};

struct book {
	struct entry *e;
	size_t n;
	const char *cc;
};

static void add_entry(struct book *b, int kind, const char *raw, const char *name)
{
	if (b->n >= MATCH_MAX_ENTRIES)
		return;
	struct entry *e = &b->e[b->n];
	if (veil_contact_normalize(kind, raw, strlen(raw), b->cc, e->norm, &e->len) != 0)
		return;
	e->kind = kind;
	snprintf(e->name, sizeof e->name, "%.63s", name != NULL && name[0] ? name : e->norm);
	b->n++;
	/* The specification's clients also try the other spelling of Gmail. */
	const char *at = strrchr(e->norm, '@');
	if (kind == VEIL_CONTACT_EMAIL && at != NULL && b->n < MATCH_MAX_ENTRIES &&
	    (strcmp(at, "@gmail.com") == 0 || strcmp(at, "@googlemail.com") == 0)) {
		char alt[VEIL_CONTACT_MAX + 16];
		snprintf(alt, sizeof alt, "%.*s%s", (int)(at - e->norm), e->norm,
		         strcmp(at, "@gmail.com") == 0 ? "@googlemail.com" : "@gmail.com");
		struct entry *f = &b->e[b->n];
		if (veil_contact_normalize(kind, alt, strlen(alt), NULL, f->norm, &f->len) == 0) {
			f->kind = kind;
			snprintf(f->name, sizeof f->name, "%s", e->name);
			b->n++;
		}
	}
}

/* The value of a vCard line "NAME;params:value" or CSV field, trimmed. */
static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t' || *s == '"')
		s++;
	size_t n = strlen(s);
	while (n > 0 &&
	       (s[n - 1] == '\r' || s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '"'))
		s[--n] = 0;
	return s;
}

/*
 * Splits a CSV line at sep outside double quotes, in place ("" inside quotes
 * is one quote), into at most max fields; returns their number.
 */
static size_t split_csv(char *l, char sep, char **fields, size_t max)
{
	size_t nf = 0;
	int quoted = 0;
	char *w = l;
	fields[nf++] = w;
	for (char *r = l; *r != 0; r++) {
		if (*r == '"') {
			if (quoted && r[1] == '"')
				*w++ = *r++;
			else
				quoted = !quoted;
		} else if (*r == sep && !quoted) {
			*w++ = 0;
			if (nf == max)
				return nf;
			fields[nf++] = w;
		} else {
			*w++ = *r;
		}
	}
	*w = 0;
	return nf;
}

/* The separator of a CSV file: whichever of , ; and tab its first line has most of. */
static char csv_separator(const char *l)
{
	size_t n[3] = {0, 0, 0};
	int quoted = 0;
	for (; *l != 0; l++) {
		if (*l == '"')
			quoted = !quoted;
		else if (!quoted && *l == ',')
			n[0]++;
		else if (!quoted && *l == ';')
			n[1]++;
		else if (!quoted && *l == '\t')
			n[2]++;
	}
	return n[1] > n[0] && n[1] >= n[2] ? ';' : n[2] > n[0] && n[2] > n[1] ? '\t' : ',';
}

/* One CSV record: the first field that is neither address nor number is the name. */
static void csv_record(struct book *b, char *l, char sep)
{
	char *fields[32], name[MATCH_NAME_MAX] = "", norm[VEIL_CONTACT_MAX + 1];
	size_t len, nf = split_csv(l, sep, fields, VEIL_ARRAY_LEN(fields));
	for (size_t i = 0; i < nf; i++) {
		char *v = trim(fields[i]);
		if (strchr(v, '@') == NULL &&
		    veil_contact_normalize(VEIL_CONTACT_PHONE, v, strlen(v), b->cc, norm, &len) !=
		        0 &&
		    name[0] == 0)
			snprintf(name, sizeof name, "%s", v);
	}
	for (size_t i = 0; i < nf; i++) {
		char *v = trim(fields[i]);
		add_entry(b, strchr(v, '@') != NULL ? VEIL_CONTACT_EMAIL : VEIL_CONTACT_PHONE, v,
		          name);
	}
}

/*
 * Reads a vCard or CSV address book (comma, semicolon or tab separated, as
 * spreadsheets export it). A file that cannot be read, or holds nothing we
 * can use, is explained in one line; returns 0 or the exit status.
 */
static int read_book(const char *path, struct book *b)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	if (f == NULL)
		return cli_err("cannot open %s: %s", path, strerror(errno));
	char *line = NULL, name[MATCH_NAME_MAX] = "", sep = 0;
	size_t cap = 0, before = b->n;
	ssize_t got;
	int vcard = 0, first = 1, rc = 0;
	while ((got = getline(&line, &cap, f)) >= 0) {
		char *l = line;
		if (first) {
			const unsigned char *u = (const unsigned char *)line;
			first = 0;
			if (got >= 2 &&
			    ((u[0] == 0xff && u[1] == 0xfe) || (u[0] == 0xfe && u[1] == 0xff))) {
				rc = cli_err(
				    "%s is UTF-16 text: save it as UTF-8 (CSV UTF-8 or vCard)",
				    path);
				goto out;
			}
			if (got >= 4 && memcmp(line, "PK\x03\x04", 4) == 0) {
				rc = cli_err(
				    "%s is a ZIP file (a spreadsheet such as .xlsx or .ods?): "
				    "export it as CSV or vCard",
				    path);
				goto out;
			}
			if (got >= 3 && memcmp(line, "\xef\xbb\xbf", 3) == 0)
				l += 3; /* the UTF-8 byte order mark spreadsheets write */
		}
		if (memchr(line, 0, (size_t)got) != NULL) {
			rc = cli_err("%s is not a text file: expected a vCard or a CSV file", path);
			goto out;
		}
		/* Only the line's end: a CSV line's quotes belong to its fields. */
		size_t n = strlen(l);
		while (n > 0 && (l[n - 1] == '\r' || l[n - 1] == '\n' || l[n - 1] == ' '))
			l[--n] = 0;
		while (*l == ' ' || *l == '\t')
			l++;
		if (strncasecmp(l, "BEGIN:VCARD", 11) == 0) {
			vcard = 1;
			name[0] = 0;
			continue;
		}
		if (vcard) {
			char *colon = strchr(l, ':');
			if (colon == NULL)
				continue;
			*colon = 0;
			char *v = trim(colon + 1);
			if (strcasecmp(l, "FN") == 0)
				snprintf(name, sizeof name, "%s", v);
			else if (strncasecmp(l, "TEL", 3) == 0 ||
			         strncasecmp(l, "item1.TEL", 9) == 0)
				add_entry(b, VEIL_CONTACT_PHONE, v, name);
			else if (strncasecmp(l, "EMAIL", 5) == 0)
				add_entry(b, VEIL_CONTACT_EMAIL, v, name);
			continue;
		}
		if (l[0] == 0)
			continue;
		if (sep == 0)
			sep = csv_separator(l);
		csv_record(b, l, sep);
	}
	if (ferror(f)) {
		rc = cli_err("cannot read %s: %s", path, strerror(errno));
		goto out;
	}
	if (b->n == before)
		rc = cli_err("%s holds no phone number or e-mail address that Veil can read "
		             "(expected a vCard, or CSV with commas, semicolons or tabs)",
		             path);
out:
	free(line);
	if (f != stdin)
		fclose(f);
	return rc;
}

/* Computes each entry's OPRF output in batches through the directory. */
static int private_values(struct veil_msgr *m, const struct book *b, uint8_t (*v)[32])
{
	static uint8_t bl[VEIL_OPRF_MAX_BATCH][32], r[VEIL_OPRF_MAX_BATCH][32],
	    z[VEIL_OPRF_MAX_BATCH][32];
	int rc = 0;
	for (size_t off = 0; off < b->n && rc == 0; off += VEIL_OPRF_MAX_BATCH) {
		size_t k = b->n - off < VEIL_OPRF_MAX_BATCH ? b->n - off : VEIL_OPRF_MAX_BATCH;
		for (size_t i = 0; i < k && rc == 0; i++) {
			const struct entry *e = &b->e[off + i];
			rc = veil_oprf_blind(bl[i], r[i], e->kind, e->norm, e->len);
		}
		if (rc == 0)
			rc = veil_dir_oprf_eval(m->prof.dir_url, m->prof.id, m->prof.sk,
			                        (const uint8_t(*)[32])bl, k, z);
		for (size_t i = 0; i < k && rc == 0; i++) {
			const struct entry *e = &b->e[off + i];
			rc = veil_oprf_finalize(v[off + i], e->kind, e->norm, e->len, r[i], z[i]);
		}
	}
	sodium_memzero(r, sizeof r);
	return rc;
}

static int match_run(struct veil_msgr *m, struct book *b, int private_matching)
{
	/* Values of e-mail entries first, then phone entries, with a map back to entries. */
	uint8_t(*v)[32] = calloc(b->n + 1, 32);
	uint8_t(*ev)[32] = calloc(b->n + 1, 32), (*pv)[32] = calloc(b->n + 1, 32);
	size_t *emap = calloc(b->n + 1, sizeof *emap), *pmap = calloc(b->n + 1, sizeof *pmap);
	struct veil_dir_match *res = calloc(b->n * 4 + 1, sizeof *res);
	size_t ne = 0, np = 0, nres = 0;
	char tok[VEIL_DIR_MATCH_TOKEN_MAX + 1];
	int rc = 1;
	if (v == NULL || ev == NULL || pv == NULL || emap == NULL || pmap == NULL || res == NULL) {
		cli_err("out of memory");
		goto out;
	}
	if (private_matching) {
		if (private_values(m, b, v) != 0) {
			cli_err("%s", veil_dir_errmsg());
			goto out;
		}
	} else {
		for (size_t i = 0; i < b->n; i++)
			if (veil_contact_hash(v[i], b->e[i].kind, b->e[i].norm, b->e[i].len) != 0) {
				cli_err("cannot hash an entry");
				goto out;
			}
	}
	for (size_t i = 0; i < b->n; i++) {
		if (b->e[i].kind == VEIL_CONTACT_EMAIL) {
			memcpy(ev[ne], v[i], 32);
			emap[ne++] = i;
		} else {
			memcpy(pv[np], v[i], 32);
			pmap[np++] = i;
		}
	}
	if (veil_dir_match_token(m->prof.dir_url, m->prof.id, m->prof.sk, tok) != 0 ||
	    veil_dir_match(m->prof.dir_url, tok, private_matching, (const uint8_t(*)[32])ev, ne,
	                   (const uint8_t(*)[32])pv, np, 0, res, b->n * 4 + 1, &nres, NULL) != 0) {
		cli_err("%s", veil_dir_errmsg());
		goto out;
	}
	rc = 0;
	for (size_t i = 0; i < nres; i++) {
		const struct veil_dir_match *x = &res[i];
		const struct entry *e =
		    &b->e[x->kind == VEIL_CONTACT_EMAIL ? emap[x->index] : pmap[x->index]];
		char id[VEIL_ID_LEN + 1], source[VEIL_LEVEL_SOURCE_MAX + 1];
		int level = 0;
		veil_id_str(id, x->id);
		if (memcmp(x->id, m->prof.id, VEIL_ID_LEN) == 0)
			continue; /* ourselves */
		struct veil_contact c;
		memset(&c, 0, sizeof c);
		memcpy(c.id, x->id, VEIL_ID_LEN);
		memcpy(c.pk, x->pk, VEIL_KEY_LEN);
		int a = veil_profile_contact_add(&m->prof, &c);
		if (a == VEIL_EKEY) {
			cli_err("WARNING: %s (%s) now has a DIFFERENT KEY than the one stored; "
			        "refused. "
			        "Verify in person before trusting it.",
			        id, e->name);
			rc = 1;
			continue;
		}
		if ((a != 0 && a != VEIL_EEXIST) ||
		    veil_contacts_level_raise(&m->prof, x->id, VEIL_LEVEL_ORANGE,
		                              x->kind == VEIL_CONTACT_EMAIL ? "email" : "phone") !=
		        0 ||
		    veil_contacts_level_get(&m->prof, x->id, &level, source) != 0) {
			rc = cli_err("cannot store contact %s", id);
			continue;
		}
		printf("%s %-6s %s\n", id, veil_level_name(level), e->name);
	}
out:
	free(v);
	free(ev);
	free(pv);
	free(emap);
	free(pmap);
	free(res);
	return rc;
}

int cli_contact_match(int argc, char **argv)
{
	struct book b = {0};
	const char *file = NULL, *val = NULL;
	int private_matching = 1;
	/* Single entries are normalised after all options, so --country may come last. */
	const char **single = calloc((size_t)argc + 1, sizeof *single);
	int *single_kind = calloc((size_t)argc + 1, sizeof *single_kind);
	size_t ns = 0;
	b.e = calloc(MATCH_MAX_ENTRIES, sizeof *b.e);
	if (b.e == NULL || single == NULL || single_kind == NULL) {
		free(b.e);
		free(single);
		free(single_kind);
		return cli_err("out of memory");
	}
	int bad = 0;
	for (int i = 1; i < argc && !bad; i++) {
		if (cli_opt(argc, argv, &i, "country", &val) > 0) {
			b.cc = val;
		} else if (cli_opt(argc, argv, &i, "phone", &val) > 0) {
			single_kind[ns] = VEIL_CONTACT_PHONE;
			single[ns++] = val;
		} else if (cli_opt(argc, argv, &i, "email", &val) > 0) {
			single_kind[ns] = VEIL_CONTACT_EMAIL;
			single[ns++] = val;
		} else if (strcmp(argv[i], "--private") == 0) {
			private_matching = 1;
		} else if (strcmp(argv[i], "--hashed") == 0) {
			private_matching = 0;
		} else if (argv[i][0] != '-' && file == NULL) {
			file = argv[i];
		} else {
			bad = cli_usage_err("contact", "unexpected argument");
		}
	}
	for (size_t i = 0; i < ns && !bad; i++) {
		size_t before = b.n;
		add_entry(&b, single_kind[i], single[i], NULL);
		if (b.n == before)
			bad = cli_usage_err("contact", single_kind[i] == VEIL_CONTACT_PHONE
			                                   ? "invalid --phone number"
			                                   : "invalid --email address");
	}
	free(single);
	free(single_kind);
	if (bad) {
		free(b.e);
		return bad;
	}
	struct veil_msgr m;
	int rc = 0;
	if (file != NULL && (rc = read_book(file, &b)) != 0) {
		free(b.e);
		return rc;
	}
	if (b.n == 0) {
		free(b.e);
		return cli_usage_err("contact",
		                     "contact match needs FILE, --phone or --email entries");
	}
	if (cli_open(&m) != 0) {
		free(b.e);
		return 1;
	}
	rc = match_run(&m, &b, private_matching);
	veil_msgr_close(&m);
	sodium_memzero(b.e, MATCH_MAX_ENTRIES * sizeof *b.e);
	free(b.e);
	return rc;
}

int cli_contact_show(int argc, char **argv)
{
	uint8_t id[VEIL_ID_LEN], fp[32];
	if (argc != 2)
		return cli_usage_err("contact", "contact show needs an ID");
	if (cli_parse_id(id, argv[1]) != 0)
		return 2;
	struct veil_msgr m;
	struct veil_contact c;
	char source[VEIL_LEVEL_SOURCE_MAX + 1], hex[VEIL_HEX_LEN(32)];
	int level = 0, rc = 0;
	if (cli_open(&m) != 0)
		return 1;
	if (veil_profile_contact_get(&m.prof, id, &c) != 0 ||
	    veil_contacts_level_get(&m.prof, id, &level, source) != 0) {
		rc = cli_err("%.8s is not a contact", argv[1]);
		goto out;
	}
	crypto_hash_sha256(fp, c.pk, VEIL_KEY_LEN);
	if (veil_hex_encode(hex, sizeof hex, fp, 16) == 0) {
		printf("id:          %.8s\n", (const char *)c.id);
		printf("fingerprint: ");
		for (int i = 0; i < 32; i += 4)
			printf("%.4s%s", hex + i, i < 28 ? " " : "\n");
	}
	if (veil_hex_encode(hex, sizeof hex, c.pk, VEIL_KEY_LEN) == 0)
		printf("public key:  %s\n", hex);
	printf("level:       %s (%s)\n", veil_level_name(level), source);
	/* The directory has the last word on whether the ID still exists. */
	struct veil_dir_identity di;
	int d = veil_dir_get_identity(m.prof.dir_url, id, &di);
	if (d == 0 && memcmp(di.id, id, VEIL_ID_LEN) == 0)
		printf("state:       %s\n",
		       di.state == 2
		           ? "REVOKED: its owner revoked this ID; it gets no more messages"
		       : di.state == 1 ? "inactive (directory)"
		                       : "active (directory)");
	else if (d == VEIL_ENOTFOUND)
		printf("state:       unknown to the directory\n");
	else
		printf("state:       not known now (cannot reach the directory: %s)\n",
		       veil_dir_errmsg()[0] ? veil_dir_errmsg() : veil_strerror(d));
out:
	veil_msgr_close(&m);
	return rc;
}

int cli_contact_verify(int argc, char **argv)
{
	const char *scan = NULL, *idarg = NULL;
	uint8_t id[VEIL_ID_LEN], sid[VEIL_ID_LEN], spk[VEIL_KEY_LEN];
	for (int i = 1; i < argc; i++) {
		int r = cli_opt(argc, argv, &i, "scan", &scan);
		if (r < 0)
			return cli_usage_err("contact", "--scan needs the scanned text");
		if (r > 0)
			continue;
		if (idarg != NULL)
			return cli_usage_err("contact", "unexpected argument");
		idarg = argv[i];
	}
	if (idarg == NULL || scan == NULL)
		return cli_usage_err("contact", "contact verify needs ID and --scan TEXT");
	if (cli_parse_id(id, idarg) != 0)
		return 2;
	if (veil_contacts_qr_parse(scan, sid, spk) != 0)
		return cli_err("the scanned text is not a Veil/Threema contact code (3mid:ID,KEY)");
	if (memcmp(sid, id, VEIL_ID_LEN) != 0)
		return cli_err("the scanned code belongs to %.8s, not %.8s", (const char *)sid,
		               (const char *)id);
	struct veil_msgr m;
	struct veil_contact c;
	int rc = 0;
	if (cli_open(&m) != 0)
		return 1;
	int g = veil_profile_contact_get(&m.prof, id, &c);
	if (g == VEIL_ENOTFOUND) {
		/* Not yet a contact: take the key from the directory and compare. */
		g = veil_msgr_contact_add(&m, id, NULL, &c);
		if (g != 0) {
			rc = cli_err("%s", m.errtext);
			goto out;
		}
	} else if (g != 0) {
		rc = cli_err("cannot read the contact");
		goto out;
	}
	if (veil_memcmp(c.pk, spk, VEIL_KEY_LEN) != 0) {
		rc = cli_err("KEY MISMATCH: the scanned key of %.8s differs from the stored one; "
		             "this contact is NOT verified",
		             (const char *)id);
		goto out;
	}
	if (veil_contacts_level_raise(&m.prof, id, VEIL_LEVEL_GREEN, "qr") != 0) {
		rc = cli_err("cannot store the level");
		goto out;
	}
	printf("%.8s green\n", (const char *)id);
	cli_sync_contact(&m, id, 0);
out:
	veil_msgr_close(&m);
	return rc;
}

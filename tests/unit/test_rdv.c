/* The Connection Rendezvous Protocol and the device join link (lib/md/rendezvous.c). */
#include <sodium.h>

#include "t.h"
#include "veil/crypto.h"
#include "veil/err.h"
#include "veil/rendezvous.h"

#define BASE "ws://127.0.0.1:8080/rendezvous/"

static void test_rdv_kdf_vectors(void)
{
	/*
	 * AK = 00..1f and shared ETK = 40..5f; the expected values were computed
	 * with Python's hashlib.blake2b (key, salt, person) from the formulas of
	 * md-d2d-rendezvous.proto, an implementation independent of ours.
	 */
	uint8_t ak[32], shared[32], ida[32], rda[32], idt[32], rdt[32], rph[32], want[32];
	for (int i = 0; i < 32; i++) {
		ak[i] = (uint8_t)i;
		shared[i] = (uint8_t)(0x40 + i);
	}
	CHECK_RC(veil_rdv_derive(ak, shared, ida, rda, idt, rdt, rph), 0);
	t_hex(want, 32, "f8196bbd6288396abba7808af38a7bfb51de9f6ddaf177bca16fb101e73208be");
	CHECK_MEM(ida, want, 32);
	t_hex(want, 32, "ac2f579056bee8bab36f865b45f0943065badd7a7480714afa996138083666c6");
	CHECK_MEM(rda, want, 32);
	t_hex(want, 32, "2276c53f2139104887efb679e438a44b9da4aff0795ea60887025c964fa35ee3");
	CHECK_MEM(idt, want, 32);
	t_hex(want, 32, "b8346bf7459e79bd2fd0f1bd24d5d368589df977daaa10d07e9e6dcb6d2f9f4b");
	CHECK_MEM(rdt, want, 32);
	t_hex(want, 32, "a9e43507b404a4b10b8901e72d4a02fdbeb3c514fcb9a1e4ac5f09d2b8bbe1c0");
	CHECK_MEM(rph, want, 32);
	char s[VEIL_RDV_RPH_SHORT_LEN];
	veil_rdv_rph_short(s, rph);
	CHECK(strcmp(s, "a9-e4-35") == 0);
}

/* RRD's Hello opens under RRDAK with nonce u32-le(PID) || u32-le(1) || 0000. */
static void test_rdv_hello_layout(void)
{
	struct veil_rdv_init init;
	struct veil_rdv r;
	struct veil_buf out;
	uint8_t ida[32], rda[32], nonce[12] = {0}, plain[128];
	unsigned long long pl = 0;
	CHECK_RC(veil_rdv_init_new(&init, BASE), 0);
	init.path_id = 0x04030201;
	veil_buf_init(&out, 1 << 16);
	CHECK_RC(veil_rdv_start(&r, VEIL_RDV_RRD, 1, &init, &out), 0);
	CHECK_RC(veil_rdv_derive(init.ak, NULL, ida, rda, ida, rda, plain), 0);
	CHECK(out.len > 4 + 16);
	size_t cl = out.p[0] | (size_t)out.p[1] << 8 | (size_t)out.p[2] << 16;
	CHECK(out.p[3] == 0 && cl == out.len - 4 && cl - 16 < sizeof plain);
	nonce[0] = 1, nonce[1] = 2, nonce[2] = 3, nonce[3] = 4, nonce[4] = 1;
	CHECK(crypto_aead_chacha20poly1305_ietf_decrypt(plain, &pl, NULL, out.p + 4, cl, NULL, 0,
	                                                nonce, rda) == 0);
	/* Hello: field 1 (challenge, 16 bytes) and field 2 (etk, 32 bytes). */
	CHECK(pl == 2 + 16 + 2 + 32 && plain[0] == 0x0a && plain[1] == 16 && plain[18] == 0x12 &&
	      plain[19] == 32);
	veil_rdv_release(&r);
	veil_buf_release(&out);
}

static void test_rdv_link(void)
{
	struct veil_rdv_init a, b;
	enum veil_rdv_variant v;
	uint32_t d2d;
	char link[VEIL_RDV_LINK_MAX + 1], path[VEIL_RDV_PATH_HEX_LEN + 1];
	CHECK_RC(veil_rdv_init_new(&a, BASE), 0);
	CHECK(strncmp(a.url, BASE, strlen(BASE)) == 0 &&
	      strlen(a.url) == strlen(BASE) + VEIL_RDV_PATH_HEX_LEN);
	CHECK_RC(veil_rdv_url_path(path, a.url), 0);
	CHECK(strcmp(path, a.url + strlen(BASE)) == 0);
	CHECK_RC(veil_rdv_link_encode(link, sizeof link, &a, VEIL_RDV_OFFER_TO_JOIN, 3), 0);
	CHECK(strncmp(link, "threema://device-group/join#", 28) == 0);
	CHECK_RC(veil_rdv_link_parse(&b, &v, &d2d, link, strlen(link)), 0);
	CHECK(v == VEIL_RDV_OFFER_TO_JOIN && d2d == 3);
	CHECK(b.path_id == a.path_id && strcmp(b.url, a.url) == 0);
	CHECK(sodium_memcmp(b.ak, a.ak, 32) == 0);

	/* Without the padding, and the other variant. */
	CHECK_RC(veil_rdv_link_encode(link, sizeof link, &a, VEIL_RDV_REQUEST_TO_JOIN, 0), 0);
	size_t n = strlen(link);
	while (link[n - 1] == '=')
		link[--n] = '\0';
	CHECK_RC(veil_rdv_link_parse(&b, &v, &d2d, link, n), 0);
	CHECK(v == VEIL_RDV_REQUEST_TO_JOIN && d2d == 0);

	/* Wrong forms. */
	CHECK_RC(veil_rdv_link_parse(&b, &v, &d2d, "threema://device-group/join#", 28),
	         VEIL_EPROTO);
	CHECK_RC(veil_rdv_link_parse(&b, &v, &d2d, "threema://group/join#AAAA", 25), VEIL_EPROTO);
	link[30] = '*';
	CHECK_RC(veil_rdv_link_parse(&b, &v, &d2d, link, n), VEIL_EPROTO);
	CHECK(v == 0);
	char big[VEIL_RDV_LINK_MAX + 2];
	memset(big, 'A', sizeof big);
	CHECK_RC(veil_rdv_link_parse(&b, &v, &d2d, big, sizeof big), VEIL_ELIMIT);
	CHECK_RC(veil_rdv_link_encode(link, 40, &a, VEIL_RDV_OFFER_TO_JOIN, 0), VEIL_ELIMIT);

	/* Relay base URLs. */
	CHECK_RC(veil_rdv_init_new(&b, "http://x/rendezvous/"), VEIL_EINVAL);
	CHECK_RC(veil_rdv_init_new(&b, "ws://x/rendezvous"), VEIL_EINVAL);
	CHECK_RC(veil_rdv_init_new(&b, "wss://x/a?b/"), VEIL_EINVAL);
	CHECK_RC(veil_rdv_url_path(path, "ws://x/rendezvous/abc"), VEIL_EPROTO);

	/* A bare RendezvousInit: encode, parse; an AK of the wrong length. */
	struct veil_buf pb;
	veil_buf_init(&pb, 4096);
	CHECK_RC(veil_rdv_init_encode(&pb, &a), 0);
	CHECK_RC(veil_rdv_init_parse(&b, pb.p, pb.len), 0);
	CHECK(b.path_id == a.path_id && strcmp(b.url, a.url) == 0);
	CHECK(pb.p[0] == 0x12 && pb.p[1] == 32); /* field 2, ak (version 0 is not sent) */
	pb.p[1] = 31;
	CHECK(veil_rdv_init_parse(&b, pb.p, pb.len) < 0);
	veil_buf_release(&pb);
	veil_rdv_init_wipe(&a);
	veil_rdv_init_wipe(&b);
}

/* Two sides of one path in memory. */
struct pair {
	struct veil_rdv rid, rrd;
	struct veil_buf to_rid, to_rrd, data;
};

static void pair_release(struct pair *p)
{
	veil_rdv_release(&p->rid);
	veil_rdv_release(&p->rrd);
	veil_buf_release(&p->to_rid);
	veil_buf_release(&p->to_rrd);
	veil_buf_release(&p->data);
}

/*
 * Moves what src has queued into dst's receive buffer, in pieces of at most
 * chunk bytes, and runs dst until it needs more. Returns the last event or
 * the first error; *ev_seen collects a bit per event.
 */
static int deliver(struct veil_rdv *dst, struct veil_buf *q, struct veil_buf *reply,
                   struct veil_buf *data, size_t chunk, unsigned *ev_seen)
{
	int ev = 0;
	size_t off = 0;
	while (off < q->len) {
		size_t n = q->len - off < chunk ? q->len - off : chunk;
		int rc = veil_rdv_feed(dst, q->p + off, n);
		if (rc != 0)
			return rc;
		off += n;
		while ((ev = veil_rdv_next(dst, reply, data)) > 0)
			*ev_seen |= 1u << ev;
		if (ev < 0)
			return ev;
	}
	veil_buf_reset(q);
	return 0;
}

static int pair_handshake(struct pair *p, int rid_nominates, size_t chunk)
{
	struct veil_rdv_init init;
	unsigned rid_ev = 0, rrd_ev = 0;
	int rc;
	memset(p, 0, sizeof *p);
	veil_buf_init(&p->to_rid, 32u << 20);
	veil_buf_init(&p->to_rrd, 32u << 20);
	veil_buf_init(&p->data, VEIL_RDV_FRAME_MAX);
	if ((rc = veil_rdv_init_new(&init, BASE)) != 0)
		return rc;
	if ((rc = veil_rdv_start(&p->rid, VEIL_RDV_RID, rid_nominates, &init, &p->to_rrd)) != 0 ||
	    (rc = veil_rdv_start(&p->rrd, VEIL_RDV_RRD, !rid_nominates, &init, &p->to_rid)) != 0)
		return rc;
	veil_rdv_init_wipe(&init);
	if (p->to_rrd.len != 0)
		return -100; /* RID sends nothing first */
	/* Hello, AuthHello, Auth. */
	if ((rc = deliver(&p->rid, &p->to_rid, &p->to_rrd, &p->data, chunk, &rid_ev)) != 0 ||
	    (rc = deliver(&p->rrd, &p->to_rrd, &p->to_rid, &p->data, chunk, &rrd_ev)) != 0 ||
	    (rc = deliver(&p->rid, &p->to_rid, &p->to_rrd, &p->data, chunk, &rid_ev)) != 0)
		return rc;
	if (!(rid_ev & (1u << VEIL_RDV_EV_AUTHENTICATED)) ||
	    !(rrd_ev & (1u << VEIL_RDV_EV_AUTHENTICATED)))
		return -101;
	if (rid_nominates) {
		if ((rc = veil_rdv_nominate(&p->rid, &p->to_rrd)) != 0 ||
		    (rc = deliver(&p->rrd, &p->to_rrd, &p->to_rid, &p->data, chunk, &rrd_ev)) != 0)
			return rc;
		return rrd_ev & (1u << VEIL_RDV_EV_NOMINATED) ? 0 : -102;
	}
	if ((rc = veil_rdv_nominate(&p->rrd, &p->to_rid)) != 0 ||
	    (rc = deliver(&p->rid, &p->to_rid, &p->to_rrd, &p->data, chunk, &rid_ev)) != 0)
		return rc;
	return rid_ev & (1u << VEIL_RDV_EV_NOMINATED) ? 0 : -102;
}

static void test_rdv_both_roles(void)
{
	for (int nom = 0; nom < 2; nom++) {
		struct pair p;
		uint8_t a[32], b[32];
		size_t chunk = nom ? 1 : VEIL_RDV_WS_MESSAGE_MAX; /* also a byte at a time */
		CHECK_RC(pair_handshake(&p, nom, chunk), 0);
		CHECK(p.rid.state == VEIL_RDV_S_NOMINATED && p.rrd.state == VEIL_RDV_S_NOMINATED);
		CHECK_RC(veil_rdv_rph(&p.rid, a), 0);
		CHECK_RC(veil_rdv_rph(&p.rrd, b), 0);
		CHECK_MEM(a, b, 32);

		/* ULP data both ways: two small messages, one of 200 KiB, an empty one. */
		CHECK_RC(veil_rdv_seal(&p.rid, (const uint8_t *)"one", 3, &p.to_rrd), 0);
		CHECK_RC(veil_rdv_feed(&p.rrd, p.to_rrd.p, p.to_rrd.len), 0);
		CHECK_RC(veil_rdv_next(&p.rrd, &p.to_rid, &p.data), VEIL_RDV_EV_DATA);
		CHECK(p.data.len == 3 && memcmp(p.data.p, "one", 3) == 0);
		CHECK_RC(veil_rdv_next(&p.rrd, &p.to_rid, &p.data), VEIL_RDV_EV_NONE);
		veil_buf_reset(&p.to_rrd);

		size_t big = 200 * 1024;
		uint8_t *m = malloc(big);
		CHECK(m != NULL);
		veil_random(m, big);
		int rc = veil_rdv_seal(&p.rrd, m, big, &p.to_rid);
		if (rc == 0)
			rc = veil_rdv_seal(&p.rrd, m, 0, &p.to_rid);
		if (rc == 0) {
			/* Both frames in one delivery of 64 KiB pieces: two DATA events. */
			size_t off = 0;
			int got = 0;
			while (rc == 0 && off < p.to_rid.len) {
				size_t n = p.to_rid.len - off;
				n = n > VEIL_RDV_WS_MESSAGE_MAX ? VEIL_RDV_WS_MESSAGE_MAX : n;
				rc = veil_rdv_feed(&p.rid, p.to_rid.p + off, n);
				off += n;
				int e;
				while (rc == 0 &&
				       (e = veil_rdv_next(&p.rid, &p.to_rrd, &p.data)) != 0) {
					if (e != VEIL_RDV_EV_DATA) {
						rc = -1;
						break;
					}
					if (got == 0 &&
					    (p.data.len != big || memcmp(p.data.p, m, big) != 0))
						rc = -2;
					if (got == 1 && p.data.len != 0)
						rc = -3;
					got++;
				}
			}
			if (rc == 0 && got != 2)
				rc = -4;
		}
		free(m);
		CHECK_RC(rc, 0);
		pair_release(&p);
	}
}

static void test_rdv_wrong_ak(void)
{
	struct veil_rdv_init i1, i2;
	struct veil_rdv rid, rrd;
	struct veil_buf q, out, data;
	veil_buf_init(&q, 1 << 16);
	veil_buf_init(&out, 1 << 16);
	veil_buf_init(&data, 1 << 16);
	CHECK_RC(veil_rdv_init_new(&i1, BASE), 0);
	i2 = i1;
	i2.ak[0] ^= 1;
	CHECK_RC(veil_rdv_start(&rid, VEIL_RDV_RID, 1, &i1, &out), 0);
	CHECK_RC(veil_rdv_start(&rrd, VEIL_RDV_RRD, 0, &i2, &q), 0);
	CHECK_RC(veil_rdv_feed(&rid, q.p, q.len), 0);
	CHECK_RC(veil_rdv_next(&rid, &out, &data), VEIL_ECRYPTO);
	CHECK(rid.state == VEIL_RDV_S_FAILED && out.len == 0);
	/* Failed for good. */
	CHECK_RC(veil_rdv_feed(&rid, q.p, q.len), VEIL_EPROTO);
	CHECK_RC(veil_rdv_next(&rid, &out, &data), VEIL_EPROTO);
	veil_rdv_release(&rid);
	veil_rdv_release(&rrd);

	/* Another path ID under the same AK: the nonce differs, nothing opens. */
	i2 = i1;
	i2.path_id ^= 1;
	veil_buf_reset(&q);
	CHECK_RC(veil_rdv_start(&rid, VEIL_RDV_RID, 1, &i1, &out), 0);
	CHECK_RC(veil_rdv_start(&rrd, VEIL_RDV_RRD, 0, &i2, &q), 0);
	CHECK_RC(veil_rdv_feed(&rid, q.p, q.len), 0);
	CHECK_RC(veil_rdv_next(&rid, &out, &data), VEIL_ECRYPTO);
	veil_rdv_release(&rid);
	veil_rdv_release(&rrd);
	veil_buf_release(&q);
	veil_buf_release(&out);
	veil_buf_release(&data);
}

static void test_rdv_tamper_replay(void)
{
	struct veil_rdv_init init;
	struct veil_rdv rid, rrd;
	struct veil_buf q1, q2, data;
	veil_buf_init(&q1, 1 << 16);
	veil_buf_init(&q2, 1 << 16);
	veil_buf_init(&data, 1 << 16);
	CHECK_RC(veil_rdv_init_new(&init, BASE), 0);

	/* A flipped bit in AuthHello. */
	CHECK_RC(veil_rdv_start(&rid, VEIL_RDV_RID, 1, &init, &q2), 0);
	CHECK_RC(veil_rdv_start(&rrd, VEIL_RDV_RRD, 0, &init, &q1), 0);
	CHECK_RC(veil_rdv_feed(&rid, q1.p, q1.len), 0);
	CHECK_RC(veil_rdv_next(&rid, &q2, &data), VEIL_RDV_EV_PROGRESS);
	q2.p[q2.len - 1] ^= 0x80;
	CHECK_RC(veil_rdv_feed(&rrd, q2.p, q2.len), 0);
	CHECK_RC(veil_rdv_next(&rrd, &q1, &data), VEIL_ECRYPTO);
	veil_rdv_release(&rid);
	veil_rdv_release(&rrd);

	/* The Hello replayed to RID where it expects Auth. */
	veil_buf_reset(&q1);
	veil_buf_reset(&q2);
	CHECK_RC(veil_rdv_start(&rid, VEIL_RDV_RID, 1, &init, &q2), 0);
	CHECK_RC(veil_rdv_start(&rrd, VEIL_RDV_RRD, 0, &init, &q1), 0);
	CHECK_RC(veil_rdv_feed(&rid, q1.p, q1.len), 0);
	CHECK_RC(veil_rdv_feed(&rid, q1.p, q1.len), 0);
	CHECK_RC(veil_rdv_next(&rid, &q2, &data), VEIL_RDV_EV_PROGRESS);
	CHECK_RC(veil_rdv_next(&rid, &q2, &data), VEIL_ECRYPTO);
	veil_rdv_release(&rid);
	veil_rdv_release(&rrd);

	/* A frame header over the handshake limit; one shorter than a tag. */
	uint8_t hdr[4] = {0x01, 0x40, 0x00, 0x00}; /* 16385 */
	veil_buf_reset(&q2);
	CHECK_RC(veil_rdv_start(&rid, VEIL_RDV_RID, 1, &init, &q2), 0);
	CHECK_RC(veil_rdv_feed(&rid, hdr, 4), 0);
	CHECK_RC(veil_rdv_next(&rid, &q2, &data), VEIL_EPROTO);
	veil_rdv_release(&rid);
	hdr[0] = 15, hdr[1] = 0;
	CHECK_RC(veil_rdv_start(&rid, VEIL_RDV_RID, 1, &init, &q2), 0);
	CHECK_RC(veil_rdv_feed(&rid, hdr, 4), 0);
	CHECK_RC(veil_rdv_next(&rid, &q2, &data), VEIL_EPROTO);
	/* Before nomination: no ULP, no RPH, no nominating while unauthenticated. */
	uint8_t rph[32];
	CHECK_RC(veil_rdv_seal(&rid, hdr, 4, &q2), VEIL_EINVAL);
	CHECK_RC(veil_rdv_rph(&rid, rph), VEIL_EINVAL);
	CHECK_RC(veil_rdv_nominate(&rid, &q2), VEIL_EINVAL);
	veil_rdv_release(&rid);
	veil_rdv_init_wipe(&init);
	veil_buf_release(&q1);
	veil_buf_release(&q2);
	veil_buf_release(&data);

	/* After nomination: a replayed ULP frame and a dropped one. */
	struct pair p;
	CHECK_RC(pair_handshake(&p, 1, 100), 0);
	CHECK_RC(veil_rdv_seal(&p.rid, (const uint8_t *)"x", 1, &p.to_rrd), 0);
	CHECK_RC(veil_rdv_feed(&p.rrd, p.to_rrd.p, p.to_rrd.len), 0);
	CHECK_RC(veil_rdv_feed(&p.rrd, p.to_rrd.p, p.to_rrd.len), 0);
	CHECK_RC(veil_rdv_next(&p.rrd, &p.to_rid, &p.data), VEIL_RDV_EV_DATA);
	CHECK_RC(veil_rdv_next(&p.rrd, &p.to_rid, &p.data), VEIL_ECRYPTO);
	pair_release(&p);

	CHECK_RC(pair_handshake(&p, 1, 100), 0);
	CHECK_RC(veil_rdv_seal(&p.rid, (const uint8_t *)"y", 1, &p.to_rid), 0); /* never sent */
	CHECK_RC(veil_rdv_seal(&p.rid, (const uint8_t *)"z", 1, &p.to_rrd), 0);
	CHECK_RC(veil_rdv_feed(&p.rrd, p.to_rrd.p, p.to_rrd.len), 0);
	CHECK_RC(veil_rdv_next(&p.rrd, &p.to_rid, &p.data), VEIL_ECRYPTO);
	pair_release(&p);
}

/* Both sides think they nominate: a Nominate from the peer is a protocol error. */
static void test_rdv_nominate_roles(void)
{
	struct veil_rdv_init init;
	struct veil_rdv rid, rrd;
	struct veil_buf q1, q2, data;
	veil_buf_init(&q1, 1 << 16);
	veil_buf_init(&q2, 1 << 16);
	veil_buf_init(&data, 1 << 16);
	CHECK_RC(veil_rdv_init_new(&init, BASE), 0);
	CHECK_RC(veil_rdv_start(&rid, VEIL_RDV_RID, 1, &init, &q2), 0);
	CHECK_RC(veil_rdv_start(&rrd, VEIL_RDV_RRD, 1, &init, &q1), 0);
	CHECK_RC(veil_rdv_feed(&rid, q1.p, q1.len), 0);
	veil_buf_reset(&q1);
	CHECK_RC(veil_rdv_next(&rid, &q2, &data), VEIL_RDV_EV_PROGRESS);
	CHECK_RC(veil_rdv_feed(&rrd, q2.p, q2.len), 0);
	veil_buf_reset(&q2);
	CHECK_RC(veil_rdv_next(&rrd, &q1, &data), VEIL_RDV_EV_AUTHENTICATED);
	CHECK_RC(veil_rdv_nominate(&rrd, &q1), 0);
	CHECK_RC(veil_rdv_feed(&rid, q1.p, q1.len), 0);
	CHECK_RC(veil_rdv_next(&rid, &q2, &data), VEIL_RDV_EV_AUTHENTICATED);
	CHECK_RC(veil_rdv_next(&rid, &q2, &data), VEIL_EPROTO);
	veil_rdv_release(&rid);
	veil_rdv_release(&rrd);
	veil_rdv_init_wipe(&init);
	veil_buf_release(&q1);
	veil_buf_release(&q2);
	veil_buf_release(&data);
}

T_MAIN_BEGIN
RUN(test_rdv_kdf_vectors);
RUN(test_rdv_hello_layout);
RUN(test_rdv_link);
RUN(test_rdv_both_roles);
RUN(test_rdv_wrong_ak);
RUN(test_rdv_tamper_replay);
RUN(test_rdv_nominate_roles);
T_MAIN_END

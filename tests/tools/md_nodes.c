/*
 * The mediator across two veild nodes on one PostgreSQL store (driven by
 * tests/it/pg_shared.sh and tests/it/pg_md_failover.sh, which start
 * PostgreSQL and the nodes). Prints PASS/FAIL per test.
 *
 * md_nodes HTTP_PORT_A HTTP_PORT_B: one device group with devices 1 and 2
 * on node A and device 3 on node B.
 *
 * md_nodes failover HTTP_PORT_A HTTP_PORT_B PID_A LISTEN_OFF LOCKS_OFF ON:
 * device 1 on node A, devices 3 and 4 on node B. LISTEN_OFF is a shell
 * command that ends the nodes' LISTEN connections and keeps them from
 * reconnecting, LOCKS_OFF does so for the connection holding the advisory
 * locks (node A's, as only A holds any then), ON lets them back; node A
 * (PID_A, started by the script) is killed with SIGKILL at the end.
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/types.h>

#include "../it/ws_client.h"
#include "veil/md.h"

static uint16_t port_a, port_b;
static pid_t pid_a;
/* The failover tests' devices log in to CSP through the proxy (else the chat closes them after 10 s). */
static struct it_user user;
static uint8_t csp_pk[32];
static const char *listen_off, *locks_off, *conn_on;

struct dev {
	int fd;
	uint64_t did;
	const struct veil_md_keys *k;
	struct veil_md_server_info si;
	uint8_t msg[VEIL_MD_MAX_MESSAGE];
	size_t len;
	uint8_t type;
	const uint8_t *pl;
	size_t pn;
	struct veil_csp_client hs;
};

struct group {
	struct veil_md_keys k;
	char path[256];
};

static struct group g;
static struct dev d1, d2, d3, d4;

static void group_new(struct group *gr)
{
	uint8_t dgk[VEIL_MD_DGK_LEN];
	char hex[VEIL_MD_URL_INFO_HEX_MAX];
	randombytes_buf(dgk, sizeof dgk);
	if (veil_md_keys_derive(&gr->k, dgk) != 0 ||
	    veil_md_url_info_encode(hex, sizeof hex, gr->k.group_id, "a1") != 0)
		abort();
	snprintf(gr->path, sizeof gr->path, "/mediator/%s", hex);
}

/* Next message: 0, a close code (> 0) or a negative veil_err. */
static int dev_next(struct dev *d, int timeout_ms)
{
	int rc = it_ws_recv(d->fd, d->msg, sizeof d->msg, &d->len, timeout_ms);
	if (rc != 0)
		return rc;
	if (veil_md_container_parse(d->msg, d->len, &d->type, &d->pl, &d->pn) != 0)
		return VEIL_EPROTO;
	return 0;
}

static int dev_expect(struct dev *d, uint8_t type, int timeout_ms)
{
	for (;;) {
		int rc = dev_next(d, timeout_ms);
		if (rc != 0 || d->type == type)
			return rc;
	}
}

/* Nothing arrives for ms: 0, else 1. */
static int dev_quiet(struct dev *d, int ms)
{
	return dev_next(d, ms) == VEIL_ETIMEOUT ? 0 : 1;
}

static int dev_send(struct dev *d, uint8_t type, const uint8_t *p, size_t n)
{
	struct veil_buf b;
	veil_buf_init(&b, VEIL_MD_MAX_MESSAGE);
	int rc = veil_md_container_encode(&b, type, p, n);
	if (rc == 0)
		rc = it_ws_send(d->fd, b.p, b.len);
	veil_buf_release(&b);
	return rc;
}

static void dev_close(struct dev *d)
{
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
}

/* Connects device did to the node at port: 0 once ServerInfo is in, a close code, or < 0. */
static int dev_connect(struct dev *d, uint16_t port, uint64_t did, int expect)
{
	memset(d, 0, sizeof *d);
	d->did = did;
	d->k = &g.k;
	d->fd = it_ws_connect(port, g.path);
	if (d->fd < 0)
		return VEIL_EIO;
	int rc = dev_next(d, 5000);
	if (rc != 0)
		return rc;
	struct veil_md_server_hello sh;
	if (d->type != VEIL_MD_SERVER_HELLO || veil_md_server_hello_parse(&sh, d->pl, d->pn) != 0)
		return VEIL_EPROTO;
	struct veil_md_client_hello ch = {.device_id = did,
	                                  .slots_exhausted_policy = VEIL_MD_SLOTS_REJECT,
	                                  .slot_expiration_policy = VEIL_MD_SLOT_PERSISTENT,
	                                  .expected_slot_state = expect};
	struct veil_md_device_info info = {.platform = VEIL_MD_PLATFORM_DESKTOP};
	snprintf(info.label, sizeof info.label, "node device %llu", (unsigned long long)did);
	struct veil_buf b;
	veil_buf_init(&b, VEIL_MD_MAX_MESSAGE);
	rc = veil_md_client_hello_make(&b, &ch, &g.k, &sh, &info);
	if (rc == 0)
		rc = it_ws_send(d->fd, b.p, b.len);
	veil_buf_release(&b);
	if (rc != 0)
		return rc;
	if ((rc = dev_next(d, 5000)) != 0)
		return rc;
	if (d->type != VEIL_MD_SERVER_INFO || veil_md_server_info_parse(&d->si, d->pl, d->pn) != 0)
		return VEIL_EPROTO;
	return 0;
}

/* Connects and reads up to the dry; *leader = 1 if the promotion follows. */
static int dev_online(struct dev *d, uint16_t port, uint64_t did, int expect, int *leader)
{
	int rc = dev_connect(d, port, did, expect);
	if (rc != 0)
		return rc;
	if ((rc = dev_expect(d, VEIL_MD_REFLECTION_QUEUE_DRY, 5000)) != 0)
		return rc;
	if (leader != NULL) {
		rc = dev_next(d, 500);
		*leader = rc == 0 && d->type == VEIL_MD_ROLE_PROMOTED_TO_LEADER;
	}
	return 0;
}

static int reflect(struct dev *d, uint32_t id, const uint8_t *env, size_t n)
{
	struct veil_buf b;
	veil_buf_init(&b, VEIL_MD_MAX_MESSAGE);
	int rc = veil_md_reflect_encode(&b, 0, id, env, n);
	if (rc == 0)
		rc = it_ws_send(d->fd, b.p, b.len);
	veil_buf_release(&b);
	return rc;
}

/* Expects the reflect's ack carrying id. */
static int expect_ack(struct dev *d, uint32_t id)
{
	struct veil_md_reflect r;
	if (dev_expect(d, VEIL_MD_REFLECT_ACK, 5000) != 0 ||
	    veil_md_reflect_ack_parse(&r, d->pl, d->pn) != 0)
		return -1;
	return r.id == id ? 0 : -1;
}

/* Expects a reflected message carrying env within ms and acks it. */
static int expect_reflected_in(struct dev *d, const uint8_t *env, size_t n, int ms)
{
	struct veil_md_reflect r;
	struct veil_buf b;
	if (dev_expect(d, VEIL_MD_REFLECTED, ms) != 0 ||
	    veil_md_reflected_parse(&r, d->pl, d->pn) != 0)
		return -1;
	if (r.envelope_len != n || memcmp(r.envelope, env, n) != 0)
		return -1;
	veil_buf_init(&b, 64);
	int rc = veil_md_reflected_ack_encode(&b, r.id);
	if (rc == 0)
		rc = it_ws_send(d->fd, b.p, b.len);
	veil_buf_release(&b);
	return rc;
}

static int expect_reflected(struct dev *d, const uint8_t *env, size_t n)
{
	return expect_reflected_in(d, env, n, 5000);
}

static int begin_tx(struct dev *d, int scope)
{
	struct veil_buf sc, b;
	veil_buf_init(&sc, VEIL_MD_SCOPE_MAX);
	veil_buf_init(&b, VEIL_MD_MAX_MESSAGE);
	int rc = veil_md_scope_seal(&sc, d->k, scope);
	if (rc == 0)
		rc = veil_md_begin_tx_encode(&b, sc.p, sc.len, 30);
	if (rc == 0)
		rc = it_ws_send(d->fd, b.p, b.len);
	veil_buf_release(&sc);
	veil_buf_release(&b);
	return rc;
}

/* Expects TransactionRejected / TransactionEnded naming device did and scope. */
static int expect_tx_info(struct dev *d, uint8_t type, uint64_t did, int scope)
{
	static struct veil_md_tx t;
	int sc;
	if (dev_expect(d, type, 5000) != 0 || veil_md_tx_info_parse(&t, d->pl, d->pn) != 0)
		return -1;
	if (t.device_id != did || veil_md_scope_open(&sc, d->k, t.scope, t.scope_len) != 0)
		return -1;
	return sc == scope ? 0 : -1;
}

/* Devices 1 and 2 on A, 3 on B: one leader, reflects reach the others both ways. */
static int t_reflect_across_nodes(void)
{
	int l1, l2, l3;
	uint8_t e1[120], e3[90];
	group_new(&g);
	IT_CHECK(dev_online(&d1, port_a, 1, VEIL_MD_SLOT_NEW, &l1) == 0);
	IT_CHECK(dev_online(&d2, port_a, 2, VEIL_MD_SLOT_NEW, &l2) == 0);
	IT_CHECK(dev_online(&d3, port_b, 3, VEIL_MD_SLOT_NEW, &l3) == 0);
	IT_CHECK(l1 == 1 && l2 == 0 && l3 == 0);
	randombytes_buf(e3, sizeof e3);
	IT_CHECK(reflect(&d3, 31, e3, sizeof e3) == 0 && expect_ack(&d3, 31) == 0);
	IT_CHECK(expect_reflected(&d1, e3, sizeof e3) == 0);
	IT_CHECK(expect_reflected(&d2, e3, sizeof e3) == 0);
	randombytes_buf(e1, sizeof e1);
	IT_CHECK(reflect(&d1, 11, e1, sizeof e1) == 0 && expect_ack(&d1, 11) == 0);
	IT_CHECK(expect_reflected(&d2, e1, sizeof e1) == 0);
	IT_CHECK(expect_reflected(&d3, e1, sizeof e1) == 0);
	/* No copies, no second leader anywhere. */
	IT_CHECK(dev_quiet(&d1, 300) == 0 && dev_quiet(&d2, 100) == 0 && dev_quiet(&d3, 100) == 0);
	return 0;
}

/* The leader's node loses its devices: the device on the other node is promoted. */
static int t_leader_moves_across_nodes(void)
{
	int l1, l2;
	dev_close(&d1);
	IT_CHECK(dev_expect(&d2, VEIL_MD_ROLE_PROMOTED_TO_LEADER, 5000) == 0);
	IT_CHECK(dev_quiet(&d3, 300) == 0);
	dev_close(&d2);
	IT_CHECK(dev_expect(&d3, VEIL_MD_ROLE_PROMOTED_TO_LEADER, 5000) == 0);
	/* Back on A: dry, but B's device keeps leading. */
	IT_CHECK(dev_online(&d1, port_a, 1, VEIL_MD_SLOT_EXISTING, &l1) == 0 && l1 == 0);
	IT_CHECK(dev_online(&d2, port_a, 2, VEIL_MD_SLOT_EXISTING, &l2) == 0 && l2 == 0);
	return 0;
}

/* A transaction on A: B's device is rejected, then gets the commit and TransactionEnded. */
static int t_tx_across_nodes(void)
{
	uint8_t env[150];
	IT_CHECK(begin_tx(&d1, 2) == 0);
	IT_CHECK(dev_expect(&d1, VEIL_MD_BEGIN_TRANSACTION_ACK, 5000) == 0);
	IT_CHECK(begin_tx(&d3, 5) == 0);
	IT_CHECK(expect_tx_info(&d3, VEIL_MD_TRANSACTION_REJECTED, 1, 2) == 0);
	randombytes_buf(env, sizeof env);
	IT_CHECK(reflect(&d1, 12, env, sizeof env) == 0 && expect_ack(&d1, 12) == 0);
	IT_CHECK(dev_quiet(&d3, 300) == 0);
	IT_CHECK(dev_send(&d1, VEIL_MD_COMMIT_TRANSACTION, NULL, 0) == 0);
	IT_CHECK(dev_expect(&d1, VEIL_MD_COMMIT_TRANSACTION_ACK, 5000) == 0);
	IT_CHECK(expect_reflected(&d3, env, sizeof env) == 0);
	IT_CHECK(expect_tx_info(&d3, VEIL_MD_TRANSACTION_ENDED, 1, 2) == 0);
	IT_CHECK(expect_reflected(&d2, env, sizeof env) == 0);
	IT_CHECK(expect_tx_info(&d2, VEIL_MD_TRANSACTION_ENDED, 1, 2) == 0);
	/* Free again: B's device takes it, A's devices are rejected and then told. */
	IT_CHECK(begin_tx(&d3, 5) == 0);
	IT_CHECK(dev_expect(&d3, VEIL_MD_BEGIN_TRANSACTION_ACK, 5000) == 0);
	IT_CHECK(begin_tx(&d2, 6) == 0);
	IT_CHECK(expect_tx_info(&d2, VEIL_MD_TRANSACTION_REJECTED, 3, 5) == 0);
	IT_CHECK(dev_send(&d3, VEIL_MD_COMMIT_TRANSACTION, NULL, 0) == 0);
	IT_CHECK(dev_expect(&d3, VEIL_MD_COMMIT_TRANSACTION_ACK, 5000) == 0);
	IT_CHECK(expect_tx_info(&d1, VEIL_MD_TRANSACTION_ENDED, 3, 5) == 0);
	IT_CHECK(expect_tx_info(&d2, VEIL_MD_TRANSACTION_ENDED, 3, 5) == 0);
	return 0;
}

/* A device's newer connection on the other node closes the older one (4112). */
static int t_duplicate_across_nodes(void)
{
	struct dev x;
	IT_CHECK(dev_online(&x, port_b, 2, VEIL_MD_SLOT_EXISTING, NULL) == 0);
	IT_CHECK(dev_expect(&d2, 0xff, 5000) == VEIL_MD_CLOSE_DUPLICATE);
	dev_close(&d2);
	d2 = x;
	return 0;
}

/* Dropping a device connected to the other node closes it there (4113); its slot is gone. */
static int t_drop_across_nodes(void)
{
	struct dev x;
	struct veil_buf buf;
	veil_buf_init(&buf, 64);
	IT_CHECK(veil_md_drop_device_encode(&buf, VEIL_MD_DROP_DEVICE, 3) == 0);
	int rc = it_ws_send(d1.fd, buf.p, buf.len);
	veil_buf_release(&buf);
	IT_CHECK(rc == 0);
	IT_CHECK(dev_expect(&d1, VEIL_MD_DROP_DEVICE_ACK, 5000) == 0);
	IT_CHECK(dev_expect(&d3, 0xff, 5000) == VEIL_MD_CLOSE_DROPPED);
	dev_close(&d3);
	IT_CHECK(dev_connect(&x, port_b, 3, VEIL_MD_SLOT_EXISTING) == VEIL_MD_CLOSE_SLOT_MISMATCH);
	dev_close(&x);
	return 0;
}

/* --- failover: node A dies, node B's listener is lost --- */

/*
 * Logs device d in to CSP as the test's user (through the proxy), so that
 * its chat session outlives the chat's 10 s handshake deadline.
 */
static int dev_csp_login(struct dev *d, uint64_t csp_did)
{
	uint8_t hello[VEIL_CSP_CLIENT_HELLO_LEN];
	veil_csp_client_hello(&d->hs, csp_pk, hello);
	if (dev_send(d, VEIL_MD_PROXY, hello, sizeof hello) != 0)
		return -1;
	if (dev_expect(d, VEIL_MD_PROXY, 5000) != 0 || d->pn != VEIL_CSP_SERVER_HELLO_LEN ||
	    veil_csp_client_server_hello(&d->hs, d->pl) != 0)
		return -2;
	struct veil_buf login;
	veil_buf_init(&login, 8192);
	int rc = veil_csp_client_login(&d->hs, &login, user.id, user.sk, "0.1;B;en/CH;it;md",
	                               csp_did, NULL);
	if (rc == 0)
		rc = dev_send(d, VEIL_MD_PROXY, login.p, login.len);
	veil_buf_release(&login);
	if (rc != 0)
		return -3;
	if (dev_expect(d, VEIL_MD_PROXY, 5000) != 0 || d->pn != VEIL_CSP_LOGIN_ACK_LEN ||
	    veil_csp_client_login_ack(&d->hs, d->pl) != 0)
		return -4;
	return 0;
}

/* dev_online, then the CSP login. */
static int dev_up(struct dev *d, uint16_t port, uint64_t did, int expect, int *leader)
{
	int rc = dev_online(d, port, did, expect, leader);
	return rc != 0 ? rc : dev_csp_login(d, 0xc0de00 + did);
}

/*
 * Node A's connection that holds its group's leadership is lost (and
 * kept from coming back): node B's device is promoted; once node A is back
 * on the database it finds the leadership taken and closes its leader
 * (1011), which reconnects and does not lead.
 */
static int t_leader_lock_lost(void)
{
	int l1, l3;
	group_new(&g);
	IT_CHECK(dev_up(&d1, port_a, 1, VEIL_MD_SLOT_NEW, &l1) == 0);
	IT_CHECK(dev_up(&d3, port_b, 3, VEIL_MD_SLOT_NEW, &l3) == 0);
	IT_CHECK(l1 == 1 && l3 == 0);
	IT_CHECK(system(locks_off) == 0);
	IT_CHECK(dev_expect(&d3, VEIL_MD_ROLE_PROMOTED_TO_LEADER, 30000) == 0);
	IT_CHECK(system(conn_on) == 0);
	IT_CHECK(dev_expect(&d1, 0xff, 30000) == VEIL_MD_CLOSE_INTERNAL);
	dev_close(&d1);
	IT_CHECK(dev_online(&d1, port_a, 1, VEIL_MD_SLOT_EXISTING, &l1) == 0 && l1 == 0);
	IT_CHECK(dev_quiet(&d3, 100) == 0);
	dev_close(&d1);
	dev_close(&d3);
	return 0;
}

/*
 * A reflect made on node A while node B's LISTEN connection is down (so
 * its notification never reaches B) still reaches B's devices once the
 * listener is back.
 */
static int t_reflect_while_listener_lost(void)
{
	int l1, l3, l4;
	uint8_t e1[100];
	group_new(&g);
	IT_CHECK(dev_up(&d1, port_a, 1, VEIL_MD_SLOT_NEW, &l1) == 0);
	IT_CHECK(dev_up(&d3, port_b, 3, VEIL_MD_SLOT_NEW, &l3) == 0);
	IT_CHECK(dev_up(&d4, port_b, 4, VEIL_MD_SLOT_NEW, &l4) == 0);
	IT_CHECK(l1 == 1 && l3 == 0 && l4 == 0);
	IT_CHECK(system(listen_off) == 0);
	randombytes_buf(e1, sizeof e1);
	IT_CHECK(reflect(&d1, 11, e1, sizeof e1) == 0 && expect_ack(&d1, 11) == 0);
	IT_CHECK(system(conn_on) == 0);
	/* The listener retries with a backoff of at most 5 s: a generous bound. */
	IT_CHECK(expect_reflected_in(&d3, e1, sizeof e1, 30000) == 0);
	IT_CHECK(expect_reflected_in(&d4, e1, sizeof e1, 30000) == 0);
	return 0;
}

/* What a device of node B got while waiting: a promotion, the end of device 1's transaction. */
struct seen {
	int promoted, ended;
};

static int watch(struct dev *d, struct seen *s, int ms)
{
	static struct veil_md_tx t;
	int sc;
	int rc = dev_next(d, ms);
	if (rc == VEIL_ETIMEOUT)
		return 0;
	if (rc != 0)
		return -1;
	if (d->type == VEIL_MD_ROLE_PROMOTED_TO_LEADER)
		s->promoted++;
	if (d->type == VEIL_MD_TRANSACTION_ENDED) {
		if (veil_md_tx_info_parse(&t, d->pl, d->pn) != 0 || t.device_id != 1 ||
		    veil_md_scope_open(&sc, d->k, t.scope, t.scope_len) != 0 || sc != 2)
			return -1;
		s->ended++;
	}
	return 0;
}

/*
 * Node A, whose device leads the group and holds its transaction lock, is
 * killed (SIGKILL: no goodbye to anyone): one of B's devices is promoted,
 * both are told the transaction ended, a reflect between them reaches,
 * and a transaction can be begun on B.
 */
static int t_node_killed(void)
{
	struct seen s3 = {0}, s4 = {0};
	uint8_t e4[80];
	IT_CHECK(begin_tx(&d1, 2) == 0);
	IT_CHECK(dev_expect(&d1, VEIL_MD_BEGIN_TRANSACTION_ACK, 5000) == 0);
	IT_CHECK(begin_tx(&d3, 5) == 0);
	IT_CHECK(expect_tx_info(&d3, VEIL_MD_TRANSACTION_REJECTED, 1, 2) == 0);
	IT_CHECK(kill(pid_a, SIGKILL) == 0);
	pid_a = 0;
	dev_close(&d1);
	/* Bounded by the tick (about a second); 30 s leaves room for a loaded machine. */
	for (int i = 0; i < 150; i++) {
		IT_CHECK(watch(&d3, &s3, 100) == 0 && watch(&d4, &s4, 100) == 0);
		if (s3.ended && s4.ended && s3.promoted + s4.promoted > 0)
			break;
	}
	IT_CHECK(s3.ended == 1 && s4.ended == 1 && s3.promoted + s4.promoted == 1);
	IT_CHECK(watch(&d3, &s3, 300) == 0 && watch(&d4, &s4, 100) == 0);
	IT_CHECK(s3.promoted + s4.promoted == 1 && s3.ended == 1 && s4.ended == 1);
	/* The device that does not lead reflects: the leader gets it. */
	struct dev *lead = s3.promoted ? &d3 : &d4, *other = s3.promoted ? &d4 : &d3;
	randombytes_buf(e4, sizeof e4);
	IT_CHECK(reflect(other, 41, e4, sizeof e4) == 0 && expect_ack(other, 41) == 0);
	IT_CHECK(expect_reflected(lead, e4, sizeof e4) == 0);
	/* The lock of the dead node's device is free for B's devices. */
	IT_CHECK(begin_tx(&d3, 7) == 0);
	IT_CHECK(dev_expect(&d3, VEIL_MD_BEGIN_TRANSACTION_ACK, 5000) == 0);
	IT_CHECK(dev_send(&d3, VEIL_MD_COMMIT_TRANSACTION, NULL, 0) == 0);
	IT_CHECK(dev_expect(&d3, VEIL_MD_COMMIT_TRANSACTION_ACK, 5000) == 0);
	IT_CHECK(expect_tx_info(&d4, VEIL_MD_TRANSACTION_ENDED, 3, 7) == 0);
	return 0;
}

#define RUN(fn)                                                                                    \
	do {                                                                                       \
		int r_ = fn();                                                                     \
		printf("%s %s\n", r_ ? "FAIL" : "PASS", #fn);                                      \
		fflush(stdout);                                                                    \
		failed += r_;                                                                      \
	} while (0)

int main(int argc, char **argv)
{
	int failed = 0;
	int failover = argc == 8 && strcmp(argv[1], "failover") == 0;
	if ((argc != 3 && !failover) || veil_crypto_init() != 0) {
		fprintf(stderr, "usage: md_nodes HTTP_PORT_A HTTP_PORT_B\n"
		                "       md_nodes failover HTTP_PORT_A HTTP_PORT_B PID_A LISTEN_OFF "
		                "LOCKS_OFF ON\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	port_a = (uint16_t)strtoul(argv[1 + failover], NULL, 10);
	port_b = (uint16_t)strtoul(argv[2 + failover], NULL, 10);
	d1.fd = d2.fd = d3.fd = d4.fd = -1;
	if (failover) {
		pid_a = (pid_t)strtol(argv[4], NULL, 10);
		listen_off = argv[5];
		locks_off = argv[6];
		conn_on = argv[7];
		if (pid_a <= 1)
			return 2;
		char url[64], dir[96];
		struct veil_dir_provisioning prov;
		snprintf(url, sizeof url, "http://127.0.0.1:%u", port_a);
		snprintf(dir, sizeof dir, "%s/directory/", url);
		veil_keypair(user.pk, user.sk);
		if (veil_dir_fetch_provisioning(url, NULL, NULL, &prov) != 0 ||
		    veil_dir_create_identity(dir, user.pk, user.sk, NULL, user.id) != 0) {
			fprintf(stderr, "md_nodes: cannot make the test's identity\n");
			return 1;
		}
		memcpy(csp_pk, prov.csp_pk, 32);
		RUN(t_leader_lock_lost);
		RUN(t_reflect_while_listener_lost);
		RUN(t_node_killed);
		dev_close(&d1);
		dev_close(&d3);
		dev_close(&d4);
		return failed ? 1 : 0;
	}
	RUN(t_reflect_across_nodes);
	RUN(t_leader_moves_across_nodes);
	RUN(t_tx_across_nodes);
	RUN(t_duplicate_across_nodes);
	RUN(t_drop_across_nodes);
	dev_close(&d1);
	dev_close(&d2);
	dev_close(&d3);
	return failed ? 1 : 0;
}

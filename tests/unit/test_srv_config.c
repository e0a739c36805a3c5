/*
 * veild's settings: defaults, one setting by name (the flags), bounds and
 * clear errors, and the INI file with and without its [veild] section.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "veil/crypto.h"
#include "../../srv/config.h"
#include "../../srv/chat/chat.h"
#include "t.h"

static void test_defaults(void)
{
	struct veil_config c;
	veil_config_defaults(&c);
	CHECK(strcmp(c.listen, "127.0.0.1") == 0);
	CHECK(c.chat_port == 5222 && c.http_port == 8080);
	CHECK(c.queue_limit == 10000 && c.queue_ttl_s == 14 * 24 * 3600);
	CHECK(c.handoff_ms == 100);
	/* The sender's share of a queue defaults to a tenth of it. */
	char err[256] = "";
	CHECK_RC(veil_config_check(&c, err, sizeof err), 0);
	CHECK(c.queue_sender_limit == 1000);
}

static void test_queue_sender_limit(void)
{
	struct veil_config c;
	char err[256] = "";
	veil_config_defaults(&c);
	CHECK_RC(veil_config_set(&c, "queue-limit", "500", err, sizeof err), 0);
	CHECK_RC(veil_config_check(&c, err, sizeof err), 0);
	CHECK(c.queue_limit == 500 && c.queue_sender_limit == 50);
	veil_config_defaults(&c);
	CHECK_RC(veil_config_set(&c, "queue-limit", "5", err, sizeof err), 0);
	CHECK_RC(veil_config_check(&c, err, sizeof err), 0);
	CHECK(c.queue_sender_limit == 1);
	/* Set explicitly, in any order against queue-limit. */
	veil_config_defaults(&c);
	CHECK_RC(veil_config_set(&c, "queue-sender-limit", "20000", err, sizeof err), 0);
	CHECK_RC(veil_config_set(&c, "queue-limit", "50000", err, sizeof err), 0);
	CHECK_RC(veil_config_check(&c, err, sizeof err), 0);
	CHECK(c.queue_sender_limit == 20000);
	/* Equal to queue-limit is allowed (no separate share); above it is not. */
	veil_config_defaults(&c);
	CHECK_RC(veil_config_set(&c, "queue-sender-limit", "10000", err, sizeof err), 0);
	CHECK_RC(veil_config_check(&c, err, sizeof err), 0);
	veil_config_defaults(&c);
	CHECK_RC(veil_config_set(&c, "queue-sender-limit", "10001", err, sizeof err), 0);
	CHECK_RC(veil_config_check(&c, err, sizeof err), VEIL_EINVAL);
	CHECK(strstr(err, "queue-sender-limit") != NULL && strstr(err, "queue-limit") != NULL);
	CHECK_RC(veil_config_set(&c, "queue-sender-limit", "0", err, sizeof err), VEIL_EINVAL);
	CHECK(strstr(err, "queue-sender-limit") != NULL);
}

static void test_set_and_bounds(void)
{
	struct veil_config c;
	char err[256] = "";
	veil_config_defaults(&c);
	CHECK_RC(veil_config_set(&c, "handoff-ms", "0", err, sizeof err), 0);
	CHECK(c.handoff_ms == 0);
	CHECK_RC(veil_config_set(&c, "handoff-ms", "10000", err, sizeof err), 0);
	CHECK(c.handoff_ms == 10000);
	/* Refused values leave the setting as it was and say which one. */
	CHECK_RC(veil_config_set(&c, "handoff-ms", "10001", err, sizeof err), VEIL_EINVAL);
	CHECK(c.handoff_ms == 10000 && strstr(err, "handoff-ms") != NULL);
	CHECK_RC(veil_config_set(&c, "handoff-ms", "-1", err, sizeof err), VEIL_EINVAL);
	CHECK_RC(veil_config_set(&c, "handoff-ms", "5x", err, sizeof err), VEIL_EINVAL);
	CHECK_RC(veil_config_set(&c, "handoff-ms", "", err, sizeof err), VEIL_EINVAL);
	CHECK_RC(veil_config_set(&c, "chat-port", "0", err, sizeof err), VEIL_EINVAL);
	CHECK_RC(veil_config_set(&c, "chat-port", "65536", err, sizeof err), VEIL_EINVAL);
	CHECK_RC(veil_config_set(&c, "chat-port", "6000", err, sizeof err), 0);
	CHECK(c.chat_port == 6000);
	/* The store: a PostgreSQL URL, and an error never shows its password. */
	CHECK(c.store[0] == '\0');
	CHECK_RC(
	    veil_config_set(&c, "store", "postgresql://veil:s3cret@db:5432/veil", err, sizeof err),
	    0);
	CHECK(strcmp(c.store, "postgresql://veil:s3cret@db:5432/veil") == 0);
	CHECK_RC(
	    veil_config_set(&c, "store", "postgres:///veil?host=/run/postgresql", err, sizeof err),
	    0);
	CHECK_RC(veil_config_set(&c, "store", "mysql://veil:s3cret@db/veil", err, sizeof err),
	         VEIL_EINVAL);
	CHECK(strstr(err, "store") != NULL && strstr(err, "s3cret") == NULL);
	CHECK_RC(veil_config_set(&c, "store", "/var/lib/veil.db", err, sizeof err), VEIL_EINVAL);
	char shown[128];
	veil_store_describe("postgresql://veil:s3cret@db:5432/veil?password=x2&sslmode=require",
	                    shown, sizeof shown);
	CHECK(strcmp(shown, "postgresql://veil:***@db:5432/veil?password=***&sslmode=require") ==
	      0);
	veil_store_describe("/data/veil.db", shown, sizeof shown);
	CHECK(strcmp(shown, "/data/veil.db") == 0);
	/* The mediator's limits: defaults, bounds. */
	CHECK(c.md_hs_timeout_s == 10 && c.md_queue_limit == 100000 && c.md_volatile_ttl_s == 300);
	CHECK_RC(veil_config_set(&c, "mediator-handshake-timeout", "0", err, sizeof err),
	         VEIL_EINVAL);
	CHECK_RC(veil_config_set(&c, "mediator-handshake-timeout", "300", err, sizeof err), 0);
	CHECK_RC(veil_config_set(&c, "mediator-handshake-timeout", "301", err, sizeof err),
	         VEIL_EINVAL);
	CHECK_RC(veil_config_set(&c, "mediator-queue-limit", "0", err, sizeof err), VEIL_EINVAL);
	CHECK_RC(veil_config_set(&c, "mediator-queue-limit", "10000000", err, sizeof err), 0);
	CHECK_RC(veil_config_set(&c, "mediator-queue-limit", "10000001", err, sizeof err),
	         VEIL_EINVAL);
	CHECK_RC(veil_config_set(&c, "mediator-volatile-ttl", "0", err, sizeof err), 0);
	CHECK_RC(veil_config_set(&c, "mediator-volatile-ttl", "86401", err, sizeof err),
	         VEIL_EINVAL);
	CHECK(c.md_hs_timeout_s == 300 && c.md_queue_limit == 10000000 && c.md_volatile_ttl_s == 0);
	CHECK_RC(veil_config_set(&c, "no-such-setting", "1", err, sizeof err), VEIL_EINVAL);
	CHECK(strstr(err, "no-such-setting") != NULL);
}

static int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return -1;
	int rc = fputs(text, f) < 0 ? -1 : 0;
	return fclose(f) != 0 ? -1 : rc;
}

static void test_ini_file(void)
{
	char dir[] = "/tmp/veil-test-config.XXXXXX", path[64], err[256] = "";
	struct veil_config c;
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof path, "%s/veild.conf", dir);
	veil_config_defaults(&c);
	CHECK(write_file(path, "[veild]\nhandoff-ms = 250\nqueue-limit = 50\n") == 0);
	CHECK_RC(veil_config_load(&c, path, err, sizeof err), 0);
	CHECK(c.handoff_ms == 250 && c.queue_limit == 50);
	/* Without a section header too. */
	CHECK(write_file(path, "handoff-ms = 0\n") == 0);
	CHECK_RC(veil_config_load(&c, path, err, sizeof err), 0);
	CHECK(c.handoff_ms == 0);
	/* A bad value names the file and the line. */
	CHECK(write_file(path, "chat-port = 1\nhandoff-ms = lots\n") == 0);
	CHECK_RC(veil_config_load(&c, path, err, sizeof err), VEIL_EINVAL);
	CHECK(strstr(err, "handoff-ms") != NULL && strstr(err, "line 2") != NULL);
	unlink(path);
	CHECK_RC(veil_config_load(&c, path, err, sizeof err), VEIL_EIO);
	rmdir(dir);
}

static void test_http_limits(void)
{
	struct veil_config c;
	char err[256] = "";
	veil_config_defaults(&c);
	/* Far below the listener's 4096 connections. */
	CHECK(c.http_conn_per_addr == 64 && c.http_conn_rate_per_min == 600);
	CHECK_RC(veil_config_set(&c, "http-conn-per-addr", "8", err, sizeof err), 0);
	CHECK_RC(veil_config_set(&c, "http-conn-rate", "30", err, sizeof err), 0);
	CHECK(c.http_conn_per_addr == 8 && c.http_conn_rate_per_min == 30);
	CHECK_RC(veil_config_set(&c, "http-conn-per-addr", "0", err, sizeof err), VEIL_EINVAL);
	CHECK_RC(veil_config_set(&c, "http-conn-per-addr", "4097", err, sizeof err), VEIL_EINVAL);
	CHECK(strstr(err, "http-conn-per-addr") != NULL);
	CHECK_RC(veil_config_set(&c, "http-conn-rate", "0", err, sizeof err), VEIL_EINVAL);
	CHECK(c.http_conn_per_addr == 8 && c.http_conn_rate_per_min == 30);
	CHECK(c.blob_rate_per_min == 600 && c.dir_rate_per_min == 120);
	CHECK_RC(veil_config_set(&c, "blob-rate", "50", err, sizeof err), 0);
	CHECK(c.blob_rate_per_min == 50);
	CHECK_RC(veil_config_set(&c, "blob-rate", "0", err, sizeof err), VEIL_EINVAL);
	CHECK(strstr(err, "blob-rate") != NULL);
}

/* --public-url and --public-chat: what the provisioning document announces. */
static void test_public_endpoints(void)
{
	struct veil_config c;
	char err[256] = "";
	veil_config_defaults(&c);
	CHECK(c.public_url[0] == '\0' && c.public_chat_port == 0);
	CHECK_RC(
	    veil_config_set(&c, "public-url", "https://chat.example.org/veil/", err, sizeof err),
	    0);
	CHECK(strcmp(c.public_url, "https://chat.example.org/veil") == 0);
	CHECK_RC(veil_config_set(&c, "public-url", "http://[2001:db8::1]:8443", err, sizeof err),
	         0);
	CHECK(strcmp(c.public_url, "http://[2001:db8::1]:8443") == 0);
	CHECK_RC(veil_config_set(&c, "public-url", "https://127.0.0.1:443", err, sizeof err), 0);
	static const char *const bad_urls[] = {
	    "chat.example.org",  "ftp://x.org",           "https://",         "https:///x",
	    "https://a b.org",   "https://x.org:0",       "https://x.org:1x", "https://x.org/?a=1",
	    "https://x.org/#f",  "https://u@x.org",       "https://[::1",     "https://x.org:99999",
	    "https://[zz::1]/a", "http://x.org/<script>",
	};
	for (size_t i = 0; i < sizeof bad_urls / sizeof bad_urls[0]; i++) {
		err[0] = '\0';
		if (veil_config_set(&c, "public-url", bad_urls[i], err, sizeof err) !=
		    VEIL_EINVAL) {
			fprintf(stderr, "accepted public-url %s\n", bad_urls[i]);
			CHECK(0);
		}
		CHECK(strstr(err, "public-url") != NULL);
	}
	/* The longest accepted URL still leaves room for the blob endpoints. */
	char long_url[VEIL_PUBLIC_URL_MAX + 8];
	memset(long_url, 'a', sizeof long_url - 1);
	long_url[sizeof long_url - 1] = '\0';
	memcpy(long_url, "https://x.org/", 14);
	CHECK_RC(veil_config_set(&c, "public-url", long_url, err, sizeof err), VEIL_EINVAL);
	long_url[VEIL_PUBLIC_URL_MAX - 1] = '\0';
	CHECK_RC(veil_config_set(&c, "public-url", long_url, err, sizeof err), 0);

	CHECK_RC(veil_config_set(&c, "public-chat", "chat.example.org:5222", err, sizeof err), 0);
	CHECK(strcmp(c.public_chat_host, "chat.example.org") == 0 && c.public_chat_port == 5222);
	CHECK_RC(veil_config_set(&c, "public-chat", "[2001:db8::2]:443", err, sizeof err), 0);
	CHECK(strcmp(c.public_chat_host, "2001:db8::2") == 0 && c.public_chat_port == 443);
	static const char *const bad_chat[] = {
	    "chat.example.org", "chat.example.org:", ":5222", "x:0",
	    "2001:db8::2:5222", "[::1]5222",         "a/b:1"};
	for (size_t i = 0; i < sizeof bad_chat / sizeof bad_chat[0]; i++)
		if (veil_config_set(&c, "public-chat", bad_chat[i], err, sizeof err) !=
		    VEIL_EINVAL) {
			fprintf(stderr, "accepted public-chat %s\n", bad_chat[i]);
			CHECK(0);
		}
}

static void test_chat_address(void)
{
	struct veil_config c;
	char err[256] = "";
	veil_config_defaults(&c);
	CHECK(c.n_chat_addrs == 0);
	CHECK_RC(veil_config_set(&c, "chat-address", "node-a.example.org:5222", err, sizeof err),
	         0);
	CHECK_RC(veil_config_set(&c, "chat-address", "[2001:db8::2]:443", err, sizeof err), 0);
	CHECK(c.n_chat_addrs == 2 && strcmp(c.chat_addrs[0].host, "node-a.example.org") == 0 &&
	      c.chat_addrs[0].port == 5222 && strcmp(c.chat_addrs[1].host, "2001:db8::2") == 0 &&
	      c.chat_addrs[1].port == 443);
	CHECK_RC(veil_config_set(&c, "chat-address", "node-c.example.org", err, sizeof err),
	         VEIL_EINVAL);
	CHECK(c.n_chat_addrs == 2);
	while (c.n_chat_addrs < VEIL_MAX_CHAT_ADDRS)
		CHECK_RC(veil_config_set(&c, "chat-address", "n.example.org:1", err, sizeof err),
		         0);
	CHECK_RC(veil_config_set(&c, "chat-address", "n.example.org:1", err, sizeof err),
	         VEIL_EINVAL);
	CHECK(strstr(err, "at most") != NULL && c.n_chat_addrs == VEIL_MAX_CHAT_ADDRS);
}

static void test_trusted_proxy(void)
{
	struct veil_config c;
	char err[256] = "";
	veil_config_defaults(&c);
	CHECK(c.n_trusted_proxies == 0);
	CHECK_RC(veil_config_set(&c, "trusted-proxy", "127.0.0.1", err, sizeof err), 0);
	CHECK_RC(veil_config_set(&c, "trusted-proxy", "10.0.0.0/8", err, sizeof err), 0);
	CHECK_RC(veil_config_set(&c, "trusted-proxy", "fd00::/8", err, sizeof err), 0);
	CHECK(c.n_trusted_proxies == 3);
	CHECK(veil_cidr_match_text(c.trusted_proxies, c.n_trusted_proxies, "10.1.2.3"));
	CHECK_RC(veil_config_set(&c, "trusted-proxy", "10.0.0.1/8", err, sizeof err), VEIL_EINVAL);
	CHECK(strstr(err, "trusted-proxy") != NULL);
	CHECK_RC(veil_config_set(&c, "trusted-proxy", "proxy.example.org", err, sizeof err),
	         VEIL_EINVAL);
	CHECK(c.n_trusted_proxies == 3);
	while (c.n_trusted_proxies < VEIL_MAX_TRUSTED_PROXIES)
		CHECK_RC(veil_config_set(&c, "trusted-proxy", "192.0.2.1", err, sizeof err), 0);
	CHECK_RC(veil_config_set(&c, "trusted-proxy", "192.0.2.1", err, sizeof err), VEIL_EINVAL);
	CHECK(strstr(err, "at most") != NULL);
}

/* --signup, and its default by the listen address. */
static void test_signup(void)
{
	struct veil_config c;
	char err[256] = "";
	static const struct {
		const char *listen;
		int want;
	} dflt[] = {{"127.0.0.1", VEIL_SIGNUP_OPEN},   {"127.3.2.1", VEIL_SIGNUP_OPEN},
	            {"::1", VEIL_SIGNUP_OPEN},         {"0.0.0.0", VEIL_SIGNUP_INVITE},
	            {"192.0.2.5", VEIL_SIGNUP_INVITE}, {"::", VEIL_SIGNUP_INVITE}};
	for (size_t i = 0; i < sizeof dflt / sizeof dflt[0]; i++) {
		veil_config_defaults(&c);
		CHECK_RC(veil_config_set(&c, "listen", dflt[i].listen, err, sizeof err), 0);
		CHECK_RC(veil_config_check(&c, err, sizeof err), 0);
		CHECK(c.signup == dflt[i].want);
	}
	/* Loopback behind a proxy or under a public name is not for this machine alone. */
	static const char *const published[][2] = {{"public-url", "https://chat.example.org"},
	                                           {"public-host", "chat.example.org"},
	                                           {"public-chat", "chat.example.org:5222"},
	                                           {"trusted-proxy", "127.0.0.1"}};
	for (size_t i = 0; i < sizeof published / sizeof published[0]; i++) {
		veil_config_defaults(&c);
		CHECK_RC(veil_config_set(&c, published[i][0], published[i][1], err, sizeof err), 0);
		CHECK_RC(veil_config_check(&c, err, sizeof err), 0);
		CHECK(c.signup == VEIL_SIGNUP_INVITE);
	}
	static const char *const modes[] = {"open", "invite", "closed"};
	for (int m = 0; m < 3; m++) {
		veil_config_defaults(&c);
		CHECK_RC(veil_config_set(&c, "listen", "0.0.0.0", err, sizeof err), 0);
		CHECK_RC(veil_config_set(&c, "signup", modes[m], err, sizeof err), 0);
		CHECK_RC(veil_config_check(&c, err, sizeof err), 0);
		CHECK(c.signup == VEIL_SIGNUP_OPEN + m);
		CHECK(strcmp(veil_signup_name(c.signup), modes[m]) == 0);
	}
	CHECK_RC(veil_config_set(&c, "signup", "anyone", err, sizeof err), VEIL_EINVAL);
	CHECK(strstr(err, "signup") != NULL);
}

static void test_gateway(void)
{
	struct veil_config c;
	char err[256] = "";
	veil_config_defaults(&c);
	CHECK(c.gw_basic == 1 && c.gw_callbacks == 1 && c.gw_rate_per_min == 6000 &&
	      c.gw_addr_rate_per_min == 6000 && c.gw_retry_max_s == 600);
	CHECK_RC(veil_config_set(&c, "gateway-basic", "0", err, sizeof err), 0);
	CHECK_RC(veil_config_set(&c, "gateway-callbacks", "0", err, sizeof err), 0);
	CHECK_RC(veil_config_set(&c, "gateway-rate", "10", err, sizeof err), 0);
	CHECK_RC(veil_config_set(&c, "gateway-addr-rate", "20", err, sizeof err), 0);
	CHECK_RC(veil_config_set(&c, "gateway-retry-max", "5", err, sizeof err), 0);
	CHECK(c.gw_basic == 0 && c.gw_callbacks == 0 && c.gw_rate_per_min == 10 &&
	      c.gw_addr_rate_per_min == 20 && c.gw_retry_max_s == 5);
	CHECK_RC(veil_config_set(&c, "gateway-basic", "2", err, sizeof err), VEIL_EINVAL);
	CHECK_RC(veil_config_set(&c, "gateway-rate", "0", err, sizeof err), VEIL_EINVAL);
	CHECK_RC(veil_config_set(&c, "gateway-retry-max", "0", err, sizeof err), VEIL_EINVAL);
	CHECK(strstr(err, "gateway-retry-max") != NULL);
}

/* libuv's pool (a login's X25519 work) gets a thread per CPU, not only per chat loop. */
static void test_pool_threads(void)
{
	CHECK(veil_chat_pool_threads(1, 1) == 4);
	CHECK(veil_chat_pool_threads(2, 2) == 4);
	CHECK(veil_chat_pool_threads(6, 2) == 6);
	/* 64 CPUs: the loops stop at VEIL_CHAT_AUTO_THREADS, the pool does not. */
	CHECK(veil_chat_pool_threads(VEIL_CHAT_AUTO_THREADS, 64) == 64);
	CHECK(veil_chat_pool_threads(VEIL_CHAT_AUTO_THREADS, 16) == 16);
	CHECK(veil_chat_pool_threads(2, 100000) == 1024);
}

T_MAIN_BEGIN
RUN(test_defaults);
RUN(test_signup);
RUN(test_trusted_proxy);
RUN(test_chat_address);
RUN(test_public_endpoints);
RUN(test_gateway);
RUN(test_http_limits);
RUN(test_set_and_bounds);
RUN(test_queue_sender_limit);
RUN(test_ini_file);
RUN(test_pool_threads);
T_MAIN_END

/*
 * The UnifiedPush endpoint check (srv/push): which tokens veild will POST
 * a wake-up to. A token comes from any logged-in client.
 */
#include <string.h>

#include "veil/crypto.h"
#include "../../srv/config.h"
#include "../../srv/push/push.h"
#include "t.h"

static int ok(const char *tok, int allow_http)
{
	char url[VEIL_STORE_MAX_PUSH_TOKEN + 1];
	int rc = veil_push_endpoint_check((const uint8_t *)tok, strlen(tok), allow_http, url);
	return rc == 0 && strcmp(url, tok) == 0;
}

static void test_https_endpoints(void)
{
	CHECK(ok("https://ntfy.example.org/upAbCdEf123?up=1", 0));
	CHECK(ok("https://push.example.org:8443/up/xyz", 0));
	CHECK(ok("https://[2001:db8::1]/up", 0));
	CHECK(ok("https://push.example.org", 0));
	CHECK(!ok("https://", 0));
	CHECK(!ok("https:///path", 0));
	CHECK(!ok("https://user:pw@push.example.org/up", 0)); /* no user part */
	CHECK(!ok("https://push.example.org/up#frag", 0));
	CHECK(!ok("https://push.example.org:/up", 0));
	CHECK(!ok("https://push.example.org:123456/up", 0));
	CHECK(!ok("https://push.example.org:80a/up", 0));
	CHECK(!ok("https://[]/up", 0));
	CHECK(!ok("https://[::1/up", 0));
	CHECK(!ok("https://push.example.org/a b", 0));
	CHECK(!ok("ftp://push.example.org/up", 0));
	CHECK(!ok("push.example.org/up", 0));
	CHECK(!ok("", 0));
	char url[VEIL_STORE_MAX_PUSH_TOKEN + 1];
	CHECK_RC(veil_push_endpoint_check((const uint8_t *)"https://a\0b", 11, 0, url),
	         VEIL_EINVAL);
}

static void test_http_only_to_loopback_when_allowed(void)
{
	CHECK(!ok("http://127.0.0.1:8080/up", 0));
	CHECK(ok("http://127.0.0.1:8080/up", 1));
	CHECK(ok("http://127.1.2.3/up", 1));
	CHECK(ok("http://[::1]:9/up", 1));
	CHECK(!ok("http://10.0.0.1/up", 1));
	CHECK(!ok("http://localhost/up", 1)); /* a name could resolve anywhere */
	CHECK(!ok("http://127.0.0.1.example.org/up", 1));
	CHECK(!ok("http://push.example.org/up", 1));
}

static void test_length_bounds(void)
{
	char tok[VEIL_STORE_MAX_PUSH_TOKEN + 2], url[VEIL_STORE_MAX_PUSH_TOKEN + 1];
	memcpy(tok, "https://h/", 10);
	memset(tok + 10, 'a', sizeof tok - 10);
	CHECK_RC(veil_push_endpoint_check((const uint8_t *)tok, VEIL_STORE_MAX_PUSH_TOKEN, 0, url),
	         0);
	CHECK(strlen(url) == VEIL_STORE_MAX_PUSH_TOKEN);
	CHECK_RC(
	    veil_push_endpoint_check((const uint8_t *)tok, VEIL_STORE_MAX_PUSH_TOKEN + 1, 0, url),
	    VEIL_EINVAL);
}

/* The settings of push and --user: defaults and bounds. */
static void test_settings(void)
{
	struct veil_config c;
	char err[256] = "";
	veil_config_defaults(&c);
	CHECK(c.push_interval_s == 60 && c.push_rate_per_min == 600 &&
	      c.push_allow_loopback_http == 0 && c.user[0] == '\0');
	CHECK_RC(veil_config_set(&c, "push-interval", "1", err, sizeof err), 0);
	CHECK_RC(veil_config_set(&c, "push-rate", "1000000", err, sizeof err), 0);
	CHECK_RC(veil_config_set(&c, "push-allow-loopback-http", "1", err, sizeof err), 0);
	CHECK_RC(veil_config_set(&c, "user", "veil", err, sizeof err), 0);
	CHECK(c.push_interval_s == 1 && c.push_rate_per_min == 1000000 &&
	      c.push_allow_loopback_http == 1 && strcmp(c.user, "veil") == 0);
	CHECK_RC(veil_config_set(&c, "push-interval", "0", err, sizeof err), VEIL_EINVAL);
	CHECK_RC(veil_config_set(&c, "push-interval", "86401", err, sizeof err), VEIL_EINVAL);
	CHECK_RC(veil_config_set(&c, "push-rate", "0", err, sizeof err), VEIL_EINVAL);
	CHECK_RC(veil_config_set(&c, "push-allow-loopback-http", "2", err, sizeof err),
	         VEIL_EINVAL);
	char longname[80];
	memset(longname, 'u', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	CHECK_RC(veil_config_set(&c, "user", longname, err, sizeof err), VEIL_EINVAL);
	CHECK_RC(veil_config_set(&c, "user", "", err, sizeof err), VEIL_EINVAL);
	CHECK(strstr(err, "user") != NULL);
}

T_MAIN_BEGIN
RUN(test_settings);
RUN(test_https_endpoints);
RUN(test_http_only_to_loopback_when_allowed);
RUN(test_length_bounds);
T_MAIN_END

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

T_MAIN_BEGIN
RUN(test_defaults);
RUN(test_http_limits);
RUN(test_set_and_bounds);
RUN(test_queue_sender_limit);
RUN(test_ini_file);
T_MAIN_END

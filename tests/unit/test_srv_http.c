/*
 * The HTTP listener on its own (srv/http): which address it binds, and the
 * per-address connection limits in front of every route.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "veil/crypto.h"
#include "veil/util.h"
#include "../../srv/http/http.h"
#include "../../srv/server.h"
#include "t.h"

static void cfg_init(struct veil_server *s, const char *listen)
{
	memset(s, 0, sizeof *s);
	snprintf(s->cfg.listen, sizeof s->cfg.listen, "%s", listen);
	s->cfg.http_port = 0;
}

/* 0 if a TCP connection to addr:port (IPv4) is accepted, else errno. */
static int tcp_connect4(const char *addr, uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	if (fd < 0 || inet_pton(AF_INET, addr, &a.sin_addr) != 1)
		return EINVAL;
	int rc = connect(fd, (struct sockaddr *)&a, sizeof a) == 0 ? 0 : errno;
	close(fd);
	return rc;
}

static void test_listen_exact(void)
{
	static struct veil_server s;
	struct veil_http *h = NULL;
	cfg_init(&s, "127.0.0.1");
	CHECK_RC(veil_http_new(&h, &s), 0);
	uint16_t port = veil_http_port(h);
	int ok = tcp_connect4("127.0.0.1", port), other = tcp_connect4("127.0.0.2", port);
	veil_http_stop(h);
	CHECK_RC(ok, 0);
	CHECK_RC(other, ECONNREFUSED);
}

static void test_listen_refused(void)
{
	static struct veil_server s;
	struct veil_http *h = NULL;
	/* An address this machine does not have (TEST-NET-1): no silent wildcard. */
	cfg_init(&s, "192.0.2.1");
	CHECK_RC(veil_http_new(&h, &s), VEIL_EIO);
	CHECK(h == NULL);
	/* Not an address (lws would take it as an interface name). */
	cfg_init(&s, "lo");
	CHECK_RC(veil_http_new(&h, &s), VEIL_EINVAL);
	cfg_init(&s, "");
	CHECK_RC(veil_http_new(&h, &s), VEIL_EINVAL);
}

T_MAIN_BEGIN
{
	RUN(test_listen_exact);
	RUN(test_listen_refused);
}
T_MAIN_END

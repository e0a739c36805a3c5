/*
 * The client address of an HTTP request that came through a trusted reverse
 * proxy (--trusted-proxy): taken from X-Forwarded-For, or from Forwarded
 * (RFC 7239, its for= parameters) when there is no X-Forwarded-For, only if
 * the peer itself is a trusted proxy. The headers are read from the right
 * (the hop the peer added) to the left, skipping further trusted proxies;
 * the first address that is not one is the client. An entry that is not an
 * address (unknown, obfuscated, malformed) ends the walk at the last
 * trusted hop. From any other peer the headers are ignored: a client
 * cannot pick the address its limits are counted under.
 */
#ifndef VEIL_SRV_HTTP_FORWARDED_H
#define VEIL_SRV_HTTP_FORWARDED_H

#include <stddef.h>

#include "../limit/cidr.h"

#define VEIL_HTTP_FORWARDED_MAX 2048 /* longer headers are ignored */
#define VEIL_HTTP_FORWARDED_HOPS 32  /* entries looked at, from the right */

/*
 * Writes the client's address (canonical text) to out: the peer's, or one
 * from xff / fwd (each NULL or "" if absent) as above. Returns 1 if the
 * address came from a header, 0 if it is the peer's.
 */
int veil_http_forwarded_client(const struct veil_cidr *trusted, size_t n, const char *peer,
                               const char *xff, const char *fwd, char *out, size_t cap);

#endif

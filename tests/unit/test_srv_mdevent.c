/* The payloads of the mediator's cross-node notifications (srv/mediator/mstore_pg.c). */
#include <stdio.h>
#include <string.h>

#include "t.h"
#include "mediator/mstore_pg.h"

#define ME "0123456789abcdef"
#define OTHER "fedcba9876543210"
#define GID "ab00000000000000000000000000000000000000000000000000000000000001"

static void test_mdevent_kinds(void)
{
	struct md_event ev;
	CHECK(md_pg_parse_event(ME, OTHER "R" GID, &ev) == 1);
	CHECK(ev.kind == MD_EV_REFLECTED && ev.gid[0] == 0xab && ev.gid[31] == 1);
	CHECK(md_pg_parse_event(ME, OTHER "L" GID, &ev) == 1 && ev.kind == MD_EV_LEADER_FREE);
	/* The device ID is 16 hex digits of its little-endian bytes. */
	CHECK(md_pg_parse_event(ME,
	                        OTHER "X" GID "0201000000000000"
	                              "4113",
	                        &ev) == 1);
	CHECK(ev.kind == MD_EV_CLOSE && ev.did == 0x102 && ev.code == 4113);
	CHECK(md_pg_parse_event(ME,
	                        OTHER "E" GID "0700000000000000"
	                              "a1b2c3",
	                        &ev) == 1);
	CHECK(ev.kind == MD_EV_TX_ENDED && ev.did == 7 && ev.scope_len == 3 && ev.scope[2] == 0xc3);
	CHECK(md_pg_parse_event(ME, OTHER "E" GID "0700000000000000", &ev) == 1 &&
	      ev.scope_len == 0);
}

static void test_mdevent_refused(void)
{
	struct md_event ev;
	/* Our own, an unknown kind, trailing bytes, a short group ID, bad digits. */
	CHECK(md_pg_parse_event(ME, ME "R" GID, &ev) == 0);
	CHECK(md_pg_parse_event(ME, OTHER "Q" GID, &ev) == 0);
	/* The store's own kinds (tick, resync) never come from another node. */
	CHECK(md_pg_parse_event(ME, OTHER "K" GID, &ev) == 0);
	CHECK(md_pg_parse_event(ME, OTHER "S" GID, &ev) == 0);
	CHECK(md_pg_parse_event(ME, OTHER "R" GID "00", &ev) == 0);
	CHECK(md_pg_parse_event(ME,
	                        OTHER "R"
	                              "abcd",
	                        &ev) == 0);
	CHECK(md_pg_parse_event(ME,
	                        OTHER "R"
	                              "zz" GID,
	                        &ev) == 0);
	CHECK(md_pg_parse_event(ME,
	                        OTHER "X" GID "0100000000000000"
	                              "411",
	                        &ev) == 0);
	CHECK(md_pg_parse_event(ME,
	                        OTHER "X" GID "0100000000000000"
	                              "41a3",
	                        &ev) == 0);
	CHECK(md_pg_parse_event(ME,
	                        OTHER "X" GID "0100000000000000"
	                              "0413",
	                        &ev) == 0);
	CHECK(md_pg_parse_event(ME,
	                        OTHER "E" GID "0100000000000000"
	                              "abc",
	                        &ev) == 0);
	/* A scope longer than VEIL_MD_SCOPE_MAX. */
	static char big[16 + 1 + 64 + 16 + 2 * (VEIL_MD_SCOPE_MAX + 1) + 1];
	int n = snprintf(big, sizeof big, "%sE%s%s", OTHER, GID, "0100000000000000");
	memset(big + n, 'a', 2 * (VEIL_MD_SCOPE_MAX + 1));
	CHECK(md_pg_parse_event(ME, big, &ev) == 0);
	big[n + 2 * VEIL_MD_SCOPE_MAX] = '\0';
	CHECK(md_pg_parse_event(ME, big, &ev) == 1 && ev.scope_len == VEIL_MD_SCOPE_MAX);
}

T_MAIN_BEGIN
RUN(test_mdevent_kinds);
RUN(test_mdevent_refused);
T_MAIN_END

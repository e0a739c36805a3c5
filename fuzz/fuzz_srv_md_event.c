/*
 * Fuzzes the parser of the mediator's cross-node notifications (the
 * payloads of NOTIFY veil_md, srv/mediator/mstore_pg.c): the input, cut at
 * the first NUL, is the payload.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../srv/mediator/mstore_pg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* NOTIFY payloads are shorter than 8000 bytes. */
	if (size > 8000)
		return 0;
	char *pl = malloc(size + 1);
	if (pl == NULL)
		return 0;
	memcpy(pl, data, size);
	pl[size] = '\0';
	struct md_event ev;
	if (md_pg_parse_event("0123456789abcdef", pl, &ev) == 1 &&
	    (ev.scope_len > sizeof ev.scope || (ev.kind == MD_EV_CLOSE && ev.code < 1000)))
		abort();
	free(pl);
	return 0;
}

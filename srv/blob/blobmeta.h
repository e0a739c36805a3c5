/*
 * Internal to blob.c: where the blob service keeps its metadata, one row
 * per stored blob (ID, owner, size, creation and expiry, persist flag).
 * Two backends behind one ops table: SQLite in <blob dir>/blobs.db (the
 * default, one node) and, when veild runs with --store postgresql://...,
 * the table blobs of that database (made by the chat store's migrations,
 * srv/store/pg.c), so that every node sharing the database and the blob
 * directory serves every blob and counts one quota per owner.
 *
 * A PostgreSQL row also names the blob directory that holds its file (the
 * 16 random bytes of <blob dir>/.dirid): nodes that share the directory
 * share its ID, and a node never serves, deletes or sweeps a row of another
 * directory (whose file it cannot reach). HTTP thread only: no locks.
 */
#ifndef VEIL_SRV_BLOBMETA_H
#define VEIL_SRV_BLOBMETA_H

#include <stddef.h>
#include <stdint.h>

#include "veil/crypto.h"

#define VEIL_BLOBMETA_ID_LEN 16
#define VEIL_BLOBMETA_DIRID_LEN 16
/* Most expired IDs one call of expired() returns. */
#define VEIL_BLOBMETA_EXPIRED_MAX 256

struct veil_blobmeta_row {
	uint64_t size, expires_ms;
	int persist;
};

struct veil_blobmeta;
struct veil_blobmeta_ops {
	/* 0 (also if a row of that ID exists: IDs are random, only an import repeats one) or VEIL_EIO. */
	int (*insert)(struct veil_blobmeta *m, const uint8_t id[static VEIL_BLOBMETA_ID_LEN],
	              const uint8_t owner[static VEIL_ID_LEN], uint64_t size, uint64_t created_ms,
	              uint64_t expires_ms, int persist);
	/* 0 and the row, VEIL_ENOTFOUND (also a row of another directory) or VEIL_EIO. */
	int (*get)(struct veil_blobmeta *m, const uint8_t id[static VEIL_BLOBMETA_ID_LEN],
	           struct veil_blobmeta_row *r);
	/* 0 (also when there was no such row) or VEIL_EIO. */
	int (*del)(struct veil_blobmeta *m, const uint8_t id[static VEIL_BLOBMETA_ID_LEN]);
	/* Bytes of the owner's blobs live at now_ms, in every directory: 0 or VEIL_EIO. */
	int (*usage)(struct veil_blobmeta *m, const uint8_t owner[static VEIL_ID_LEN],
	             uint64_t now_ms, uint64_t *used);
	/*
	 * Up to max (at most VEIL_BLOBMETA_EXPIRED_MAX) IDs of this directory's
	 * blobs expired at now_ms: how many, or VEIL_EIO.
	 */
	int (*expired)(struct veil_blobmeta *m, uint64_t now_ms,
	               uint8_t ids[][VEIL_BLOBMETA_ID_LEN], int max);
	/* Frees m. */
	void (*close)(struct veil_blobmeta *m);
};

/* Every backend's handle starts with this. */
struct veil_blobmeta {
	const struct veil_blobmeta_ops *ops;
};

/* Opens (creates) the SQLite file at path: 0, or VEIL_ENOMEM, VEIL_EIO. */
int veil_blobmeta_sqlite_open(struct veil_blobmeta **out, const char *path);
/*
 * Copies the live rows (expiring after now_ms) of the SQLite file at path
 * into to, for the first start on PostgreSQL of a node that kept its blob
 * metadata in SQLite; a row already there is left as it is, so a copy cut
 * short may run again. How many rows, or VEIL_EIO.
 */
int veil_blobmeta_sqlite_import(const char *path, struct veil_blobmeta *to, uint64_t now_ms);
/*
 * Connects to the PostgreSQL store at url (its schema made by the chat
 * store, which opens first); rows are those of the blob directory dirid.
 * 0, or VEIL_ENOMEM, VEIL_EIO (logged).
 */
int veil_blobmeta_pg_open(struct veil_blobmeta **out, const char *url,
                          const uint8_t dirid[static VEIL_BLOBMETA_DIRID_LEN]);

#endif

/*
 * --user: veild started as root runs as another user once it has bound its
 * ports. Files it makes in between (keys, store, admin socket) already
 * belong to that user: the file-system identity is switched first.
 */
#ifndef VEIL_SRV_PRIVDROP_H
#define VEIL_SRV_PRIVDROP_H

#include <stddef.h>
#include <sys/types.h>

struct veil_privdrop {
	int active; /* 0: no --user, or already running as that user */
	uid_t uid;
	gid_t gid;
};

/*
 * Looks up user and, when running as root, makes data_dir (mode 0700, owned
 * by the user) if it is missing, refuses a data directory the user does
 * not own, takes the user's groups and switches the file-system uid and gid
 * to the user's; the process keeps root's effective ids to bind ports. Not
 * running as root, only that user itself is accepted (then nothing
 * changes). Call before any thread starts. 0, or VEIL_EINVAL (no such user,
 * not root) or VEIL_EIO with a message in err.
 */
int veil_privdrop_prepare(struct veil_privdrop *p, const char *user, const char *data_dir,
                          char *err, size_t errcap);
/*
 * Sets the real, effective and saved ids of every thread to the user's and
 * checks that root's cannot be taken back. 0, or VEIL_EIO with a message
 * in err: the caller must then exit.
 */
int veil_privdrop_finish(struct veil_privdrop *p, char *err, size_t errcap);

#endif

/* --user: from root to veild's own user (see privdrop.h). */
#define _GNU_SOURCE /* setresuid, getresuid */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <unistd.h>

#include "privdrop.h"
#include "veil/err.h"

#define PRIVDROP_MAX_GROUPS 256

/* Makes every missing parent directory of path (mode 0755, root's). */
static int make_dirs(const char *path)
{
	char tmp[1024];
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof tmp)
		return -1;
	memcpy(tmp, path, n + 1);
	for (char *q = tmp + 1; *q; q++) {
		if (*q != '/')
			continue;
		*q = '\0';
		if (mkdir(tmp, 0755) == 0) {
			/* The user must reach its data directory whatever the umask. */
			if (chmod(tmp, 0755) != 0)
				return -1;
		} else if (errno != EEXIST)
			return -1;
		*q = '/';
	}
	return 0;
}

/*
 * The data directory belongs to the user: made for it when missing, else it
 * must already be the user's (veild never takes over a directory that
 * another owner made: --data / would otherwise give the user the root).
 */
static int own_data_dir(const struct veil_privdrop *p, const char *dir, const char *user, char *err,
                        size_t errcap)
{
	if (make_dirs(dir) != 0) {
		snprintf(err, errcap, "cannot create the parents of %s: %s", dir, strerror(errno));
		return VEIL_EIO;
	}
	if (mkdir(dir, 0700) == 0) {
		int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int ok = fd >= 0 && fchown(fd, p->uid, p->gid) == 0;
		if (fd >= 0)
			close(fd);
		if (!ok) {
			snprintf(err, errcap, "cannot give %s to %s: %s", dir, user,
			         strerror(errno));
			return VEIL_EIO;
		}
		return 0;
	}
	struct stat st;
	if (errno != EEXIST || stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errcap, "cannot create %s: %s", dir, strerror(errno));
		return VEIL_EIO;
	}
	if (st.st_uid != p->uid) {
		snprintf(err, errcap,
		         "the data directory %s belongs to uid %ld, not to %s (--user): chown -R "
		         "%s: it",
		         dir, (long)st.st_uid, user, user);
		return VEIL_EIO;
	}
	return 0;
}

int veil_privdrop_prepare(struct veil_privdrop *p, const char *user, const char *data_dir,
                          char *err, size_t errcap)
{
	memset(p, 0, sizeof *p);
	errno = 0;
	struct passwd *pw = getpwnam(user);
	if (pw == NULL) {
		snprintf(err, errcap, "--user %s: no such user", user);
		return VEIL_EINVAL;
	}
	p->uid = pw->pw_uid;
	p->gid = pw->pw_gid;
	if (geteuid() != 0) {
		/* Already that user (e.g. started by systemd with User=): nothing to drop. */
		if (geteuid() == p->uid && getuid() == p->uid)
			return 0;
		snprintf(err, errcap, "--user %s: only root can change to another user", user);
		return VEIL_EINVAL;
	}
	if (p->uid == 0) {
		snprintf(err, errcap, "--user %s: that is root; name an unprivileged user", user);
		return VEIL_EINVAL;
	}
	gid_t groups[PRIVDROP_MAX_GROUPS];
	int ng = PRIVDROP_MAX_GROUPS;
	if (getgrouplist(user, p->gid, groups, &ng) < 0) {
		snprintf(err, errcap, "--user %s: in more than %d groups", user,
		         PRIVDROP_MAX_GROUPS);
		return VEIL_EINVAL;
	}
	int rc = own_data_dir(p, data_dir, user, err, errcap);
	if (rc != 0)
		return rc;
	if (setgroups((size_t)ng, groups) != 0) {
		snprintf(err, errcap, "--user %s: cannot take its groups: %s", user,
		         strerror(errno));
		return VEIL_EIO;
	}
	/*
	 * From here on files are made and opened as the user while the process
	 * can still bind ports as root. The fs ids are per thread: threads
	 * started later inherit them.
	 */
	setfsgid(p->gid);
	setfsuid(p->uid);
	if ((uid_t)setfsuid((uid_t)-1) != p->uid || (gid_t)setfsgid((gid_t)-1) != p->gid) {
		snprintf(err, errcap, "--user %s: cannot switch the file-system ids", user);
		return VEIL_EIO;
	}
	p->active = 1;
	return 0;
}

int veil_privdrop_finish(struct veil_privdrop *p, char *err, size_t errcap)
{
	if (!p->active)
		return 0;
	/* glibc applies these to every thread of the process. */
	if (setresgid(p->gid, p->gid, p->gid) != 0 || setresuid(p->uid, p->uid, p->uid) != 0) {
		snprintf(err, errcap, "cannot drop root's privileges: %s", strerror(errno));
		return VEIL_EIO;
	}
	uid_t r, e, s;
	gid_t rg, eg, sg;
	if (getresuid(&r, &e, &s) != 0 || getresgid(&rg, &eg, &sg) != 0 || r != p->uid ||
	    e != p->uid || s != p->uid || rg != p->gid || eg != p->gid || sg != p->gid ||
	    setuid(0) == 0 || seteuid(0) == 0) {
		snprintf(err, errcap, "root's privileges are still there after dropping them");
		return VEIL_EIO;
	}
	return 0;
}

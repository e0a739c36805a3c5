/*
 * veilctl's commands on the data directory of a stopped veild: the lock
 * veild takes, the server's keys, its store and the Gateway's accounts.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "config.h"
#include "ctl.h"

static void no_wake(void *arg)
{
	(void)arg;
}

int ctl_open(struct ctl *c, const char *data, const char *store_url)
{
	char err[512], path[1100];
	struct stat st;
	memset(c, 0, sizeof *c);
	c->lock_fd = -1;
	veil_config_defaults(&c->srv.cfg);
	if (data == NULL)
		data = ctl_data_dir; /* veilctl --data, or ./var/veil */
	snprintf(c->srv.cfg.data_dir, sizeof c->srv.cfg.data_dir, "%s", data);
	const char *dir = c->srv.cfg.data_dir;
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
		return ctl_err("no data directory %s (start veild once, or give --data DIR)", dir);
	umask(077);
	snprintf(path, sizeof path, "%s/veild.lock", dir);
	c->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (c->lock_fd < 0)
		return ctl_err("cannot open %s: %s", path, strerror(errno));
	if (flock(c->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		ctl_close(c);
		return ctl_err(
		    "a veild is running on %s but its admin socket %s/admin.sock does not "
		    "answer",
		    dir, dir);
	}
	if (veil_crypto_init() != 0) {
		ctl_close(c);
		return ctl_err("cannot initialise libsodium");
	}
	if (veil_server_keys_load(&c->srv.keys, dir, err, sizeof err) != 0) {
		ctl_close(c);
		return ctl_err("%s", err);
	}
	if (store_url != NULL) {
		snprintf(path, sizeof path, "%s", store_url);
		snprintf(c->srv.cfg.store, sizeof c->srv.cfg.store, "%s", store_url);
	} else
		snprintf(path, sizeof path, "%s/veil.db", dir);
	err[0] = '\0';
	struct veil_store_opts so = {
	    .path = path, .wake = no_wake, .err = err, .errcap = sizeof err};
	int rc = veil_store_open(&c->srv.store, &so);
	if (rc != 0) {
		ctl_close(c);
		return ctl_err("cannot open the store: %s", err[0] ? err : veil_strerror(rc));
	}
	uint8_t key[32];
	veil_gwdb_seal_key(key, c->srv.keys.dir_sk);
	if (store_url != NULL)
		snprintf(path, sizeof path, "%s", store_url);
	else
		snprintf(path, sizeof path, "%s/gateway.db", dir);
	rc = veil_gwdb_open(&c->gw, path, key);
	sodium_memzero(key, sizeof key);
	if (rc != 0) {
		ctl_close(c);
		return ctl_err("cannot open %s", path);
	}
	return 0;
}

void ctl_close(struct ctl *c)
{
	veil_gwdb_close(c->gw);
	c->gw = NULL;
	veil_store_close(c->srv.store);
	c->srv.store = NULL;
	if (c->srv.keys.csp_sk != NULL)
		veil_server_keys_free(&c->srv.keys);
	if (c->lock_fd >= 0)
		close(c->lock_fd);
	c->lock_fd = -1;
}

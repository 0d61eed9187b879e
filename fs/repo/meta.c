/* SPDX-License-Identifier: MIT */
/*
 * The LMDB index (see meta.h).  One environment, one named database per
 * table.  Any thread may open transactions; LMDB serialises writers.
 * MDB_NOTLS lets a read txn be used by whichever thread opened it without
 * tying LMDB's reader slots to threads of FUSE's pool.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lmdb.h>

#include "meta.h"

struct meta {
	MDB_env *env;
	MDB_dbi dbi[META_NTABLES]; /* set at open, then read-only */
	char *clean;               /* a scratch index's mark of a clean
				    * close (meta_open_scratch), or NULL */
};

struct meta_txn {
	struct meta *m;
	MDB_txn *txn;
};

static const char *const meta_table_names[META_NTABLES] = {
	[META_MISC] = "misc",
	[META_REC] = "rec",
	[META_VER] = "ver",
	[META_JOB] = "job",
	[META_CAT] = "cat",
	[META_ONLINE] = "online",
};

/* The one place MDB_* codes become errnos. */
static int meta_errno(int rc)
{
	switch (rc) {
	case MDB_SUCCESS:
		return 0;
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_MAP_FULL:
	case MDB_TXN_FULL:
		return -ENOSPC;
	case MDB_KEYEXIST:
		return -EEXIST;
	case MDB_READERS_FULL:
		return -EAGAIN;
	case MDB_BAD_VALSIZE:
		return -ENAMETOOLONG;
	case MDB_VERSION_MISMATCH:
	case MDB_INVALID:
	case MDB_CORRUPTED:
		return -EIO;
	default:
		return rc > 0 ? -rc : -EIO;
	}
}

static int env_open(const char *dir, unsigned flags, struct meta **out)
{
	struct meta *m;
	MDB_txn *txn;
	int rc;

	*out = NULL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	rc = mdb_env_create(&m->env);
	if (rc)
		goto out_free;
	mdb_env_set_maxdbs(m->env, META_NTABLES + 4);
	mdb_env_set_maxreaders(m->env, 256);
	/* Address space only; the file grows as used. */
	mdb_env_set_mapsize(m->env, (size_t)64 << 30);
	rc = mdb_env_open(m->env, dir, MDB_NOTLS | flags, 0600);
	if (rc)
		goto out_close_env;
	rc = mdb_txn_begin(m->env, NULL, 0, &txn);
	if (rc)
		goto out_close_env;
	for (int i = 0; i < META_NTABLES; i++) {
		rc = mdb_dbi_open(txn, meta_table_names[i], MDB_CREATE,
				  &m->dbi[i]);
		if (rc) {
			mdb_txn_abort(txn);
			goto out_close_env;
		}
	}
	rc = mdb_txn_commit(txn);
	if (rc)
		goto out_close_env;
	*out = m;
	return 0;

out_close_env:
	mdb_env_close(m->env);
out_free:
	free(m);
	return meta_errno(rc);
}

int meta_open(const char *dir, struct meta **out, bool *created)
{
	char path[4096];
	struct stat st;

	*out = NULL;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	*created = stat(path, &st) < 0;
	return env_open(dir, 0, out);
}

static int sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return -errno;
	rc = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return rc;
}

int meta_open_scratch(const char *dir, struct meta **out)
{
	char path[4096], clean[4096];
	int rc;

	*out = NULL;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	snprintf(clean, sizeof(clean), "%s/clean", dir);
	/*
	 * Commits are not synced: after anything but meta_close, the file
	 * may be torn, so it is started again.  The mark goes (durably)
	 * before the first commit can.
	 */
	if (unlink(clean) < 0) {
		if (errno != ENOENT)
			return -errno;
		snprintf(path, sizeof(path), "%s/data.mdb", dir);
		if (unlink(path) < 0 && errno != ENOENT)
			return -errno;
		snprintf(path, sizeof(path), "%s/lock.mdb", dir);
		if (unlink(path) < 0 && errno != ENOENT)
			return -errno;
	}
	/*
	 * MDB_WRITEMAP: a write transaction changes the map in place, not
	 * malloc'd copies of its pages, which LMDB keeps for reuse (an
	 * append that rewrites 30 MB of records held 30 MB of them, in
	 * RssAnon, for good).  The file is then as long as the map, sparse.
	 */
	rc = sync_dir(dir);
	if (rc == 0)
		rc = env_open(dir, MDB_NOSYNC | MDB_WRITEMAP, out);
	if (rc == 0) {
		(*out)->clean = strdup(clean);
		if (!(*out)->clean) {
			meta_close(*out);
			*out = NULL;
			rc = -ENOMEM;
		}
	}
	return rc;
}

void meta_close(struct meta *m)
{
	if (!m)
		return;
	if (m->clean && mdb_env_sync(m->env, 1) == 0) {
		int fd = open(m->clean, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);

		if (fd >= 0 && fsync(fd) == 0) {
			char *slash = strrchr(m->clean, '/');

			*slash = '\0';
			sync_dir(m->clean);
		}
		if (fd >= 0)
			close(fd);
	}
	mdb_env_close(m->env);
	free(m->clean);
	free(m);
}

int meta_txn_begin(struct meta *m, bool rdonly, struct meta_txn **out)
{
	struct meta_txn *t;
	int rc;

	*out = NULL;
	t = malloc(sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->m = m;
	rc = mdb_txn_begin(m->env, NULL, rdonly ? MDB_RDONLY : 0, &t->txn);
	if (rc) {
		free(t);
		return meta_errno(rc);
	}
	*out = t;
	return 0;
}

int meta_txn_commit(struct meta_txn *t)
{
	int rc = mdb_txn_commit(t->txn);

	free(t);
	return meta_errno(rc);
}

void meta_txn_abort(struct meta_txn *t)
{
	if (!t)
		return;
	mdb_txn_abort(t->txn);
	free(t);
}

static MDB_val meta_key(const char *key)
{
	MDB_val k = { .mv_size = strlen(key), .mv_data = (void *)key };

	return k;
}

int meta_get(struct meta_txn *t, enum meta_table tab, const char *key,
	     char **val, size_t *len)
{
	MDB_val k = meta_key(key), v;
	char *copy;
	int rc;

	*val = NULL;
	if (k.mv_size == 0)
		return -ENOENT;
	rc = mdb_get(t->txn, t->m->dbi[tab], &k, &v);
	if (rc)
		return meta_errno(rc);
	/* The map dies with the txn: copy out. */
	copy = malloc(v.mv_size + 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, v.mv_data, v.mv_size);
	copy[v.mv_size] = '\0';
	*val = copy;
	if (len)
		*len = v.mv_size;
	return 0;
}

int meta_has(struct meta_txn *t, enum meta_table tab, const char *key)
{
	MDB_val k = meta_key(key), v;
	int rc;

	if (k.mv_size == 0)
		return 0;
	rc = mdb_get(t->txn, t->m->dbi[tab], &k, &v);
	if (rc == MDB_NOTFOUND)
		return 0;
	return rc ? meta_errno(rc) : 1;
}

int meta_put(struct meta_txn *t, enum meta_table tab, const char *key,
	     const void *val, size_t len)
{
	MDB_val k = meta_key(key);
	MDB_val v = { .mv_size = len, .mv_data = (void *)val };

	return meta_errno(mdb_put(t->txn, t->m->dbi[tab], &k, &v, 0));
}

struct meta_cursor {
	MDB_cursor *cur;
};

int meta_cursor_open(struct meta_txn *t, enum meta_table tab,
		     struct meta_cursor **out)
{
	struct meta_cursor *c = malloc(sizeof(*c));
	int rc;

	*out = NULL;
	if (!c)
		return -ENOMEM;
	rc = mdb_cursor_open(t->txn, t->m->dbi[tab], &c->cur);
	if (rc) {
		free(c);
		return meta_errno(rc);
	}
	*out = c;
	return 0;
}

int meta_cursor_get(struct meta_cursor *c, const char *key, const void **val,
		    size_t *len)
{
	MDB_val k = meta_key(key), v;
	int rc;

	if (k.mv_size == 0)
		return -ENOENT;
	rc = mdb_cursor_get(c->cur, &k, &v, MDB_SET);
	if (rc)
		return meta_errno(rc);
	*val = v.mv_data;
	*len = v.mv_size;
	return 0;
}

int meta_cursor_put(struct meta_cursor *c, const char *key, const void *val,
		    size_t len)
{
	MDB_val k = meta_key(key);
	MDB_val v = { .mv_size = len, .mv_data = (void *)val };

	return meta_errno(mdb_cursor_put(c->cur, &k, &v, 0));
}

void meta_cursor_close(struct meta_cursor *c)
{
	if (!c)
		return;
	mdb_cursor_close(c->cur);
	free(c);
}

int meta_del(struct meta_txn *t, enum meta_table tab, const char *key)
{
	MDB_val k = meta_key(key);

	if (k.mv_size == 0)
		return -ENOENT;
	return meta_errno(mdb_del(t->txn, t->m->dbi[tab], &k, NULL));
}

int meta_scan(struct meta_txn *t, enum meta_table tab, const char *prefix,
	      const char *after, meta_scan_fn fn, void *arg)
{
	size_t plen = strlen(prefix);
	MDB_cursor *cur;
	MDB_val k, v;
	char keybuf[1024];
	int rc, op, urc = 0;

	rc = mdb_cursor_open(t->txn, t->m->dbi[tab], &cur);
	if (rc)
		return meta_errno(rc);
	k = meta_key(after && strcmp(after, prefix) > 0 ? after : prefix);
	op = MDB_SET_RANGE;
	if (k.mv_size == 0)
		op = MDB_FIRST;
	for (rc = mdb_cursor_get(cur, &k, &v, op); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
			break;
		if (k.mv_size >= sizeof(keybuf))
			continue;
		memcpy(keybuf, k.mv_data, k.mv_size);
		keybuf[k.mv_size] = '\0';
		if (after && strcmp(keybuf, after) <= 0)
			continue;
		urc = fn(arg, keybuf, v.mv_data, v.mv_size);
		if (urc)
			break;
	}
	mdb_cursor_close(cur);
	if (urc)
		return urc;
	if (rc == MDB_NOTFOUND)
		return 0;
	return meta_errno(rc);
}

int meta_drop(struct meta_txn *t, enum meta_table tab)
{
	return meta_errno(mdb_drop(t->txn, t->m->dbi[tab], 0));
}

int meta_drop_prefix(struct meta_txn *t, enum meta_table tab,
		     const char *prefix)
{
	size_t plen = strlen(prefix);
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	if (plen == 0)
		return meta_drop(t, tab);
	rc = mdb_cursor_open(t->txn, t->m->dbi[tab], &cur);
	if (rc)
		return meta_errno(rc);
	/*
	 * Seek again after each delete rather than step: where a cursor
	 * stands after mdb_cursor_del is subtle, a seek is not.
	 */
	for (;;) {
		k = meta_key(prefix);
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (rc)
			break;
		if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
			break;
		rc = mdb_cursor_del(cur, 0);
		if (rc)
			break;
	}
	mdb_cursor_close(cur);
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : meta_errno(rc);
}

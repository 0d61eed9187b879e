/* SPDX-License-Identifier: MIT */
/*
 * The in-memory store, for tests: a sorted array of objects under one
 * mutex, so lookups are a binary search and a prefix is a contiguous run.
 * Any thread may enter.  No callback runs under the lock: list() copies
 * the matching keys out first, so a callback may call the store again.
 * tmp_path hands out names in a private mkdtemp'd directory that close
 * removes, and put_file reads the file in and unlinks it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store.h"
#include "store_i.h"

#define MEM_TMP_TEMPLATE "/tmp/mlfs-mem-XXXXXX"

struct mem_obj {
	char *key;
	char *data;	/* len bytes, never NULL */
	size_t len;	/* bytes */
	int64_t mtime;	/* seconds since the epoch */
};

struct mem {
	struct store base;		/* first: ops cast store to mem */
	pthread_mutex_t lock;
	struct mem_obj *objs;		/* under lock, sorted by key */
	size_t n;			/* under lock */
	size_t cap;			/* under lock */
	char tmpdir[sizeof(MEM_TMP_TEMPLATE)];	/* set at open */
	_Atomic unsigned long seq;	/* tmp_path names made so far */
};

/* One key of a list() snapshot; the key text follows the array. */
struct mem_entry {
	const char *key;
	struct store_stat st;
};

static struct mem *to_mem(struct store *s)
{
	return (struct mem *)s;
}

/* Under m->lock: the index of key, or where it would go (*found false). */
static size_t mem_find(struct mem *m, const char *key, bool *found)
{
	size_t lo = 0;
	size_t hi = m->n;
	size_t mid;
	int c;

	*found = false;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		c = strcmp(m->objs[mid].key, key);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * Store data (malloc'd, len bytes) under key.  On success the store owns
 * data; on failure (-ENOMEM) the caller still does.
 */
static int mem_insert(struct mem *m, const char *key, char *data, size_t len)
{
	struct mem_obj *objs;
	char *old = NULL;
	char *k = NULL;
	size_t klen;
	size_t cap;
	size_t i;
	bool found;
	int rc = 0;

	klen = strlen(key) + 1;
	k = malloc(klen);
	if (!k)
		return -ENOMEM;
	memcpy(k, key, klen);
	pthread_mutex_lock(&m->lock);
	i = mem_find(m, key, &found);
	if (found) {
		old = m->objs[i].data;
		m->objs[i].data = data;
		m->objs[i].len = len;
		m->objs[i].mtime = time(NULL);
		goto out_unlock;	/* the existing key stays */
	}
	if (m->n == m->cap) {
		cap = m->cap ? m->cap * 2 : 16;
		objs = realloc(m->objs, cap * sizeof(*objs));
		if (!objs) {
			rc = -ENOMEM;
			goto out_unlock;
		}
		m->objs = objs;
		m->cap = cap;
	}
	memmove(&m->objs[i + 1], &m->objs[i], (m->n - i) * sizeof(*m->objs));
	m->objs[i].key = k;
	m->objs[i].data = data;
	m->objs[i].len = len;
	m->objs[i].mtime = time(NULL);
	m->n++;
	k = NULL;
out_unlock:
	pthread_mutex_unlock(&m->lock);
	free(old);
	free(k);
	return rc;
}

static int mem_put(struct store *s, const char *key, const void *buf,
		   size_t len)
{
	char *data;
	int rc;

	if (!store_key_is_valid(key))
		return -EINVAL;
	/* One spare byte, so an empty object still has a buffer. */
	data = malloc(len + 1);
	if (!data)
		return -ENOMEM;
	memcpy(data, buf, len);
	rc = mem_insert(to_mem(s), key, data, len);
	if (rc < 0)
		free(data);
	return rc;
}

static int mem_put_file(struct store *s, const char *key, const char *path)
{
	struct stat st;
	char *data;
	ssize_t n;
	int fd;
	int rc;

	if (!store_key_is_valid(key))
		return -EINVAL;
	fd = store_open_source(path, &st);
	if (fd < 0)
		return fd;
	data = malloc((size_t)st.st_size + 1);
	if (!data) {
		rc = -ENOMEM;
		goto out_close_fd;
	}
	n = store_pread_full(fd, data, (size_t)st.st_size, 0);
	rc = n < 0 ? (int)n : mem_insert(to_mem(s), key, data, (size_t)n);
	if (rc < 0)
		free(data);
	else
		unlink(path);	/* stored: a failed unlink is no failure */
out_close_fd:
	close(fd);
	return rc;
}

static int mem_get(struct store *s, const char *key, size_t max, char **buf,
		   size_t *len)
{
	struct mem *m = to_mem(s);
	struct mem_obj *o;
	bool found;
	char *p;
	size_t i;
	int rc = 0;

	*buf = NULL;
	*len = 0;
	if (!store_key_is_valid(key))
		return -EINVAL;
	pthread_mutex_lock(&m->lock);
	i = mem_find(m, key, &found);
	if (!found) {
		rc = -ENOENT;
		goto out_unlock;
	}
	o = &m->objs[i];
	if (o->len > max) {
		rc = -EFBIG;
		goto out_unlock;
	}
	p = malloc(o->len + 1);
	if (!p) {
		rc = -ENOMEM;
		goto out_unlock;
	}
	memcpy(p, o->data, o->len);
	p[o->len] = '\0';
	*buf = p;
	*len = o->len;
out_unlock:
	pthread_mutex_unlock(&m->lock);
	return rc;
}

static ssize_t mem_get_range(struct store *s, const char *key, void *buf,
			     size_t len, uint64_t off)
{
	struct mem *m = to_mem(s);
	struct mem_obj *o;
	ssize_t n;
	bool found;
	size_t i;

	if (!store_key_is_valid(key))
		return -EINVAL;
	pthread_mutex_lock(&m->lock);
	i = mem_find(m, key, &found);
	if (!found) {
		n = -ENOENT;
		goto out_unlock;
	}
	o = &m->objs[i];
	if (off >= o->len) {
		n = 0;
		goto out_unlock;
	}
	if (len > o->len - off)
		len = o->len - (size_t)off;
	memcpy(buf, o->data + off, len);
	n = (ssize_t)len;
out_unlock:
	pthread_mutex_unlock(&m->lock);
	return n;
}

static int mem_head(struct store *s, const char *key, struct store_stat *st)
{
	struct mem *m = to_mem(s);
	bool found;
	size_t i;
	int rc = 0;

	if (!store_key_is_valid(key))
		return -EINVAL;
	pthread_mutex_lock(&m->lock);
	i = mem_find(m, key, &found);
	if (found) {
		st->size = m->objs[i].len;
		st->mtime = m->objs[i].mtime;
		st->etag[0] = '\0';
	} else {
		rc = -ENOENT;
	}
	pthread_mutex_unlock(&m->lock);
	return rc;
}

static int mem_list(struct store *s, const char *prefix, store_list_fn fn,
		    void *arg)
{
	struct mem *m = to_mem(s);
	struct mem_entry *ents;
	size_t plen;
	size_t first;
	size_t count;
	size_t bytes;
	size_t i;
	bool found;
	char *text;
	int rc = 0;

	if (!store_prefix_is_valid(prefix))
		return -EINVAL;
	plen = strlen(prefix);
	pthread_mutex_lock(&m->lock);
	first = mem_find(m, prefix, &found);
	bytes = 0;
	for (i = first; i < m->n; i++) {
		if (strncmp(m->objs[i].key, prefix, plen) != 0)
			break;
		bytes += strlen(m->objs[i].key) + 1;
	}
	count = i - first;
	if (count == 0) {
		pthread_mutex_unlock(&m->lock);
		return 0;
	}
	ents = malloc(count * sizeof(*ents) + bytes);
	if (!ents) {
		pthread_mutex_unlock(&m->lock);
		return -ENOMEM;
	}
	text = (char *)(ents + count);
	for (i = 0; i < count; i++) {
		const struct mem_obj *o = &m->objs[first + i];
		size_t klen = strlen(o->key) + 1;

		memcpy(text, o->key, klen);
		ents[i].key = text;
		ents[i].st.size = o->len;
		ents[i].st.mtime = o->mtime;
		ents[i].st.etag[0] = '\0';
		text += klen;
	}
	pthread_mutex_unlock(&m->lock);
	for (i = 0; i < count && rc == 0; i++)
		rc = fn(arg, ents[i].key, &ents[i].st);
	free(ents);
	return rc;
}

static int mem_del(struct store *s, const char *key)
{
	struct mem *m = to_mem(s);
	struct mem_obj gone;
	bool found;
	size_t i;

	if (!store_key_is_valid(key))
		return -EINVAL;
	pthread_mutex_lock(&m->lock);
	i = mem_find(m, key, &found);
	if (!found) {
		pthread_mutex_unlock(&m->lock);
		return -ENOENT;
	}
	gone = m->objs[i];
	m->n--;
	memmove(&m->objs[i], &m->objs[i + 1], (m->n - i) * sizeof(*m->objs));
	pthread_mutex_unlock(&m->lock);
	free(gone.key);
	free(gone.data);
	return 0;
}

static int mem_open_fd(struct store *s, const char *key)
{
	(void)s;
	(void)key;
	return -EOPNOTSUPP;
}

static int mem_tmp_path(struct store *s, char *out, size_t outlen)
{
	struct mem *m = to_mem(s);
	unsigned long seq = atomic_fetch_add(&m->seq, 1);
	int n;

	n = snprintf(out, outlen, "%s/%lu", m->tmpdir, seq);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= outlen)
		return -ENAMETOOLONG;
	return 0;
}

/* Remove the tmp_path directory with whatever callers left in it. */
static void mem_remove_tmpdir(struct mem *m)
{
	const struct dirent *de;
	DIR *d;

	d = opendir(m->tmpdir);
	if (d) {
		while ((de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 ||
			    strcmp(de->d_name, "..") == 0)
				continue;
			unlinkat(dirfd(d), de->d_name, 0);
		}
		closedir(d);
	}
	rmdir(m->tmpdir);
}

static void mem_close(struct store *s)
{
	struct mem *m = to_mem(s);
	size_t i;

	mem_remove_tmpdir(m);
	for (i = 0; i < m->n; i++) {
		free(m->objs[i].key);
		free(m->objs[i].data);
	}
	free(m->objs);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static const struct store_ops mem_ops = {
	.get = mem_get,
	.get_range = mem_get_range,
	.put = mem_put,
	.put_file = mem_put_file,
	.head = mem_head,
	.list = mem_list,
	.del = mem_del,
	.open_fd = mem_open_fd,
	.tmp_path = mem_tmp_path,
	.close = mem_close,
};

int store_mem_open(struct store **out)
{
	struct mem *m;
	int rc;

	*out = NULL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->base.ops = &mem_ops;
	m->base.name = "mem";
	rc = -pthread_mutex_init(&m->lock, NULL);
	if (rc < 0)
		goto out_free_m;
	memcpy(m->tmpdir, MEM_TMP_TEMPLATE, sizeof(m->tmpdir));
	if (!mkdtemp(m->tmpdir)) {
		rc = -errno;
		goto out_destroy_lock;
	}
	atomic_init(&m->seq, 0);
	*out = &m->base;
	return 0;

out_destroy_lock:
	pthread_mutex_destroy(&m->lock);
out_free_m:
	free(m);
	return rc;
}

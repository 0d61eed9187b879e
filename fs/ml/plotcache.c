/* SPDX-License-Identifier: MIT */
/*
 * The cache of plotcache.h: a few entries, found by walking them (a
 * mount shows a handful of pictures at a time), the least recently used
 * one replaced when full.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "plotcache.h"
#include "strbuf.h"

#define PLOTS_KEEP 64                 /* pictures */
#define PLOTS_BYTES ((size_t)32 << 20) /* bytes of them, at most */

struct plot_entry {
	char *key;
	char *buf;
	size_t len;
	double until;  /* monotonic s; 0: for good */
	uint64_t used; /* tick of the last use */
};

struct plot_cache {
	pthread_mutex_t lock;
	struct plot_entry e[PLOTS_KEEP]; /* under lock */
	size_t bytes;                    /* under lock */
	uint64_t tick;                   /* under lock */
};

int plot_cache_open(struct fs *fs)
{
	struct plot_cache *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	fs->plots = c;
	return 0;
}

static void entry_clear(struct plot_cache *c, struct plot_entry *e)
{
	c->bytes -= e->len;
	free(e->key);
	free(e->buf);
	memset(e, 0, sizeof(*e));
}

void plot_cache_close(struct fs *fs)
{
	struct plot_cache *c = fs->plots;

	if (!c)
		return;
	for (size_t i = 0; i < PLOTS_KEEP; i++)
		entry_clear(c, &c->e[i]);
	pthread_mutex_destroy(&c->lock);
	free(c);
	fs->plots = NULL;
}

bool plot_cache_get(struct fs *fs, const char *key, double now,
		    struct strbuf *out)
{
	struct plot_cache *c = fs->plots;
	bool hit = false;

	if (!c)
		return false;
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < PLOTS_KEEP; i++) {
		struct plot_entry *e = &c->e[i];

		if (!e->key || strcmp(e->key, key) != 0)
			continue;
		if (e->until && now >= e->until) {
			entry_clear(c, e);
			break;
		}
		e->used = ++c->tick;
		hit = sb_append(out, e->buf, e->len) == 0;
		break;
	}
	pthread_mutex_unlock(&c->lock);
	return hit;
}

void plot_cache_put(struct fs *fs, const char *key, const char *buf,
		    size_t len, double until)
{
	struct plot_cache *c = fs->plots;
	struct plot_entry *victim = NULL;
	char *k, *b;

	if (!c || len > PLOTS_BYTES / 4)
		return;
	k = strdup(key);
	b = malloc(len ? len : 1);
	if (!k || !b) {
		free(k);
		free(b);
		return;
	}
	memcpy(b, buf, len);
	pthread_mutex_lock(&c->lock);
	/* the same key (drawn twice at once: keep one), a free entry, or
	 * the least used */
	for (size_t i = 0; i < PLOTS_KEEP && !victim; i++)
		if (c->e[i].key && strcmp(c->e[i].key, key) == 0)
			victim = &c->e[i];
	for (size_t i = 0; i < PLOTS_KEEP && !victim; i++)
		if (!c->e[i].key)
			victim = &c->e[i];
	if (!victim) {
		victim = &c->e[0];
		for (size_t i = 1; i < PLOTS_KEEP; i++)
			if (c->e[i].used < victim->used)
				victim = &c->e[i];
	}
	entry_clear(c, victim);
	/* room in bytes: the least used go first */
	while (c->bytes + len > PLOTS_BYTES) {
		struct plot_entry *old = NULL;

		for (size_t i = 0; i < PLOTS_KEEP; i++)
			if (c->e[i].key && (!old || c->e[i].used < old->used))
				old = &c->e[i];
		if (!old)
			break;
		entry_clear(c, old);
	}
	victim->key = k;
	victim->buf = b;
	victim->len = len;
	victim->until = until;
	victim->used = ++c->tick;
	c->bytes += len;
	pthread_mutex_unlock(&c->lock);
}

/* SPDX-License-Identifier: MIT */
/*
 * Garbage collection: blobs no version or job names.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bcache.h"
#include "catalog.h"
#include "csv.h"
#include "repo.h"
#include "fs.h"
#include "hash.h"
#include "hostfile.h"
#include "jsonout.h"
#include "meta.h"
#include "reap.h"
#include "remote.h"
#include "repo_int.h"
#include "store.h"

/* --- garbage collection --- */

struct gc_keys {
	char **k;
	size_t n;
	size_t cap;
	int64_t young;  /* blobs modified after this are spared */
};

static int gc_collect(void *arg, const char *key, const struct store_stat *st)
{
	struct gc_keys *g = arg;

	/*
	 * Blobs are put before the manifest that names them (a job's files,
	 * a model's): a young blob may be about to be referenced.
	 */
	if (st->mtime > g->young)
		return 0;
	if (g->n == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 256;
		char **nk = realloc(g->k, cap * sizeof(*nk));

		if (!nk)
			return -ENOMEM;
		g->k = nk;
		g->cap = cap;
	}
	g->k[g->n] = strdup(key);
	if (!g->k[g->n])
		return -ENOMEM;
	g->n++;
	return 0;
}

int repo_gc(struct fs *fs)
{
	struct gc_keys g = { .young = (int64_t)time(NULL) -
				      (int64_t)fs->opts.gc_grace };
	int removed = 0, rc;

	/* under ds_lock: no version can be published half-way through */
	repo_lock(fs);
	rc = store_list(fs->store, "blobs/", gc_collect, &g);
	for (size_t i = 0; rc == 0 && i < g.n; i++) {
		char hash[HASH_HEX_LEN + 1];

		if (!repo_blob_hash(g.k[i], hash))
			continue; /* not ours */
		if (reap_is_pending(fs, g.k[i]))
			continue; /* a removed version's, read until its grace ends */
		if (!repo_blob_referenced(fs, hash) &&
		    store_del(fs->store, g.k[i]) == 0)
			removed++;
	}
	pthread_mutex_unlock(&fs->ds_lock);
	for (size_t i = 0; i < g.n; i++)
		free(g.k[i]);
	free(g.k);
	if (rc == 0)
		fs_log(fs, 6, "gc: removed %d unreferenced blob%s", removed,
		       removed == 1 ? "" : "s");
	return rc < 0 ? rc : removed;
}

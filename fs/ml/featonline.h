/* SPDX-License-Identifier: MIT */
/*
 * A feature set's online store in LMDB (featonline.c): the latest
 * version's entities, each read as its vector as of now.  Any FUSE
 * worker, and the scheduler thread after a sync.
 */
#ifndef MLFS_FS_FEATONLINE_H
#define MLFS_FS_FEATONLINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "featevents.h"
#include "featstate.h"
#include "problem.h"
#include "strbuf.h"

struct fs;
struct feat_spec;

/*
 * featonline_start: the cache of sets' latest specs and marks in fs
 * (fs->feat_cache; without it every read parses them again);
 * featonline_stop frees it once no request can arrive.  NULL-safe.
 */
int featonline_start(struct fs *fs);
void featonline_stop(struct fs *fs);

/*
 * featonline_refresh: load the latest version's history into the store
 * unless it holds it already (one write transaction).  0 also for a set
 * with no version yet.
 */
int featonline_refresh(struct fs *fs, const char *set);

/*
 * featonline_cut: the last event log segment the online store holds
 * (*seq; 0: none), what a sync starting now reads up to.
 */
int featonline_cut(struct fs *fs, const char *set, uint64_t *seq);

/*
 * featonline_log_fd: a descriptor on an unlinked file holding the log of
 * set's incarnation inc up to segment cut, as one CSV in the columns of
 * spec (the sync's spec, JSON: a header, then the rows, each segment's
 * read by its own header), for a sync job; -errno (-EINVAL: a segment
 * that spec cannot read, logged).
 */
int featonline_log_fd(struct fs *fs, const char *set, json_t *spec,
		      const char *inc, uint64_t cut);

/*
 * featonline_append: events b (parsed under spec, which must still be
 * the set's latest) appended to the set's event log in the store (a new
 * segment, durable when this returns) and merged into the online store,
 * one write transaction: all of them or none.  -EINVAL with pb for a
 * value that does not fit its entity's column types, or a spec that
 * changed.
 */
int featonline_append(struct fs *fs, const char *set,
		      const struct feat_spec *spec, struct feat_batch *b,
		      struct problem *pb);

/*
 * A reader of a set's latest events, for join and predict by key, set
 * up with fs, set and spec (the latest, compiled) and the rest zero.
 * find (a jstream_find_fn) gives the entity's whole history: the latest
 * version's, loaded at the first call, with the log after its cut
 * (-ESTALE if the spec changed meanwhile); it keeps the last entity's.
 */
struct featonline_reader {
	struct fs *fs;
	const char *set;
	const struct feat_spec *spec;
	bool loaded;
	void *hbuf;                 /* the version's history */
	struct feat_hist hist;
	bool has_hist;
	struct feat_batch log;      /* the log after its cut */
	size_t *ord;                /* log rows by entity */
	char *key;                  /* the last entity found */
	size_t klen;
	bool have;
	const struct feat_hist *cur;
	size_t k;
	void *hm;                   /* its merged history, if it has rows */
	size_t hmlen;
	struct feat_hist h;
	struct feat_state st;       /* featonline_asof's last record */
};
int featonline_find(void *reader, const char *key, size_t klen,
		    const struct feat_hist **h, size_t *k);
/*
 * featonline_asof: the entity's features as of t into out[nfeat], from
 * its online record when that covers t (a read as of now), else from
 * featonline_find's history; *h: the history feat_put_value reads (NULL
 * and -ENOENT: an entity without events, which has no record).
 */
int featonline_asof(struct featonline_reader *r, const char *key, size_t klen,
		    double t, double *out, const struct feat_hist **h);
void featonline_reader_free(struct featonline_reader *r);

/*
 * featonline_forget: set was removed: its online records and its event
 * log (every incarnation's) go.  Best effort; what stays is garbage that
 * a set made again under the name never reads.
 */
void featonline_forget(struct fs *fs, const char *set);

/* Does the store hold entity key (values joined by 0x1f, klen bytes)? */
bool featonline_has(struct fs *fs, const char *set, const char *key,
		    size_t klen);

/*
 * featonline_render: the entity's vector as of now (whole seconds): a
 * CSV header (entity columns, as_of, features) and one row, or (json) one
 * JSON object.  -ENOENT for an unknown key.
 */
int featonline_render(struct fs *fs, const char *set, const char *key,
		      size_t klen, bool json, struct strbuf *out);

/* fn(arg, key, len) for each entity key, in byte order; fn's non-zero
 * return stops the listing and is returned. */
int featonline_list(struct fs *fs, const char *set,
		    int (*fn)(void *arg, const char *key, size_t len),
		    void *arg);

#endif

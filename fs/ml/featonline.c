/* SPDX-License-Identifier: MIT */
/*
 * A feature set's online store and event log (featonline.h).
 *
 * The log: each write to features/<fs>/events that carries rows is one
 * segment in the store, features/<fs>/events/<incarnation>/<seq>.csv
 * (created, never replaced: a second writer takes the next number), so it
 * exports to S3 and survives a rebuild; a set made again under the same
 * name has an incarnation of its own, and so a log of its own.
 *
 * The store: one LMDB record per entity in META_ONLINE, "<set>/<entity
 * key>" -> the entity's events as a history of their own (featcalc.h),
 * and "<set>/" -> the mark "<history hash, or none-v<n>> <incarnation> <last
 * segment> <record format>".
 * A read is the entity's vector as of now by featcalc.c, the code that
 * writes offline.csv and answers join.  It is loaded from the latest
 * version's history, then the log's segments after that version's cut,
 * whenever the mark is behind (a sync published, the index was rebuilt,
 * a new spec), in one write transaction; appends merge into it in one
 * write transaction after their segment is stored.  fs->online_lock
 * serialises loads and appends; readers take no lock.
 */
#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <pthread.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

#include "featcalc.h"
#include "featevents.h"
#include "featonline.h"
#include "featstate.h"
#include "fs.h"
#include "jsonout.h"
#include "meta.h"
#include "repo.h"
#include "store.h"

#define ONLINE_KEY_MAX 400                  /* bytes of an entity key */
#define HISTORY_MAX ((size_t)16 << 30)

/* "<set>/" + key: the record's LMDB key; -ENAMETOOLONG past the limit. */
static int record_key(const char *set, const char *key, size_t klen,
		      char *out, size_t cap)
{
	size_t slen = strlen(set);

	if (klen > ONLINE_KEY_MAX || memchr(key, '\0', klen) ||
	    slen + 1 + klen >= cap)
		return -ENAMETOOLONG;
	memcpy(out, set, slen);
	out[slen] = '/';
	memcpy(out + slen + 1, key, klen);
	out[slen + 1 + klen] = '\0';
	return 0;
}

/*
 * The marker, "<set>/" -> "<history hash or none> <incarnation> <seq>
 * <format>": the history loaded, the set's incarnation (a set made again
 * under the same name has a log of its own), the last log segment
 * applied, and the layout of the records (FEAT_STATE_FORMAT).
 */
struct mark {
	char hist[72];
	char inc[40];
	uint64_t seq;
};

/* Is the mark a history's (else "none-v<n>": a version without one)? */
static bool has_history(const struct mark *m)
{
	return strncmp(m->hist, "none", 4) != 0;
}

static void log_key(const char *set, const char *inc, uint64_t seq,
		    char *out, size_t cap)
{
	snprintf(out, cap, "features/%s/events/%s/%012llu.csv", set, inc,
		 (unsigned long long)seq);
}

/*
 * The latest version's spec, mark and cut per set, keyed by the set's
 * incarnation and latest version number (versions never change): a read
 * of online/ then parses the set's record only, not its manifest.
 */
#define FEAT_CACHE_N 64

struct feat_cache {
	pthread_mutex_t lock;
	unsigned next;            /* the entry to replace next */
	struct {
		char set[256];
		char inc[40];
		long long ver;        /* 0: free */
		uint64_t gen;         /* fs->rec_gen when the set's index
					 record was read */
		char hist[72];
		uint64_t cut;
		json_t *spec;
	} e[FEAT_CACHE_N];
};

int featonline_start(struct fs *fs)
{
	fs->feat_cache = calloc(1, sizeof(*fs->feat_cache));
	if (!fs->feat_cache)
		return -ENOMEM;
	pthread_mutex_init(&fs->feat_cache->lock, NULL);
	return 0;
}

void featonline_stop(struct fs *fs)
{
	struct feat_cache *c = fs->feat_cache;

	if (!c)
		return;
	for (size_t i = 0; i < FEAT_CACHE_N; i++)
		json_decref(c->e[i].spec);
	pthread_mutex_destroy(&c->lock);
	free(c);
	fs->feat_cache = NULL;
}

/*
 * The cached entry of set: the one of its incarnation and latest version
 * (ver > 0), or, with ver 0, the one read while fs->rec_gen was gen (no
 * index record has changed since, so it is the set's current one).
 */
static bool cache_get(struct fs *fs, const char *set, const struct mark *m,
		      long long ver, uint64_t gen, struct mark *out,
		      uint64_t *cut, json_t **spec)
{
	struct feat_cache *c = fs->feat_cache;
	bool hit = false;

	if (!c)
		return false;
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < FEAT_CACHE_N && !hit; i++) {
		if (!c->e[i].ver || strcmp(c->e[i].set, set) ||
		    (ver ? c->e[i].ver != ver || strcmp(c->e[i].inc, m->inc)
			 : c->e[i].gen != gen))
			continue;
		snprintf(out->inc, sizeof(out->inc), "%s", c->e[i].inc);
		snprintf(out->hist, sizeof(out->hist), "%s", c->e[i].hist);
		*cut = c->e[i].cut;
		*spec = json_incref(c->e[i].spec);
		hit = true;
	}
	pthread_mutex_unlock(&c->lock);
	return hit;
}

static void cache_put(struct fs *fs, const char *set, const struct mark *m,
		      long long ver, uint64_t gen, uint64_t cut, json_t *spec)
{
	struct feat_cache *c = fs->feat_cache;
	unsigned i;

	if (!c || !spec)
		return;
	pthread_mutex_lock(&c->lock);
	/* the set's entry if it has one, else the next in turn */
	for (i = 0; i < FEAT_CACHE_N && strcmp(c->e[i].set, set); i++)
		;
	if (i == FEAT_CACHE_N)
		i = c->next++ % FEAT_CACHE_N;
	c->e[i].gen = gen;
	json_decref(c->e[i].spec);
	snprintf(c->e[i].set, sizeof(c->e[i].set), "%s", set);
	snprintf(c->e[i].inc, sizeof(c->e[i].inc), "%s", m->inc);
	snprintf(c->e[i].hist, sizeof(c->e[i].hist), "%s", m->hist);
	c->e[i].ver = ver;
	c->e[i].cut = cut;
	c->e[i].spec = json_incref(spec);
	pthread_mutex_unlock(&c->lock);
}

/*
 * What the store should hold: the latest version's history and log cut
 * (*m, *cut), and its spec (*spec, a new reference).
 */
static int wanted(struct fs *fs, const char *set, json_t **spec,
		  struct mark *m, uint64_t *cut)
{
	uint64_t gen = atomic_load(&fs->rec_gen);
	const char *hash, *inc;
	json_t *rec, *man;
	long long ver;
	int rc;

	*spec = NULL;
	/* no index record changed since the set's was read: as it was */
	if (cache_get(fs, set, m, 0, gen, m, cut, spec))
		return 0;
	rc = repo_get(fs, &repo_features, set, &rec);
	if (rc < 0)
		return rc;
	inc = json_string_value(json_object_get(rec, "incarnation"));
	snprintf(m->inc, sizeof(m->inc), "%s", inc ? inc : "0");
	ver = (long long)json_integer_value(json_object_get(rec, "latest"));
	json_decref(rec);
	if (ver > 0 && cache_get(fs, set, m, ver, 0, m, cut, spec)) {
		cache_put(fs, set, m, ver, gen, *cut, *spec);
		return 0;
	}
	rc = repo_version(fs, &repo_features, set, 0, &man);
	if (rc < 0)
		return rc;
	hash = json_string_value(json_object_get(
		json_object_get(json_object_get(man, "files"), "history"),
		"hash"));
	/* without a history, the version: the records a spec's events made
	 * are in its columns, and no later spec may read them as its own */
	if (hash)
		snprintf(m->hist, sizeof(m->hist), "%s", hash);
	else
		snprintf(m->hist, sizeof(m->hist), "none-v%lld",
			 (long long)json_integer_value(
				 json_object_get(man, "version")));
	*cut = (uint64_t)json_integer_value(json_object_get(man, "log_cut"));
	*spec = json_incref(json_object_get(man, "spec"));
	if (json_integer_value(json_object_get(man, "version")) == ver)
		cache_put(fs, set, m, ver, gen, *cut, *spec);
	json_decref(man);
	return 0;
}

static int mark_read(struct meta_txn *t, const char *set, struct mark *m)
{
	char key[300], fmt[8], *val = NULL;
	unsigned long long seq;
	size_t len;
	int rc;

	snprintf(key, sizeof(key), "%s/", set);
	rc = meta_get(t, META_ONLINE, key, &val, &len);
	/* records of another layout (an older daemon's): not loaded */
	if (rc == 0 && (sscanf(val, "%71s %39s %llu %7s", m->hist, m->inc, &seq,
			       fmt) != 4 ||
			strcmp(fmt, FEAT_STATE_FORMAT) != 0))
		rc = -ENOENT;
	if (rc == 0)
		m->seq = seq;
	free(val);
	return rc;
}

static int mark_write(struct meta_txn *t, const char *set,
		      const struct mark *m)
{
	char key[300], val[160];

	snprintf(key, sizeof(key), "%s/", set);
	snprintf(val, sizeof(val), "%s %s %llu %s", m->hist, m->inc,
		 (unsigned long long)m->seq, FEAT_STATE_FORMAT);
	return meta_put(t, META_ONLINE, key, val, strlen(val));
}

/* Does the store hold want's history and incarnation?  (*have: its mark) */
static bool is_loaded(struct fs *fs, const char *set, const struct mark *want,
		      struct mark *have)
{
	struct meta_txn *t;
	bool same = false;

	if (meta_txn_begin(fs->online, true, &t) < 0)
		return false;
	if (mark_read(t, set, have) == 0)
		same = strcmp(have->hist, want->hist) == 0 &&
		       strcmp(have->inc, want->inc) == 0;
	meta_txn_abort(t);
	return same;
}

/* An entity's record, loaded into *st (an aligned copy); -ENOENT. */
static int record_get(struct meta_txn *t, const char *rkey,
		      const struct feat_spec *spec, struct feat_state *st)
{
	char why[200], *val = NULL;
	size_t len;
	int rc = meta_get(t, META_ONLINE, rkey, &val, &len);

	if (rc == 0 && feat_state_load(val, len, spec, st, why, sizeof(why)) < 0)
		rc = -EIO;
	if (rc < 0) {
		free(val);
		return rc;
	}
	st->owned = val;
	return 0;
}

/*
 * An entity's record through cursor c, copied into rec (reused: aligned
 * and kept between entities) and loaded into *st, which borrows rec;
 * -ENOENT.
 */
static int record_borrow(struct meta_cursor *c, const char *rkey,
			 const struct feat_spec *spec, struct strbuf *rec,
			 struct feat_state *st)
{
	char why[200];
	const void *val;
	size_t len;
	int rc = meta_cursor_get(c, rkey, &val, &len);

	if (rc < 0)
		return rc;
	rec->len = 0;
	if (sb_append(rec, val, len) < 0)
		return -ENOMEM;
	if (feat_state_load(rec->buf, len, spec, st, why, sizeof(why)) < 0)
		return -EIO;
	return 0;
}

/*
 * An event's entity key, for sorting a batch by entity: pre holds its
 * first 8 bytes big-endian (zeros after a shorter key), so most compares
 * are one of integers; byte order all the same.
 */
struct kref {
	uint64_t pre;
	const char *key;
	size_t len, i;
};

static uint64_t key_prefix(const char *key, size_t len)
{
	uint64_t pre = 0;

	for (size_t i = 0; i < 8; i++)
		pre = pre << 8 | (i < len ? (unsigned char)key[i] : 0);
	return pre;
}

static int kref_cmp(const void *a, const void *b)
{
	const struct kref *x = a, *y = b;
	int c;

	if (x->pre != y->pre)
		return x->pre < y->pre ? -1 : 1;
	c = x->len > 8 && y->len > 8
		    ? memcmp(x->key + 8, y->key + 8,
			     (x->len < y->len ? x->len : y->len) - 8)
		    : 0;
	if (c == 0)
		c = (x->len > y->len) - (x->len < y->len);
	return c ? c : (x->i > y->i) - (x->i < y->i);
}

/* Are kr[0..n) in kref_cmp's order already? */
static bool kref_sorted(const struct kref *kr, size_t n)
{
	for (size_t i = 1; i < n; i++)
		if (kref_cmp(&kr[i - 1], &kr[i]) > 0)
			return false;
	return true;
}

/*
 * ord[0..b->n): b's rows by entity, then as written, and *sorted (unless
 * NULL) their keys in that order (malloc'd, 2 * b->n + 1 of them; the
 * caller frees them; neighbours there show an entity's rows without going
 * back to the batch's scattered keys).  A stable LSD radix sort on the
 * 8-byte prefixes (passes whose byte is the same in every key skipped),
 * then kref_cmp within a run of one prefix where the keys may differ past
 * it: qsort with kref_cmp was 8 % of a stream (a 1 MiB write of 40,000
 * rows), this under 2 %.
 */
static int batch_by_entity(const struct feat_batch *b, size_t *ord,
			   struct kref **sorted)
{
	size_t n = b->n;
	struct kref *kr = malloc((2 * n + 1) * sizeof(*kr));
	size_t(*count)[256] = calloc(8, sizeof(*count));
	struct kref *src = kr, *dst = kr + n;

	if (!kr || !count) {
		free(kr);
		free(count);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		kr[i].key = feat_batch_key(b, i, &kr[i].len);
		kr[i].pre = key_prefix(kr[i].key, kr[i].len);
		kr[i].i = i;
		for (unsigned d = 0; d < 8; d++)
			count[d][(kr[i].pre >> (8 * d)) & 0xff]++;
	}
	for (unsigned d = 0; n && d < 8; d++) {
		size_t at = 0;
		struct kref *swap;

		if (count[d][(src[0].pre >> (8 * d)) & 0xff] == n)
			continue; /* one value of this byte: nothing moves */
		for (unsigned v = 0; v < 256; v++) {
			size_t c = count[d][v];

			count[d][v] = at;
			at += c;
		}
		for (size_t i = 0; i < n; i++) {
			unsigned v = (src[i].pre >> (8 * d)) & 0xff;

			dst[count[d][v]++] = src[i];
		}
		swap = src;
		src = dst;
		dst = swap;
	}
	for (size_t g = 0, h; g < n; g = h) {
		bool alike = true; /* one length of at most 8: one key */

		for (h = g + 1; h < n && src[h].pre == src[g].pre; h++)
			alike = alike && src[h].len == src[g].len;
		if (h - g > 1 && !(alike && src[g].len <= 8) &&
		    !kref_sorted(src + g, h - g))
			qsort(src + g, h - g, sizeof(*src), kref_cmp);
	}
	for (size_t i = 0; i < n; i++)
		ord[i] = src[i].i;
	if (sorted && src != kr)
		memcpy(kr, src, n * sizeof(*kr));
	if (sorted)
		*sorted = kr;
	else
		free(kr);
	free(count);
	return 0;
}

/* Do x and y, of a sorted batch, hold the same key? */
static bool kref_same(const struct kref *x, const struct kref *y)
{
	return x->pre == y->pre && x->len == y->len &&
	       (x->len <= 8 || memcmp(x->key + 8, y->key + 8, x->len - 8) == 0);
}

/*
 * The column types of an entity's events: those of one (its history, or
 * NULL) with ev[0..n), rows ord[0..n) of b.  A column the spec does not
 * type turns categorical when text comes, as a sync would make it.
 * -EINVAL with pb for text in a column that holds numbers.  anytext
 * (NULL: unknown) says per column whether any row of b has text that is
 * not a number: where none has, or the column's type is settled, the
 * rows need not be looked at (they were a tenth of a stream's time in
 * cache misses).
 */
static int event_types(const struct feat_spec *spec,
		       const struct feat_hist *one, const struct feat_batch *b,
		       const size_t *ord, const struct feat_event *ev,
		       size_t n, const bool *anytext, bool *cat,
		       struct problem *pb)
{
	int rc = 0;

	for (size_t c = 0; rc == 0 && c < spec->ncols; c++) {
		bool text = false;

		cat[c] = spec->cat[c] || (one && one->coltype[c]);
		/* settled, or no text to settle it: the rows need no look */
		if (cat[c] || (anytext && !anytext[c]))
			continue;

		for (size_t i = 0; i < n && !text; i++)
			text = ev[i].str[c] && isnan(ev[i].num[c]);
		cat[c] = !spec->num[c] && text;
		for (size_t i = 0; i < n && !cat[c] && rc == 0; i++) {
			const struct feat_event *e = &ev[i];

			if (e->str[c] && isnan(e->num[c]))
				rc = problem_set(
					pb, (unsigned)b->line[ord[i]], 0,
					"\"%s\": \"%.*s\" is not a number "
					"(the column holds numbers)",
					spec->cols[c],
					(int)(e->slen[c] > 40 ? 40 : e->slen[c]),
					e->str[c]);
		}
	}
	return rc;
}

/*
 * A batch's events in key order, gathered: their values, keys and texts
 * copied in one pass, so that the update of each entity reads its events
 * where the last one's ended.  Read in place, in key order, the events
 * are scattered over the batch, and their first touches were a fifth of
 * a stream in cache misses, each waiting on the one before; in one tight
 * pass the misses overlap.
 */
struct gathered {
	struct feat_event *ev; /* kr's order; the rest is the same block */
	double *num;
	const char **str;
	size_t *slen;
	char *bytes;           /* each event's key, then its texts */
};

/* g: b's events in kr's order; kr's keys are moved into g's bytes. */
static int batch_gather(const struct feat_batch *b, struct kref *kr,
			struct gathered *g)
{
	size_t n = b->n, nc = b->ncols, at = 0;
	char *block = malloc(n * sizeof(*g->ev) +
			     n * nc * (sizeof(*g->num) + sizeof(*g->str) +
				       sizeof(*g->slen)) +
			     b->arena.len + 1);

	if (!block)
		return -ENOMEM;
	g->ev = (struct feat_event *)block;
	g->num = (double *)(g->ev + n);
	g->str = (const char **)(g->num + n * nc);
	g->slen = (size_t *)(g->str + n * nc);
	g->bytes = (char *)(g->slen + n * nc);
	for (size_t k = 0; k < n; k++) {
		size_t i = kr[k].i;

		memcpy(g->bytes + at, kr[k].key, kr[k].len);
		kr[k].key = g->bytes + at;
		at += kr[k].len;
		for (size_t c = 0; c < nc; c++) {
			const char *text = b->str[i * nc + c];
			size_t l = b->slen[i * nc + c];

			g->num[k * nc + c] = b->num[i * nc + c];
			g->slen[k * nc + c] = l;
			g->str[k * nc + c] = text ? g->bytes + at : NULL;
			if (text) {
				memcpy(g->bytes + at, text, l);
				at += l;
			}
		}
		g->ev[k] = (struct feat_event){ b->ev[i].t, g->num + k * nc,
						 g->str + k * nc,
						 g->slen + k * nc };
	}
	assert(at <= b->arena.len);
	return 0;
}

/*
 * Merge the batch into the records in t.  -EINVAL with pb for a value
 * that does not fit its entity's column types (the caller aborts t).
 */
static int apply(struct meta_txn *t, const char *set,
		 const struct feat_spec *spec, const struct feat_batch *b,
		 struct problem *pb)
{
	size_t *ord = malloc((b->n + 1) * sizeof(*ord));
	struct gathered ga = { 0 };
	bool *cat = calloc(spec->ncols + 1, sizeof(*cat));
	bool *anytext = calloc(spec->ncols + 1, sizeof(*anytext));
	double now = (double)time(NULL);
	struct meta_cursor *cur = NULL;
	struct kref *kr = NULL;      /* the keys in ord's order */
	struct strbuf rec = { 0 };   /* a record's aligned copy */
	int rc = ord && cat && anytext ? 0 : -ENOMEM;

	/* in the batch's order: one sequential pass */
	for (size_t i = 0; rc == 0 && i < b->n; i++)
		for (size_t c = 0; c < spec->ncols; c++)
			anytext[c] = anytext[c] ||
				     (b->str[i * b->ncols + c] &&
				      isnan(b->num[i * b->ncols + c]));

	if (rc == 0)
		rc = meta_cursor_open(t, META_ONLINE, &cur);

	if (rc == 0)
		rc = batch_by_entity(b, ord, &kr);
	if (rc == 0)
		rc = batch_gather(b, kr, &ga);
	for (size_t g = 0; rc == 0 && g < b->n;) {
		struct feat_state one = { 0 };
		char rkey[800];
		size_t klen = kr[g].len, n = 1;
		const char *key = kr[g].key;
		bool have;
		void *buf;
		size_t len;

		while (g + n < b->n && kref_same(&kr[g], &kr[g + n]))
			n++;
		rc = record_key(set, key, klen, rkey, sizeof(rkey));
		if (rc < 0) {
			rc = problem_set(pb, (unsigned)b->line[ord[g]], 0,
					 "the entity key is over 400 bytes or holds a "
					 "NUL byte");
			break;
		}
		rc = record_borrow(cur, rkey, spec, &rec, &one);
		have = rc == 0;
		if (rc == -ENOENT)
			rc = 0;
		if (rc == 0)
			rc = event_types(spec, have ? &one.h : NULL, b,
					 ord + g, ga.ev + g, n, anytext, cat,
					 pb);
		if (rc == 0) {
			rc = feat_state_update(spec, have ? &one : NULL, cat,
					       key, klen, b->iso, ga.ev + g, n,
					       now, &buf, &len);
			if (rc == 0) {
				rc = meta_cursor_put(cur, rkey, buf, len);
				free(buf);
			}
		}
		feat_hist_free(&one.h);
		g += n;
	}
	meta_cursor_close(cur);
	sb_free(&rec);
	free(kr);
	free(ord);
	free(ga.ev);
	free(cat);
	free(anytext);
	return rc;
}

struct seg_list {
	uint64_t *seq;
	size_t n, cap;
	uint64_t after;
};

static int seg_one(void *arg, const char *key, const struct store_stat *st)
{
	struct seg_list *l = arg;
	const char *base = strrchr(key, '/');
	unsigned long long seq;
	char tail[8];

	(void)st;
	if (!base || sscanf(base + 1, "%12llu%7s", &seq, tail) != 2 ||
	    strcmp(tail, ".csv") != 0 || seq <= l->after)
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		uint64_t *p = realloc(l->seq, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		l->seq = p;
		l->cap = cap;
	}
	l->seq[l->n++] = seq;
	return 0;
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* The log's segments of inc after seq after, in order (*out malloc'd). */
static int log_segments(struct fs *fs, const char *set, const char *inc,
			uint64_t after, uint64_t **out, size_t *n)
{
	char prefix[400];
	struct seg_list l = { .after = after };
	int rc;

	snprintf(prefix, sizeof(prefix), "features/%s/events/%s/", set, inc);
	rc = store_list(fs->store, prefix, seg_one, &l);
	if (rc < 0 && rc != -ENOENT) {
		free(l.seq);
		return rc;
	}
	if (l.n)
		qsort(l.seq, l.n, sizeof(*l.seq), u64_cmp);
	*out = l.seq;
	*n = l.n;
	return 0;
}

/*
 * The rows of a log segment (key; body, len bytes, from line 2, under
 * header head) into b as spec reads them.  A row spec refuses (logged
 * under an earlier spec: a reject bound added since, a column now
 * numeric) is left out and counted in *refused, the first one logged: a
 * new spec never makes the log unreadable.
 */
static int rows_lenient(struct fs *fs, const char *key,
			const struct feat_spec *spec, const char *head,
			size_t hlen, const char *body, size_t len,
			struct feat_batch *b, uint64_t *refused)
{
	uint64_t line = 2;

	for (;;) {
		struct problem pb = { 0 };
		const char *p = body;
		int rc = feat_rows_parse(spec, head, hlen, body, len, line, b,
					 &pb);

		if (rc != -EINVAL)
			return rc;
		if (!*refused)
			fs_log(fs, 4, "%s: %u:%u: %s (left out: the spec "
				      "changed since it was logged)",
			       key, pb.line, pb.col, pb.msg);
		if (pb.line < line) { /* the header: no row of it reads */
			for (p = body; p < body + len; p++)
				*refused += *p == '\n';
			return 0;
		}
		(*refused)++;
		for (uint64_t l = line; p && l <= pb.line; l++) {
			const char *nl = memchr(p, '\n', (size_t)(body + len - p));

			p = nl ? nl + 1 : NULL;
		}
		if (!p || p == body + len)
			return 0;
		len -= (size_t)(p - body);
		body = p;
		line = pb.line + 1;
	}
}

/* A log segment's events, appended to b (*refused: rows left out). */
static int segment_read(struct fs *fs, const char *set, const char *inc,
			uint64_t seq, const struct feat_spec *spec,
			struct feat_batch *b, uint64_t *refused)
{
	char key[400], *text;
	const char *nl;
	size_t len;
	int rc;

	log_key(set, inc, seq, key, sizeof(key));
	rc = store_get(fs->store, key, (size_t)1 << 30, &text, &len);
	if (rc < 0)
		return rc;
	nl = memchr(text, '\n', len);
	rc = nl ? rows_lenient(fs, key, spec, text, (size_t)(nl - text),
			       nl + 1, len - (size_t)(nl - text) - 1, b,
			       refused)
		: 0;
	free(text);
	return rc;
}

/* Replace set's records: h's keys (NULL: none), then the log after cut. */
static int reload(struct fs *fs, const char *set, struct mark *m,
		  const struct feat_spec *spec, const struct feat_hist *h,
		  uint64_t cut, size_t *skipped)
{
	struct feat_batch b = { 0 };
	struct problem pb = { 0 };
	struct meta_txn *t;
	char prefix[300], key[800];
	uint64_t *segs = NULL, refused = 0;
	size_t nsegs = 0;
	double now = (double)time(NULL);
	int rc;

	/* the log first, outside any transaction */
	m->seq = cut;
	rc = log_segments(fs, set, m->inc, cut, &segs, &nsegs);
	for (size_t i = 0; rc == 0 && i < nsegs; i++) {
		rc = segment_read(fs, set, m->inc, segs[i], spec, &b,
				  &refused);
		m->seq = segs[i];
	}
	free(segs);
	feat_batch_seal(&b);
	snprintf(prefix, sizeof(prefix), "%s/", set);
	if (rc == 0)
		rc = meta_txn_begin(fs->online, false, &t);
	if (rc < 0) {
		feat_batch_free(&b);
		return rc;
	}
	rc = meta_drop_prefix(t, META_ONLINE, prefix);
	for (size_t k = 0; rc == 0 && h && k < h->nkeys; k++) {
		void *buf;
		size_t len;

		if (record_key(set, h->keys + h->key_off[k],
			       h->key_off[k + 1] - h->key_off[k], key,
			       sizeof(key)) < 0) {
			(*skipped)++;
			continue;
		}
		rc = feat_state_of(spec, h, k, now, &buf, &len);
		if (rc == 0) {
			rc = meta_put(t, META_ONLINE, key, buf, len);
			free(buf);
		}
	}
	if (rc == 0 && b.n)
		rc = apply(t, set, spec, &b, &pb);
	if (rc == 0)
		rc = mark_write(t, set, m);
	feat_batch_free(&b);
	if (rc < 0) {
		meta_txn_abort(t);
		return rc;
	}
	return meta_txn_commit(t);
}

/* featonline_refresh under fs->online_lock; *m: the mark now held. */
static int refresh_locked(struct fs *fs, const char *set, struct mark *m,
			  struct feat_spec **spec_out)
{
	struct feat_spec *spec = NULL;
	struct feat_hist h = { 0 };
	struct mark have;
	char key[96], why[200];
	size_t skipped = 0, len;
	json_t *man = NULL;
	char *buf = NULL;
	uint64_t cut;
	int rc;

	rc = wanted(fs, set, &man, m, &cut);
	if (rc == 0)
		rc = feat_spec_compile(man, &spec);
	if (rc == 0 && is_loaded(fs, set, m, &have)) {
		m->seq = have.seq;
		goto out;
	}
	if (rc == 0 && has_history(m)) {
		repo_blob_key(m->hist, key, sizeof(key));
		rc = store_get(fs->store, key, HISTORY_MAX, &buf, &len);
		if (rc == 0 &&
		    feat_hist_load(buf, len, spec, &h, why, sizeof(why)) < 0) {
			fs_log(fs, 3, "features/%s: %s", set, why);
			rc = -EIO;
		}
	}
	if (rc == 0)
		rc = reload(fs, set, m, spec,
			    has_history(m) ? &h : NULL, cut, &skipped);
	if (rc == 0)
		fs_log(fs, 6,
		       "features/%s: online store loaded: %zu entities from "
		       "the history%s, the log to segment %llu",
		       set, h.nkeys - skipped,
		       skipped ? " (some keys too long to keep)" : "",
		       (unsigned long long)m->seq);
out:
	feat_hist_free(&h);
	free(buf);
	json_decref(man);
	if (rc == 0 && spec_out)
		*spec_out = spec;
	else
		feat_spec_free(spec);
	return rc;
}

/* featonline_refresh, giving the latest spec too (*spec, or NULL). */
static int refresh(struct fs *fs, const char *set, json_t **spec)
{
	struct mark want, have;
	json_t *man;
	uint64_t cut;
	int rc;

	/* the common case, without the lock: loaded already */
	rc = wanted(fs, set, &man, &want, &cut);
	if (rc == 0 && !is_loaded(fs, set, &want, &have)) {
		pthread_mutex_lock(&fs->online_lock);
		rc = refresh_locked(fs, set, &want, NULL);
		pthread_mutex_unlock(&fs->online_lock);
	}
	if (rc == 0 && spec)
		*spec = json_incref(man);
	json_decref(man);
	return rc == -ENOENT && !spec ? 0 : rc; /* no spec yet: none */
}

int featonline_refresh(struct fs *fs, const char *set)
{
	return refresh(fs, set, NULL);
}

int featonline_cut(struct fs *fs, const char *set, uint64_t *seq)
{
	struct mark m;
	int rc;

	pthread_mutex_lock(&fs->online_lock);
	rc = refresh_locked(fs, set, &m, NULL);
	pthread_mutex_unlock(&fs->online_lock);
	*seq = rc == 0 ? m.seq : 0;
	return rc == -ENOENT ? 0 : rc;
}

/*
 * The rows of a log segment (text, len bytes: its header, then rows) in
 * the columns of head, spec's log header: as they are when the segment
 * was written under a spec with the same columns in the same order, else
 * read by name (featevents.c) and written again, so that a segment of an
 * earlier spec never lends its values to the wrong columns.
 */
static int segment_rows(struct fs *fs, const struct feat_spec *spec,
			const char *key, const struct strbuf *head,
			const char *text, size_t len, int fd)
{
	const char *body = memchr(text, '\n', len);
	struct feat_batch b = { 0 };
	uint64_t refused = 0;
	size_t hlen;
	int rc;

	body = body ? body + 1 : text + len;
	hlen = (size_t)(body - text);
	if (hlen == head->len && memcmp(text, head->buf, hlen) == 0) {
		len -= hlen;
		return write(fd, body, len) == (ssize_t)len ? 0 : -EIO;
	}
	rc = hlen ? rows_lenient(fs, key, spec, text, hlen - 1, body,
				 len - hlen, &b, &refused)
		  : 0;
	if (rc == 0 && b.csv.len &&
	    write(fd, b.csv.buf, b.csv.len) != (ssize_t)b.csv.len)
		rc = -EIO;
	feat_batch_free(&b);
	return rc;
}

int featonline_log_fd(struct fs *fs, const char *set, json_t *spec_json,
		      const char *inc, uint64_t cut)
{
	char path[4096], key[400], *text;
	struct feat_spec *spec = NULL;
	struct strbuf head = { 0 };
	uint64_t *segs = NULL;
	size_t nsegs = 0, len;
	int fd, rc;

	rc = feat_spec_compile(spec_json, &spec);
	if (rc == 0)
		rc = feat_log_header(spec, &head);
	if (rc == 0)
		rc = store_tmp_path(fs->store, path, sizeof(path));
	if (rc < 0) {
		feat_spec_free(spec);
		sb_free(&head);
		return rc;
	}
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		feat_spec_free(spec);
		sb_free(&head);
		return rc;
	}
	unlink(path); /* the descriptor is enough */
	rc = log_segments(fs, set, inc, 0, &segs, &nsegs);
	/* one header, the spec's, then every segment's rows in its columns */
	if (rc == 0 && nsegs && segs[0] <= cut &&
	    write(fd, head.buf, head.len) != (ssize_t)head.len)
		rc = -EIO;
	for (size_t i = 0; rc == 0 && i < nsegs && segs[i] <= cut; i++) {
		log_key(set, inc, segs[i], key, sizeof(key));
		rc = store_get(fs->store, key, (size_t)1 << 30, &text, &len);
		if (rc < 0)
			break;
		rc = segment_rows(fs, spec, key, &head, text, len, fd);
		free(text);
	}
	free(segs);
	sb_free(&head);
	feat_spec_free(spec);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	return fd;
}

int featonline_append(struct fs *fs, const char *set,
		      const struct feat_spec *spec, struct feat_batch *b,
		      struct problem *pb)
{
	struct feat_spec *cur = NULL;
	struct meta_txn *t;
	struct strbuf seg = { 0 };
	char key[400];
	struct mark m;
	int rc, tries;

	feat_batch_seal(b);
	pthread_mutex_lock(&fs->online_lock);
	rc = refresh_locked(fs, set, &m, &cur);
	/* the handle's spec must still be the latest */
	if (rc == 0 && !json_equal(cur->json, spec->json))
		rc = problem_set(pb, 0, 0, "the spec changed since this "
					   "handle was opened: open it again");
	/*
	 * One pass: the batch merges into the records in a write
	 * transaction, which commits only once its segment is durable in
	 * the store, and aborts (nothing applied) on a bad value.  Holding
	 * it across the store's I/O holds up no reader, and no writer that
	 * online_lock does not already.
	 */
	if (rc == 0)
		rc = meta_txn_begin(fs->online, false, &t);
	if (rc < 0)
		goto out;
	rc = apply(t, set, spec, b, pb);
	if (rc == 0)
		rc = feat_log_header(spec, &seg);
	if (rc == 0 && sb_append(&seg, b->csv.buf, b->csv.len) < 0)
		rc = -ENOMEM;
	/* durable before anything sees it; a segment that exists is another
	 * writer's (or a crash's after its write): the next number */
	for (tries = 0; rc == 0 && tries < 1000; tries++) {
		log_key(set, m.inc, ++m.seq, key, sizeof(key));
		rc = store_create(fs->store, key, seg.buf, seg.len);
		if (rc != -EEXIST)
			break;
		rc = 0;
	}
	if (rc == 0)
		rc = mark_write(t, set, &m);
	if (rc == 0)
		rc = meta_txn_commit(t);
	else
		meta_txn_abort(t);
out:
	pthread_mutex_unlock(&fs->online_lock);
	sb_free(&seg);
	feat_spec_free(cur);
	return rc;
}

/* The entity's record (an aligned copy) and the spec. */
static int record_load(struct fs *fs, const char *set, const char *key,
		       size_t klen, struct feat_spec **spec,
		       struct feat_state *st)
{
	char rkey[800];
	struct meta_txn *t;
	json_t *man;
	int rc;

	*spec = NULL;
	rc = record_key(set, key, klen, rkey, sizeof(rkey));
	if (rc < 0)
		return -ENOENT;
	rc = refresh(fs, set, &man);
	if (rc < 0)
		return rc;
	rc = feat_spec_compile(man, spec);
	json_decref(man);
	if (rc == 0)
		rc = meta_txn_begin(fs->online, true, &t);
	if (rc == 0) {
		rc = record_get(t, rkey, *spec, st);
		meta_txn_abort(t);
	}
	if (rc < 0) {
		feat_spec_free(*spec);
		*spec = NULL;
	}
	return rc;
}

/*
 * The reader's full history (at its first find): the latest version's,
 * and the log after its cut, its rows ordered by entity.
 */
static int reader_load(struct featonline_reader *r)
{
	struct feat_spec *spec = NULL;
	char key[96], why[200];
	struct mark m;
	uint64_t *segs = NULL, refused = 0;
	size_t nsegs = 0, len;
	json_t *man;
	uint64_t cut;
	int rc;

	rc = wanted(r->fs, r->set, &man, &m, &cut);
	if (rc < 0)
		return rc;
	rc = feat_spec_compile(man, &spec);
	json_decref(man);
	if (rc == 0 && !json_equal(spec->json, r->spec->json))
		rc = -ESTALE;
	feat_spec_free(spec);
	if (rc == 0 && has_history(&m)) {
		repo_blob_key(m.hist, key, sizeof(key));
		rc = store_get(r->fs->store, key, HISTORY_MAX, (char **)&r->hbuf,
			       &len);
		if (rc == 0 && feat_hist_load(r->hbuf, len, r->spec, &r->hist,
					      why, sizeof(why)) < 0) {
			fs_log(r->fs, 3, "features/%s: %s", r->set, why);
			rc = -EIO;
		}
		r->has_hist = rc == 0;
	}
	if (rc == 0)
		rc = log_segments(r->fs, r->set, m.inc, cut, &segs, &nsegs);
	for (size_t i = 0; rc == 0 && i < nsegs; i++)
		rc = segment_read(r->fs, r->set, m.inc, segs[i], r->spec,
				  &r->log, &refused);
	free(segs);
	feat_batch_seal(&r->log);
	if (rc == 0) {
		r->ord = malloc((r->log.n + 1) * sizeof(*r->ord));
		if (!r->ord)
			rc = -ENOMEM;
	}
	if (rc == 0)
		rc = batch_by_entity(&r->log, r->ord, NULL);
	r->loaded = rc == 0;
	return rc;
}

/* The log's rows of key: ord[*lo .. *lo + return). */
static size_t reader_rows(const struct featonline_reader *r, const char *key,
			  size_t klen, size_t *lo)
{
	size_t a = 0, b = r->log.n, n = 0, l;

	while (a < b) {
		size_t mid = a + (b - a) / 2;
		const char *k = feat_batch_key(&r->log, r->ord[mid], &l);
		int c = memcmp(k, key, l < klen ? l : klen);

		if (c < 0 || (c == 0 && l < klen))
			a = mid + 1;
		else
			b = mid;
	}
	*lo = a;
	while (a + n < r->log.n &&
	       (feat_batch_key(&r->log, r->ord[a + n], &l), l == klen) &&
	       memcmp(feat_batch_key(&r->log, r->ord[a + n], &l), key, klen) ==
		       0)
		n++;
	return n;
}

int featonline_find(void *reader, const char *key, size_t klen,
		    const struct feat_hist **h, size_t *k)
{
	struct featonline_reader *r = reader;
	struct feat_hist one = { 0 };
	struct feat_event *ev;
	struct problem pb = { 0 };
	size_t lo, n;
	void *slice = NULL;
	char why[200];
	bool *cat;
	long kk;
	int rc;

	*h = NULL;
	*k = 0;
	if (!r->loaded) {
		rc = reader_load(r);
		if (rc < 0)
			return rc;
	}
	if (r->key && r->klen == klen && memcmp(r->key, key, klen) == 0) {
		*h = r->have ? r->cur : NULL;
		*k = r->k;
		return r->have ? 0 : -ENOENT;
	}
	feat_hist_free(&r->h);
	free(r->hm);
	r->hm = NULL;
	free(r->key);
	r->have = false;
	r->key = malloc(klen + 1);
	if (!r->key)
		return -ENOMEM;
	memcpy(r->key, key, klen);
	r->klen = klen;
	kk = r->has_hist ? feat_hist_find(&r->hist, key, klen) : -1;
	n = reader_rows(r, key, klen, &lo);
	if (n == 0) {
		if (kk < 0)
			return -ENOENT;
		r->cur = &r->hist;
		r->k = (size_t)kk;
		r->have = true;
		*h = r->cur;
		*k = r->k;
		return 0;
	}
	/* the version's events of key, then its rows of the log */
	ev = malloc(n * sizeof(*ev));
	cat = calloc(r->spec->ncols + 1, sizeof(*cat));
	rc = ev && cat ? 0 : -ENOMEM;
	if (rc == 0 && kk >= 0) {
		size_t slen;

		rc = feat_hist_slice(&r->hist, (size_t)kk, &slice, &slen);
		if (rc == 0 && feat_hist_load(slice, slen, r->spec, &one, why,
					      sizeof(why)) < 0)
			rc = -EIO;
	}
	for (size_t i = 0; rc == 0 && i < n; i++)
		ev[i] = r->log.ev[r->ord[lo + i]];
	if (rc == 0)
		rc = event_types(r->spec, kk >= 0 ? &one : NULL, &r->log,
				 r->ord + lo, ev, n, NULL, cat, &pb);
	if (rc == 0)
		rc = feat_hist_merge(kk >= 0 ? &one : NULL, cat,
				     r->spec->ncols, key, klen, r->log.iso, ev,
				     n, &r->hm, &r->hmlen);
	if (rc == 0 && feat_hist_load(r->hm, r->hmlen, r->spec, &r->h, why,
				      sizeof(why)) < 0)
		rc = -EIO;
	feat_hist_free(&one);
	free(slice);
	free(ev);
	free(cat);
	if (rc < 0)
		return rc == -EINVAL ? -EIO : rc;
	r->cur = &r->h;
	r->k = 0;
	r->have = true;
	*h = r->cur;
	return 0;
}

int featonline_asof(struct featonline_reader *r, const char *key, size_t klen,
		    double t, double *out, const struct feat_hist **h)
{
	char rkey[800];
	struct meta_txn *t_;
	size_t k;
	int rc;

	*h = NULL;
	if (record_key(r->set, key, klen, rkey, sizeof(rkey)) < 0)
		return -ENOENT;
	feat_state_free(&r->st);
	rc = meta_txn_begin(r->fs->online, true, &t_);
	if (rc < 0)
		return rc;
	rc = record_get(t_, rkey, r->spec, &r->st);
	meta_txn_abort(t_);
	if (rc == 0 && feat_state_covers(r->spec, &r->st, t)) {
		feat_state_asof(r->spec, &r->st, t, out);
		*h = &r->st.h;
		return 0;
	}
	if (rc < 0) /* every entity with events has a record */
		return rc;
	/* older than the record keeps: the full history */
	rc = featonline_find(r, key, klen, h, &k);
	if (rc == 0)
		feat_asof(r->spec, *h, k, t, out);
	return rc;
}

void featonline_reader_free(struct featonline_reader *r)
{
	feat_hist_free(&r->h);
	free(r->hm);
	r->hm = NULL;
	feat_hist_free(&r->hist);
	free(r->hbuf);
	r->hbuf = NULL;
	feat_batch_free(&r->log);
	free(r->ord);
	r->ord = NULL;
	feat_state_free(&r->st);
	free(r->key);
	r->key = NULL;
	r->loaded = false;
}

bool featonline_has(struct fs *fs, const char *set, const char *key,
		    size_t klen)
{
	char rkey[800];
	struct meta_txn *t;
	int rc;

	if (record_key(set, key, klen, rkey, sizeof(rkey)) < 0 || !klen ||
	    featonline_refresh(fs, set) < 0 ||
	    meta_txn_begin(fs->online, true, &t) < 0)
		return false;
	rc = meta_has(t, META_ONLINE, rkey);
	meta_txn_abort(t);
	return rc == 1;
}

static int render_csv(const struct feat_spec *s, const struct feat_hist *h,
		      double now, const double *v, struct strbuf *out)
{
	const char *p = h->keys, *end = h->keys + h->key_off[1];
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < s->nent; i++)
		rc = feat_put_field(out, s->entity[i], strlen(s->entity[i])) ||
		     sb_append(out, ",", 1);
	rc = rc || sb_puts(out, "as_of");
	for (size_t i = 0; rc == 0 && i < s->nfeat; i++)
		rc = sb_append(out, ",", 1) ||
		     feat_put_field(out, s->feat[i].name,
				    strlen(s->feat[i].name));
	rc = rc || sb_append(out, "\n", 1);
	while (rc == 0) {
		const char *sep = memchr(p, FEAT_KEY_SEP, (size_t)(end - p));
		const char *e = sep ? sep : end;

		rc = feat_put_field(out, p, (size_t)(e - p)) ||
		     sb_append(out, ",", 1);
		if (!sep)
			break;
		p = sep + 1;
	}
	rc = rc || feat_put_time(out, h, now);
	for (size_t i = 0; rc == 0 && i < s->nfeat; i++)
		rc = sb_append(out, ",", 1) || feat_put_value(out, s, h, i, v[i]);
	return rc || sb_append(out, "\n", 1) ? -ENOMEM : 0;
}

static int render_json(const struct feat_spec *s, const struct feat_hist *h,
		       double now, const double *v, struct strbuf *out)
{
	const char *p = h->keys, *end = h->keys + h->key_off[1];
	json_t *o = json_object();
	struct strbuf sb = { 0 };
	char *text;
	int rc = o ? 0 : -ENOMEM;

	for (size_t i = 0; rc == 0 && i < s->nent; i++) {
		const char *sep = memchr(p, FEAT_KEY_SEP, (size_t)(end - p));
		const char *e = sep ? sep : end;

		rc = json_object_set_new(o, s->entity[i],
					 json_stringn(p, (size_t)(e - p)));
		p = sep ? sep + 1 : end;
	}
	if (rc == 0 && feat_put_time(&sb, h, now) == 0)
		rc = json_object_set_new(o, "as_of",
					 h->iso ? json_stringn(sb.buf, sb.len)
						: json_real(now));
	for (size_t i = 0; rc == 0 && i < s->nfeat; i++) {
		long c = s->feat[i].col;
		json_t *j;

		if (isnan(v[i])) {
			j = json_null();
		} else if (c >= 0 && h->coltype[c]) {
			uint64_t x;

			j = feat_dict_index(v[i], h->ndict[c], &x)
				    ? json_stringn(h->dict[c] + h->doff[c][x],
						   h->doff[c][x + 1] -
							   h->doff[c][x])
				    : json_null();
		} else {
			j = json_real(v[i]);
		}
		rc = json_object_set_new(o, s->feat[i].name, j);
	}
	sb_free(&sb);
	text = rc == 0 ? json_dumps_short(o, JSON_PRESERVE_ORDER) : NULL;
	json_decref(o);
	if (!text)
		return -ENOMEM;
	rc = sb_puts(out, text) || sb_append(out, "\n", 1) ? -ENOMEM : 0;
	free(text);
	return rc;
}

int featonline_render(struct fs *fs, const char *set, const char *key,
		      size_t klen, bool json, struct strbuf *out)
{
	struct feat_spec *spec;
	struct feat_state st;
	double now = floor((double)time(NULL));
	double *v;
	int rc;

	rc = record_load(fs, set, key, klen, &spec, &st);
	if (rc < 0)
		return rc;
	v = calloc(spec->nfeat + 1, sizeof(*v));
	if (!v) {
		rc = -ENOMEM;
	} else {
		feat_state_asof(spec, &st, now, v);
		rc = json ? render_json(spec, &st.h, now, v, out)
			  : render_csv(spec, &st.h, now, v, out);
	}
	free(v);
	feat_state_free(&st);
	feat_spec_free(spec);
	return rc;
}

struct list_arg {
	size_t plen;
	int (*fn)(void *arg, const char *key, size_t len);
	void *arg;
};

static int list_one(void *arg, const char *key, const char *val, size_t len)
{
	struct list_arg *l = arg;

	(void)val;
	(void)len;
	if (!key[l->plen])
		return 0; /* the marker */
	return l->fn(l->arg, key + l->plen, strlen(key + l->plen));
}

int featonline_list(struct fs *fs, const char *set,
		    int (*fn)(void *arg, const char *key, size_t len),
		    void *arg)
{
	char prefix[300];
	struct list_arg l = { 0, fn, arg };
	struct meta_txn *t;
	int rc;

	rc = featonline_refresh(fs, set);
	if (rc < 0)
		return rc;
	snprintf(prefix, sizeof(prefix), "%s/", set);
	l.plen = strlen(prefix);
	rc = meta_txn_begin(fs->online, true, &t);
	if (rc < 0)
		return rc;
	rc = meta_scan(t, META_ONLINE, prefix, NULL, list_one, &l);
	meta_txn_abort(t);
	return rc;
}

static int forget_one(void *arg, const char *key, const struct store_stat *st)
{
	struct fs *fs = arg;

	(void)st;
	store_del(fs->store, key);
	return 0;
}

void featonline_forget(struct fs *fs, const char *set)
{
	char prefix[320];
	struct meta_txn *t;

	pthread_mutex_lock(&fs->online_lock);
	snprintf(prefix, sizeof(prefix), "%s/", set);
	if (meta_txn_begin(fs->online, false, &t) == 0) {
		if (meta_drop_prefix(t, META_ONLINE, prefix) == 0)
			meta_txn_commit(t);
		else
			meta_txn_abort(t);
	}
	snprintf(prefix, sizeof(prefix), "features/%s/events/", set);
	store_list(fs->store, prefix, forget_one, fs);
	pthread_mutex_unlock(&fs->online_lock);
}

/* SPDX-License-Identifier: MIT */
/*
 * The prediction store of a deployment (deploy.h, deploy_int.h): JSON
 * lines appended in memory and committed to the store as numbered
 * segments, one per group commit; reads of `predictions` find a byte
 * offset's segment by the end offsets kept in memory.  Each answer is
 * also kept, by the hash of its id, in a ring that feedback searches
 * for the newest unlabelled answer of an id.  At load, the segments are
 * read again in order to rebuild the ring and the latest revision's
 * counters, so a remount judges feedback as the mount before it did.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <xxhash.h>

#include "deploy_int.h"
#include "fs.h"
#include "store.h"

/* bytes of one segment read back at load */
#define SEGMENT_MAX ((size_t)1 << 30)

void dlog_segment_key(const struct dent *e, uint64_t n, char *out,
		      size_t cap)
{
	snprintf(out, cap, "deployments/%s/predictions/%s/%012" PRIu64 ".jsonl",
		 e->name, e->inc, n);
}

/* --- the answers feedback may label --- */

static size_t ring_cap(const struct dent *e)
{
	return e->nbuckets / 2;
}

/* The answer numbered gi (1-based handle h = gi + 1), if still held. */
static struct dpred *ring_at(struct dent *e, uint64_t h)
{
	uint64_t gi = h - 1;

	if (h == 0 || gi >= e->npred || e->npred - gi > ring_cap(e))
		return NULL;
	return &e->preds[gi % ring_cap(e)];
}

/* Twice the room, the chains rebuilt (before the ring first wraps). */
static int ring_grow(struct dent *e)
{
	size_t cap = e->nbuckets ? ring_cap(e) * 2 : 1024;
	struct dpred *np = realloc(e->preds, cap * sizeof(*np));
	uint64_t *nb;

	if (!np)
		return -ENOMEM;
	e->preds = np;
	nb = calloc(cap * 2, sizeof(*nb));
	if (!nb)
		return -ENOMEM;
	free(e->buckets);
	e->buckets = nb;
	e->nbuckets = cap * 2;
	for (uint64_t gi = 0; gi < e->npred; gi++) {
		struct dpred *p = &e->preds[gi];
		uint64_t b = p->idhash & (e->nbuckets - 1);

		p->prev = e->buckets[b];
		e->buckets[b] = gi + 1;
	}
	return 0;
}

void dlog_add_pred(struct dent *e, const char *id, size_t idlen,
		   const struct dpred *p)
{
	uint64_t h = XXH3_64bits(id, idlen), b;
	struct dpred *slot;

	if ((e->nbuckets == 0 || e->npred == ring_cap(e)) &&
	    ring_cap(e) < DEP_PREDS_MAX && ring_grow(e) < 0)
		return; /* no memory: this answer cannot be labelled */
	slot = &e->preds[e->npred % ring_cap(e)];
	*slot = *p;
	slot->idhash = h;
	b = h & (e->nbuckets - 1);
	slot->prev = e->buckets[b];
	e->buckets[b] = ++e->npred;
}

struct dpred *dlog_match(struct dent *e, const char *id, size_t idlen)
{
	uint64_t h = XXH3_64bits(id, idlen);
	bool seen = false;
	struct dpred *p;

	if (e->nbuckets == 0) {
		e->fb_unknown++;
		return NULL;
	}
	for (p = ring_at(e, e->buckets[h & (e->nbuckets - 1)]); p;
	     p = ring_at(e, p->prev)) {
		if (p->idhash != h)
			continue;
		if (!p->labelled) {
			p->labelled = true;
			e->fb_labelled++;
			return p;
		}
		seen = true;
	}
	if (seen)
		e->fb_repeated++;
	else
		e->fb_unknown++;
	return NULL;
}

/* --- appends and group commits --- */

int dlog_append(struct dent *e, const char *buf, size_t len, uint64_t *upto)
{
	uint64_t n = 0;
	int rc;

	for (size_t i = 0; i < len; i++)
		n += buf[i] == '\n';
	pthread_mutex_lock(&e->lock);
	rc = sb_append(&e->pending, buf, len);
	if (rc == 0)
		e->lines += n;
	*upto = e->lines;
	pthread_mutex_unlock(&e->lock);
	return rc;
}

static int seg_note(struct dent *e, uint64_t no, uint64_t len, int64_t when)
{
	if (e->nseg == e->segcap) {
		size_t cap = e->segcap ? e->segcap * 2 : 64;
		uint64_t *a = realloc(e->segno, cap * sizeof(*a));
		int64_t *t;

		if (!a)
			return -ENOMEM;
		e->segno = a;
		a = realloc(e->segend, cap * sizeof(*a));
		if (!a)
			return -ENOMEM;
		e->segend = a;
		t = realloc(e->segtime, cap * sizeof(*t));
		if (!t)
			return -ENOMEM;
		e->segtime = t;
		e->segcap = cap;
	}
	e->size += len;
	e->segno[e->nseg] = no;
	e->segtime[e->nseg] = when;
	e->segend[e->nseg++] = e->size;
	return 0;
}

/*
 * Retention: the oldest segments go, whole, from the store and from the
 * front of `predictions` (a reader at its end sees the file shrink, as
 * after a log rotation; tail -f says so and follows on).
 */
void dlog_retain(struct dent *e, int64_t now, uint64_t age, uint64_t bytes)
{
	for (;;) {
		uint64_t no, len;
		char key[700];

		pthread_mutex_lock(&e->commit_lock);
		pthread_mutex_lock(&e->lock);
		if (e->nseg < 2 ||
		    !((age && now - e->segtime[0] > (int64_t)age) ||
		      (bytes && e->size > bytes))) {
			pthread_mutex_unlock(&e->lock);
			pthread_mutex_unlock(&e->commit_lock);
			return;
		}
		no = e->segno[0];
		len = e->segend[0];
		e->nseg--;
		memmove(e->segno, e->segno + 1, e->nseg * sizeof(*e->segno));
		memmove(e->segtime, e->segtime + 1,
			e->nseg * sizeof(*e->segtime));
		for (size_t i = 0; i < e->nseg; i++)
			e->segend[i] = e->segend[i + 1] - len;
		e->size -= len;
		pthread_mutex_unlock(&e->lock);
		dlog_segment_key(e, no, key, sizeof(key));
		store_del(e->fs->store, key);
		pthread_mutex_unlock(&e->commit_lock);
	}
}

/*
 * Make the lines up to upto durable: the pending lines go into the next
 * segment, in order; a commit running meanwhile may have taken them
 * already.  0, or the store's -errno with the lines kept pending.
 */
int dlog_commit(struct dent *e, uint64_t upto)
{
	struct strbuf seg = { 0 };
	uint64_t lines;
	char key[700];
	int rc = 0;

	pthread_mutex_lock(&e->commit_lock);
	pthread_mutex_lock(&e->lock);
	if (e->forgotten) /* removed: its store went with it */
		e->pending.len = 0;
	if (e->durable >= upto || e->pending.len == 0) {
		pthread_mutex_unlock(&e->lock);
		pthread_mutex_unlock(&e->commit_lock);
		return 0;
	}
	seg = e->pending;
	e->pending = (struct strbuf){ .max = seg.max };
	lines = e->lines;
	pthread_mutex_unlock(&e->lock);
	/* a segment of this number may be a crashed writer's: the next */
	for (int tries = 0; tries < 1000; tries++) {
		dlog_segment_key(e, e->segseq + 1, key, sizeof(key));
		rc = store_create(e->fs->store, key, seg.buf, seg.len);
		e->segseq++;
		if (rc != -EEXIST)
			break;
	}
	pthread_mutex_lock(&e->lock);
	if (rc == 0)
		rc = seg_note(e, e->segseq, seg.len, (int64_t)time(NULL));
	if (rc == 0) {
		e->durable = lines;
		sb_free(&seg);
	} else {
		/* kept, before what came since */
		if (sb_append(&seg, e->pending.buf, e->pending.len) == 0) {
			sb_free(&e->pending);
			e->pending = seg;
		} else {
			sb_free(&seg);
		}
		fs_log(e->fs, 3, "deployments/%s: predictions: %s", e->name,
		       strerror(-rc));
	}
	pthread_mutex_unlock(&e->lock);
	pthread_mutex_unlock(&e->commit_lock);
	return rc;
}

/* --- load: the segments read again --- */

struct seg {
	uint64_t no;
	int64_t mtime;
};

struct seglist {
	struct seg *s;
	size_t n, cap;
	size_t plen;
};

static int seg_listed(void *arg, const char *key, const struct store_stat *st)
{
	struct seglist *l = arg;
	const char *p = key + l->plen;
	char *end;
	unsigned long long no;

	no = strtoull(p, &end, 10);
	if (end == p || strcmp(end, ".jsonl") != 0)
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct seg *a = realloc(l->s, cap * sizeof(*a));

		if (!a)
			return -ENOMEM;
		l->s = a;
		l->cap = cap;
	}
	l->s[l->n].mtime = st ? st->mtime : 0;
	l->s[l->n++].no = no;
	return 0;
}

static int seg_cmp(const void *a, const void *b)
{
	uint64_t x = ((const struct seg *)a)->no, y = ((const struct seg *)b)->no;

	return x < y ? -1 : x > y;
}

/* The index of ref among cur's models, or -1. */
static long model_index(const struct dep *cur, const char *ref)
{
	for (size_t i = 0; ref && i < cur->nm; i++)
		if (strcmp(cur->ref[i], ref) == 0)
			return (long)i;
	return -1;
}

/* A logged label, matched as it was when written. */
static void replay_feedback(struct dent *e, struct dep *cur, const char *id,
			    json_t *truth)
{
	struct dpred *p = dlog_match(e, id, strlen(id));
	const char *tt = json_string_value(truth);
	char num[64];

	e->fb_received++;
	if (!tt && json_is_number(truth)) {
		snprintf(num, sizeof(num), "%.17g", json_number_value(truth));
		tt = num;
	}
	if (p && tt && cur && p->rev == cur->rev && p->cand < cur->nm)
		dep_label(cur, p, tt, strlen(tt));
}

/* One logged line, as it was when written. */
static void replay_line(struct dent *e, struct dep *cur, json_t *j)
{
	const char *kind = json_string_value(json_object_get(j, "kind"));
	const char *id = json_string_value(json_object_get(j, "id"));
	unsigned rev = (unsigned)json_integer_value(json_object_get(j,
								  "revision"));
	long c = model_index(cur, json_string_value(json_object_get(
					  j, "candidate")));
	bool mine = cur && rev == cur->rev && c >= 0;

	if (!kind)
		return;
	if (strcmp(kind, "prediction") == 0 && id) {
		json_t *pv = json_object_get(json_object_get(j, "output"),
					     "prediction");
		struct dpred p = { .rev = rev, .cand = 0xffff };

		if (mine) {
			p.cand = (uint16_t)c;
			cur->cs[c].requests++;
			p.value = served_value_of(cur->ms[c], pv);
		}
		dlog_add_pred(e, id, strlen(id), &p);
	} else if (strcmp(kind, "error") == 0 && mine) {
		cur->cs[c].errors++;
	} else if (strcmp(kind, "shadow") == 0 && mine) {
		cur->cs[c].mirrored++;
	} else if (strcmp(kind, "feedback") == 0 && id) {
		replay_feedback(e, cur, id, json_object_get(j, "truth"));
	}
}

int dlog_load(struct dent *e, struct dep *cur)
{
	struct seglist l = { 0 };
	char prefix[600];
	int rc;

	snprintf(prefix, sizeof(prefix), "deployments/%s/predictions/%s/",
		 e->name, e->inc);
	l.plen = strlen(prefix);
	rc = store_list(e->fs->store, prefix, seg_listed, &l);
	if (rc == -ENOENT)
		rc = 0;
	if (rc < 0) {
		free(l.s);
		return rc;
	}
	if (l.n)
		qsort(l.s, l.n, sizeof(*l.s), seg_cmp);
	for (size_t i = 0; rc == 0 && i < l.n; i++) {
		char key[700], *buf = NULL;
		size_t len = 0;

		dlog_segment_key(e, l.s[i].no, key, sizeof(key));
		rc = store_get(e->fs->store, key, SEGMENT_MAX, &buf, &len);
		if (rc < 0)
			break;
		rc = seg_note(e, l.s[i].no, len, l.s[i].mtime);
		e->segseq = l.s[i].no;
		for (char *p = buf, *end = buf + len; rc == 0 && p < end;) {
			char *nl = memchr(p, '\n', (size_t)(end - p));
			json_t *j;

			if (!nl)
				nl = end;
			j = json_loadb(p, (size_t)(nl - p), 0, NULL);
			if (j)
				replay_line(e, cur, j);
			json_decref(j);
			p = nl + 1;
		}
		free(buf);
	}
	free(l.s);
	return rc;
}

void dlog_free(struct dent *e)
{
	sb_free(&e->pending);
	free(e->segno);
	free(e->segend);
	free(e->segtime);
	free(e->preds);
	free(e->buckets);
}

/* --- reads of `predictions` --- */

/* The committed bytes at off (up to size), from the segments. */
ssize_t dlog_read(struct dent *e, char *buf, size_t size, uint64_t off)
{
	size_t got = 0;

	while (got < size) {
		uint64_t start, end, no;
		size_t lo = 0, hi, i;
		char key[700];
		ssize_t n;

		pthread_mutex_lock(&e->lock);
		hi = e->nseg;
		while (lo < hi) { /* the first segment ending past off */
			size_t mid = (lo + hi) / 2;

			if (e->segend[mid] <= off)
				lo = mid + 1;
			else
				hi = mid;
		}
		i = lo;
		if (i == e->nseg) {
			pthread_mutex_unlock(&e->lock);
			break;
		}
		start = i ? e->segend[i - 1] : 0;
		end = e->segend[i];
		no = e->segno[i];
		pthread_mutex_unlock(&e->lock);
		dlog_segment_key(e, no, key, sizeof(key));
		n = store_get_range(e->fs->store, key, buf + got,
				    (size_t)(end - off) < size - got
					    ? (size_t)(end - off)
					    : size - got,
				    off - start);
		if (n < 0)
			return got ? (ssize_t)got : n;
		if (n == 0)
			break;
		got += (size_t)n;
		off += (uint64_t)n;
	}
	return (ssize_t)got;
}

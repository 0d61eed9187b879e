/* SPDX-License-Identifier: MIT */
/*
 * Building a feature history (featcalc.h) from events in a parsed CSV:
 * the columns the spec names, times, numbers and categories, sorted by
 * entity and time into the flat buffer that feat_hist_load reads.  Runs
 * in the sync job; pure.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "csv.h"
#include "featcalc.h"

/* Distinct strings, each with its index in order of first sight. */
struct intern {
	uint32_t *slot;     /* index + 1; 0 free */
	size_t mask;
	size_t n;
	char *bytes;
	size_t blen, bcap;
	uint64_t *off;      /* n + 1 */
	size_t ocap;
};

static int intern_grow(struct intern *in)
{
	size_t cap = in->mask ? (in->mask + 1) * 2 : 1024;
	uint32_t *slot = calloc(cap, sizeof(*slot));

	if (!slot)
		return -ENOMEM;
	for (size_t i = 0; i < in->n; i++) {
		const char *p = in->bytes + in->off[i];
		size_t h = (size_t)XXH3_64bits(p, in->off[i + 1] - in->off[i]);

		while (slot[h & (cap - 1)])
			h++;
		slot[h & (cap - 1)] = (uint32_t)i + 1;
	}
	free(in->slot);
	in->slot = slot;
	in->mask = cap - 1;
	return 0;
}

/* The index of p (len bytes), added if new; -ENOMEM, -E2BIG. */
static long intern_add(struct intern *in, const char *p, size_t len)
{
	size_t h;

	if ((in->n + 1) * 2 > in->mask + 1 && intern_grow(in) < 0)
		return -ENOMEM;
	for (h = (size_t)XXH3_64bits(p, len);; h++) {
		uint32_t s = in->slot[h & in->mask];

		if (!s)
			break;
		if (in->off[s] - in->off[s - 1] == len &&
		    memcmp(in->bytes + in->off[s - 1], p, len) == 0)
			return (long)s - 1;
	}
	if (in->n >= UINT32_MAX - 1)
		return -E2BIG;
	if (in->blen + len > in->bcap) {
		size_t cap = (in->blen + len) * 2 + 4096;
		char *b = realloc(in->bytes, cap);

		if (!b)
			return -ENOMEM;
		in->bytes = b;
		in->bcap = cap;
	}
	if (in->n + 2 > in->ocap) {
		size_t cap = in->ocap * 2 + 1024;
		uint64_t *o = realloc(in->off, cap * sizeof(*o));

		if (!o)
			return -ENOMEM;
		in->off = o;
		in->ocap = cap;
	}
	if (len)
		memcpy(in->bytes + in->blen, p, len);
	in->off[in->n] = in->blen;
	in->blen += len;
	in->off[++in->n] = in->blen;
	in->slot[h & in->mask] = (uint32_t)in->n;
	return (long)in->n - 1;
}

static void intern_free(struct intern *in)
{
	free(in->slot);
	free(in->bytes);
	free(in->off);
}

struct ev {
	uint32_t key;  /* rank of the entity key */
	uint32_t row;
	double t;
};

static int ev_cmp(const void *a, const void *b)
{
	const struct ev *x = a, *y = b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	return (x->row > y->row) - (x->row < y->row);
}

static const struct intern *sort_keys; /* for key_cmp: qsort has no arg */

static int key_cmp(const void *a, const void *b)
{
	const struct intern *in = sort_keys;
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	size_t lx = in->off[x + 1] - in->off[x], ly = in->off[y + 1] - in->off[y];
	int c = memcmp(in->bytes + in->off[x], in->bytes + in->off[y],
		       lx < ly ? lx : ly);

	return c ? c : (lx > ly) - (lx < ly);
}

struct build {
	const struct feat_spec *spec;
	const struct table *t;
	long *ent, ts, *col;    /* table columns */
	bool *cat;              /* per input column: categorical */
	struct intern keys;
	struct intern *dict;    /* per input column */
	struct ev *ev;
	size_t nev;
	double *vals;           /* per table row, ncols each */
	bool iso;
	double cut;             /* later events are left out */
	size_t base;            /* rows of the tables before t */
	struct problem *pb;
	double *newest;         /* per key id: its newest row so far */
	size_t nnewest;
	bool logged;            /* t is the event log */
	bool lenient;           /* feat_build_info's */
	uint64_t late;          /* its rows later than allowed_lateness */
};

/* Key id's newest row so far becomes tv; is tv late for it? */
static int note_time(struct build *b, long id, double tv, bool *late)
{
	double lateness = b->spec->horizon - b->spec->longest;

	if ((size_t)id >= b->nnewest) {
		size_t n = b->nnewest ? 2 * b->nnewest : 1024;
		double *p;

		while (n <= (size_t)id)
			n *= 2;
		p = realloc(b->newest, n * sizeof(*p));
		if (!p)
			return -ENOMEM;
		for (size_t i = b->nnewest; i < n; i++)
			p[i] = -INFINITY;
		b->newest = p;
		b->nnewest = n;
	}
	*late = tv < b->newest[id] - lateness;
	if (tv > b->newest[id])
		b->newest[id] = tv;
	return 0;
}

static const char *cell(const struct table *t, size_t r, long c, size_t *len)
{
	*len = t->len[r * t->ncols + (size_t)c];
	return t->data + t->off[r * t->ncols + (size_t)c];
}

/*
 * A problem at row r (0: the first data row) of the table, placed at
 * line r + 2 (one record a line) and at the field's number as column.
 */
static int at(struct build *b, size_t r, long c, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int at(struct build *b, size_t r, long c, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return problem_set(b->pb, r + 2 > UINT32_MAX ? UINT32_MAX
						       : (unsigned)(r + 2),
			   (unsigned)c + 1, "%s", msg);
}

/* The first bytes of a field, NUL-terminated, for a message. */
static const char *snip(const char *p, size_t len, char out[48])
{
	snprintf(out, 48, "%.*s%s", (int)(len > 40 ? 40 : len), p,
		 len > 40 ? "..." : "");
	return out;
}

static int columns_find(struct build *b)
{
	const struct feat_spec *s = b->spec;
	const char *miss = NULL;

	for (size_t i = 0; i < s->nent && !miss; i++)
		if ((b->ent[i] = table_col(b->t, s->entity[i])) < 0)
			miss = s->entity[i];
	if (!miss && (b->ts = table_col(b->t, s->timestamp)) < 0)
		miss = s->timestamp;
	for (size_t i = 0; i < s->ncols && !miss; i++)
		if ((b->col[i] = table_col(b->t, s->cols[i])) < 0)
			miss = s->cols[i];
	if (miss)
		return problem_set(b->pb, 1, 0,
				   "no column \"%s\" in the events' header",
				   miss);
	return 0;
}

/* Numeric unless the spec says categorical, or says nothing and a value
 * is not a number. */
static int types_find(struct build *b)
{
	const struct feat_spec *s = b->spec;

	for (size_t c = 0; c < s->ncols; c++) {
		if (s->cat[c] && s->num[c])
			return problem_set(b->pb, 1, 0,
					   "column \"%s\" is categorical for "
					   "one feature and numeric for "
					   "another",
					   s->cols[c]);
		for (size_t r = 0; !b->cat[c] && r < b->t->nrows; r++) {
			size_t len;
			const char *p = cell(b->t, r, b->col[c], &len);
			char sn[48];
			double v;

			if (csv_is_missing(p, len) ||
			    csv_parse_double(p, len, &v))
				continue;
			if (s->num[c] && b->lenient && b->logged)
				continue; /* its row is refused */
			if (s->num[c])
				return at(b, r, b->col[c],
					  "\"%s\": \"%s\" is not a number",
					  s->cols[c], snip(p, len, sn));
			b->cat[c] = true;
		}
	}
	return 0;
}

/* The rejects of the features on column c for value v of row r. */
static int reject(struct build *b, size_t r, size_t c, double v)
{
	const struct feat_spec *s = b->spec;

	for (size_t i = 0; i < s->nfeat; i++) {
		const struct feat_def *d = &s->feat[i];
		char lim[64];

		if (d->col != (long)c || d->viol != VIOL_REJECT ||
		    (v >= d->min && v <= d->max))
			continue;
		snprintf(lim, sizeof(lim), "%g outside [%g, %g]", v, d->min,
			 d->max);
		return at(b, r, b->col[c],
			  "feature \"%s\": %s (on_violation reject)", d->name,
			  lim);
	}
	return 0;
}

static int row_read(struct build *b, size_t r, char *key, size_t keycap)
{
	const struct feat_spec *s = b->spec;
	size_t klen = 0, len;
	const char *p;
	char sn[48];
	bool late;
	double tv;
	long id;
	int rc;

	for (size_t i = 0; i < s->nent; i++) {
		p = cell(b->t, r, b->ent[i], &len);
		if (!len)
			return 1; /* no entity: skipped */
		if (memchr(p, FEAT_KEY_SEP, len) || klen + len + 1 > keycap)
			return at(b, r, b->ent[i],
				  "\"%s\": an entity value must be under 4 "
				  "KiB and hold no control character 0x1f",
				  s->entity[i]);
		if (i)
			key[klen++] = FEAT_KEY_SEP;
		memcpy(key + klen, p, len);
		klen += len;
	}
	p = cell(b->t, r, b->ts, &len);
	if (csv_parse_double(p, len, &tv)) {
		;
	} else if (csv_parse_time(p, len, &tv)) {
		b->iso = true;
	} else {
		return at(b, r, b->ts,
			  "\"%s\": \"%s\" is neither seconds since the "
			  "epoch nor an ISO 8601 time",
			  s->timestamp, snip(p, len, sn));
	}
	if (!FEAT_TIME_OK(tv))
		return at(b, r, b->ts,
			  "\"%s\": \"%s\" is outside the years 0000 to 9999",
			  s->timestamp, snip(p, len, sn));
	if (tv > b->cut)
		return 1;
	for (size_t c = 0; c < s->ncols; c++) {
		double *v = &b->vals[(b->base + r) * s->ncols + c];

		p = cell(b->t, r, b->col[c], &len);
		if (csv_is_missing(p, len)) {
			*v = NAN;
		} else if (b->cat[c]) {
			id = intern_add(&b->dict[c], p, len);
			if (id < 0)
				return (int)id;
			*v = (double)id;
		} else if (!csv_parse_double(p, len, v)) {
			return at(b, r, b->col[c],
				  "\"%s\": \"%s\" is not a number",
				  s->cols[c], snip(p, len, sn));
		} else if ((rc = reject(b, r, c, *v)) < 0) {
			return rc;
		}
	}
	id = intern_add(&b->keys, key, klen);
	if (id < 0)
		return (int)id;
	rc = note_time(b, id, tv, &late);
	if (rc < 0)
		return rc;
	b->late += b->logged && late;
	b->ev[b->nev++] = (struct ev){ (uint32_t)id, (uint32_t)(b->base + r),
				       tv };
	return 0;
}

static size_t pad8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

/* The flat buffer of featcalc.h, from the sorted events. */
static int serialize(struct build *b, const uint32_t *order, void **buf,
		     size_t *len)
{
	size_t nc = b->spec->ncols, nk = b->keys.n, ko = 0, e = 0;
	uint64_t *ndict = calloc(nc + 1, sizeof(*ndict));
	uint64_t *dlen = calloc(nc + 1, sizeof(*dlen));
	uint64_t *kof, *first;
	char *out = NULL, *p;
	double *t, *v;

	for (size_t c = 0; ndict && dlen && c < nc; c++) {
		ndict[c] = b->cat[c] ? b->dict[c].n : 0;
		dlen[c] = b->cat[c] ? b->dict[c].blen : 0;
	}
	*len = feat_hist_size(nk, b->nev, nc, b->keys.blen, b->cat, ndict,
			      dlen);
	if (ndict && dlen)
		out = calloc(1, *len);
	if (!out) {
		free(ndict);
		free(dlen);
		return -ENOMEM;
	}
	kof = (uint64_t *)feat_hist_head(out, nk, b->nev, nc, b->iso,
					 b->keys.blen, b->cat, ndict, dlen);
	first = kof + nk + 1;
	p = (char *)(first + nk + 1);
	/* keys in sorted order, each with its run of events */
	for (size_t k = 0; k < nk; k++) {
		uint32_t id = order[k];
		size_t l = b->keys.off[id + 1] - b->keys.off[id];

		kof[k] = ko;
		memcpy(p + ko, b->keys.bytes + b->keys.off[id], l);
		ko += l;
		first[k] = e;
		while (e < b->nev && b->ev[e].key == k)
			e++;
	}
	kof[nk] = ko;
	first[nk] = b->nev;
	t = (double *)(p + pad8(b->keys.blen));
	v = t + b->nev;
	for (e = 0; e < b->nev; e++) {
		t[e] = b->ev[e].t;
		memcpy(v + e * nc, b->vals + (size_t)b->ev[e].row * nc, nc * 8);
	}
	p = (char *)(v + b->nev * nc);
	for (size_t c = 0; c < nc; c++) {
		if (!b->cat[c])
			continue;
		if (b->dict[c].n) /* else one offset, 0 (calloc) */
			memcpy(p, b->dict[c].off, (b->dict[c].n + 1) * 8);
		p += (b->dict[c].n + 1) * 8;
		if (b->dict[c].blen)
			memcpy(p, b->dict[c].bytes, b->dict[c].blen);
		p += pad8(b->dict[c].blen);
	}
	free(ndict);
	free(dlen);
	*buf = out;
	return 0;
}

static int order_events(struct build *b, uint32_t **order_out)
{
	size_t nk = b->keys.n;
	uint32_t *order = malloc((nk + 1) * sizeof(*order));
	uint32_t *rank = malloc((nk + 1) * sizeof(*rank));

	if (!order || !rank) {
		free(order);
		free(rank);
		return -ENOMEM;
	}
	for (size_t k = 0; k < nk; k++)
		order[k] = (uint32_t)k;
	sort_keys = &b->keys;
	qsort(order, nk, sizeof(*order), key_cmp);
	for (size_t k = 0; k < nk; k++)
		rank[order[k]] = (uint32_t)k;
	for (size_t e = 0; e < b->nev; e++)
		b->ev[e].key = rank[b->ev[e].key];
	free(rank);
	qsort(b->ev, b->nev, sizeof(*b->ev), ev_cmp);
	*order_out = order;
	return 0;
}

int feat_hist_build(const struct feat_spec *spec,
		    const struct table *const *tabs, size_t ntabs, double cut,
		    void **buf, size_t *len, struct feat_build_info *info,
		    struct problem *pb)
{
	struct build b = { .spec = spec, .cut = cut, .pb = pb };
	size_t nc = spec->ncols, rows = 0, ti;
	uint32_t *order = NULL;
	char *key;
	int rc = 0;

	*buf = NULL;
	*len = 0;
	info->skipped = info->refused = info->late = 0;
	info->which = 0;
	for (ti = 0; ti < ntabs; ti++)
		rows += tabs[ti] ? tabs[ti]->nrows : 0;
	if (rows >= UINT32_MAX)
		return problem_set(pb, 0, 0, "more than 4 billion events");
	key = malloc(4096);
	b.ent = calloc(spec->nent + 1, sizeof(*b.ent));
	b.col = calloc(nc + 1, sizeof(*b.col));
	b.cat = calloc(nc + 1, sizeof(*b.cat));
	b.dict = calloc(nc + 1, sizeof(*b.dict));
	b.ev = malloc((rows + 1) * sizeof(*b.ev));
	b.vals = malloc((rows * nc + 1) * sizeof(*b.vals));
	if (!key || !b.ent || !b.col || !b.cat || !b.dict || !b.ev || !b.vals)
		rc = -ENOMEM;
	for (size_t c = 0; rc == 0 && c < nc; c++)
		b.cat[c] = spec->cat[c];
	/* the columns' types over every table, then the rows */
	for (int pass = 0; pass < 2; pass++) {
		b.base = 0;
		for (ti = 0; rc == 0 && ti < ntabs; ti++) {
			b.t = tabs[ti];
			if (!b.t || !b.t->nrows)
				continue;
			info->which = ti;
			b.logged = ti > 0;
			b.lenient = info->lenient;
			rc = columns_find(&b);
			if (rc == 0 && pass == 0)
				rc = types_find(&b);
			for (size_t r = 0; rc == 0 && pass == 1 &&
					   r < b.t->nrows;
			     r++) {
				rc = row_read(&b, r, key, 4096);
				if (rc == 1) { /* no entity, or after the cut */
					info->skipped++;
					rc = 0;
				} else if (rc == -EINVAL && info->lenient &&
					   ti > 0) {
					info->refused++;
					rc = 0;
				}
			}
			b.base += b.t->nrows;
		}
	}
	info->late = b.late;
	if (rc == 0)
		rc = order_events(&b, &order);
	if (rc == 0)
		rc = serialize(&b, order, buf, len);
	free(order);
	for (size_t c = 0; b.dict && c < nc; c++)
		intern_free(&b.dict[c]);
	intern_free(&b.keys);
	free(b.newest);
	free(b.dict);
	free(b.ent);
	free(b.col);
	free(b.cat);
	free(b.ev);
	free(b.vals);
	free(key);
	return rc;
}

/* SPDX-License-Identifier: MIT */
/*
 * Feature values as of an instant (featcalc.h): the compiled spec, the
 * fold of one feature over a run of events, reading a history in place,
 * and offline.csv.  Pure: no mount, no store; any thread.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "featcalc.h"
#include "featspec.h"
#include "jsonout.h"

static const char *const agg_names[] = { "last", "count", "sum", "mean",
					 "min",  "max",   "std", NULL };

static long col_index(struct feat_spec *s, const char *name, const char *type)
{
	size_t i;

	for (i = 0; i < s->ncols; i++)
		if (strcmp(s->cols[i], name) == 0)
			break;
	if (i == s->ncols) {
		s->cols[s->ncols] = name;
		s->ncols++;
	}
	if (type && strcmp(type, "categorical") == 0)
		s->cat[i] = true;
	else if (type)
		s->num[i] = true;
	return (long)i;
}

int feat_spec_compile(json_t *spec, struct feat_spec **out)
{
	json_t *fl = json_object_get(spec, "features");
	json_t *ent = json_object_get(spec, "entity");
	struct feat_spec *s = calloc(1, sizeof(*s));
	int64_t secs;
	size_t i;
	json_t *f;

	*out = NULL;
	if (!s)
		return -ENOMEM;
	s->json = json_incref(spec);
	s->nfeat = json_array_size(fl);
	s->nent = json_array_size(ent);
	s->feat = calloc(s->nfeat + 1, sizeof(*s->feat));
	s->cols = calloc(s->nfeat + 1, sizeof(*s->cols));
	s->cat = calloc(s->nfeat + 1, sizeof(*s->cat));
	s->num = calloc(s->nfeat + 1, sizeof(*s->num));
	s->entity = calloc(s->nent + 1, sizeof(*s->entity));
	if (!s->feat || !s->cols || !s->cat || !s->num || !s->entity) {
		feat_spec_free(s);
		return -ENOMEM;
	}
	for (i = 0; i < s->nent; i++)
		s->entity[i] = json_string_value(json_array_get(ent, i));
	s->timestamp = json_string_value(json_object_get(spec, "timestamp"));
	if (featspec_duration(json_string_value(json_object_get(spec, "ttl")),
			      &secs) == 0)
		s->ttl = (double)secs;
	json_array_foreach(fl, i, f) {
		struct feat_def *d = &s->feat[i];
		const char *agg = json_string_value(json_object_get(f, "agg"));
		const char *col = json_string_value(json_object_get(f, "column"));
		const char *type = json_string_value(json_object_get(f, "type"));
		const char *viol = json_string_value(
			json_object_get(f, "on_violation"));
		json_t *v;

		d->name = json_string_value(json_object_get(f, "name"));
		for (d->agg = AGG_LAST; agg_names[d->agg] &&
					strcmp(agg_names[d->agg], agg ? agg : "last");
		     d->agg++)
			;
		if (!agg_names[d->agg])
			d->agg = AGG_LAST;
		d->col = col ? col_index(s, col, type) : -1;
		if (featspec_duration(json_string_value(
					      json_object_get(f, "window")),
				      &secs) == 0)
			d->window = (double)secs;
		v = json_object_get(f, "min");
		d->min = v ? json_number_value(v) : -INFINITY;
		v = json_object_get(f, "max");
		d->max = v ? json_number_value(v) : INFINITY;
		d->viol = viol && strcmp(viol, "clip") == 0     ? VIOL_CLIP
			  : viol && strcmp(viol, "reject") == 0 ? VIOL_REJECT
								: VIOL_NULL;
		if (d->window > s->longest)
			s->longest = d->window;
	}
	s->horizon = s->longest;
	if (featspec_duration(json_string_value(json_object_get(
				      spec, "allowed_lateness")),
			      &secs) == 0)
		s->horizon += (double)secs;
	else
		s->horizon += s->longest;
	*out = s;
	return 0;
}

void feat_spec_free(struct feat_spec *s)
{
	if (!s)
		return;
	json_decref(s->json);
	free(s->feat);
	free(s->cols);
	free(s->cat);
	free(s->num);
	free(s->entity);
	free(s);
}

/* v as CSV text in num: integers as integers ("10", where %g says
 * "1e+01", and without printf: a row has several), others in the
 * shortest form that reads back to the same double.  Its length. */
static size_t num_text(double v, char num[NUM_SHORTEST_MAX])
{
	char *p = num + NUM_SHORTEST_MAX;
	uint64_t u;
	size_t n;

	if (v != floor(v) || !(fabs(v) < 1e15))
		return num_shortest(v, 17, num);
	u = (uint64_t)fabs(v);
	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		*--p = '-';
	n = (size_t)(num + NUM_SHORTEST_MAX - p);
	memmove(num, p, n);
	return n;
}

/* --- the fold --- */

void feat_acc_add(struct feat_acc *a, double v)
{
	double t = a->sum + v;
	double d;

	if (fabs(a->sum) >= fabs(v))
		a->comp += (a->sum - t) + v;
	else
		a->comp += (v - t) + a->sum;
	a->sum = t;
	a->n += 1;
	d = v - a->mean;
	a->mean += d / a->n;
	a->m2 += d * (v - a->mean);
	if (a->n == 1 || v < a->min)
		a->min = v;
	if (a->n == 1 || v > a->max)
		a->max = v;
	a->last = v;
}

double feat_acc_value(const struct feat_acc *a, enum feat_agg agg)
{
	switch (agg) {
	case AGG_COUNT:
		return a->n;
	case AGG_SUM:
		return a->sum + a->comp;
	case AGG_MEAN:
		return a->n ? (a->sum + a->comp) / a->n : NAN;
	case AGG_MIN:
		return a->n ? a->min : NAN;
	case AGG_MAX:
		return a->n ? a->max : NAN;
	case AGG_STD:
		return a->n >= 2 ? sqrt(a->m2 / (a->n - 1)) : NAN;
	case AGG_LAST:
	default:
		return a->n ? a->last : NAN;
	}
}

double feat_bound(const struct feat_def *d, double v)
{
	if (isnan(v) || (v >= d->min && v <= d->max))
		return v;
	if (d->viol == VIOL_CLIP)
		return v < d->min ? d->min : d->max;
	return NAN;
}

void feat_fold(const struct feat_def *d, const struct feat_hist *h,
	       size_t lo, size_t hi, struct feat_acc *a)
{
	for (size_t e = lo; e < hi; e++) {
		double v = feat_input(d, h, e);

		if (!isnan(v))
			feat_acc_add(a, v);
	}
}

size_t feat_upper(const struct feat_hist *h, size_t lo, size_t hi, double t)
{
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (h->t[mid] <= t)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static bool stale(const struct feat_spec *s, const struct feat_hist *h,
		  size_t a, size_t hi, double t)
{
	return hi == a || (s->ttl > 0 && t - h->t[hi - 1] > s->ttl);
}

/*
 * The value `last` takes over events [lo, hi): feat_fold's, read from
 * the end, so a point in time costs the events since the last value,
 * not every event before it (the join of bench_features.sh: 20 % less).
 */
static double feat_last(const struct feat_def *d, const struct feat_hist *h,
			size_t lo, size_t hi)
{
	while (hi > lo) {
		double v = feat_input(d, h, --hi);

		if (!isnan(v))
			return v;
	}
	return NAN;
}

void feat_asof(const struct feat_spec *spec, const struct feat_hist *h,
	       size_t k, double t, double *out)
{
	size_t a = h->first[k], b = h->first[k + 1];
	size_t hi = feat_upper(h, a, b, t);

	for (size_t i = 0; i < spec->nfeat; i++) {
		const struct feat_def *d = &spec->feat[i];
		struct feat_acc acc = { 0 };
		size_t lo;

		if (stale(spec, h, a, hi, t)) {
			out[i] = NAN;
			continue;
		}
		lo = d->window > 0 ? feat_upper(h, a, hi, t - d->window) : a;
		if (d->agg == AGG_LAST) {
			out[i] = feat_last(d, h, lo, hi);
			continue;
		}
		feat_fold(d, h, lo, hi, &acc);
		out[i] = feat_acc_value(&acc, d->agg);
	}
}

/* --- reading a history in place --- */

#define HIST_MAGIC "MLFSFH01"

struct reader {
	const char *p;
	size_t left;
};

static const void *take(struct reader *r, uint64_t count, size_t size)
{
	const char *p = r->p;
	uint64_t n;

	if (size && count > r->left / size)
		return NULL;
	n = (count * size + 7) & ~(uint64_t)7;
	if (n > r->left)
		n = r->left; /* the padding of the last section */
	r->p += n;
	r->left -= n;
	return p;
}

static int bad(char *why, size_t whylen, const char *what)
{
	snprintf(why, whylen, "history: %s", what);
	return -EBADMSG;
}

/* offsets o[0..n]: from 0, never down, ending at most at end */
static bool offsets_ok(const uint64_t *o, uint64_t n, uint64_t end)
{
	if (o[0] != 0 || o[n] > end)
		return false;
	for (uint64_t i = 0; i < n; i++)
		if (o[i] > o[i + 1])
			return false;
	return true;
}

static int keys_ok(const struct feat_hist *h)
{
	for (size_t i = 0; i < h->nkeys; i++) {
		size_t a = h->first[i], b = h->first[i + 1];

		if (i) {
			size_t la = h->key_off[i] - h->key_off[i - 1];
			size_t lb = h->key_off[i + 1] - h->key_off[i];
			int c = memcmp(h->keys + h->key_off[i - 1],
				       h->keys + h->key_off[i],
				       la < lb ? la : lb);

			if (c > 0 || (c == 0 && la >= lb))
				return -1;
		}
		for (size_t e = a; e < b; e++)
			if (isnan(h->t[e]) || (e > a && h->t[e] < h->t[e - 1]))
				return -1;
	}
	return 0;
}

int feat_hist_load(const void *buf, size_t len, const struct feat_spec *spec,
		   struct feat_hist *h, char *why, size_t whylen)
{
	struct reader r = { buf, len };
	const uint64_t *hd, *dl;
	size_t c;

	memset(h, 0, sizeof(*h));
	if (len < 48 || memcmp(buf, HIST_MAGIC, 8) != 0)
		return bad(why, whylen, "not a feature history");
	hd = take(&r, 6, 8);
	h->nkeys = hd[1];
	h->nev = hd[2];
	h->ncols = hd[3];
	h->iso = hd[4] & 1;
	if (h->ncols != spec->ncols)
		return bad(why, whylen, "columns differ from the spec's");
	h->coltype = take(&r, h->ncols, 8);
	h->ndict = take(&r, h->ncols, 8);
	dl = take(&r, h->ncols, 8);
	h->key_off = h->nkeys < SIZE_MAX / 2 ? take(&r, h->nkeys + 1, 8) : NULL;
	h->first = h->key_off ? take(&r, h->nkeys + 1, 8) : NULL;
	h->keys = h->first ? take(&r, hd[5], 1) : NULL;
	h->t = h->keys ? take(&r, h->nev, 8) : NULL;
	h->v = h->t && (!h->ncols || h->nev <= SIZE_MAX / 8 / h->ncols)
		       ? take(&r, h->nev * h->ncols, 8)
		       : NULL;
	if (!h->coltype || !h->ndict || !dl || !h->v)
		return bad(why, whylen, "shorter than its counts");
	if (!offsets_ok(h->key_off, h->nkeys, hd[5]) ||
	    !offsets_ok(h->first, h->nkeys, h->nev) ||
	    h->first[h->nkeys] != h->nev)
		return bad(why, whylen, "offsets out of order");
	/* one allocation for both (an online record is loaded per update) */
	h->doff = calloc(2 * (h->ncols + 1), sizeof(void *));
	if (!h->doff) {
		feat_hist_free(h);
		return -ENOMEM;
	}
	h->dict = (const char **)(h->doff + h->ncols + 1);
	for (c = 0; c < h->ncols; c++) {
		if (h->coltype[c] > 1 || (!h->coltype[c] && h->ndict[c]) ||
		    (spec->cat[c] && !h->coltype[c]))
			goto bad_cols;
		if (!h->coltype[c])
			continue;
		h->doff[c] = h->ndict[c] < SIZE_MAX / 2
				     ? take(&r, h->ndict[c] + 1, 8)
				     : NULL;
		h->dict[c] = h->doff[c] ? take(&r, dl[c], 1) : NULL;
		if (!h->dict[c] || !offsets_ok(h->doff[c], h->ndict[c], dl[c]))
			goto bad_cols;
	}
	if (r.left || keys_ok(h) < 0) {
		feat_hist_free(h);
		return bad(why, whylen, r.left ? "bytes past its end"
					       : "keys or times out of order");
	}
	return 0;
bad_cols:
	feat_hist_free(h);
	return bad(why, whylen, "a column's dictionary is out of place");
}

static size_t pad8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

size_t feat_hist_size(size_t nkeys, size_t nev, size_t ncols,
		      size_t keys_len, const bool *cat, const uint64_t *ndict,
		      const uint64_t *dict_len)
{
	size_t size = 48 + 3 * ncols * 8 + 2 * (nkeys + 1) * 8 +
		      pad8(keys_len) + nev * 8 * (1 + ncols);

	for (size_t c = 0; c < ncols; c++)
		if (cat[c])
			size += (ndict[c] + 1) * 8 + pad8(dict_len[c]);
	return size;
}

char *feat_hist_head(char *out, size_t nkeys, size_t nev, size_t ncols,
		     bool iso, size_t keys_len, const bool *cat,
		     const uint64_t *ndict, const uint64_t *dict_len)
{
	uint64_t hd[5] = { nkeys, nev, ncols, iso, pad8(keys_len) };
	uint64_t *col = (uint64_t *)(out + 48);

	memcpy(out, HIST_MAGIC, 8);
	memcpy(out + 8, hd, sizeof(hd));
	for (size_t c = 0; c < ncols; c++) {
		col[c] = cat[c];
		col[ncols + c] = cat[c] ? ndict[c] : 0;
		col[2 * ncols + c] = cat[c] ? pad8(dict_len[c]) : 0;
	}
	return out + 48 + 3 * ncols * 8;
}

int feat_hist_slice(const struct feat_hist *h, size_t k, void **buf,
		    size_t *len)
{
	return feat_hist_pick(h, k, NULL, h->first[k + 1] - h->first[k], buf,
			      len);
}

int feat_hist_pick(const struct feat_hist *h, size_t k, const size_t *idx,
		   size_t m, void **buf, size_t *len)
{
	size_t a = h->first[k], nc = h->ncols;
	size_t klen = h->key_off[k + 1] - h->key_off[k];
	uint64_t *ndict = calloc(nc + 1, sizeof(*ndict));
	uint64_t *dlen = calloc(nc + 1, sizeof(*dlen));
	double *v = malloc((m * nc + 1) * sizeof(*v));
	double *t = malloc((m + 1) * sizeof(*t));
	bool *cat = calloc(nc + 1, sizeof(*cat));
	char *out = NULL, *p;
	int rc = -ENOMEM;

#define SRC(e) (a + (idx ? idx[e] : (e)))
	if (!ndict || !dlen || !v || !t || !cat)
		goto out;
	for (size_t e = 0; e < m; e++) {
		t[e] = h->t[SRC(e)];
		memcpy(v + e * nc, h->v + SRC(e) * nc, nc * sizeof(*v));
	}
	/* each categorical column: the categories these events use,
	 * renumbered */
	for (size_t c = 0; c < nc; c++) {
		cat[c] = h->coltype[c];
		if (!cat[c])
			continue;
		for (size_t e = 0; e < m; e++) {
			uint64_t i;

			if (!feat_dict_index(v[e * nc + c], h->ndict[c], &i)) {
				v[e * nc + c] = NAN;
				continue;
			}
			v[e * nc + c] = (double)ndict[c]++;
			dlen[c] += h->doff[c][i + 1] - h->doff[c][i];
		}
	}
	*len = feat_hist_size(1, m, nc, klen, cat, ndict, dlen);
	out = calloc(1, *len);
	if (!out)
		goto out;
	p = feat_hist_head(out, 1, m, nc, h->iso, klen, cat, ndict, dlen);
	((uint64_t *)p)[1] = klen;     /* key_off: 0, klen */
	((uint64_t *)p)[3] = m;        /* first: 0, m */
	p += 32;
	memcpy(p, h->keys + h->key_off[k], klen);
	p += pad8(klen);
	memcpy(p, t, m * 8);
	p += m * 8;
	memcpy(p, v, m * nc * 8);
	p += m * nc * 8;
	for (size_t c = 0; c < nc; c++) {
		uint64_t *doff = (uint64_t *)p;
		char *bytes = p + (ndict[c] + 1) * 8;
		size_t j = 0;

		if (!cat[c])
			continue;
		for (size_t e = 0; e < m; e++) {
			uint64_t i;

			if (isnan(v[e * nc + c]) ||
			    !feat_dict_index(h->v[SRC(e) * nc + c],
					     h->ndict[c], &i))
				continue;
			memcpy(bytes + doff[j], h->dict[c] + h->doff[c][i],
			       h->doff[c][i + 1] - h->doff[c][i]);
			doff[j + 1] = doff[j] + h->doff[c][i + 1] - h->doff[c][i];
			j++;
		}
		p = bytes + pad8(dlen[c]);
	}
#undef SRC
	rc = 0;
out:
	if (rc < 0)
		free(out);
	else
		*buf = out;
	free(ndict);
	free(dlen);
	free(v);
	free(t);
	free(cat);
	return rc;
}

/* Order of the new events: by time, then as given (a stable sort). */
struct ev_ref {
	double t;
	size_t i;
};

static int ev_ref_cmp(const void *a, const void *b)
{
	const struct ev_ref *x = a, *y = b;

	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	return (x->i > y->i) - (x->i < y->i);
}

const char *feat_event_text(const struct feat_hist *h, size_t e, size_t c,
			    char buf[NUM_SHORTEST_MAX], size_t *len)
{
	double x = h->v[e * h->ncols + c];
	uint64_t i;

	if (!h->coltype[c]) {
		if (isnan(x))
			return NULL;
		*len = num_text(x, buf);
		return buf;
	}
	if (!feat_dict_index(x, h->ndict[c], &i))
		return NULL;
	*len = h->doff[c][i + 1] - h->doff[c][i];
	return h->dict[c] + h->doff[c][i];
}

int feat_hist_merge(const struct feat_hist *one, const bool *cat,
		    size_t ncols, const char *key, size_t klen, bool iso,
		    const struct feat_event *ev, size_t n, void **buf,
		    size_t *len)
{
	size_t m = one ? one->nev : 0, total = m + n, o = 0, x = 0;
	uint64_t *ndict = calloc(ncols + 1, sizeof(*ndict));
	uint64_t *dlen = calloc(ncols + 1, sizeof(*dlen));
	bool *ct = calloc(ncols + 1, sizeof(*ct));
	struct ev_ref *ord = malloc((n + 1) * sizeof(*ord));
	uint64_t **doff = calloc(ncols + 1, sizeof(*doff));
	char **dict = calloc(ncols + 1, sizeof(*dict));
	char *out = NULL, *p;
	double *t, *v;
	int rc = -ENOMEM;

	if (!ndict || !dlen || !ct || !ord || !doff || !dict)
		goto out;
	for (size_t c = 0; c < ncols; c++) {
		ct[c] = (cat && cat[c]) || (one && one->coltype[c]);
		if (!ct[c])
			continue;
		for (size_t e = 0; e < m; e++) {
			char nb[NUM_SHORTEST_MAX];
			size_t l;

			if (feat_event_text(one, e, c, nb, &l)) {
				ndict[c]++;
				dlen[c] += l;
			}
		}
		for (size_t e = 0; e < n; e++) {
			if (ev[e].str[c]) {
				ndict[c]++;
				dlen[c] += ev[e].slen[c];
			}
		}
	}
	for (size_t e = 0; e < n; e++)
		ord[e] = (struct ev_ref){ ev[e].t, e };
	qsort(ord, n, sizeof(*ord), ev_ref_cmp);
	*len = feat_hist_size(1, total, ncols, klen, ct, ndict, dlen);
	out = calloc(1, *len);
	if (!out)
		goto out;
	p = feat_hist_head(out, 1, total, ncols, iso || (one && one->iso),
			   klen, ct, ndict, dlen);
	((uint64_t *)p)[1] = klen;
	((uint64_t *)p)[3] = total;
	p += 32;
	memcpy(p, key, klen);
	t = (double *)(p + pad8(klen));
	v = t + total;
	p = (char *)(v + total * ncols);
	for (size_t c = 0; c < ncols; c++) {
		if (!ct[c])
			continue;
		doff[c] = (uint64_t *)p;
		dict[c] = p + (ndict[c] + 1) * 8;
		p = dict[c] + pad8(dlen[c]);
		ndict[c] = 0; /* counts again as entries are written */
	}
	/* merge: old events first among equal times */
	for (size_t e = 0; e < total; e++) {
		bool take_old = o < m && (x == n || one->t[o] <= ord[x].t);

		for (size_t c = 0; c < ncols; c++) {
			const char *s = NULL;
			size_t l = 0;
			char nb[NUM_SHORTEST_MAX];
			double val;

			if (take_old) {
				val = one->v[o * ncols + c];
				if (ct[c])
					s = feat_event_text(one, o, c, nb, &l);
			} else {
				val = ev[ord[x].i].num[c];
				s = ev[ord[x].i].str[c];
				l = s ? ev[ord[x].i].slen[c] : 0;
			}
			if (ct[c]) {
				val = NAN;
				if (s) {
					uint64_t j = ndict[c]++;

					memcpy(dict[c] + doff[c][j], s, l);
					doff[c][j + 1] = doff[c][j] + l;
					val = (double)j;
				}
			}
			v[e * ncols + c] = val;
		}
		t[e] = take_old ? one->t[o++] : ord[x++].t;
	}
	rc = 0;
out:
	if (rc == 0)
		*buf = out;
	free(ndict);
	free(dlen);
	free(ct);
	free(ord);
	free(doff);
	free(dict);
	return rc;
}

void feat_hist_free(struct feat_hist *h)
{
	free(h->doff); /* and dict, which it holds */
	free(h->owned);
	memset(h, 0, sizeof(*h));
}

long feat_hist_find(const struct feat_hist *h, const char *key, size_t len)
{
	size_t lo = 0, hi = h->nkeys;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		size_t ml = h->key_off[mid + 1] - h->key_off[mid];
		int c = memcmp(h->keys + h->key_off[mid], key,
			       ml < len ? ml : len);

		if (c == 0)
			c = (ml > len) - (ml < len);
		if (c == 0)
			return (long)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* --- CSV text --- */

/* v as CSV text: integers as integers ("10", where %g says "1e+01"),
 * others in the shortest form that reads back to the same double. */
static int put_num(struct strbuf *sb, double v)
{
	char num[NUM_SHORTEST_MAX];

	return sb_append(sb, num, num_text(v, num));
}

int feat_put_field(struct strbuf *sb, const char *s, size_t len)
{
	int rc;

	if (!memchr(s, '"', len) && !memchr(s, ',', len) &&
	    !memchr(s, '\n', len) && !memchr(s, '\r', len))
		return sb_append(sb, s, len);
	rc = sb_append(sb, "\"", 1);
	for (size_t i = 0; rc == 0 && i < len; i++)
		rc = s[i] == '"' ? sb_append(sb, "\"\"", 2)
				 : sb_append(sb, s + i, 1);
	return rc ? rc : sb_append(sb, "\"", 1);
}

int feat_put_value(struct strbuf *sb, const struct feat_spec *spec,
		   const struct feat_hist *h, size_t f, double v)
{
	long c = spec->feat[f].col;

	if (isnan(v))
		return 0;
	if (c >= 0 && h->coltype[c]) {
		uint64_t i;

		if (!feat_dict_index(v, h->ndict[c], &i))
			return 0; /* not an index of ours: missing */
		return feat_put_field(sb, h->dict[c] + h->doff[c][i],
				      h->doff[c][i + 1] - h->doff[c][i]);
	}
	return put_num(sb, v);
}

int feat_put_time(struct strbuf *sb, const struct feat_hist *h, double t)
{
	double whole = floor(t);
	time_t secs = 0;
	struct tm tm;
	int rc;

	if (!h->iso || !(fabs(t) < 1e15))
		return put_num(sb, t);
	secs = (time_t)whole;
	if (!gmtime_r(&secs, &tm))
		return put_num(sb, t);
	rc = sb_printf(sb, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
		       tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
		       tm.tm_sec);
	if (rc == 0 && t > whole) {
		char frac[16];
		size_t n;

		snprintf(frac, sizeof(frac), "%.6f", t - whole);
		n = strlen(frac);
		while (n > 2 && frac[n - 1] == '0')
			n--;
		if (n > 2)
			rc = sb_append(sb, frac + 1, n - 1);
	}
	return rc ? rc : sb_append(sb, "Z", 1);
}

/* --- offline.csv --- */

struct fstat {
	uint64_t count, missing, outside;
	struct feat_acc acc;
};

static int put_sb(struct strbuf *sb, int (*put)(void *, const char *, size_t),
		  void *arg)
{
	int rc = sb->len ? put(arg, sb->buf, sb->len) : 0;

	sb->len = 0;
	return rc;
}

static int offline_header(const struct feat_spec *s, struct strbuf *sb)
{
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < s->nent; i++)
		rc = feat_put_field(sb, s->entity[i], strlen(s->entity[i])) ||
		     sb_append(sb, ",", 1);
	if (rc == 0)
		rc = feat_put_field(sb, s->timestamp, strlen(s->timestamp));
	for (size_t i = 0; rc == 0 && i < s->nfeat; i++)
		rc = sb_append(sb, ",", 1) ||
		     feat_put_field(sb, s->feat[i].name,
				    strlen(s->feat[i].name));
	return rc ? -ENOMEM : sb_append(sb, "\n", 1);
}

/* The entity values of key k, as CSV fields and commas. */
static int put_key(struct strbuf *sb, const struct feat_hist *h, size_t k)
{
	const char *p = h->keys + h->key_off[k];
	const char *end = h->keys + h->key_off[k + 1];
	int rc = 0;

	while (rc == 0) {
		const char *sep = memchr(p, FEAT_KEY_SEP, (size_t)(end - p));
		const char *e = sep ? sep : end;

		rc = feat_put_field(sb, p, (size_t)(e - p));
		if (rc == 0)
			rc = sb_append(sb, ",", 1);
		if (!sep)
			break;
		p = sep + 1;
	}
	return rc;
}

static json_t *stats_json(const struct feat_spec *s, const struct feat_hist *h,
			  const struct fstat *st)
{
	json_t *fs = json_object();
	json_t *o;

	for (size_t i = 0; fs && i < s->nfeat; i++) {
		const struct feat_acc *a = &st[i].acc;
		bool cat = s->feat[i].col >= 0 && h->coltype[s->feat[i].col];

		o = json_pack("{s:I, s:I}", "count", (json_int_t)st[i].count,
			      "missing", (json_int_t)st[i].missing);
		if (o && !cat && a->n) {
			json_object_set_new(o, "mean",
					    json_real(feat_acc_value(a, AGG_MEAN)));
			json_object_set_new(o, "std",
					    a->n >= 2 ? json_real(feat_acc_value(
								a, AGG_STD))
						      : json_null());
			json_object_set_new(o, "min", json_real(a->min));
			json_object_set_new(o, "max", json_real(a->max));
		}
		if (o && (isfinite(s->feat[i].min) || isfinite(s->feat[i].max)))
			json_object_set_new(o, "outside",
					    json_integer((json_int_t)
								 st[i].outside));
		if (!o || json_object_set_new(fs, s->feat[i].name, o) < 0) {
			json_decref(fs);
			return NULL;
		}
	}
	return fs ? json_pack("{s:I, s:I, s:o}", "entities",
			      (json_int_t)h->nkeys, "events",
			      (json_int_t)h->nev, "features", fs)
		  : NULL;
}

/*
 * Values outside min/max among the events (what on_violation handled);
 * at an event time the ttl cannot have run out, so features without a
 * window run as one fold per entity, and windowed ones fold their window.
 */
int feat_offline(const struct feat_spec *s, const struct feat_hist *h,
		 double from, int (*put)(void *arg, const char *p, size_t n),
		 void *arg, json_t **stats)
{
	struct strbuf sb = { 0 };
	struct fstat *st = calloc(s->nfeat + 1, sizeof(*st));
	struct feat_acc *run = calloc(s->nfeat + 1, sizeof(*run));
	uint64_t rows = 0;
	int rc;

	*stats = NULL;
	if (!st || !run) {
		free(st);
		free(run);
		return -ENOMEM;
	}
	rc = offline_header(s, &sb);
	for (size_t k = 0; rc == 0 && k < h->nkeys; k++) {
		size_t a = h->first[k], b = h->first[k + 1];

		memset(run, 0, s->nfeat * sizeof(*run));
		for (size_t e = a; rc == 0 && e < b;) {
			size_t hi = feat_upper(h, e, b, h->t[e]);

			for (size_t i = 0; i < s->nfeat; i++) {
				const struct feat_def *d = &s->feat[i];

				for (size_t x = e; d->col >= 0 && x < hi; x++) {
					double raw = h->v[x * h->ncols +
							  (size_t)d->col];

					st[i].outside += raw < d->min ||
							 raw > d->max;
				}
				if (!d->window)
					feat_fold(d, h, e, hi, &run[i]);
			}
			if (h->t[e] < from) {
				e = hi;
				continue;
			}
			rc = put_key(&sb, h, k) || feat_put_time(&sb, h, h->t[e]);
			for (size_t i = 0; rc == 0 && i < s->nfeat; i++) {
				const struct feat_def *d = &s->feat[i];
				struct feat_acc wa = { 0 };
				double v;

				if (d->window > 0)
					feat_fold(d, h, feat_upper(h, a, hi, h->t[e] -
								      d->window),
					     hi, &wa);
				v = feat_acc_value(d->window > 0 ? &wa : &run[i],
					      d->agg);
				if (isnan(v)) {
					st[i].missing++;
				} else {
					st[i].count++;
					feat_acc_add(&st[i].acc, v);
				}
				rc = sb_append(&sb, ",", 1) ||
				     feat_put_value(&sb, s, h, i, v);
			}
			if (rc == 0)
				rc = sb_append(&sb, "\n", 1);
			if (rc)
				rc = -ENOMEM;
			if (rc == 0 && sb.len >= 1 << 16)
				rc = put_sb(&sb, put, arg);
			rows++;
			e = hi;
		}
	}
	if (rc == 0)
		rc = put_sb(&sb, put, arg);
	if (rc == 0) {
		*stats = stats_json(s, h, st);
		if (*stats)
			json_object_set_new(*stats, "rows",
					    json_integer((json_int_t)rows));
		else
			rc = -ENOMEM;
	}
	sb_free(&sb);
	free(st);
	free(run);
	return rc;
}

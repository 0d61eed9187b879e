/* SPDX-License-Identifier: MIT */
/*
 * An entity's online record (featstate.h): its events within the
 * horizon, the fold of the older ones, and the anchors of last features.
 * Pure: no mount, no store; any thread.
 */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "featstate.h"

#define STATE_MAGIC "MLFSFS02"
#define STATE_HEAD 32 /* magic, nfeat, cutoff, base_t */

static_assert(sizeof(struct feat_acc) == 8 * sizeof(double),
	      "an accumulator is stored as eight doubles");

/* Is d folded into base (not windowed, not last)? */
static bool in_base(const struct feat_def *d)
{
	return d->window <= 0 && d->agg != AGG_LAST;
}

/*
 * How many features fold into base: a record keeps their accumulators
 * only (those of the others were 64 bytes each of nothing, stored and
 * copied with every update).
 */
static size_t base_count(const struct feat_spec *spec)
{
	size_t n = 0;

	for (size_t i = 0; i < spec->nfeat; i++)
		n += in_base(&spec->feat[i]);
	return n;
}

int feat_state_load(const void *buf, size_t len, const struct feat_spec *spec,
		    struct feat_state *st, char *why, size_t whylen)
{
	const char *p = buf;
	size_t base = base_count(spec) * sizeof(struct feat_acc);
	uint64_t nfeat;
	int rc;

	memset(st, 0, sizeof(*st));
	if (len < STATE_HEAD + base || memcmp(p, STATE_MAGIC, 8) != 0) {
		snprintf(why, whylen, "online record: not one");
		return -EBADMSG;
	}
	memcpy(&nfeat, p + 8, 8);
	memcpy(&st->cutoff, p + 16, 8);
	memcpy(&st->base_t, p + 24, 8);
	if (nfeat != spec->nfeat || isnan(st->cutoff) || isnan(st->base_t)) {
		snprintf(why, whylen, "online record: not of this spec");
		return -EBADMSG;
	}
	st->base = (const struct feat_acc *)(p + STATE_HEAD);
	rc = feat_hist_load(p + STATE_HEAD + base, len - STATE_HEAD - base,
			    spec, &st->h, why, whylen);
	if (rc == 0 && st->h.nkeys != 1) {
		snprintf(why, whylen, "online record: not one entity's");
		rc = -EBADMSG;
	}
	if (rc < 0)
		feat_hist_free(&st->h);
	return rc;
}

void feat_state_free(struct feat_state *st)
{
	feat_hist_free(&st->h);
	free(st->owned);
	st->owned = NULL;
}

bool feat_state_covers(const struct feat_spec *spec,
		       const struct feat_state *st, double t)
{
	return t > st->cutoff && t - spec->longest >= st->cutoff;
}

void feat_state_asof(const struct feat_spec *spec,
		     const struct feat_state *st, double t, double *out)
{
	const struct feat_hist *h = &st->h;
	size_t hi = feat_upper(h, 0, h->nev, t);
	size_t lo = feat_upper(h, 0, hi, st->cutoff); /* after the anchors */
	double newest = hi ? h->t[hi - 1] : -INFINITY;
	size_t j = 0; /* st->base[j]: the next feature folded into base */

	if (st->base_t <= t && st->base_t > newest)
		newest = st->base_t;
	for (size_t i = 0; i < spec->nfeat; i++) {
		const struct feat_def *d = &spec->feat[i];
		struct feat_acc acc = { 0 };

		const struct feat_acc *b = in_base(d) ? &st->base[j++] : NULL;

		if (newest == -INFINITY ||
		    (spec->ttl > 0 && t - newest > spec->ttl)) {
			out[i] = NAN;
			continue;
		}
		if (d->window > 0) {
			feat_fold(d, h, feat_upper(h, lo, hi, t - d->window), hi,
				  &acc);
		} else if (d->agg == AGG_LAST) {
			feat_fold(d, h, 0, hi, &acc);
		} else {
			acc = *b;
			feat_fold(d, h, lo, hi, &acc);
		}
		out[i] = feat_acc_value(&acc, d->agg);
	}
}

/* The value a new event brings to feature d (NAN: none). */
static double event_input(const struct feat_def *d, const bool *cat,
			  const struct feat_event *e)
{
	size_t c = (size_t)d->col;

	if (d->col < 0)
		return 0;
	if (cat[c])
		return e->str[c] ? 0 : NAN; /* only counted */
	return feat_bound(d, e->num[c]);
}

/* An event of the merge: old event i of the record, or new event ev[i]. */
struct mref {
	double t;
	size_t i;
	bool neu;
};

static int mref_cmp(const void *a, const void *b)
{
	const struct mref *x = a, *y = b;

	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	return (x->i > y->i) - (x->i < y->i);
}

/* The value event r brings to feature d (NAN: none). */
static double mref_input(const struct feat_def *d, const bool *cat,
			 const struct feat_hist *h,
			 const struct feat_event *ev, struct mref r)
{
	return r.neu ? event_input(d, cat, &ev[r.i]) : feat_input(d, h, r.i);
}

/* The text of column c of event r (categorical columns), or NULL. */
static const char *mref_text(const struct feat_hist *h,
			     const struct feat_event *ev, struct mref r,
			     size_t c, char buf[NUM_SHORTEST_MAX], size_t *len)
{
	if (!r.neu)
		return feat_event_text(h, r.i, c, buf, len);
	*len = ev[r.i].str[c] ? ev[r.i].slen[c] : 0;
	return ev[r.i].str[c];
}

/*
 * The events of old (none: NULL) and ev[0..n) in time order, the old
 * ones first among equal times and the new in their order, into r (room
 * for k + 2n refs, k old events: m refs).
 */
static void merge_refs(const struct feat_hist *h, const struct feat_event *ev,
		       size_t n, struct mref *r, size_t *m)
{
	size_t k = h ? h->nev : 0, o = 0, x = 0;
	struct mref *nw = r + k + n;

	for (size_t i = 0; i < n; i++)
		nw[i] = (struct mref){ ev[i].t, i, true };
	if (n > 1)
		qsort(nw, n, sizeof(*nw), mref_cmp);
	for (size_t e = 0; e < k + n; e++) {
		if (o < k && (x == n || h->t[o] <= nw[x].t)) {
			r[e] = (struct mref){ h->t[o], o, false };
			o++;
		} else {
			r[e] = nw[x++];
		}
	}
	*m = k + n;
}

int feat_state_update(const struct feat_spec *spec,
		      const struct feat_state *old, const bool *cat,
		      const char *key, size_t klen, bool iso,
		      const struct feat_event *ev, size_t n, double now,
		      void **buf, size_t *len)
{
	const struct feat_hist *h = old ? &old->h : NULL;
	size_t nf = spec->nfeat, nc = spec->ncols;
	size_t accs = base_count(spec) * sizeof(struct feat_acc);
	double old_cut = old ? old->cutoff : -INFINITY, cut = old_cut;
	double base_t = old ? old->base_t : -INFINITY;
	size_t nr = (h ? h->nev : 0) + 2 * n + 1;
	/*
	 * The work arrays in one allocation, the 8-byte ones first (an
	 * update per entity and write: seven allocations were a tenth of a
	 * stream's time in malloc and free).
	 */
	char *scratch = calloc(1, (nf + 1) * sizeof(struct feat_acc) +
					  2 * (nc + 1) * sizeof(uint64_t) +
					  nr * sizeof(struct mref) + (nc + 1) +
					  (nf + 1) + nr);
	struct feat_acc *base;
	uint64_t *ndict, *dlen;
	struct mref *r;
	bool *ct, *found, *keep;
	size_t m = 0, kept = 0, from, to, size;
	char *out, *p, nb[NUM_SHORTEST_MAX];
	double *t, *v;
	int rc = 0;

	if (!scratch)
		return -ENOMEM;
	base = (struct feat_acc *)scratch;
	ndict = (uint64_t *)(base + nf + 1);
	dlen = ndict + nc + 1;
	r = (struct mref *)(dlen + nc + 1);
	ct = (bool *)(r + nr);
	found = ct + nc + 1;
	keep = found + nf + 1;
	merge_refs(h, ev, n, r, &m);
	for (size_t i = 0, j = 0; old && i < nf; i++)
		if (in_base(&spec->feat[i]))
			base[i] = old->base[j++];
	for (size_t c = 0; c < nc; c++)
		ct[c] = (cat && cat[c]) || (h && h->coltype[c]);
	/* events too late for any window: into base as they come */
	for (size_t e = 0; e < n; e++) {
		if (ev[e].t > old_cut)
			continue;
		for (size_t i = 0; i < nf; i++) {
			double x = event_input(&spec->feat[i], ct, &ev[e]);

			if (in_base(&spec->feat[i]) && !isnan(x))
				feat_acc_add(&base[i], x);
		}
		if (ev[e].t > base_t)
			base_t = ev[e].t;
	}
	/* the new cutoff; what passes it folds into base, in time order */
	if (m) {
		double ref = r[m - 1].t < now ? r[m - 1].t : now;

		if (ref - spec->horizon > cut)
			cut = ref - spec->horizon;
	}
	for (from = 0; from < m && r[from].t <= old_cut; from++)
		;
	for (to = from; to < m && r[to].t <= cut; to++) {
		for (size_t i = 0; i < nf; i++) {
			double x = mref_input(&spec->feat[i], ct, h, ev, r[to]);

			if (in_base(&spec->feat[i]) && !isnan(x))
				feat_acc_add(&base[i], x);
		}
		if (r[to].t > base_t)
			base_t = r[to].t;
	}
	/* kept: what is after the cutoff, and the anchors before it */
	for (size_t e = to; e < m; e++)
		keep[e] = true;
	for (size_t e = to, left = 1; e-- > 0 && left;) {
		left = 0;
		for (size_t i = 0; i < nf; i++) {
			const struct feat_def *d = &spec->feat[i];

			if (d->window > 0 || d->agg != AGG_LAST || found[i])
				continue;
			if (!isnan(mref_input(d, ct, h, ev, r[e])))
				keep[e] = found[i] = true;
			else
				left++;
		}
	}
	for (size_t e = 0; e < m; e++) {
		if (!keep[e])
			continue;
		kept++;
		for (size_t c = 0; c < nc; c++) {
			size_t l;

			if (ct[c] && mref_text(h, ev, r[e], c, nb, &l)) {
				ndict[c]++;
				dlen[c] += l;
			}
		}
	}
	/* the record: head, base, then the kept events as a history */
	size = STATE_HEAD + accs +
	       feat_hist_size(1, kept, nc, klen, ct, ndict, dlen);
	out = calloc(1, size);
	if (!out) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(out, STATE_MAGIC, 8);
	memcpy(out + 8, &(uint64_t){ nf }, 8);
	memcpy(out + 16, &cut, 8);
	memcpy(out + 24, &base_t, 8);
	for (size_t i = 0, j = 0; i < nf; i++)
		if (in_base(&spec->feat[i]))
			memcpy(out + STATE_HEAD + j++ * sizeof(*base), &base[i],
			       sizeof(*base));
	p = feat_hist_head(out + STATE_HEAD + accs, 1, kept, nc,
			   iso || (h && h->iso), klen, ct, ndict, dlen);
	((uint64_t *)p)[1] = klen;     /* key_off: 0, klen */
	((uint64_t *)p)[3] = kept;     /* first: 0, kept */
	p += 32;
	memcpy(p, key, klen);
	t = (double *)(p + ((klen + 7) & ~(size_t)7));
	v = t + kept;
	p = (char *)(v + kept * nc);
	for (size_t c = 0; c < nc; c++) {
		uint64_t *doff = (uint64_t *)p;
		char *bytes = p + (ndict[c] + 1) * 8;
		uint64_t j = 0;
		size_t x = 0;

		if (!ct[c])
			continue;
		for (size_t e = 0; e < m; e++) {
			const char *text;
			size_t l;

			if (!keep[e])
				continue;
			text = mref_text(h, ev, r[e], c, nb, &l);
			v[x++ * nc + c] = text ? (double)j : NAN;
			if (text) {
				memcpy(bytes + doff[j], text, l);
				doff[j + 1] = doff[j] + l;
				j++;
			}
		}
		p = bytes + ((dlen[c] + 7) & ~(size_t)7);
	}
	for (size_t e = 0, x = 0; e < m; e++) {
		if (!keep[e])
			continue;
		t[x] = r[e].t;
		for (size_t c = 0; c < nc; c++)
			if (!ct[c])
				v[x * nc + c] = r[e].neu ? ev[r[e].i].num[c]
							 : h->v[r[e].i * nc + c];
		x++;
	}
	*buf = out;
	*len = size;
out:
	free(scratch);
	return rc;
}

int feat_state_of(const struct feat_spec *spec, const struct feat_hist *h,
		  size_t k, double now, void **buf, size_t *len)
{
	struct feat_state one = { .cutoff = -INFINITY, .base_t = -INFINITY };
	struct feat_acc *base = calloc(spec->nfeat + 1, sizeof(*base));
	char why[160];
	void *slice = NULL;
	size_t slen;
	int rc = base ? feat_hist_slice(h, k, &slice, &slen) : -ENOMEM;

	one.base = base;
	if (rc == 0)
		rc = feat_hist_load(slice, slen, spec, &one.h, why, sizeof(why));
	if (rc == 0)
		rc = feat_state_update(spec, &one, NULL, h->keys + h->key_off[k],
				       h->key_off[k + 1] - h->key_off[k], h->iso,
				       NULL, 0, now, buf, len);
	feat_hist_free(&one.h);
	free(slice);
	free(base);
	return rc;
}

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

#define STATE_MAGIC "MLFSFS01"
#define STATE_HEAD 32 /* magic, nfeat, cutoff, base_t */

static_assert(sizeof(struct feat_acc) == 8 * sizeof(double),
	      "an accumulator is stored as eight doubles");

int feat_state_load(const void *buf, size_t len, const struct feat_spec *spec,
		    struct feat_state *st, char *why, size_t whylen)
{
	const char *p = buf;
	size_t base = spec->nfeat * sizeof(struct feat_acc);
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

	if (st->base_t <= t && st->base_t > newest)
		newest = st->base_t;
	for (size_t i = 0; i < spec->nfeat; i++) {
		const struct feat_def *d = &spec->feat[i];
		struct feat_acc acc = { 0 };

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
			acc = st->base[i];
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

/* Is d folded into base (not windowed, not last)? */
static bool in_base(const struct feat_def *d)
{
	return d->window <= 0 && d->agg != AGG_LAST;
}

/*
 * The record of merged history hm (one key) whose events at or before
 * old_cut are in base already: fold those after it up to the new cutoff,
 * keep what stays.
 */
static int prune(const struct feat_spec *spec, const struct feat_hist *hm,
		 struct feat_acc *base, double base_t, double old_cut,
		 double now, void **buf, size_t *len)
{
	size_t nev = hm->nev, m = 0, from, to;
	size_t accs = spec->nfeat * sizeof(struct feat_acc);
	double cut = old_cut;
	size_t *idx = malloc((nev + spec->nfeat + 1) * sizeof(*idx));
	bool *found = calloc(spec->nfeat + 1, sizeof(*found));
	void *raw = NULL;
	size_t rlen;
	char *out;
	int rc;

	if (!idx || !found) {
		free(idx);
		free(found);
		return -ENOMEM;
	}
	if (nev) {
		double ref = hm->t[nev - 1] < now ? hm->t[nev - 1] : now;

		if (ref - spec->horizon > cut)
			cut = ref - spec->horizon;
	}
	from = feat_upper(hm, 0, nev, old_cut);
	to = feat_upper(hm, from, nev, cut);
	for (size_t i = 0; i < spec->nfeat; i++)
		if (in_base(&spec->feat[i]))
			feat_fold(&spec->feat[i], hm, from, to, &base[i]);
	if (to > from && hm->t[to - 1] > base_t)
		base_t = hm->t[to - 1];
	/* the anchors: per last feature without a window, the newest event
	 * at or before the cutoff that gives it a value */
	for (size_t e = to, left = 1; e-- > 0 && left;) {
		bool keep = false;

		left = 0;
		for (size_t i = 0; i < spec->nfeat; i++) {
			const struct feat_def *d = &spec->feat[i];

			if (d->window > 0 || d->agg != AGG_LAST || found[i])
				continue;
			if (!isnan(feat_input(d, hm, e)))
				keep = found[i] = true;
			else
				left++;
		}
		if (keep)
			idx[m++] = e;
	}
	for (size_t a = 0, b = m; a + 1 < b; a++, b--) {
		size_t x = idx[a];

		idx[a] = idx[b - 1];
		idx[b - 1] = x;
	}
	for (size_t e = to; e < nev; e++)
		idx[m++] = e;
	rc = feat_hist_pick(hm, 0, idx, m, &raw, &rlen);
	free(idx);
	free(found);
	if (rc < 0)
		return rc;
	*len = STATE_HEAD + accs + rlen;
	out = malloc(*len);
	if (!out) {
		free(raw);
		return -ENOMEM;
	}
	memcpy(out, STATE_MAGIC, 8);
	memcpy(out + 8, &(uint64_t){ spec->nfeat }, 8);
	memcpy(out + 16, &cut, 8);
	memcpy(out + 24, &base_t, 8);
	memcpy(out + STATE_HEAD, base, accs);
	memcpy(out + STATE_HEAD + accs, raw, rlen);
	free(raw);
	*buf = out;
	return 0;
}

int feat_state_update(const struct feat_spec *spec,
		      const struct feat_state *old, const bool *cat,
		      const char *key, size_t klen, bool iso,
		      const struct feat_event *ev, size_t n, double now,
		      void **buf, size_t *len)
{
	struct feat_acc *base = calloc(spec->nfeat + 1, sizeof(*base));
	double old_cut = old ? old->cutoff : -INFINITY;
	double base_t = old ? old->base_t : -INFINITY;
	struct feat_hist hm = { 0 };
	char why[160];
	void *merged;
	size_t mlen;
	int rc;

	if (!base)
		return -ENOMEM;
	if (old)
		memcpy(base, old->base, spec->nfeat * sizeof(*base));
	/* events too late for any window: into base as they come */
	for (size_t e = 0; e < n; e++) {
		if (ev[e].t > old_cut)
			continue;
		for (size_t i = 0; i < spec->nfeat; i++) {
			double v = event_input(&spec->feat[i], cat, &ev[e]);

			if (in_base(&spec->feat[i]) && !isnan(v))
				feat_acc_add(&base[i], v);
		}
		if (ev[e].t > base_t)
			base_t = ev[e].t;
	}
	/* every new event merges: a late one may be a last feature's anchor */
	rc = feat_hist_merge(old ? &old->h : NULL, cat, spec->ncols, key, klen,
			     iso, ev, n, &merged, &mlen);
	if (rc < 0) {
		free(base);
		return rc;
	}
	rc = feat_hist_load(merged, mlen, spec, &hm, why, sizeof(why));
	if (rc == 0)
		rc = prune(spec, &hm, base, base_t, old_cut, now, buf, len);
	feat_hist_free(&hm);
	free(merged);
	free(base);
	return rc;
}

int feat_state_of(const struct feat_spec *spec, const struct feat_hist *h,
		  size_t k, double now, void **buf, size_t *len)
{
	struct feat_acc *base = calloc(spec->nfeat + 1, sizeof(*base));
	struct feat_hist one = { 0 };
	char why[160];
	void *slice;
	size_t slen;
	int rc;

	if (!base)
		return -ENOMEM;
	rc = feat_hist_slice(h, k, &slice, &slen);
	if (rc < 0) {
		free(base);
		return rc;
	}
	rc = feat_hist_load(slice, slen, spec, &one, why, sizeof(why));
	if (rc == 0)
		rc = prune(spec, &one, base, -INFINITY, -INFINITY, now, buf,
			   len);
	feat_hist_free(&one);
	free(slice);
	free(base);
	return rc;
}

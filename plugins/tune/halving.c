/* SPDX-License-Identifier: MIT */
/*
 * halving: successive halving (eta = 3).  "trials" configurations are
 * drawn at random (seeded splitmix64) and each trained on a third of the
 * training rows; when every one has reported, the best third go on to the
 * next rung with three times the rows, until a rung trains on all of
 * them.  Poor trials stop early: they are never proposed again.  State is
 * the instance's; the host serialises calls.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mlfs_plugin.h>

#define ETA 3

struct halving {
	size_t n;           /* ranges */
	unsigned trials;
	double *values;     /* trials x n */
	double *score;      /* latest score per trial; NAN: failed */
	unsigned char *alive;
	unsigned rung;      /* current rung */
	unsigned rungs;     /* rungs in all */
	unsigned *queue;    /* trials of this rung */
	unsigned nqueue;
	unsigned proposed;  /* of the queue */
	unsigned reported;
};

static uint64_t hv_u64(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static int hv_init(const struct mlfs_host *host,
		   const struct mlfs_range *space, size_t nspace,
		   unsigned trials, uint64_t seed, void **inst, char *msg,
		   size_t msglen)
{
	struct halving *h;
	uint64_t st = seed ^ 0x5EEDULL;
	unsigned n;

	(void)host;
	if (trials < 2) {
		snprintf(msg, msglen, "\"trials\": halving needs >= 2");
		return -EINVAL;
	}
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->n = nspace;
	h->trials = trials;
	h->values = calloc((size_t)trials * (nspace ? nspace : 1),
			   sizeof(*h->values));
	h->score = calloc(trials, sizeof(*h->score));
	h->alive = calloc(trials, 1);
	h->queue = calloc(trials, sizeof(*h->queue));
	if (!h->values || !h->score || !h->alive || !h->queue) {
		free(h->values);
		free(h->score);
		free(h->alive);
		free(h->queue);
		free(h);
		return -ENOMEM;
	}
	for (unsigned t = 0; t < trials; t++) {
		for (size_t i = 0; i < nspace; i++) {
			const struct mlfs_range *g = &space[i];
			double u = (double)(hv_u64(&st) >> 11) * 0x1.0p-53;
			double *v = &h->values[t * nspace + i];

			if (g->kind == MLFS_RANGE_LOG_UNIFORM)
				*v = exp(log(g->lo) +
					 (log(g->hi) - log(g->lo)) * u);
			else if (g->kind == MLFS_RANGE_INT)
				*v = fmin(floor(g->lo + (g->hi - g->lo + 1) * u),
					  g->hi);
			else if (g->kind == MLFS_RANGE_CHOICE)
				*v = floor((double)g->nchoices * u);
			else
				*v = g->lo + (g->hi - g->lo) * u;
		}
		h->alive[t] = 1;
		h->queue[t] = t;
	}
	h->nqueue = trials;
	/* rungs: budgets 1/ETA^(r-1) ... 1 while a rung keeps >= 1 trial */
	for (n = trials, h->rungs = 1; n / ETA >= 1; n /= ETA)
		h->rungs++;
	*inst = h;
	return 0;
}

static double hv_budget(const struct halving *h)
{
	return pow(ETA, -(double)(h->rungs - 1 - h->rung));
}

static int hv_cmp_desc(const void *a, const void *b, void *arg)
{
	const double *s = arg;
	double x = s[*(const unsigned *)a], y = s[*(const unsigned *)b];

	if (isnan(x))
		return isnan(y) ? 0 : 1;
	if (isnan(y))
		return -1;
	return x > y ? -1 : x < y;
}

static int hv_next(void *inst, unsigned *trial, double *values,
		   double *budget)
{
	struct halving *h = inst;
	unsigned t;

	if (h->proposed == h->nqueue) {
		unsigned keep;

		if (h->reported < h->nqueue)
			return -EAGAIN; /* the rung is still running */
		if (h->rung + 1 >= h->rungs)
			return 0;
		/* promote the best third of this rung */
		qsort_r(h->queue, h->nqueue, sizeof(*h->queue), hv_cmp_desc,
			h->score);
		keep = h->nqueue / ETA ? h->nqueue / ETA : 1;
		for (unsigned i = keep; i < h->nqueue; i++)
			h->alive[h->queue[i]] = 0;
		while (keep > 1 && isnan(h->score[h->queue[keep - 1]]))
			keep--;
		h->nqueue = keep;
		h->proposed = 0;
		h->reported = 0;
		h->rung++;
	}
	t = h->queue[h->proposed++];
	memcpy(values, &h->values[t * h->n], h->n * sizeof(*values));
	*trial = t;
	*budget = hv_budget(h);
	return 1;
}

static int hv_report(void *inst, unsigned trial, double score)
{
	struct halving *h = inst;

	if (trial >= h->trials)
		return -EINVAL;
	h->score[trial] = score;
	h->reported++;
	return 0;
}

static void hv_fini(void *inst)
{
	struct halving *h = inst;

	if (!h)
		return;
	free(h->values);
	free(h->score);
	free(h->alive);
	free(h->queue);
	free(h);
}

static const struct mlfs_tune_ops hv_ops = {
	.size = sizeof(hv_ops),
	.init = hv_init,
	.next = hv_next,
	.report = hv_report,
	.fini = hv_fini,
};

MLFS_EXPORT const struct mlfs_plugin mlfs_plugin = {
	.abi_major = MLFS_ABI_MAJOR,
	.abi_minor = MLFS_ABI_MINOR,
	.stage = MLFS_STAGE_TUNE,
	.name = "halving",
	.version = "1.0.0",
	.ops = &hv_ops,
};

/* SPDX-License-Identifier: MIT */
/*
 * The seeded train/validation/test split (mlcore.h), stratified by
 * class when asked, and the PRNG behind it.  Pure.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <jansson.h>

#include "csv.h"
#include "mlcore.h"
#include "mlcore_int.h"

/* ---------------------------------------------------------------- */
/* The split. */

uint64_t prng_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

double prng_uniform(uint64_t *state)
{
	return (double)(prng_next(state) >> 11) * 0x1.0p-53;
}

/* Uniform in [0, bound), bound > 0, without modulo bias. */
uint64_t prng_below(uint64_t *state, uint64_t bound)
{
	uint64_t threshold = -bound % bound;

	for (;;) {
		uint64_t r = prng_next(state);

		if (r >= threshold)
			return r % bound;
	}
}

static void shuffle(size_t *v, size_t n, uint64_t *state)
{
	size_t i;

	for (i = n; i > 1; i--) {
		size_t j = (size_t)prng_below(state, i);
		size_t tmp = v[i - 1];

		v[i - 1] = v[j];
		v[j] = tmp;
	}
}

struct split_cand {
	double rem;    /* fractional part of the stratum's exact share */
	size_t k;      /* stratum */
	int s;         /* set */
};

static int split_cand_cmp(const void *a, const void *b)
{
	const struct split_cand *x = a;
	const struct split_cand *y = b;

	if (x->rem != y->rem)
		return x->rem > y->rem ? -1 : 1;
	if (x->k != y->k)
		return x->k < y->k ? -1 : 1;
	return (x->s > y->s) - (x->s < y->s);
}

/*
 * How many rows of each stratum go to each set: a[k * 3 + s].  The set
 * totals are the largest-remainder rounding of frac * n, and each
 * stratum's counts are its exact shares rounded down, plus one for the
 * largest fractional parts as long as both the stratum and the set still
 * have rows to give and take.  So every set's total is as close to its
 * fraction as integers allow, and no stratum is off by more than one row
 * per set but for the rare leftovers of the last loop.
 */
static int split_counts(const size_t *m, size_t nk, size_t n,
			const double *frac, size_t *a)
{
	struct split_cand *cand;
	size_t nc = 0;
	size_t floor_sum = 0;
	int64_t need[3];
	size_t *left;
	size_t k;
	size_t i;
	int s;

	cand = malloc(nk * 3 * sizeof(*cand));
	if (!cand)
		return -ENOMEM;
	left = calloc(nk, sizeof(*left));
	if (!left) {
		free(cand);
		return -ENOMEM;
	}

	/* Set totals by largest remainder. */
	{
		double rem[3];
		size_t tot[3];

		for (s = 0; s < 3; s++) {
			double x = frac[s] * (double)n;

			tot[s] = (size_t)floor(x);
			if (tot[s] > n)
				tot[s] = n;
			rem[s] = x - (double)tot[s];
			floor_sum += tot[s];
		}
		while (floor_sum > n) {
			int best = -1;

			for (s = 0; s < 3; s++)
				if (tot[s] && (best < 0 || rem[s] < rem[best]))
					best = s;
			tot[best]--;
			rem[best] += 1;
			floor_sum--;
		}
		while (floor_sum < n) {
			int best = 0;

			for (s = 1; s < 3; s++)
				if (rem[s] > rem[best])
					best = s;
			tot[best]++;
			rem[best] -= 1;
			floor_sum++;
		}
		for (s = 0; s < 3; s++)
			need[s] = (int64_t)tot[s];
	}

	for (k = 0; k < nk; k++) {
		size_t sum = 0;

		for (s = 0; s < 3; s++) {
			double x = frac[s] * (double)m[k];
			size_t f = (size_t)floor(x);

			if (sum + f > m[k])
				f = m[k] - sum;
			a[k * 3 + s] = f;
			sum += f;
			need[s] -= (int64_t)f;
			if (x > (double)f)
				cand[nc++] = (struct split_cand){
					x - (double)f, k, s
				};
		}
		left[k] = m[k] - sum;
	}
	qsort(cand, nc, sizeof(*cand), split_cand_cmp);
	for (i = 0; i < nc; i++) {
		k = cand[i].k;
		s = cand[i].s;
		if (left[k] && need[s] > 0) {
			a[k * 3 + s]++;
			left[k]--;
			need[s]--;
		}
	}
	/* Leftovers the greedy pass could not place within one row of a
	 * stratum's share go where rows are still needed most. */
	for (k = 0; k < nk; k++) {
		while (left[k]) {
			int best = 0;

			for (s = 1; s < 3; s++)
				if (need[s] > need[best])
					best = s;
			a[k * 3 + best]++;
			left[k]--;
			need[best]--;
		}
	}
	free(left);
	free(cand);
	return 0;
}

int split_rows(size_t n, const uint32_t *strata, size_t nstrata,
	       const struct split_spec *sp, uint8_t *out)
{
	double frac[3];
	double sum = 0;
	size_t *start;
	size_t *m;
	size_t *a;
	size_t *idx;
	uint64_t state;
	size_t nk = 1;
	size_t i;
	size_t k;
	int s;
	int rc = 0;

	if (!sp || (n && !out))
		return -EINVAL;
	frac[SPLIT_TRAIN] = sp->train;
	frac[SPLIT_VALIDATION] = sp->validation;
	frac[SPLIT_TEST] = sp->test;
	for (s = 0; s < 3; s++) {
		if (!(frac[s] >= 0 && frac[s] <= 1))
			return -EINVAL;
		sum += frac[s];
	}
	if (fabs(sum - 1) > 1e-6 || !(sp->train > 0))
		return -EINVAL;
	/* Within the tolerance the fractions need not sum to exactly 1;
	 * normalised, the counts can never exceed the rows. */
	for (s = 0; s < 3; s++)
		frac[s] /= sum;
	if (!sp->stratify)
		strata = NULL;
	if (strata) {
		if (!nstrata)
			return -EINVAL;
		for (i = 0; i < n; i++)
			if (strata[i] >= nstrata)
				return -EINVAL;
		nk = nstrata;
	}
	if (!n)
		return 0;

	m = calloc(nk, sizeof(*m));
	if (!m)
		return -ENOMEM;
	start = calloc(nk, sizeof(*start));
	if (!start) {
		rc = -ENOMEM;
		goto out_free_m;
	}
	a = calloc(nk * 3, sizeof(*a));
	if (!a) {
		rc = -ENOMEM;
		goto out_free_start;
	}
	idx = malloc(n * sizeof(*idx));
	if (!idx) {
		rc = -ENOMEM;
		goto out_free_a;
	}
	for (i = 0; i < n; i++)
		m[strata ? strata[i] : 0]++;
	for (k = 1; k < nk; k++)
		start[k] = start[k - 1] + m[k - 1];
	/* Rows of each stratum in order (a, not yet needed, holds where
	 * the next one goes), then shuffled below: the result depends only
	 * on the inputs and the seed. */
	for (k = 0; k < nk; k++)
		a[k] = start[k];
	for (i = 0; i < n; i++)
		idx[a[strata ? strata[i] : 0]++] = i;
	rc = split_counts(m, nk, n, frac, a);
	if (rc < 0)
		goto out_free_idx;
	state = sp->seed;
	for (k = 0; k < nk; k++) {
		size_t *v = idx + start[k];
		size_t j = 0;

		shuffle(v, m[k], &state);
		for (s = 0; s < 3; s++) {
			size_t e;

			for (e = 0; e < a[k * 3 + s]; e++)
				out[v[j++]] = (uint8_t)s;
		}
	}
out_free_idx:
	free(idx);
out_free_a:
	free(a);
out_free_start:
	free(start);
out_free_m:
	free(m);
	return rc;
}

/* SPDX-License-Identifier: MIT */
/*
 * Drift of one input between a reference sample and a live window: the
 * population stability index on bins fixed by the reference, and the
 * two-sample Kolmogorov-Smirnov test (numbers) or the chi-squared test
 * of a 2 x K contingency table (categories).  Pure.
 *
 * The rules that make the figures well defined (DESIGN.md §4):
 *   - numbers: the PSI bins are cut at the reference's deciles (numpy's
 *     default linear quantiles, repeated cuts merged); a value v falls in
 *     bin i, the number of cuts below v (a value equal to a cut is in the
 *     bin below it); values that are not numbers are left out;
 *   - categories (by the hash of their text): the reference's, and
 *     "other" for every category it never saw;
 *   - a bin's share is floored at 1e-4, so an empty bin is finite;
 *   - KS: the statistic of scipy.stats.ks_2samp, its p-value the
 *     limiting distribution's, kstwobign.sf(sqrt(mn/(m+n)) D);
 *   - chi-squared: chi2_contingency(correction=False) on the table of
 *     reference and live counts, categories no row has dropped.
 */
#ifndef MLFS_FS_DRIFT_H
#define MLFS_FS_DRIFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DRIFT_CUTS 9           /* deciles */
#define DRIFT_SHARE_FLOOR 1e-4
#define DRIFT_CELLS 4096       /* an index of the sorted reference */

/* The reference of one input. */
struct drift_ref {
	bool numeric;
	double *sorted;          /* numbers: the sample, sorted */
	uint32_t *cell;          /* numbers: DRIFT_CELLS + 1 starts in
				    sorted of equal slices of its range */
	double lo, scale;        /* the slice of v: (v - lo) * scale */
	int8_t *cellbin;         /* numbers: the PSI bin of every value of
				    a slice, or -1 where a cut falls in it */
	size_t n;                /* numbers or categories counted */
	double cuts[DRIFT_CUTS]; /* numbers: distinct deciles, ascending */
	size_t ncuts;
	double *bins;            /* counts per bin: ncuts + 1 for numbers,
				    ncats + 1 (other last) for categories */
	uint64_t *cats;          /* categories: hashes, ascending */
	size_t ncats;
};

/* From n numbers (NaN left out) or n category hashes.  -ENOMEM. */
int drift_ref_numbers(struct drift_ref *r, const double *v, size_t n);
int drift_ref_categories(struct drift_ref *r, const uint64_t *h, size_t n);
void drift_ref_free(struct drift_ref *r);

struct drift_result {
	size_t n;       /* live values counted */
	double psi;
	double ks, ks_p;     /* numbers */
	double chi2, chi2_p; /* categories */
	unsigned dof;
};

/*
 * drift_numbers: live (n values; NaN left out) against r; scratch holds
 * 2 * (r->n + 1) doubles.  drift_categories: live hashes; scratch holds
 * r->ncats + 1 doubles.  A side with no values gives NAN statistics.
 */
void drift_numbers(const struct drift_ref *r, const double *live, size_t n,
		   double *scratch, struct drift_result *out);
void drift_categories(const struct drift_ref *r, const uint64_t *live,
		      size_t n, double *scratch, struct drift_result *out);

/* The Kolmogorov distribution's survival function (kstwobign.sf). */
double drift_kolmogorov_sf(double x);
/* The chi-squared distribution's survival function (chi2.sf). */
double drift_chi2_sf(double x, double dof);

#endif

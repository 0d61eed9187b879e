/* SPDX-License-Identifier: MIT */
/*
 * Drift statistics (drift.h).  Pure.  The two survival functions are
 * written here: they are a few lines each, and no Debian C library that
 * mlfs already links has them (GSL would be a dependency for two
 * functions).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "drift.h"

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* The numbers of v that are numbers, into out (sorted): how many. */
static size_t sorted_numbers(const double *v, size_t n, double *out)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		if (!isnan(v[i]))
			out[k++] = v[i];
	qsort(out, k, sizeof(*out), cmp_double);
	return k;
}

/* numpy.quantile's default ("linear"), of sorted s (n > 0). */
static double quantile(const double *s, size_t n, double p)
{
	double pos = (double)(n - 1) * p, t;
	size_t lo = (size_t)pos;

	if (lo + 1 >= n)
		return s[n - 1];
	t = pos - (double)lo;
	/* numpy's _lerp: exact at both ends */
	return t >= 0.5 ? s[lo + 1] - (s[lo + 1] - s[lo]) * (1 - t)
			: s[lo] + (s[lo + 1] - s[lo]) * t;
}

/* The bin of v: how many cuts are below it (nine at most: counted
 * without a branch). */
static size_t bin_of(const double *cuts, size_t ncuts, double v)
{
	size_t b = 0;

	for (size_t i = 0; i < ncuts; i++)
		b += cuts[i] < v;
	return b;
}

void drift_ref_free(struct drift_ref *r)
{
	free(r->cell);
	free(r->cellbin);
	free(r->sorted);
	free(r->bins);
	free(r->cats);
	memset(r, 0, sizeof(*r));
}

/* The slice of v (a number within the reference's range). */
static size_t cell_of(const struct drift_ref *r, double v)
{
	double c = (v - r->lo) * r->scale;

	return c < DRIFT_CELLS ? (size_t)c : DRIFT_CELLS - 1;
}

/*
 * Where each of DRIFT_CELLS equal slices of the reference's range starts
 * in sorted: a value's slice bounds its place, so finding it is a search
 * of a few values, not of all (cell_of is monotonic: a value in a lower
 * slice is lower).
 */
static int cells_make(struct drift_ref *r)
{
	size_t c = 0;

	if (r->n == 0)
		return 0;
	r->cell = malloc((DRIFT_CELLS + 1) * sizeof(*r->cell));
	if (!r->cell)
		return -ENOMEM;
	r->lo = r->sorted[0];
	r->scale = r->sorted[r->n - 1] > r->lo
			   ? DRIFT_CELLS / (r->sorted[r->n - 1] - r->lo)
			   : 0;
	for (size_t i = 0; i < r->n; i++)
		for (size_t ci = cell_of(r, r->sorted[i]); c <= ci; c++)
			r->cell[c] = (uint32_t)i;
	for (; c <= DRIFT_CELLS; c++)
		r->cell[c] = (uint32_t)r->n;
	/*
	 * A slice no cut falls in has one PSI bin for all its values: the
	 * cuts in lower slices are below them, those in higher ones above
	 * (cell_of is monotonic).
	 */
	r->cellbin = malloc(DRIFT_CELLS);
	if (!r->cellbin)
		return -ENOMEM;
	for (c = 0; c < DRIFT_CELLS; c++) {
		int8_t bin = 0;

		for (size_t j = 0; j < r->ncuts && bin >= 0; j++) {
			size_t ct = r->cuts[j] < r->lo ? 0 : cell_of(r, r->cuts[j]);

			if (ct == c)
				bin = -1;
			else if (ct < c)
				bin++;
		}
		r->cellbin[c] = bin;
	}
	return 0;
}

int drift_ref_numbers(struct drift_ref *r, const double *v, size_t n)
{
	memset(r, 0, sizeof(*r));
	r->numeric = true;
	r->sorted = malloc((n ? n : 1) * sizeof(*r->sorted));
	r->bins = calloc(DRIFT_CUTS + 1, sizeof(*r->bins));
	if (!r->sorted || !r->bins) {
		drift_ref_free(r);
		return -ENOMEM;
	}
	r->n = sorted_numbers(v, n, r->sorted);
	for (int d = 1; r->n && d <= DRIFT_CUTS; d++) {
		double q = quantile(r->sorted, r->n, d / 10.0);

		if (r->ncuts == 0 || q != r->cuts[r->ncuts - 1])
			r->cuts[r->ncuts++] = q;
	}
	for (size_t i = 0; i < r->n; i++)
		r->bins[bin_of(r->cuts, r->ncuts, r->sorted[i])]++;
	return cells_make(r);
}

int drift_ref_categories(struct drift_ref *r, const uint64_t *h, size_t n)
{
	uint64_t *s = malloc((n ? n : 1) * sizeof(*s));
	size_t k = 0;

	memset(r, 0, sizeof(*r));
	if (!s)
		return -ENOMEM;
	memcpy(s, h, n * sizeof(*s));
	qsort(s, n, sizeof(*s), cmp_u64);
	for (size_t i = 0; i < n; i++)
		if (i == 0 || s[i] != s[i - 1])
			k++;
	r->cats = malloc((k ? k : 1) * sizeof(*r->cats));
	r->bins = calloc(k + 1, sizeof(*r->bins));
	if (!r->cats || !r->bins) {
		free(s);
		drift_ref_free(r);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		if (i == 0 || s[i] != s[i - 1])
			r->cats[r->ncats++] = s[i];
		r->bins[r->ncats - 1]++;
	}
	r->n = n;
	free(s);
	return 0;
}

/* Index of category h in r, or r->ncats ("other"). */
static size_t cat_of(const struct drift_ref *r, uint64_t h)
{
	size_t lo = 0, hi = r->ncats;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (r->cats[mid] < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < r->ncats && r->cats[lo] == h ? lo : r->ncats;
}

static double psi(const double *ref, double rn, const double *live,
		  double ln, size_t nbins)
{
	double s = 0;

	for (size_t i = 0; i < nbins; i++) {
		double e = fmax(ref[i] / rn, DRIFT_SHARE_FLOOR);
		double a = fmax(live[i] / ln, DRIFT_SHARE_FLOOR);

		s += (a - e) * log(a / e);
	}
	return s;
}

double drift_kolmogorov_sf(double x)
{
	double s = 0;

	if (!(x > 0))
		return 1;
	if (x < 1) {
		/* the other series: the cdf, for small x */
		double c = M_PI * M_PI / (8 * x * x);

		for (int k = 1; k < 100; k++) {
			double t = exp(-(2.0 * k - 1) * (2.0 * k - 1) * c);

			s += t;
			if (t < 1e-18)
				break;
		}
		return 1 - sqrt(2 * M_PI) / x * s;
	}
	for (int k = 1; k < 100; k++) {
		double t = exp(-2.0 * k * k * x * x);

		s += k % 2 ? t : -t;
		if (t < 1e-18)
			break;
	}
	return fmin(1, fmax(0, 2 * s));
}

double drift_chi2_sf(double x, double dof)
{
	double a = dof / 2, z = x / 2, front;

	if (!(x > 0) || dof <= 0)
		return 1;
	front = exp(-z + a * log(z) - lgamma(a));
	if (z < a + 1) {
		/* the lower function by its series: P, then 1 - P */
		double ap = a, del = 1 / a, sum = del;

		for (int n = 0; n < 10000; n++) {
			ap += 1;
			del *= z / ap;
			sum += del;
			if (fabs(del) < fabs(sum) * 1e-16)
				break;
		}
		return fmax(0, 1 - sum * front);
	}
	/* the upper function by its continued fraction (modified Lentz) */
	{
		const double tiny = 1e-300;
		double b = z + 1 - a, c = 1 / tiny, d = 1 / b, h = d;

		for (int i = 1; i < 10000; i++) {
			double an = -i * (i - a), del;

			b += 2;
			d = an * d + b;
			if (fabs(d) < tiny)
				d = tiny;
			c = b + an / c;
			if (fabs(c) < tiny)
				c = tiny;
			d = 1 / d;
			del = d * c;
			h *= del;
			if (fabs(del - 1) < 1e-16)
				break;
		}
		return front * h;
	}
}

/*
 * How many of r's sorted values are <= v (searched in v's slice), and
 * v's PSI bin (*bin).
 */
static size_t place(const struct drift_ref *r, double v, size_t *bin)
{
	const double *s = r->sorted;
	size_t lo, hi, c;

	if (v < r->lo || v >= s[r->n - 1]) {
		*bin = bin_of(r->cuts, r->ncuts, v);
		return v < r->lo ? 0 : r->n;
	}
	c = cell_of(r, v);
	*bin = r->cellbin[c] >= 0 ? (size_t)r->cellbin[c]
				  : bin_of(r->cuts, r->ncuts, v);
	lo = r->cell[c];
	hi = r->cell[c + 1];
	if (hi - lo <= 16) {
		/* a few: counted without a branch to mispredict */
		size_t k = lo;

		for (size_t i = lo; i < hi; i++)
			k += s[i] <= v;
		return k;
	}
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (s[mid] <= v)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * The live values are never sorted: each is counted in bucket b, the
 * number of reference values at or below it (a binary search), and, if
 * it equals the b-th, as a tie there too (scratch: m + 1 counts, then
 * m + 1 ties).  Between two reference values the reference's cdf stands
 * still, so the largest gap is at a reference value (the live cdf as low
 * as it gets there: the buckets before, and its ties) or at the last
 * live value before the next one (as high: the buckets up to its own).
 * That is ks_2samp's statistic, for a binary search a value instead of
 * a sort.
 */
void drift_numbers(const struct drift_ref *r, const double *live, size_t n,
		   double *scratch, struct drift_result *out)
{
	double live_bins[DRIFT_CUTS + 1] = { 0 };
	size_t m = r->n, k = 0;
	double *cnt = scratch, *tie = scratch + m + 1;
	double d = 0, run = 0, km, mm = (double)m;

	memset(out, 0, sizeof(*out));
	memset(scratch, 0, 2 * (m + 1) * sizeof(*scratch));
	for (size_t q = 0; q < n; q++) {
		size_t b, pb;

		if (isnan(live[q]))
			continue;
		k++;
		b = place(r, live[q], &pb);
		live_bins[pb]++;
		cnt[b]++;
		if (b > 0 && r->sorted[b - 1] == live[q])
			tie[b]++;
	}
	out->n = k;
	if (m == 0 || k == 0) {
		out->psi = out->ks = out->ks_p = NAN;
		return;
	}
	out->psi = psi(r->bins, mm, live_bins, (double)k, r->ncuts + 1);
	km = (double)k;
	for (size_t b = 0; b <= m; b++) {
		double g, fr = (double)b / mm;

		if (b > 0 && (b == m || r->sorted[b] != r->sorted[b - 1])) {
			/* at the reference value ending here */
			g = fabs((run + tie[b]) / km - fr);
			d = g > d ? g : d;
		}
		run += cnt[b];
		/* at the last live value before the next one, if any */
		g = fabs(run / km - fr);
		d = cnt[b] > 0 && g > d ? g : d;
	}
	out->ks = d;
	out->ks_p = drift_kolmogorov_sf(sqrt(mm * km / (mm + km)) * d);
}

void drift_categories(const struct drift_ref *r, const uint64_t *live,
		      size_t n, double *scratch, struct drift_result *out)
{
	size_t nb = r->ncats + 1, cols = 0;
	double total, chi = 0;

	memset(out, 0, sizeof(*out));
	memset(scratch, 0, nb * sizeof(*scratch));
	for (size_t q = 0; q < n; q++)
		scratch[cat_of(r, live[q])]++;
	out->n = n;
	if (r->n == 0 || n == 0) {
		out->psi = out->chi2 = out->chi2_p = NAN;
		return;
	}
	out->psi = psi(r->bins, (double)r->n, scratch, (double)n, nb);
	total = (double)r->n + (double)n;
	for (size_t c = 0; c < nb; c++) {
		double col = r->bins[c] + scratch[c];

		if (col == 0)
			continue; /* a category neither side has */
		cols++;
		for (int row = 0; row < 2; row++) {
			double o = row ? scratch[c] : r->bins[c];
			double e = (row ? (double)n : (double)r->n) * col / total;

			chi += (o - e) * (o - e) / e;
		}
	}
	out->dof = cols > 1 ? (unsigned)(cols - 1) : 0;
	out->chi2 = out->dof ? chi : 0;
	out->chi2_p = out->dof ? drift_chi2_sf(chi, out->dof) : 1;
}

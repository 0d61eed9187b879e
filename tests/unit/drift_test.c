/* SPDX-License-Identifier: MIT */
/*
 * drift: the survival functions and statistics against values scipy
 * printed (scipy.stats.kstwobign.sf, chi2.sf, ks_2samp,
 * chi2_contingency(correction=False)); PSI by its definition.  The
 * integration test checks a deployment's drift file against scipy on
 * live data.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drift.h"
#include "failalloc.h"
#include "tap.h"

static const double kolmogorov[][2] = {
	{ 0.05, 1 },
	{ 0.3, 0.99999069419866549 },
	{ 0.8, 0.54414241157419807 },
	{ 0.99, 0.28087383922554893 },
	{ 1.0, 0.26999967167735456 },
	{ 1.2, 0.11224966667072497 },
	{ 2.0, 0.00067092525577969533 },
	{ 3.5, 4.579469691291106e-11 },
};

static const double chi2[][3] = {
	{ 0.5, 1, 0.47950012218695337 },
	{ 3.84, 1, 0.050043521248705189 },
	{ 10, 3, 0.018566135463043251 },
	{ 0.1, 7, 0.99999768858120142 },
	{ 50, 20, 0.00022147663824878349 },
	{ 200, 150, 0.0039731859708216346 },
	{ 0.001, 2, 0.99950012497916929 },
};

/* ks_2samp's statistic the plain way: both sorted, every point. */
static int cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double ks_plain(double *a, size_t m, double *b, size_t n)
{
	double d = 0;

	qsort(a, m, sizeof(*a), cmpd);
	qsort(b, n, sizeof(*b), cmpd);
	for (size_t p = 0; p < m + n; p++) {
		double v = p < m ? a[p] : b[p - m];
		size_t i = 0, j = 0;

		while (i < m && a[i] <= v)
			i++;
		while (j < n && b[j] <= v)
			j++;
		d = fmax(d, fabs((double)i / (double)m - (double)j / (double)n));
	}
	return d;
}

int main(void)
{
	char name[80];

	for (size_t i = 0; i < sizeof(kolmogorov) / sizeof(kolmogorov[0]);
	     i++) {
		snprintf(name, sizeof(name), "kstwobign.sf(%g)",
			 kolmogorov[i][0]);
		ok(fabs(drift_kolmogorov_sf(kolmogorov[i][0]) -
			kolmogorov[i][1]) < 1e-12,
		   name);
	}
	for (size_t i = 0; i < sizeof(chi2) / sizeof(chi2[0]); i++) {
		snprintf(name, sizeof(name), "chi2.sf(%g, %g)", chi2[i][0],
			 chi2[i][1]);
		ok(fabs(drift_chi2_sf(chi2[i][0], chi2[i][1]) - chi2[i][2]) <
			   1e-12,
		   name);
	}
	{
		/* ks_2samp(a, b): 0.31666666666666665, p 0.6447379259854435 */
		double a[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 2.5, 3.5 };
		double b[] = { 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, NAN };
		double scratch[26]; /* 2 (r.n + 1) */
		struct drift_ref r;
		struct drift_result d;

		is_int(drift_ref_numbers(&r, a, 12), 0, "reference");
		is_int((long)r.n, 12, "12 numbers");
		drift_numbers(&r, b, 11, scratch, &d);
		is_int((long)d.n, 10, "NaN left out");
		ok(fabs(d.ks - 0.31666666666666665) < 1e-12, "ks statistic");
		ok(fabs(d.ks_p - 0.6447379259854435) < 1e-9, "ks p-value");
		/* numpy.quantile(a, [.1, ..., .9]) cuts, bins by count below */
		ok(r.ncuts == 9 && fabs(r.cuts[0] - 2.05) < 1e-12 &&
			   fabs(r.cuts[8] - 8.9) < 1e-12,
		   "deciles as numpy's");
		ok(d.psi > 0 && isfinite(d.psi), "psi is finite");
		drift_numbers(&r, a, 12, scratch, &d);
		ok(d.psi == 0 && d.ks == 0 && d.ks_p == 1, "no drift from itself");
		drift_ref_free(&r);
	}
	{
		/* chi2_contingency([[10, 20, 30], [15, 15, 40]]) */
		uint64_t ref[60], live[70];
		double scratch[4];
		struct drift_ref r;
		struct drift_result d;
		size_t k = 0;

		for (int i = 0; i < 60; i++)
			ref[i] = i < 10 ? 11 : i < 30 ? 22 : 33;
		for (int i = 0; i < 70; i++)
			live[k++] = i < 15 ? 11 : i < 30 ? 22 : 33;
		is_int(drift_ref_categories(&r, ref, 60), 0, "categories");
		is_int((long)r.ncats, 3, "three");
		drift_categories(&r, live, 70, scratch, &d);
		ok(fabs(d.chi2 - 2.3877551020408165) < 1e-12, "chi2");
		ok(fabs(d.chi2_p - 0.30304391468510006) < 1e-12, "chi2 p");
		is_int(d.dof, 2, "dof");
		{
			/* PSI by hand: shares 10/60.. against 15/70.. */
			double e[] = { 10 / 60.0, 20 / 60.0, 30 / 60.0 };
			double a[] = { 15 / 70.0, 15 / 70.0, 40 / 70.0 };
			double want = 0;

			for (int i = 0; i < 3; i++)
				want += (a[i] - e[i]) * log(a[i] / e[i]);
			/* "other": both empty, floored alike: adds 0 */
			ok(fabs(d.psi - want) < 1e-12, "psi");
		}
		live[0] = 99; /* unseen: other */
		drift_categories(&r, live, 70, scratch, &d);
		is_int(d.dof, 3, "other is a column once seen");
		ok(isfinite(d.psi) && d.psi > 0, "an unseen category: finite");
		drift_ref_free(&r);
	}
	{
		/* ties everywhere: small integers, and values off the ends */
		unsigned x = 12345;
		int bad = 0;

		for (int round = 0; round < 200; round++) {
			double a[60], b[50], a2[60], b2[50], scratch[122];
			size_t m = 5 + (size_t)round % 55, n = 3 + (size_t)round % 47;
			struct drift_ref r;
			struct drift_result d;

			for (size_t i = 0; i < m; i++) {
				x = x * 1103515245 + 12345;
				a[i] = a2[i] = (double)((x >> 16) % 7);
			}
			for (size_t i = 0; i < n; i++) {
				x = x * 1103515245 + 12345;
				b[i] = b2[i] = (double)((x >> 16) % 9) - 1;
			}
			drift_ref_numbers(&r, a, m);
			drift_numbers(&r, b, n, scratch, &d);
			if (fabs(d.ks - ks_plain(a2, m, b2, n)) > 1e-12)
				bad++;
			drift_ref_free(&r);
		}
		is_int(bad, 0, "KS with ties: as the plain way, 200 cases");
	}
	{
		/* PSI bins through the slices: as counting the cuts below */
		static double a[3000], b[2000], scratch[6002];
		unsigned x = 777;
		int bad = 0;

		for (int round = 0; round < 20; round++) {
			double rb[DRIFT_CUTS + 1] = { 0 }, lb[DRIFT_CUTS + 1] = { 0 };
			double want = 0;
			struct drift_ref r;
			struct drift_result d;

			for (size_t i = 0; i < 3000; i++) {
				x = x * 1103515245 + 12345;
				a[i] = round % 2 ? (double)((x >> 16) % 50)
						 : (double)(x >> 8) / 1e5;
			}
			for (size_t i = 0; i < 2000; i++) {
				x = x * 1103515245 + 12345;
				b[i] = round % 2 ? (double)((x >> 16) % 60) - 5
						 : (double)(x >> 8) / 1.2e5 - 10;
			}
			drift_ref_numbers(&r, a, 3000);
			drift_numbers(&r, b, 2000, scratch, &d);
			for (int side = 0; side < 2; side++)
				for (size_t i = 0; i < (side ? 2000u : 3000u); i++) {
					double v = side ? b[i] : a[i];
					size_t k = 0;

					for (size_t j = 0; j < r.ncuts; j++)
						k += r.cuts[j] < v;
					(side ? lb : rb)[k]++;
				}
			for (size_t i = 0; i <= r.ncuts; i++) {
				double e = fmax(rb[i] / 3000, 1e-4);
				double l = fmax(lb[i] / 2000, 1e-4);

				want += (l - e) * log(l / e);
			}
			if (fabs(d.psi - want) > 1e-12)
				bad++;
			drift_ref_free(&r);
		}
		is_int(bad, 0, "PSI through the slices: as by the cuts, 20 cases");
	}
	return done();
}

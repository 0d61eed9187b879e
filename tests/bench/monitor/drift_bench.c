/* SPDX-License-Identifier: MIT */
/*
 * drift_bench.c: the drift computation of fs/ml/drift.c, timed on its
 * own (bench_monitor.sh compiles it with drift.c, -O2).
 *
 *   drift_bench NUM CAT REF LIVE RUNS SEED [DUMPDIR]
 *
 * NUM numeric and CAT categorical features; REF reference rows and LIVE
 * live rows of each, made here from SEED (splitmix64):
 *   numeric feature j: reference N(mu_j, sigma_j); live the same, shifted
 *     by 0.25 sigma_j for every other feature; values rounded to 1e-4
 *     (CSV text has few digits, so there are ties, as in real data);
 *   categorical feature j: 5 + j % 20 categories with skewed shares;
 *     live draws from one category more, which the reference never saw
 *     ("other"); categories are 64-bit hashes, as deploymon.c's.
 *
 * Timed, each RUNS times (the median printed, and the min and max):
 *   ref       drift_ref_numbers / drift_ref_categories of every feature
 *             (built once for the drift runs; rebuilt RUNS times only to
 *             time it)
 *   drift     drift_numbers / drift_categories of every feature, live
 *             against reference: what deploymon.c's snapshot_drift does
 *             each interval (outside the deployment's lock)
 *   snapshot  the transpose of a ring of LIVE rows x (NUM + CAT)
 *             features (doubles and hashes) into columns, as
 *             snapshot_take does under the deployment's lock
 *
 * Prints one line per figure, "name median_ms min_ms max_ms", and, with
 * DUMPDIR, writes the data and the statistics for the scipy side
 * (bench_drift.py): ref.f64 live.f64 (NUM x REF, NUM x LIVE, feature
 * major), refcat.u64 livecat.u64 (CAT x ...), and stats.tsv (per feature:
 * type psi ks ks_p chi2 dof chi2_p).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* M_PI, as meson.build defines it */
#endif
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "drift.h"

static uint64_t rng_state;

static uint64_t splitmix64(void)
{
	uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static double uniform(void)
{
	return (double)(splitmix64() >> 11) / 9007199254740992.0;
}

static double gauss(void)
{
	double u = uniform(), v = uniform();

	return sqrt(-2 * log(1 - u)) * cos(2 * M_PI * v);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p) {
		fprintf(stderr, "drift_bench: out of memory\n");
		exit(1);
	}
	return p;
}

/* drift.c's comparison function (static there) */
static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}


static int cmp_ms(const void *a, const void *b)
{
	return cmp_double(a, b);
}

static void print_stat(const char *name, double *t, int runs)
{
	qsort(t, (size_t)runs, sizeof(*t), cmp_ms);
	printf("%s %.3f %.3f %.3f\n", name,
	       runs % 2 ? t[runs / 2] : (t[runs / 2 - 1] + t[runs / 2]) / 2,
	       t[0], t[runs - 1]);
}

static void dump(const char *dir, const char *name, const void *p,
		 size_t bytes)
{
	char path[4096];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "wb");
	if (!fp || fwrite(p, 1, bytes, fp) != bytes || fclose(fp) != 0) {
		fprintf(stderr, "drift_bench: cannot write %s\n", path);
		exit(1);
	}
}

int main(int argc, char **argv)
{
	size_t nnum, ncat, nref, nlive, nf;
	int runs;
	double *ref, *live, *scratch, *t, *ring, *cols;
	uint64_t *refc, *livec, *ringc, *colsc;
	struct drift_ref *refs;
	struct drift_result *res;
	volatile double sink = 0;

	if (argc != 7 && argc != 8) {
		fprintf(stderr, "usage: drift_bench NUM CAT REF LIVE RUNS SEED "
				"[DUMPDIR]\n");
		return 2;
	}
	nnum = strtoul(argv[1], NULL, 10);
	ncat = strtoul(argv[2], NULL, 10);
	nref = strtoul(argv[3], NULL, 10);
	nlive = strtoul(argv[4], NULL, 10);
	runs = atoi(argv[5]);
	rng_state = strtoull(argv[6], NULL, 10);
	nf = nnum + ncat;
	if (nf == 0 || nref == 0 || nlive == 0 || runs < 1) {
		fprintf(stderr, "drift_bench: nothing to measure\n");
		return 2;
	}

	/* the data */
	ref = xmalloc(nnum * nref * sizeof(*ref));
	live = xmalloc(nnum * nlive * sizeof(*live));
	refc = xmalloc(ncat * nref * sizeof(*refc));
	livec = xmalloc(ncat * nlive * sizeof(*livec));
	for (size_t j = 0; j < nnum; j++) {
		double mu = 10 * gauss(), sigma = 0.5 + 4 * uniform();
		double shift = j % 2 ? 0.25 * sigma : 0;

		for (size_t i = 0; i < nref; i++)
			ref[j * nref + i] = round((mu + sigma * gauss()) * 1e4) / 1e4;
		for (size_t i = 0; i < nlive; i++)
			live[j * nlive + i] =
				round((mu + shift + sigma * gauss()) * 1e4) / 1e4;
	}
	for (size_t j = 0; j < ncat; j++) {
		size_t k = 5 + j % 20;
		uint64_t salt = splitmix64();

		/* category c with a share falling with c (u^2 skews to 0) */
		for (size_t i = 0; i < nref; i++) {
			double u = uniform();

			refc[j * nref + i] = salt ^ (uint64_t)(u * u * (double)k);
		}
		for (size_t i = 0; i < nlive; i++) {
			double u = uniform();

			livec[j * nlive + i] =
				salt ^ (uint64_t)(u * u * (double)(k + 1));
		}
	}

	refs = xmalloc(nf * sizeof(*refs));
	res = xmalloc(nf * sizeof(*res));
	t = xmalloc((size_t)runs * sizeof(*t));
	/* drift.h: 2 (ref + 1) for numbers, categories + 1 */
	scratch = xmalloc((2 * (nref + 1) + nlive) * sizeof(*scratch));

	/* ref: built RUNS times, the last kept */
	for (int r = 0; r < runs; r++) {
		double t0 = now_ms();

		for (size_t j = 0; j < nf; j++) {
			int rc = j < nnum ? drift_ref_numbers(&refs[j],
							      ref + j * nref, nref)
					  : drift_ref_categories(
						    &refs[j],
						    refc + (j - nnum) * nref, nref);

			if (rc < 0) {
				fprintf(stderr, "drift_bench: out of memory\n");
				return 1;
			}
		}
		t[r] = now_ms() - t0;
		if (r + 1 < runs)
			for (size_t j = 0; j < nf; j++)
				drift_ref_free(&refs[j]);
	}
	print_stat("ref", t, runs);

	/* drift: every feature, live against reference */
	for (int r = -1; r < runs; r++) { /* one warm-up run */
		double t0 = now_ms();

		for (size_t j = 0; j < nf; j++) {
			if (j < nnum)
				drift_numbers(&refs[j], live + j * nlive, nlive,
					      scratch, &res[j]);
			else
				drift_categories(&refs[j],
						 livec + (j - nnum) * nlive,
						 nlive, scratch, &res[j]);
		}
		if (r >= 0)
			t[r] = now_ms() - t0;
	}
	print_stat("drift", t, runs);

	/* snapshot: the ring, row-major, into columns */
	ring = xmalloc(nlive * nf * sizeof(*ring));
	ringc = xmalloc(nlive * nf * sizeof(*ringc));
	cols = xmalloc(nlive * nf * sizeof(*cols));
	colsc = xmalloc(nlive * nf * sizeof(*colsc));
	for (size_t i = 0; i < nlive * nf; i++) {
		ring[i] = (double)i;
		ringc[i] = i;
	}
	for (int r = 0; r < runs; r++) {
		double t0 = now_ms();

		for (size_t i = 0; i < nlive; i++)
			for (size_t k = 0; k < nf; k++) {
				cols[k * nlive + i] = ring[i * nf + k];
				colsc[k * nlive + i] = ringc[i * nf + k];
			}
		t[r] = now_ms() - t0;
		sink += cols[nlive * nf / 2] + (double)colsc[1];
	}
	print_stat("snapshot", t, runs);

	if (argc == 8) {
		char path[4096];
		FILE *fp;

		dump(argv[7], "ref.f64", ref, nnum * nref * sizeof(*ref));
		dump(argv[7], "live.f64", live, nnum * nlive * sizeof(*live));
		dump(argv[7], "refcat.u64", refc, ncat * nref * sizeof(*refc));
		dump(argv[7], "livecat.u64", livec,
		     ncat * nlive * sizeof(*livec));
		snprintf(path, sizeof(path), "%s/stats.tsv", argv[7]);
		fp = fopen(path, "w");
		if (!fp) {
			fprintf(stderr, "drift_bench: cannot write %s\n", path);
			return 1;
		}
		for (size_t j = 0; j < nf; j++)
			fprintf(fp, "%s\t%.17g\t%.17g\t%.17g\t%.17g\t%u\t%.17g\n",
				j < nnum ? "numeric" : "categorical", res[j].psi,
				res[j].ks, res[j].ks_p, res[j].chi2, res[j].dof,
				res[j].chi2_p);
		if (fclose(fp) != 0) {
			fprintf(stderr, "drift_bench: cannot write %s\n", path);
			return 1;
		}
	}
	for (size_t j = 0; j < nf; j++)
		drift_ref_free(&refs[j]);
	free(refs);
	free(res);
	free(t);
	free(scratch);
	free(ref);
	free(live);
	free(refc);
	free(livec);
	free(ring);
	free(ringc);
	free(cols);
	free(colsc);
	return sink == 42.4242 ? 3 : 0;
}

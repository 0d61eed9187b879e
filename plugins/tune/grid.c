/* SPDX-License-Identifier: MIT */
/*
 * grid: a tune plugin proposing the points of a grid over the space, in
 * order, each on the whole training split: integer ranges with at most 10
 * evenly spaced values, uniform ranges 5 values, log-uniform 5 values
 * spaced evenly in log, choices all of them; "trials" caps the number of
 * points.  State is the instance's; the host serialises calls.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <mlfs_plugin.h>

struct grid {
	const struct mlfs_range *space; /* borrowed for the search */
	size_t n;
	size_t *points;  /* per range: how many values */
	unsigned total;  /* points in the whole grid, capped */
	unsigned next;
};

static size_t grid_points(const struct mlfs_range *g)
{
	switch (g->kind) {
	case MLFS_RANGE_CHOICE:
		return g->nchoices;
	case MLFS_RANGE_INT: {
		double span = g->hi - g->lo + 1;

		return span < 10 ? (size_t)span : 10;
	}
	default:
		return g->hi > g->lo ? 5 : 1;
	}
}

static double grid_value(const struct mlfs_range *g, size_t i, size_t n)
{
	double f = n > 1 ? (double)i / (double)(n - 1) : 0;

	switch (g->kind) {
	case MLFS_RANGE_CHOICE:
		return (double)i;
	case MLFS_RANGE_INT:
		return floor(g->lo + (g->hi - g->lo) * f + 0.5);
	case MLFS_RANGE_LOG_UNIFORM:
		return exp(log(g->lo) + (log(g->hi) - log(g->lo)) * f);
	default:
		return g->lo + (g->hi - g->lo) * f;
	}
}

static int grid_init(const struct mlfs_host *host,
		     const struct mlfs_range *space, size_t nspace,
		     unsigned trials, uint64_t seed, void **inst, char *msg,
		     size_t msglen)
{
	struct grid *g;
	double total = 1;

	(void)host;
	(void)seed;
	(void)msg;
	(void)msglen;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->points = calloc(nspace ? nspace : 1, sizeof(*g->points));
	if (!g->points) {
		free(g);
		return -ENOMEM;
	}
	g->space = space;
	g->n = nspace;
	for (size_t i = 0; i < nspace; i++) {
		g->points[i] = grid_points(&space[i]);
		total *= (double)g->points[i];
	}
	if (trials && total > trials)
		total = trials;
	g->total = total > 1e6 ? 1000000 : (unsigned)total;
	*inst = g;
	return 0;
}

static int grid_next(void *inst, unsigned *trial, double *values,
		     double *budget)
{
	struct grid *g = inst;
	unsigned k;

	if (g->next >= g->total)
		return 0;
	/* the next point in mixed radix, the last range fastest */
	k = g->next;
	for (size_t i = g->n; i-- > 0;) {
		size_t d = g->points[i] ? k % g->points[i] : 0;

		values[i] = grid_value(&g->space[i], d, g->points[i]);
		k = g->points[i] ? k / (unsigned)g->points[i] : k;
	}
	*trial = g->next++;
	*budget = 1;
	return 1;
}

static int grid_report(void *inst, unsigned trial, double score)
{
	(void)inst;
	(void)trial;
	(void)score;
	return 0;
}

static void grid_fini(void *inst)
{
	struct grid *g = inst;

	if (g)
		free(g->points);
	free(g);
}

static const struct mlfs_tune_ops grid_ops = {
	.size = sizeof(grid_ops),
	.init = grid_init,
	.next = grid_next,
	.report = grid_report,
	.fini = grid_fini,
};

MLFS_EXPORT const struct mlfs_plugin mlfs_plugin = {
	.abi_major = MLFS_ABI_MAJOR,
	.abi_minor = MLFS_ABI_MINOR,
	.stage = MLFS_STAGE_TUNE,
	.name = "grid",
	.version = "1.0.0",
	.ops = &grid_ops,
};

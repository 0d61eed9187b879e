/* SPDX-License-Identifier: MIT */
/*
 * random: a tune plugin proposing trials drawn independently from the
 * space (uniform, log-uniform, integer, choice) with a seeded splitmix64
 * generator, each on the whole training split.  Deterministic by seed.
 * State is the instance's; the host serialises calls.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <mlfs_plugin.h>

struct rnd {
	const struct mlfs_range *space; /* borrowed for the search */
	size_t n;
	unsigned trials;
	unsigned next;
	uint64_t state;
};

static uint64_t rnd_u64(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static double rnd_unit(uint64_t *s)
{
	return (double)(rnd_u64(s) >> 11) * 0x1.0p-53;
}

static int rnd_init(const struct mlfs_host *host,
		    const struct mlfs_range *space, size_t nspace,
		    unsigned trials, uint64_t seed, void **inst, char *msg,
		    size_t msglen)
{
	struct rnd *r;

	(void)host;
	if (trials == 0) {
		snprintf(msg, msglen, "\"trials\": random search needs >= 1");
		return -EINVAL;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->space = space;
	r->n = nspace;
	r->trials = trials;
	r->state = seed ^ 0x5EEDULL;
	*inst = r;
	return 0;
}

static int rnd_next(void *inst, unsigned *trial, double *values,
		    double *budget)
{
	struct rnd *r = inst;

	if (r->next >= r->trials)
		return 0;
	for (size_t i = 0; i < r->n; i++) {
		const struct mlfs_range *g = &r->space[i];
		double u = rnd_unit(&r->state);

		switch (g->kind) {
		case MLFS_RANGE_LOG_UNIFORM:
			values[i] = exp(log(g->lo) + (log(g->hi) - log(g->lo)) * u);
			break;
		case MLFS_RANGE_INT:
			values[i] = floor(g->lo + (g->hi - g->lo + 1) * u);
			if (values[i] > g->hi)
				values[i] = g->hi;
			break;
		case MLFS_RANGE_CHOICE:
			values[i] = floor((double)g->nchoices * u);
			break;
		default:
			values[i] = g->lo + (g->hi - g->lo) * u;
		}
	}
	*trial = r->next++;
	*budget = 1;
	return 1;
}

static int rnd_report(void *inst, unsigned trial, double score)
{
	(void)inst;
	(void)trial;
	(void)score;
	return 0; /* random search does not learn */
}

static void rnd_fini(void *inst)
{
	free(inst);
}

static const struct mlfs_tune_ops rnd_ops = {
	.size = sizeof(rnd_ops),
	.init = rnd_init,
	.next = rnd_next,
	.report = rnd_report,
	.fini = rnd_fini,
};

MLFS_EXPORT const struct mlfs_plugin mlfs_plugin = {
	.abi_major = MLFS_ABI_MAJOR,
	.abi_minor = MLFS_ABI_MINOR,
	.stage = MLFS_STAGE_TUNE,
	.name = "random",
	.version = "1.0.0",
	.ops = &rnd_ops,
};

/* SPDX-License-Identifier: MIT */
/*
 * The spec of a deployment (deployments/<d>/spec; DESIGN.md §4):
 *
 *   {"strategy": "canary",
 *    "candidates": [{"model": "churn@production", "weight": 90},
 *                   {"model": "churn@4", "weight": 10}],
 *    "shadow": "churn@5", "seed": 7, "epsilon": 0.1,
 *    "rollback": {"error_rate": 0.05, "accuracy_below": 0.8,
 *                 "min_requests": 200},
 *    "monitor": {"interval": "10s", "window": 1000,
 *                "reference": "training", "psi": 0.2, "ks_p": 0.01,
 *                "chi2_p": 0.01}}
 *
 * Strategies: single (one candidate), blue-green (two: the first serves
 * until promote), canary (two or more, by weight), epsilon-greedy and
 * thompson (two or more, by feedback), shadow (two: the first answers,
 * the second is mirrored).  "shadow" mirrors a model under any
 * strategy.  A candidate is {"model": ref, "weight": w} or the ref
 * alone; a ref is "name", "name@<n>", "name@latest" or "name@<alias>".
 *
 * Checked as written, with the line and column of the first problem, as
 * train specs are.  Pure: deploy.c resolves the refs against the
 * registry and validates the models.
 */
#ifndef MLFS_FS_DEPLOYSPEC_H
#define MLFS_FS_DEPLOYSPEC_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "problem.h"

enum dep_strategy {
	DEP_SINGLE,
	DEP_BLUE_GREEN,
	DEP_CANARY,
	DEP_EPSILON_GREEDY,
	DEP_THOMPSON,
	DEP_SHADOW,
};

/* Candidates of a spec at most (with its shadow: PSTREAM_MAX_MODELS). */
#define DEPSPEC_MAX_CANDIDATES 15

/*
 * deployspec_check: judge text (len bytes; final: the whole of it, at
 * close).  0 while incomplete JSON is not final.  On success with a
 * complete value and out non-NULL, *out is the spec in its full form:
 * "strategy" set, each candidate an object with its "weight" (canary:
 * as given; others: equal), "epsilon" (epsilon-greedy: 0.1 by default)
 * "rollback" "min_requests" (100) and "monitor" (every field; the
 * interval in seconds; "monitor": false stays so) filled in.  -EINVAL or -EFBIG
 * with pb.
 */
int deployspec_check(const char *text, size_t len, bool final,
		     json_t **out, struct problem *pb);

/* The strategy of a checked spec. */
enum dep_strategy deployspec_strategy(json_t *spec);

/* The name of a strategy, as specs write it. */
const char *deployspec_strategy_name(enum dep_strategy s);

#endif

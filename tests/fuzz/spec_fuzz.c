/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the train spec checks that need no mount.
 *
 * spec_check_text runs on the whole input (final) and on prefixes (as a
 * spec written in pieces is checked at each write), and a spec that is
 * valid whole must be accepted at every one of its prefixes (issue 10,
 * point 6).  A valid spec's "params" then go through spec_params and to
 * every loaded train plugin's init for every task it supports: that is
 * how the daemon lets a plugin judge its params when a spec is written.
 * spec_resolve is not here: it needs a struct fs with an index, a
 * dataset version and its schema (the integration tests cover it).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fs.h"
#include "fuzz_model.h"
#include "plugin.h"
#include "spec.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_fs(); /* loads the train plugins */
	return 0;
}

static void check_params(json_t *params)
{
	struct mlfs_param *ps;
	double *lists;
	size_t n;
	char msg[400];

	if (spec_params(params, &ps, &n, &lists, msg, sizeof(msg)) < 0)
		return;
	const struct plugin_set *plugins = fuzz_fs()->plugins;

	for (size_t i = 0; i < plugins->nok; i++) {
		const struct mlfs_plugin *d = plugins->ok[i].desc;
		const struct mlfs_train_ops *ops;

		if (d->stage != MLFS_STAGE_TRAIN)
			continue;
		ops = d->ops;
		for (unsigned task = 1; task <= ops->tasks; task <<= 1) {
			void *inst = NULL;

			if (!(ops->tasks & task))
				continue;
			if (ops->init(&fuzz_host, task, ps, n, &inst, msg,
				      sizeof(msg)) == 0)
				ops->fini(inst);
		}
	}
	free(ps);
	free(lists);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct problem pb = { 0 };
	json_t *j;
	int rc;

	rc = spec_check_text(text, size, true, &pb);
	if (rc != 0) {
		/* not valid whole: its prefixes only have to be survived */
		spec_check_text(text, size, false, &pb);
		spec_check_text(text, size / 2, false, &pb);
		if (size)
			spec_check_text(text, size - 1, false, &pb);
		return 0;
	}
	for (size_t i = 0; i < size; i++) {
		rc = spec_check_text(text, i, false, &pb);
		if (rc != 0) {
			fprintf(stderr, "spec_check_text: a valid spec refused "
					"at its prefix of %zu bytes: %s\n",
				i, pb.msg);
			abort();
		}
	}
	j = json_loadb(text, size, JSON_REJECT_DUPLICATES, NULL);
	if (!j)
		abort();
	check_params(json_object_get(j, "params"));
	json_decref(j);
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * The kinds of versioned object (repo.h: struct repo_kind), and what keeps
 * a version of each from being removed: a version of another kind whose
 * manifest names it (repo_ref), or a live user outside the repository.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bcache.h"
#include "catalog.h"
#include "csv.h"
#include "repo.h"
#include "fs.h"
#include "hash.h"
#include "hostfile.h"
#include "jsonout.h"
#include "meta.h"
#include "reap.h"
#include "remote.h"
#include "repo_int.h"
#include "store.h"

/* A queued or running job reads it (the runner answers, from above). */
static int dataset_busy(struct fs *fs, const char *name, unsigned ver,
			char *why, size_t whylen)
{
	return fs->jobs_read_dataset
		       ? fs->jobs_read_dataset(fs, name, ver, why, whylen)
		       : 0;
}

const struct repo_kind repo_datasets = {
	.dir = "datasets",
	.record = "dataset.json",
	.noun = "dataset",
	.busy = dataset_busy,
};

static const struct repo_ref feature_refs[] = {
	{ "source", &repo_datasets, "synced from" },
	{ NULL },
};

const struct repo_kind repo_features = {
	.dir = "features",
	.record = "feature_set.json",
	.noun = "feature set",
	.refs = feature_refs,
};

static const struct repo_ref model_refs[] = {
	{ "dataset", &repo_datasets, "trained on" },
	{ "feature_sets", &repo_features, "trained on" },
	{ NULL },
};

const struct repo_kind repo_models = {
	.dir = "models",
	.record = "model.json",
	.noun = "model",
	.refs = model_refs,
};

static const struct repo_ref deployment_refs[] = {
	{ "models", &repo_models, "serving" },
	{ NULL },
};

const struct repo_kind repo_deployments = {
	.dir = "deployments",
	.record = "deployment.json",
	.noun = "deployment",
	.refs = deployment_refs,
};

/* Every kind, in the order a rebuild reads them. */
const struct repo_kind *const repo_kinds[] = { &repo_datasets, &repo_features,
					    &repo_models, &repo_deployments,
					    NULL };

const struct repo_kind *repo_kind_of_key(const char *key)
{
	for (size_t i = 0; repo_kinds[i]; i++) {
		size_t n = strlen(repo_kinds[i]->dir);

		if (strncmp(key, repo_kinds[i]->dir, n) == 0 && key[n] == '/')
			return repo_kinds[i];
	}
	return NULL;
}

bool repo_ref_get(json_t *man, const struct repo_ref *ref, size_t i,
		const char **name, unsigned *ver)
{
	json_t *r = json_object_get(man, ref->field);

	if (json_is_array(r))
		r = json_array_get(r, i);
	else if (i > 0)
		r = NULL;

	*name = json_string_value(json_object_get(r, "name"));
	*ver = (unsigned)json_integer_value(json_object_get(r, "version"));
	return *name && *ver;
}

struct use_scan {
	const struct repo_kind *by; /* the kind whose versions are scanned */
	const struct repo_ref *ref; /* their field that may name ours */
	const char *name;
	unsigned ver; /* 0: any version */
	char *why;
	size_t whylen;
	struct meta_txn *t;
};

/* A version of us->by: does it name name (version ver)? */
static int use_one(void *arg, const char *key, const char *val, size_t len)
{
	struct use_scan *us = arg;
	json_t *man = json_loadb(val, len, 0, NULL);
	const char *who = key + strlen(us->by->dir) + 1;
	const char *slash = strchr(who, '/');
	char vkey[512];
	const char *n;
	unsigned v;
	int rc = 0;

	for (size_t i = 0; rc == 0 && slash &&
			   repo_ref_get(man, us->ref, i, &n, &v); i++) {
		if (strcmp(n, us->name) != 0 || (us->ver && us->ver != v))
			continue;
		/* a version something uses is never removed: it went missing */
		repo_version_key(us->ref->to, n, v, vkey, sizeof(vkey));
		snprintf(us->why, us->whylen, "%s %.*s was %s v%u%s",
			 us->by->noun, (int)(slash - who), who, us->ref->verb,
			 v,
			 meta_has(us->t, META_VER, vkey) == 0
				 ? ", whose manifest is missing from the bucket"
				 : "");
		rc = 1;
	}
	json_decref(man);
	return rc;
}

/*
 * Is name (version ver, or any) used by something that must keep it:
 * the kind's live users, or a version of any kind whose manifest names
 * it?  1 with why, 0, or -errno.
 */
int repo_in_use(struct fs *fs, const struct repo_kind *k, const char *name,
		unsigned ver, char *why, size_t whylen)
{
	struct use_scan us = { .name = name, .ver = ver, .why = why,
			       .whylen = whylen };
	char prefix[300];
	int rc = 0;

	if (k->busy && k->busy(fs, name, ver, why, whylen) > 0)
		return 1;
	rc = meta_txn_begin(fs->meta, true, &us.t);
	if (rc < 0)
		return rc;
	for (size_t i = 0; rc == 0 && repo_kinds[i]; i++) {
		for (const struct repo_ref *r = repo_kinds[i]->refs;
		     rc == 0 && r && r->field; r++) {
			if (r->to != k)
				continue;
			us.by = repo_kinds[i];
			us.ref = r;
			snprintf(prefix, sizeof(prefix), "%s/", us.by->dir);
			rc = meta_scan(us.t, META_VER, prefix, NULL, use_one,
				       &us);
		}
	}
	meta_txn_abort(us.t);
	return rc;
}

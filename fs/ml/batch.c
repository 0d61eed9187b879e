/* SPDX-License-Identifier: MIT */
/*
 * Batch scoring in the daemon (batch.h): the spec checked as written, the
 * job queued on the runner with the dataset version on descriptor 3 and
 * the model file on 4, and its out/data.csv published as a version of
 * the output dataset.  The job itself is job_batch.c, run as the writer;
 * what it leaves is the writer's, so it is taken through a private copy.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batch.h"
#include "deploy.h"
#include "fs.h"
#include "hostfile.h"
#include "mlfs_plugin.h"
#include "names.h"
#include "plugin.h"
#include "repo.h"
#include "runner.h"
#include "runner_int.h"
#include "spec.h"
#include "store.h"

#define META_MAX ((size_t)16 << 20) /* bytes of a meta.json read */

static const char *const fields[] = { "model", "deployment", "dataset",
				      "output", "keep", NULL };

static int check_fields(json_t *spec, const char *text, struct problem *pb)
{
	json_t *keep = json_object_get(spec, "keep");
	const char *k, *out;
	json_t *v;
	size_t i;
	int rc;

	rc = problem_check_fields(pb, text, spec, fields, NULL);
	if (rc < 0)
		return rc;
	json_object_foreach(spec, k, v) {
		if (strcmp(k, "keep") != 0 && !json_is_string(v))
			return problem_field(pb, text, k, "must be a string");
	}
	if (!json_object_get(spec, "model") ==
	    !json_object_get(spec, "deployment"))
		return problem_field(pb, text,
				     json_object_get(spec, "model") ? "deployment"
								    : "model",
				     json_object_get(spec, "model")
					     ? "give model or deployment, "
					       "not both"
					     : "missing: the model (or the "
					       "deployment) that scores");
	if (!json_object_get(spec, "dataset"))
		return problem_field(pb, text, "dataset",
				     "missing: the dataset (name@version) "
				     "to score");
	out = json_string_value(json_object_get(spec, "output"));
	if (!out)
		return problem_field(pb, text, "output",
				     "missing: the dataset the answers go to");
	if (node_name_check(out, NULL) < 0)
		return problem_field(pb, text, "output",
				     "not a dataset name");
	if (keep && !json_is_array(keep))
		return problem_field(pb, text, "keep",
				     "must be a list of column names");
	json_array_foreach(keep, i, v) {
		if (!json_is_string(v) || !json_string_length(v))
			return problem_field(pb, text, "keep",
					     "must be a list of column names");
	}
	return 0;
}

/* The schema column name of a dataset version's manifest? */
static bool has_column(json_t *man, const char *name)
{
	size_t i;
	json_t *c;

	json_array_foreach(json_object_get(json_object_get(man, "schema"),
					   "columns"),
			   i, c) {
		if (strcmp(json_string_value(json_object_get(c, "name")),
			   name) == 0)
			return true;
	}
	return false;
}

/* The input columns of a model version (its meta.json's), or NULL. */
static json_t *model_inputs(struct fs *fs, json_t *mman)
{
	const char *hash = json_string_value(json_object_get(
		json_object_get(json_object_get(mman, "files"), "meta.json"),
		"hash"));
	json_t *meta, *inputs = NULL;
	char key[96], *buf;
	size_t len;

	if (!hash)
		return NULL;
	repo_blob_key(hash, key, sizeof(key));
	if (store_get(fs->store, key, META_MAX, &buf, &len) < 0)
		return NULL;
	meta = json_loadb(buf, len, 0, NULL);
	free(buf);
	if (json_is_array(json_object_get(meta, "inputs")))
		inputs = json_incref(json_object_get(meta, "inputs"));
	json_decref(meta);
	return inputs;
}

/* The model, dataset and output of spec, for writer: the plan. */
static int resolve(struct fs *fs, const char *job, json_t *spec,
		   const char *text, const struct fs_ctx *ctx, json_t **plan,
		   struct problem *pb)
{
	struct host_user writer = { ctx->uid, ctx->gid, ctx->pid };
	const char *dep = json_string_value(json_object_get(spec, "deployment"));
	const char *mref = json_string_value(json_object_get(spec, "model"));
	const char *dref = json_string_value(json_object_get(spec, "dataset"));
	const char *out = json_string_value(json_object_get(spec, "output"));
	const char *field = dep ? "deployment" : "model";
	char served[300], mname[256], dname[256], why[400], key[96];
	json_t *mrec = NULL, *mman = NULL, *drec = NULL, *dman = NULL;
	json_t *orec = NULL, *inputs = NULL;
	json_t *keep = json_object_get(spec, "keep");
	const struct plugin *pl;
	const char *algo;
	unsigned mver, dver;
	size_t i;
	json_t *c;
	int rc;

	if (dep) {
		rc = deploy_serving(fs, dep, served, sizeof(served), why,
				    sizeof(why));
		if (rc < 0)
			return problem_field(pb, text, field, "%s",
					     why[0] ? why : "no such deployment");
		mref = served;
	}
	rc = repo_ref_resolve(fs, &repo_models, mref, mname, sizeof(mname),
			      &mver, &mrec, why, sizeof(why));
	if (rc < 0)
		return problem_field(pb, text, field, "%s", why);
	if (!host_may_record(&writer, mrec, R_OK | X_OK)) {
		rc = problem_field(pb, text, field, "model \"%s\": permission "
						    "denied", mname);
		rc = -EACCES;
		goto out;
	}
	rc = repo_ref_resolve(fs, &repo_datasets, dref, dname, sizeof(dname),
			      &dver, &drec, why, sizeof(why));
	if (rc < 0) {
		rc = problem_field(pb, text, "dataset", "%s", why);
		goto out;
	}
	if (!host_may_record(&writer, drec, R_OK | X_OK)) {
		problem_field(pb, text, "dataset",
			      "dataset \"%s\": permission denied", dname);
		rc = -EACCES;
		goto out;
	}
	rc = ds_version_ready(fs, dname, dver, &dman, pb);
	if (rc < 0)
		goto out;
	/* the output: the writer's to write, if it exists */
	if (repo_get(fs, &repo_datasets, out, &orec) == 0 &&
	    !host_may_record(&writer, orec, W_OK | X_OK)) {
		problem_field(pb, text, "output",
			      "dataset \"%s\": permission denied", out);
		rc = -EACCES;
		goto out;
	}
	rc = repo_version(fs, &repo_models, mname, mver, &mman);
	if (rc < 0)
		goto out;
	/* its plugin, and its inputs in the dataset */
	algo = json_string_value(json_object_get(mman, "algorithm"));
	pl = algo ? plugin_find(fs_plugins(fs), MLFS_STAGE_TRAIN, algo) : NULL;
	if (!pl) {
		rc = problem_field(pb, text, field,
				   "%s@%u needs train plugin \"%s\", which is "
				   "not loaded",
				   mname, mver, algo ? algo : "?");
		goto out;
	}
	if (json_object_get(mman, "feature_sets")) {
		rc = problem_field(pb, text, field,
				   "%s@%u is trained on feature sets: batch "
				   "scoring takes models of columns",
				   mname, mver);
		goto out;
	}
	inputs = model_inputs(fs, mman);
	if (!inputs) {
		rc = problem_field(pb, text, field, "%s@%u: its meta.json "
						    "cannot be read",
				   mname, mver);
		goto out;
	}
	json_array_foreach(keep, i, c) {
		if (rc == 0 && !has_column(dman, json_string_value(c)))
			rc = problem_field(pb, text, "keep",
					   "no column \"%s\" in %s@%u",
					   json_string_value(c), dname, dver);
	}
	json_array_foreach(inputs, i, c) {
		if (rc == 0 && !has_column(dman, json_string_value(c)))
			rc = problem_field(pb, text, "dataset",
					   "%s@%u has no column \"%s\", an "
					   "input of %s@%u",
					   dname, dver, json_string_value(c),
					   mname, mver);
	}
	if (rc < 0 || !plan)
		goto out;
	repo_blob_key(json_string_value(json_object_get(
			      json_object_get(json_object_get(mman, "files"),
					      "model"),
			      "hash")),
		      key, sizeof(key));
	*plan = json_pack(
		"{s:s, s:s, s:i, s:i, s:{s:s, s:i, s:O}, s:{s:s, s:i, s:s}, "
		"s:s, s:s, s:O*}",
		"kind", "batch", "name", job, "uid", (int)ctx->uid, "gid",
		(int)ctx->gid, "dataset", "name", dname, "version", (int)dver,
		"blob", json_object_get(dman, "blob"),
		"model", "name", mname, "version", (int)mver, "blob", key,
		"plugin", pl->path, "output", out, "keep", keep);
	/* the column types the dataset's every value was checked against:
	 * the job need not check a number twice */
	if (*plan)
		json_object_set(*plan, "schema", json_object_get(dman, "schema"));
	if (!*plan)
		rc = -ENOMEM;
out:
	json_decref(inputs);
	json_decref(mrec);
	json_decref(mman);
	json_decref(drec);
	json_decref(dman);
	json_decref(orec);
	return rc;
}

int batch_resolve(struct fs *fs, const char *name, const char *text,
		  const struct fs_ctx *ctx, json_t **plan, struct problem *pb)
{
	json_t *spec = NULL;
	int rc;

	if (plan)
		*plan = NULL;
	rc = spec_check_json(text, strlen(text), false, check_fields, &spec,
			     pb);
	if (rc == 0 && spec)
		rc = resolve(fs, name, spec, text, ctx, plan, pb);
	json_decref(spec);
	return rc;
}

int batch_submit(struct fs *fs, const char *name, const char *text,
		 const struct fs_ctx *ctx, struct problem *pb)
{
	json_t *plan = NULL, *rec, *spec;
	char when[32];
	int rc;

	rc = spec_check_json(text, strlen(text), true, check_fields, &spec,
			     pb);
	if (rc == 0)
		rc = resolve(fs, name, spec, text, ctx, &plan, pb);
	if (rc < 0) {
		json_decref(spec);
		return rc;
	}
	iso_now(when, sizeof(when));
	rec = json_pack("{s:s, s:s, s:s, s:o, s:s, s:i, s:i}", "name", name,
			"status", "queued", "kind", "batch", "spec", spec,
			"created", when, "uid", (int)ctx->uid, "gid",
			(int)ctx->gid);
	rc = job_enqueue(fs, name, plan, rec, ctx);
	if (rc == 0)
		fs_log(fs, 6, "jobs/%s: queued (batch scoring)", name);
	return rc;
}

int batch_publish(struct fs *fs, const char *dir, json_t *plan, json_t *rec,
		  struct out_tail **tail, unsigned *ver)
{
	const char *job = json_string_value(json_object_get(plan, "name"));
	const char *out = json_string_value(json_object_get(plan, "output"));
	json_t *m = json_object_get(plan, "model");
	json_t *d = json_object_get(plan, "dataset");
	struct fs_ctx ctx = { 0 };
	struct host_user writer = { 0 };
	struct problem pb = { 0 };
	char detail[900];
	struct repo_origin origin = { "batch", detail, NULL, 0, 0, 0 };
	json_t *orec = NULL, *mrec = NULL, *drec = NULL;
	bool created;
	int rc;

	ctx.uid = writer.uid =
		(uid_t)json_integer_value(json_object_get(rec, "uid"));
	ctx.gid = writer.gid =
		(gid_t)json_integer_value(json_object_get(rec, "gid"));
	origin.uid = ctx.uid;
	snprintf(detail, sizeof(detail),
		 "jobs/%s: models/%s/v%d on datasets/%s/v%d", job,
		 json_string_value(json_object_get(m, "name")),
		 (int)json_integer_value(json_object_get(m, "version")),
		 json_string_value(json_object_get(d, "name")),
		 (int)json_integer_value(json_object_get(d, "version")));
	/* judged again: modes may have changed while it ran */
	rc = repo_get(fs, &repo_datasets, out, &orec);
	if (rc == 0 && !host_may_record(&writer, orec, W_OK | X_OK))
		rc = -EACCES;
	if (rc == -ENOENT &&
	    repo_get(fs, &repo_models, json_string_value(json_object_get(
						    m, "name")),
		     &mrec) == 0 &&
	    repo_get(fs, &repo_datasets,
		     json_string_value(json_object_get(d, "name")),
		     &drec) == 0) {
		/* made for the writer, no more visible than what it is
		 * derived from: the model's and the input's mode */
		mode_t mode = (mode_t)(json_integer_value(
					       json_object_get(mrec, "mode")) &
				       json_integer_value(
					       json_object_get(drec, "mode")) &
				       0777);

		rc = repo_create(fs, &repo_datasets, out, mode, &ctx, &pb);
		if (rc == -EEXIST)
			rc = 0;
	}
	json_decref(orec);
	json_decref(mrec);
	json_decref(drec);
	if (rc < 0)
		return rc;
	rc = publish_out(fs, dir, "out/data.csv", tail, out, &origin, ver,
			 &created, &pb);
	if (rc < 0) {
		fs_log(fs, 4, "jobs/%s: datasets/%s: %s", job, out,
		       pb.msg[0] ? pb.msg : strerror(-rc));
	}
	return rc;
}

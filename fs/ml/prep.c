/* SPDX-License-Identifier: MIT */
/*
 * datasets/<d>/prepare in the daemon (prep.h): the spec checked as
 * written, the job <d>-prepare-<n> queued on the runner with the dataset
 * version on descriptor 3, and its out/data.csv published as a version
 * (of <d>, or of "output") whose lineage names every step, its params
 * and the seed.  The job itself is job_prep.c, run as the writer.
 *
 *   {"steps": [{"impute": {"numeric": "median"}},
 *              {"balance": {"method": "smote", "k": 5}}],
 *    "seed": 42, "output": "d-balanced"}
 *
 * A step names a prep plugin (.mlfs/plugins) and its params, which the
 * plugin's check judges in the write; "dataset" (name@version) picks the
 * input, latest by default.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs.h"
#include "hostfile.h"
#include "mlfs_plugin.h"
#include "names.h"
#include "plugin.h"
#include "prep.h"
#include "repo.h"
#include "runner.h"
#include "runner_int.h"
#include "spec.h"

static const char *const fields[] = { "steps", "seed", "output", "dataset",
				      NULL };

static int check_fields(json_t *spec, const char *text, struct problem *pb)
{
	json_t *steps = json_object_get(spec, "steps"), *seed, *v;
	const char *out;
	size_t i;
	int rc;

	rc = problem_check_fields(pb, text, spec, fields, NULL);
	if (rc < 0)
		return rc;
	if (!json_is_array(steps) || json_array_size(steps) == 0)
		return problem_field(pb, text, "steps",
				     "%s: a list of steps, each {\"plugin\": "
				     "{params}}",
				     steps ? "must be" : "missing");
	if (json_array_size(steps) > 64)
		return problem_field(pb, text, "steps", "at most 64 steps");
	json_array_foreach(steps, i, v) {
		if (!json_is_object(v) || json_object_size(v) != 1 ||
		    !json_is_object(json_object_iter_value(json_object_iter(v))))
			return problem_field(pb, text, "steps",
					     "step %zu: must be {\"plugin\": "
					     "{params}}, one plugin a step",
					     i + 1);
	}
	seed = json_object_get(spec, "seed");
	if (seed && (!json_is_integer(seed) || json_integer_value(seed) < 0))
		return problem_field(pb, text, "seed",
				     "must be an integer >= 0");
	if (!seed)
		json_object_set_new(spec, "seed", json_integer(42));
	out = json_string_value(json_object_get(spec, "output"));
	if (json_object_get(spec, "output") &&
	    (!out || node_name_check(out, NULL) < 0))
		return problem_field(pb, text, "output", "not a dataset name");
	if (json_object_get(spec, "dataset") &&
	    !json_is_string(json_object_get(spec, "dataset")))
		return problem_field(pb, text, "dataset",
				     "must be a version (name@n)");
	return 0;
}

/* Each step's plugin loaded and its params judged by it. */
static int steps_resolve(struct fs *fs, json_t *steps, const char *text,
			 json_t *planned, struct problem *pb)
{
	size_t i;
	json_t *st;

	json_array_foreach(steps, i, st) {
		const char *name = json_object_iter_key(json_object_iter(st));
		json_t *params = json_object_iter_value(json_object_iter(st));
		const struct plugin *pl =
			plugin_find(fs_plugins(fs), MLFS_STAGE_PREP, name);
		const struct mlfs_prep_ops *ops;
		struct mlfs_param *ps = NULL;
		double *lists = NULL;
		char msg[400] = "";
		size_t n = 0;
		int rc;

		if (!pl)
			return problem_field(pb, text, "steps",
					     "step %zu: no prep plugin \"%s\" "
					     "(.mlfs/plugins lists them)",
					     i + 1, name);
		ops = pl->desc->ops;
		rc = spec_params(params, &ps, &n, &lists, msg, sizeof(msg));
		if (rc == 0)
			rc = ops->check(ps, n, msg, sizeof(msg));
		free(ps);
		free(lists);
		if (rc < 0)
			return problem_field(pb, text, "steps",
					     "step %zu (%s): %s", i + 1, name,
					     msg[0] ? msg : strerror(-rc));
		if (planned)
			json_array_append_new(
				planned, json_pack("{s:s, s:s, s:O}", "plugin",
						   name, "path", pl->path,
						   "params", params));
	}
	return 0;
}

/*
 * The plan of name's prepare spec for ctx (NULL plan: judge only), the
 * job named job.
 */
static int resolve(struct fs *fs, const char *name, const char *job,
		   json_t *spec, const char *text, const struct fs_ctx *ctx,
		   json_t **plan, struct problem *pb)
{
	struct host_user writer = { ctx->uid, ctx->gid, ctx->pid };
	const char *dref = json_string_value(json_object_get(spec, "dataset"));
	const char *out = json_string_value(json_object_get(spec, "output"));
	char dname[NAME_MAX + 1], why[400], ref[NAME_MAX + 1];
	json_t *drec = NULL, *dman = NULL, *orec = NULL, *steps = NULL;
	unsigned dver;
	int rc;

	if (!dref) {
		snprintf(ref, sizeof(ref), "%s", name);
		dref = ref;
	}
	rc = repo_ref_resolve(fs, &repo_datasets, dref, dname, sizeof(dname),
			      &dver, &drec, why, sizeof(why));
	if (rc < 0)
		return problem_field(pb, text, json_object_get(spec, "dataset")
						       ? "dataset"
						       : "steps",
				     "%s", why);
	if (!host_may_record(&writer, drec, R_OK | X_OK)) {
		problem_set(pb, 0, 0, "dataset \"%s\": permission denied",
			    dname);
		rc = -EACCES;
		goto out;
	}
	rc = ds_version_ready(fs, dname, dver, &dman, pb);
	if (rc < 0)
		goto out;
	if (!out)
		out = name;
	/* the output: the writer's to write, if it exists */
	if (repo_get(fs, &repo_datasets, out, &orec) == 0 &&
	    !host_may_record(&writer, orec, W_OK | X_OK)) {
		problem_set(pb, 0, 0, "dataset \"%s\": permission denied",
			    out);
		rc = -EACCES;
		goto out;
	}
	steps = json_array();
	rc = steps ? steps_resolve(fs, json_object_get(spec, "steps"), text,
				   steps, pb)
		   : -ENOMEM;
	if (rc < 0 || !plan)
		goto out;
	*plan = json_pack("{s:s, s:s, s:i, s:i, s:{s:s, s:i, s:O}, s:O, "
			  "s:O, s:O, s:s}",
			  "kind", "prepare", "name", job, "uid", (int)ctx->uid,
			  "gid", (int)ctx->gid, "dataset", "name", dname,
			  "version", (int)dver, "blob",
			  json_object_get(dman, "blob"), "schema",
			  json_object_get(dman, "schema"), "steps", steps,
			  "seed", json_object_get(spec, "seed"), "output", out);
	if (!*plan)
		rc = -ENOMEM;
	else if (fs->anon_key)
		/* the job gets its owner's key on descriptor 4 (sched.c) */
		json_object_set_new(*plan, "anon_key", json_true());
out:
	json_decref(drec);
	json_decref(dman);
	json_decref(orec);
	json_decref(steps);
	return rc;
}

int prep_check(struct fs *fs, const char *name, const char *text,
	       size_t len, bool final, const struct fs_ctx *ctx,
	       struct problem *pb)
{
	json_t *spec = NULL;
	int rc = spec_check_json(text, len, final, check_fields, &spec, pb);

	if (rc == 0 && spec)
		rc = resolve(fs, name, NULL, spec, text, ctx, NULL, pb);
	json_decref(spec);
	return rc;
}

int prep_submit(struct fs *fs, const char *name, const char *text,
		const struct fs_ctx *ctx, char *job, size_t joblen,
		struct problem *pb)
{
	json_t *plan = NULL, *rec, *spec;
	char when[32], prefix[NAME_MAX + 16];
	int rc;

	rc = spec_check_json(text, strlen(text), true, check_fields, &spec,
			     pb);
	if (rc < 0)
		return rc;
	snprintf(prefix, sizeof(prefix), "%s-prepare-", name);
	snprintf(job, joblen, "%s%u", prefix, job_last_number(fs, prefix) + 1);
	rc = resolve(fs, name, job, spec, text, ctx, &plan, pb);
	if (rc < 0) {
		json_decref(spec);
		return rc;
	}
	iso_now(when, sizeof(when));
	rec = json_pack("{s:s, s:s, s:s, s:o, s:s, s:i, s:i}", "name", job,
			"status", "queued", "kind", "prepare", "spec", spec,
			"created", when, "uid", (int)ctx->uid, "gid",
			(int)ctx->gid);
	rc = job_enqueue(fs, job, plan, rec, ctx);
	if (rc == 0)
		fs_log(fs, 6, "jobs/%s: queued (prepare datasets/%s)", job,
		       name);
	return rc;
}

int prep_last_job(struct fs *fs, const char *name, char *job, size_t joblen)
{
	char prefix[NAME_MAX + 16];
	unsigned n;

	snprintf(prefix, sizeof(prefix), "%s-prepare-", name);
	n = job_last_number(fs, prefix);
	if (!n)
		return -ENOENT;
	snprintf(job, joblen, "%s%u", prefix, n);
	return 0;
}

int prep_publish(struct fs *fs, const char *dir, json_t *plan, json_t *rec,
		 struct out_tail **tail, unsigned *ver)
{
	const char *job = json_string_value(json_object_get(plan, "name"));
	const char *out = json_string_value(json_object_get(plan, "output"));
	json_t *d = json_object_get(plan, "dataset");
	const char *dname = json_string_value(json_object_get(d, "name"));
	struct fs_ctx ctx = { 0 };
	struct host_user writer = { 0 };
	struct problem pb = { 0 };
	char *steps;
	struct repo_origin origin = { "prepare", NULL, NULL, 0, 0, 0 };
	json_t *orec = NULL, *drec = NULL, *what;
	bool created;
	int rc;

	ctx.uid = writer.uid =
		(uid_t)json_integer_value(json_object_get(rec, "uid"));
	ctx.gid = writer.gid =
		(gid_t)json_integer_value(json_object_get(rec, "gid"));
	origin.uid = ctx.uid;
	/* the lineage: the input, each step with its params, the seed */
	what = json_pack("{s:s, s:s, s:I, s:o, s:O}", "job", job, "from",
			 dname, "version",
			 json_integer_value(json_object_get(d, "version")),
			 "steps", json_deep_copy(json_object_get(plan, "steps")),
			 "seed", json_object_get(plan, "seed"));
	{
		size_t i;
		json_t *st;

		/* where the plugin was on this host is no lineage */
		json_array_foreach(json_object_get(what, "steps"), i, st)
			json_object_del(st, "path");
	}
	steps = what ? json_dumps(what, JSON_COMPACT | JSON_PRESERVE_ORDER)
		     : NULL;
	json_decref(what);
	if (!steps)
		return -ENOMEM;
	origin.detail = steps;
	/* judged again: modes may have changed while it ran */
	rc = repo_get(fs, &repo_datasets, out, &orec);
	if (rc == 0 && !host_may_record(&writer, orec, W_OK | X_OK))
		rc = -EACCES;
	if (rc == -ENOENT && repo_get(fs, &repo_datasets, dname, &drec) == 0) {
		/* made for the writer, no more visible than its input */
		rc = repo_create(fs, &repo_datasets, out,
				 (mode_t)(json_integer_value(json_object_get(
						  drec, "mode")) &
					  0777),
				 &ctx, &pb);
		if (rc == -EEXIST)
			rc = 0;
	}
	json_decref(orec);
	json_decref(drec);
	if (rc == 0)
		rc = publish_out(fs, dir, "out/data.csv", tail, out, &origin,
				 ver, &created, &pb);
	if (rc < 0) {
		fs_log(fs, 4, "jobs/%s: datasets/%s: %s", job, out,
		       pb.msg[0] ? pb.msg : strerror(-rc));
	}
	free(steps);
	return rc;
}

/* SPDX-License-Identifier: MIT */
/*
 * The schema override: a dataset's "schema" file parsed, checked
 * against the latest version and applied as a new version.
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

static const char *const override_fields[] = { "columns", "label", NULL };
static const char *const column_fields[] = { "name", "type", "role", NULL };

static bool man_has_column(json_t *man, const char *col, json_t **stat)
{
	size_t i;
	json_t *c;

	json_array_foreach(json_object_get(json_object_get(man, "stats"),
					   "columns"),
			   i, c) {
		if (strcmp(json_string_value(json_object_get(c, "name")),
			   col) == 0) {
			*stat = c;
			return true;
		}
	}
	return false;
}

/*
 * Validate an override text against the latest version and merge it into
 * the record's overrides.  Fills pb; changes only *merged.
 */
static int schema_parse(const char *text, json_t *man, json_t *rec,
			json_t **merged, const char **label,
			struct problem *pb)
{
	json_error_t err;
	json_t *j, *cols, *c;
	size_t i;
	unsigned line, col;

	*merged = NULL;
	*label = NULL;
	j = json_loads(text, JSON_REJECT_DUPLICATES, &err);
	if (!j)
		return problem_set(pb, (unsigned)err.line,
				   (unsigned)err.column, "%s", err.text);
	if (!json_is_object(j)) {
		json_decref(j);
		return problem_set(pb, 1, 1, "expected a JSON object");
	}
	if (problem_check_fields(pb, text, j, override_fields, NULL) < 0) {
		json_decref(j);
		return -EINVAL;
	}
	*merged = json_deep_copy(json_object_get(rec, "overrides"));
	if (!*merged)
		*merged = json_object();
	cols = json_object_get(j, "columns");
	if (cols && !json_is_array(cols)) {
		problem_locate(text, "columns", &line, &col);
		goto out_bad_cols;
	}
	json_array_foreach(cols, i, c) {
		const char *name = json_string_value(json_object_get(c, "name"));
		const char *type = json_string_value(json_object_get(c, "type"));
		const char *role = json_string_value(json_object_get(c, "role"));
		enum csv_type ct;
		enum csv_role cr;
		json_t *st, *ov;

		if (!json_is_object(c) || !name) {
			problem_locate(text, "columns", &line, &col);
			problem_set(pb, line, col,
				    "\"columns\"[%zu]: needs a \"name\"", i);
			goto out_bad;
		}
		problem_locate(text, name, &line, &col);
		if (!man_has_column(man, name, &st)) {
			problem_set(pb, line, col,
				    "\"name\": no column \"%s\" in this dataset",
				    name);
			goto out_bad;
		}
		if (problem_check_fields(pb, text, c, column_fields,
					 "a column") < 0)
			goto out_bad;
		if ((json_object_get(c, "type") && !type) ||
		    (type && csv_type_parse(type, &ct) < 0)) {
			problem_locate(text, "type", &line, &col);
			problem_set(pb, line, col,
				    "\"type\": must be numeric, categorical, "
				    "text or time, got \"%s\"",
				    type ? type : "?");
			goto out_bad;
		}
		if (type && ct == CSV_NUMERIC &&
		    strcmp(json_string_value(json_object_get(st, "type")),
			   "numeric") != 0) {
			problem_locate(text, name, &line, &col);
			problem_set(pb, line, col,
				    "\"type\": column \"%s\" has non-numeric "
				    "values",
				    name);
			goto out_bad;
		}
		if ((json_object_get(c, "role") && !role) ||
		    (role && csv_role_parse(role, &cr) < 0)) {
			problem_locate(text, "role", &line, &col);
			problem_set(pb, line, col,
				    "\"role\": must be feature, label, id, pii "
				    "or time, got \"%s\"",
				    role ? role : "?");
			goto out_bad;
		}
		ov = json_object_get(*merged, name);
		if (!ov) {
			ov = json_object();
			json_object_set_new(*merged, name, ov);
		}
		if (type)
			json_object_set_new(ov, "type", json_string(type));
		if (role && strcmp(role, "label") == 0) {
			*label = json_string_value(json_object_get(c, "name"));
			json_object_del(ov, "role");
		} else if (role) {
			json_object_set_new(ov, "role", json_string(role));
		}
	}
	if (json_object_get(j, "label")) {
		const char *l = json_string_value(json_object_get(j, "label"));
		json_t *st;

		problem_locate(text, "label", &line, &col);
		if (!l || !man_has_column(man, l, &st)) {
			problem_set(pb, line, col,
				    "\"label\": no column \"%s\" in this "
				    "dataset",
				    l ? l : "?");
			goto out_bad;
		}
		*label = l;
	}
	/* Keep *label valid after j is gone: it lives in the record. */
	if (*label) {
		json_object_set_new(rec, "label", json_string(*label));
		*label = json_string_value(json_object_get(rec, "label"));
	}
	json_decref(j);
	return 0;
out_bad_cols:
	problem_set(pb, line, col, "\"columns\": expected a list");
out_bad:
	json_decref(j);
	json_decref(*merged);
	*merged = NULL;
	return -EINVAL;
}

/* Rebuild the schema of man from its stats with overrides applied. */
static json_t *schema_from_manifest(json_t *man, json_t *overrides,
				    const char *label)
{
	json_t *cols = json_object_get(json_object_get(man, "stats"),
				       "columns");
	struct csv_info info = { 0 };
	json_t *sc;
	size_t i;
	json_t *c;

	info.ncols = json_array_size(cols);
	info.nrows = (uint64_t)json_integer_value(json_object_get(
		json_object_get(man, "stats"), "rows"));
	info.cols = calloc(info.ncols ? info.ncols : 1, sizeof(*info.cols));
	if (!info.cols)
		return NULL;
	json_array_foreach(cols, i, c) {
		info.cols[i].name =
			(char *)json_string_value(json_object_get(c, "name"));
		csv_type_parse(json_string_value(json_object_get(c, "type")),
			       &info.cols[i].type);
		info.cols[i].distinct = (uint64_t)json_integer_value(
			json_object_get(c, "distinct"));
		info.cols[i].distinct_estimated = json_is_true(
			json_object_get(c, "distinct_estimated"));
	}
	sc = repo_schema_json(&info, overrides, label);
	free(info.cols);
	return sc;
}

static int set_schema(struct fs *fs, const char *name, const char *text,
		      const struct repo_origin *origin, bool apply,
		      struct problem *pb);

int ds_set_schema(struct fs *fs, const char *name, const char *text,
		  const struct repo_origin *origin, struct problem *pb)
{
	return set_schema(fs, name, text, origin, true, pb);
}

int ds_check_schema(struct fs *fs, const char *name, const char *text,
		    struct problem *pb)
{
	return set_schema(fs, name, text, NULL, false, pb);
}

static int set_schema(struct fs *fs, const char *name, const char *text,
		      const struct repo_origin *origin, bool apply,
		      struct problem *pb)
{
	const struct repo_kind *k = &repo_datasets;
	json_t *rec = NULL, *man = NULL, *merged = NULL, *sc = NULL;
	json_t *nman = NULL;
	const char *label;
	unsigned ver;
	time_t now = time(NULL);
	int rc;

	/* A lazily imported latest version needs its schema first. */
	rc = ds_version_ready(fs, name, 0, &man, pb);
	json_decref(man);
	man = NULL;
	if (rc < 0 && rc != -ENOENT)
		return rc;
	repo_lock(fs);
	rc = repo_get(fs, k, name, &rec);
	if (rc < 0)
		goto out_unlock;
	ver = repo_rec_uint(rec, "latest");
	if (ver == 0) {
		rc = problem_set(pb, 1, 1,
				 "the dataset has no version yet: write "
				 "data.csv first");
		goto out_unlock;
	}
	rc = repo_version(fs, k, name, ver, &man);
	if (rc < 0)
		goto out_unlock;
	if (ds_is_pending(man)) {
		rc = problem_set(pb, 1, 1, "v%u is still being imported; "
					   "try again", ver);
		goto out_unlock;
	}
	rc = schema_parse(text, man, rec, &merged, &label, pb);
	if (rc < 0 || !apply)
		goto out_unlock;
	sc = schema_from_manifest(man, merged, label);
	if (!sc) {
		rc = -ENOMEM;
		goto out_unlock;
	}
	if (json_equal(sc, json_object_get(man, "schema"))) {
		rc = 0; /* nothing changes: no new version */
		goto out_unlock;
	}
	nman = json_deep_copy(man);
	if (!nman) {
		rc = -ENOMEM;
		goto out_unlock;
	}
	{
		unsigned v = repo_rec_uint(rec, "next");
		const char *h = json_string_value(json_object_get(man, "hash"));
		uint64_t size = (uint64_t)json_integer_value(
			json_object_get(man, "size"));

		if (v <= ver)
			v = ver + 1;
		json_object_set_new(nman, "version", json_integer(v));
		json_object_set(nman, "schema", sc);
		json_object_set_new(nman, "lineage",
				    repo_lineage_json(ver, now, size, h, origin));
		json_object_set(rec, "overrides", merged);
		rc = repo_commit_version(fs, k, name, rec, nman, v);
	}
out_unlock:
	pthread_mutex_unlock(&fs->ds_lock);
	json_decref(nman);
	json_decref(sc);
	json_decref(merged);
	json_decref(man);
	json_decref(rec);
	return rc;
}

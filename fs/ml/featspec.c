/* SPDX-License-Identifier: MIT */
/*
 * Feature set specs (featspec.h): the fields, their values and defaults,
 * checked with the position of the first problem.  The JSON syntax, and
 * what a write cut in the middle of a value may leave, is judged as for
 * train specs (spec_check_text).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "featcalc.h"
#include "fs.h"
#include "hostfile.h"
#include "repo.h"
#include "store.h"
#include "featspec.h"
#include "names.h"
#include "spec.h"

#define FEATSPEC_MAX_FEATURES 1000

static const char *const aggs[] = { "last", "count", "sum", "mean",
				    "min",  "max",   "std", NULL };
static const char *const violations[] = { "null", "clip", "reject", NULL };

static bool one_of(const char *s, const char *const *set)
{
	for (; s && *set; set++)
		if (strcmp(s, *set) == 0)
			return true;
	return false;
}

int featspec_duration(const char *s, int64_t *secs)
{
	static const struct {
		char unit;
		int64_t secs;
	} units[] = { { 's', 1 }, { 'm', 60 }, { 'h', 3600 },
		      { 'd', 86400 }, { 'w', 604800 } };
	char *end;
	long long n;

	if (!s || *s < '1' || *s > '9')
		return -EINVAL;
	errno = 0;
	n = strtoll(s, &end, 10);
	if (errno || end[0] == '\0' || end[1] != '\0')
		return -EINVAL;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (units[i].unit == *end) {
			if (n > INT64_MAX / units[i].secs / 1000)
				return -EINVAL; /* past any timestamp */
			*secs = n * units[i].secs;
			return 0;
		}
	}
	return -EINVAL;
}

/*
 * spec's field, if there, is a duration; a problem is placed at where (the
 * field itself, or the feature it belongs to, which then names it).
 */
static int check_duration(json_t *spec, const char *field, const char *text,
			  const char *where, struct problem *pb)
{
	json_t *v = json_object_get(spec, field);
	int64_t secs;

	if (!v || featspec_duration(json_string_value(v), &secs) == 0)
		return 0;
	if (strcmp(where, field) == 0)
		return problem_field(pb, text, field,
				     "must be a duration like 7d, 12h, 30m "
				     "or 10s");
	return problem_field(pb, text, where,
			     "\"%s\": must be a duration like 7d, 12h, 30m "
			     "or 10s",
			     field);
}

/* A column name: a non-empty string without control characters. */
static bool column_ok(json_t *v)
{
	const char *s = json_string_value(v);

	if (!s || !*s)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20)
			return false;
	return true;
}

/* entity: a column, or a list of distinct columns; made a list. */
static int check_entity(json_t *spec, const char *text, struct problem *pb)
{
	json_t *e = json_object_get(spec, "entity");
	size_t i, j;
	json_t *c;

	if (!e)
		return problem_field(pb, text, "entity",
				     "missing: the entity column (or a "
				     "list of them)");
	if (json_is_string(e)) {
		json_t *l = json_array();

		json_array_append(l, e);
		json_object_set_new(spec, "entity", l);
		e = l;
	}
	if (!json_is_array(e) || json_array_size(e) == 0)
		return problem_field(pb, text, "entity",
				     "must be a column name or a list of "
				     "them");
	json_array_foreach(e, i, c) {
		if (!column_ok(c))
			return problem_field(pb, text, "entity",
					     "must be a column name or a list "
					     "of them");
		for (j = 0; j < i; j++)
			if (json_equal(c, json_array_get(e, j)))
				return problem_field(pb, text, "entity",
						     "\"%s\" named twice",
						     json_string_value(c));
	}
	return 0;
}

static bool entity_has(json_t *spec, const char *name)
{
	size_t i;
	json_t *c;

	json_array_foreach(json_object_get(spec, "entity"), i, c)
		if (strcmp(json_string_value(c), name) == 0)
			return true;
	return false;
}

/* One feature: its fields, with the defaults filled in. */
static int check_feature(json_t *spec, json_t *f, size_t i, const char *text,
			 struct problem *pb)
{
	static const char *const fields[] = { "name", "column", "agg",
					      "window", "type", "min",
					      "max", "on_violation", NULL };
	const char *name = json_string_value(json_object_get(f, "name"));
	const char *where = name ? name : "features";
	const char *agg, *type;
	json_t *v, *min, *max;
	int rc;

	if (!json_is_object(f))
		return problem_field(pb, text, "features",
				     "[%zu]: must be an object", i);
	rc = problem_check_fields(pb, text, f, fields, "a feature");
	if (rc < 0)
		return rc;
	if (!name)
		return problem_field(pb, text, "features",
				     "[%zu]: needs a \"name\"", i);
	if (node_name_check(name, NULL) < 0)
		return problem_field(pb, text, where,
				     "not a valid feature name (letters, "
				     "digits, '.', '_' and '-')");
	if (entity_has(spec, name) ||
	    strcmp(name, json_string_value(json_object_get(
				 spec, "timestamp"))) == 0 ||
	    strcmp(name, "as_of") == 0)
		return problem_field(pb, text, where,
				     "the name of an output column already "
				     "(the entity, the timestamp or as_of)");
	if (!json_object_get(f, "agg"))
		json_object_set_new(f, "agg", json_string("last"));
	agg = json_string_value(json_object_get(f, "agg"));
	if (!one_of(agg, aggs))
		return problem_field(pb, text, where,
				     "\"agg\": must be last, count, sum, mean, "
				     "min, max or std");
	v = json_object_get(f, "column");
	if (v && !column_ok(v))
		return problem_field(pb, text, where,
				     "\"column\": must be a column name");
	if (!v && strcmp(agg, "count") != 0)
		return problem_field(pb, text, where,
				     "\"column\": missing (only count needs "
				     "none)");
	rc = check_duration(f, "window", text, where, pb);
	if (rc < 0)
		return rc;
	if (!json_object_get(f, "type") && strcmp(agg, "last") != 0)
		json_object_set_new(f, "type", json_string("numeric"));
	type = json_string_value(json_object_get(f, "type"));
	if (json_object_get(f, "type") &&
	    (!type || (strcmp(type, "numeric") && strcmp(type, "categorical"))))
		return problem_field(pb, text, where,
				     "\"type\": must be numeric or "
				     "categorical");
	if (type && strcmp(type, "categorical") == 0 &&
	    strcmp(agg, "last") != 0)
		return problem_field(pb, text, where,
				     "\"type\": %s of a categorical column: "
				     "only last keeps a category", agg);
	min = json_object_get(f, "min");
	max = json_object_get(f, "max");
	if ((min && !json_is_number(min)) || (max && !json_is_number(max)))
		return problem_field(pb, text, where,
				     "\"%s\": must be a number",
				     min && !json_is_number(min) ? "min"
								 : "max");
	if (min && max && json_number_value(min) > json_number_value(max))
		return problem_field(pb, text, where,
				     "\"min\" is above \"max\"");
	if ((min || max) && type && strcmp(type, "categorical") == 0)
		return problem_field(pb, text, where,
				     "\"min\" and \"max\" bound numbers, not "
				     "categories");
	v = json_object_get(f, "on_violation");
	if (v && !one_of(json_string_value(v), violations))
		return problem_field(pb, text, where,
				     "\"on_violation\": must be null, clip or "
				     "reject");
	if (!v)
		json_object_set_new(f, "on_violation", json_string("null"));
	return 0;
}

static int check_fields(json_t *spec, const char *text, struct problem *pb)
{
	static const char *const top[] = { "entity", "timestamp", "source",
					   "ttl", "schedule",
					   "allowed_lateness", "features",
					   NULL };
	static const char *const durations[] = { "ttl", "schedule",
						 "allowed_lateness", NULL };
	json_t *v, *fl, *f;
	char name[256];
	unsigned ver;
	size_t i, j;
	int rc;

	rc = problem_check_fields(pb, text, spec, top, NULL);
	if (rc < 0)
		return rc;
	rc = check_entity(spec, text, pb);
	if (rc < 0)
		return rc;
	v = json_object_get(spec, "timestamp");
	if (!v)
		return problem_field(pb, text, "timestamp",
				     "missing: the column of event times");
	if (!column_ok(v) || entity_has(spec, json_string_value(v)))
		return problem_field(pb, text, "timestamp",
				     "must be a column name, not an entity "
				     "column");
	v = json_object_get(spec, "source");
	if (v && (!json_is_string(v) ||
		  name_ref_parse(json_string_value(v), name, sizeof(name),
				 &ver) < 0))
		return problem_field(pb, text, "source",
				     "must name a dataset: \"name\" or "
				     "\"name@<version>\"");
	for (i = 0; durations[i]; i++) {
		rc = check_duration(spec, durations[i], text, durations[i],
				    pb);
		if (rc < 0)
			return rc;
	}
	fl = json_object_get(spec, "features");
	if (!json_is_array(fl) || json_array_size(fl) == 0)
		return problem_field(pb, text, "features",
				     "%s: a list of one feature or more",
				     fl ? "must be" : "missing");
	if (json_array_size(fl) > FEATSPEC_MAX_FEATURES)
		return problem_field(pb, text, "features",
				     "more than %d features",
				     FEATSPEC_MAX_FEATURES);
	json_array_foreach(fl, i, f) {
		rc = check_feature(spec, f, i, text, pb);
		if (rc < 0)
			return rc;
		for (j = 0; j < i; j++)
			if (json_equal(json_object_get(f, "name"),
				       json_object_get(json_array_get(fl, j),
						       "name")))
				return problem_field(
					pb, text,
					json_string_value(json_object_get(
						f, "name")),
					"named twice");
	}
	return 0;
}

int featspec_check(const char *text, size_t len, bool final, json_t **out,
		   struct problem *pb)
{
	/* the syntax, and a write cut inside a value, as train specs */
	return spec_check_json(text, len, final, check_fields, out, pb);
}

/* The column name of the dataset's latest schema, or NULL. */
static json_t *schema_column(json_t *man, const char *name)
{
	size_t i;
	json_t *c;

	json_array_foreach(json_object_get(json_object_get(man, "schema"),
					   "columns"),
			   i, c) {
		const char *n = json_string_value(json_object_get(c, "name"));

		if (n && strcmp(n, name) == 0)
			return c;
	}
	return NULL;
}

int featspec_resolve(struct fs *fs, const struct host_user *writer,
		     json_t *spec, const char *text, struct problem *pb)
{
	const char *src = json_string_value(json_object_get(spec, "source"));
	char name[256];
	unsigned ver = 0;
	json_t *man, *c, *f;
	bool readable;
	size_t i;
	int rc;

	if (!src)
		return 0;
	if (name_ref_parse(src, name, sizeof(name), &ver) < 0)
		return -EINVAL; /* judged by featspec_check already */
	if (repo_get(fs, &repo_datasets, name, &c) == 0) {
		readable = host_may_record(writer, c, R_OK | X_OK);
		json_decref(c);
		/* its versions, columns and types are not the writer's to
		 * learn: the sync, as the writer, judges them (or refuses) */
		if (!readable)
			return 0;
	}
	rc = repo_version(fs, &repo_datasets, name, ver, &man);
	if (rc == -ENOENT && ver == 0 && repo_get(fs, &repo_datasets, name, &c) == 0) {
		json_decref(c);
		return 0; /* a dataset with no version yet: judged at sync */
	}
	if (rc < 0)
		return problem_field(pb, text, "source",
				     "no dataset \"%s\"%s", src,
				     ver ? " at that version" : "");
	if (ds_is_pending(man)) {
		json_decref(man);
		return 0; /* not imported yet: its columns are judged at sync */
	}
	rc = 0;
	json_array_foreach(json_object_get(spec, "entity"), i, c) {
		if (rc == 0 && !schema_column(man, json_string_value(c)))
			rc = problem_field(pb, text, "entity",
					   "no column \"%s\" in dataset %s",
					   json_string_value(c), src);
	}
	if (rc == 0 &&
	    !schema_column(man, json_string_value(
					json_object_get(spec, "timestamp"))))
		rc = problem_field(pb, text, "timestamp",
				   "no column \"%s\" in dataset %s",
				   json_string_value(
					   json_object_get(spec, "timestamp")),
				   src);
	json_array_foreach(json_object_get(spec, "features"), i, f) {
		const char *col = json_string_value(json_object_get(f, "column"));
		const char *fname = json_string_value(json_object_get(f, "name"));
		json_t *sc;

		if (rc < 0 || !col)
			continue;
		sc = schema_column(man, col);
		if (!sc) {
			rc = problem_field(pb, text, fname,
					   "\"column\": no column \"%s\" in "
					   "dataset %s",
					   col, src);
		} else if (!json_object_get(f, "type")) {
			/* last of a column: its type is the column's */
			const char *t = json_string_value(
				json_object_get(sc, "type"));

			json_object_set_new(f, "type",
					    json_string(t && strcmp(t, "numeric")
								   == 0
							? "numeric"
							: "categorical"));
		} else if (strcmp(json_string_value(json_object_get(f, "type")),
				  "numeric") == 0 &&
			   strcmp(json_string_value(json_object_get(sc, "type")),
				  "numeric") != 0) {
			rc = problem_field(pb, text, fname,
					   "\"column\": \"%s\" is not numeric "
					   "in dataset %s",
					   col, src);
		}
	}
	json_decref(man);
	return rc;
}

/* The type of each feature: by its agg and spec, else its column's in
 * the history (the first bytes of the blob: featcalc.h's layout). */
static json_t *feature_types(struct fs *fs, json_t *spec, const char *blob)
{
	struct feat_spec *fsp;
	json_t *types = json_object();
	uint64_t head[6], *coltype = NULL;

	if (!types || feat_spec_compile(spec, &fsp) < 0) {
		json_decref(types);
		return NULL;
	}
	if (store_get_range(fs->store, blob, head, sizeof(head), 0) ==
		    (ssize_t)sizeof(head) &&
	    head[3] == fsp->ncols && fsp->ncols < 65536) {
		coltype = calloc(fsp->ncols + 1, sizeof(*coltype));
		if (coltype &&
		    store_get_range(fs->store, blob, coltype,
				    fsp->ncols * sizeof(*coltype), 48) !=
			    (ssize_t)(fsp->ncols * sizeof(*coltype))) {
			free(coltype);
			coltype = NULL;
		}
	}
	for (size_t i = 0; i < fsp->nfeat; i++) {
		const struct feat_def *d = &fsp->feat[i];
		bool cat = d->agg == AGG_LAST && d->col >= 0 &&
			   (fsp->cat[d->col] ||
			    (!fsp->num[d->col] && coltype && coltype[d->col]));

		json_object_set_new(types, d->name,
				    json_string(cat ? "categorical"
						    : "numeric"));
	}
	free(coltype);
	feat_spec_free(fsp);
	return types;
}

int featspec_train_ref(struct fs *fs, const char *ref,
		       const struct host_user *writer, json_t **out,
		       char *why, size_t whylen)
{
	char name[256], key[96];
	const char *hash;
	unsigned ver = 0;
	json_t *rec, *man, *types;
	int rc;

	*out = NULL;
	if (!ref || name_ref_parse(ref, name, sizeof(name), &ver) < 0) {
		snprintf(why, whylen, "not a feature set name or name@version");
		return -EINVAL;
	}
	if (repo_get(fs, &repo_features, name, &rec) < 0) {
		snprintf(why, whylen, "no feature set \"%s\"", name);
		return -EINVAL;
	}
	rc = host_may_record(writer, rec, R_OK | X_OK) ? 0 : -EACCES;
	json_decref(rec);
	if (rc < 0) {
		snprintf(why, whylen, "\"%s\": permission denied", name);
		return rc;
	}
	if (repo_version(fs, &repo_features, name, ver, &man) < 0) {
		snprintf(why, whylen, "\"%s\" has no %s", name,
			 ver ? "such version" : "version yet");
		return -EINVAL;
	}
	hash = json_string_value(json_object_get(
		json_object_get(json_object_get(man, "files"), "history"),
		"hash"));
	if (!hash) {
		snprintf(why, whylen,
			 "\"%s\" v%d is not synced (write sync to its ctl)",
			 name,
			 (int)json_integer_value(json_object_get(man, "version")));
		json_decref(man);
		return -EINVAL;
	}
	repo_blob_key(hash, key, sizeof(key));
	types = feature_types(fs, json_object_get(man, "spec"), key);
	*out = types ? json_pack("{s:s, s:I, s:s, s:O, s:o}", "name", name,
				 "version",
				 json_integer_value(
					 json_object_get(man, "version")),
				 "blob", key, "spec",
				 json_object_get(man, "spec"), "types", types)
		     : NULL;
	json_decref(man);
	return *out ? 0 : -ENOMEM;
}

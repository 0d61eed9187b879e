/* SPDX-License-Identifier: MIT */
/*
 * What a version tells of itself: schema, stats and lineage JSON, made
 * from a scan, and rendered for the files that show them.
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

/* --- schema and stats from a scan --- */

static json_t *num_or_null(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

json_t *repo_stats_json(const struct csv_info *info)
{
	json_t *cols = json_array();
	json_t *st;

	if (!cols)
		return NULL;
	for (size_t i = 0; i < info->ncols; i++) {
		const struct csv_column *c = &info->cols[i];
		json_t *o = json_object();

		if (!o || json_array_append_new(cols, o) < 0)
			goto out_free;
		json_object_set_new(o, "name", json_string(c->name));
		json_object_set_new(o, "type",
				    json_string(csv_type_name(c->type)));
		json_object_set_new(o, "count", json_integer((json_int_t)c->count));
		json_object_set_new(o, "missing",
				    json_integer((json_int_t)c->missing));
		json_object_set_new(o, "mean", num_or_null(c->mean));
		json_object_set_new(o, "std", num_or_null(c->std));
		json_object_set_new(o, "min", num_or_null(c->min));
		json_object_set_new(o, "max", num_or_null(c->max));
		json_object_set_new(o, "distinct",
				    json_integer((json_int_t)c->distinct));
		if (c->distinct_estimated)
			json_object_set_new(o, "distinct_estimated",
					    json_true());
		if (c->nclasses) {
			json_t *cl = json_object();

			for (size_t k = 0; cl && k < c->nclasses; k++)
				json_object_set_new(
					cl, c->classes[k].value,
					json_integer(
						(json_int_t)c->classes[k].count));
			json_object_set_new(o, "classes", cl);
		}
	}
	st = json_pack("{s:I, s:o}", "rows", (json_int_t)info->nrows,
		       "columns", cols);
	return st;
out_free:
	json_decref(cols);
	return NULL;
}

static bool name_is_id(const char *n)
{
	size_t len = strlen(n);

	return strcasecmp(n, "id") == 0 ||
	       (len > 3 && strcasecmp(n + len - 3, "_id") == 0);
}

/*
 * The schema of a scan with the dataset's overrides applied: inferred
 * types; roles: a time type is a time role, an all-distinct column named
 * id or *_id is an id, the last remaining column is the label; then the
 * user's overrides (columns missing from this version are skipped).
 */
json_t *repo_schema_json(const struct csv_info *info, json_t *overrides,
			   const char *label_override)
{
	json_t *cols = json_array();
	const char *label = NULL;
	json_t *sc;

	if (!cols)
		return NULL;
	for (size_t i = 0; i < info->ncols; i++) {
		const struct csv_column *c = &info->cols[i];
		const char *type = csv_type_name(c->type);
		const char *role = "feature";
		json_t *ov = json_object_get(overrides, c->name);

		if (c->type == CSV_TIME)
			role = "time";
		else if (name_is_id(c->name) && c->distinct == info->nrows &&
			 !c->distinct_estimated)
			role = "id";
		if (json_string_value(json_object_get(ov, "type")))
			type = json_string_value(json_object_get(ov, "type"));
		if (json_string_value(json_object_get(ov, "role")))
			role = json_string_value(json_object_get(ov, "role"));
		json_array_append_new(cols,
				      json_pack("{s:s, s:s, s:s}", "name",
						c->name, "type", type, "role",
						role));
	}
	if (label_override) {
		for (size_t i = 0; i < info->ncols; i++)
			if (strcmp(info->cols[i].name, label_override) == 0)
				label = label_override;
	}
	if (!label) {
		/* default: the last column that is a plain feature */
		for (size_t i = info->ncols; i-- > 0;) {
			json_t *c = json_array_get(cols, i);
			const char *role = json_string_value(
				json_object_get(c, "role"));

			if (strcmp(role, "feature") == 0 ||
			    strcmp(role, "label") == 0) {
				label = info->cols[i].name;
				break;
			}
		}
	}
	for (size_t i = 0; label && i < info->ncols; i++) {
		json_t *c = json_array_get(cols, i);
		const char *role = json_string_value(json_object_get(c, "role"));

		if (strcmp(info->cols[i].name, label) == 0)
			json_object_set_new(c, "role", json_string("label"));
		else if (strcmp(role, "label") == 0)
			json_object_set_new(c, "role", json_string("feature"));
	}
	sc = json_pack("{s:s?, s:o}", "label", label, "columns", cols);
	return sc;
}

json_t *repo_lineage_json(unsigned parent, time_t now, uint64_t size,
			    const char *hash, const struct repo_origin *o)
{
	char when[32];

	repo_iso_time(now, when, sizeof(when));
	json_t *j = json_pack("{s:o, s:s, s:I, s:I, s:s?, s:s, s:s?, s:i, s:i}",
			      "parent",
			      parent ? json_integer(parent) : json_null(),
			      "created", when, "created_unix", (json_int_t)now,
			      "size", (json_int_t)size, "hash", hash,
			      "made_by", o->made_by, "detail", o->detail,
			      "uid", (int)o->uid, "pid", (int)o->pid);

	if (j && o->etag)
		json_object_set_new(j, "source_etag", json_string(o->etag));
	return j;
}

/* --- rendering --- */

int repo_render_field(json_t *man, const char *field, struct strbuf *out)
{
	json_t *j = json_object_get(man, field);
	char *text;
	int rc;

	if (!j)
		return -ENOENT;
	text = json_dumps_short(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (!text)
		return -ENOMEM;
	rc = sb_puts(out, text);
	if (rc == 0)
		rc = sb_puts(out, "\n");
	free(text);
	return rc;
}

int ds_render_schema(json_t *man, struct strbuf *out)
{
	return repo_render_field(man, "schema", out);
}

int ds_render_stats(json_t *man, struct strbuf *out)
{
	return repo_render_field(man, "stats", out);
}

int ds_render_lineage(json_t *man, struct strbuf *out)
{
	return repo_render_field(man, "lineage", out);
}

/* SPDX-License-Identifier: MIT */
/*
 * datasets/<d>/label/: the labelling queue of a dataset's latest version
 * (DESIGN.md §4, "Labeling").
 *
 *   label/queue   the rows whose label is empty: a header, then a line a
 *                 row, each led by a stable key: the row's id (the
 *                 schema's first id column), else v<n>:<row> (its data
 *                 row, counted from 1), then its other columns
 *   label/stats   how many rows are labelled and how many remain (JSON)
 *
 * Both are made from the version's data when opened (attribute files:
 * a snapshot a reader sees whole).  Any FUSE worker enters.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "fs.h"
#include "jsonout.h"
#include "label.h"
#include "mlcore.h"
#include "objects.h"
#include "repo.h"
#include "store.h"

#define LABEL_DATA_MAX ((size_t)256 << 20) /* bytes of a version read */

/* The schema's label column and first id column, or NULL. */
static void roles_of(json_t *man, const char **label, const char **id)
{
	json_t *schema = json_object_get(man, "schema"), *c;
	size_t i;

	*label = json_string_value(json_object_get(schema, "label"));
	*id = NULL;
	json_array_foreach(json_object_get(schema, "columns"), i, c) {
		const char *role = json_string_value(json_object_get(c, "role"));

		if (!*id && role && strcmp(role, "id") == 0)
			*id = json_string_value(json_object_get(c, "name"));
	}
}

/* A field as CSV: quoted when it must be. */
static void field_put(struct strbuf *out, const char *f, size_t len)
{
	if (!memchr(f, ',', len) && !memchr(f, '"', len) &&
	    !memchr(f, '\n', len) && !memchr(f, '\r', len)) {
		sb_append(out, f, len);
		return;
	}
	sb_puts(out, "\"");
	for (size_t b = 0; b < len; b++) {
		if (f[b] == '"')
			sb_puts(out, "\"");
		sb_append(out, f + b, 1);
	}
	sb_puts(out, "\"");
}

/*
 * The latest version of the dataset n is in: its data parsed (borrowing
 * *buf, which the caller frees), its number, its label and id columns.
 */
static int latest_table(struct node *n, struct table **t, char **buf,
			unsigned *ver, long *labcol, long *idcol)
{
	struct fs *fs = n->fs;
	struct problem pb = { 0 };
	const char *label, *id;
	json_t *rec, *man;
	size_t len;
	int rc;

	*t = NULL;
	*buf = NULL;
	rc = repo_get(fs, &repo_datasets, obj_name(n), &rec);
	if (rc < 0)
		return rc;
	*ver = (unsigned)json_integer_value(json_object_get(rec, "latest"));
	json_decref(rec);
	if (!*ver)
		return -ENODATA; /* no version yet */
	rc = ds_version_ready(fs, obj_name(n), *ver, &man, &pb);
	if (rc < 0)
		return rc;
	roles_of(man, &label, &id);
	rc = store_get(fs->store,
		       json_string_value(json_object_get(man, "blob")),
		       LABEL_DATA_MAX, buf, &len);
	rc = rc < 0 ? rc : table_parse(*buf, len, t, &pb);
	*labcol = rc == 0 && label ? table_col(*t, label) : -1;
	*idcol = rc == 0 && id ? table_col(*t, id) : -1;
	json_decref(man);
	if (rc < 0) {
		free(*buf);
		*buf = NULL;
	}
	return rc == -EINVAL ? -EIO : rc;
}

static const char *field(const struct table *t, size_t r, size_t c,
			 size_t *len)
{
	*len = t->len[r * t->ncols + c];
	return t->data + t->off[r * t->ncols + c];
}

static int queue_show(struct node *n, struct strbuf *out)
{
	struct table *t;
	char *buf;
	unsigned ver;
	long lab, id;
	size_t len;
	int rc = latest_table(n, &t, &buf, &ver, &lab, &id);

	if (rc == -ENODATA)
		return 0;
	if (rc < 0)
		return rc;
	if (lab < 0)
		goto out; /* no label column: nothing to label */
	sb_puts(out, "key");
	for (size_t c = 0; c < t->ncols; c++) {
		if ((long)c == lab || (long)c == id)
			continue;
		sb_puts(out, ",");
		field_put(out, t->names[c], strlen(t->names[c]));
	}
	sb_puts(out, "\n");
	for (size_t r = 0; r < t->nrows && !out->err; r++) {
		const char *f = field(t, r, (size_t)lab, &len);

		if (!csv_is_missing(f, len))
			continue;
		if (id >= 0) {
			f = field(t, r, (size_t)id, &len);
			field_put(out, f, len);
		} else {
			sb_printf(out, "v%u:%zu", ver, r + 1);
		}
		for (size_t c = 0; c < t->ncols; c++) {
			if ((long)c == lab || (long)c == id)
				continue;
			sb_puts(out, ",");
			f = field(t, r, c, &len);
			field_put(out, f, len);
		}
		sb_puts(out, "\n");
	}
out:
	table_free(t);
	free(buf);
	return out->err;
}

static int stats_show(struct node *n, struct strbuf *out)
{
	struct table *t;
	char *buf;
	unsigned ver;
	long lab, id;
	size_t len, todo = 0;
	int rc = latest_table(n, &t, &buf, &ver, &lab, &id);

	if (rc == -ENODATA)
		return sb_puts(out, "{\"version\": null}\n");
	if (rc < 0)
		return rc;
	for (size_t r = 0; lab >= 0 && r < t->nrows; r++) {
		const char *f = field(t, r, (size_t)lab, &len);

		todo += csv_is_missing(f, len);
	}
	sb_printf(out, "{\"version\": %u, \"label\": ", ver);
	if (lab >= 0)
		sb_json_string(out, t->names[lab], strlen(t->names[lab]));
	else
		sb_puts(out, "null");
	sb_printf(out, ", \"rows\": %zu, \"labelled\": %zu, \"unlabelled\": "
		       "%zu}\n",
		  t->nrows, lab >= 0 ? t->nrows - todo : 0, todo);
	table_free(t);
	free(buf);
	return out->err;
}

const struct node_type label_files[] = {
	{ "queue", S_IFREG | 0444, 0, .show = queue_show,
	  .getattr = obj_file_getattr },
	{ "stats", S_IFREG | 0444, 0, .show = stats_show,
	  .getattr = obj_file_getattr },
	{ NULL },
};

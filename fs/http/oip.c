/* SPDX-License-Identifier: MIT */
/*
 * The requests of oip.h.  An infer turns the request's tensors into the
 * JSON lines a predict file takes, one per row, and scores them through
 * the same stream the file uses (a model's, or a deployment's router
 * with its prediction store, feedback ids and metrics); the answers'
 * JSON lines become the output tensors.  So a row gets the same answer
 * over HTTP as through the file.
 *
 * Permissions are the files': metadata, ready and infer need what
 * reading models/<m>/v<n>/meta.json or writing deployments/<d>/predict
 * (mode 0666) needs, the search permission on the object's directory;
 * feedback what writing deployments/<d>/feedback (mode 0620) needs.
 * Names under models/ and deployments/ are listed to everyone (mode
 * 01777), so a name without permission is 403, one that does not
 * exist 404.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"
#include "csv.h"
#include "deploy.h"
#include "fs.h"
#include "jsonout.h"
#include "mlcore.h"
#include "mlfs_plugin.h"
#include "node.h"
#include "oip.h"
#include "predict.h"
#include "prom.h"
#include "repo.h"
#include "store.h"

#define META_MAX ((size_t)16 << 20)   /* bytes of a meta.json read */
#define CELLS_MAX ((size_t)4 << 20)   /* values in one infer's inputs */

/* May u have want on the object of record rec (a file of it of mode
 * mode; 0: the object's directory itself)? */
static bool may(const struct oip_caller *u, json_t *rec, mode_t mode,
		int want)
{
	uid_t owner = (uid_t)json_integer_value(json_object_get(rec, "uid"));
	gid_t group = (gid_t)json_integer_value(json_object_get(rec, "gid"));

	if (!mode)
		mode = (mode_t)json_integer_value(json_object_get(rec, "mode"));
	return host_may_as(u->uid, u->gid, u->groups, u->ngroups, owner, group,
			   mode, want);
}

/* A model or a deployment, as a request names it. */
struct target {
	bool dep;
	char name[NAME_MAX + 1];
	char model[NAME_MAX + 1]; /* the model answering (a deployment's
				     serving candidate's) */
	unsigned ver;
	json_t *rec;              /* the object's record */
	json_t *meta;             /* the version's meta.json */
	char hash[40];            /* its model file's content hash */
};

static void target_free(struct target *t)
{
	json_decref(t->rec);
	json_decref(t->meta);
}

static void fail(struct oip_reply *r, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void fail(struct oip_reply *r, int status, const char *fmt, ...)
{
	char why[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	/* a URL or a value may hold any bytes: the JSON string must be
	 * UTF-8, so each byte outside printable ASCII becomes '?' */
	for (char *c = why; *c; c++)
		if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
			*c = '?';
	r->status = status;
	r->body.len = 0;
	sb_puts(&r->body, "{\"error\": ");
	sb_json_string(&r->body, why, strlen(why));
	sb_puts(&r->body, "}\n");
}

static void ok_json(struct oip_reply *r, json_t *j)
{
	char *text = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER |
					       JSON_REAL_PRECISION(9))
		       : NULL;

	if (!text) {
		fail(r, 500, "out of memory");
		return;
	}
	r->status = 200;
	sb_puts(&r->body, text);
	sb_puts(&r->body, "\n");
	free(text);
}

/* --- versions' meta.json, parsed once --- */

#define VCACHE_KEEP 64

struct vcache_entry {
	char key[NAME_MAX + 80]; /* model, incarnation, version */
	json_t *meta;            /* immutable once here */
	char hash[40];
	uint64_t used;
};

struct oip_cache {
	pthread_mutex_t lock;
	struct vcache_entry e[VCACHE_KEEP]; /* under lock */
	uint64_t tick;                      /* under lock */
};

int oip_cache_open(struct fs *fs)
{
	struct oip_cache *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	fs->oip_cache = c;
	return 0;
}

void oip_cache_close(struct fs *fs)
{
	struct oip_cache *c = fs->oip_cache;

	if (!c)
		return;
	for (size_t i = 0; i < VCACHE_KEEP; i++)
		json_decref(c->e[i].meta);
	pthread_mutex_destroy(&c->lock);
	free(c);
	fs->oip_cache = NULL;
}

/*
 * meta.json (a reference) and the model file's hash of model version
 * ver, whose model record is rec.  A version never changes, and a model
 * made again has a new incarnation, so they are kept by the model's
 * name, incarnation and version: a request reads no manifest and no
 * blob once its version was seen.
 */
static int version_meta(struct fs *fs, const char *model, json_t *rec,
			unsigned ver, json_t **meta, char hash[40])
{
	struct oip_cache *c = fs->oip_cache;
	const char *inc = json_string_value(json_object_get(rec, "incarnation"));
	const char *h;
	char key[NAME_MAX + 80];
	json_t *man;
	int rc;

	snprintf(key, sizeof(key), "%s/%s/%u", model, inc ? inc : "-", ver);
	if (c && inc) {
		pthread_mutex_lock(&c->lock);
		for (size_t i = 0; i < VCACHE_KEEP; i++)
			if (c->e[i].meta && strcmp(c->e[i].key, key) == 0) {
				c->e[i].used = ++c->tick;
				*meta = json_incref(c->e[i].meta);
				memcpy(hash, c->e[i].hash, 40);
				pthread_mutex_unlock(&c->lock);
				return 0;
			}
		pthread_mutex_unlock(&c->lock);
	}
	rc = repo_version_shared(fs, &repo_models, model, rec, ver, &man);
	if (rc < 0)
		return rc;
	h = json_string_value(json_object_get(
		json_object_get(json_object_get(man, "files"), "model"),
		"hash"));
	snprintf(hash, 40, "%s", h ? h : "");
	{
		char path[NAME_MAX + 64];

		snprintf(path, sizeof(path), "models/%s/v%u/meta.json", model,
			 ver);
		rc = repo_file_json(fs, man, "meta.json", META_MAX, 0, path,
				    meta);
	}
	json_decref(man);
	if (rc < 0 || !c || !inc)
		return rc;
	pthread_mutex_lock(&c->lock);
	{
		struct vcache_entry *v = &c->e[0];

		for (size_t i = 1; i < VCACHE_KEEP; i++)
			if (c->e[i].used < v->used)
				v = &c->e[i];
		json_decref(v->meta);
		snprintf(v->key, sizeof(v->key), "%s", key);
		v->meta = json_incref(*meta);
		memcpy(v->hash, hash, 40);
		v->used = ++c->tick;
	}
	pthread_mutex_unlock(&c->lock);
	return 0;
}

/*
 * Is name a deployment that /v2/models/<name> means (its record in
 * *rec)?  A deployment stands for a model of the same name only when
 * one user owns both: anyone may make a deployment, and one named as
 * another user's model would otherwise take that model's requests and
 * read their inputs in its prediction store.
 */
static bool deployment_named(struct fs *fs, const char *name, json_t **rec)
{
	json_t *mrec;
	bool owns;

	if (repo_get(fs, &repo_deployments, name, rec) < 0)
		return false;
	if (repo_get(fs, &repo_models, name, &mrec) < 0)
		return true;
	owns = json_integer_value(json_object_get(mrec, "uid")) ==
	       json_integer_value(json_object_get(*rec, "uid"));
	json_decref(mrec);
	if (!owns) {
		json_decref(*rec);
		*rec = NULL;
	}
	return owns;
}

/*
 * Find what /v2/models/<name>[/versions/<n>] names for u, who needs
 * want on it (X_OK: read it, score with it; W_OK: feedback).  0, or
 * a reply made.
 */
static int target_find(struct fs *fs, const struct oip_caller *u,
		       const char *name, long ver, int want,
		       struct target *t, struct oip_reply *r)
{
	json_t *mrec = NULL, *prod;
	int rc;

	memset(t, 0, sizeof(*t));
	if (strlen(name) > NAME_MAX || !name[0]) {
		fail(r, 404, "no model or deployment named \"%.200s\"", name);
		return -1;
	}
	snprintf(t->name, sizeof(t->name), "%s", name);
	snprintf(t->model, sizeof(t->model), "%s", name);
	if (ver < 0 && deployment_named(fs, name, &t->rec)) {
		char ref[NAME_MAX + 40], why[300] = "";
		char *at;

		t->dep = true;
		if (!may(u, t->rec, 0, X_OK) ||
		    (want == W_OK && !may(u, t->rec, 0620, W_OK))) {
			fail(r, 403, "deployments/%s: permission denied for "
				     "uid %u",
			     name, (unsigned)u->uid);
			return -1;
		}
		if (deploy_serving(fs, name, ref, sizeof(ref), why,
				   sizeof(why)) < 0) {
			fail(r, 503, "deployments/%s: %s", name,
			     why[0] ? why : "no spec yet");
			return -1;
		}
		at = strrchr(ref, '@');
		if (!at) {
			fail(r, 503, "deployments/%s: serves %s", name, ref);
			return -1;
		}
		*at = '\0';
		snprintf(t->model, sizeof(t->model), "%.*s", NAME_MAX, ref);
		ver = atol(at + 1);
	} else if (repo_get(fs, &repo_models, name, &t->rec) == 0) {
		if (!may(u, t->rec, 0, X_OK)) {
			fail(r, 403, "models/%s: permission denied for uid %u",
			     name, (unsigned)u->uid);
			return -1;
		}
		if (want == W_OK) {
			fail(r, 404, "models/%s: feedback is a deployment's, "
				     "and no deployment has that name",
			     name);
			return -1;
		}
		if (ver < 0) {
			prod = json_object_get(json_object_get(t->rec, "aliases"),
					       "production");
			ver = prod ? (long)json_integer_value(prod)
				   : (long)json_integer_value(
					     json_object_get(t->rec, "latest"));
		}
	} else {
		fail(r, 404, "no model or deployment named \"%s\"", name);
		return -1;
	}
	t->ver = (unsigned)ver;
	if (t->dep) {
		/* the serving candidate's model, for its inputs and classes */
		rc = repo_get(fs, &repo_models, t->model, &mrec);
		if (rc == 0)
			rc = ver > 0 ? version_meta(fs, t->model, mrec, t->ver,
						   &t->meta, t->hash)
				     : -ENOENT;
		json_decref(mrec);
	} else {
		rc = ver > 0 ? version_meta(fs, t->model, t->rec, t->ver,
					   &t->meta, t->hash)
			     : -ENOENT;
	}
	if (rc < 0) {
		fail(r, rc == -ENOENT ? 404 : 503, "models/%s/v%u: %s",
		     t->model, t->ver,
		     rc == -ENOENT ? "no such version" : strerror(-rc));
		return -1;
	}
	return 0;
}

/* The OIP datatype of a feature (meta.json "features" entry). */
static const char *feature_datatype(json_t *meta, const char *input)
{
	size_t i;
	json_t *f;

	json_array_foreach(json_object_get(meta, "features"), i, f)
	{
		const char *name = json_string_value(json_object_get(f, "name"));
		const char *type = json_string_value(json_object_get(f, "type"));

		if (name && strcmp(name, input) == 0)
			return type && strcmp(type, "numeric") == 0 ? "FP64"
								    : "BYTES";
	}
	return "BYTES";
}

static const char *predict_datatype(json_t *meta)
{
	unsigned task = model_task(json_string_value(json_object_get(meta,
								      "task")));

	return task == MLFS_TASK_REGRESSION   ? "FP64"
	       : task == MLFS_TASK_CLUSTERING ? "INT64"
					      : "BYTES";
}

static void metadata(struct target *t, struct oip_reply *r)
{
	json_t *in = json_array(), *out = json_array(), *m, *v, *params;
	const char *algo = json_string_value(json_object_get(t->meta,
							      "algorithm"));
	size_t i, k = json_array_size(json_object_get(t->meta, "classes"));
	char ver[24];

	json_array_foreach(json_object_get(t->meta, "inputs"), i, v)
		json_array_append_new(
			in, json_pack("{s:O, s:s, s:[i]}", "name", v, "datatype",
				      feature_datatype(t->meta,
						       json_string_value(v)),
				      "shape", -1));
	json_array_append_new(out, json_pack("{s:s, s:s, s:[i]}", "name",
					     "predict", "datatype",
					     predict_datatype(t->meta), "shape",
					     -1));
	if (k)
		json_array_append_new(out,
				      json_pack("{s:s, s:s, s:[i, I]}", "name",
						"proba", "datatype", "FP64",
						"shape", -1, (json_int_t)k));
	snprintf(ver, sizeof(ver), "%u", t->ver);
	params = json_object();
	if (t->dep)
		json_object_set_new(params, "serving",
				    json_pack("s+++", t->model, "@", ver, ""));
	if (k)
		json_object_set(params, "classes",
				json_object_get(t->meta, "classes"));
	m = json_pack("{s:s, s:[s], s:s+, s:o, s:o, s:o}", "name", t->name,
		      "versions", ver, "platform", "mlfs/", algo ? algo : "",
		      "inputs", in, "outputs", out, "parameters", params);
	ok_json(r, m);
	json_decref(m);
}

/* --- infer --- */

/*
 * The elements of data into out (borrowed), row-major: data is flat
 * (rows * cols values), or, for a shape [N, F], N lists of F values;
 * -1 for any other nesting.
 */
static int flatten(json_t *data, size_t rows, size_t cols, bool two_d,
		   json_t *out)
{
	size_t i;
	json_t *v;

	if (!json_is_array(data))
		return -1;
	if (!json_is_array(json_array_get(data, 0)))
		return json_array_extend(out, data) < 0 ? -1 : 0;
	if (!two_d || json_array_size(data) != rows)
		return -1;
	json_array_foreach(data, i, v) {
		if (!json_is_array(v) || json_array_size(v) != cols ||
		    (cols && json_is_array(json_array_get(v, 0))) ||
		    json_array_extend(out, v) < 0)
			return -1;
	}
	return 0;
}

/* Is v a value of datatype dt?  NULL, or why not. */
static const char *value_fits(const char *dt, json_t *v)
{
	if (strcmp(dt, "BYTES") == 0)
		return json_is_string(v) ? NULL : "BYTES data must be strings";
	if (strcmp(dt, "BOOL") == 0)
		return "BOOL is no feature a model takes (send numbers or "
		       "strings)";
	if (dt[0] == 'F')
		return json_is_number(v) ? NULL : "floating-point data must "
						  "be numbers";
	if (!json_is_integer(v))
		return "integer data must be whole numbers";
	if (dt[0] == 'U' && json_integer_value(v) < 0)
		return "unsigned data must not be negative";
	return NULL;
}

static bool datatype_known(const char *dt)
{
	static const char *const known[] = { "BOOL",   "UINT8", "UINT16",
					     "UINT32", "UINT64", "INT8",
					     "INT16",  "INT32", "INT64",
					     "FP16",   "FP32",  "FP64",
					     "BYTES" };

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(dt, known[i]) == 0)
			return true;
	return false;
}

/* One input tensor checked: its rows and columns, its values flat. */
struct tensor {
	const char *name, *dt;
	size_t rows, cols;
	json_t *flat;
};

static int tensor_take(json_t *in, size_t idx, struct tensor *t,
		       struct oip_reply *r)
{
	json_t *shape = json_object_get(in, "shape");
	json_t *data = json_object_get(in, "data");
	size_t n = json_array_size(shape);
	const char *why;
	size_t i;
	json_t *v;

	t->name = json_string_value(json_object_get(in, "name"));
	t->dt = json_string_value(json_object_get(in, "datatype"));
	if (!json_is_object(in) || !t->name || !t->dt) {
		fail(r, 400, "inputs[%zu]: wants \"name\", \"shape\", "
			     "\"datatype\" and \"data\"",
		     idx);
		return -1;
	}
	if (!datatype_known(t->dt)) {
		fail(r, 400, "inputs[%zu] (%s): unknown datatype \"%.40s\"", idx,
		     t->name, t->dt);
		return -1;
	}
	if (!json_is_array(shape) || n < 1 || n > 2) {
		fail(r, 400, "inputs[%zu] (%s): shape must be [N] or [N, F]",
		     idx, t->name);
		return -1;
	}
	json_array_foreach(shape, i, v)
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    (size_t)json_integer_value(v) > CELLS_MAX) {
			fail(r, 400, "inputs[%zu] (%s): shape[%zu] is not a "
				     "count up to %zu",
			     idx, t->name, i, CELLS_MAX);
			return -1;
		}
	t->rows = (size_t)json_integer_value(json_array_get(shape, 0));
	t->cols = n == 2 ? (size_t)json_integer_value(json_array_get(shape, 1))
			 : 1;
	if (t->cols && t->rows > CELLS_MAX / t->cols) {
		fail(r, 400, "inputs[%zu] (%s): more than %zu values", idx,
		     t->name, CELLS_MAX);
		return -1;
	}
	t->flat = json_array();
	if (!t->flat || flatten(data, t->rows, t->cols, n == 2, t->flat) < 0) {
		fail(r, 400, "inputs[%zu] (%s): data must be a flat list, or "
			     "for [N, F] N lists of F values",
		     idx, t->name);
		return -1;
	}
	if (json_array_size(t->flat) != t->rows * t->cols) {
		fail(r, 400, "inputs[%zu] (%s): %zu values for shape [%zu, %zu]",
		     idx, t->name, json_array_size(t->flat), t->rows, t->cols);
		return -1;
	}
	json_array_foreach(t->flat, i, v)
		if ((why = value_fits(t->dt, v))) {
			fail(r, 400, "inputs[%zu] (%s): value %zu: %s", idx,
			     t->name, i, why);
			return -1;
		}
	return 0;
}

/* A CSV field: quoted when it must be. */
static void csv_field_put(struct strbuf *out, const char *v, size_t n)
{
	if (n && strcspn(v, ",\"") == n && v[0] != ' ' && v[n - 1] != ' ') {
		sb_append(out, v, n);
		return;
	}
	sb_puts(out, "\"");
	for (size_t i = 0; i < n; i++) {
		if (v[i] == '"')
			sb_puts(out, "\"");
		sb_append(out, v + i, 1);
	}
	sb_puts(out, "\"");
}

/* A tensor's value as a CSV field (null: missing); -1 for a line break,
 * which a row of the predict stream cannot hold. */
static int value_put(struct strbuf *out, json_t *v)
{
	char num[40];

	if (json_is_integer(v)) {
		sb_printf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	} else if (json_is_real(v)) {
		/* the decimal that reads back to the same double */
		snprintf(num, sizeof(num), "%.17g", json_real_value(v));
		sb_puts(out, num);
	} else if (json_is_string(v)) {
		const char *t = json_string_value(v);
		size_t n = json_string_length(v);

		if (memchr(t, '\n', n) || memchr(t, '\r', n))
			return -1;
		csv_field_put(out, t, n);
	}
	return 0;
}

/*
 * The request's rows as CSV in text: one [N, F] tensor in the
 * order of meta.json "inputs", or one [N] tensor per input (and the id
 * column, if the model has one).  *rows their count.
 */
static int rows_make(json_t *req, json_t *meta, struct strbuf *text,
		     size_t *rows, bool *ided, struct oip_reply *r)
{
	json_t *inputs = json_object_get(req, "inputs");
	json_t *names = json_object_get(meta, "inputs");
	const char *idcol = json_string_value(json_object_get(meta, "id"));
	size_t nt = json_array_size(inputs), nin = json_array_size(names);
	struct tensor *ts = calloc(nt ? nt : 1, sizeof(*ts));
	json_t **cols = calloc(nin + 1, sizeof(*cols));
	int rc = -1;

	if (!ts || !cols) {
		fail(r, 500, "out of memory");
		goto out;
	}
	if (!json_is_array(inputs) || nt == 0) {
		fail(r, 400, "\"inputs\" must be a list of tensors");
		goto out;
	}
	for (size_t i = 0; i < nt; i++)
		if (tensor_take(json_array_get(inputs, i), i, &ts[i], r) < 0)
			goto out;
	if (nt == 1 && ts[0].cols > 1) {
		if (ts[0].cols != nin) {
			fail(r, 400, "inputs[0] (%s): %zu columns, the model "
				     "has %zu inputs",
			     ts[0].name, ts[0].cols, nin);
			goto out;
		}
		*rows = ts[0].rows;
	} else {
		/* a tensor per input, by name */
		for (size_t i = 0; i < nt; i++) {
			size_t k;
			json_t *v;
			bool found = false;

			json_array_foreach(names, k, v)
				if (strcmp(json_string_value(v), ts[i].name) == 0) {
					found = true;
					cols[k] = ts[i].flat;
				}
			if (idcol && strcmp(idcol, ts[i].name) == 0) {
				found = true;
				cols[nin] = ts[i].flat;
			}
			if (!found) {
				fail(r, 400, "inputs[%zu]: the model has no "
					     "input \"%.200s\"",
				     i, ts[i].name);
				goto out;
			}
			if (ts[i].cols != 1 || ts[i].rows != ts[0].rows) {
				fail(r, 400, "inputs[%zu] (%s): shape [%zu] "
					     "wanted, as inputs[0]'s",
				     i, ts[i].name, ts[0].rows);
				goto out;
			}
		}
		for (size_t k = 0; k < nin; k++)
			if (!cols[k]) {
				fail(r, 400, "no tensor for the input \"%s\"",
				     json_string_value(
					     json_array_get(names, k)));
				goto out;
			}
		*rows = ts[0].rows;
	}
	/*
	 * CSV, which the predict stream reads with one number parse a value
	 * (its JSON rows would be parsed, printed and parsed again): a
	 * header when the id column comes too, then a line a row.
	 */
	*ided = cols[nin] && idcol;
	if (*ided) {
		for (size_t k = 0; k <= nin; k++) {
			const char *n = k < nin ? json_string_value(
							  json_array_get(names, k))
						: idcol;
			double d;

			if (csv_parse_double(n, strlen(n), &d)) {
				fail(r, 400, "the input \"%s\" looks like a "
					     "number: send the rows through the "
					     "file",
				     n);
				goto out;
			}
			sb_puts(text, k ? "," : "");
			csv_field_put(text, n, strlen(n));
		}
		sb_puts(text, "\n");
	}
	for (size_t row = 0; row < *rows; row++) {
		for (size_t k = 0; k <= nin; k++) {
			json_t *v;

			if (k == nin && !(cols[nin] && idcol))
				break;
			v = nt == 1 && ts[0].cols > 1
				    ? json_array_get(ts[0].flat, row * nin + k)
				    : json_array_get(cols[k], row);
			if (k)
				sb_puts(text, ",");
			if (value_put(text, v) < 0) {
				fail(r, 400, "row %zu: a value of \"%s\" holds "
					     "a line break",
				     row,
				     k < nin ? json_string_value(
						       json_array_get(names, k))
					     : idcol);
				goto out;
			}
		}
		sb_puts(text, "\n");
	}
	rc = text->err ? (fail(r, 500, "out of memory"), -1) : 0;
out:
	for (size_t i = 0; ts && i < nt; i++)
		json_decref(ts[i].flat);
	free(ts);
	free(cols);
	return rc;
}

/* Which outputs the request wants: bit 0 predict, 1 proba, 2 id. */
static int outputs_wanted(json_t *req, bool classes, bool ids,
			  unsigned *want, struct oip_reply *r)
{
	json_t *outs = json_object_get(req, "outputs"), *o;
	size_t i;

	*want = 1u | (classes ? 2u : 0) | (ids ? 4u : 0);
	if (!outs)
		return 0;
	if (!json_is_array(outs)) {
		fail(r, 400, "\"outputs\" must be a list");
		return -1;
	}
	*want = 0;
	json_array_foreach(outs, i, o)
	{
		const char *n = json_string_value(json_object_get(o, "name"));

		if (n && strcmp(n, "predict") == 0)
			*want |= 1;
		else if (n && strcmp(n, "proba") == 0 && classes)
			*want |= 2;
		else if (n && strcmp(n, "id") == 0 && ids)
			*want |= 4;
		else {
			fail(r, 400, "outputs[%zu]: no output \"%.100s\" (there "
				     "are predict%s%s)",
			     i, n ? n : "", classes ? ", proba" : "",
			     ids ? ", id" : "");
			return -1;
		}
	}
	return 0;
}

/* Score text (rows JSON lines) for t as u: the answers' lines. */
static int score(struct fs *fs, const struct oip_caller *u, struct target *t,
		 const struct strbuf *text, struct strbuf *ans,
		 struct oip_reply *r)
{
	char msg[300] = "";
	int rc;

	if (t->dep) {
		/* no process behind it: a feature set's online store is
		 * read with the group database's groups */
		struct fs_ctx ctx = { u->uid, u->gid, 0, 022, NULL };
		struct dstream *s;

		rc = deploy_stream_open(fs, t->name, &ctx, &s, msg, sizeof(msg));
		if (rc == 0)
			rc = deploy_stream_write(s, text->buf, text->len, ans);
		if (rc == 0)
			rc = deploy_stream_finish(s, ans);
		deploy_stream_free(s);
	} else {
		struct served *m = NULL;
		struct pstream *ps = NULL;

		if (json_object_get(t->meta, "feature_sets")) {
			fail(r, 400, "models/%s is trained on feature sets: "
				     "predict by key through the file",
			     t->model);
			return -1;
		}
		rc = served_get(fs, t->hash, &m, msg, sizeof(msg));
		if (rc == 0)
			rc = pstream_new(m, &ps);
		if (rc == 0)
			rc = pstream_write(ps, text->buf, text->len, ans);
		if (rc == 0)
			rc = pstream_finish(ps, ans);
		pstream_free(ps);
		served_put(m);
	}
	if (rc < 0) {
		fail(r, rc == -ENOMEM ? 500 : 503, "%s: %s", t->name,
		     msg[0] ? msg : strerror(-rc));
		return -1;
	}
	return 0;
}

/* A number of an answer line as JSON: as it is, or null (nan, inf). */
static void num_put(struct strbuf *out, const char *p, size_t n)
{
	double d;

	if (n && csv_parse_double(p, n, &d) && isfinite(d))
		sb_append(out, p, n);
	else
		sb_puts(out, "null");
}

/*
 * The answers' CSV lines as output tensors, written as JSON text: the
 * numbers are copied as the stream printed them (the shortest decimal
 * of the float the model computed).  A line is [id,]answer[,p0,...]:
 * read from the right, since an id or a class may hold commas; the
 * class is the longest of the model's that ends the rest.
 */
static void answers_out(struct target *t, const char *ans, size_t len,
			size_t rows, unsigned want, bool ided, json_t *req,
			struct oip_reply *r)
{
	json_t *classes = json_object_get(t->meta, "classes");
	size_t k = json_array_size(classes), row = 0;
	struct strbuf pred = { 0 }, proba = { 0 }, ids = { 0 };
	const char *dt = predict_datatype(t->meta);
	const char *at = ans, *end = ans + len;

	while (at < end && row < rows) {
		const char *nl = memchr(at, '\n', (size_t)(end - at));
		size_t l = nl ? (size_t)(nl - at) : (size_t)(end - at);
		const char *e = at + l, *num[256], *cls = NULL;
		size_t numlen[256], nn = k ? k : 1, clen = 0, rest;

		if (l >= 7 && strncmp(at, "error: ", 7) == 0) {
			fail(r, 400, "row %zu: %.*s", row, (int)(l - 7), at + 7);
			goto out;
		}
		if (nn > 256) {
			fail(r, 500, "more than 256 classes");
			goto out;
		}
		/* the last nn fields: numbers, no comma in them */
		for (size_t f = nn; f-- > 0;) {
			const char *c = e;

			while (c > at && c[-1] != ',')
				c--;
			num[f] = c;
			numlen[f] = (size_t)(e - c);
			e = c > at ? c - 1 : c;
			if (c == at && f) {
				fail(r, 500, "row %zu: a short answer", row);
				goto out;
			}
		}
		if (k) {
			/* num[0] is the first probability: the class before */
			rest = (size_t)(num[0] - at);
			rest = rest ? rest - 1 : 0;
			for (size_t c = 0; c < k; c++) {
				const char *name = json_string_value(
					json_array_get(classes, c));
				size_t n = strlen(name);

				if (n <= rest && n >= clen &&
				    memcmp(at + rest - n, name, n) == 0 &&
				    (n == rest || at[rest - n - 1] == ',')) {
					cls = name;
					clen = n;
				}
			}
			if (!cls) {
				fail(r, 500, "row %zu: no class in the answer",
				     row);
				goto out;
			}
			rest -= clen;
		} else {
			rest = (size_t)(num[0] - at);
		}
		rest = rest ? rest - 1 : 0; /* the id's comma */
		sb_puts(&pred, row ? "," : "");
		if (k)
			sb_json_string(&pred, cls, clen);
		else
			num_put(&pred, num[0], numlen[0]);
		for (size_t c = 0; c < k; c++) {
			sb_puts(&proba, row || c ? "," : "");
			num_put(&proba, num[c], numlen[c]);
		}
		sb_puts(&ids, row ? "," : "");
		if (ided && rest >= 2 && at[0] == '"' && at[rest - 1] == '"') {
			/* a CSV field as the row had it: unquoted */
			char *raw = malloc(rest);
			size_t n = raw ? csv_unescape(raw, at + 1, rest - 2) : 0;

			sb_json_string(&ids, raw ? raw : "", n);
			free(raw);
		} else if (ided) {
			sb_json_string(&ids, at, rest);
		} else {
			sb_puts(&ids, "null");
		}
		row++;
		at += l + 1;
	}
	if (row != rows) {
		fail(r, 500, "%zu answers for %zu rows", row, rows);
		goto out;
	}
	if (pred.err || proba.err || ids.err) {
		fail(r, 500, "out of memory");
		goto out;
	}
	r->status = 200;
	sb_puts(&r->body, "{\"model_name\":");
	sb_json_string(&r->body, t->name, strlen(t->name));
	sb_printf(&r->body, ",\"model_version\":\"%u\"", t->ver);
	if (json_object_get(req, "id")) {
		sb_puts(&r->body, ",\"id\":");
		sb_put_json(&r->body, json_object_get(req, "id"),
			    JSON_ENCODE_ANY | JSON_COMPACT);
	}
	sb_puts(&r->body, ",\"outputs\":[");
	if (want & 1)
		sb_printf(&r->body, "{\"name\":\"predict\",\"datatype\":\"%s\","
				    "\"shape\":[%zu],\"data\":[%.*s]}",
			  dt, rows, (int)pred.len, pred.buf ? pred.buf : "");
	if (want & 2)
		sb_printf(&r->body, "%s{\"name\":\"proba\",\"datatype\":\"FP64\","
				    "\"shape\":[%zu,%zu],\"data\":[%.*s]}",
			  want & 1 ? "," : "", rows, k, (int)proba.len,
			  proba.buf ? proba.buf : "");
	if (want & 4)
		sb_printf(&r->body, "%s{\"name\":\"id\",\"datatype\":\"BYTES\","
				    "\"shape\":[%zu],\"data\":[%.*s]}",
			  want & 3 ? "," : "", rows, (int)ids.len,
			  ids.buf ? ids.buf : "");
	sb_puts(&r->body, "]}\n");
out:
	sb_free(&pred);
	sb_free(&proba);
	sb_free(&ids);
}

static void infer(struct fs *fs, const struct oip_caller *u, struct target *t,
		  const char *body, size_t len, struct oip_reply *r)
{
	json_error_t je;
	json_t *req;
	size_t seps = 0;

	/*
	 * jansson takes some 60 bytes a value: a body of empty lists would
	 * cost 50 times its size.  Values are counted by their separators
	 * first, and a body with too many is refused unread.
	 */
	for (size_t i = 0; i < len; i++)
		seps += body[i] == ',' || body[i] == '[' || body[i] == '{';
	if (seps > 2 * CELLS_MAX + 1024) {
		fail(r, 413, "more than %zu values in the body", CELLS_MAX);
		return;
	}
	req = json_loadb(body, len, 0, &je);
	struct strbuf text = { 0 }, ans = { 0 };
	size_t rows = 0;
	unsigned want;
	bool ids = t->dep || json_object_get(t->meta, "id"), ided = false;

	if (!json_is_object(req)) {
		if (req)
			fail(r, 400, "the body must be a JSON object");
		else
			fail(r, 400, "%s at line %d, column %d", je.text,
			     je.line, je.column);
		json_decref(req);
		return;
	}
	if (outputs_wanted(req, json_array_size(json_object_get(t->meta,
								 "classes")),
			   ids, &want, r) == 0 &&
	    rows_make(req, t->meta, &text, &rows, &ided, r) == 0 &&
	    score(fs, u, t, &text, &ans, r) == 0)
		answers_out(t, ans.buf ? ans.buf : "", ans.len, rows, want,
			    ided || t->dep, req, r);
	sb_free(&text);
	sb_free(&ans);
	json_decref(req);
}

/* --- feedback --- */

static void feedback(struct fs *fs, struct target *t, const char *body,
		     size_t len, struct oip_reply *r)
{
	json_t *j = json_loadb(body, len, 0, NULL), *v;
	struct strbuf lines = { 0 };
	struct problem pb = { 0 };
	size_t i, n = 0;

	if (!t->dep) {
		fail(r, 404, "%s: feedback is a deployment's", t->name);
		json_decref(j);
		return;
	}
	/* {"id", "truth"}, or a list of them */
	if (json_is_object(j)) {
		json_t *one = json_pack("[O]", j);

		json_decref(j);
		j = one;
	}
	if (!json_is_array(j)) {
		fail(r, 400, "the body must be {\"id\": ..., \"truth\": ...} or "
			     "a list of them");
		json_decref(j);
		return;
	}
	json_array_foreach(j, i, v)
	{
		sb_put_json(&lines, v, JSON_COMPACT | JSON_ENCODE_ANY);
		sb_puts(&lines, "\n");
		n++;
	}
	json_decref(j);
	if (lines.err) {
		fail(r, 500, "out of memory");
	} else if (deploy_feedback(fs, t->name, lines.buf ? lines.buf : "",
				   lines.len, 1, &pb) < 0) {
		fail(r, 400, "%s", pb.msg[0] ? pb.msg : "feedback refused");
	} else {
		json_t *o = json_pack("{s:I}", "received", (json_int_t)n);

		ok_json(r, o);
		json_decref(o);
	}
	sb_free(&lines);
}

/* --- /metrics --- */

static int each_dep(void *arg, const char *name)
{
	json_t *names = arg;

	return json_array_append_new(names, json_string(name));
}

static void metrics(struct fs *fs, const struct oip_caller *u,
		    struct oip_reply *r)
{
	struct strbuf all = { 0 }, one = { 0 };
	json_t *names = json_array(), *n;
	const char **texts;
	size_t *lens, nt = 1, i;

	daemon_prom(fs, &all);
	repo_list(fs, &repo_deployments, each_dep, names);
	texts = calloc(json_array_size(names) + 1, sizeof(*texts));
	lens = calloc(json_array_size(names) + 1, sizeof(*lens));
	json_array_foreach(names, i, n)
	{
		const char *name = json_string_value(n);
		json_t *rec;
		size_t at = one.len;

		if (!texts || !lens ||
		    repo_get(fs, &repo_deployments, name, &rec) < 0)
			continue;
		/* the deployments this uid may read */
		if (may(u, rec, 0, X_OK) &&
		    deploy_show_prom(fs, name, &one) == 0) {
			texts[nt] = (const char *)(uintptr_t)at;
			lens[nt++] = one.len - at;
		}
		json_decref(rec);
	}
	if (!texts || !lens || all.err || one.err) {
		fail(r, 500, "out of memory");
	} else {
		texts[0] = all.buf;
		lens[0] = all.len;
		for (i = 1; i < nt; i++)
			texts[i] = one.buf + (uintptr_t)texts[i];
		r->status = 200;
		r->type = "text/plain; version=0.0.4; charset=utf-8";
		prom_merge(texts, lens, nt, &r->body);
	}
	free(texts);
	free(lens);
	sb_free(&all);
	sb_free(&one);
	json_decref(names);
}

/* --- routing --- */

void oip_serve(struct fs *fs, const struct oip_caller *u, const char *method,
	       const char *url, const char *body, size_t len,
	       struct oip_reply *r)
{
	bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
	bool post = strcmp(method, "POST") == 0;
	char path[1024], *parts[8];
	size_t np = 0;
	char *save = NULL, *p;
	struct target t;
	long ver = -1;
	const char *tail;

	memset(r, 0, sizeof(*r));
	r->type = "application/json";
	if (strcmp(url, "/metrics") == 0) {
		if (get)
			metrics(fs, u, r);
		else
			fail(r, 405, "/metrics: GET only");
		return;
	}
	if (strlen(url) >= sizeof(path)) {
		fail(r, 404, "no such path");
		return;
	}
	strcpy(path, url);
	for (p = strtok_r(path, "/", &save); p && np < 8;
	     p = strtok_r(NULL, "/", &save))
		parts[np++] = p;
	if (p || np == 0 || strcmp(parts[0], "v2") != 0) {
		fail(r, 404, "no such path: %.200s", url);
		return;
	}
	if (np == 1 || (np == 3 && strcmp(parts[1], "health") == 0)) {
		json_t *o;

		if (!get) {
			fail(r, 405, "%s: GET only", url);
			return;
		}
		if (np == 1)
			o = json_pack("{s:s, s:s, s:[s]}", "name", "mlfs",
				      "version", MLFS_VERSION, "extensions",
				      "feedback");
		else if (strcmp(parts[2], "live") == 0)
			o = json_pack("{s:b}", "live", 1);
		else if (strcmp(parts[2], "ready") == 0)
			o = json_pack("{s:b}", "ready", 1);
		else
			o = NULL;
		if (o)
			ok_json(r, o);
		else
			fail(r, 404, "no such path: %.200s", url);
		json_decref(o);
		return;
	}
	if (np < 3 || strcmp(parts[1], "models") != 0) {
		fail(r, 404, "no such path: %.200s", url);
		return;
	}
	tail = np > 3 ? parts[3] : NULL;
	if (tail && strcmp(tail, "versions") == 0) {
		char *end;

		ver = np > 4 ? strtol(parts[4], &end, 10) : 0;
		if (np < 5 || *end || ver <= 0 || ver > (long)UINT_MAX) {
			fail(r, 404, "no such version: %.200s", url);
			return;
		}
		tail = np > 5 ? parts[5] : NULL;
		if (np > 6) {
			fail(r, 404, "no such path: %.200s", url);
			return;
		}
	} else if (np > 4) {
		fail(r, 404, "no such path: %.200s", url);
		return;
	}
	if (tail && strcmp(tail, "infer") != 0 && strcmp(tail, "ready") != 0 &&
	    strcmp(tail, "feedback") != 0) {
		fail(r, 404, "no such path: %.200s", url);
		return;
	}
	if ((!tail || strcmp(tail, "ready") == 0) ? !get : !post) {
		fail(r, 405, "%s: %s only", url, get || post ? (post ? "GET"
								     : "POST")
							     : "GET or POST");
		return;
	}
	if (tail && strcmp(tail, "feedback") == 0 && ver > 0) {
		fail(r, 404, "feedback is a deployment's: no versions");
		return;
	}
	if (target_find(fs, u, parts[2], ver,
			tail && strcmp(tail, "feedback") == 0 ? W_OK : X_OK, &t,
			r) < 0) {
		target_free(&t);
		return;
	}
	if (!tail) {
		metadata(&t, r);
	} else if (strcmp(tail, "ready") == 0) {
		json_t *o = json_pack("{s:s, s:b}", "name", t.name, "ready", 1);

		ok_json(r, o);
		json_decref(o);
	} else if (strcmp(tail, "infer") == 0) {
		infer(fs, u, &t, body, len, r);
	} else {
		feedback(fs, &t, body, len, r);
	}
	target_free(&t);
}

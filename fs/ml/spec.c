/* SPDX-License-Identifier: MIT */
/*
 * Training specs: the JSON written to train/<job>.json.  Checked as it is
 * written (syntax, as far as the bytes so far allow) and resolved against
 * the platform when complete: the dataset version, its schema, the
 * algorithm's plugin (which validates its own params), the split and the
 * search.  The result is the job's plan, everything the job program needs
 * with nothing left to look up.  Any FUSE worker enters; nothing here is
 * shared.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "repo.h"
#include "fs.h"
#include "hostfile.h"
#include "plugin.h"
#include "featspec.h"
#include "spec.h"

#define SPEC_MAX_FEATURE_SETS 8

static const char *const spec_fields[] = {
	"dataset", "label",  "features", "algorithm", "params", "split",
	"model",   "search", "task",     "timeout",   "memory",
	"feature_sets", NULL,
};

/*
 * jansson calls a cut number ("0.", "1e", "-"), literal ("tru") or escape
 * ("\u00") invalid syntax, not the end of input, so a write that ends
 * inside one would fail.  The text is only cut if its error sits at its
 * last byte and some completion of the last token turns it into the end
 * of input (or parses): the completions of every such prefix.
 */
static bool is_cut_token(const char *text, size_t len,
			 const json_error_t *err)
{
	static const char *const tails[] = {
		"0", "00", "000", "0000", "e", "l", "ll", "ue", "se", "lse",
		"ull", "rue", "alse",
		".0", /* digits too many for an integer: a real's, cut */
		NULL
	};
	char *buf;
	bool cut = false;

	if (err->position < 0 || (size_t)err->position + 1 < len)
		return false;
	buf = malloc(len + 8);
	if (!buf)
		return false;
	memcpy(buf, text, len);
	for (int i = 0; !cut && tails[i]; i++) {
		size_t n = strlen(tails[i]);
		json_error_t e;
		json_t *j;

		memcpy(buf + len, tails[i], n);
		j = json_loadb(buf, len + n, JSON_REJECT_DUPLICATES, &e);
		cut = j || json_error_code(&e) ==
				   json_error_premature_end_of_input;
		json_decref(j);
	}
	free(buf);
	return cut;
}

/*
 * The bytes at the end of text[0..len) that start a UTF-8 sequence
 * without finishing it (a write cut inside a character), or 0.
 */
static size_t utf8_cut(const char *text, size_t len)
{
	for (size_t k = 1; k <= 3 && k <= len; k++) {
		unsigned char c = (unsigned char)text[len - k];
		size_t need;

		if ((c & 0xc0) == 0x80)
			continue; /* a continuation byte: look further back */
		need = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3
			: (c & 0xf8) == 0xf0 ? 4 : 0;
		return k < need ? k : 0;
	}
	return 0;
}

int spec_check_text(const char *text, size_t len, bool final,
		    struct problem *pb)
{
	size_t cut;

	json_error_t err;
	json_t *j;

	if (len > SPEC_MAX)
		return problem_set(pb, 0, 0, "spec larger than %d bytes",
				   SPEC_MAX) == -EINVAL ? -EFBIG : -EFBIG;
	j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
	if (j) {
		int rc = 0;

		if (!json_is_object(j))
			rc = problem_set(pb, 1, 1, "a spec is a JSON object");
		json_decref(j);
		return rc;
	}
	/* Incomplete is fine until the file is closed. */
	if (json_error_code(&err) == json_error_premature_end_of_input &&
	    !final)
		return 0;
	if (!final && is_cut_token(text, len, &err))
		return 0;
	/* jansson cannot decode a cut character: judge the text before it */
	cut = final ? 0 : utf8_cut(text, len);
	if (cut)
		return spec_check_text(text, len - cut, false, pb);
	if (len == 0 || (json_error_code(&err) ==
				 json_error_premature_end_of_input &&
			 final))
		return problem_set(pb, (unsigned)err.line,
				   (unsigned)err.column,
				   "incomplete JSON: %s", err.text);
	return problem_set(pb, (unsigned)err.line, (unsigned)err.column, "%s",
			   err.text);
}

int spec_check_json(const char *text, size_t len, bool final,
		    int (*fields)(json_t *spec, const char *text,
				  struct problem *pb),
		    json_t **out, struct problem *pb)
{
	json_t *spec;
	int rc;

	if (out)
		*out = NULL;
	/* the syntax, and a write cut inside a value */
	rc = spec_check_text(text, len, final, pb);
	if (rc < 0)
		return rc;
	spec = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
	if (!spec)
		return 0; /* incomplete, and not final */
	rc = fields(spec, text, pb);
	if (rc == 0 && out)
		*out = json_incref(spec);
	json_decref(spec);
	return rc;
}

static void host_log(void *ctx, int level, const char *fmt, ...)
{
	(void)ctx;
	(void)level;
	(void)fmt;
}

static int host_cancelled(void *ctx)
{
	(void)ctx;
	return 0;
}

/* params object -> mlfs_param array (strings borrowed from j). */
int spec_params(json_t *params, struct mlfs_param **out, size_t *n,
		double **lists, char *msg, size_t msglen)
{
	struct mlfs_param *ps;
	size_t count = json_object_size(params), i = 0, nl = 0;
	const char *k;
	json_t *v;

	*out = NULL;
	*lists = NULL;
	*n = 0;
	ps = calloc(count ? count : 1, sizeof(*ps));
	json_object_foreach(params, k, v) {
		if (json_is_array(v))
			nl += json_array_size(v);
	}
	*lists = calloc(nl ? nl : 1, sizeof(**lists));
	if (!ps || !*lists) {
		free(ps);
		free(*lists);
		*lists = NULL;
		return -ENOMEM;
	}
	nl = 0;
	json_object_foreach(params, k, v) {
		struct mlfs_param *p = &ps[i++];

		p->name = k;
		if (json_is_number(v)) {
			p->type = MLFS_PARAM_NUMBER;
			p->number = json_number_value(v);
		} else if (json_is_boolean(v)) {
			p->type = MLFS_PARAM_BOOL;
			p->number = json_is_true(v);
		} else if (json_is_string(v)) {
			p->type = MLFS_PARAM_STRING;
			p->string = json_string_value(v);
		} else if (json_is_array(v)) {
			size_t j;
			json_t *e;

			p->type = MLFS_PARAM_LIST;
			p->list = *lists + nl;
			json_array_foreach(v, j, e) {
				if (!json_is_number(e)) {
					snprintf(msg, msglen,
						 "\"%s\": a list of numbers", k);
					free(ps);
					free(*lists);
					*lists = NULL;
					return -EINVAL;
				}
				(*lists)[nl++] = json_number_value(e);
			}
			p->nlist = json_array_size(v);
		} else {
			snprintf(msg, msglen,
				 "\"%s\": must be a number, string, boolean "
				 "or list of numbers", k);
			free(ps);
			free(*lists);
			*lists = NULL;
			return -EINVAL;
		}
	}
	*out = ps;
	*n = count;
	return 0;
}

/* Let the plugin judge its params: init, then fini. */
static int check_params(const struct plugin *pl, unsigned task,
			json_t *params, const char *text, struct problem *pb)
{
	const struct mlfs_train_ops *ops = pl->desc->ops;
	struct mlfs_host host = { sizeof(host), NULL, host_log, NULL, NULL,
				  host_cancelled, 1, NULL, NULL, NULL, 0 };
	struct mlfs_param *ps;
	double *lists;
	size_t n;
	char msg[400] = "";
	void *inst = NULL;
	int rc;

	rc = spec_params(params, &ps, &n, &lists, msg, sizeof(msg));
	if (rc == -EINVAL)
		return problem_field(pb, text, "params", "%s", msg);
	if (rc < 0)
		return rc;
	rc = ops->init(&host, task, ps, n, &inst, msg, sizeof(msg));
	if (rc == 0)
		ops->fini(inst);
	free(ps);
	free(lists);
	if (rc < 0) {
		char field[128] = "params";
		const char *q;

		/* the plugin's message starts with the "param" it blames:
		 * point at that param in the text, keep the message */
		if (msg[0] == '"' && (q = strchr(msg + 1, '"')) &&
		    (size_t)(q - msg - 1) < sizeof(field))
			snprintf(field, sizeof(field), "%.*s",
				 (int)(q - msg - 1), msg + 1);
		problem_field(pb, text, field, "x");
		snprintf(pb->msg, sizeof(pb->msg), "%s",
			 msg[0] ? msg : "bad params");
		return -EINVAL;
	}
	return 0;
}

static const char *task_name(unsigned task)
{
	switch (task) {
	case MLFS_TASK_CLASSIFICATION:
		return "classification";
	case MLFS_TASK_REGRESSION:
		return "regression";
	default:
		return "clustering";
	}
}

static json_t *schema_col(json_t *schema, const char *name)
{
	size_t i;
	json_t *c;

	json_array_foreach(json_object_get(schema, "columns"), i, c) {
		if (strcmp(json_string_value(json_object_get(c, "name")),
			   name) == 0)
			return c;
	}
	return NULL;
}

static json_t *stats_col(json_t *stats, const char *name)
{
	size_t i;
	json_t *c;

	json_array_foreach(json_object_get(stats, "columns"), i, c) {
		if (strcmp(json_string_value(json_object_get(c, "name")),
			   name) == 0)
			return c;
	}
	return NULL;
}

/*
 * The default task from the label (DESIGN.md): a categorical label, or an
 * integer one with at most 100 distinct values, is classification.
 */
static unsigned label_task(json_t *sc, json_t *st)
{
	const char *type = json_string_value(json_object_get(sc, "type"));
	json_t *classes = json_object_get(st, "classes");

	if (type && strcmp(type, "numeric") != 0)
		return MLFS_TASK_CLASSIFICATION;
	if (classes && json_object_size(classes) <= 100 &&
	    json_integer_value(json_object_get(st, "distinct")) <= 100 &&
	    !json_is_true(json_object_get(st, "distinct_estimated")))
		return MLFS_TASK_CLASSIFICATION;
	return MLFS_TASK_REGRESSION;
}

static int check_split(json_t *split, const char *text, json_t **out,
		       unsigned task, struct problem *pb)
{
	static const char *const fields[] = { "train", "validation", "test",
					      "seed", "stratify", NULL };
	double tr = 0.7, va = 0.15, te = 0.15;
	json_int_t seed = 42;
	bool strat = task == MLFS_TASK_CLASSIFICATION;
	const char *k;
	json_t *v;
	int rc;

	*out = NULL;
	if (split && !json_is_object(split))
		return problem_field(pb, text, "split", "must be an object");
	rc = problem_check_fields(pb, text, split, fields, "\"split\"");
	if (rc < 0)
		return rc;
	json_object_foreach(split, k, v) {
		if (strcmp(k, "train") == 0 || strcmp(k, "validation") == 0 ||
		    strcmp(k, "test") == 0) {
			double x = json_number_value(v);

			if (!json_is_number(v) || x < 0 || x > 1)
				return problem_field(pb, text, k,
						     "must be a fraction in "
						     "[0, 1]");
		} else if (strcmp(k, "seed") == 0) {
			if (!json_is_integer(v) || json_integer_value(v) < 0)
				return problem_field(pb, text, k,
						     "must be an integer >= 0");
			seed = json_integer_value(v);
		} else if (strcmp(k, "stratify") == 0) {
			if (!json_is_boolean(v))
				return problem_field(pb, text, k,
						     "must be true or false");
			strat = json_is_true(v);
		}
	}
	if (json_object_get(split, "train") || json_object_get(split, "test") ||
	    json_object_get(split, "validation")) {
		tr = json_number_value(json_object_get(split, "train"));
		va = json_number_value(json_object_get(split, "validation"));
		te = json_number_value(json_object_get(split, "test"));
		if (!json_object_get(split, "train"))
			tr = 1 - va - te;
		if (!json_object_get(split, "test"))
			te = 1 - tr - va;
	}
	if (fabs(tr + va + te - 1) > 1e-6 || tr <= 0 || te < 0 || va < 0)
		return problem_field(pb, text, "split",
				     "train, validation and test must be "
				     "fractions that sum to 1, got %g + %g + "
				     "%g",
				     tr, va, te);
	*out = json_pack("{s:f, s:f, s:f, s:I, s:b}", "train", tr,
			 "validation", va, "test", te, "seed", seed,
			 "stratify", strat && task == MLFS_TASK_CLASSIFICATION);
	return *out ? 0 : -ENOMEM;
}

static int check_range(json_t *r, bool want_int)
{
	json_t *a = json_array_get(r, 0), *b = json_array_get(r, 1);

	if (!json_is_array(r) || json_array_size(r) != 2 ||
	    !json_is_number(a) || !json_is_number(b))
		return -EINVAL;
	if (want_int && (!json_is_integer(a) || !json_is_integer(b)))
		return -EINVAL;
	return json_number_value(a) <= json_number_value(b) ? 0 : -EINVAL;
}

static int check_search(struct fs *fs, json_t *s, const char *text,
			const struct plugin **tune, struct problem *pb)
{
	static const char *const fields[] = { "method", "trials", "parallel",
					      "max_failed", "metric", "goal",
					      "space", NULL };
	const char *method = json_string_value(json_object_get(s, "method"));
	const char *goal = json_string_value(json_object_get(s, "goal"));
	const char *k;
	json_t *v;
	int rc;

	if (!json_is_object(s))
		return problem_field(pb, text, "search", "must be an object");
	rc = problem_check_fields(pb, text, s, fields, "\"search\"");
	if (rc < 0)
		return rc;
	*tune = method ? plugin_find(fs_plugins(fs), MLFS_STAGE_TUNE, method)
		       : NULL;
	if (!*tune)
		return problem_field(pb, text, "method",
				     "must name a tune plugin (grid, random, "
				     "halving; see .mlfs/plugins), got "
				     "\"%s\"",
				     method ? method : "?");
	for (int i = 1; i <= 3; i++) {
		json_t *n = json_object_get(s, fields[i]);

		if (n && (!json_is_integer(n) || json_integer_value(n) < 0 ||
			  (i < 3 && json_integer_value(n) < 1) ||
			  json_integer_value(n) > 10000))
			return problem_field(pb, text, fields[i],
					     "must be an integer in [%d, "
					     "10000]",
					     i < 3 ? 1 : 0);
	}
	if (json_object_get(s, "metric") && !json_is_string(json_object_get(
						    s, "metric")))
		return problem_field(pb, text, "metric", "must be a string");
	if (goal && strcmp(goal, "maximize") && strcmp(goal, "minimize"))
		return problem_field(pb, text, "goal",
				     "must be maximize or minimize");
	if (!json_is_object(json_object_get(s, "space")) ||
	    json_object_size(json_object_get(s, "space")) == 0)
		return problem_field(pb, text, "space",
				     "must be an object of parameters");
	json_object_foreach(json_object_get(s, "space"), k, v) {
		const char *kind;
		json_t *r;

		if (!json_is_object(v) || json_object_size(v) != 1)
			return problem_field(pb, text, k,
					     "must be one of {\"uniform\": "
					     "[a, b]}, {\"log_uniform\": [a, "
					     "b]}, {\"int\": [a, b]}, "
					     "{\"choice\": [...]}");
		json_object_foreach(v, kind, r) {
			if (strcmp(kind, "uniform") == 0)
				rc = check_range(r, false);
			else if (strcmp(kind, "log_uniform") == 0)
				rc = check_range(r, false) < 0 ||
					     json_number_value(
						     json_array_get(r, 0)) <= 0
					     ? -EINVAL
					     : 0;
			else if (strcmp(kind, "int") == 0)
				rc = check_range(r, true);
			else if (strcmp(kind, "choice") == 0)
				rc = json_is_array(r) && json_array_size(r)
					     ? 0
					     : -EINVAL;
			else
				return problem_field(pb, text, kind,
						     "unknown kind of range");
			if (rc < 0)
				return problem_field(pb, text, k,
						     "bad %s range", kind);
		}
	}
	return 0;
}

static int parse_size(json_t *v, double *out)
{
	char *end;
	double x;

	if (json_is_number(v)) {
		*out = json_number_value(v);
		return *out > 0 ? 0 : -EINVAL;
	}
	if (!json_is_string(v))
		return -EINVAL;
	x = strtod(json_string_value(v), &end);
	switch (*end) {
	case 'k': case 'K': x *= 1024; end++; break;
	case 'm': case 'M': x *= 1024 * 1024; end++; break;
	case 'g': case 'G': x *= 1024.0 * 1024 * 1024; end++; break;
	default: break;
	}
	if (*end == 'B' || *end == 'b')
		end++;
	*out = x;
	/* "nan" and "inf" parse, but no plan can hold them (json_real) */
	return *end || !(x > 0) || !isfinite(x) ? -EINVAL : 0;
}

int spec_may_write_model(struct fs *fs, const struct host_user *writer,
			 const char *model)
{
	json_t *rec;
	int rc;

	rc = repo_get(fs, &repo_models, model, &rec);
	if (rc == -ENOENT)
		return 0; /* made by the job, owned by the writer */
	if (rc < 0)
		return rc;
	rc = host_may_record(writer, rec, W_OK | X_OK) ? 0 : -EACCES;
	json_decref(rec);
	return rc;
}

/*
 * What spec_resolve learns of a spec, step by step.  Each step reads what
 * the steps before it filled in; the references (spec, rec, man, split,
 * feats) are released once, at the end of spec_resolve.
 */
struct resolve {
	struct fs *fs;
	const char *job;
	const char *text;         /* the spec as written, for positions */
	const struct fs_ctx *ctx; /* the writer */
	struct host_user writer;
	struct problem *pb;
	json_t *spec;
	json_t *rec;              /* the dataset's record */
	json_t *man;              /* the dataset version's manifest */
	json_t *schema;           /* borrowed from man */
	json_t *stats;            /* borrowed from man */
	char dsname[300];
	unsigned dsver;           /* 0: the latest */
	const char *algo;
	const struct plugin *pl;
	unsigned tasks;           /* what the plugin does, MLFS_TASK_* bits */
	const char *label;        /* NULL: none (clustering) */
	unsigned task;
	json_t *feats;            /* [{name, type}], NULL once in the plan */
	json_t *sets;             /* feature sets joined in, or NULL */
	json_t *params;           /* borrowed from spec */
	json_t *split;
	const struct plugin *tune;
	const char *model;
	double timeout;           /* seconds, 0: none */
	double memory;            /* bytes, 0: none */
};

/* A JSON object whose fields are all DESIGN.md's. */
static int resolve_fields(struct resolve *r)
{
	if (!json_is_object(r->spec)) {
		problem_set(r->pb, 1, 1, "a spec is a JSON object");
		return -EINVAL;
	}
	return problem_check_fields(r->pb, r->text, r->spec, spec_fields,
				    NULL);
}

/* "dataset": a name the writer may read. */
static int resolve_dataset_name(struct resolve *r)
{
	json_t *ref = json_object_get(r->spec, "dataset");
	const char *dsref = json_string_value(ref);

	if (!dsref) {
		problem_field(r->pb, r->text, "dataset",
			      ref ? "must be a string \"name\" or "
				    "\"name@version\""
				  : "is required");
		if (!ref)
			problem_set(r->pb, 1, 1,
				    "\"dataset\": is required (a dataset name, "
				    "or name@version)");
		return -EINVAL;
	}
	if (name_ref_parse(dsref, r->dsname, sizeof(r->dsname),
			      &r->dsver) < 0) {
		problem_field(r->pb, r->text, "dataset",
			      "\"%s\" is not a dataset name or name@version",
			      dsref);
		return -EINVAL;
	}
	if (repo_get(r->fs, &repo_datasets, r->dsname, &r->rec) < 0) {
		problem_field(r->pb, r->text, "dataset", "no dataset \"%s\"",
			      r->dsname);
		return -EINVAL;
	}
	/* the writer must be able to read the dataset */
	if (!host_may_record(&r->writer, r->rec, R_OK | X_OK)) {
		problem_field(r->pb, r->text, "dataset",
			      "\"%s\": permission denied", r->dsname);
		return -EACCES;
	}
	return 0;
}

/* The dataset version's manifest, with its schema and stats. */
static int resolve_dataset_version(struct resolve *r)
{
	struct problem *pb = r->pb;
	int rc;

	/* A lazily imported version is read now: training needs it all. */
	rc = ds_version_ready(r->fs, r->dsname, r->dsver, &r->man, pb);
	if (rc < 0 && rc != -ENOENT) {
		char why[sizeof(pb->msg)];

		snprintf(why, sizeof(why), "%s",
			 pb->msg[0] ? pb->msg : strerror(-rc));
		problem_field(pb, r->text, "dataset", "dataset \"%s\": %s",
			      r->dsname, why);
		return rc;
	}
	if (rc < 0) {
		problem_field(pb, r->text, "dataset",
			      r->dsver
				      ? "dataset \"%s\" has no version %u"
				      : "dataset \"%s\" has no version yet%.0u",
			      r->dsname, r->dsver);
		return -EINVAL;
	}
	r->schema = json_object_get(r->man, "schema");
	r->stats = json_object_get(r->man, "stats");
	return 0;
}

/* "algorithm": a train plugin. */
static int resolve_algorithm(struct resolve *r)
{
	r->algo = json_string_value(json_object_get(r->spec, "algorithm"));
	if (!r->algo) {
		problem_set(r->pb, 1, 1, "\"algorithm\": is required (a train "
					 "plugin: see .mlfs/plugins)");
		if (json_object_get(r->spec, "algorithm"))
			problem_field(r->pb, r->text, "algorithm",
				      "must be a string");
		return -EINVAL;
	}
	r->pl = plugin_find(fs_plugins(r->fs), MLFS_STAGE_TRAIN, r->algo);
	if (!r->pl) {
		problem_field(r->pb, r->text, "algorithm",
			      "no train plugin \"%s\" (see .mlfs/plugins)",
			      r->algo);
		return -EINVAL;
	}
	r->tasks = ((const struct mlfs_train_ops *)r->pl->desc->ops)->tasks;
	return 0;
}

/* "label": given, or the schema's unless the plugin only clusters. */
static int resolve_label(struct resolve *r)
{
	r->label = json_string_value(json_object_get(r->spec, "label"));
	if (json_object_get(r->spec, "label") && !r->label) {
		problem_field(r->pb, r->text, "label", "must be a column name");
		return -EINVAL;
	}
	if (!r->label && r->tasks != MLFS_TASK_CLUSTERING)
		r->label = json_string_value(json_object_get(r->schema,
							     "label"));
	if (r->label && !schema_col(r->schema, r->label)) {
		problem_field(r->pb, r->text, "label",
			      "no column \"%s\" in %s@%u", r->label, r->dsname,
			      (unsigned)json_integer_value(
				      json_object_get(r->man, "version")));
		return -EINVAL;
	}
	return 0;
}

/* The task: given, or the plugin's only one, or from the label. */
static int resolve_task(struct resolve *r)
{
	json_t *given = json_object_get(r->spec, "task");
	const char *type;

	if (given) {
		const char *t = json_string_value(given);

		if (t && strcmp(t, "classification") == 0)
			r->task = MLFS_TASK_CLASSIFICATION;
		else if (t && strcmp(t, "regression") == 0)
			r->task = MLFS_TASK_REGRESSION;
		else if (t && strcmp(t, "clustering") == 0)
			r->task = MLFS_TASK_CLUSTERING;
		else {
			problem_field(r->pb, r->text, "task",
				      "must be classification, regression or "
				      "clustering");
			return -EINVAL;
		}
	} else if (r->tasks == MLFS_TASK_CLUSTERING) {
		r->task = MLFS_TASK_CLUSTERING;
	} else if (!r->label) {
		problem_set(r->pb, 1, 1, "\"label\": the dataset has no label "
					 "column: name one");
		return -EINVAL;
	} else {
		r->task = label_task(schema_col(r->schema, r->label),
				     stats_col(r->stats, r->label));
	}
	if (!(r->tasks & r->task)) {
		problem_field(r->pb, r->text, given ? "task" : "algorithm",
			      "\"%s\" does not do %s", r->algo,
			      task_name(r->task));
		return -EINVAL;
	}
	if (r->task == MLFS_TASK_CLUSTERING) {
		r->label = NULL;
	} else if (!r->label) {
		/* a task given in the spec skipped the check above */
		problem_set(r->pb, 1, 1, "\"label\": the dataset has no "
					 "label column: name one");
		return -EINVAL;
	}
	if (r->task != MLFS_TASK_REGRESSION)
		return 0;
	type = json_string_value(json_object_get(
		schema_col(r->schema, r->label), "type"));
	if (strcmp(type, "numeric") != 0) {
		problem_field(r->pb, r->text, "label",
			      "regression needs a numeric label, \"%s\" is %s",
			      r->label, type);
		return -EINVAL;
	}
	return 0;
}

/* "features" as given: columns of the schema, not the label, not text. */
static int resolve_features_given(struct resolve *r, json_t *given)
{
	size_t i;
	json_t *f;

	if (!json_is_array(given) || json_array_size(given) == 0) {
		problem_field(r->pb, r->text, "features",
			      "must be a non-empty list of column names");
		return -EINVAL;
	}
	json_array_foreach(given, i, f) {
		const char *n = json_string_value(f);
		json_t *c = n ? schema_col(r->schema, n) : NULL;
		const char *type =
			json_string_value(json_object_get(c, "type"));

		if (!c || (r->label && strcmp(n, r->label) == 0) ||
		    strcmp(type, "text") == 0) {
			problem_field(r->pb, r->text, "features",
				      !c ? "no column \"%s\""
				      : strcmp(type, "text") == 0
					      ? "\"%s\" is a text column"
					      : "\"%s\" is the label",
				      n ? n : "?");
			return -EINVAL;
		}
		json_array_append_new(r->feats,
				      json_pack("{s:s, s:s}", "name", n,
						"type", type));
	}
	return 0;
}

/* No "features": every column that is not label, id, pii or text. */
static int resolve_features_default(struct resolve *r)
{
	size_t i;
	json_t *c;

	json_array_foreach(json_object_get(r->schema, "columns"), i, c) {
		const char *n = json_string_value(json_object_get(c, "name"));
		const char *type = json_string_value(
			json_object_get(c, "type"));
		const char *role = json_string_value(
			json_object_get(c, "role"));

		if ((r->label && strcmp(n, r->label) == 0) ||
		    strcmp(role, "id") == 0 || strcmp(role, "pii") == 0 ||
		    strcmp(role, "label") == 0 || strcmp(type, "text") == 0)
			continue;
		json_array_append_new(r->feats,
				      json_pack("{s:s, s:s}", "name", n,
						"type", type));
	}
	if (json_array_size(r->feats) == 0) {
		problem_set(r->pb, 1, 1, "\"features\": the dataset has no "
					 "usable feature columns");
		return -EINVAL;
	}
	return 0;
}

static int resolve_features(struct resolve *r)
{
	json_t *given = json_object_get(r->spec, "features");

	r->feats = json_array();
	if (given)
		return resolve_features_given(r, given);
	return resolve_features_default(r);
}

/* Is name a feature (r->feats) already? Its index, or -1. */
static long feat_index(struct resolve *r, const char *name)
{
	size_t i;
	json_t *f;

	json_array_foreach(r->feats, i, f)
		if (strcmp(json_string_value(json_object_get(f, "name")),
			   name) == 0)
			return (long)i;
	return -1;
}

/*
 * "feature_sets": each set's features, as of each row's time, join the
 * dataset's rows (which carry its entity and timestamp columns, features
 * no more when they were chosen by default).
 */
static int resolve_feature_sets(struct resolve *r)
{
	json_t *given = json_object_get(r->spec, "feature_sets");
	size_t i, j;
	json_t *ref, *c;
	char why[400];

	if (!given)
		return 0;
	if (!json_is_array(given) || json_array_size(given) == 0 ||
	    json_array_size(given) > SPEC_MAX_FEATURE_SETS)
		return problem_field(r->pb, r->text, "feature_sets",
				     "must be a list of 1 to %d feature sets "
				     "(\"name\" or \"name@version\")",
				     SPEC_MAX_FEATURE_SETS);
	r->sets = json_array();
	json_array_foreach(given, i, ref) {
		json_t *set, *spec, *cols;
		int rc = featspec_train_ref(r->fs, json_string_value(ref),
					    &r->writer, &set, why, sizeof(why));

		if (rc < 0) {
			problem_field(r->pb, r->text, "feature_sets", "%s", why);
			return rc;
		}
		json_array_append_new(r->sets, set);
		spec = json_object_get(set, "spec");
		cols = json_deep_copy(json_object_get(spec, "entity"));
		json_array_append(cols, json_object_get(spec, "timestamp"));
		json_array_foreach(cols, j, c) {
			const char *n = json_string_value(c);
			long k = feat_index(r, n);

			if (!schema_col(r->schema, n)) {
				json_decref(cols);
				return problem_field(
					r->pb, r->text, "feature_sets",
					"\"%s\": the dataset has no column "
					"\"%s\" (its entity or timestamp)",
					json_string_value(ref), n);
			}
			/* keys and times are not features, unless asked */
			if (k >= 0 && !json_object_get(r->spec, "features"))
				json_array_remove(r->feats, (size_t)k);
		}
		json_decref(cols);
		json_array_foreach(json_object_get(spec, "features"), j, c) {
			const char *n = json_string_value(
				json_object_get(c, "name"));

			if (feat_index(r, n) >= 0 || schema_col(r->schema, n))
				return problem_field(
					r->pb, r->text, "feature_sets",
					"\"%s\": its feature \"%s\" is a "
					"column of the dataset or of another "
					"set",
					json_string_value(ref), n);
			json_array_append_new(
				r->feats,
				json_pack("{s:s, s:s, s:s}", "name", n, "type",
					  json_string_value(json_object_get(
						  json_object_get(set, "types"),
						  n)),
					  "feature_set",
					  json_string_value(json_object_get(
						  set, "name"))));
		}
	}
	if (json_array_size(r->feats) == 0)
		return problem_set(r->pb, 1, 1, "\"features\": none to train "
						"on");
	return 0;
}

/* "params" (default {}), judged by the plugin; "split"; "search". */
static int resolve_params(struct resolve *r)
{
	json_t *search = json_object_get(r->spec, "search");
	int rc;

	r->params = json_object_get(r->spec, "params");
	if (!r->params) {
		r->params = json_object();
		json_object_set_new(r->spec, "params", r->params);
	}
	if (!json_is_object(r->params)) {
		problem_field(r->pb, r->text, "params", "must be an object");
		return -EINVAL;
	}
	rc = check_params(r->pl, r->task, r->params, r->text, r->pb);
	if (rc < 0)
		return rc;
	rc = check_split(json_object_get(r->spec, "split"), r->text,
			 &r->split, r->task, r->pb);
	if (rc < 0)
		return rc;
	if (search && check_search(r->fs, search, r->text, &r->tune, r->pb) < 0)
		return -EINVAL;
	return 0;
}

/* "model": a valid name (default: the job's) the writer may add to. */
static int resolve_model(struct resolve *r)
{
	const char *name;
	int rc;

	r->model = json_string_value(json_object_get(r->spec, "model"));
	if (json_object_get(r->spec, "model") &&
	    (!r->model || node_name_check(r->model, NULL) < 0)) {
		problem_field(r->pb, r->text, "model",
			      "\"%s\" is not a valid name",
			      r->model ? r->model : "?");
		return -EINVAL;
	}
	name = r->model ? r->model : r->job;
	/* A new version goes into the model: judged as mkdir in it. */
	rc = spec_may_write_model(r->fs, &r->writer, name);
	if (rc < 0) {
		problem_field(r->pb, r->text, r->model ? "model" : "name",
			      "model \"%s\": %s", name, strerror(-rc));
		return rc;
	}
	return 0;
}

/* "timeout" and "memory": positive numbers or sizes. */
static int resolve_limits(struct resolve *r)
{
	/* each judged on its own: a bad one is blamed by its name */
	for (int i = 0; i < 2; i++) {
		const char *f = i ? "memory" : "timeout";
		json_t *v = json_object_get(r->spec, f);

		if (v && parse_size(v, i ? &r->memory : &r->timeout) < 0) {
			problem_field(r->pb, r->text, f,
				      "must be a positive number (seconds; "
				      "bytes or a size such as \"2G\")");
			return -EINVAL;
		}
	}
	return 0;
}

/* The plan: everything the job program needs (new reference, or NULL). */
static json_t *resolve_plan(struct resolve *r)
{
	json_t *man = r->man;
	json_t *plan;

	plan = json_pack(
		"{s:s, s:s, s:O, s:{s:s, s:i, s:s, s:s, s:I, s:I}, s:s, s:s, "
		"s:s, s:s, s:s, s:s?, s:o, s:O, s:O, s:O?, s:f, s:f, s:i, "
		"s:i, s:O}",
		"name", r->job, "model", r->model ? r->model : r->job, "spec",
		r->spec, "dataset", "name", r->dsname, "version",
		(int)json_integer_value(json_object_get(man, "version")),
		"hash", json_string_value(json_object_get(man, "hash")),
		"blob", json_string_value(json_object_get(man, "blob")),
		"size", json_integer_value(json_object_get(man, "size")),
		"rows", json_integer_value(json_object_get(man, "rows")),
		"algorithm", r->algo, "plugin", r->pl->path, "plugin_hash",
		r->pl->hash, "plugin_version",
		r->pl->desc->version ? r->pl->desc->version : "", "task",
		task_name(r->task), "label", r->label, "features", r->feats,
		"params", r->params, "split", r->split, "search",
		json_object_get(r->spec, "search"), "timeout", r->timeout,
		"memory", r->memory, "uid", (int)r->ctx->uid, "gid",
		(int)r->ctx->gid, "schema", r->schema);
	r->feats = NULL; /* "o": the plan's, or gone with it */
	if (plan && r->tune)
		json_object_set_new(plan, "tune_plugin",
				    json_string(r->tune->path));
	if (plan && r->sets)
		json_object_set(plan, "feature_sets", r->sets);
	return plan;
}

int spec_resolve(struct fs *fs, const char *job, const char *text,
		 const struct fs_ctx *ctx, json_t **plan, struct problem *pb)
{
	/* in order: each step reads what the ones before it found */
	static int (*const steps[])(struct resolve *) = {
		resolve_fields,
		resolve_dataset_name,
		resolve_dataset_version,
		resolve_algorithm,
		resolve_label,
		resolve_task,
		resolve_features,
		resolve_feature_sets,
		resolve_params,
		resolve_model,
		resolve_limits,
	};
	struct resolve r = {
		.fs = fs,
		.job = job,
		.text = text,
		.ctx = ctx,
		.writer = { ctx->uid, ctx->gid, ctx->pid },
		.pb = pb,
	};
	json_error_t err;
	int rc = 0;

	*plan = NULL;
	r.spec = json_loads(text, JSON_REJECT_DUPLICATES, &err);
	if (!r.spec)
		return problem_set(pb, (unsigned)err.line,
				   (unsigned)err.column, "%s", err.text);
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		rc = steps[i](&r);
		if (rc < 0)
			goto out;
	}
	*plan = resolve_plan(&r);
	rc = *plan ? 0 : -ENOMEM;
out:
	json_decref(r.feats);
	json_decref(r.sets);
	json_decref(r.split);
	json_decref(r.man);
	json_decref(r.rec);
	json_decref(r.spec);
	return rc;
}

/* SPDX-License-Identifier: MIT */
/*
 * A model file and a struct fs for the serving fuzz targets (see
 * fuzz_model.h).  Single-threaded, as libFuzzer runs a target.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "config.h"
#include "repo.h"
#include "fixture_fs.h"
#include "fs.h"
#include "fuzz_model.h"
#include "hash.h"
#include "mlcore.h"
#include "plugin.h"
#include "predict.h"
#include "store.h"

static struct fs the_fs;
static void *model;
static size_t model_len;

/* 18 rows: the label follows x, with color and when as noise. */
static const char train_csv[] =
	"x,color,when,y\n"
	"0.1,red,2024-01-01,a\n1.2,blue,2024-01-02T10:00:00Z,b\n"
	"2.3,green,2024-01-03,c\n0.2,red,2024-02-01,a\n"
	"1.1,,2024-02-02,b\n2.2,blue,NA,c\n0.3,green,2024-03-01,a\n"
	"1.3,red,2024-03-02,b\n2.1,red,2024-03-03,c\n0.0,blue,2024-04-01,a\n"
	"1.0,green,2024-04-02,b\n2.4,green,2024-04-03,c\n"
	"0.4,red,2024-05-01,a\n1.4,blue,2024-05-02,b\n2.5,red,2024-05-03,c\n"
	"?,blue,2024-06-01,a\n1.5,green,2024-06-02,b\n2.6,blue,2024-06-03,c\n";

static void quiet_log(void *ctx, int level, const char *fmt, ...)
{
	(void)ctx;
	(void)level;
	(void)fmt;
}

static void quiet_progress(void *ctx, double fraction, const char *line)
{
	(void)ctx;
	(void)fraction;
	(void)line;
}

static void quiet_metric(void *ctx, const char *name, double value, long step)
{
	(void)ctx;
	(void)name;
	(void)value;
	(void)step;
}

static int never_cancelled(void *ctx)
{
	(void)ctx;
	return 0;
}

const struct mlfs_host fuzz_host = {
	sizeof(fuzz_host), NULL,	   quiet_log, quiet_progress,
	quiet_metric,	   never_cancelled, 1,		    NULL,
};

static _Noreturn void die(const char *what)
{
	fprintf(stderr, "fuzz_model: %s\n", what);
	exit(1);
}

struct fs *fuzz_fs(void)
{
	const struct fixture_fs_opts opts = { .quiet = true };

	if (the_fs.store)
		return &the_fs;
	if (fixture_fs_setup(&the_fs, &opts) < 0)
		die("fixture_fs_setup");
	if (served_cache_open(&the_fs) < 0)
		die("served_cache_open");
	if (plugin_load_dir(MLFS_BUILD_PLUGINDIR, &the_fs.plugins) < 0 ||
	    !plugin_find(the_fs.plugins, MLFS_STAGE_TRAIN, "logistic"))
		die("no logistic plugin in " MLFS_BUILD_PLUGINDIR);
	return &the_fs;
}

/* Features of every row of t, by fx, into a rows x width matrix. */
static float *features(const struct table *t, const struct fx *fx)
{
	float *x = calloc(t->nrows * fx->width, sizeof(*x));
	const char *f[4];
	size_t fl[4];

	if (!x)
		die("calloc");
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			f[c] = t->data + t->off[r * t->ncols + c];
			fl[c] = t->len[r * t->ncols + c];
		}
		if (fx_transform_row(fx, f, fl, t->ncols, NULL,
				     x + r * fx->width) < 0)
			die("fx_transform_row");
	}
	return x;
}

static void build(void)
{
	static const size_t feat[] = { 0, 1, 2 };
	static const char *const types[] = { "numeric", "categorical",
					     "time" };
	const struct plugin *pl;
	const struct mlfs_train_ops *ops;
	struct problem pb = { 0 };
	struct table *t;
	struct fx *fx;
	size_t rows[18];
	float y[18];
	char msg[256];
	void *inst;
	void *w;
	size_t wlen;
	json_t *hdr;

	pl = plugin_find(fuzz_fs()->plugins, MLFS_STAGE_TRAIN, "logistic");
	ops = pl->desc->ops;
	if (table_parse(train_csv, sizeof(train_csv) - 1, &t, &pb) < 0 ||
	    t->nrows != 18)
		die("table_parse");
	for (size_t r = 0; r < t->nrows; r++) {
		rows[r] = r;
		y[r] = (float)(t->data[t->off[r * t->ncols + 3]] - 'a');
	}
	if (fx_fit(t, feat, types, 3, rows, t->nrows, &fx, &pb) < 0)
		die("fx_fit");
	struct mlfs_data d = {
		.x = { features(t, fx), t->nrows, fx->width, fx->width },
		.y = y,
		.nclasses = 3,
	};
	struct mlfs_data val = { .x = { NULL, 0, fx->width, fx->width },
				 .nclasses = 3 };
	if (ops->init(&fuzz_host, MLFS_TASK_CLASSIFICATION,
		      NULL, 0, &inst, msg, sizeof(msg)) < 0 ||
	    ops->fit(inst, &d, &val, msg, sizeof(msg)) < 0 ||
	    ops->save(inst, &w, &wlen) < 0)
		die("training the logistic model");
	hdr = json_pack("{s:s, s:s, s:s, s:s, s:[sss], s:s, s:o, s:{}, "
			"s:[sss], s:I, s:b}",
			"plugin", "logistic", "plugin_version", "",
			"plugin_hash", pl->hash, "task", "classification",
			"classes", "a", "b", "c", "label", "y", "features",
			fx_to_json(fx), "params", "inputs", "x", "color",
			"when", "outputs", (json_int_t)ops->outputs(inst),
			"numeric_classes", 0);
	if (!hdr || model_encode(hdr, w, wlen, &model, &model_len) < 0)
		die("model_encode");
	json_decref(hdr);
	free(w);
	ops->fini(inst);
	free((void *)d.x.data);
	fx_free(fx);
	table_free(t);
}

void fuzz_model_file(const void **file, size_t *len)
{
	if (!model)
		build();
	*file = model;
	*len = model_len;
}

int fuzz_serve(const void *file, size_t len, struct served **out)
{
	char hash[HASH_HEX_LEN + 1];
	char key[128];
	char msg[256];
	int rc;

	served_cache_clear(fuzz_fs());
	hash_hex(file, len, hash);
	repo_blob_key(hash, key, sizeof(key));
	rc = store_put(fuzz_fs()->store, key, file, len);
	if (rc < 0)
		return rc;
	rc = served_get(fuzz_fs(), hash, out, msg, sizeof(msg));
	store_del(fuzz_fs()->store, key);
	return rc;
}

/* SPDX-License-Identifier: MIT */
/*
 * The pictures of modelplot.h.  The cache key names the blobs a picture
 * is drawn from, and the model and version its title names, so a name
 * reused after rmdir never finds the old picture.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "mlcore.h"
#include "mlfs_plugin.h"
#include "modelplot.h"
#include "plot.h"
#include "plotcache.h"
#include "repo.h"
#include "store.h"
#include "strbuf.h"

#define PLOT_JSON_MAX ((size_t)64 << 20) /* bytes of a file drawn from */

#define MPLOT_NAME(id, name) name,
const char *const mplot_names[MPLOT_N] = { MODEL_PLOTS(MPLOT_NAME) };
#undef MPLOT_NAME

/* What each picture is called in its title. */
static const char *const mplot_what[MPLOT_N] = {
	"learning curves", "ROC curves", "confusion matrix", "residuals",
	"clusters",
};

static const char *file_hash(json_t *man, const char *file)
{
	return json_string_value(json_object_get(
		json_object_get(json_object_get(man, "files"), file), "hash"));
}

/* In a cache key: the file's hash, or "-" when the version has none. */
static const char *hash_shown(json_t *man, enum model_file f)
{
	const char *h = file_hash(man, model_files[f]);

	return h ? h : "-";
}

unsigned mplot_has(json_t *man)
{
	const char *task = json_string_value(json_object_get(man, "task"));
	bool eval = file_hash(man, model_files[MODEL_FILE_EVALUATION]);
	unsigned t = model_task(task), has = 0;

	if (eval)
		has |= 1u << MPLOT_LEARNING;
	if (t == MLFS_TASK_CLASSIFICATION) {
		has |= 1u << MPLOT_CONFUSION;
		if (eval)
			has |= 1u << MPLOT_ROC;
	}
	if (eval && t == MLFS_TASK_REGRESSION)
		has |= 1u << MPLOT_RESIDUALS;
	if (eval && t == MLFS_TASK_CLUSTERING)
		has |= 1u << MPLOT_CLUSTERS;
	return has;
}

/* The version's file, parsed (new reference in *out). */
static int json_blob(struct fs *fs, json_t *man, const char *file, uid_t uid,
		     const char *path, json_t **out)
{
	return repo_file_json(fs, man, file, PLOT_JSON_MAX, uid, path, out);
}

/* Draw p of the version man from its blobs, into out. */
static int draw(struct fs *fs, json_t *man, enum mplot p, const char *title,
		uid_t uid, const char *path, struct strbuf *out)
{
	json_t *a = NULL, *b = NULL;
	int rc;

	if (p == MPLOT_CONFUSION) {
		rc = json_blob(fs, man, model_files[MODEL_FILE_METRICS], uid,
			       path, &a);
		if (rc == 0)
			rc = json_blob(fs, man, model_files[MODEL_FILE_META],
				       uid, path, &b);
		if (rc == 0)
			rc = plot_confusion(out, title,
					    json_object_get(a, "confusion_matrix"),
					    json_object_get(b, "classes"));
	} else {
		rc = json_blob(fs, man, model_files[MODEL_FILE_EVALUATION], uid,
			       path, &a);
		if (rc == 0 && p == MPLOT_LEARNING)
			rc = plot_learning(out, title,
					   json_object_get(a, "curves"));
		else if (rc == 0 && p == MPLOT_ROC)
			rc = plot_roc(out, title, a);
		else if (rc == 0 && p == MPLOT_CLUSTERS)
			rc = plot_clusters(out, title, a);
		else if (rc == 0) {
			rc = json_blob(fs, man, model_files[MODEL_FILE_META],
				       uid, path, &b);
			if (rc == 0)
				rc = plot_residuals(
					out, title, a,
					json_string_value(
						json_object_get(b, "label")));
		}
	}
	json_decref(a);
	json_decref(b);
	return rc == -EINVAL ? -EIO : rc; /* a version's data, not the caller's */
}

int mplot_make(struct fs *fs, const char *model, unsigned ver, enum mplot p,
	       uid_t uid, const char *path, char **out, size_t *len)
{
	struct strbuf sb = { 0 };
	char key[600], title[400];
	json_t *man;
	const char *algo;
	int rc;

	*out = NULL;
	rc = repo_version(fs, &repo_models, model, ver, &man);
	if (rc < 0)
		return rc;
	if (!(mplot_has(man) & (1u << p))) {
		json_decref(man);
		return -ENOENT;
	}
	snprintf(key, sizeof(key), "models/%s/v%u/%s %s %s %s", model, ver,
		 mplot_names[p],
		 hash_shown(man, MODEL_FILE_EVALUATION),
		 hash_shown(man, MODEL_FILE_METRICS),
		 hash_shown(man, MODEL_FILE_META));
	if (!plot_cache_get(fs, key, 0, &sb)) {
		algo = json_string_value(json_object_get(man, "algorithm"));
		snprintf(title, sizeof(title), "%s v%u: %s (%s)", model, ver,
			 mplot_what[p], algo ? algo : "imported");
		rc = draw(fs, man, p, title, uid, path, &sb);
		if (rc == 0 && sb.err == 0)
			plot_cache_put(fs, key, sb.buf, sb.len, 0);
	}
	json_decref(man);
	rc = rc ? rc : sb.err;
	if (rc < 0) {
		sb_free(&sb);
		return rc;
	}
	*out = sb.buf ? sb.buf : strdup("");
	*len = sb.len;
	return *out ? 0 : -ENOMEM;
}

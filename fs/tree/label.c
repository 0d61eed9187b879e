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
 *   label/model   a classifier ("m", "m@3") whose doubt orders the queue:
 *                 the highest entropy of its probabilities first (active
 *                 learning); an empty line clears it
 *   label/answers `key,label` lines, judged in the write that carries
 *                 them; a handle publishes one version at close
 *                 (labeling.h says what is refused, and why)
 *
 * queue and stats are made from the version's data when opened
 * (attribute files: a snapshot a reader sees whole).  Any FUSE worker
 * enters.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "fs.h"
#include "hostfile.h"
#include "jsonout.h"
#include "label.h"
#include "labeling.h"
#include "lines.h"
#include "mlcore.h"
#include "objects.h"
#include "repo.h"

static const char *field(const struct table *t, size_t r, size_t c,
			 size_t *len)
{
	*len = t->len[r * t->ncols + c];
	return t->data + t->off[r * t->ncols + c];
}

/* The dataset's label model, or NULL (caller frees). */
static char *model_ref(struct node *n)
{
	json_t *rec;
	char *ref = NULL;
	const char *m;

	if (repo_get(n->fs, &repo_datasets, obj_name(n), &rec) < 0)
		return NULL;
	m = json_string_value(json_object_get(rec, "label_model"));
	if (m)
		ref = strdup(m);
	json_decref(rec);
	return ref;
}

/* msg in .mlfs/errors, for the dataset's owner (show has no caller). */
static void say(struct node *n, const char *msg)
{
	struct problem pb = { 0 };
	struct stat st = { 0 };

	obj_attr(n, &st, false);
	snprintf(pb.path, sizeof(pb.path), "%s", n->path);
	problem_set(&pb, 0, 0, "%s", msg);
	fs_problem(n->fs, st.st_uid, &pb);
}

static int queue_show(struct node *n, struct strbuf *out)
{
	struct label_view v;
	char *ref, why[300] = "";
	size_t len, *rows = NULL, nq = 0;
	const struct table *t;
	int rc = label_view_load(n->fs, obj_name(n), 0, &v);

	if (rc == -ENODATA)
		return 0;
	if (rc < 0)
		return rc;
	t = v.t;
	if (v.lab < 0)
		goto out; /* no label column: nothing to label */
	rows = malloc((t->nrows ? t->nrows : 1) * sizeof(*rows));
	if (!rows) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t r = 0; r < t->nrows; r++)
		if (label_view_unlabelled(&v, r))
			rows[nq++] = r;
	ref = model_ref(n);
	if (ref)
		rc = label_order(n->fs, ref, &v, rows, nq, why, sizeof(why));
	free(ref);
	if (rc < 0) {
		say(n, why);
		goto out;
	}
	sb_puts(out, "key");
	for (size_t c = 0; c < t->ncols; c++) {
		if ((long)c == v.lab || (long)c == v.id)
			continue;
		sb_puts(out, ",");
		sb_csv_field(out, t->names[c], strlen(t->names[c]));
	}
	sb_puts(out, "\n");
	for (size_t i = 0; i < nq && !out->err; i++) {
		size_t r = rows[i];
		const char *f;

		if (v.id >= 0) {
			f = field(t, r, (size_t)v.id, &len);
			sb_csv_field(out, f, len);
		} else {
			sb_printf(out, "v%u:%zu", v.ver, r + 1);
		}
		for (size_t c = 0; c < t->ncols; c++) {
			if ((long)c == v.lab || (long)c == v.id)
				continue;
			sb_puts(out, ",");
			f = field(t, r, c, &len);
			sb_csv_field(out, f, len);
		}
		sb_puts(out, "\n");
	}
	rc = out->err;
out:
	free(rows);
	label_view_free(&v);
	return rc;
}

static int stats_show(struct node *n, struct strbuf *out)
{
	struct label_view v;
	size_t todo = 0;
	int rc = label_view_load(n->fs, obj_name(n), 0, &v);

	if (rc == -ENODATA)
		return sb_puts(out, "{\"version\": null}\n");
	if (rc < 0)
		return rc;
	for (size_t r = 0; v.lab >= 0 && r < v.t->nrows; r++)
		todo += label_view_unlabelled(&v, r);
	sb_printf(out, "{\"version\": %u, \"label\": ", v.ver);
	if (v.lab >= 0)
		sb_json_string(out, v.t->names[v.lab],
			       strlen(v.t->names[v.lab]));
	else
		sb_puts(out, "null");
	sb_printf(out, ", \"rows\": %zu, \"labelled\": %zu, \"unlabelled\": "
		       "%zu}\n",
		  v.t->nrows, v.lab >= 0 ? v.t->nrows - todo : 0, todo);
	label_view_free(&v);
	return out->err;
}

/* --- model: the classifier whose doubt orders the queue --- */

static int model_show(struct node *n, struct strbuf *out)
{
	char *ref = model_ref(n);

	if (!ref)
		return 0;
	sb_printf(out, "%s\n", ref);
	free(ref);
	return out->err;
}

/* The reference written (one line), trimmed into ref. */
static int model_text(const char *text, size_t len, char *ref,
		      size_t reflen, struct problem *pb)
{
	while (len && (text[len - 1] == '\n' || text[len - 1] == ' '))
		len--;
	while (len && *text == ' ') {
		text++;
		len--;
	}
	if (memchr(text, '\n', len))
		return problem_set(pb, 2, 1, "one model reference, one line");
	if (len >= reflen)
		return problem_set(pb, 1, 1, "a reference too long");
	memcpy(ref, text, len);
	ref[len] = '\0';
	return 0;
}

static int model_judge(struct node *n, const char *text, size_t len,
		       const struct fs_ctx *ctx, bool store,
		       struct problem *pb)
{
	char ref[2 * NAME_MAX + 8], why[300] = "";
	struct host_user u = { ctx->uid, ctx->gid, ctx->pid };
	int rc;

	if (!store && !memchr(text, '\n', len))
		return 0; /* judged once the line is whole, or at close */
	rc = model_text(text, len, ref, sizeof(ref), pb);
	if (rc < 0)
		return rc;
	/* the queue's order is the dataset's: its writers set it */
	rc = repo_may(n->fs, &repo_datasets, obj_name(n), &u, W_OK | X_OK);
	if (rc == 0 && ref[0])
		rc = label_model_check(n->fs, ref, ctx, why, sizeof(why));
	if (rc < 0 && why[0])
		problem_set(pb, 1, 1, "%s", why);
	if (rc < 0 || !store)
		return rc;
	return repo_record_set(n->fs, &repo_datasets, obj_name(n),
			       "label_model", ref[0] ? json_string(ref) : NULL);
}

static int model_check(struct node *n, const char *text, size_t len,
		       const struct fs_ctx *ctx, struct problem *pb)
{
	return model_judge(n, text, len, ctx, false, pb);
}

static int model_store(struct node *n, const char *text, size_t len,
		       const struct fs_ctx *ctx, struct problem *pb)
{
	return model_judge(n, text, len, ctx, true, pb);
}

/* --- answers: key,label lines, one version a handle --- */

struct ahandle {
	struct label_batch *b;
	uint64_t line; /* lines taken so far */
};

static int answers_take(struct fs_file *f, void *st, const char *text,
			size_t len, bool final, size_t *used,
			struct problem *pb)
{
	struct ahandle *h = st;
	const char *end = final ? text + len : memrchr(text, '\n', len);
	uint64_t lines = 0;
	int rc;

	(void)f;
	*used = 0;
	if (!end || !len)
		return 0;
	*used = (size_t)(end - text) + (!final);
	for (size_t i = 0; i < *used; i++)
		lines += text[i] == '\n';
	rc = label_batch_add(h->b, text, (size_t)(end - text), h->line + 1,
			     pb);
	if (rc < 0) {
		*used = 0;
		return rc;
	}
	h->line += lines + (final && !lines);
	return 0;
}

static unsigned answers_next_line(void *st)
{
	return (unsigned)((struct ahandle *)st)->line + 1;
}

static void answers_free(void *st)
{
	struct ahandle *h = st;

	label_batch_free(h->b);
	free(h);
}

static int answers_commit(struct fs_file *f, void *st,
			  const struct fs_ctx *ctx, struct problem *pb)
{
	struct ahandle *h = st;
	unsigned ver;
	int rc = label_batch_publish(h->b, ctx, &ver, pb);

	if (rc == 0 && ver)
		fs_log(f->node->fs, 6, "datasets/%s: labels made v%u",
		       obj_name(f->node), ver);
	return rc;
}

static const struct lines_ops answers_ops = { answers_take,
					      answers_next_line, answers_free,
					      answers_commit };

static int answers_open(struct fs_file *f, const struct fs_ctx *ctx)
{
	struct host_user u = { ctx->uid, ctx->gid, ctx->pid };
	struct node *n = f->node;
	struct ahandle *h;
	int rc;

	if ((f->flags & O_ACCMODE) == O_RDONLY)
		return 0; /* reads find nothing */
	/* labels change the dataset: its writers give them */
	rc = repo_may(n->fs, &repo_datasets, obj_name(n), &u, W_OK | X_OK);
	if (rc < 0)
		return rc;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	rc = label_batch_new(n->fs, obj_name(n), &h->b);
	if (rc < 0) {
		free(h);
		return rc;
	}
	return lines_open(f, &answers_ops, h);
}

static int answers_read(struct fs_file *f, size_t size, off_t off,
			struct fs_reply *r)
{
	return f->priv ? lines_read(f, size, off, r)
		       : fs_reply_buf(r, NULL, 0);
}

static ssize_t answers_write(struct fs_file *f, const char *buf, size_t size,
			     off_t off)
{
	return f->priv ? lines_write(f, buf, size, off) : -EBADF;
}

static int answers_flush(struct fs_file *f, const struct fs_ctx *ctx,
			 struct problem *pb)
{
	return f->priv ? lines_flush(f, ctx, pb) : 0;
}

static int answers_getattr(struct node *n, struct stat *st)
{
	int rc = obj_attr(n, st, false);

	st->st_size = 0;
	return rc;
}

/*
 * answers and model are 0666: who may write them is the dataset's mode
 * (its writers), judged at open and in check, as prepare's spec is.
 */
const struct node_type label_files[] = {
	{ "queue", S_IFREG | 0444, 0, .show = queue_show,
	  .getattr = obj_file_getattr },
	{ "stats", S_IFREG | 0444, 0, .show = stats_show,
	  .getattr = obj_file_getattr },
	{ "answers", S_IFREG | 0666, NODE_F_STREAM, .open = answers_open,
	  .read = answers_read, .write = answers_write,
	  .truncate = lines_truncate, .flush = answers_flush,
	  .release = lines_release, .getattr = answers_getattr },
	{ "model", S_IFREG | 0666, 0, .show = model_show,
	  .check = model_check, .store = model_store,
	  .getattr = obj_file_getattr },
	{ NULL },
};

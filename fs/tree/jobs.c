/* SPDX-License-Identifier: MIT */
/*
 * train/ and jobs/: the node tables of training.  Writing
 * train/<job>.json checks the spec as it arrives and, on the first flush
 * that carries a complete, valid spec, starts job <job>; jobs/<job>/ shows
 * it.  The runner (runner.c) does the work; any FUSE worker enters here.
 *
 *   train/<job>.json       write a spec (create); read it back
 *   jobs/<job>/            rmdir removes a job that has ended
 *     spec status progress ctl       attribute files
 *     log metrics split              streams (tail -f follows them)
 *     wait                           blocks until the job ends
 *     trials/<n> trials.svg          a search's trials, and drawn
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "fs.h"
#include "jobs.h"
#include "jsonout.h"
#include "mlcore.h"
#include "plot.h"
#include "runner.h"
#include "spec.h"

/* node->comp[1] is the job (jobs/<job>/...) */
static const char *node_job(struct node *n)
{
	return n->depth > 1 ? n->comp[1] : "";
}

static struct job *get_job(struct node *n)
{
	struct job *j;

	return job_get(n->fs, node_job(n), &j) == 0 ? j : NULL;
}

/* --- train/ and batch/: a spec written starts a job --- */

/* What a directory of specs does with one (resolve: judge it as written;
 * submit: start the job). */
struct spec_dir {
	const char *dir;
	int (*resolve)(struct fs *fs, const char *job, const char *text,
		       const struct fs_ctx *ctx, json_t **plan,
		       struct problem *pb);
	int (*submit)(struct fs *fs, const char *name, const char *text,
		      const struct fs_ctx *ctx, struct problem *pb);
	const char *kind; /* the jobs it lists; NULL: all */
};

static const struct spec_dir spec_dirs[] = {
	{ "train", spec_resolve, job_submit, NULL },
	{ "batch", batch_resolve, batch_submit, "batch" },
};

/* The spec directory n is in (or is). */
static const struct spec_dir *spec_dir_of(const struct node *n)
{
	for (size_t i = 1; i < sizeof(spec_dirs) / sizeof(spec_dirs[0]); i++)
		if (n->depth > 0 && strcmp(n->comp[0], spec_dirs[i].dir) == 0)
			return &spec_dirs[i];
	return &spec_dirs[0];
}

/* "<job>.json" -> job; false if not of that shape. */
static bool spec_name(const char *name, char *job, size_t len)
{
	size_t n = strlen(name);

	if (n <= 5 || strcmp(name + n - 5, ".json") != 0 || n - 5 >= len)
		return false;
	memcpy(job, name, n - 5);
	job[n - 5] = '\0';
	return true;
}

struct spec_handle {
	char job[256];
	bool pending; /* we added the pending entry */
};

static int spec_open(struct fs_file *f, const struct fs_ctx *ctx)
{
	char job[256];
	struct job *j;
	json_t *rec;

	(void)ctx;
	if ((f->flags & O_ACCMODE) != O_RDONLY)
		return -EEXIST; /* a job name is used once */
	if (!spec_name(f->node->name, job, sizeof(job)) ||
	    job_get(f->node->fs, job, &j) < 0)
		return -ENOENT;
	rec = job_record(j);
	job_put(j);
	f->snap = json_dumps(json_object_get(rec, "spec"),
			     JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(rec);
	if (!f->snap)
		return -ENOMEM;
	f->snap_len = strlen(f->snap);
	f->direct_io = true;
	return 0;
}

static int spec_read(struct fs_file *f, size_t size, off_t off,
		     struct fs_reply *r)
{
	if (!f->snap || (size_t)off >= f->snap_len)
		return fs_reply_buf(r, NULL, 0);
	if (size > f->snap_len - (size_t)off)
		size = f->snap_len - (size_t)off;
	return fs_reply_buf(r, f->snap + off, size);
}

static ssize_t spec_write(struct fs_file *f, const char *buf, size_t size,
			  off_t off)
{
	struct spec_handle *h = f->priv;
	struct problem pb = { 0 };
	size_t end = (size_t)off + size;
	char *nb;
	int rc;

	if (!h)
		return -EBADF;
	if (f->flags & O_APPEND)
		off = (off_t)f->wlen, end = f->wlen + size;
	if (end > SPEC_MAX)
		return -EFBIG;
	if (end > f->wcap) {
		nb = realloc(f->wbuf, end + 1);
		if (!nb)
			return -ENOMEM;
		f->wbuf = nb;
		f->wcap = end;
	}
	if ((size_t)off > f->wlen)
		memset(f->wbuf + f->wlen, ' ', (size_t)off - f->wlen);
	memcpy(f->wbuf + off, buf, size);
	if (end > f->wlen)
		f->wlen = end;
	f->gen++;
	/* Check as far as the bytes so far allow: a bad spec fails the
	 * write itself, the only error `echo ... >` reports. */
	snprintf(pb.path, sizeof(pb.path), "%s/%s.json",
		 spec_dir_of(f->node)->dir, h->job);
	rc = spec_check_text(f->wbuf, f->wlen, false, &pb);
	if (rc == 0) {
		json_t *j = json_loadb(f->wbuf, f->wlen, 0, NULL);

		/* complete: check it against the platform too */
		if (j) {
			json_t *plan = NULL;
			struct fs_ctx ctx = { f->uid, f->gid, f->pid, 0, NULL };
			char *text = strndup(f->wbuf, f->wlen);

			rc = text ? spec_dir_of(f->node)->resolve(
					    f->node->fs, h->job, text, &ctx,
					    &plan, &pb)
				  : -ENOMEM;
			free(text);
			json_decref(plan);
			json_decref(j);
		}
	}
	if (rc < 0) {
		if (pb.msg[0])
			fs_problem(f->node->fs, f->uid, &pb);
		f->committed = f->gen; /* reported: close adds nothing */
		f->wlen = 0;
		return rc;
	}
	return (ssize_t)size;
}

static int spec_flush(struct fs_file *f, const struct fs_ctx *ctx,
		      struct problem *pb)
{
	struct spec_handle *h = f->priv;
	char *text;
	int rc;

	if (!h || f->gen == f->committed)
		return 0;
	rc = spec_check_text(f->wbuf, f->wlen, true, pb);
	if (rc < 0)
		return rc;
	text = strndup(f->wbuf, f->wlen);
	if (!text)
		return -ENOMEM;
	rc = spec_dir_of(f->node)->submit(f->node->fs, h->job, text, ctx, pb);
	free(text);
	if (rc == 0)
		f->committed = f->gen;
	return rc;
}

static void spec_release(struct fs_file *f)
{
	struct spec_handle *h = f->priv;

	if (!h)
		return;
	if (h->pending && f->node)
		job_pending_del(f->node->fs, h->job);
	free(h);
	f->priv = NULL;
}

static int spec_getattr(struct node *n, struct stat *st)
{
	char job[256];
	struct job *j;
	json_t *rec;
	char *text;

	st->st_size = 0;
	if (!spec_name(n->name, job, sizeof(job)) ||
	    job_get(n->fs, job, &j) < 0)
		return 0; /* being written */
	rec = job_record(j);
	job_put(j);
	text = json_dumps(json_object_get(rec, "spec"),
			  JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	st->st_size = text ? (off_t)strlen(text) : 0;
	st->st_uid = (uid_t)json_integer_value(json_object_get(rec, "uid"));
	st->st_gid = (gid_t)json_integer_value(json_object_get(rec, "gid"));
	free(text);
	json_decref(rec);
	return 0;
}

static const struct node_type spec_type = {
	NULL, S_IFREG | 0644, NODE_F_VOLATILE, .open = spec_open,
	.read = spec_read, .write = spec_write, .flush = spec_flush,
	.release = spec_release, .getattr = spec_getattr,
};

static int train_lookup(struct node *dir, const char *name,
			const struct node_type **type)
{
	char job[256];

	if (!spec_name(name, job, sizeof(job)))
		return -ENOENT;
	if (!job_exists(dir->fs, job) && !job_pending(dir->fs, job))
		return -ENOENT;
	*type = &spec_type;
	return 0;
}

struct fill_arg {
	node_fill_fn fill;
	void *ctx;
	const struct node_type *type;
	const char *suffix;
	const char *kind; /* only jobs of this kind; NULL: all */
	struct fs *fs;
};

/* Is job name of kind? */
static bool job_is(struct fs *fs, const char *name, const char *kind)
{
	struct job *j;
	json_t *rec;
	bool is;

	if (job_get(fs, name, &j) < 0)
		return false;
	rec = job_record(j);
	job_put(j);
	is = json_string_value(json_object_get(rec, "kind")) &&
	     strcmp(json_string_value(json_object_get(rec, "kind")), kind) ==
		     0;
	json_decref(rec);
	return is;
}

static int fill_job(void *arg, const char *name)
{
	struct fill_arg *fa = arg;
	char buf[300];

	if (fa->kind && !job_is(fa->fs, name, fa->kind))
		return 0;

	snprintf(buf, sizeof(buf), "%s%s", name, fa->suffix);
	return fa->fill(fa->ctx, buf, fa->type);
}

static int train_list(struct node *dir, node_fill_fn fill, void *ctx)
{
	struct fill_arg fa = { fill, ctx, &spec_type, ".json",
			       spec_dir_of(dir)->kind, dir->fs };

	return job_list(dir->fs, fill_job, &fa);
}

static int train_create(struct node *dir, const char *name, struct fs_file *f,
			const struct fs_ctx *ctx)
{
	struct spec_handle *h;
	struct problem pb = { 0 };
	char job[256];
	int rc;

	snprintf(pb.path, sizeof(pb.path), "%s/%s", spec_dir_of(dir)->dir,
		 name);
	if (!spec_name(name, job, sizeof(job))) {
		problem_set(&pb, 0, 0, "a spec is named <job>.json");
		fs_problem(dir->fs, ctx->uid, &pb);
		return -EINVAL;
	}
	rc = node_name_check(job, &pb);
	if (rc < 0) {
		fs_problem(dir->fs, ctx->uid, &pb);
		return rc;
	}
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	snprintf(h->job, sizeof(h->job), "%s", job);
	rc = job_pending_add(dir->fs, job);
	if (rc < 0) {
		free(h);
		return rc;
	}
	h->pending = true;
	f->priv = h;
	f->direct_io = true;
	return 0;
}

const struct node_type train_type = {
	"train", S_IFDIR | 01777, NODE_F_DYNAMIC, .lookup = train_lookup,
	.list = train_list, .create = train_create,
};

const struct node_type batch_type = {
	"batch", S_IFDIR | 01777, NODE_F_DYNAMIC, .lookup = train_lookup,
	.list = train_list, .create = train_create,
};

/* --- jobs/<job>/ --- */

static int job_attr(struct node *n, struct stat *st)
{
	struct job *j = get_job(n);
	json_t *rec;

	if (!j)
		return -ENOENT;
	rec = job_record(j);
	job_put(j);
	st->st_uid = (uid_t)json_integer_value(json_object_get(rec, "uid"));
	st->st_gid = (gid_t)json_integer_value(json_object_get(rec, "gid"));
	json_decref(rec);
	return 0;
}

static int status_show(struct node *n, struct strbuf *out)
{
	struct job *j = get_job(n);
	int rc;

	if (!j)
		return -ENOENT;
	rc = job_status(j, out);
	job_put(j);
	return rc;
}

static int jspec_show(struct node *n, struct strbuf *out)
{
	struct job *j = get_job(n);
	json_t *rec;
	char *text;
	int rc;

	if (!j)
		return -ENOENT;
	rec = job_record(j);
	job_put(j);
	text = json_dumps(json_object_get(rec, "spec"),
			  JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(rec);
	if (!text)
		return -ENOMEM;
	rc = sb_printf(out, "%s\n", text);
	free(text);
	return rc;
}

static int progress_show(struct node *n, struct strbuf *out)
{
	struct job *j = get_job(n);
	char buf[1024];
	ssize_t len;
	json_t *rec;
	int rc;

	if (!j)
		return -ENOENT;
	if (!job_has_ended(j)) {
		len = job_file_read(j, "progress", buf, sizeof(buf) - 1, 0);
		job_put(j);
		if (len <= 0)
			return sb_puts(out, "0% waiting to start\n");
		buf[len] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		return sb_printf(out, "%s\n", buf);
	}
	rec = job_record(j);
	job_put(j);
	rc = sb_printf(out, "%s\n",
		       json_string_value(json_object_get(rec, "progress"))
			       ? json_string_value(
					 json_object_get(rec, "progress"))
			       : "");
	json_decref(rec);
	return rc;
}

static int ctl_show(struct node *n, struct strbuf *out)
{
	(void)n;
	return sb_puts(out, "cancel\n");
}

static int ctl_store(struct node *n, const char *text, size_t len,
		     const struct fs_ctx *ctx, struct problem *pb)
{
	struct job *j;
	int rc;

	(void)ctx;
	while (len && (text[len - 1] == '\n' || text[len - 1] == ' '))
		len--;
	if (len != 6 || strncmp(text, "cancel", 6) != 0)
		return problem_set(pb, 1, 1,
				   "unknown command \"%.*s\" (commands: cancel)",
				   (int)(len > 64 ? 64 : len), text);
	j = get_job(n);
	if (!j)
		return -ENOENT;
	rc = job_cancel(j);
	job_put(j);
	if (rc == -EINVAL)
		return problem_set(pb, 1, 1, "the job has already ended");
	return rc;
}

/* log, metrics, split: streams read from the runner */
static int stream_open(struct fs_file *f, const struct fs_ctx *ctx)
{
	(void)ctx;
	if ((f->flags & O_ACCMODE) != O_RDONLY)
		return -EACCES;
	f->priv = get_job(f->node);
	if (!f->priv)
		return -ENOENT;
	f->direct_io = true;
	return 0;
}

static int stream_read(struct fs_file *f, size_t size, off_t off,
		       struct fs_reply *r)
{
	char *buf = malloc(size ? size : 1);
	ssize_t n;

	if (!buf)
		return -ENOMEM;
	n = job_file_read(f->priv, f->node->name, buf, size, off);
	if (n < 0) {
		free(buf);
		return (int)n;
	}
	fs_reply_buf(r, buf, (size_t)n);
	free(buf);
	return 0;
}

static void stream_release(struct fs_file *f)
{
	job_put(f->priv);
}

static int stream_getattr(struct node *n, struct stat *st)
{
	struct job *j = get_job(n);
	int rc = job_attr(n, st);

	if (!j)
		return -ENOENT;
	st->st_size = (off_t)job_file_size(j, n->name);
	job_put(j);
	return rc;
}

static int wait_open(struct fs_file *f, const struct fs_ctx *ctx)
{
	(void)ctx;
	if ((f->flags & O_ACCMODE) != O_RDONLY)
		return -EACCES;
	f->priv = get_job(f->node);
	if (!f->priv)
		return -ENOENT;
	f->direct_io = true;
	return 0;
}

static int wait_read(struct fs_file *f, size_t size, off_t off,
		     struct fs_reply *r)
{
	return job_wait(f->priv, size, off, r);
}

/* trials/<n>: each search trial's params, status and metrics */
static long node_trial(struct node *n)
{
	char *end;
	long t;

	if (n->depth < 4)
		return -1;
	t = strtol(n->comp[3], &end, 10);
	return *end || n->comp[3][0] == '\0' ? -1 : t;
}

static int trial_show(struct node *n, struct strbuf *out)
{
	struct job *j = get_job(n);
	json_t *trials, *t;
	char *text;
	int rc;

	if (!j)
		return -ENOENT;
	trials = job_trials(j);
	job_put(j);
	t = json_array_get(trials, (size_t)node_trial(n));
	if (!t) {
		json_decref(trials);
		return -ENOENT;
	}
	text = json_dumps_short(t, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(trials);
	if (!text)
		return -ENOMEM;
	rc = sb_printf(out, "%s\n", text);
	free(text);
	return rc;
}

static const struct node_type trial_type = {
	NULL, S_IFREG | 0444, 0, .show = trial_show, .getattr = job_attr,
};

static int trials_lookup(struct node *dir, const char *name,
			 const struct node_type **type)
{
	struct job *j = get_job(dir);
	json_t *trials;
	char *end;
	long t = strtol(name, &end, 10);
	bool found;

	if (!j || *end || !name[0] || t < 0 || (name[0] == '0' && name[1])) {
		job_put(j);
		return -ENOENT;
	}
	trials = job_trials(j);
	job_put(j);
	found = (size_t)t < json_array_size(trials);
	json_decref(trials);
	if (!found)
		return -ENOENT;
	*type = &trial_type;
	return 0;
}

static int trials_list(struct node *dir, node_fill_fn fill, void *ctx)
{
	struct job *j = get_job(dir);
	json_t *trials;
	size_t n;

	if (!j)
		return -ENOENT;
	trials = job_trials(j);
	job_put(j);
	n = json_array_size(trials);
	json_decref(trials);
	for (size_t i = 0; i < n; i++) {
		char name[24];

		snprintf(name, sizeof(name), "%zu", i);
		if (fill(ctx, name, &trial_type))
			break;
	}
	return 0;
}

static int trials_getattr(struct node *n, struct stat *st)
{
	return job_attr(n, st);
}

/* trials.svg: a search's trials drawn (plot.c), when the job is one */
static int trials_svg_show(struct node *n, struct strbuf *out)
{
	struct job *j = get_job(n);
	json_t *rec, *trials, *search;
	const char *metric, *goal, *method, *algo;
	char title[400];
	int rc;

	if (!j)
		return -ENOENT;
	rec = job_record(j);
	trials = job_trials(j);
	job_put(j);
	search = json_object_get(json_object_get(rec, "spec"), "search");
	metric = json_string_value(json_object_get(search, "metric"));
	goal = json_string_value(json_object_get(search, "goal"));
	method = json_string_value(json_object_get(search, "method"));
	algo = json_string_value(
		json_object_get(json_object_get(rec, "spec"), "algorithm"));
	if (!metric)
		metric = metric_default(model_task(json_string_value(
			json_object_get(rec, "task"))));
	snprintf(title, sizeof(title), "%s: search trials (%s, %s)",
		 node_job(n), method ? method : "search", algo ? algo : "");
	rc = plot_trials(out, title, trials, metric,
			 goal ? strcmp(goal, "maximize") == 0
			      : metric_maximize(metric));
	json_decref(trials);
	json_decref(rec);
	return rc;
}

static const struct node_type trials_svg_type = {
	"trials.svg", S_IFREG | 0444, 0, .show = trials_svg_show,
	.getattr = job_attr,
};

/* Is the job behind dir a search? */
static bool job_searches(struct node *dir)
{
	struct job *j = get_job(dir);
	json_t *rec;
	bool yes;

	if (!j)
		return false;
	rec = job_record(j);
	job_put(j);
	yes = json_is_object(
		json_object_get(json_object_get(rec, "spec"), "search"));
	json_decref(rec);
	return yes;
}

static int job_dir_lookup(struct node *dir, const char *name,
			  const struct node_type **type)
{
	if (strcmp(name, trials_svg_type.name) != 0 || !job_searches(dir))
		return -ENOENT;
	*type = &trials_svg_type;
	return 0;
}

static int job_dir_list(struct node *dir, node_fill_fn fill, void *ctx)
{
	if (job_searches(dir))
		fill(ctx, trials_svg_type.name, &trials_svg_type);
	return 0;
}

static const struct node_type job_files[] = {
	{ "spec", S_IFREG | 0444, 0, .show = jspec_show, .getattr = job_attr },
	{ "status", S_IFREG | 0444, 0, .show = status_show,
	  .getattr = job_attr },
	{ "progress", S_IFREG | 0444, 0, .show = progress_show,
	  .getattr = job_attr },
	{ "log", S_IFREG | 0444, NODE_F_STREAM, .open = stream_open,
	  .read = stream_read, .release = stream_release,
	  .getattr = stream_getattr },
	{ "metrics", S_IFREG | 0444, NODE_F_STREAM, .open = stream_open,
	  .read = stream_read, .release = stream_release,
	  .getattr = stream_getattr },
	{ "split", S_IFREG | 0444, NODE_F_STREAM, .open = stream_open,
	  .read = stream_read, .release = stream_release,
	  .getattr = stream_getattr },
	{ "wait", S_IFREG | 0444, NODE_F_STREAM, .open = wait_open,
	  .read = wait_read, .release = stream_release, .getattr = job_attr },
	{ "ctl", S_IFREG | 0644, 0, .show = ctl_show, .store = ctl_store,
	  .getattr = job_attr },
	{ "trials", S_IFDIR | 0555, NODE_F_DYNAMIC, .lookup = trials_lookup,
	  .list = trials_list, .getattr = trials_getattr },
	{ NULL },
};

static int job_dir_getattr(struct node *n, struct stat *st)
{
	return job_attr(n, st);
}

static const struct node_type job_type = {
	NULL, S_IFDIR | 0755, 0, .children = job_files,
	.lookup = job_dir_lookup, .list = job_dir_list, .getattr = job_dir_getattr,
};

static int jobs_lookup(struct node *dir, const char *name,
		       const struct node_type **type)
{
	if (!job_exists(dir->fs, name))
		return -ENOENT;
	*type = &job_type;
	return 0;
}

static int jobs_list(struct node *dir, node_fill_fn fill, void *ctx)
{
	struct fill_arg fa = { fill, ctx, &job_type, "", NULL, dir->fs };

	return job_list(dir->fs, fill_job, &fa);
}

static int jobs_drop(struct node *dir, const char *name,
		     const struct fs_ctx *ctx)
{
	struct job *j;
	json_t *rec;
	uid_t owner;

	if (job_get(dir->fs, name, &j) < 0)
		return -ENOENT;
	rec = job_record(j);
	job_put(j);
	owner = (uid_t)json_integer_value(json_object_get(rec, "uid"));
	json_decref(rec);
	if (ctx->uid != 0 && ctx->uid != owner)
		return fs_refused(dir->fs, ctx->uid, dir->path, name, -EPERM,
				  "owned by uid %u, you are uid %u",
				  (unsigned)owner, (unsigned)ctx->uid);
	return job_remove(dir->fs, name);
}

/*
 * Sticky and writable, as /tmp: the kernel (default_permissions) then lets
 * a user rmdir their own jobs and no one else's; nothing else can be made
 * here (no make op), and jobs_drop judges the owner again.
 */
const struct node_type jobs_type = {
	"jobs", S_IFDIR | 01777, NODE_F_DYNAMIC, .lookup = jobs_lookup,
	.list = jobs_list, .drop = jobs_drop,
};

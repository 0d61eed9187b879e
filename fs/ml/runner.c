/* SPDX-License-Identifier: MIT */
/*
 * The job runner (runner.h).
 *
 * Threads: FUSE workers submit, cancel, read and park on jobs; one
 * scheduler thread starts queued jobs (FIFO, at most opts.jobs at once),
 * reaps finished ones with waitpid(WNOHANG) every SCHED_TICK_MS, enforces
 * timeouts and cancellations, and publishes results.  All job state is
 * under runner->lock; the lock is never held across a store write of a
 * large file, a spawn, or a FUSE reply (parked readers are answered after
 * it is dropped).
 *
 * A job runs as the job program (mlfs-job, beside the daemon's binary)
 * started with posix_spawn: descriptors 0-2 are /dev/null and the job's
 * log, descriptor 3 is the dataset version's content, and every other
 * descriptor is closed (above all /dev/fuse).  The job program drops to
 * the uid and gid of the writer of the spec and applies the memory limit
 * itself before reading anything.  Its folder in the cache holds the plan
 * (job.json) and what it writes: log, metrics, progress, split, out/ and
 * result.json.  When it ends, its model is published to the registry and
 * its files move into the store, so a record outlives the cache.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "catalog.h"
#include "repo.h"
#include "deadline.h"
#include "fs.h"
#include "hostfile.h"
#include "jsonout.h"
#include "meta.h"
#include "mlcore.h"
#include "runner.h"
#include "runner_int.h"
#include "spec.h"
#include "store.h"
double now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void iso_now(char *out, size_t len)
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void job_free(struct job *j)
{
	out_tail_cancel(j->tail);
	json_decref(j->rec);
	json_decref(j->plan);
	free(j->reason);
	free(j);
}

void job_put(struct job *j)
{
	if (j && atomic_fetch_sub(&j->refs, 1) == 1)
		job_free(j);
}

/* Write the record to the store and the index.  Not under the lock. */
int job_save(struct fs *fs, const char *name, json_t *rec)
{
	char key[320], *text;
	struct meta_txn *t;
	int rc;

	text = json_dumps(rec, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (!text)
		return -ENOMEM;
	snprintf(key, sizeof(key), "jobs/%s.json", name);
	rc = store_put(fs->store, key, text, strlen(text));
	if (rc == 0)
		rc = meta_txn_begin(fs->meta, false, &t);
	if (rc == 0) {
		rc = meta_put(t, META_JOB, name, text, strlen(text));
		if (rc == 0)
			rc = catalog_set(t, key, text, strlen(text));
		if (rc == 0)
			rc = meta_txn_commit(t);
		else
			meta_txn_abort(t);
		if (rc == 0)
			catalog_changed(fs);
	}
	free(text);
	return rc;
}

static struct job *find_locked(struct runner *r, const char *name)
{
	for (struct job *j = r->jobs; j; j = j->next)
		if (strcmp(j->name, name) == 0)
			return j;
	return NULL;
}

void append_locked(struct runner *r, struct job *j)
{
	struct job **pp = &r->jobs;

	while (*pp)
		pp = &(*pp)->next;
	j->next = NULL;
	*pp = j;
}

bool job_pending(struct fs *fs, const char *name)
{
	struct runner *r = fs->runner;
	bool found = false;

	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->npending && !found; i++)
		found = strcmp(r->pending[i], name) == 0;
	pthread_mutex_unlock(&r->lock);
	return found;
}

int job_pending_add(struct fs *fs, const char *name)
{
	struct runner *r = fs->runner;
	char **np;
	int rc = 0;

	pthread_mutex_lock(&r->lock);
	if (find_locked(r, name)) {
		rc = -EEXIST;
		goto out;
	}
	for (size_t i = 0; i < r->npending; i++)
		if (strcmp(r->pending[i], name) == 0) {
			rc = -EEXIST;
			goto out;
		}
	np = realloc(r->pending, (r->npending + 1) * sizeof(*np));
	if (!np) {
		rc = -ENOMEM;
		goto out;
	}
	r->pending = np;
	np[r->npending] = strdup(name);
	if (!np[r->npending])
		rc = -ENOMEM;
	else
		r->npending++;
out:
	pthread_mutex_unlock(&r->lock);
	return rc;
}

void job_pending_del(struct fs *fs, const char *name)
{
	struct runner *r = fs->runner;

	/*
	 * A spec handle whose RELEASE the kernel never sent is freed by
	 * fs_destroy, after runner_stop: nothing is pending any more.
	 */
	if (!r)
		return;
	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->npending; i++) {
		if (strcmp(r->pending[i], name) == 0) {
			free(r->pending[i]);
			r->pending[i] = r->pending[--r->npending];
			break;
		}
	}
	pthread_mutex_unlock(&r->lock);
}

bool job_exists(struct fs *fs, const char *name)
{
	struct runner *r = fs->runner;
	bool found;

	pthread_mutex_lock(&r->lock);
	found = find_locked(r, name) != NULL;
	pthread_mutex_unlock(&r->lock);
	return found;
}

int job_list(struct fs *fs, int (*fn)(void *arg, const char *name),
	     void *arg)
{
	struct runner *r = fs->runner;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	/* copy the names: fn may take other locks */
	pthread_mutex_lock(&r->lock);
	for (struct job *j = r->jobs; j && rc == 0; j = j->next) {
		if (n == cap) {
			char **nn;

			cap = cap ? cap * 2 : 16;
			nn = realloc(names, cap * sizeof(*nn));
			if (!nn) {
				rc = -ENOMEM;
				break;
			}
			names = nn;
		}
		names[n] = strdup(j->name);
		if (names[n])
			n++;
	}
	pthread_mutex_unlock(&r->lock);
	for (size_t i = 0; i < n; i++) {
		if (rc == 0)
			rc = fn(arg, names[i]);
		free(names[i]);
	}
	free(names);
	return rc < 0 ? rc : 0;
}

int job_get(struct fs *fs, const char *name, struct job **out)
{
	struct runner *r = fs->runner;
	struct job *j;

	*out = NULL;
	pthread_mutex_lock(&r->lock);
	j = find_locked(r, name);
	if (j)
		atomic_fetch_add(&j->refs, 1);
	pthread_mutex_unlock(&r->lock);
	*out = j;
	return j ? 0 : -ENOENT;
}

json_t *job_record(struct job *j)
{
	json_t *copy;

	pthread_mutex_lock(&j->runner->lock);
	copy = json_deep_copy(j->rec);
	pthread_mutex_unlock(&j->runner->lock);
	return copy;
}

int status_text(json_t *rec, char *out, size_t len)
{
	const char *st = json_string_value(json_object_get(rec, "status"));
	const char *why = json_string_value(json_object_get(rec, "reason"));

	if (st && strcmp(st, "failed") == 0 && why)
		return snprintf(out, len, "failed: %s\n", why);
	return snprintf(out, len, "%s\n", st ? st : "unknown");
}

int job_status(struct job *j, struct strbuf *out)
{
	char line[1200];

	pthread_mutex_lock(&j->runner->lock);
	status_text(j->rec, line, sizeof(line));
	pthread_mutex_unlock(&j->runner->lock);
	return sb_puts(out, line);
}

bool job_has_ended(struct job *j)
{
	bool ended;

	pthread_mutex_lock(&j->runner->lock);
	ended = j->state == JOB_ENDED;
	pthread_mutex_unlock(&j->runner->lock);
	return ended;
}

int job_wait(struct job *j, size_t size, off_t off, struct fs_reply *r)
{
	char line[1200];
	size_t len;
	int rc = 0;

	pthread_mutex_lock(&j->runner->lock);
	if (j->state != JOB_ENDED && off == 0) {
		/*
		 * Park under the runner lock so the end of the job cannot
		 * slip between the check and the park; fs_park never calls
		 * back into the runner.
		 */
		rc = fs_park(r, j, size);
		pthread_mutex_unlock(&j->runner->lock);
		return rc;
	}
	len = (size_t)status_text(j->rec, line, sizeof(line));
	pthread_mutex_unlock(&j->runner->lock);
	if (j->state != JOB_ENDED || (size_t)off >= len)
		return fs_reply_buf(r, NULL, 0);
	len -= (size_t)off;
	return fs_reply_buf(r, line + off, len < size ? len : size);
}

int job_wait_end(struct job *j, double seconds)
{
	struct runner *r = j->runner;
	struct timespec ts = deadline_in((int64_t)(seconds * 1000));
	bool ended;

	pthread_mutex_lock(&r->lock);
	/* the runner broadcasts cond when a job ends */
	while (j->state != JOB_ENDED &&
	       cond_wait_until(&r->cond, &r->lock, &ts) != ETIMEDOUT)
		;
	ended = j->state == JOB_ENDED;
	pthread_mutex_unlock(&r->lock);
	return ended ? 0 : -ETIMEDOUT;
}

void job_counts(struct fs *fs, unsigned *queued, unsigned *running,
		unsigned *ended)
{
	struct runner *r = fs->runner;

	*queued = *running = *ended = 0;
	if (!r)
		return;
	pthread_mutex_lock(&r->lock);
	for (struct job *j = r->jobs; j; j = j->next)
		(*(j->state == JOB_QUEUED    ? queued
		   : j->state == JOB_RUNNING ? running
					     : ended))++;
	pthread_mutex_unlock(&r->lock);
}

struct last_number {
	const char *prefix;
	unsigned n;
};

static int last_one(void *arg, const char *name)
{
	struct last_number *l = arg;
	size_t pl = strlen(l->prefix);
	char *end;
	unsigned long n;

	if (strncmp(name, l->prefix, pl) != 0 || name[pl] < '1' ||
	    name[pl] > '9')
		return 0;
	n = strtoul(name + pl, &end, 10);
	if (*end == '\0' && n > l->n && n < 1000000000)
		l->n = (unsigned)n;
	return 0;
}

unsigned job_last_number(struct fs *fs, const char *prefix)
{
	struct last_number l = { prefix, 0 };

	job_list(fs, last_one, &l);
	return l.n;
}

int job_cancel(struct job *j)
{
	struct runner *r = j->runner;
	int rc = 0;

	pthread_mutex_lock(&r->lock);
	if (j->state == JOB_ENDED)
		rc = -EINVAL;
	else
		j->cancel = true;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	return rc;
}

/* Blob reference of an ended job's file, from its record. */
static bool job_blob(json_t *rec, const char *file, char *key, size_t len,
		     int64_t *size)
{
	json_t *f = json_object_get(json_object_get(rec, "files"), file);
	const char *h = json_string_value(json_object_get(f, "hash"));

	if (!h)
		return false;
	repo_blob_key(h, key, len);
	*size = json_integer_value(json_object_get(f, "size"));
	return true;
}

int64_t job_file_size(struct job *j, const char *file)
{
	char key[128];
	struct stat st;
	int64_t size = 0;
	int fd;

	pthread_mutex_lock(&j->runner->lock);
	if (j->state == JOB_ENDED) {
		if (!job_blob(j->rec, file, key, sizeof(key), &size))
			size = 0;
	} else if (host_openat_nofollow(j->dir, file, O_RDONLY, &fd) == 0) {
		size = fstat(fd, &st) == 0 ? st.st_size : 0;
		close(fd);
	}
	pthread_mutex_unlock(&j->runner->lock);
	return size;
}

ssize_t job_file_read(struct job *j, const char *file, char *buf, size_t size,
		      off_t off)
{
	struct fs *fs = j->runner->fs;
	char dir[PATH_MAX], key[128];
	int64_t bsize;
	bool ended, blob;
	ssize_t n;
	int fd, rc;

	pthread_mutex_lock(&j->runner->lock);
	ended = j->state == JOB_ENDED;
	blob = ended && job_blob(j->rec, file, key, sizeof(key), &bsize);
	snprintf(dir, sizeof(dir), "%s", j->dir);
	pthread_mutex_unlock(&j->runner->lock);
	if (ended && !blob)
		return 0;
	if (blob) {
		if (off >= bsize)
			return 0;
		n = store_get_range(fs->store, key, buf, size, (uint64_t)off);
		if (n == -EBADMSG) {
			snprintf(dir, sizeof(dir), "jobs/%s/%s", j->name, file);
			n = repo_blob_error(fs, j->uid, dir, key, (int)n);
		}
		return n;
	}
	rc = host_openat_nofollow(dir, file, O_RDONLY, &fd);
	if (rc < 0)
		return rc == -ENOENT ? 0 : rc;
	n = pread(fd, buf, size, off);
	if (n < 0)
		n = -errno;
	close(fd);
	return n;
}

/*
 * The job's folder is its writer's, and the job, running as the writer,
 * can put links there.  The daemon reads and writes nothing in it by
 * following one (host_openat_nofollow), and takes what becomes a blob
 * from a private copy, never the writer's own file (which a link made
 * beforehand would let them change after it was hashed).
 */
json_t *load_json(const char *dir, const char *file)
{
	json_t *j = NULL;
	int fd;

	if (host_openat_nofollow(dir, file, O_RDONLY, &fd) == 0) {
		j = json_loadfd(fd, 0, NULL);
		close(fd);
	}
	return j;
}

int copy_out(struct fs *fs, const char *dir, const char *file, char *tmp,
	     size_t tmplen)
{
	struct stat st;
	int in, out, rc;

	rc = host_openat_nofollow(dir, file, O_RDONLY, &in);
	if (rc < 0)
		return rc;
	rc = fstat(in, &st) < 0 ? -errno
				: repo_copy_to_tmp(fs, in, (uint64_t)st.st_size,
						 tmp, tmplen, &out);
	close(in);
	if (rc < 0)
		return rc;
	/*
	 * Not fsync'd here: the copy becomes a blob through
	 * store_put_file, which fsyncs it before its name is visible, and
	 * no version names it before that.  A second fsync here made the
	 * daemon wait for the disk before it could start on the scan.
	 */
	close(out);
	return 0;
}

int publish_out(struct fs *fs, const char *dir, const char *file,
		struct out_tail **tail, const char *name,
		const struct repo_origin *origin, unsigned *ver, bool *created,
		struct problem *pb)
{
	struct stat st;
	int in, rc;

	*ver = 0;
	*created = false;
	rc = *tail ? out_tail_publish(*tail, name, origin, ver, created, pb)
		   : -EAGAIN;
	*tail = NULL;
	if (rc != -EAGAIN)
		return rc;
	rc = host_openat_nofollow(dir, file, O_RDONLY, &in);
	if (rc < 0)
		return rc;
	rc = fstat(in, &st) < 0 ? -errno
				: ds_publish_copy(fs, name, in,
						  (uint64_t)st.st_size, origin,
						  ver, created, pb);
	close(in);
	return rc;
}

/* Store a private copy of dir/file as a blob: its hash and size. */
int put_copy(struct fs *fs, const char *dir, const char *file,
		    char hash[33], uint64_t *size)
{
	char tmp[PATH_MAX];
	int rc;

	rc = copy_out(fs, dir, file, tmp, sizeof(tmp));
	if (rc < 0)
		return rc;
	rc = repo_put_file(fs, tmp, hash, size);
	unlink(tmp); /* stored (moved or copied) or failed: not needed */
	return rc;
}

json_t *job_trials(struct job *j)
{
	char dir[PATH_MAX];
	json_t *out;
	bool ended;

	pthread_mutex_lock(&j->runner->lock);
	ended = j->state == JOB_ENDED;
	out = ended ? json_deep_copy(json_object_get(j->rec, "trials")) : NULL;
	snprintf(dir, sizeof(dir), "%s", j->dir);
	pthread_mutex_unlock(&j->runner->lock);
	if (ended)
		return out ? out : json_array();
	out = json_array();
	for (int i = 0; out && i < 100000; i++) {
		char rel[32];
		json_t *t;

		snprintf(rel, sizeof(rel), "trials/%d", i);
		t = load_json(dir, rel);
		if (!t)
			break;
		json_array_append_new(out, t);
	}
	return out;
}

/* Remove the entries of the folder open at dfd, following no link. */
static void rm_rf_at(int dfd)
{
	struct dirent *de;
	DIR *d = fdopendir(dfd);

	if (!d) {
		close(dfd);
		return;
	}
	while ((de = readdir(d))) {
		int sub;

		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == 0 || errno != EISDIR)
			continue;
		sub = openat(dirfd(d), de->d_name,
			     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub >= 0)
			rm_rf_at(sub);
		unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR);
	}
	closedir(d);
}

/* rm -rf dir: a job's folder, whose writer may have put links in it. */
void rm_rf(const char *dir)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (dfd >= 0)
		rm_rf_at(dfd);
	rmdir(dir);
}

int job_enqueue(struct fs *fs, const char *name, json_t *plan, json_t *rec,
		const struct fs_ctx *ctx)
{
	struct runner *r = fs->runner;
	struct job *j = calloc(1, sizeof(*j));
	int rc;

	if (!rec || !plan || !j) {
		json_decref(rec);
		json_decref(plan);
		free(j);
		return -ENOMEM;
	}
	j->runner = r;
	snprintf(j->name, sizeof(j->name), "%s", name);
	snprintf(j->dir, sizeof(j->dir), "%s/jobs/%s", fs->opts.cache_dir,
		 name);
	j->refs = 1;
	j->rec = rec;
	j->plan = plan;
	j->uid = ctx->uid;
	j->state = JOB_QUEUED;
	pthread_mutex_lock(&r->lock);
	if (find_locked(r, name)) {
		pthread_mutex_unlock(&r->lock);
		job_free(j);
		return -EEXIST;
	}
	pthread_mutex_unlock(&r->lock);
	/* durable before it is visible: a crash leaves a record */
	rc = job_save(fs, name, rec);
	if (rc < 0) {
		job_free(j);
		return rc;
	}
	pthread_mutex_lock(&r->lock);
	append_locked(r, j);
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	return 0;
}

int job_submit(struct fs *fs, const char *name, const char *text,
	       const struct fs_ctx *ctx, struct problem *pb)
{
	char when[32], what[600];
	json_t *plan, *rec;
	int rc;

	rc = spec_resolve(fs, name, text, ctx, &plan, pb);
	if (rc < 0)
		return rc;
	iso_now(when, sizeof(when));
	rec = json_pack("{s:s, s:s, s:O, s:s, s:s, s:i, s:i, s:s, s:O, s:s}",
			"name", name, "status", "queued", "spec",
			json_object_get(plan, "spec"), "created", when,
			"model", json_string_value(json_object_get(plan, "model")),
			"uid", (int)ctx->uid, "gid", (int)ctx->gid, "algorithm",
			json_string_value(json_object_get(plan, "algorithm")),
			"dataset", json_object_get(plan, "dataset"), "task",
			json_string_value(json_object_get(plan, "task")));
	snprintf(what, sizeof(what), "%s on %s",
		 json_string_value(json_object_get(plan, "algorithm")),
		 json_string_value(json_object_get(
			 json_object_get(plan, "dataset"), "name")));
	rc = job_enqueue(fs, name, plan, rec, ctx);
	if (rc == 0)
		fs_log(fs, 6, "jobs/%s: queued (%s)", name, what);
	return rc;
}

int job_remove(struct fs *fs, const char *name)
{
	struct runner *r = fs->runner;
	struct meta_txn *t;
	struct job **pp, *j;
	char key[320];
	int rc;

	pthread_mutex_lock(&r->lock);
	for (pp = &r->jobs; *pp && strcmp((*pp)->name, name); pp = &(*pp)->next)
		;
	j = *pp;
	if (!j) {
		pthread_mutex_unlock(&r->lock);
		return -ENOENT;
	}
	if (j->state != JOB_ENDED) {
		pthread_mutex_unlock(&r->lock);
		return -EBUSY;
	}
	*pp = j->next;
	pthread_mutex_unlock(&r->lock);
	snprintf(key, sizeof(key), "jobs/%s.json", name);
	rc = store_del(fs->store, key);
	if (rc < 0 && rc != -ENOENT)
		fs_log(fs, 4, "jobs/%s: removing the record: %s", name,
		       strerror(-rc));
	if (meta_txn_begin(fs->meta, false, &t) == 0) {
		meta_del(t, META_JOB, name);
		catalog_set(t, key, NULL, 0);
		if (meta_txn_commit(t) == 0)
			catalog_changed(fs);
	}
	job_put(j);
	return 0;
}

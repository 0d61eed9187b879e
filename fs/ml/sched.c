/* SPDX-License-Identifier: MIT */
/*
 * The job runner's scheduler (runner_int.h): one thread starts queued
 * jobs fairly between users (at most opts.jobs at once), spawns the job
 * program without the daemon's descriptors, reaps finished ones every
 * SCHED_TICK_MS, enforces timeouts, memory limits and cancellations,
 * publishes results to the registry, and loads the job records at start.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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
#include "featonline.h"
#include "anonkey.h"
#include "batch.h"
#include "prep.h"
#include "modelbundle.h"
#include "featsync.h"
#include "runner_int.h"
#include "spec.h"
#include "store.h"

extern char **environ;

/* --- the scheduler --- */

static void job_bin_path(struct runner *r)
{
	char exe[PATH_MAX - 16];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;

	snprintf(r->jobbin, sizeof(r->jobbin), "mlfs-job");
	if (n <= 0)
		return;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (slash) {
		*slash = '\0';
		snprintf(r->jobbin, sizeof(r->jobbin), "%s/mlfs-job", exe);
	}
}

/*
 * A store without local files (S3 behind the cache): copy the dataset
 * version into the job folder, read through the cache, and give the job
 * a descriptor on that copy.
 */
static int fetch_local(struct fs *fs, const char *key, const char *dir,
		       const char *name)
{
	char path[PATH_MAX + 32];
	size_t chunk = (size_t)4 << 20;
	uint64_t off = 0;
	char *buf = malloc(chunk);
	int fd, rc = 0;

	if (!buf)
		return -ENOMEM;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  0600);
	if (fd < 0) {
		free(buf);
		return -errno;
	}
	for (;;) {
		ssize_t n = store_get_range(fs->store, key, buf, chunk, off);

		if (n < 0) {
			rc = (int)n;
			break;
		}
		if (n == 0)
			break;
		if (pwrite(fd, buf, (size_t)n, (off_t)off) != n) {
			rc = -EIO;
			break;
		}
		off += (uint64_t)n;
	}
	free(buf);
	unlink(path); /* the descriptor is enough */
	if (rc < 0) {
		close(fd);
		return rc;
	}
	return fd;
}

#define SCHED_EXTRA_FDS 9

/* A blob on a descriptor (a copy in the job folder from S3). */
static int blob_fd(struct fs *fs, const char *key, const char *dir,
		   const char *name)
{
	int fd = store_open_fd(fs->store, key);

	return fd == -EOPNOTSUPP ? fetch_local(fs, key, dir, name) : fd;
}

/* The descriptors a job gets after its data (fd[i] becomes 4 + i). */
static int extra_fds(struct fs *fs, struct job *j, json_t *plan, int *fd,
		     size_t *n)
{
	json_t *cut = json_object_get(plan, "log_cut");
	json_t *sets = json_object_get(plan, "feature_sets");
	size_t i;
	json_t *set;
	int rc = 0;

	*n = 0;
	if (json_integer_value(cut)) {
		rc = featonline_log_fd(
			fs, json_string_value(json_object_get(plan,
							      "feature_set")),
			json_object_get(plan, "spec"),
			json_string_value(json_object_get(plan,
							  "log_incarnation")),
			(uint64_t)json_integer_value(cut));
		if (rc >= 0)
			fd[(*n)++] = rc;
	}
	if (json_is_object(json_object_get(plan, "model"))) {
		/* a batch job's model file */
		rc = blob_fd(fs, json_string_value(json_object_get(
				     json_object_get(plan, "model"), "blob")),
			     j->dir, "model");
		if (rc >= 0)
			fd[(*n)++] = rc;
	}
	if (rc >= 0 && json_is_true(json_object_get(plan, "anon_key"))) {
		/*
		 * The owner's key for anonymize's hash, through a pipe: never
		 * in a file of the job's folder, its argv or environment.
		 * 32 bytes fit a pipe's buffer, so the write does not block.
		 */
		unsigned char key[ANON_KEY_LEN];
		int p[2];

		rc = anon_owner_key(fs, j->uid, key);
		if (rc == 0 && pipe2(p, O_CLOEXEC) < 0)
			rc = -errno;
		if (rc == 0) {
			if (write(p[1], key, sizeof(key)) != (ssize_t)sizeof(key))
				rc = -EIO;
			close(p[1]);
			if (rc == 0)
				fd[(*n)++] = p[0];
			else
				close(p[0]);
		}
		explicit_bzero(key, sizeof(key));
	}
	json_array_foreach(sets, i, set) {
		char name[32];

		if (rc < 0 || *n == SCHED_EXTRA_FDS)
			break;
		snprintf(name, sizeof(name), "history-%zu", i);
		rc = blob_fd(fs, json_string_value(json_object_get(set, "blob")),
			     j->dir, name);
		if (rc >= 0)
			fd[(*n)++] = rc;
	}
	if (rc < 0) {
		while (*n)
			close(fd[--*n]);
		return rc;
	}
	return 0;
}

/* Prepare the folder and spawn.  Not under the lock. */
static int job_spawn(struct runner *r, struct job *j, json_t *plan,
		     pid_t *pid)
{
	struct fs *fs = r->fs;
	posix_spawn_file_actions_t fa;
	static const char *const sanitizer_vars[] = { "UBSAN_OPTIONS",
						      "LSAN_OPTIONS", NULL };
	char path[PATH_MAX + 32], blob[128], threads[32], asan[1024];
	char lang[128], home[PATH_MAX + 8], pwbuf[4096], san[2][1024];
	struct passwd pw, *pwp = NULL;
	char self[24], outarg[24];
	char *argv[] = { r->jobbin, j->dir, self, NULL, NULL };
	char **env;
	size_t nenv = 0;
	uid_t uid = (uid_t)json_integer_value(json_object_get(plan, "uid"));
	gid_t gid = (gid_t)json_integer_value(json_object_get(plan, "gid"));
	const char *kind = json_string_value(json_object_get(plan, "kind"));
	int datafd, extra[SCHED_EXTRA_FDS + 1], rc;
	size_t nextra = 0;

	snprintf(self, sizeof(self), "%ld", (long)getpid());
	snprintf(path, sizeof(path), "%s/jobs", fs->opts.cache_dir);
	mkdir(path, 0755);
	rm_rf(j->dir);
	if (mkdir(j->dir, 0755) < 0)
		return -errno;
	snprintf(path, sizeof(path), "%s/job.json", j->dir);
	/* what the job may write, a file at most (RLIMIT_FSIZE) */
	json_object_set_new(plan, "max_file",
			    json_integer((json_int_t)fs->opts.max_file));
	if (json_dump_file(plan, path, JSON_INDENT(2)) < 0)
		return -EIO;
	/* the job runs as the writer of the spec and writes here */
	if (chown(j->dir, uid, gid) < 0)
		return -errno;
	snprintf(blob, sizeof(blob), "%s",
		 json_string_value(json_object_get(
			 json_object_get(plan, "dataset"), "blob"))
			 ? json_string_value(json_object_get(
				   json_object_get(plan, "dataset"), "blob"))
			 : "");
	/* a feature set fed only by events has no dataset: none to read */
	datafd = blob[0] ? store_open_fd(fs->store, blob)
			 : open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (!blob[0] && datafd < 0)
		datafd = -errno;
	if (datafd == -EOPNOTSUPP)
		datafd = fetch_local(fs, blob, j->dir, "data.csv");
	if (datafd == -EBADMSG) {
		/* .mlfs/errors names the key; the status says why */
		snprintf(path, sizeof(path), "jobs/%s", j->name);
		repo_blob_error(fs, uid, path, blob, datafd);
	}
	if (datafd < 0)
		return datafd;
	/* from descriptor 4 on: a sync's event log up to its cut, or the
	 * histories of the feature sets a training joins */
	rc = extra_fds(fs, j, plan, extra, &nextra);
	if (rc < 0) {
		close(datafd);
		return rc;
	}
	/* its output copied as it is written; a prepare job's written
	 * into the copy itself, on the descriptor after the others */
	if (kind && (!strcmp(kind, "prepare") || !strcmp(kind, "batch")))
		j->tail = out_tail_start(fs, j->dir, "out/data.csv");
	if (j->tail && !strcmp(kind, "prepare")) {
		int out = out_tail_writer(j->tail);

		if (out >= 0) {
			snprintf(outarg, sizeof(outarg), "%zu", 4 + nextra);
			argv[3] = outarg;
			extra[nextra++] = out;
		}
	}
	/*
	 * A clean environment: PATH, LANG, the writer's HOME and the BLAS
	 * threads.  Nothing of the daemon's (its store credentials above
	 * all), but the sanitizer settings of a test build.
	 */
	env = calloc(16, sizeof(*env));
	if (!env) {
		close(datafd);
		while (nextra)
			close(extra[--nextra]);
		out_tail_cancel(j->tail);
		j->tail = NULL;
		return -ENOMEM;
	}
	env[nenv++] = "PATH=/usr/local/bin:/usr/bin:/bin";
	snprintf(lang, sizeof(lang), "LANG=%s",
		 getenv("LANG") ? getenv("LANG") : "C.UTF-8");
	env[nenv++] = lang;
	if (getpwuid_r(uid, &pw, pwbuf, sizeof(pwbuf), &pwp) == 0 && pwp &&
	    snprintf(home, sizeof(home), "HOME=%s", pw.pw_dir) <
		    (int)sizeof(home))
		env[nenv++] = home;
	else
		env[nenv++] = "HOME=/";
	snprintf(threads, sizeof(threads), "OPENBLAS_NUM_THREADS=%ld",
		 sysconf(_SC_NPROCESSORS_ONLN) > 0
			 ? sysconf(_SC_NPROCESSORS_ONLN)
			 : 1L);
	if (getenv("ASAN_OPTIONS")) {
		/*
		 * Sanitizer builds: the job program ends in exit() holding
		 * its data on purpose (see job_main.c); the environment
		 * would override its own leak setting.
		 */
		snprintf(asan, sizeof(asan),
			 "ASAN_OPTIONS=%s:detect_leaks=0:handle_segv=0",
			 getenv("ASAN_OPTIONS"));
		env[nenv++] = asan;
	}
	for (const char *const *v = sanitizer_vars; *v; v++) {
		const char *val = getenv(*v);

		if (val && snprintf(san[v - sanitizer_vars],
				    sizeof(san[0]), "%s=%s", *v, val) <
				   (int)sizeof(san[0]))
			env[nenv++] = san[v - sanitizer_vars];
	}
	env[nenv++] = threads;
	snprintf(path, sizeof(path), "%s/log", j->dir);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, path,
					 O_WRONLY | O_CREAT | O_APPEND, 0644);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	posix_spawn_file_actions_adddup2(&fa, datafd, 3);
	for (size_t i = 0; i < nextra; i++)
		posix_spawn_file_actions_adddup2(&fa, extra[i], 4 + (int)i);
	/* nothing else of the daemon's, /dev/fuse above all */
	posix_spawn_file_actions_addclosefrom_np(&fa, 4 + (int)nextra);
	rc = posix_spawn(pid, r->jobbin, &fa, NULL, argv, env);
	posix_spawn_file_actions_destroy(&fa);
	free(env);
	close(datafd);
	for (size_t i = 0; i < nextra; i++)
		close(extra[i]);
	if (rc) {
		out_tail_cancel(j->tail);
		j->tail = NULL;
	}
	return rc ? -rc : 0;
}

/* Store a job file as a blob and note it in rec.  Not under the lock. */
static void keep_file(struct fs *fs, const char *dir, const char *file,
		      json_t *rec)
{
	char hash[33];
	uint64_t size;

	if (put_copy(fs, dir, file, hash, &size) < 0)
		return;
	json_object_set_new(json_object_get(rec, "files"), file,
			    json_pack("{s:s, s:I}", "hash", hash, "size",
				      (json_int_t)size));
}

/*
 * Publish the job's model to the registry: its files become blobs, and
 * meta.json gets the name and version the registry gives it.  Not under
 * the runner lock; models are published one at a time.
 */
static int publish_model(struct fs *fs, struct job *j, json_t *plan,
			 json_t *rec, unsigned *ver)
{
	static pthread_mutex_t publish_lock = PTHREAD_MUTEX_INITIALIZER;
	const char *model = json_string_value(json_object_get(plan, "model"));
	char path[PATH_MAX + 32], when[32], hash[33];
	json_t *meta, *man, *mrec = NULL, *fl;
	struct fs_ctx ctx = { 0 };
	uint64_t size;
	unsigned v = 1;
	int rc;

	snprintf(path, sizeof(path), MODEL_OUT "/%s",
		 model_files[MODEL_FILE_META]);
	meta = load_json(j->dir, path);
	if (!meta)
		return -EIO;
	ctx.uid = (uid_t)json_integer_value(json_object_get(rec, "uid"));
	ctx.gid = (gid_t)json_integer_value(json_object_get(rec, "gid"));
	pthread_mutex_lock(&publish_lock);
	{
		/* no wider than the dataset it was trained on */
		json_t *drec;
		const char *dsname = json_string_value(json_object_get(
			json_object_get(plan, "dataset"), "name"));

		if (!dsname || repo_get(fs, &repo_datasets, dsname, &drec) < 0) {
			rc = -ENOENT;
			goto out_unlock;
		}
		ctx.umask = (mode_t)(~json_integer_value(
					     json_object_get(drec, "mode")) &
				     0777);
		json_decref(drec);
	}
	if (repo_get(fs, &repo_models, model, &mrec) == 0) {
		/* Judged again: the model may have been made, or its mode
		 * changed, by another user since the spec was accepted.
		 * No request is behind this: the uid's groups as now. */
		struct host_user writer = { ctx.uid, ctx.gid, 0 };

		if (!host_may_record(&writer, mrec, W_OK | X_OK)) {
			json_decref(mrec);
			rc = -EACCES;
			goto out_unlock;
		}
		v = (unsigned)json_integer_value(json_object_get(mrec, "next"));
		if (v <= (unsigned)json_integer_value(
				 json_object_get(mrec, "latest")))
			v = (unsigned)json_integer_value(
				    json_object_get(mrec, "latest")) + 1;
		json_decref(mrec);
	}
	iso_now(when, sizeof(when));
	json_object_set_new(meta, "name", json_string(model));
	json_object_set_new(meta, "version", json_integer(v));
	json_object_set_new(meta, "created", json_string(when));
	json_object_set_new(meta, "job", json_string(j->name));
	/* meta.json as the registry has it: written in a file of ours */
	rc = store_tmp_path(fs->store, path, sizeof(path));
	if (rc == 0 &&
	    json_dump_file_short(meta, path,
				 JSON_INDENT(2) | JSON_PRESERVE_ORDER) < 0)
		rc = -EIO;
	fl = json_object();
	for (int i = 0; rc == 0 && i < MODEL_NFILES; i++) {
		char rel[64];

		snprintf(rel, sizeof(rel), MODEL_OUT "/%s", model_files[i]);
		if (i == MODEL_FILE_META) {
			rc = repo_put_file(fs, path, hash, &size);
			unlink(path);
		} else {
			rc = put_copy(fs, j->dir, rel, hash, &size);
		}
		if (rc == 0)
			json_object_set_new(fl, model_files[i],
					    json_pack("{s:s, s:I}", "hash",
						      hash, "size",
						      (json_int_t)size));
	}
	if (rc < 0) {
		json_decref(fl);
		goto out_unlock;
	}
	man = json_pack("{s:i, s:s, s:s, s:s, s:O, s:s, s:s, s:O, s:o}",
			"format", REPO_FORMAT_MAJOR, "model", model, "created",
			when, "job", j->name, "dataset",
			json_object_get(plan, "dataset"), "algorithm",
			json_string_value(json_object_get(plan, "algorithm")),
			"task", json_string_value(json_object_get(plan, "task")),
			"metrics", json_object_get(meta, "metrics")
					   ? json_object_get(meta, "metrics")
					   : json_null(),
			"files", fl);
	if (man && json_object_get(plan, "feature_sets")) {
		/* the versions of the sets it was trained on stay while it does */
		json_t *refs = json_array(), *set;
		size_t i;

		json_array_foreach(json_object_get(plan, "feature_sets"), i,
				   set)
			json_array_append_new(
				refs, json_pack("{s:O, s:O}", "name",
						json_object_get(set, "name"),
						"version",
						json_object_get(set, "version")));
		json_object_set_new(man, "feature_sets", refs);
	}
	rc = man ? repo_commit_model(fs, model, man, &ctx, ver) : -ENOMEM;
	json_decref(man);
out_unlock:
	pthread_mutex_unlock(&publish_lock);
	json_decref(meta);
	return rc;
}

/*
 * The job program ended without saying why (a signal, an exit without a
 * result): the status sends the reader to the log, so the log says it.
 */
static void log_end(const char *dir, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void log_end(const char *dir, const char *fmt, ...)
{
	va_list ap;
	FILE *fp;
	int fd;

	if (host_openat_nofollow(dir, "log", O_WRONLY | O_APPEND, &fd) < 0)
		return;
	fp = fdopen(fd, "a");
	if (!fp) {
		close(fd);
		return;
	}
	fputs("mlfs: the job program ", fp);
	va_start(ap, fmt);
	vfprintf(fp, fmt, ap);
	va_end(ap);
	fputc('\n', fp);
	fclose(fp);
}

/* A job ended: publish, keep its files, save the record, answer waiters. */
/* Where an ended job's folder waits for removal: no job has a name that
 * starts with '.' (node_name_check). */
#define ASIDE_PREFIX ".ended-"

/*
 * j's folder moved aside into *aside, to be removed once whoever waits
 * for the job is woken: freeing the 1.1 GB out/data.csv of a prepare
 * job took 70 ms.  Removed here, and *aside "", when it cannot be moved.
 */
static void dir_aside(struct fs *fs, const struct job *j, char *aside,
		      size_t len)
{
	if ((size_t)snprintf(aside, len, "%s/jobs/" ASIDE_PREFIX "%s",
			     fs->opts.cache_dir, j->name) >= len ||
	    rename(j->dir, aside) < 0) {
		rm_rf(j->dir);
		aside[0] = '\0';
	}
}

/* Folders set aside by a daemon that stopped before removing them. */
static void asides_remove(struct fs *fs)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "%s/jobs", fs->opts.cache_dir);
	d = opendir(path);
	if (!d)
		return;
	while ((de = readdir(d))) {
		char sub[PATH_MAX];

		if (strncmp(de->d_name, ASIDE_PREFIX,
			    strlen(ASIDE_PREFIX)) != 0 ||
		    (size_t)snprintf(sub, sizeof(sub), "%s/%s", path,
				     de->d_name) >= sizeof(sub))
			continue;
		rm_rf(sub);
	}
	closedir(d);
}

/*
 * The end of a job's process, watched through a pidfd by a thread of its
 * own, wakes the scheduler at once: it reaps every SCHED_TICK_MS else,
 * up to 50 ms added to every job's wait.  The pidfd names that process,
 * whatever pid is reused after the reaping.
 */
struct watch {
	struct runner *r;
	int pidfd;
};

static void *watch_main(void *arg)
{
	struct watch *w = arg;
	struct pollfd p = { w->pidfd, POLLIN, 0 };

	while (poll(&p, 1, -1) < 0 && errno == EINTR)
		;
	pthread_mutex_lock(&w->r->lock);
	pthread_cond_broadcast(&w->r->cond);
	pthread_mutex_unlock(&w->r->lock);
	close(w->pidfd);
	free(w);
	return NULL;
}

/* Watch j's process (j->pid), if the kernel has pidfds: best effort. */
static void watch_start(struct runner *r, struct job *j)
{
	struct watch *w = malloc(sizeof(*w));
	int pidfd = (int)syscall(SYS_pidfd_open, j->pid, 0);

	if (!w || pidfd < 0) {
		free(w);
		if (pidfd >= 0)
			close(pidfd);
		return;
	}
	*w = (struct watch){ r, pidfd };
	j->watched = pthread_create(&j->watcher, NULL, watch_main, w) == 0;
	if (!j->watched) {
		close(pidfd);
		free(w);
	}
}

static void job_finish(struct runner *r, struct job *j, int wstatus,
		       bool timed_out)
{
	struct fs *fs = r->fs;
	json_t *rec, *res, *plan;
	char line[1200], when[32], aside[PATH_MAX];
	const char *reason = NULL;
	struct out_tail *tail;
	char why[600];
	unsigned ver = 0;
	const char *kind;
	bool ok;

	if (j->watched) /* reaped: its watcher has seen the end */
		pthread_join(j->watcher, NULL);
	j->watched = false;
	pthread_mutex_lock(&r->lock);
	rec = json_deep_copy(j->rec);
	plan = json_incref(j->plan);
	pthread_mutex_unlock(&r->lock);
	kind = json_string_value(json_object_get(plan, "kind"));
	kind = kind ? kind : "train";

	res = load_json(j->dir, "result.json");
	ok = WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0 && res &&
	     json_string_value(json_object_get(res, "status")) &&
	     strcmp(json_string_value(json_object_get(res, "status")),
		    "succeeded") == 0;
	if (j->resident && !ok) {
		snprintf(why, sizeof(why),
			 "memory limit exceeded: %llu MiB resident, limit %llu "
			 "MiB",
			 (unsigned long long)(j->resident >> 20),
			 (unsigned long long)(j->memory >> 20));
		log_end(j->dir, "was killed: %s", why);
		reason = why;
	} else if (j->cancel && !ok) {
		reason = r->stopping ? "cancelled by unmount" : "cancelled";
	} else if (timed_out && !ok) {
		snprintf(why, sizeof(why), "timed out after %g s",
			 json_number_value(json_object_get(plan, "timeout")));
		reason = why;
	} else if (!ok && json_string_value(json_object_get(res, "reason"))) {
		snprintf(why, sizeof(why), "%s",
			 json_string_value(json_object_get(res, "reason")));
		reason = why;
	} else if (!ok && WIFSIGNALED(wstatus)) {
		log_end(j->dir, "died of signal %d (%s)", WTERMSIG(wstatus),
			strsignal(WTERMSIG(wstatus)));
		snprintf(why, sizeof(why), "the job program died of signal %d "
					   "(%s); see jobs/%s/log",
			 WTERMSIG(wstatus), strsignal(WTERMSIG(wstatus)),
			 j->name);
		reason = why;
	} else if (!ok) {
		log_end(j->dir, "exited with status %d",
			WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1);
		snprintf(why, sizeof(why), "the job program exited with "
					   "status %d; see jobs/%s/log",
			 WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1,
			 j->name);
		reason = why;
	}
	tail = j->tail;
	j->tail = NULL;
	if (ok) {
		bool sync = strcmp(kind, "sync") == 0;
		bool batch = strcmp(kind, "batch") == 0;
		bool import = strcmp(kind, "import") == 0;
		bool prepare = strcmp(kind, "prepare") == 0;
		char iwhy[500] = "";
		int rc = sync	   ? featsync_publish(fs, j->dir, plan, rec, &ver)
			 : batch   ? batch_publish(fs, j->dir, plan, rec, &tail,
						   &ver)
			 : prepare ? prep_publish(fs, j->dir, plan, rec, &tail,
						  &ver)
			 : import
				 ? mbundle_publish(fs, j->dir, plan, rec, &ver,
						   iwhy, sizeof(iwhy))
				 : publish_model(fs, j, plan, rec, &ver);

		if (rc < 0 && import) {
			snprintf(why, sizeof(why), "%s", iwhy);
			reason = why;
			ok = false;
		} else if (rc < 0) {
			snprintf(why, sizeof(why), "publishing the %s: %s",
				 sync ? "feature set"
				 : batch || prepare ? "dataset version"
						    : "model",
				 strerror(-rc));
			reason = why;
			ok = false;
		}
	}
	out_tail_cancel(tail); /* not taken by a publish */
	iso_now(when, sizeof(when));
	json_object_set_new(rec, "status",
			    json_string(ok ? "succeeded" : "failed"));
	if (reason)
		json_object_set_new(rec, "reason", json_string(reason));
	json_object_set_new(rec, "ended", json_string(when));
	if (ok)
		json_object_set_new(rec,
				    strcmp(kind, "sync") == 0
					    ? "feature_set_version"
				    : strcmp(kind, "batch") == 0 ||
						      strcmp(kind, "prepare") == 0
					    ? "output_version"
					    : "model_version",
				    json_integer(ver));
	if (json_object_get(res, "metrics"))
		json_object_set(rec, "metrics", json_object_get(res, "metrics"));
	if (json_object_get(res, "trials"))
		json_object_set(rec, "trials", json_object_get(res, "trials"));
	{
		FILE *fp = NULL;
		char prog[1024] = "";
		int fd;

		if (host_openat_nofollow(j->dir, "progress", O_RDONLY, &fd) == 0) {
			fp = fdopen(fd, "r");
			if (!fp)
				close(fd);
		}
		if (fp) {
			if (!fgets(prog, sizeof(prog), fp))
				prog[0] = '\0';
			fclose(fp);
		}
		prog[strcspn(prog, "\n")] = '\0';
		/* a job that succeeded keeps its last line if it is the one
		 * that says it is done (and why training stopped) */
		if (ok && strncmp(prog, "100% done", 9) != 0)
			snprintf(prog, sizeof(prog), "100%% done");
		json_object_set_new(rec, "progress", json_string(prog));
	}
	json_object_set_new(rec, "files", json_object());
	keep_file(fs, j->dir, "log", rec);
	keep_file(fs, j->dir, "metrics", rec);
	keep_file(fs, j->dir, "split", rec);
	if (job_save(fs, j->name, rec) < 0)
		fs_log(fs, 3, "jobs/%s: cannot save the record", j->name);
	fs_log(fs, 6, "jobs/%s: %s%s%s", j->name, ok ? "succeeded" : "failed",
	       reason ? ": " : "", reason ? reason : "");
	status_text(rec, line, sizeof(line));
	pthread_mutex_lock(&r->lock);
	json_decref(j->rec);
	j->rec = rec;
	json_decref(j->plan);
	j->plan = NULL;
	j->state = JOB_ENDED;
	pthread_cond_broadcast(&r->cond); /* job_wait_end */
	r->running--;
	pthread_mutex_unlock(&r->lock);
	dir_aside(r->fs, j, aside, sizeof(aside));
	fs_unpark(r->fs, j, line, strlen(line));
	if (aside[0])
		rm_rf(aside);
	json_decref(res);
	json_decref(plan);
}

static void job_fail_now(struct runner *r, struct job *j, const char *reason)
{
	json_t *rec;
	char line[1200], when[32];

	iso_now(when, sizeof(when));
	pthread_mutex_lock(&r->lock);
	rec = json_deep_copy(j->rec);
	pthread_mutex_unlock(&r->lock);
	json_object_set_new(rec, "status", json_string("failed"));
	json_object_set_new(rec, "reason", json_string(reason));
	json_object_set_new(rec, "ended", json_string(when));
	job_save(r->fs, j->name, rec);
	status_text(rec, line, sizeof(line));
	pthread_mutex_lock(&r->lock);
	json_decref(j->rec);
	j->rec = rec;
	json_decref(j->plan);
	j->plan = NULL;
	j->state = JOB_ENDED;
	pthread_cond_broadcast(&r->cond); /* job_wait_end */
	pthread_mutex_unlock(&r->lock);
	fs_log(r->fs, 6, "jobs/%s: failed: %s", j->name, reason);
	fs_unpark(r->fs, j, line, strlen(line));
}

static unsigned max_jobs(struct fs *fs)
{
	return fs->opts.jobs ? fs->opts.jobs : 2;
}

/*
 * Which user a job's uid stands for in the queue: how many jobs of theirs
 * run now, and when they last had one started.  Under r->lock.
 */
static void uid_share_locked(struct runner *r, uid_t uid, unsigned *running,
			     uint64_t *last)
{
	*running = 0;
	*last = 0;
	for (struct job *j = r->jobs; j; j = j->next) {
		if (j->uid != uid)
			continue;
		if (j->state == JOB_RUNNING)
			(*running)++;
		if (j->started > *last)
			*last = j->started;
	}
}

/*
 * The queued job to start next, fairly between users: the user with the
 * fewest jobs running, then the one served least recently, then the
 * oldest job of theirs.  So one user's hundred queued jobs hold no one
 * else's back by more than one slot.  Under r->lock.
 */
static struct job *next_fair_locked(struct runner *r)
{
	struct job *best = NULL;
	unsigned best_running = 0, running;
	uint64_t best_last = 0, last;

	for (struct job *j = r->jobs; j; j = j->next) {
		if (j->state != JOB_QUEUED || j->cancel)
			continue;
		uid_share_locked(r, j->uid, &running, &last);
		if (!best || running < best_running ||
		    (running == best_running && last < best_last)) {
			best = j;
			best_running = running;
			best_last = last;
		}
	}
	return best;
}

/*
 * The resident memory of a process, in bytes (0 if it is gone).  The bound
 * on a job's memory is on what it holds, checked every SCHED_TICK_MS: an
 * address-space limit (RLIMIT_AS) fails jobs that merely reserve, as
 * OpenBLAS's buffers and the sanitizers' shadow do, and then a job hangs
 * in a BLAS thread instead of failing.
 */
static uint64_t resident_bytes(pid_t pid)
{
	char path[64];
	unsigned long long size = 0, rss = 0;
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
	fp = fopen(path, "re");
	if (!fp)
		return 0;
	if (fscanf(fp, "%llu %llu", &size, &rss) != 2)
		rss = 0;
	fclose(fp);
	return (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void *sched_main(void *arg)
{
	struct runner *r = arg;
	double next_tick = 0;

	pthread_mutex_lock(&r->lock);
	while (!r->stopping || r->running) {
		struct job *start = NULL, *cancelled = NULL;
		struct timespec ts;

		for (struct job *j = r->jobs; j; j = j->next) {
			if (j->state == JOB_QUEUED && j->cancel) {
				cancelled = j;
				break;
			}
		}
		if (!cancelled && !r->stopping && r->running < max_jobs(r->fs))
			start = next_fair_locked(r);
		if (cancelled) {
			/* runner_stop cancels queued jobs too: say why */
			const char *why = r->stopping ? "cancelled by unmount"
						      : "cancelled";

			atomic_fetch_add(&cancelled->refs, 1);
			pthread_mutex_unlock(&r->lock);
			job_fail_now(r, cancelled, why);
			job_put(cancelled);
			pthread_mutex_lock(&r->lock);
			continue;
		}
		if (start) {
			json_t *plan = json_incref(start->plan);
			pid_t pid = 0;
			double timeout;
			int rc;

			start->state = JOB_RUNNING;
			start->started = ++r->starts;
			start->memory = (uint64_t)json_number_value(
				json_object_get(plan, "memory"));
			r->running++;
			atomic_fetch_add(&start->refs, 1);
			pthread_mutex_unlock(&r->lock);
			rc = job_spawn(r, start, plan, &pid);
			timeout = json_number_value(
				json_object_get(plan, "timeout"));
			json_decref(plan);
			if (rc < 0) {
				char why[PATH_MAX + 300];

				if (rc == -EBADMSG)
					snprintf(why, sizeof(why),
						 "the dataset's content in the "
						 "store does not match its "
						 "hash: not read");
				else
					snprintf(why, sizeof(why),
						 "cannot start the job program "
						 "%s: %s",
						 r->jobbin, strerror(-rc));
				pthread_mutex_lock(&r->lock);
				r->running--;
				pthread_mutex_unlock(&r->lock);
				job_fail_now(r, start, why);
			} else {
				char when[32];
				json_t *rec;

				iso_now(when, sizeof(when));
				pthread_mutex_lock(&r->lock);
				start->pid = pid;
				watch_start(r, start);
				start->deadline =
					timeout > 0 ? now_mono() + timeout : 0;
				json_object_set_new(start->rec, "status",
						    json_string("running"));
				json_object_set_new(start->rec, "started",
						    json_string(when));
				rec = json_deep_copy(start->rec);
				pthread_mutex_unlock(&r->lock);
				job_save(r->fs, start->name, rec);
				json_decref(rec);
				fs_log(r->fs, 6, "jobs/%s: running (pid %d)",
				       start->name, (int)pid);
			}
			job_put(start);
			pthread_mutex_lock(&r->lock);
			continue;
		}
		/* feature sets' schedules, about once a second */
		if (!r->stopping && !r->fs->opts.read_only &&
		    now_mono() >= next_tick) {
			next_tick = now_mono() + 1;
			pthread_mutex_unlock(&r->lock);
			featsync_tick(r->fs);
			pthread_mutex_lock(&r->lock);
			continue;
		}
		/* reap, time out, cancel */
		for (struct job *j = r->jobs; j; j = j->next) {
			int ws;
			pid_t got;
			double now = now_mono();
			bool late;

			if (j->state != JOB_RUNNING || j->pid <= 0)
				continue;
			late = j->deadline > 0 && now > j->deadline;
			if (j->memory && !j->resident && j->cancel_at == 0 &&
			    resident_bytes(j->pid) > j->memory) {
				/* over its memory: no grace, it may take more */
				j->resident = resident_bytes(j->pid);
				kill(j->pid, SIGKILL);
				j->cancel_at = now;
			}
			if ((j->cancel || late || r->stopping) &&
			    j->cancel_at == 0) {
				if (r->stopping && !j->cancel)
					j->cancel = true;
				kill(j->pid, SIGTERM);
				j->cancel_at = now;
			} else if (j->cancel_at > 0 &&
				   now - j->cancel_at > CANCEL_GRACE_S) {
				kill(j->pid, SIGKILL);
			}
			got = waitpid(j->pid, &ws, WNOHANG);
			if (got == j->pid) {
				j->pid = 0;
				atomic_fetch_add(&j->refs, 1);
				pthread_mutex_unlock(&r->lock);
				job_finish(r, j, ws, late);
				job_put(j);
				pthread_mutex_lock(&r->lock);
				break;
			}
		}
		ts = deadline_in(SCHED_TICK_MS);
		cond_wait_until(&r->cond, &r->lock, &ts);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

static int load_one(void *arg, const char *key, const char *val, size_t len)
{
	struct runner *r = arg;
	json_t *rec = json_loadb(val, len, 0, NULL);
	const char *st = json_string_value(json_object_get(rec, "status"));
	struct job *j;

	if (!rec || !st) {
		json_decref(rec);
		return 0;
	}
	j = calloc(1, sizeof(*j));
	if (!j) {
		json_decref(rec);
		return -ENOMEM;
	}
	j->runner = r;
	snprintf(j->name, sizeof(j->name), "%s", key);
	snprintf(j->dir, sizeof(j->dir), "%s/jobs/%s", r->fs->opts.cache_dir,
		 key);
	j->refs = 1;
	j->rec = rec;
	j->uid = (uid_t)json_integer_value(json_object_get(rec, "uid"));
	j->state = JOB_ENDED;
	/* a read-only mount shows the writer's jobs as they are */
	if (!r->fs->opts.read_only &&
	    (strcmp(st, "queued") == 0 || strcmp(st, "running") == 0)) {
		/* the daemon stopped before this job ended */
		json_object_set_new(rec, "status", json_string("failed"));
		json_object_set_new(
			rec, "reason",
			json_string("interrupted: the daemon stopped before "
				    "the job ended"));
		job_save(r->fs, j->name, rec);
		rm_rf(j->dir);
	}
	append_locked(r, j);
	return 0;
}

static int created_cmp(const void *a, const void *b)
{
	json_t *ra = (*(struct job *const *)a)->rec;
	json_t *rb = (*(struct job *const *)b)->rec;
	const char *ca = json_string_value(json_object_get(ra, "created"));
	const char *cb = json_string_value(json_object_get(rb, "created"));
	int c = strcmp(ca ? ca : "", cb ? cb : "");

	return c ? c
		 : strcmp((*(struct job *const *)a)->name,
			  (*(struct job *const *)b)->name);
}

/* fs->jobs_read_dataset: a queued or running job reading name@ver. */
static int jobs_read_dataset(struct fs *fs, const char *name, unsigned ver,
			     char *why, size_t whylen)
{
	struct runner *r = fs->runner;
	int rc = 0;

	pthread_mutex_lock(&r->lock);
	for (struct job *j = r->jobs; j && !rc; j = j->next) {
		json_t *ds = json_object_get(j->plan, "dataset");
		const char *n = json_string_value(json_object_get(ds, "name"));
		unsigned v = (unsigned)json_integer_value(
			json_object_get(ds, "version"));

		if ((j->state != JOB_QUEUED && j->state != JOB_RUNNING) ||
		    !n || strcmp(n, name) != 0 || (ver && ver != v))
			continue;
		snprintf(why, whylen, "job %s reads v%u", j->name, v);
		rc = 1;
	}
	pthread_mutex_unlock(&r->lock);
	return rc;
}

int runner_start(struct fs *fs)
{
	struct runner *r = calloc(1, sizeof(*r));
	struct meta_txn *t;
	size_t n = 0;
	int rc;

	if (!r)
		return -ENOMEM;
	r->fs = fs;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	job_bin_path(r);
	fs->runner = r;
	fs->jobs_read_dataset = jobs_read_dataset;
	asides_remove(fs);
	rc = meta_txn_begin(fs->meta, true, &t);
	if (rc < 0)
		return rc;
	rc = meta_scan(t, META_JOB, "", NULL, load_one, r);
	meta_txn_abort(t);
	if (rc < 0)
		return rc;
	/* creation order */
	for (struct job *j = r->jobs; j; j = j->next)
		n++;
	if (n > 1) {
		struct job **v = calloc(n, sizeof(*v));
		size_t i = 0;

		if (v) {
			for (struct job *j = r->jobs; j; j = j->next)
				v[i++] = j;
			qsort(v, n, sizeof(*v), created_cmp);
			r->jobs = NULL;
			for (i = 0; i < n; i++)
				append_locked(r, v[i]);
			free(v);
		}
	}
	rc = pthread_create(&r->thread, NULL, sched_main, r);
	if (rc)
		return -rc;
	r->started = true;
	return 0;
}

void runner_stop(struct fs *fs)
{
	struct runner *r = fs->runner;

	if (!r)
		return;
	pthread_mutex_lock(&r->lock);
	r->stopping = true;
	for (struct job *j = r->jobs; j; j = j->next)
		if (j->state != JOB_ENDED)
			j->cancel = true;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	if (r->started)
		pthread_join(r->thread, NULL);
	/* queued jobs never started: they end here, marked so */
	for (struct job *j = r->jobs; j; j = j->next)
		if (j->state != JOB_ENDED)
			job_fail_now(r, j, "cancelled by unmount");
	fs_unpark_all(fs, "failed: cancelled by unmount\n", 29);
	while (r->jobs) {
		struct job *j = r->jobs;

		r->jobs = j->next;
		job_put(j);
	}
	for (size_t i = 0; i < r->npending; i++)
		free(r->pending[i]);
	free(r->pending);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->lock);
	free(r);
	fs->runner = NULL;
}

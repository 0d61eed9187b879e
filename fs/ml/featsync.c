/* SPDX-License-Identifier: MIT */
/*
 * A feature set's sync, in the daemon (featsync.h): the ctl command made
 * a job of the runner (job_enqueue), and the job's out/ published as a
 * version of the set.  The job itself is job_sync.c, run as the writer;
 * what it leaves in its folder is the writer's, so it is taken through
 * private copies (put_copy) and bounded reads.  Part of the runner: it
 * shares runner_int.h.  Any FUSE worker (start), the scheduler thread
 * (publish).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "csv.h"
#include "featonline.h"
#include "featspec.h"
#include "featsync.h"
#include "fs.h"
#include "hostfile.h"
#include "names.h"
#include "repo.h"
#include "runner.h"
#include "runner_int.h"

#define STATS_MAX ((off_t)16 << 20)

/* The number of set's last sync job (its name: "<set>-sync-<n>"), or 0. */
static unsigned last_sync(struct fs *fs, const char *set)
{
	char prefix[300];

	snprintf(prefix, sizeof(prefix), "%s-sync-", set);
	return job_last_number(fs, prefix);
}

int featsync_last(struct fs *fs, const char *set, char *job, size_t len)
{
	unsigned n = last_sync(fs, set);

	if (!n)
		return -ENOENT;
	snprintf(job, len, "%s-sync-%u", set, n);
	return 0;
}

/* A time of the ctl command: seconds since the epoch, or ISO 8601. */
static bool time_arg(const char *s, size_t n, double *out)
{
	return csv_parse_double(s, n, out) || csv_parse_time(s, n, out);
}

/* "sync" or "materialize START END" (one line): the range, or none. */
static int command_parse(const char *cmd, size_t len, json_t **range,
			 struct problem *pb)
{
	const char *words[4];
	size_t lens[4], n = 0;
	const char *p = cmd, *end = cmd + len;
	double from, to;

	*range = NULL;
	while (end > p && (end[-1] == '\n' || end[-1] == ' '))
		end--;
	if (memchr(p, '\n', (size_t)(end - p)))
		return problem_set(pb, 2, 1, "one command a write");
	while (p < end && n < 4) {
		const char *w;

		while (p < end && *p == ' ')
			p++;
		w = p;
		while (p < end && *p != ' ')
			p++;
		if (p > w) {
			words[n] = w;
			lens[n++] = (size_t)(p - w);
		}
	}
	if (n == 1 && lens[0] == 4 && memcmp(words[0], "sync", 4) == 0)
		return 0;
	if (n >= 1 && lens[0] == 11 && memcmp(words[0], "materialize", 11) == 0) {
		if (n != 3)
			return problem_set(pb, 1, 1,
					   "materialize START END: two times "
					   "(ISO 8601 or seconds since the "
					   "epoch)");
		if (!time_arg(words[1], lens[1], &from))
			return problem_set(pb, 1, (unsigned)(words[1] - cmd) + 1,
					   "START: not a time");
		if (!time_arg(words[2], lens[2], &to))
			return problem_set(pb, 1, (unsigned)(words[2] - cmd) + 1,
					   "END: not a time");
		if (to < from)
			return problem_set(pb, 1, (unsigned)(words[2] - cmd) + 1,
					   "END is before START");
		*range = json_pack("[f, f]", from, to);
		return *range ? 0 : -ENOMEM;
	}
	return problem_set(pb, 1, 1,
			   "unknown command (expected sync, or materialize "
			   "START END)");
}

/* The source dataset's version for the plan: {name, version, blob, size}. */
static int source_resolve(struct fs *fs, const char *src,
			  const struct host_user *writer, json_t **out,
			  struct problem *pb)
{
	char name[256];
	unsigned ver = 0;
	json_t *rec, *man;
	int rc;

	*out = NULL;
	if (name_ref_parse(src, name, sizeof(name), &ver) < 0)
		return problem_set(pb, 0, 0, "source: \"%s\" is not a dataset",
				   src);
	if (repo_get(fs, &repo_datasets, name, &rec) < 0)
		return problem_set(pb, 0, 0, "source: no dataset \"%s\"", name);
	rc = host_may_record(writer, rec, R_OK | X_OK) ? 0 : -EACCES;
	json_decref(rec);
	if (rc < 0) {
		problem_set(pb, 0, 0, "source \"%s\": permission denied", name);
		return rc;
	}
	rc = ds_version_ready(fs, name, ver, &man, pb);
	if (rc == -ENOENT)
		return problem_set(pb, 0, 0, "source \"%s\" has no %s", name,
				   ver ? "such version" : "version yet");
	if (rc < 0)
		return rc;
	*out = json_pack("{s:s, s:I, s:s, s:I}", "name", name, "version",
			 json_integer_value(json_object_get(man, "version")),
			 "blob",
			 json_string_value(json_object_get(man, "blob"))
				 ? json_string_value(json_object_get(man, "blob"))
				 : "",
			 "size", json_integer_value(json_object_get(man, "size")));
	json_decref(man);
	return *out ? 0 : -ENOMEM;
}

int featsync_start(struct fs *fs, const char *set, const char *cmd,
		   size_t len, bool dry_run, const struct fs_ctx *ctx,
		   struct problem *pb)
{
	struct host_user writer = { ctx->uid, ctx->gid, ctx->pid };
	json_t *range, *man = NULL, *rec = NULL, *src = NULL;
	json_t *plan = NULL, *jrec = NULL, *spec;
	char job[320], when[32];
	const char *source, *inc;
	uint64_t cut = 0;
	unsigned ver;
	int rc;

	rc = command_parse(cmd, len, &range, pb);
	if (rc < 0)
		return rc;
	rc = repo_get(fs, &repo_features, set, &rec);
	if (rc == 0 && !host_may_record(&writer, rec, W_OK | X_OK))
		rc = -EACCES;
	if (rc == 0) {
		rc = repo_version(fs, &repo_features, set, 0, &man);
		if (rc == -ENOENT)
			rc = problem_set(pb, 0, 0,
					 "no spec yet: write one to spec first");
	}
	if (rc < 0)
		goto out;
	spec = json_object_get(man, "spec");
	ver = (unsigned)json_integer_value(json_object_get(man, "version"));
	source = json_string_value(json_object_get(spec, "source"));
	if (source) {
		rc = source_resolve(fs, source, &writer, &src, pb);
		if (rc < 0)
			goto out;
	}
	if (dry_run)
		goto out;
	/* the event log up to now goes with it; later events wait */
	rc = featonline_cut(fs, set, &cut);
	if (rc < 0)
		goto out;
	inc = json_string_value(json_object_get(rec, "incarnation"));
	snprintf(job, sizeof(job), "%s-sync-%u", set, last_sync(fs, set) + 1);
	iso_now(when, sizeof(when));
	plan = json_pack("{s:s, s:s, s:i, s:i, s:s, s:i, s:O, s:O*, s:O*, "
			 "s:I, s:s}",
			 "kind", "sync", "name", job, "uid", (int)ctx->uid,
			 "gid", (int)ctx->gid, "feature_set", set, "version",
			 (int)ver, "spec", spec, "dataset", src, "range",
			 range, "log_cut", (json_int_t)cut, "log_incarnation",
			 inc ? inc : "0");
	jrec = json_pack("{s:s, s:s, s:s, s:{s:s, s:i, s:s, s:O*}, s:s, "
			 "s:i, s:i, s:s, s:O*}",
			 "name", job, "status", "queued", "kind", "sync",
			 "spec", "feature_set", set, "version", (int)ver,
			 "command", range ? "materialize" : "sync", "range",
			 range, "created", when, "uid", (int)ctx->uid, "gid",
			 (int)ctx->gid, "feature_set", set, "dataset", src);
	rc = job_enqueue(fs, job, plan, jrec, ctx);
	plan = jrec = NULL;
	if (rc == 0)
		fs_log(fs, 6, "jobs/%s: queued (sync of features/%s v%u)", job,
		       set, ver);
out:
	json_decref(range);
	json_decref(man);
	json_decref(rec);
	json_decref(src);
	return rc;
}

/* out/stats.json of the job, bounded: the writer made it. */
static json_t *stats_load(const char *dir)
{
	json_t *j = NULL;
	struct stat st;
	int fd;

	if (host_openat_nofollow(dir, "out/stats.json", O_RDONLY, &fd) < 0)
		return NULL;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    st.st_size <= STATS_MAX)
		j = json_loadfd(fd, JSON_REJECT_DUPLICATES, NULL);
	close(fd);
	if (j && !json_is_object(j)) {
		json_decref(j);
		j = NULL;
	}
	return j;
}

static int keep(struct fs *fs, const char *dir, const char *file,
		const char *as, json_t *files)
{
	char hash[33];
	uint64_t size;
	int rc = put_copy(fs, dir, file, hash, &size);

	if (rc == 0 && json_object_set_new(files, as,
					   json_pack("{s:s, s:I}", "hash", hash,
						     "size",
						     (json_int_t)size)) < 0)
		rc = -ENOMEM;
	return rc;
}

int featsync_publish(struct fs *fs, const char *dir, json_t *plan,
		     json_t *jrec, unsigned *ver)
{
	const char *set = json_string_value(json_object_get(plan, "feature_set"));
	const char *job = json_string_value(json_object_get(plan, "name"));
	struct repo_origin origin = { "sync", job, NULL, 0, 0, 0 };
	struct host_user writer = { 0 };
	json_t *stats, *files = json_object(), *man = NULL, *rec;
	json_t *src = json_object_get(plan, "dataset");
	bool created;
	int rc;

	writer.uid = (uid_t)json_integer_value(json_object_get(jrec, "uid"));
	writer.gid = (gid_t)json_integer_value(json_object_get(jrec, "gid"));
	origin.uid = writer.uid;
	if (!set || !files)
		return -ENOMEM;
	/* judged again: the set's mode may have changed meanwhile */
	rc = repo_get(fs, &repo_features, set, &rec);
	if (rc == 0) {
		if (!host_may_record(&writer, rec, W_OK | X_OK))
			rc = -EACCES;
		json_decref(rec);
	}
	/* a spec written while it ran is the set's definition now: this
	 * history is of the one before (the next sync makes the new one's) */
	if (rc == 0 && repo_version(fs, &repo_features, set, 0, &rec) == 0) {
		if (!json_equal(json_object_get(rec, "spec"),
				json_object_get(plan, "spec")))
			rc = -ESTALE;
		json_decref(rec);
	}
	stats = rc == 0 ? stats_load(dir) : NULL;
	if (rc == 0 && !stats)
		rc = -EIO;
	if (rc == 0)
		rc = keep(fs, dir, "out/history", "history", files);
	if (rc == 0)
		rc = keep(fs, dir, "out/offline.csv", "offline.csv", files);
	if (rc == 0) {
		man = json_pack("{s:s, s:O, s:{s:s, s:O*}, s:O*, s:O, s:O}",
				"feature_set", set, "spec",
				json_object_get(plan, "spec"), "sync", "job",
				job, "range", json_object_get(plan, "range"),
				"log_cut", json_object_get(plan, "log_cut"),
				"stats", stats, "files", files);
		if (man && src)
			json_object_set_new(
				man, "source",
				json_pack("{s:O, s:O}", "name",
					  json_object_get(src, "name"),
					  "version",
					  json_object_get(src, "version")));
		rc = man ? repo_commit(fs, &repo_features, set, man, &origin,
				       ver, &created)
			 : -ENOMEM;
	}
	/* the online store follows now; a failure here is retried by the
	 * next read of online/ */
	if (rc == 0 && featonline_refresh(fs, set) < 0)
		fs_log(fs, 4, "features/%s: online store not loaded yet", set);
	json_decref(man);
	json_decref(stats);
	json_decref(files);
	return rc;
}

/* A set whose spec has a schedule: a sync once that long after the last
 * one started (now, if none did), unless one is queued or running. */
static int tick_one(void *arg, const char *set)
{
	struct fs *fs = arg;
	struct problem pb = { 0 };
	struct fs_ctx ctx = { 0 };
	json_t *man = NULL, *rec = NULL, *jrec = NULL;
	struct job *j = NULL;
	char job[320];
	const char *st, *created;
	int64_t every;
	double last;

	if (repo_version(fs, &repo_features, set, 0, &man) < 0)
		return 0;
	if (featspec_duration(json_string_value(json_object_get(
				      json_object_get(man, "spec"),
				      "schedule")),
			      &every) < 0 ||
	    repo_get(fs, &repo_features, set, &rec) < 0)
		goto out;
	if (featsync_last(fs, set, job, sizeof(job)) == 0 &&
	    job_get(fs, job, &j) == 0) {
		jrec = job_record(j);
		job_put(j);
		st = json_string_value(json_object_get(jrec, "status"));
		created = json_string_value(json_object_get(jrec, "created"));
		if (!st || strcmp(st, "queued") == 0 ||
		    strcmp(st, "running") == 0 || !created ||
		    !csv_parse_time(created, strlen(created), &last) ||
		    (double)time(NULL) - last < (double)every)
			goto out;
	}
	/* as the set's owner, with the groups the group database gives */
	ctx.uid = (uid_t)json_integer_value(json_object_get(rec, "uid"));
	ctx.gid = (gid_t)json_integer_value(json_object_get(rec, "gid"));
	if (featsync_start(fs, set, "sync\n", 5, false, &ctx, &pb) < 0)
		fs_log(fs, 4, "features/%s: the scheduled sync did not start: "
			      "%s",
		       set, pb.msg[0] ? pb.msg : "error");
out:
	json_decref(jrec);
	json_decref(rec);
	json_decref(man);
	return 0;
}

void featsync_tick(struct fs *fs)
{
	repo_list(fs, &repo_features, tick_one, fs);
}

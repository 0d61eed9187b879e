/* SPDX-License-Identifier: MIT */
/*
 * Model bundles in the registry (modelbundle.h): models/<m>/v<n>/bundle.tar
 * made from a version's blobs, and models/<m>/import, which takes one.
 *
 * An import is judged in steps, and stops at the first that fails, with
 * nothing of it in the registry:
 *   1. the archive (bundle.c): tar or gzip'd tar, only its five members;
 *   2. its bundle.json and model header agree, and a train plugin of that
 *      name reading that model-format major is installed here;
 *   3. a job, "<m>-import-<n>", scores sample.csv with that plugin, out
 *      of process and as the writer (the job program's batch scoring);
 *   4. its answers are those the bundle recorded: then the version is
 *      committed, its lineage naming the bundle and both plugin hashes.
 * The members are put as blobs before the job (it reads them); if the
 * import fails, no version names them and gc takes them.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "bundle.h"
#include "csv.h"
#include "deadline.h"
#include "fs.h"
#include "hostfile.h"
#include "jsonout.h"
#include "mlcore.h"
#include "modelbundle.h"
#include "names.h"
#include "plugin.h"
#include "predict.h"
#include "repo.h"
#include "runner.h"
#include "runner_int.h"
#include "store.h"

#define BUNDLE_FORMAT 1
#define IMPORT_WAIT_S 300.0 /* the longest an import write waits */
#define IMPORT_QUEUE_S 60   /* ... for the import before it */

/* The file of manifest man (its hash), or NULL. */
static const char *file_hash(json_t *man, const char *file)
{
	return json_string_value(json_object_get(
		json_object_get(json_object_get(man, "files"), file), "hash"));
}

static int blob_read(struct fs *fs, json_t *man, const char *file,
		     uint64_t max, char **buf, size_t *len)
{
	const char *hash = file_hash(man, file);
	char key[96];

	if (!hash)
		return -ENODATA;
	repo_blob_key(hash, key, sizeof(key));
	return store_get(fs->store, key, (size_t)max, buf, len);
}

/*
 * bundle.json of version man, whose meta.json is meta: what it is, and
 * what reads it.  Compact, keys in this order: made the same every time.
 */
static char *info_render(json_t *man, json_t *meta, const char *model,
			 unsigned ver)
{
	json_t *ds = json_object_get(man, "dataset");
	json_t *fmt = json_object_get(meta, "model_format");
	char dsref[300] = "";
	json_t *info;
	char *text;

	if (json_string_value(json_object_get(ds, "name")))
		snprintf(dsref, sizeof(dsref), "%s@%d",
			 json_string_value(json_object_get(ds, "name")),
			 (int)json_integer_value(json_object_get(ds, "version")));
	info = json_pack(
		"{s:i, s:s, s:i, s:s?, s:s?, s:s?, s:s?, s:s?, s:I, s:s?, "
		"s:s?}",
		"bundle", BUNDLE_FORMAT, "model", model, "version", (int)ver,
		"created", json_string_value(json_object_get(man, "created")),
		"task", json_string_value(json_object_get(man, "task")),
		"plugin", json_string_value(json_object_get(meta, "algorithm")),
		"plugin_version",
		json_string_value(json_object_get(meta, "plugin_version")),
		"plugin_hash",
		json_string_value(json_object_get(meta, "plugin_hash")),
		"model_format",
		(json_int_t)(json_is_integer(fmt) ? json_integer_value(fmt) : 1),
		"job", json_string_value(json_object_get(man, "job")),
		"dataset", dsref[0] ? dsref : NULL);
	if (!info)
		return NULL;
	if (json_is_null(json_object_get(info, "dataset")))
		json_object_del(info, "dataset");
	if (json_object_get(man, "imported"))
		json_object_set(info, "imported",
				json_object_get(man, "imported"));
	text = json_dumps_short(info, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(info);
	return text;
}

/* The manifest and meta.json of models/<model>/v<ver>. */
static int version_load(struct fs *fs, const char *model, unsigned ver,
			json_t **man, json_t **meta)
{
	char *buf = NULL;
	size_t len = 0;
	int rc;

	*meta = NULL;
	rc = repo_version(fs, &repo_models, model, ver, man);
	if (rc < 0)
		return rc;
	rc = blob_read(fs, *man, "meta.json", bundle_caps[BUNDLE_META], &buf,
		       &len);
	if (rc == 0) {
		*meta = json_loadb(buf, len, 0, NULL);
		rc = json_is_object(*meta) ? 0 : -EIO;
	}
	free(buf);
	if (rc < 0) {
		json_decref(*man);
		json_decref(*meta);
		*man = *meta = NULL;
	}
	return rc;
}

int mbundle_size(struct fs *fs, const char *model, unsigned ver,
		 uint64_t *size)
{
	uint64_t len[BUNDLE_NMEMBERS] = { 0 };
	json_t *man, *meta;
	char *info;
	int rc = version_load(fs, model, ver, &man, &meta);

	if (rc < 0)
		return rc;
	info = info_render(man, meta, model, ver);
	len[BUNDLE_INFO] = info ? strlen(info) : 0;
	for (int i = BUNDLE_MODEL; i < BUNDLE_NMEMBERS; i++)
		len[i] = (uint64_t)json_integer_value(json_object_get(
			json_object_get(json_object_get(man, "files"),
					bundle_names[i]),
			"size"));
	*size = bundle_size(len);
	rc = info ? 0 : -ENOMEM;
	free(info);
	json_decref(man);
	json_decref(meta);
	return rc;
}

int mbundle_make(struct fs *fs, const char *model, unsigned ver, uid_t uid,
		 const char *path, void **out, size_t *outlen)
{
	char *data[BUNDLE_NMEMBERS] = { NULL };
	uint64_t len[BUNDLE_NMEMBERS] = { 0 };
	json_t *man, *meta;
	int rc = version_load(fs, model, ver, &man, &meta);

	*out = NULL;
	if (rc < 0)
		return rc;
	data[BUNDLE_INFO] = info_render(man, meta, model, ver);
	rc = data[BUNDLE_INFO] ? 0 : -ENOMEM;
	if (rc == 0)
		len[BUNDLE_INFO] = strlen(data[BUNDLE_INFO]);
	for (int i = BUNDLE_MODEL; rc == 0 && i < BUNDLE_NMEMBERS; i++) {
		size_t n = 0;
		char key[96];

		rc = blob_read(fs, man, bundle_names[i], bundle_caps[i],
			       &data[i], &n);
		if (rc == -EBADMSG) {
			repo_blob_key(file_hash(man, bundle_names[i]), key,
				      sizeof(key));
			rc = repo_blob_error(fs, uid, path, key, rc);
		}
		len[i] = n;
	}
	if (rc == 0) {
		const char *when =
			json_string_value(json_object_get(man, "created"));
		struct problem pb = { 0 };
		double t = 0;

		if (!when || !csv_parse_time(when, strlen(when), &t))
			t = 0;
		rc = bundle_write((const void *const *)data, len, (time_t)t, out,
				  outlen, pb.msg, sizeof(pb.msg));
		if (rc == -EIO) {
			/* a fault of ours, not the version's: say it */
			snprintf(pb.path, sizeof(pb.path), "%s", path);
			fs_damage(fs, uid, &pb);
		}
	}
	for (int i = 0; i < BUNDLE_NMEMBERS; i++)
		free(data[i]);
	json_decref(man);
	json_decref(meta);
	return rc;
}

/* --- import --- */

static int refuse(struct problem *pb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int refuse(struct problem *pb, const char *fmt, ...)
{
	char msg[sizeof(pb->msg)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	problem_set(pb, 0, 0, "%s", msg);
	return -EINVAL;
}

/* Text for logs and lineage: printable, short. */
static bool plain(json_t *v, size_t max)
{
	const char *s = json_string_value(v);
	size_t n = s ? json_string_length(v) : 0;

	if (!s || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

/* What bundle.json says of its origin: names, numbers, plain text. */
static int info_check(json_t *info, char *msg, size_t msglen)
{
	static const char *const texts[] = { "created", "job", "dataset",
					     "plugin_version", "plugin_hash",
					     "task", "plugin" };
	json_t *ver = json_object_get(info, "version");
	const char *model = json_string_value(json_object_get(info, "model"));

	if (!model || node_name_check(model, NULL) < 0) {
		snprintf(msg, msglen, "\"model\" must be a model's name");
		return -EINVAL;
	}
	if (!json_is_integer(ver) || json_integer_value(ver) < 1 ||
	    json_integer_value(ver) > UINT32_MAX) {
		snprintf(msg, msglen, "\"version\" must be a version number");
		return -EINVAL;
	}
	if (node_name_check(json_string_value(json_object_get(info, "plugin")),
			    NULL) < 0) {
		snprintf(msg, msglen, "\"plugin\" must be a plugin's name");
		return -EINVAL;
	}
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		json_t *v = json_object_get(info, texts[i]);

		if (v && !plain(v, 300)) {
			snprintf(msg, msglen, "\"%s\" must be plain text",
				 texts[i]);
			return -EINVAL;
		}
	}
	return 0;
}

/* Put member i as a blob: its hash and size into files. */
static int member_put(struct fs *fs, const struct bundle *b, int i,
		      json_t *files)
{
	char path[PATH_MAX], hash[33];
	uint64_t size;
	int fd, rc;

	rc = store_tmp_path(fs->store, path, sizeof(path));
	if (rc < 0)
		return rc;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	for (size_t at = 0; rc == 0 && at < b->len[i];) {
		ssize_t n = write(fd, (char *)b->data[i] + at, b->len[i] - at);

		if (n < 0 && errno != EINTR)
			rc = -errno;
		else if (n > 0)
			at += (size_t)n;
	}
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0)
		rc = repo_put_file(fs, path, hash, &size);
	if (rc < 0) {
		unlink(path);
		return rc;
	}
	return json_object_set_new(files, bundle_names[i],
				   json_pack("{s:s, s:I}", "hash", hash, "size",
					     (json_int_t)size));
}

/*
 * Steps 1 and 2: the archive, what it says it is, and the plugin here
 * that reads it.  *info (bundle.json) and *pl on success.
 */
static int bundle_check(struct fs *fs, const void *buf, size_t len,
			struct bundle *b, json_t **info,
			const struct plugin **pl, struct problem *pb)
{
	const char *name, *task, *hp;
	json_t *hdr = NULL, *meta, *hf;
	const void *w;
	size_t wlen;
	json_int_t fmt, hfmt;
	unsigned have, bit;
	char msg[300];
	int rc;

	*info = NULL;
	rc = bundle_read(buf, len, b, msg, sizeof(msg));
	if (rc == -EINVAL)
		return refuse(pb, "bundle: %s", msg);
	if (rc < 0 && msg[0])
		problem_set(pb, 0, 0, "%s", msg); /* libarchive's failure */
	if (rc < 0)
		return rc;
	*info = json_loadb(b->data[BUNDLE_INFO], b->len[BUNDLE_INFO],
			   JSON_REJECT_DUPLICATES, NULL);
	name = json_string_value(json_object_get(*info, "plugin"));
	task = json_string_value(json_object_get(*info, "task"));
	fmt = json_integer_value(json_object_get(*info, "model_format"));
	if (!json_is_object(*info) ||
	    json_integer_value(json_object_get(*info, "bundle")) !=
		    BUNDLE_FORMAT ||
	    !name || !task || fmt < 1)
		return refuse(pb, "bundle: bundle.json is not a bundle %d "
				  "description (\"bundle\", \"plugin\", "
				  "\"task\", \"model_format\")",
			      BUNDLE_FORMAT);
	rc = info_check(*info, msg, sizeof(msg));
	if (rc < 0)
		return refuse(pb, "bundle: bundle.json: %s", msg);
	rc = model_decode(b->data[BUNDLE_MODEL], b->len[BUNDLE_MODEL], &hdr, &w,
			  &wlen, msg, sizeof(msg));
	if (rc < 0)
		return refuse(pb, "bundle: member %s", msg);
	hp = json_string_value(json_object_get(hdr, "plugin"));
	hf = json_object_get(hdr, "model_format");
	hfmt = json_is_integer(hf) ? json_integer_value(hf) : 1;
	rc = 0;
	if (!hp || strcmp(hp, name) != 0 || hfmt != fmt ||
	    !json_string_value(json_object_get(hdr, "task")) ||
	    strcmp(json_string_value(json_object_get(hdr, "task")), task) != 0)
		rc = refuse(pb, "bundle: bundle.json says plugin \"%s\" format "
				"%lld (%s), the model file \"%s\" format %lld",
			    name, (long long)fmt, task, hp ? hp : "?",
			    (long long)hfmt);
	json_decref(hdr);
	if (rc < 0)
		return rc;
	*pl = plugin_find(fs_plugins(fs), MLFS_STAGE_TRAIN, name);
	if (!*pl)
		return refuse(pb, "bundle: it needs train plugin \"%s\", which "
				  "is not installed here (see .mlfs/plugins)",
			      name);
	have = plugin_model_format(*pl);
	if ((json_int_t)have != fmt)
		return refuse(pb, "bundle: train plugin \"%s\" here reads model "
				  "format %u; the bundle's model is format %lld",
			      name, have, (long long)fmt);
	bit = model_task(task);
	if (!(bit & ((const struct mlfs_train_ops *)(*pl)->desc->ops)->tasks))
		return refuse(pb, "bundle: train plugin \"%s\" here does not "
				  "learn %s",
			      name, task);
	meta = json_loadb(b->data[BUNDLE_META], b->len[BUNDLE_META],
			  JSON_REJECT_DUPLICATES, NULL);
	rc = 0;
	if (!json_is_object(meta))
		rc = refuse(pb, "bundle: meta.json is not a JSON object");
	else if (json_object_get(meta, "feature_sets"))
		rc = refuse(pb, "bundle: the model was trained on feature "
				"sets, which a bundle does not carry");
	json_decref(meta);
	if (rc < 0)
		return rc;
	meta = json_loadb(b->data[BUNDLE_METRICS], b->len[BUNDLE_METRICS],
			  JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
	if (!meta)
		rc = refuse(pb, "bundle: metrics.json is not JSON");
	json_decref(meta);
	return rc;
}

/* Step 3: the job's plan and record; the members' blobs in files. */
static int job_make(struct fs *fs, const char *model, const char *job,
		    const struct bundle *b, json_t *info,
		    const struct plugin *pl, const struct fs_ctx *ctx,
		    json_t **plan, json_t **rec)
{
	json_t *files = json_object();
	char when[32], mkey[96], skey[96];
	int rc = files ? 0 : -ENOMEM;

	for (int i = BUNDLE_MODEL; rc == 0 && i < BUNDLE_NMEMBERS; i++)
		rc = member_put(fs, b, i, files);
	if (rc < 0) {
		json_decref(files);
		return rc;
	}
	repo_blob_key(json_string_value(json_object_get(
			      json_object_get(files, "sample.csv"), "hash")),
		      skey, sizeof(skey));
	repo_blob_key(json_string_value(json_object_get(
			      json_object_get(files, "model"), "hash")),
		      mkey, sizeof(mkey));
	/* the job program's batch scoring, over the sample */
	*plan = json_pack(
		"{s:s, s:s, s:i, s:i, s:{s:s, s:i, s:s}, "
		"s:{s:s, s:O, s:s}, s:s, s:s, s:[], s:s, s:O, s:O, s:s}",
		"kind", "import", "name", job, "uid", (int)ctx->uid, "gid",
		(int)ctx->gid, "dataset", "name", "sample.csv", "version", 0,
		"blob", skey, "model", "name",
		json_string_value(json_object_get(info, "model"))
			? json_string_value(json_object_get(info, "model"))
			: "?",
		"version", json_object_get(info, "version")
			? json_object_get(info, "version")
			: json_null(),
		"blob", mkey, "plugin", pl->path, "output", model, "keep",
		"target", model, "files", files, "bundle", info,
		"plugin_hash", pl->hash);
	json_decref(files);
	iso_now(when, sizeof(when));
	*rec = json_pack("{s:s, s:s, s:s, s:O, s:s, s:i, s:i}", "name", job,
			 "status", "queued", "kind", "import", "spec", info,
			 "created", when, "uid", (int)ctx->uid, "gid",
			 (int)ctx->gid);
	return *plan && *rec ? 0 : -ENOMEM;
}

/* A refused import's members: gone now, unless a version has them. */
static void reap_members(struct fs *fs, json_t *files)
{
	const char *name;
	json_t *f;
	char key[96];

	json_object_foreach(files, name, f) {
		repo_blob_key(json_string_value(json_object_get(f, "hash")), key,
			      sizeof(key));
		repo_blob_reap(fs, key);
	}
}

int mbundle_import(struct fs *fs, const char *model, const void *buf,
		   size_t len, const struct fs_ctx *ctx, char *job,
		   size_t joblen, unsigned *ver, struct problem *pb)
{
	struct host_user writer = { ctx->uid, ctx->gid, ctx->pid };
	struct bundle b = { 0 };
	const struct plugin *pl = NULL;
	json_t *info = NULL, *plan = NULL, *jrec = NULL, *mrec, *res;
	json_t *files = NULL;
	static pthread_mutex_t import_lock = PTHREAD_MUTEX_INITIALIZER;
	struct timespec until;
	char prefix[300];
	struct job *j;
	int rc;

	*ver = 0;
	job[0] = '\0';
	rc = repo_get(fs, &repo_models, model, &mrec);
	if (rc < 0)
		return rc;
	if (!host_may_record(&writer, mrec, W_OK | X_OK))
		rc = -EACCES;
	json_decref(mrec);
	if (rc < 0)
		return rc;
	/*
	 * One import at a time: each may hold its members in memory (a
	 * gzip'd bundle inflates up to the caps) and as blobs until its job
	 * ends.  Others wait, a while.
	 */
	until = deadline_in((int64_t)IMPORT_QUEUE_S * 1000);
	if (pthread_mutex_clocklock(&import_lock, CLOCK_MONOTONIC, &until)) {
		problem_set(pb, 0, 0, "another import is running: try again");
		return -EBUSY;
	}
	rc = bundle_check(fs, buf, len, &b, &info, &pl, pb);
	if (rc < 0)
		goto out;
	snprintf(prefix, sizeof(prefix), "%s-import-", model);
	snprintf(job, joblen, "%s%u", prefix, job_last_number(fs, prefix) + 1);
	rc = job_make(fs, model, job, &b, info, pl, ctx, &plan, &jrec);
	bundle_free(&b);
	files = json_incref(json_object_get(plan, "files"));
	if (rc == 0) {
		rc = job_enqueue(fs, job, plan, jrec, ctx);
		plan = jrec = NULL;
	}
	if (rc < 0)
		goto out;
	fs_log(fs, 6, "jobs/%s: queued (import of a bundle of %s v%d)", job,
	       json_string_value(json_object_get(info, "model")),
	       (int)json_integer_value(json_object_get(info, "version")));
	rc = job_get(fs, job, &j);
	if (rc < 0)
		goto out;
	rc = job_wait_end(j, IMPORT_WAIT_S);
	res = rc == 0 ? job_record(j) : NULL;
	job_put(j);
	if (rc < 0) {
		problem_set(pb, 0, 0, "the import is still running as jobs/%s",
			    job);
		goto out;
	}
	if (json_string_value(json_object_get(res, "status")) &&
	    strcmp(json_string_value(json_object_get(res, "status")),
		   "succeeded") == 0) {
		*ver = (unsigned)json_integer_value(
			json_object_get(res, "model_version"));
	} else {
		rc = -EINVAL;
		const char *why =
			json_string_value(json_object_get(res, "reason"));

		problem_set(pb, 0, 0, "bundle: %s (jobs/%s)",
			    why ? why : "the import failed", job);
	}
	json_decref(res);
out:
	if (rc < 0 && rc != -ETIMEDOUT)
		reap_members(fs, files);
	pthread_mutex_unlock(&import_lock);
	json_decref(files);
	bundle_free(&b);
	json_decref(info);
	json_decref(plan);
	json_decref(jrec);
	return rc;
}

/* The writer's out/data.csv of the job in dir, at most max bytes. */
static int answers_load(const char *dir, size_t max, char **buf,
			size_t *len)
{
	struct stat st;
	int fd, rc;

	*buf = NULL;
	rc = host_openat_nofollow(dir, "out/data.csv", O_RDONLY, &fd);
	if (rc < 0)
		return rc;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size > max) {
		close(fd);
		return -EINVAL;
	}
	*buf = malloc((size_t)st.st_size + 1);
	rc = *buf ? 0 : -ENOMEM;
	for (size_t at = 0; rc == 0 && at < (size_t)st.st_size;) {
		ssize_t n = read(fd, *buf + at, (size_t)st.st_size - at);

		if (n < 0 && errno != EINTR)
			rc = -errno;
		else if (n == 0)
			rc = -EIO; /* shrank */
		else if (n > 0)
			at += (size_t)n;
	}
	close(fd);
	if (rc < 0) {
		free(*buf);
		*buf = NULL;
		return rc;
	}
	(*buf)[st.st_size] = '\0';
	*len = (size_t)st.st_size;
	return 0;
}

/* Step 4: the answers against the sample's, then the version. */
int mbundle_publish(struct fs *fs, const char *dir, json_t *plan,
		    json_t *rec, unsigned *ver, char *why, size_t whylen)
{
	const char *model = json_string_value(json_object_get(plan, "target"));
	const char *job = json_string_value(json_object_get(plan, "name"));
	json_t *info = json_object_get(plan, "bundle");
	json_t *files = json_object_get(plan, "files");
	json_t *wrap = json_pack("{s:O}", "files", files);
	const char *task = json_string_value(json_object_get(info, "task"));
	struct fs_ctx ctx = { 0 };
	struct host_user writer = { 0 };
	struct problem pb = { 0 };
	struct table *t = NULL;
	char *sample = NULL, *ans = NULL, *nl, path[PATH_MAX], when[32];
	char hash[33];
	size_t slen = 0, alen = 0;
	json_t *meta = NULL, *imported, *man, *mrec;
	uint64_t size;
	unsigned tbit;
	int rc;

	ctx.uid = writer.uid =
		(uid_t)json_integer_value(json_object_get(rec, "uid"));
	ctx.gid = writer.gid =
		(gid_t)json_integer_value(json_object_get(rec, "gid"));
	tbit = model_task(task);
	rc = blob_read(fs, wrap, "sample.csv", bundle_caps[BUNDLE_SAMPLE],
		       &sample, &slen);
	if (rc == 0)
		rc = table_parse(sample, slen, &t, &pb);
	if (rc < 0) {
		snprintf(why, whylen, "sample.csv: %s",
			 pb.msg[0] ? pb.msg : strerror(-rc));
		rc = -EINVAL;
		goto out;
	}
	rc = answers_load(dir, bundle_caps[BUNDLE_SAMPLE] * 2, &ans, &alen);
	nl = rc == 0 ? memchr(ans, '\n', alen) : NULL;
	if (!nl) {
		snprintf(why, whylen, "the job wrote no answers");
		rc = -EINVAL;
		goto out;
	}
	/* past the header line: one answer a row, as predict writes them */
	rc = sample_match(t, tbit, nl + 1, alen - (size_t)(nl + 1 - ans), why,
			  whylen);
	if (rc < 0)
		goto out;
	/*
	 * And as predict will serve it, in the daemon: the job ran as the
	 * writer, who could have answered for it; the header may also say
	 * more than the job's scoring reads (classes, inputs, the id).  A
	 * plugin's load that would crash on the weights crashed the job.
	 */
	{
		struct served *m = NULL;

		rc = served_get(fs,
				json_string_value(json_object_get(
					json_object_get(files, "model"),
					"hash")),
				&m, why, whylen);
		if (rc == 0)
			rc = served_check_sample(m, sample, slen, why, whylen);
		else
			rc = -EINVAL;
		served_put(m);
		if (rc < 0)
			goto out;
	}
	/* judged again: the model's mode may have changed while it ran */
	rc = repo_get(fs, &repo_models, model, &mrec);
	if (rc == 0 && !host_may_record(&writer, mrec, W_OK | X_OK))
		rc = -EACCES;
	json_decref(mrec);
	if (rc < 0)
		goto out;
	/* lineage: where it came from, and the plugins on both sides */
	imported = json_pack(
		"{s:O?, s:O?, s:O?, s:O?, s:O?, s:s, s:O?, s:O?, s:O?}",
		"model", json_object_get(info, "model"), "version",
		json_object_get(info, "version"), "created",
		json_object_get(info, "created"), "job",
		json_object_get(info, "job"), "dataset",
		json_object_get(info, "dataset"), "plugin_hash_here",
		json_string_value(json_object_get(plan, "plugin_hash")),
		"plugin_hash", json_object_get(info, "plugin_hash"),
		"plugin_version", json_object_get(info, "plugin_version"),
		"model_format", json_object_get(info, "model_format"));
	if (imported && json_object_get(info, "imported"))
		json_object_set(imported, "from",
				json_object_get(info, "imported"));
	free(sample);
	sample = NULL;
	rc = blob_read(fs, wrap, "meta.json", bundle_caps[BUNDLE_META],
		       &sample, &slen);
	meta = rc == 0 ? json_loadb(sample, slen, 0, NULL) : NULL;
	if (!imported || !json_is_object(meta)) {
		json_decref(imported);
		rc = -EIO;
		goto out;
	}
	iso_now(when, sizeof(when));
	json_object_set_new(meta, "name", json_string(model));
	/* what reads it is what bundle.json and the model file agree on */
	json_object_set(meta, "algorithm", json_object_get(info, "plugin"));
	json_object_set(meta, "task", json_object_get(info, "task"));
	json_object_set_new(meta, "created", json_string(when));
	json_object_set_new(meta, "job", json_string(job));
	json_object_del(meta, "dataset"); /* another mount's */
	json_object_set(meta, "imported", imported);
	man = json_pack("{s:s, s:s, s:s, s:O?, s:O?, s:O?, s:o, s:o}",
			"model", model, "created", when, "job", job,
			"algorithm", json_object_get(meta, "algorithm"), "task",
			json_object_get(info, "task"), "metrics",
			json_object_get(meta, "metrics"), "imported", imported,
			"files", json_deep_copy(files));
	rc = man ? 0 : -ENOMEM;
	/* the version it will be: meta.json says so, as for training */
	if (rc == 0) {
		unsigned v = 1;

		if (repo_get(fs, &repo_models, model, &mrec) == 0) {
			v = (unsigned)json_integer_value(
				json_object_get(mrec, "next"));
			if (v <= (unsigned)json_integer_value(
					 json_object_get(mrec, "latest")))
				v = (unsigned)json_integer_value(json_object_get(
					    mrec, "latest")) + 1;
			json_decref(mrec);
		}
		json_object_set_new(meta, "version", json_integer(v));
		rc = store_tmp_path(fs->store, path, sizeof(path));
	}
	if (rc == 0 && json_dump_file_short(meta, path,
					    JSON_INDENT(2) |
						    JSON_PRESERVE_ORDER) < 0)
		rc = -EIO;
	if (rc == 0) {
		rc = repo_put_file(fs, path, hash, &size);
		if (rc < 0)
			unlink(path);
	}
	if (rc == 0)
		json_object_set_new(json_object_get(man, "files"), "meta.json",
				    json_pack("{s:s, s:I}", "hash", hash, "size",
					      (json_int_t)size));
	if (rc == 0)
		rc = repo_commit_model(fs, model, man, &ctx, ver);
	json_decref(man);
out:
	if (rc < 0 && !why[0])
		snprintf(why, whylen, "%s", strerror(-rc));
	json_decref(wrap);
	json_decref(meta);
	table_free(t);
	free(sample);
	free(ans);
	return rc;
}

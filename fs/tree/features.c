/* SPDX-License-Identifier: MIT */
/*
 * features/: feature sets, a kind of versioned object (repo_features).
 * mkdir makes one; each accepted spec is a version v<n>/ (what is shared
 * with datasets/ and models/ is objects.c's).  The spec's checks are
 * featspec.c's; this file turns files into them.  Any FUSE worker.
 */
#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "answers.h"
#include "featcalc.h"
#include "featjoin.h"
#include "featevents.h"
#include "featonline.h"
#include "repo.h"
#include "featspec.h"
#include "featsync.h"
#include "fs.h"
#include "hostfile.h"
#include "lines.h"
#include "feature_sets.h"
#include "names.h"
#include "objects.h"
#include "store.h"

/* bytes of a history a join loads */
#define HISTORY_MAX ((size_t)16 << 30)

/* The spec of the latest version (empty before the first), or of v<n>. */
static int spec_show(struct node *n, struct strbuf *out)
{
	return obj_field_show(n, 0, "spec", "", out);
}

static int vspec_show(struct node *n, struct strbuf *out)
{
	return obj_field_show(n, obj_ver(n), "spec", NULL, out);
}

/* Judged in the write that completes the JSON value (bash ignores close). */
static int spec_check(struct node *n, const char *text, size_t len,
		      const struct fs_ctx *ctx, struct problem *pb)
{
	struct host_user writer = { ctx->uid, ctx->gid, ctx->pid };
	json_t *spec;
	int rc;

	rc = featspec_check(text, len, false, &spec, pb);
	if (rc == 0 && spec)
		rc = featspec_resolve(n->fs, &writer, spec, text, pb);
	json_decref(spec);
	return rc;
}

/* A new version when the spec says something new. */
static int spec_store(struct node *n, const char *text, size_t len,
		      const struct fs_ctx *ctx, struct problem *pb)
{
	struct repo_origin origin = { "spec", NULL, NULL, ctx->uid,
				      ctx->pid, 0 };
	struct host_user writer = { ctx->uid, ctx->gid, ctx->pid };
	json_t *spec, *man;
	unsigned ver;
	bool created;
	int rc;

	rc = featspec_check(text, len, true, &spec, pb);
	if (rc == 0)
		rc = featspec_resolve(n->fs, &writer, spec, text, pb);
	if (rc < 0) {
		json_decref(spec);
		return rc;
	}
	man = json_pack("{s:s, s:o}", "feature_set", obj_name(n), "spec",
			spec);
	if (!man)
		return -ENOMEM;
	rc = repo_commit(n->fs, &repo_features, obj_name(n), man, &origin, &ver,
		       &created);
	json_decref(man);
	if (rc == 0 && created)
		fs_log(n->fs, 6, "features/%s: v%u", obj_name(n), ver);
	return rc;
}

/* stats of the latest version or of v<n>; {} before the first sync */
static int stats_show(struct node *n, struct strbuf *out)
{
	return obj_field_show(n, 0, "stats", "{}\n", out);
}

static int vstats_show(struct node *n, struct strbuf *out)
{
	return obj_field_show(n, obj_ver(n), "stats", "{}\n", out);
}

/* ctl: what it takes, then the last sync job it started */
static int ctl_show(struct node *n, struct strbuf *out)
{
	char job[320];
	int rc = sb_puts(out, "sync | materialize START END\n");

	if (rc == 0 && featsync_last(n->fs, obj_name(n), job, sizeof(job)) == 0)
		rc = sb_printf(out, "jobs/%s\n", job);
	return rc;
}

/* Judged in the write that ends the line: all but queueing the job. */
static int ctl_check(struct node *n, const char *text, size_t len,
		     const struct fs_ctx *ctx, struct problem *pb)
{
	if (!memchr(text, '\n', len))
		return 0;
	return featsync_start(n->fs, obj_name(n), text, len, true, ctx, pb);
}

static int ctl_store(struct node *n, const char *text, size_t len,
		     const struct fs_ctx *ctx, struct problem *pb)
{
	return featsync_start(n->fs, obj_name(n), text, len, false, ctx, pb);
}

/* --- join: an answer stream (answers.c) over a version's history --- */

struct jstate {
	struct feat_spec *spec;
	struct feat_hist h;        /* a pinned version's history */
	bool synced;
	struct featonline_reader online; /* the latest: the online store */
	bool latest;
	struct jstream *js;
};

static int j_write(void *st, const char *buf, size_t len, struct strbuf *out)
{
	return jstream_write(((struct jstate *)st)->js, buf, len, out);
}

static int j_finish(void *st, struct strbuf *out)
{
	return jstream_finish(((struct jstate *)st)->js, out);
}

static void j_free(void *st)
{
	struct jstate *j = st;

	jstream_free(j->js);
	featonline_reader_free(&j->online);
	feat_hist_free(&j->h);
	feat_spec_free(j->spec);
	free(j);
}

static const struct answer_ops join_ops = { j_write, j_finish, j_free,
					    NULL };

/* jstream_find_fn over a pinned version's history */
static int hist_find(void *arg, const char *key, size_t klen,
		     const struct feat_hist **h, size_t *k)
{
	struct jstate *j = arg;
	long i = j->synced ? feat_hist_find(&j->h, key, klen) : -1;

	*h = i >= 0 ? &j->h : NULL;
	*k = i >= 0 ? (size_t)i : 0;
	return i >= 0 ? 0 : -ENOENT;
}

/* The history of man (a version of n's set), loaded and checked. */
static int history_load(struct node *n, uid_t uid, json_t *man,
			struct jstate *j)
{
	json_t *fh = json_object_get(json_object_get(man, "files"), "history");
	const char *hash = json_string_value(json_object_get(fh, "hash"));
	struct problem pb = { 0 };
	char key[96];
	char *buf;
	size_t len;
	int rc;

	if (!hash)
		return 0; /* a spec not synced yet: nothing known */
	repo_blob_key(hash, key, sizeof(key));
	rc = store_get(n->fs->store, key, HISTORY_MAX, &buf, &len);
	rc = repo_blob_error(n->fs, uid, n->path, key, rc);
	if (rc < 0)
		return rc;
	rc = feat_hist_load(buf, len, j->spec, &j->h, pb.msg, sizeof(pb.msg));
	if (rc < 0) {
		free(buf);
		snprintf(pb.path, sizeof(pb.path), "%s", n->path);
		fs_problem(n->fs, uid, &pb);
		return -EIO;
	}
	j->h.owned = buf;
	j->synced = true;
	return 0;
}

/*
 * join on the latest version reads the online store (its history and
 * the events after its cut); on v<n>/, that version's history.
 */
static int join_open(struct fs_file *f, const struct fs_ctx *ctx)
{
	struct node *n = f->node;
	struct jstate *j;
	json_t *man;
	int rc;

	rc = repo_version(n->fs, &repo_features, obj_name(n), obj_ver(n), &man);
	if (rc == -ENOENT && !obj_ver(n)) {
		struct problem pb = { 0 };

		snprintf(pb.path, sizeof(pb.path), "%s", n->path);
		problem_set(&pb, 0, 0, "no spec yet: write one to spec first");
		fs_problem(n->fs, ctx->uid, &pb);
		return -ENODATA;
	}
	if (rc < 0)
		return rc;
	j = calloc(1, sizeof(*j));
	rc = j ? feat_spec_compile(json_object_get(man, "spec"), &j->spec)
	       : -ENOMEM;
	if (rc == 0 && obj_ver(n)) {
		rc = history_load(n, ctx->uid, man, j);
		if (rc == 0)
			rc = jstream_new(j->spec, hist_find, j, &j->js);
	} else if (rc == 0) {
		j->latest = true;
		j->online.fs = n->fs;
		j->online.set = obj_name(n);
		j->online.spec = j->spec;
		rc = featonline_refresh(n->fs, obj_name(n));
		if (rc == 0)
			rc = jstream_new(j->spec, featonline_find, &j->online,
					 &j->js);
	}
	json_decref(man);
	if (rc < 0) {
		if (j)
			j_free(j);
		return rc;
	}
	return answers_open(f, ctx, &join_ops, j);
}

static int join_getattr(struct node *n, struct stat *st)
{
	int rc = obj_attr(n, st, false);

	st->st_size = 0; /* a stream of answers: read until end of file */
	return rc;
}

#define JOIN_TYPE                                                             \
	{ "join", S_IFREG | 0666, NODE_F_SCRATCH, .open = join_open,          \
	  .read = answers_read, .write = answers_write,                       \
	  .truncate = answers_truncate, .flush = answers_flush,              \
	  .release = answers_release, .getattr = join_getattr }

/* --- events: rows appended to the log and the online store --- */

struct ehandle {
	struct feat_spec *spec;  /* the latest spec when opened */
	bool decided, json;      /* the first line was read: JSON lines? */
	struct strbuf header;    /* the CSV header, without its newline */
	uint64_t line;           /* lines taken so far */
	struct feat_batch b;     /* a write's rows; kept for the next one */
};

static const struct lines_ops events_ops;

static int events_open(struct fs_file *f, const struct fs_ctx *ctx)
{
	struct node *n = f->node;
	struct ehandle *h;
	json_t *man;
	int rc;

	(void)ctx;
	rc = repo_version(n->fs, &repo_features, obj_name(n), 0, &man);
	if (rc == -ENOENT) {
		struct problem pb = { 0 };

		snprintf(pb.path, sizeof(pb.path), "%s", n->path);
		problem_set(&pb, 0, 0, "no spec yet: write one to spec first");
		fs_problem(n->fs, f->uid, &pb);
		return -ENODATA;
	}
	if (rc < 0)
		return rc;
	h = calloc(1, sizeof(*h));
	rc = h ? feat_spec_compile(json_object_get(man, "spec"), &h->spec)
	       : -ENOMEM;
	json_decref(man);
	if (rc < 0) {
		free(h);
		return rc;
	}
	return lines_open(f, &events_ops, h);
}

/*
 * The complete lines of text (the handle's pending part, then buf): all
 * of their rows appended, or none (-EINVAL with pb).  *used: the bytes
 * of text taken (up to the last newline).
 */
static int events_take(struct fs_file *f, void *st, const char *text,
		       size_t len, bool final, size_t *used,
		       struct problem *pb)
{
	struct node *n = f->node;
	struct ehandle *h = st;
	const char *end = final ? text + len : memrchr(text, '\n', len);
	const char *p = text;
	struct feat_batch *b = &h->b;
	uint64_t line = h->line;
	bool decided = h->decided, json = h->json;
	size_t hlen = h->header.len;
	int rc = 0;

	*used = 0;
	if (!end || end == text)
		return 0;
	if (!decided) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *q = p;

		while (q < end && (*q == ' ' || *q == '\t'))
			q++;
		json = q < end && *q == '{';
		if (!json) {
			hlen = nl ? (size_t)(nl - p) : (size_t)(end - p);
			if (sb_append(&h->header, p, hlen) < 0)
				return -ENOMEM;
			h->header.len = 0; /* kept below, once taken */
			p += hlen + (nl ? 1 : 0);
			line++;
		}
	}
	feat_batch_reset(b);
	if (p < end)
		rc = feat_rows_parse(h->spec, json ? NULL : h->header.buf, hlen,
				     p, (size_t)(end - p), line + 1, b, pb);
	if (rc == 0 && b->n)
		rc = featonline_append(n->fs, obj_name(n), h->spec, b, pb);
	if (rc == 0) {
		h->decided = true;
		h->json = json;
		h->header.len = hlen;
		h->line = line + b->n;
		*used = (size_t)(end - text) + (!final);
	}
	return rc;
}

static unsigned events_next_line(void *st)
{
	return (unsigned)((struct ehandle *)st)->line + 1;
}

static void events_free(void *st)
{
	struct ehandle *h = st;

	feat_spec_free(h->spec);
	sb_free(&h->header);
	feat_batch_free(&h->b);
	free(h);
	/*
	 * The handle's batch and its writes' records (megabytes) were freed
	 * into the workers' malloc arenas, which glibc keeps: give them
	 * back (the daemon held 290 MB of such arenas after a 10M-event
	 * stream).  Once a stream, not once a write: trimming each write
	 * made the next one fault its pages in again.
	 */
	malloc_trim(0);
}

static const struct lines_ops events_ops = { events_take, events_next_line,
					     events_free, NULL };

static int events_getattr(struct node *n, struct stat *st)
{
	int rc = obj_attr(n, st, false);

	st->st_size = 0;
	return rc;
}

/* --- online/: the online store, a file per entity --- */

#define ONLINE_NAME_MAX 255

/*
 * The entity key of a file name: its values, each encoded by
 * name_encode, joined by ','.  len bytes in key (cap); -ENOENT.  No
 * value is empty, so ",c1" is no second name of "c1".
 */
static long name_to_key(const char *name, size_t nlen, char *key, size_t cap)
{
	size_t n = 0;

	for (;;) {
		const char *comma = memchr(name, ',', nlen);
		size_t part = comma ? (size_t)(comma - name) : nlen;
		long got;

		if (!part)
			return -ENOENT;
		if (n) {
			if (n + 1 >= cap)
				return -ENOENT;
			key[n++] = FEAT_KEY_SEP;
		}
		got = name_decode(name, part, key + n, cap - n);
		if (got <= 0 || memchr(key + n, FEAT_KEY_SEP, (size_t)got))
			return -ENOENT;
		n += (size_t)got;
		if (!comma)
			return (long)n;
		name += part + 1;
		nlen -= part + 1;
	}
}

static long key_to_name(const char *key, size_t klen, char *name, size_t cap)
{
	const char *end = key + klen;
	size_t n = 0;

	for (;;) {
		const char *sep = memchr(key, FEAT_KEY_SEP, (size_t)(end - key));
		const char *e = sep ? sep : end;
		long got = name_encode(key, (size_t)(e - key), name + n, cap - n);

		if (got < 0)
			return got;
		n += (size_t)got;
		if (!sep)
			return (long)n;
		if (n + 1 >= cap)
			return -ENAMETOOLONG;
		name[n++] = ',';
		key = sep + 1;
	}
}

/* The key of online/<name> (json: <name> is "<key>.json"). */
static long online_key(struct node *n, bool json, char *key, size_t cap)
{
	size_t len = strlen(n->name);

	if (json)
		len -= 5;
	return name_to_key(n->name, len, key, cap);
}

static int online_render(struct node *n, bool json, struct strbuf *out)
{
	char key[1024];
	long klen = online_key(n, json, key, sizeof(key));

	if (klen < 0)
		return (int)klen;
	return featonline_render(n->fs, obj_name(n), key, (size_t)klen, json,
				 out);
}

/*
 * online/<key>: rendered at open (as of then) and read from that copy;
 * like /proc, its size says 0, since a getattr that rendered the vector
 * would cost as much as the read itself.
 */
static int online_open(struct fs_file *f, const struct fs_ctx *ctx,
		       bool json)
{
	struct strbuf sb = { 0 };
	int rc;

	(void)ctx;
	if ((f->flags & O_ACCMODE) != O_RDONLY)
		return -EACCES;
	rc = online_render(f->node, json, &sb);
	if (rc == 0)
		rc = sb.err;
	if (rc < 0) {
		sb_free(&sb);
		return rc;
	}
	f->snap = sb.buf;
	f->snap_len = sb.len;
	f->direct_io = true;
	return 0;
}

static int online_csv_open(struct fs_file *f, const struct fs_ctx *ctx)
{
	return online_open(f, ctx, false);
}

static int online_json_open(struct fs_file *f, const struct fs_ctx *ctx)
{
	return online_open(f, ctx, true);
}

/* Is the entity still in the store?  (The kernel keeps its name.) */
static int online_getattr(struct node *n, struct stat *st, bool json)
{
	char key[1024];
	long klen = online_key(n, json, key, sizeof(key));

	if (klen < 0 ||
	    !featonline_has(n->fs, obj_name(n), key, (size_t)klen))
		return -ENOENT;
	return obj_file_getattr(n, st);
}

static int online_csv_getattr(struct node *n, struct stat *st)
{
	return online_getattr(n, st, false);
}

static int online_json_getattr(struct node *n, struct stat *st)
{
	return online_getattr(n, st, true);
}

/*
 * An entity, once in the store, leaves it only with the set or a new
 * spec: the kernel may keep its name and attributes long
 * (NODE_F_LASTING; a key's are the set's owner, 0444 and a size of 0,
 * which no event changes), and an open after it left says ENOENT.
 */
static const struct node_type online_csv_type = {
	NULL, S_IFREG | 0444, NODE_F_VOLATILE | NODE_F_LASTING,
	.open = online_csv_open, .getattr = online_csv_getattr,
};

static const struct node_type online_json_type = {
	NULL, S_IFREG | 0444, NODE_F_VOLATILE | NODE_F_LASTING,
	.open = online_json_open, .getattr = online_json_getattr,
};

static int online_lookup(struct node *dir, const char *name,
			 const struct node_type **type)
{
	char key[1024];
	size_t len = strlen(name);
	long klen = name_to_key(name, len, key, sizeof(key));

	if (klen >= 0 && featonline_has(dir->fs, obj_name(dir), key,
					(size_t)klen)) {
		*type = &online_csv_type;
		return 0;
	}
	if (len > 5 && strcmp(name + len - 5, ".json") == 0) {
		klen = name_to_key(name, len - 5, key, sizeof(key));
		if (klen >= 0 && featonline_has(dir->fs, obj_name(dir), key,
						(size_t)klen)) {
			*type = &online_json_type;
			return 0;
		}
	}
	return -ENOENT;
}

struct online_fill {
	node_fill_fn fill;
	void *ctx;
};

static int online_fill_one(void *arg, const char *key, size_t len)
{
	struct online_fill *of = arg;
	char name[ONLINE_NAME_MAX + 1];

	/* a key whose name would pass NAME_MAX is read through join only */
	if (key_to_name(key, len, name, sizeof(name)) < 0)
		return 0;
	return of->fill(of->ctx, name, &online_csv_type);
}

static int online_list(struct node *dir, node_fill_fn fill, void *ctx)
{
	struct online_fill of = { fill, ctx };

	return featonline_list(dir->fs, obj_name(dir), online_fill_one, &of);
}

#define VFILE(name)                                                           \
	{ name, S_IFREG | 0444, NODE_F_IMMUTABLE, .open = obj_vfile_open,     \
	  .read = obj_vfile_read, .release = obj_vfile_release,               \
	  .fsync = obj_vfile_fsync, .getattr = obj_vfile_getattr,             \
	  .blob = obj_file_blob, .xattr = obj_file_xattr }

static const struct node_type version_files[] = {
	{ "spec", S_IFREG | 0444, NODE_F_IMMUTABLE, .show = vspec_show,
	  .getattr = obj_file_getattr },
	{ "stats", S_IFREG | 0444, NODE_F_IMMUTABLE, .show = vstats_show,
	  .getattr = obj_file_getattr },
	VFILE("offline.csv"),
	JOIN_TYPE,
	{ NULL },
};

static const struct node_type version_type = {
	NULL, S_IFDIR | 0555, 0, .children = version_files,
	.getattr = obj_version_getattr, .refuse = "versions are immutable",
};

static const struct node_type set_files[] = {
	{ "spec", S_IFREG | 0644, 0, .show = spec_show, .store = spec_store,
	  .check = spec_check, .getattr = obj_file_getattr },
	{ "ctl", S_IFREG | 0644, 0, .show = ctl_show, .store = ctl_store,
	  .check = ctl_check, .getattr = obj_file_getattr },
	{ "stats", S_IFREG | 0444, 0, .show = stats_show,
	  .getattr = obj_file_getattr },
	{ "events", S_IFREG | 0644, NODE_F_STREAM, .open = events_open,
	  .read = lines_read, .write = lines_write, .flush = lines_flush,
	  .truncate = lines_truncate, .release = lines_release,
	  .getattr = events_getattr },
	{ "online", S_IFDIR | 0555, NODE_F_DYNAMIC, .lookup = online_lookup,
	  .list = online_list, .getattr = obj_dir_getattr },
	{ "offline.csv", S_IFREG | 0444, 0, .open = obj_vfile_open,
	  .read = obj_vfile_read, .release = obj_vfile_release,
	  .fsync = obj_vfile_fsync, .getattr = obj_vfile_getattr,
	  .blob = obj_file_blob, .xattr = obj_file_xattr },
	JOIN_TYPE,
	{ NULL },
};

static int set_lookup(struct node *dir, const char *name,
		      const struct node_type **type)
{
	return obj_lookup(dir, name, &version_type, type);
}

static int set_list(struct node *dir, node_fill_fn fill, void *ctx)
{
	return obj_list(dir, &version_type, fill, ctx);
}

static const struct node_type set_type = {
	NULL, S_IFDIR | 0755, NODE_F_DYNAMIC, .children = set_files,
	.lookup = set_lookup, .list = set_list, .drop = obj_drop,
	.symlink = obj_symlink, .unlink = obj_unlink, .rename = obj_rename,
	.getattr = obj_dir_getattr, .chmod = obj_chmod,
};

static int features_lookup(struct node *dir, const char *name,
			   const struct node_type **type)
{
	return obj_top_lookup(dir, name, &set_type, type);
}

static int features_list(struct node *dir, node_fill_fn fill, void *ctx)
{
	return obj_top_list(dir, &set_type, fill, ctx);
}

/* rmdir features/<fs>: the set, then its online store and event log */
static int features_drop(struct node *dir, const char *name,
			 const struct fs_ctx *ctx)
{
	int rc = obj_top_drop(dir, name, ctx);

	if (rc == 0)
		featonline_forget(dir->fs, name);
	return rc;
}

const struct node_type features_type = {
	"features", S_IFDIR | 01777, NODE_F_DYNAMIC,
	.lookup = features_lookup, .list = features_list,
	.make = obj_top_make, .drop = features_drop, .kind = &repo_features,
};

/* SPDX-License-Identifier: MIT */
/*
 * The S3 store of a mount (remote.h).
 *
 * One mount writes a bucket prefix: it holds the lease, an object
 * "mlfs-lease" naming it with an expiry, renewed every third of its TTL
 * by this module's thread.  Another mount that finds the lease held and
 * unexpired mounts read-only, and its thread rebuilds the index from the
 * store every import_ttl seconds, so it sees the writer's new versions.
 * When the writer's lease expires (it crashed, or unmounted and gave it
 * back), the next mount takes it, with a conditional PUT (If-None-Match
 * for a new lease, If-Match on the one it read), so of two mounts
 * starting in the same instant one gets 412 and becomes a reader.
 *
 * The state is the mount's (fs->remote, struct remote below), made by
 * remote_open and freed by remote_close.  What remote_check sets in it
 * before the daemon detaches is still there after: the fork copies the
 * process's memory.
 *
 * Threads: main() calls remote_check before the daemon detaches (no
 * threads yet: the probe's S3 client is closed again before the fork),
 * remote_start after it, which starts one thread; remote_stop joins it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "bcache.h"
#include "catalog.h"
#include "repo.h"
#include "deadline.h"
#include "fs.h"
#include "problem.h"
#include "remote.h"
#include "store.h"

#define LEASE_KEY "mlfs-lease"
/*
 * Seconds: the writer puts the catalog at most this often while it
 * changes.  Each PUT carries every manifest, so not after each change;
 * a reader meanwhile GETs the few manifests the catalog missed.
 */
#define CATALOG_EVERY 2

/* This cache's identity, in the cache folder. */
#define WRITER_FILE "writer.json"
/*
 * Seconds of its ttl a writer gives up before the lease it last renewed
 * would expire for others: room for clock skew between hosts and for
 * the renewal's own round trip.
 */
#define LEASE_MARGIN(ttl) ((ttl) / 6 > 2 ? (ttl) / 6 : 2)
/* ms an export may go on after the lease was last seen ours */
#define CONFIRM_MS 1000

struct remote {
	struct fs *fs;
	char bucket[256];
	char prefix[1024];
	uint64_t cache_size;
	unsigned import_ttl;
	unsigned lease_ttl;
	char mount_id[33];       /* this cache's (writer.json) */
	uint64_t cache_gen;      /* generation its outbox is written under */
	uint64_t generation;     /* ours while writer; else the bucket's */
	char tag[64];            /* "<mount id>/<generation>" on our puts */
	char etag[80];           /* our lease object's, under lock */
	bool writer;             /* took the lease at mount */
	bool index_current;      /* nobody wrote since this cache did */
	bool handoff;            /* the last writer gave the lease back */
	bool ready;              /* the index was opened (and rebuilt) */
	/* boot_ms() until which exports and changes may go on */
	_Atomic int64_t valid_until;
	_Atomic bool fenced;     /* lost the lease: read-only for good */
	_Atomic int64_t confirmed; /* boot_ms() the lease was last seen ours */
	_Atomic bool want_check; /* the export gate asks for a fresh look */
	char why[300];           /* why not a writer, under lock */
	char note[4600];         /* remote_check's news, for the log */
	struct store *lease;     /* a direct S3 store for the lease */
	pthread_t thread;
	bool started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stopping;           /* under lock */
	int64_t polled;          /* the thread's: last source poll, boot_ms */
};

bool remote_is_url(const char *store)
{
	return strncmp(store, "s3://", 5) == 0;
}

static int parse_url(struct remote *r, const char *url, char *msg,
		     size_t msglen)
{
	const char *b = url + 5, *slash = strchr(b, '/');
	size_t blen = slash ? (size_t)(slash - b) : strlen(b);

	if (blen == 0 || blen >= sizeof(r->bucket)) {
		snprintf(msg, msglen, "%s: no bucket name (s3://bucket/prefix)",
			 url);
		return -EINVAL;
	}
	memcpy(r->bucket, b, blen);
	r->bucket[blen] = '\0';
	for (size_t i = 0; i < blen; i++) {
		char c = r->bucket[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.')) {
			snprintf(msg, msglen,
				 "%s: bucket names are lower-case letters, "
				 "digits, '-' and '.'",
				 url);
			return -EINVAL;
		}
	}
	snprintf(r->prefix, sizeof(r->prefix), "%s", slash ? slash + 1 : "");
	while (r->prefix[0] && r->prefix[strlen(r->prefix) - 1] == '/')
		r->prefix[strlen(r->prefix) - 1] = '\0';
	return 0;
}

static void s3_log(void *arg, const char *line)
{
	struct fs *fs = arg;

	fs_log(fs, 4, "s3: %s", line);
}

static int open_bucket(struct fs *fs, const char *bucket, const char *prefix,
		       const char *writer, bool probe, struct store **out,
		       char *msg, size_t msglen)
{
	struct store_s3_opts o;
	char staging[4096], why[256] = "";
	int rc;

	memset(&o, 0, sizeof(o));
	snprintf(staging, sizeof(staging), "%s/staging", fs->opts.cache_dir);
	o.bucket = bucket;
	o.prefix = prefix;
	o.endpoint = fs->opts.endpoint;
	o.staging_dir = staging;
	o.writer = writer;
	o.path_style = fs->opts.path_style;
	o.probe = probe;
	snprintf(o.region, sizeof(o.region), "%s",
		 fs->opts.region ? fs->opts.region : "");
	o.log = s3_log;
	o.log_arg = fs;
	rc = store_s3_creds_from_env(&o, why, sizeof(why));
	if (rc < 0 && rc != -ENOENT) {
		snprintf(msg, msglen, "credentials: %s", why);
		return rc;
	}
	rc = store_s3_open(&o, out);
	memset(o.secret_key, 0, sizeof(o.secret_key));
	memset(o.session_token, 0, sizeof(o.session_token));
	if (rc < 0)
		snprintf(msg, msglen, "%s",
			 rc == -EACCES	      ? "access denied: check the "
						"credentials"
			 : rc == -ENOENT      ? "no such bucket"
			 : rc == -EHOSTUNREACH ? "unknown endpoint host"
			 : rc == -EINVAL      ? "bad S3 options"
					      : "cannot reach the endpoint");
	return rc;
}

static int open_s3(struct fs *fs, struct remote *r, bool probe,
		   struct store **out, char *msg, size_t msglen)
{
	return open_bucket(fs, r->bucket, r->prefix, r->writer ? r->tag : NULL,
			   probe, out, msg, msglen);
}

/* ---- the lease ---- */

/* What a lease object says. */
struct lease {
	bool present;
	char owner[64];		/* a mount id */
	uint64_t generation;
	time_t expires;		/* wall clock of the writer */
	bool clean;		/* given back at an unmount, outbox empty */
	char etag[80];
};

static int64_t boot_ms(void)
{
	struct timespec ts;

	/* counts time suspended and stopped: a paused writer sees it */
	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read the lease; absent (-ENOENT) is a lease with present false. */
static int lease_get(struct store *s, struct lease *l)
{
	char *buf = NULL;
	size_t len;
	json_t *j;
	int rc;

	memset(l, 0, sizeof(*l));
	rc = store_s3_get_tagged(s, LEASE_KEY, 65536, &buf, &len, l->etag,
				 sizeof(l->etag));
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	l->present = true;
	j = json_loadb(buf, len, 0, NULL);
	free(buf);
	if (!json_is_object(j)) {
		json_decref(j);
		return 0; /* garbage: as good as expired */
	}
	snprintf(l->owner, sizeof(l->owner), "%s",
		 json_string_value(json_object_get(j, "owner"))
			 ? json_string_value(json_object_get(j, "owner"))
			 : "");
	l->generation = (uint64_t)json_integer_value(
		json_object_get(j, "generation"));
	l->expires = (time_t)json_integer_value(json_object_get(j, "expires"));
	l->clean = json_is_true(json_object_get(j, "clean"));
	json_decref(j);
	return 0;
}

/*
 * Write our lease for generation gen, conditionally: over the object
 * with ETag if_match, or only if there is none (if_match NULL).  A
 * retried write may have landed at its first attempt and then failed
 * its own condition: the lease itself tells.  0 (r->etag updated),
 * -ESTALE when another mount's write came first, or the store's errno.
 */
static int lease_put(struct remote *r, struct store *s, const char *if_match,
		     uint64_t gen, unsigned ttl, bool clean)
{
	json_t *j = json_pack("{s:s, s:I, s:I, s:b}", "owner", r->mount_id,
			      "generation", (json_int_t)gen, "expires",
			      (json_int_t)(time(NULL) + ttl), "clean", clean);
	char *text = j ? json_dumps(j, JSON_SORT_KEYS) : NULL;
	char etag[80];
	unsigned tries = 0;
	struct lease l;
	int rc;

	json_decref(j);
	if (!text)
		return -ENOMEM;
	rc = store_s3_put_if(s, LEASE_KEY, text, strlen(text), if_match, etag,
			     sizeof(etag), &tries);
	if ((rc == -ESTALE || rc == -ENOENT) && tries > 1 &&
	    lease_get(s, &l) == 0 && l.present &&
	    strcmp(l.owner, r->mount_id) == 0 && l.generation == gen) {
		snprintf(etag, sizeof(etag), "%s", l.etag);
		rc = 0;
	}
	free(text);
	if (rc == -ENOENT)
		rc = -ESTALE; /* deleted under us: not ours any more */
	if (rc == 0) {
		pthread_mutex_lock(&r->lock);
		snprintf(r->etag, sizeof(r->etag), "%s", etag);
		pthread_mutex_unlock(&r->lock);
	}
	return rc;
}

/*
 * This cache's identity, in CACHE/writer.json: a random mount id, made
 * once, and the generation of the lease its outbox was last written
 * under (0: never a writer).  The id names the writer in the lease and
 * on every object it puts; it says nothing of the host or the path.
 */
static int identity_load(struct fs *fs, struct remote *r)
{
	char path[4096];
	json_t *j;

	snprintf(path, sizeof(path), "%s/%s", fs->opts.cache_dir,
		 WRITER_FILE);
	j = json_load_file(path, 0, NULL);
	if (json_is_object(j)) {
		const char *id = json_string_value(
			json_object_get(j, "mount_id"));

		if (id && strlen(id) == 32 &&
		    strspn(id, "0123456789abcdef") == 32) {
			snprintf(r->mount_id, sizeof(r->mount_id), "%s", id);
			r->cache_gen = (uint64_t)json_integer_value(
				json_object_get(j, "generation"));
		}
	}
	json_decref(j);
	if (!r->mount_id[0]) {
		unsigned char raw[16];

		if (getrandom(raw, sizeof(raw), 0) != sizeof(raw))
			return -EIO;
		for (size_t i = 0; i < sizeof(raw); i++)
			snprintf(r->mount_id + 2 * i, 3, "%02x", raw[i]);
		r->cache_gen = 0;
	}
	return 0;
}

/* Record gen as the generation this cache's outbox is written under. */
static int identity_save(struct fs *fs, struct remote *r, uint64_t gen)
{
	char path[4096], tmp[4200];
	json_t *j = json_pack("{s:s, s:I}", "mount_id", r->mount_id,
			      "generation", (json_int_t)gen);
	char *text = j ? json_dumps(j, JSON_SORT_KEYS) : NULL;
	int fd, rc = 0;

	json_decref(j);
	if (!text)
		return -ENOMEM;
	snprintf(path, sizeof(path), "%s/%s", fs->opts.cache_dir,
		 WRITER_FILE);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) ||
	    fsync(fd) < 0 || rename(tmp, path) < 0)
		rc = errno ? -errno : -EIO;
	if (fd >= 0)
		close(fd);
	free(text);
	if (rc == 0)
		r->cache_gen = gen;
	return rc;
}

/* True if the folder dir holds an entry other than tmp/. */
static bool outbox_has_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	bool any = false;

	if (!d)
		return false;
	while (!any && (de = readdir(d)) != NULL)
		any = strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		      strcmp(de->d_name, "tmp");
	closedir(d);
	return any;
}

/*
 * The outbox of a cache whose generation is no longer the bucket's
 * (another mount wrote since, or took the lease) is never exported:
 * what it holds could replace newer data.  It moves, whole, to
 * CACHE/kept/outbox-g<gen>-<unix time> for a human, and .mlfs/cache
 * lists it.
 */
static int outbox_keep_aside(struct fs *fs, struct remote *r,
			     const struct lease *l)
{
	char from[4096], to[4200];

	snprintf(from, sizeof(from), "%s/blocks/outbox", fs->opts.cache_dir);
	if (!outbox_has_entries(from))
		return 0;
	snprintf(to, sizeof(to), "%s/kept", fs->opts.cache_dir);
	if (mkdir(to, 0700) < 0 && errno != EEXIST)
		return -errno;
	snprintf(to, sizeof(to), "%s/kept/outbox-g%llu-%lld",
		 fs->opts.cache_dir, (unsigned long long)r->cache_gen,
		 (long long)time(NULL));
	if (rename(from, to) < 0)
		return -errno;
	/* logged by remote_start: the log is not open yet */
	snprintf(r->note, sizeof(r->note),
		 "s3: this cache's outbox (written under lease generation "
		 "%llu) is not exported: the bucket is at generation %llu of "
		 "%s; kept in %s", (unsigned long long)r->cache_gen,
		 (unsigned long long)l->generation,
		 strcmp(l->owner, r->mount_id) ? "another mount" : "this cache",
		 to);
	return 0;
}

/* Fence this writer for good: no export, no change, from now on. */
static void fence(struct fs *fs, struct remote *r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void fence(struct fs *fs, struct remote *r, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&r->lock);
	if (r->fenced) {
		pthread_mutex_unlock(&r->lock);
		return;
	}
	va_start(ap, fmt);
	vsnprintf(r->why, sizeof(r->why), fmt, ap);
	va_end(ap);
	atomic_store(&r->fenced, true);
	__atomic_store_n(&fs->opts.read_only, true, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&r->lock);
	fs_log(fs, 2, "s3: read-only from now on: %s; nothing more is "
		      "exported, and the outbox is kept for a human "
		      "(.mlfs/cache)", r->why);
}

/*
 * The export gate of the block cache (bcache_opts.may_export).  Exports
 * go on while the lease is valid by this writer's clock and was seen
 * ours within the last CONFIRM_MS: after a pause (SIGSTOP, a VM
 * migration, a GC stall) the first export waits for one GET of the lease
 * (the thread's), which fences the writer if another mount took it.
 */
static int remote_may_export(void *arg)
{
	struct remote *r = arg;
	int64_t now = boot_ms();

	if (!r->writer || atomic_load(&r->fenced))
		return -EROFS;
	if (now >= atomic_load(&r->valid_until))
		return -EAGAIN;
	if (now - atomic_load(&r->confirmed) >= CONFIRM_MS) {
		atomic_store(&r->want_check, true);
		pthread_cond_signal(&r->cond);
		return -EAGAIN;
	}
	return 0;
}

/* bcache_opts.conflict: a version another writer made came first. */
static void remote_conflict(void *arg, const char *key)
{
	struct remote *r = arg;

	fence(r->fs, r, "%s in the bucket was written by another mlfs (the "
			"lease was lost and taken)", key);
}

int remote_open(struct fs *fs)
{
	struct remote *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	r->fs = fs;
	fs->remote = r;
	return 0;
}

void remote_close(struct fs *fs)
{
	struct remote *r = fs->remote;

	if (!r)
		return;
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->cond);
	free(r);
	fs->remote = NULL;
}

int remote_check(struct fs *fs, const struct remote_opts *o, char *msg,
		 size_t msglen)
{
	struct remote *r = fs->remote;
	struct store *s3 = NULL;
	struct lease l;
	bool ours;
	int rc;

	r->index_current = true;
	rc = parse_url(r, o->url, msg, msglen);
	if (rc < 0)
		return rc;
	r->cache_size = o->cache_size;
	r->import_ttl = o->import_ttl ? o->import_ttl : 60;
	r->lease_ttl = o->lease_ttl ? o->lease_ttl : 30;
	rc = open_s3(fs, r, true, &s3, msg, msglen);
	if (rc < 0)
		return rc;
	fs->store = s3;
	rc = repo_format_check(fs, msg, msglen);
	fs->store = NULL;
	if (rc < 0)
		goto out_close;
	rc = identity_load(fs, r);
	if (rc < 0) {
		snprintf(msg, msglen, "no randomness for the mount id");
		goto out_close;
	}
	rc = lease_get(s3, &l);
	if (rc < 0) {
		snprintf(msg, msglen, "reading the lease: %s", strerror(-rc));
		goto out_close;
	}
	r->handoff = !l.present || l.clean;
	/*
	 * The bucket is as this cache left it only if the lease is still
	 * ours at the generation we wrote under: then our outbox is the
	 * newest data (a crash left it), and our index is current.
	 */
	ours = l.present && strcmp(l.owner, r->mount_id) == 0 &&
	       l.generation == r->cache_gen && r->cache_gen > 0;
	r->index_current = ours || (!l.present && r->cache_gen == 0);
	rc = ours ? 0 : outbox_keep_aside(fs, r, &l);
	if (rc < 0) {
		snprintf(msg, msglen, "keeping a stale outbox aside: %s",
			 strerror(-rc));
		goto out_close;
	}
	r->generation = l.generation;
	if (fs->opts.read_only) {
		snprintf(r->why, sizeof(r->why), "mounted with -o ro");
		goto out_ok;
	}
	/* a crashed mount of this cache is gone: main() holds its lock */
	if (l.present && !l.clean && strcmp(l.owner, r->mount_id) != 0 &&
	    l.expires > time(NULL)) {
		fs->opts.read_only = true;
		snprintf(r->why, sizeof(r->why), "another mlfs holds the "
			 "lease (generation %llu) until %lld",
			 (unsigned long long)l.generation,
			 (long long)l.expires);
		goto out_ok;
	}
	r->valid_until = boot_ms() + (int64_t)(r->lease_ttl -
					       LEASE_MARGIN(r->lease_ttl)) *
					      1000;
	rc = lease_put(r, s3, l.present ? l.etag : NULL, l.generation + 1,
		       r->lease_ttl, false);
	if (rc == -ESTALE) {
		fs->opts.read_only = true; /* lost a race: read */
		snprintf(r->why, sizeof(r->why), "another mlfs took the lease "
			 "first");
		goto out_ok;
	}
	if (rc < 0) {
		snprintf(msg, msglen, "taking the lease: %s", strerror(-rc));
		goto out_close;
	}
	r->generation = l.generation + 1;
	atomic_store(&r->confirmed, boot_ms());
	/* before anything is exported under it */
	rc = identity_save(fs, r, r->generation);
	if (rc < 0) {
		snprintf(msg, msglen, "cache %s: %s", WRITER_FILE,
			 strerror(-rc));
		goto out_close;
	}
	r->writer = true;
out_ok:
	rc = 0;
out_close:
	store_close(s3);
	return rc;
}

/* s3://bucket/key -> bucket, key */
static int split_url(const char *url, char *bucket, size_t blen, char *key,
		     size_t klen)
{
	const char *b = url + 5, *slash;

	if (strncmp(url, "s3://", 5) != 0)
		return -EINVAL;
	slash = strchr(b, '/');
	if (!slash || slash == b || (size_t)(slash - b) >= blen ||
	    !slash[1] || strlen(slash + 1) >= klen)
		return -EINVAL;
	memcpy(bucket, b, (size_t)(slash - b));
	bucket[slash - b] = '\0';
	snprintf(key, klen, "%s", slash + 1);
	return store_key_is_valid(key) ? 0 : -EINVAL;
}

/* Open url's bucket and HEAD its key: *s is the caller's on success. */
static int head_url(struct fs *fs, const char *url, uint64_t max,
		    struct store **s, char *key, size_t keylen,
		    struct store_stat *st, char *msg, size_t msglen)
{
	char bucket[256];
	int rc;

	*s = NULL;
	if (split_url(url, bucket, sizeof(bucket), key, keylen) < 0) {
		snprintf(msg, msglen, "\"%s\": not s3://bucket/key", url);
		return -EINVAL;
	}
	rc = open_bucket(fs, bucket, "", NULL, false, s, msg, msglen);
	if (rc < 0)
		return rc;
	rc = store_head(*s, key, st);
	if (rc == 0 && st->size > max) {
		snprintf(msg, msglen, "\"%s\": larger than max_file", url);
		rc = -EFBIG;
	} else if (rc < 0) {
		snprintf(msg, msglen, "\"%s\": %s", url,
			 rc == -ENOENT ? "no such object" : strerror(-rc));
	}
	if (rc < 0) {
		store_close(*s);
		*s = NULL;
	}
	return rc;
}

int remote_head(struct fs *fs, const char *url, uint64_t max, uint64_t *size,
		char *etag, size_t etaglen, char *msg, size_t msglen)
{
	char key[1100];
	struct store_stat st;
	struct store *s;
	int rc = head_url(fs, url, max, &s, key, sizeof(key), &st, msg,
			  msglen);

	if (rc < 0)
		return rc;
	*size = st.size;
	snprintf(etag, etaglen, "%s", st.etag);
	store_close(s);
	return 0;
}

static int stale(const char *url, const char *expect, const char *now,
		 char *msg, size_t msglen)
{
	snprintf(msg, msglen, "\"%s\" changed since this version was pinned "
		 "(ETag %s, now %s): the change becomes a new version", url,
		 expect, now);
	return -ESTALE;
}

/*
 * Ranges a fetch has in flight at once, and their size.  256 MiB from
 * s3rver on this machine: 4 x 8 MiB 0.90 s, 3 x 16 MiB 0.88 s, 4 x 32 MiB
 * 0.87 s, 2 x 16 MiB 1.19 s, one GET 1.28 s (load 4.5).  A cold read of a
 * lazy 1 GiB source, ranges into a mapping, 4 threads: 8 MiB 2.7-3.3 s,
 * 16 MiB 2.5-2.7 s (s3rver's CPU 2.2-2.4 s a GiB, against 2.4-2.8), 32
 * MiB 3.3-3.4 s with the first byte after 0.26-0.32 s (16 MiB: 0.12 s).
 * Without a mapping each thread holds a buffer of one range.
 */
#define FETCH_THREADS 4
#define FETCH_CHUNK ((size_t)16 << 20)

/* One fetch of an object in FETCH_CHUNK ranges, on several threads. */
struct fetch {
	struct store *s;
	const char *key;
	const char *etag;     /* pinned: every range If-Match, or NULL */
	int out;
	char *map;            /* out mapped whole, or NULL: pwrite */
	uint64_t size;
	size_t nchunks;
	int (*landed)(void *arg, uint64_t whole);
	void *arg;
	pthread_mutex_t mu;
	size_t next;          /* under mu: the next range to take */
	size_t whole;         /* under mu: ranges done before the first gap */
	bool *done;           /* under mu: nchunks of them */
	int rc;               /* under mu: the first failure */
};

/*
 * Whether fd's file system writes the blocks fallocate() gave it in
 * place, so that a store to a shared mapping of them cannot fail.
 */
static bool map_safe(int fd)
{
	struct statfs sf;

	if (fstatfs(fd, &sf) < 0)
		return false;
	return sf.f_type == EXT4_SUPER_MAGIC || sf.f_type == XFS_SUPER_MAGIC ||
	       sf.f_type == TMPFS_MAGIC;
}

/* Range i into place: 0 or -errno. */
static int fetch_one(struct fetch *f, char *buf, size_t i)
{
	uint64_t off = (uint64_t)i * FETCH_CHUNK;
	size_t len = f->size - off < FETCH_CHUNK ? (size_t)(f->size - off)
						 : FETCH_CHUNK;
	size_t got = 0;
	ssize_t n;

	if (f->map)
		buf = f->map + off; /* into place: no copy after the receive */
	while (got < len) {
		n = f->etag ? store_s3_get_range_if(f->s, f->key, f->etag,
						    buf + got, len - got,
						    off + got)
			    : store_get_range(f->s, f->key, buf + got,
					      len - got, off + got);

		if (n < 0)
			return (int)n;
		if (n == 0)
			return -ESTALE; /* shorter than its HEAD said */
		got += (size_t)n;
	}
	if (f->map)
		return 0;
	return store_write_full(f->out, buf, len, (int64_t)off);
}

static void *fetch_main(void *arg)
{
	struct fetch *f = arg;
	char *buf = f->map ? NULL : malloc(FETCH_CHUNK);
	size_t i;
	int rc;

	pthread_mutex_lock(&f->mu);
	if (!buf && !f->map && !f->rc)
		f->rc = -ENOMEM;
	while (!f->rc && f->next < f->nchunks) {
		i = f->next++;
		pthread_mutex_unlock(&f->mu);
		rc = fetch_one(f, buf, i);
		pthread_mutex_lock(&f->mu);
		if (rc < 0 && !f->rc)
			f->rc = rc;
		if (rc < 0)
			break;
		f->done[i] = true;
		/* the caller follows the bytes with no gap before them */
		while (f->whole < f->nchunks && f->done[f->whole])
			f->whole++;
		rc = f->landed ? f->landed(f->arg, f->whole == f->nchunks
							   ? f->size
							   : (uint64_t)f->whole *
								     FETCH_CHUNK)
			       : 0;
		if (rc < 0 && !f->rc)
			f->rc = rc;
	}
	pthread_mutex_unlock(&f->mu);
	free(buf);
	return NULL;
}

int remote_fetch(struct fs *fs, const char *url, int out,
		 int (*landed)(void *arg, uint64_t whole), void *arg,
		 uint64_t max, const char *expect,
		 char *etag, size_t etaglen, uint64_t *size, char *msg,
		 size_t msglen)
{
	char key[1100];
	struct store_stat st;
	struct store *s = NULL;
	struct fetch f = { 0 };
	pthread_t tid[FETCH_THREADS];
	size_t nt = 0, i;
	int rc;

	*size = 0;
	rc = head_url(fs, url, max, &s, key, sizeof(key), &st, msg, msglen);
	if (rc < 0)
		return rc;
	snprintf(etag, etaglen, "%s", st.etag);
	if (expect && strcmp(expect, st.etag) != 0) {
		rc = stale(url, expect, st.etag, msg, msglen);
		goto out;
	}
	f.s = s;
	f.key = key;
	f.etag = expect;
	f.out = out;
	f.size = st.size;
	f.landed = landed;
	f.arg = arg;
	f.nchunks = (size_t)((st.size + FETCH_CHUNK - 1) / FETCH_CHUNK);
	f.done = calloc(f.nchunks + 1, sizeof(*f.done));
	if (!f.done) {
		rc = -ENOMEM;
		goto out;
	}
	/*
	 * The ranges land in a mapping of out: one copy of each byte (the
	 * receive's), where a buffer and pwrite() made two.  A cold read of
	 * 1 GiB from s3rver: 2.7-2.8 s and 1.9 s of daemon CPU, against
	 * 3.5-3.7 s and 2.8-3.3 s with pwrite().  The blocks are allocated
	 * first, so that a full disk is an errno here and never a SIGBUS in
	 * a store to the mapping; only on file systems that write a block
	 * allocated so in place (not copy-on-write ones, nor NFS, where a
	 * store can still fail).  Faulting each range's pages in writable
	 * first (MADV_POPULATE_WRITE) would also turn a failure into an
	 * errno, but it cost 0.9 s of CPU a GiB (2.5-2.8 s became 3.3-3.6).
	 * Else pwrite(), and its errno.
	 */
	if (st.size && map_safe(out) &&
	    fallocate(out, 0, 0, (off_t)st.size) == 0) {
		void *m = mmap(NULL, st.size, PROT_READ | PROT_WRITE,
			       MAP_SHARED, out, 0);

		f.map = m == MAP_FAILED ? NULL : m;
	}
	pthread_mutex_init(&f.mu, NULL);
	/* s3fs and aws read an object in parallel ranges too */
	while (nt + 1 < FETCH_THREADS && nt + 1 < f.nchunks &&
	       pthread_create(&tid[nt], NULL, fetch_main, &f) == 0)
		nt++;
	fetch_main(&f);
	for (i = 0; i < nt; i++)
		pthread_join(tid[i], NULL);
	pthread_mutex_destroy(&f.mu);
	if (f.map)
		munmap(f.map, st.size);
	rc = f.rc;
	if (rc < 0 && (rc != -ESTALE || !expect))
		snprintf(msg, msglen, "\"%s\": %s", url,
			 rc == -ESTALE ? "changed while read" : strerror(-rc));
	/*
	 * Every range asked If-Match, but s3rver ignores it: an object
	 * unchanged after the copy was read whole.
	 */
	if ((rc == 0 || rc == -ESTALE) && expect &&
	    (store_head(s, key, &st) < 0 || rc < 0 ||
	     strcmp(expect, st.etag) != 0 || st.size != f.size))
		rc = stale(url, expect, st.etag, msg, msglen);
	if (rc == 0)
		*size = f.size;
out:
	free(f.done);
	store_close(s);
	return rc;
}

struct src_scan {
	char **names;
	size_t n;
};

static int src_one(void *arg, const char *name)
{
	struct src_scan *sc = arg;
	char **nn = realloc(sc->names, (sc->n + 1) * sizeof(*nn));

	if (!nn)
		return -ENOMEM;
	sc->names = nn;
	nn[sc->n] = strdup(name);
	if (nn[sc->n])
		sc->n++;
	return 0;
}

/*
 * Datasets whose latest version came from an s3:// source: a changed
 * object (a new ETag) becomes a new version, imported lazily like the
 * first.  Old versions keep what they pinned: their own copy once read,
 * or -ESTALE if never read before the object changed.
 */
static void poll_sources(struct fs *fs)
{
	struct src_scan sc = { 0 };

	if (repo_list(fs, &repo_datasets, src_one, &sc) < 0)
		goto out;
	for (size_t i = 0; i < sc.n; i++) {
		json_t *man, *lin;
		const char *url, *etag;
		char msg[400], newtag[80];
		struct repo_origin o = { "source", NULL, NULL, 0, 0, 0 };
		uint64_t size;
		unsigned ver;
		bool created;

		if (repo_version(fs, &repo_datasets, sc.names[i], 0, &man) < 0)
			continue;
		lin = json_object_get(man, "lineage");
		url = json_string_value(json_object_get(lin, "detail"));
		etag = json_string_value(json_object_get(lin, "source_etag"));
		if (url && etag && strncmp(url, "s3://", 5) == 0 &&
		    remote_head(fs, url, fs->opts.max_file, &size, newtag,
				sizeof(newtag), msg, sizeof(msg)) == 0 &&
		    strcmp(newtag, etag) != 0) {
			o.detail = url;
			o.etag = newtag;
			o.uid = (uid_t)json_integer_value(json_object_get(lin, "uid"));
			if (ds_publish_pending(fs, sc.names[i], &o, size, &ver,
					       &created) == 0 && created)
				fs_log(fs, 6, "datasets/%s: v%u: %s changed",
				       sc.names[i], ver, url);
		}
		json_decref(man);
	}
out:
	for (size_t i = 0; i < sc.n; i++)
		free(sc.names[i]);
	free(sc.names);
}

/*
 * Renew the lease over the object we last wrote (If-Match): a newer
 * generation, or any other write of it, fences this writer.  While a
 * renewal fails for another reason the lease is not confirmed, and once
 * valid_until passes, exports and changes wait (remote_may_export,
 * remote_refuses_change) until one succeeds.
 */
static void lease_renew(struct fs *fs, struct remote *r)
{
	int64_t sent = boot_ms();
	char etag[80];
	int rc;

	pthread_mutex_lock(&r->lock);
	snprintf(etag, sizeof(etag), "%.79s", r->etag);
	pthread_mutex_unlock(&r->lock);
	rc = lease_put(r, r->lease, etag, r->generation, r->lease_ttl, false);
	if (rc == 0) {
		atomic_store(&r->valid_until,
			     sent + (int64_t)(r->lease_ttl -
					      LEASE_MARGIN(r->lease_ttl)) *
					    1000);
		atomic_store(&r->confirmed, sent);
		return;
	}
	if (rc == -ESTALE) {
		struct lease l;

		if (lease_get(r->lease, &l) == 0 && l.present)
			fence(fs, r, "the lease was taken by another mlfs "
				     "(generation %llu; ours was %llu)",
			      (unsigned long long)l.generation,
			      (unsigned long long)r->generation);
		else
			fence(fs, r, "the lease object changed under this "
				     "writer (generation %llu)",
			      (unsigned long long)r->generation);
		return;
	}
	fs_log(fs, 4, "s3: renewing the lease failed: %s; retrying",
	       strerror(-rc));
}

/* The export gate's question: is the lease still the one we wrote? */
static void lease_check(struct fs *fs, struct remote *r)
{
	int64_t sent = boot_ms();
	char etag[80];
	struct lease l;

	atomic_store(&r->want_check, false);
	if (lease_get(r->lease, &l) < 0)
		return; /* asked again; the renewals decide */
	pthread_mutex_lock(&r->lock);
	snprintf(etag, sizeof(etag), "%.79s", r->etag);
	pthread_mutex_unlock(&r->lock);
	if (l.present && strcmp(l.etag, etag) == 0) {
		atomic_store(&r->confirmed, sent);
		return;
	}
	fence(fs, r, "the lease was taken by another mlfs (generation %llu; "
		     "ours was %llu)",
	      (unsigned long long)l.generation,
	      (unsigned long long)r->generation);
}

/* Is this writer sure of its lease now?  Readers: never asked. */
static bool lease_confirmed(struct remote *r)
{
	return !atomic_load(&r->fenced) &&
	       boot_ms() < atomic_load(&r->valid_until);
}

int remote_export_wait(struct fs *fs)
{
	struct remote *r = fs->remote;
	struct timespec ts = { 0, BCACHE_GATE_MS * 1000000L };
	int rc;

	if (!r->writer)
		return 0;
	while ((rc = remote_may_export(r)) == -EAGAIN) {
		if (!lease_confirmed(r))
			return -EROFS; /* read-only for now, as changes are */
		nanosleep(&ts, NULL);
	}
	return rc;
}

static void *remote_main(void *arg)
{
	struct fs *fs = arg;
	struct remote *r = fs->remote;
	unsigned every = r->writer ? (r->lease_ttl + 2) / 3 : r->import_ttl;
	bool catalog = r->writer && fs->s3;
	unsigned tick;
	int64_t due;		/* boot_ms: intervals survive clock steps */

	if (every > r->import_ttl)
		every = r->import_ttl;
	if (!every)
		every = 1;
	tick = catalog && every > CATALOG_EVERY ? CATALOG_EVERY : every;
	due = boot_ms() + (int64_t)every * 1000;
	r->polled = boot_ms() - (int64_t)r->import_ttl * 1000; /* poll now */

	pthread_mutex_lock(&r->lock);
	while (!r->stopping) {
		struct timespec ts;
		bool lapsed;
		int rc;

		/* a writer unsure of its lease asks again every second */
		lapsed = r->writer && !r->fenced &&
			 boot_ms() >= atomic_load(&r->valid_until) -
					      (int64_t)every * 500;
		ts = deadline_in((int64_t)(lapsed ? 1 : tick) * 1000);
		if (!atomic_load(&r->want_check))
			cond_wait_until(&r->cond, &r->lock, &ts);
		if (r->stopping)
			break;
		pthread_mutex_unlock(&r->lock);
		if (r->writer && !atomic_load(&r->fenced) &&
		    (lapsed || boot_ms() >= due)) {
			due = boot_ms() + (int64_t)every * 1000;
			lease_renew(fs, r);
		} else if (r->writer && !atomic_load(&r->fenced) &&
			   atomic_load(&r->want_check)) {
			lease_check(fs, r);
			pthread_mutex_lock(&r->lock);
			continue;	/* the catalog waits for its tick */
		}
		/* the catalog is exported as the outbox is: see the gate */
		rc = catalog && remote_may_export(r) == 0 ? catalog_write(fs)
							 : 0;
		if (rc < 0)
			fs_log(fs, 4, "s3: writing %s failed: %s; retrying",
			       CATALOG_KEY, strerror(-rc));
		if (!r->writer && boot_ms() >= due) {
			due = boot_ms() + (int64_t)every * 1000;
			if (r->lease == NULL && bcache_is_cache(fs->store) &&
			    repo_rebuild(fs) < 0)
				fs_log(fs, 4, "s3: refreshing the index failed; "
					      "retrying");
		}
		if (!fs->opts.read_only &&
		    boot_ms() - r->polled >= (int64_t)r->import_ttl * 1000) {
			r->polled = boot_ms();
			poll_sources(fs);
		}
		pthread_mutex_lock(&r->lock);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

int remote_start(struct fs *fs, char *msg, size_t msglen)
{
	fs->refuses_change = remote_refuses_change;
	struct remote *r = fs->remote;
	struct bcache_opts bo;
	struct store *s3 = NULL, *cache = NULL;
	char dir[4096];
	int rc;

	snprintf(r->tag, sizeof(r->tag), "%.32s/%llu", r->mount_id,
		 (unsigned long long)r->generation);
	if (r->note[0])
		fs_log(fs, 3, "%s", r->note);
	if (r->writer)
		fs_log(fs, 6, "s3: writer, lease generation %llu",
		       (unsigned long long)r->generation);
	else
		fs_log(fs, 5, "s3: read-only mount: %s", r->why);
	rc = open_s3(fs, r, false, &s3, msg, msglen);
	if (rc < 0)
		return rc;
	snprintf(dir, sizeof(dir), "%s/blocks", fs->opts.cache_dir);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		rc = -errno;
		snprintf(msg, msglen, "cache %s: %s", dir, strerror(errno));
		store_close(s3);
		return rc;
	}
	memset(&bo, 0, sizeof(bo));
	bo.dir = dir;
	bo.size_limit = r->cache_size;
	/*
	 * 8 MiB blocks: each GET is a round trip and costs the server per
	 * request.  Against s3rver over four connections, 1 MiB ranges read
	 * 264 MB/s, 4 MiB 368 MB/s and 8-16 MiB about 550-630 MB/s; the
	 * fetch buffers (one block per fetch thread) keep it at 8 MiB.  A
	 * fetch thread reads a run of queued blocks (up to 64 MiB) by one
	 * GET anyway, streamed through its one-block buffer.
	 */
	bo.block_size = 8 << 20;
	bo.hydrate = true;
	bo.min_free = (uint64_t)256 << 20;
	bo.revalidate_ttl = r->import_ttl;
	/* only a writer sure of its lease exports; see lease_renew */
	bo.may_export = remote_may_export;
	bo.conflict = remote_conflict;
	bo.gate_arg = r;
	bo.content_prefix = "blobs/"; /* blobs.c: blobs are named by their hash */
	/* a blob is served only once its bytes match its name */
	bo.content_hash = repo_blob_hash;
	rc = bcache_open(s3, &bo, &cache);
	if (rc < 0) {
		snprintf(msg, msglen, "cache %s: %s", dir, strerror(-rc));
		store_close(s3);
		return rc;
	}
	fs->store = cache;
	rc = open_s3(fs, r, false, &fs->s3, msg, msglen);
	if (rc < 0)
		return rc;
	if (r->writer) {
		rc = open_s3(fs, r, false, &r->lease, msg, msglen);
		if (rc < 0)
			return rc;
	}
	rc = pthread_create(&r->thread, NULL, remote_main, fs);
	if (rc) {
		snprintf(msg, msglen, "cannot start a thread");
		return -rc;
	}
	r->started = true;
	return 0;
}

int remote_poll_start(struct fs *fs)
{
	struct remote *r = fs->remote;
	int rc;

	r->index_current = true;
	r->import_ttl = fs->opts.import_ttl ? fs->opts.import_ttl : 60;
	r->lease_ttl = 30;
	rc = pthread_create(&r->thread, NULL, remote_main, fs);
	if (rc)
		return -rc;
	r->started = true;
	return 0;
}

bool remote_catalog_trusted(struct fs *fs)
{
	/*
	 * Not while a writer is live: its catalog names manifests still in
	 * its outbox, not yet in the bucket.
	 */
	return fs->remote->handoff;
}

bool remote_index_current(struct fs *fs)
{
	return fs->remote->index_current;
}

void remote_index_ready(struct fs *fs)
{
	fs->remote->ready = true;
}

bool remote_refuses_change(struct fs *fs, uid_t uid)
{
	struct remote *r = fs->remote;
	struct problem pb = { .path = ".mlfs/cache" };

	if (!r->writer || lease_confirmed(r))
		return false;
	pthread_mutex_lock(&r->lock);
	if (atomic_load(&r->fenced))
		problem_set(&pb, 0, 0, "read-only: %s", r->why);
	else
		problem_set(&pb, 0, 0, "read-only for now: the S3 lease could "
				       "not be renewed in time; changes are "
				       "refused until it is");
	pthread_mutex_unlock(&r->lock);
	fs_problem(fs, uid, &pb);
	return true;
}

int remote_describe(struct fs *fs, char *out, size_t len)
{
	struct remote *r = fs->remote;
	const char *role;
	char kept[4096];
	struct dirent *de;
	size_t n;
	DIR *d;

	if (!r->mount_id[0] || len == 0) {
		if (len)
			out[0] = '\0';
		return 0;
	}
	role = !r->writer		 ? "reader"
	       : atomic_load(&r->fenced) ? "fenced"
	       : lease_confirmed(r)	 ? "writer"
					 : "unconfirmed";
	pthread_mutex_lock(&r->lock);
	n = (size_t)snprintf(out, len, "mount_id %s\nlease %s\n"
				       "lease_generation %llu\n",
			     r->mount_id, role,
			     (unsigned long long)r->generation);
	if (strcmp(role, "writer") != 0 && r->why[0] && n < len)
		n += (size_t)snprintf(out + n, len - n, "lease_why %s\n",
				      r->why);
	pthread_mutex_unlock(&r->lock);
	/* outboxes never exported: a human decides (see outbox_keep_aside) */
	snprintf(kept, sizeof(kept), "%s/kept", fs->opts.cache_dir);
	d = opendir(kept);
	while (d && (de = readdir(d)) != NULL && n < len) {
		if (de->d_name[0] != '.')
			n += (size_t)snprintf(out + n, len - n,
					      "kept_outbox %s/%s\n", kept,
					      de->d_name);
	}
	if (d)
		closedir(d);
	return (int)(n < len ? n : len - 1);
}

void remote_stop(struct fs *fs)
{
	struct remote *r = fs->remote;
	int rc = 0;

	if (!r->started) {
		store_close(fs->s3); /* remote_start failed after opening it */
		fs->s3 = NULL;
		return;
	}
	pthread_mutex_lock(&r->lock);
	r->stopping = true;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	pthread_join(r->thread, NULL);
	r->started = false;
	if (r->writer && fs->s3 && lease_confirmed(r)) {
		/* the jobs' last records, the changes of the last seconds */
		rc = catalog_write(fs);
		if (rc < 0)
			fs_log(fs, 4, "s3: writing %s at unmount failed: %s",
			       CATALOG_KEY, strerror(-rc));
	}
	store_close(fs->s3);
	fs->s3 = NULL;
	if (r->writer && r->lease && !atomic_load(&r->fenced)) {
		struct bcache_stats st;
		char etag[80];
		bool clean;

		/*
		 * Give the lease back, expired, so the next mount need not
		 * wait; and clean only when the bucket holds everything the
		 * catalog names (the next fresh mount may trust the catalog),
		 * else it says "rebuild with a LIST".  Kept, not deleted: the
		 * generation only ever grows.
		 */
		clean = rc == 0 && r->ready && lease_confirmed(r) &&
			bcache_stats(fs->store, &st) == 0 &&
			st.exports_queued == 0;
		pthread_mutex_lock(&r->lock);
		snprintf(etag, sizeof(etag), "%.79s", r->etag);
		pthread_mutex_unlock(&r->lock);
		if (lease_put(r, r->lease, etag, r->generation, 0, clean) < 0)
			fs_log(fs, 4, "s3: giving the lease back failed");
	}
	store_close(r->lease);
	r->lease = NULL;
}

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
 * back), the next mount takes it.  S3 has no compare-and-swap for plain
 * PUTs here, so two mounts starting in the same instant could both take
 * it; the lease is re-read after the PUT to narrow that window.
 *
 * Threads: main() calls remote_check before the daemon detaches (no
 * threads yet: the probe's S3 client is closed again before the fork),
 * remote_start after it, which starts one thread; remote_stop joins it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "bcache.h"
#include "catalog.h"
#include "ds.h"
#include "fs.h"
#include "remote.h"
#include "store.h"

#define LEASE_KEY "mlfs-lease"
/*
 * Seconds: the writer puts the catalog at most this often while it
 * changes.  Each PUT carries every manifest, so not after each change;
 * a reader meanwhile GETs the few manifests the catalog missed.
 */
#define CATALOG_EVERY 2

struct remote {
	char bucket[256];
	char prefix[1024];
	uint64_t cache_size;
	unsigned import_ttl;
	unsigned lease_ttl;
	char token[64];          /* ours, when we hold the lease */
	char holder[300];        /* "<host>:<cache dir>": who writes */
	bool writer;
	bool handoff;            /* no lease object found: a clean handoff */
	bool ready;              /* the index was opened (and rebuilt) */
	struct store *lease;     /* a direct S3 store for the lease */
	pthread_t thread;
	bool started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stopping;           /* under lock */
	time_t polled;           /* the thread's: last source poll */
};

static struct remote the_remote;

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
		       bool probe, struct store **out, char *msg, size_t msglen)
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
	return open_bucket(fs, r->bucket, r->prefix, probe, out, msg, msglen);
}

/* The lease: 0 and *held when another unexpired writer holds it. */
static int lease_read(struct store *s, char *owner, size_t olen,
		      time_t *expires, char *holder, size_t hlen)
{
	char *buf = NULL;
	size_t len;
	json_t *j;
	int rc = store_get(s, LEASE_KEY, 65536, &buf, &len);

	*expires = 0;
	owner[0] = '\0';
	holder[0] = '\0';
	if (rc < 0)
		return rc;
	j = json_loadb(buf, len, 0, NULL);
	free(buf);
	if (!json_is_object(j)) {
		json_decref(j);
		return 0; /* garbage: as good as expired */
	}
	snprintf(owner, olen, "%s",
		 json_string_value(json_object_get(j, "owner"))
			 ? json_string_value(json_object_get(j, "owner"))
			 : "");
	*expires = (time_t)json_integer_value(json_object_get(j, "expires"));
	snprintf(holder, hlen, "%s",
		 json_string_value(json_object_get(j, "holder"))
			 ? json_string_value(json_object_get(j, "holder"))
			 : "");
	json_decref(j);
	return 0;
}

static int lease_write(struct remote *r, struct store *s)
{
	json_t *j = json_pack("{s:s, s:s, s:i, s:I}", "owner", r->token,
			      "holder", r->holder, "pid", (int)getpid(),
			      "expires",
			      (json_int_t)(time(NULL) + r->lease_ttl));
	char *text = j ? json_dumps(j, 0) : NULL;
	int rc;

	json_decref(j);
	if (!text)
		return -ENOMEM;
	rc = store_put(s, LEASE_KEY, text, strlen(text));
	free(text);
	return rc;
}

int remote_check(struct fs *fs, const struct remote_opts *o, char *msg,
		 size_t msglen)
{
	struct remote *r = &the_remote;
	struct store *s3 = NULL;
	char owner[256], holder[300];
	time_t expires;
	int rc;

	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
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
	rc = ds_format_check(fs, msg, msglen);
	fs->store = NULL;
	if (rc < 0)
		goto out_close;
	{
		char host[256] = "?";

		gethostname(host, sizeof(host) - 1);
		snprintf(r->holder, sizeof(r->holder), "%s:%s", host,
			 fs->opts.cache_dir);
	}
	rc = lease_read(s3, owner, sizeof(owner), &expires, holder,
			sizeof(holder));
	if (rc < 0 && rc != -ENOENT) {
		snprintf(msg, msglen, "reading the lease: %s", strerror(-rc));
		goto out_close;
	}
	r->handoff = rc == -ENOENT;
	/*
	 * Our own lease, left by a mount of this cache that crashed (main()
	 * holds the cache's lock, so that mount is gone): its outbox is
	 * ours to export, and so is the lease.
	 */
	if (owner[0] && strcmp(holder, r->holder) == 0)
		owner[0] = '\0';
	if (!fs->opts.read_only && owner[0] && expires > time(NULL)) {
		/* another mount writes this prefix */
		fs->opts.read_only = true;
		fs_log(fs, 5, "%s: read-only: another mlfs holds the lease "
			      "until %lld",
		       o->url, (long long)expires);
	}
	if (!fs->opts.read_only) {
		unsigned char raw[16];
		FILE *fp = fopen("/dev/urandom", "re");

		if (!fp || fread(raw, 1, sizeof(raw), fp) != sizeof(raw)) {
			if (fp)
				fclose(fp);
			snprintf(msg, msglen, "no randomness for the lease");
			rc = -EIO;
			goto out_close;
		}
		fclose(fp);
		for (size_t i = 0; i < sizeof(raw); i++)
			snprintf(r->token + 2 * i, 3, "%02x", raw[i]);
		rc = lease_write(r, s3);
		if (rc == 0)
			rc = lease_read(s3, owner, sizeof(owner), &expires,
					holder, sizeof(holder));
		if (rc < 0) {
			snprintf(msg, msglen, "taking the lease: %s",
				 strerror(-rc));
			goto out_close;
		}
		if (strcmp(owner, r->token) != 0) {
			fs->opts.read_only = true; /* lost a race: read */
		} else {
			r->writer = true;
		}
	}
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
	rc = open_bucket(fs, bucket, "", false, s, msg, msglen);
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

int remote_fetch(struct fs *fs, const char *url, const char *path,
		 uint64_t max, const char *expect, char *etag, size_t etaglen,
		 char *msg, size_t msglen)
{
	char key[1100];
	struct store_stat st;
	struct store *s = NULL;
	size_t chunk = (size_t)8 << 20;
	uint64_t off = 0;
	char *buf = NULL;
	FILE *fp = NULL;
	int rc;

	rc = head_url(fs, url, max, &s, key, sizeof(key), &st, msg, msglen);
	if (rc < 0)
		return rc;
	snprintf(etag, etaglen, "%s", st.etag);
	if (expect && strcmp(expect, st.etag) != 0) {
		rc = stale(url, expect, st.etag, msg, msglen);
		goto out;
	}
	buf = malloc(chunk);
	fp = fopen(path, "we");
	if (!buf || !fp) {
		rc = buf ? -errno : -ENOMEM;
		goto out;
	}
	for (;;) {
		ssize_t n = store_get_range(s, key, buf, chunk, off);

		if (n < 0) {
			rc = (int)n;
			snprintf(msg, msglen, "\"%s\": %s", url, strerror(-rc));
			goto out;
		}
		if (n == 0)
			break;
		if (fwrite(buf, 1, (size_t)n, fp) != (size_t)n) {
			rc = -EIO;
			goto out;
		}
		off += (uint64_t)n;
	}
	rc = fflush(fp) == 0 && fsync(fileno(fp)) == 0 ? 0 : -EIO;
	/*
	 * Ranged GETs do not say which version they read (s3rver ignores
	 * If-Match): an object unchanged after the copy was read whole.
	 */
	if (rc == 0 && expect && (off != st.size ||
				  store_head(s, key, &st) < 0 ||
				  strcmp(expect, st.etag) != 0))
		rc = stale(url, expect, st.etag, msg, msglen);
out:
	if (fp)
		fclose(fp);
	free(buf);
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

	if (ds_list(fs, &ds_datasets, src_one, &sc) < 0)
		goto out;
	for (size_t i = 0; i < sc.n; i++) {
		json_t *man, *lin;
		const char *url, *etag;
		char msg[400], newtag[80];
		struct ds_origin o = { "source", NULL, NULL, 0, 0 };
		uint64_t size;
		unsigned ver;
		bool created;

		if (ds_version(fs, &ds_datasets, sc.names[i], 0, &man) < 0)
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

static void *remote_main(void *arg)
{
	struct fs *fs = arg;
	struct remote *r = &the_remote;
	unsigned every = r->writer ? (r->lease_ttl + 2) / 3 : r->import_ttl;
	bool catalog = r->writer && fs->s3;
	unsigned tick;
	time_t due;

	if (every > r->import_ttl)
		every = r->import_ttl;
	if (!every)
		every = 1;
	tick = catalog && every > CATALOG_EVERY ? CATALOG_EVERY : every;
	due = time(NULL) + every;

	pthread_mutex_lock(&r->lock);
	while (!r->stopping) {
		struct timespec ts;
		int rc;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += tick;
		pthread_cond_timedwait(&r->cond, &r->lock, &ts);
		if (r->stopping)
			break;
		pthread_mutex_unlock(&r->lock);
		rc = catalog ? catalog_write(fs) : 0;
		if (rc < 0)
			fs_log(fs, 4, "s3: writing %s failed: %s; retrying",
			       CATALOG_KEY, strerror(-rc));
		if (time(NULL) < due) {
			pthread_mutex_lock(&r->lock);
			continue;
		}
		due = time(NULL) + every;
		if (r->writer && r->lease &&
		    lease_write(r, r->lease) < 0)
			fs_log(fs, 4, "s3: renewing the lease failed; retrying");
		if (!r->writer && r->lease == NULL && bcache_is_cache(fs->store) &&
		    ds_rebuild(fs) < 0)
			fs_log(fs, 4, "s3: refreshing the index failed; "
				      "retrying");
		if (!fs->opts.read_only &&
		    time(NULL) - r->polled >= (time_t)r->import_ttl) {
			r->polled = time(NULL);
			poll_sources(fs);
		}
		pthread_mutex_lock(&r->lock);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

int remote_start(struct fs *fs, char *msg, size_t msglen)
{
	struct remote *r = &the_remote;
	struct bcache_opts bo;
	struct store *s3 = NULL, *cache = NULL;
	char dir[4096];
	int rc;

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
	 * fetch buffers (one block per fetch thread) keep it at 8 MiB.
	 */
	bo.block_size = 8 << 20;
	bo.hydrate = true;
	bo.min_free = (uint64_t)256 << 20;
	bo.revalidate_ttl = r->import_ttl;
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
	struct remote *r = &the_remote;
	int rc;

	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	r->import_ttl = fs->opts.import_ttl ? fs->opts.import_ttl : 60;
	r->lease_ttl = 30;
	rc = pthread_create(&r->thread, NULL, remote_main, fs);
	if (rc)
		return -rc;
	r->started = true;
	return 0;
}

bool remote_catalog_trusted(void)
{
	/*
	 * Not while a writer is live: its catalog names manifests still in
	 * its outbox, not yet in the bucket.
	 */
	return the_remote.handoff;
}

void remote_index_ready(void)
{
	the_remote.ready = true;
}

void remote_stop(struct fs *fs)
{
	struct remote *r = &the_remote;
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
	if (r->writer && fs->s3) {
		/* the jobs' last records, the changes of the last seconds */
		rc = catalog_write(fs);
		if (rc < 0)
			fs_log(fs, 4, "s3: writing %s at unmount failed: %s",
			       CATALOG_KEY, strerror(-rc));
	}
	store_close(fs->s3);
	fs->s3 = NULL;
	if (r->writer && r->lease) {
		struct bcache_stats st;

		/*
		 * Give the lease back: the next mount need not wait.  Deleted
		 * only when the bucket holds everything the catalog names (a
		 * clean handoff: the next fresh mount may trust the catalog);
		 * otherwise left expired, which says "rebuild with a LIST".
		 */
		if (rc == 0 && r->ready && bcache_stats(fs->store, &st) == 0 &&
		    st.exports_queued == 0) {
			store_del(r->lease, LEASE_KEY);
		} else {
			r->lease_ttl = 0;
			r->token[0] = '\0';
			lease_write(r, r->lease);
		}
	}
	store_close(r->lease);
	r->lease = NULL;
}

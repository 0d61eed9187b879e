/* SPDX-License-Identifier: MIT */
/*
 * mlfs: the daemon.  `mlfs [options] STORE MOUNTPOINT`, as sshfs and s3fs.
 *
 * Every check that can fail (options, store, mountpoint) runs before the
 * daemon detaches, so a failure is one line on stderr and a non-zero exit.
 * Threads and LMDB start after the fork (LMDB environments do not survive
 * one).  The index is rebuilt from the store when it is new or when the
 * last mount did not end cleanly.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <fuse_lowlevel.h>
#include <fuse_opt.h>
#include <xxhash.h>

#include "config.h"
#include "repo.h"
#include "collect.h"
#include "fs.h"
#include "fuse_ops.h"
#include "meta.h"
#include "answers.h"
#include "featonline.h"
#include "deploy.h"
#include "featspec.h"
#include "models.h"
#include "node.h"
#include "plugin.h"
#include "remote.h"
#include "predict.h"
#include "plotcache.h"
#include "http.h"
#include "next.h"
#include "runner.h"
#include "reap.h"
#include "store.h"
#include "uploads.h"

#define FUSE_SUPER_MAGIC 0x65735546
#define PLUGINS_DELAY_MS 250 /* after the services start (plugin.h) */

struct cli {
	char *store;
	char *mountpoint;
	char *cache;
	char *cache_size;
	char *plugins;
	char *log;
	char *max_file;
	char *endpoint;
	char *region;
	unsigned jobs;
	unsigned handles_per_uid;
	unsigned import_ttl;
	int gc_grace;
	int verify_delay;
	int sync_timeout;
	char *predictions_sync;
	char *anon_key;
	char *predictions_keep;
	char *http;
	char *http_token;
	char *http_max_body;
	int path_style;
	int foreground;
	int debug;
	int help;
	int version;
	int ro;
	int nargs;
};

#define CLI_OPT(t, p) { t, offsetof(struct cli, p), 1 }

static const struct fuse_opt cli_opts[] = {
	CLI_OPT("cache=%s", cache),
	CLI_OPT("cache_size=%s", cache_size),
	CLI_OPT("plugins=%s", plugins),
	CLI_OPT("log=%s", log),
	CLI_OPT("max_file=%s", max_file),
	CLI_OPT("jobs=%u", jobs),
	CLI_OPT("handles_per_uid=%u", handles_per_uid),
	CLI_OPT("endpoint=%s", endpoint),
	CLI_OPT("region=%s", region),
	CLI_OPT("import_ttl=%u", import_ttl),
	CLI_OPT("gc_grace=%d", gc_grace),
	CLI_OPT("verify_delay=%d", verify_delay),
	CLI_OPT("sync_timeout=%d", sync_timeout),
	CLI_OPT("predictions_sync=%s", predictions_sync),
	CLI_OPT("anon_key=%s", anon_key),
	CLI_OPT("predictions_keep=%s", predictions_keep),
	CLI_OPT("http=%s", http),
	CLI_OPT("http_token=%s", http_token),
	CLI_OPT("http_max_body=%s", http_max_body),
	CLI_OPT("path_style", path_style),
	CLI_OPT("-f", foreground),
	CLI_OPT("-d", debug),
	CLI_OPT("debug", debug),
	CLI_OPT("-h", help),
	CLI_OPT("--help", help),
	CLI_OPT("-V", version),
	CLI_OPT("--version", version),
	FUSE_OPT_KEY("ro", 1),
	/* fstab options that mount(8) passes on and FUSE does not take */
	FUSE_OPT_KEY("_netdev", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("nofail", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("noauto", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("auto", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("user", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("users", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("defaults", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("x-systemd.", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_END
};

static void usage(FILE *fp)
{
	fprintf(fp,
		"usage: mlfs [options] STORE MOUNTPOINT\n"
		"\n"
		"STORE is a local directory (the embedded store) or\n"
		"s3://bucket[/prefix] (credentials from AWS_ACCESS_KEY_ID/\n"
		"AWS_SECRET_ACCESS_KEY or ~/.aws/credentials).\n"
		"\n"
		"options:\n"
		"    -h, --help             print this help and exit\n"
		"    -V, --version          print the version and exit\n"
		"    -f                     stay in the foreground\n"
		"    -d, -o debug           debug output (implies -f)\n"
		"    -o opt[,opt...]        mount options:\n"
		"       cache=DIR           index and block cache directory\n"
		"       cache_size=SIZE     block cache limit (S3), e.g. 20G\n"
		"       endpoint=URL        S3-compatible endpoint\n"
		"       region=NAME         S3 region\n"
		"       path_style          path-style S3 addressing\n"
		"       import_ttl=SECS     read-only mounts refresh this often\n"
		"       gc_grace=SECS       gc spares blobs younger than this;\n"
		"                           rmdir deletes blobs from the bucket\n"
		"                           this long after (600)\n"
		"       verify_delay=SECS   check an index from the S3 catalog\n"
		"                           this long after mount, or at the\n"
		"                           first change (10)\n"
		"       sync_timeout=SECS   fsync and `echo sync >\n"
		"                           .mlfs/cache` wait at most this for\n"
		"                           the bucket (300; 0: no limit;\n"
		"                           ETIMEDOUT past it)\n"
		"       predictions_sync=SECS  a deployment's answers are\n"
		"                           durable this long after they are\n"
		"                           read, at most (1; close and fsync\n"
		"                           of the predict file: at once)\n"
		"       predictions_keep=AGE[:SIZE]  a deployment's\n"
		"                           prediction store drops its oldest\n"
		"                           lines past AGE (30d) or SIZE (10G):\n"
		"                           30d, 10G or 30d:10G (default: all)\n"
		"       anon_key=FILE       pii columns in deployments' logs are\n"
		"                           HMAC-SHA-256'd under this key (a\n"
		"                           file of root's, mode 0600); without\n"
		"                           it they are left out\n"
		"       http=unix:PATH      serve the Open Inference Protocol\n"
		"       http=ADDR:PORT      and /metrics over HTTP (port 0:\n"
		"                           pick one; see .mlfs/http); callers\n"
		"                           are their uid (SO_PEERCRED) or a\n"
		"                           token's (TCP)\n"
		"       http_token=FILE     \"uid token\" lines (root's, 0600);\n"
		"                           TCP needs it\n"
		"       http_max_body=SIZE  largest request body (64M; 413)\n"
		"       max_file=SIZE       largest file one write may make\n"
		"                           (default 64G; EFBIG past it)\n"
		"       plugins=DIR         plugin directory\n"
		"       jobs=N              training jobs run at once (2)\n"
		"       handles_per_uid=N   open files one user may hold, root\n"
		"                           aside (4096; 0: no bound; EMFILE)\n"
		"       log=FILE            log here instead of syslog\n"
		"       ro, allow_other, default_permissions, ... (FUSE)\n"
		"\n"
		"Unmount with: fusermount3 -u MOUNTPOINT\n");
}

static int cli_proc(void *data, const char *arg, int key,
		    struct fuse_args *outargs)
{
	struct cli *cli = data;

	(void)outargs;
	if (key == 1) {
		cli->ro = 1;
		return 1; /* FUSE takes ro as well */
	}
	if (key != FUSE_OPT_KEY_NONOPT)
		return 1;
	cli->nargs++;
	if (!cli->store) {
		cli->store = strdup(arg);
		return 0;
	}
	if (!cli->mountpoint) {
		cli->mountpoint = strdup(arg);
		return 0;
	}
	fprintf(stderr, "mlfs: unexpected argument \"%s\"\n", arg);
	return -1;
}

/* "20G" -> bytes; -EINVAL. */
static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	uint64_t mul = 1;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': mul = 1ULL << 10; end++; break;
	case 'm': case 'M': mul = 1ULL << 20; end++; break;
	case 'g': case 'G': mul = 1ULL << 30; end++; break;
	case 't': case 'T': mul = 1ULL << 40; end++; break;
	default: break;
	}
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end)
		return -EINVAL;
	*out = v * mul;
	return 0;
}

/* One line, then exit status 1. */
static int fail(const char *fmt, const char *a, const char *b)
{
	fprintf(stderr, "mlfs: ");
	fprintf(stderr, fmt, a, b);
	fputc('\n', stderr);
	return 1;
}

/* Is path a mountpoint already (or a dead FUSE mount)? */
static int mountpoint_busy(const char *path)
{
	char parent[PATH_MAX];
	struct stat st, pst;
	struct statfs sf;

	if (statfs(path, &sf) == 0 && (unsigned)sf.f_type == FUSE_SUPER_MAGIC)
		return 1;
	if (stat(path, &st) < 0)
		return errno == ENOTCONN ? 1 : 0;
	snprintf(parent, sizeof(parent), "%s/..", path);
	if (stat(parent, &pst) < 0)
		return 0;
	return st.st_dev != pst.st_dev || st.st_ino == pst.st_ino;
}

/* Remove staging files a crashed mount left in the store's tmp folder. */
static void clean_tmp(const char *store_dir)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d;
	int dfd;

	snprintf(path, sizeof(path), "%s/.tmp", store_dir);
	d = opendir(path);
	if (!d)
		return;
	dfd = dirfd(d);
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			store_unlinkat(dfd, de->d_name); /* append-only too */
	closedir(d);
}

/*
 * The kernel caps a FUSE mount's read-ahead at 128 KiB whatever
 * max_readahead the daemon asks for, so a sequential reader costs a
 * request every 128 KiB.  Root may raise it through the mount's
 * backing-device entry in sysfs: to the largest read (fuse_read_max(),
 * 1008 KiB), where 128 KiB made cold reads send eight times the
 * requests.  Best effort: not root, or no sysfs, and it stays as it was.
 */
static void raise_readahead(struct fs *fs, const char *mnt)
{
	char line[8192], esc[PATH_MAX * 4], dev[32] = "", path[128], kb[16];
	size_t n = 0;
	FILE *f;
	int len;
	int fd;

	/* mountinfo escapes space, tab, newline and backslash as \ooo */
	for (const char *p = mnt; *p && n + 5 < sizeof(esc); p++) {
		if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\\')
			n += (size_t)snprintf(esc + n, 5, "\\%03o",
					      (unsigned char)*p);
		else
			esc[n++] = *p;
	}
	esc[n] = '\0';
	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char d[32], m[sizeof(esc)];

		/* id parent major:minor root mountpoint ...; the last wins */
		if (sscanf(line, "%*s %*s %31s %*s %4095s", d, m) == 2 &&
		    strcmp(m, esc) == 0)
			snprintf(dev, sizeof(dev), "%s", d);
	}
	fclose(f);
	if (!dev[0])
		return;
	snprintf(path, sizeof(path), "/sys/class/bdi/%s/read_ahead_kb", dev);
	len = snprintf(kb, sizeof(kb), "%u", fuse_read_max() / 1024);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, kb, (size_t)len) != len)
		fs_log(fs, LOG_DEBUG, "read-ahead stays at the kernel's: %s",
		       strerror(errno));
	if (fd >= 0)
		close(fd);
}

static char *default_cache_dir(const char *store_dir)
{
	char *out;

	if (asprintf(&out, "%s/.mlfs-cache", store_dir) < 0)
		return NULL;
	return out;
}

/* The feature sets' online stores: a scratch index (meta.h) of their own. */
static int open_online(struct fs *fs)
{
	char *dir;
	int rc;

	if (asprintf(&dir, "%s/online", fs->opts.cache_dir) < 0)
		return -ENOMEM;
	rc = meta_open_scratch(dir, &fs->online);
	if (rc < 0)
		fs_log(fs, LOG_ERR, "index %s: %s", dir, strerror(-rc));
	free(dir);
	return rc;
}

static int open_index(struct fs *fs, bool *verify)
{
	char *val = NULL;
	struct meta_txn *t;
	bool created;
	bool clean = false;
	bool current;
	int rc;

	rc = meta_open(fs->opts.cache_dir, &fs->meta, &created);
	if (rc < 0) {
		fs_log(fs, LOG_ERR, "index %s: %s", fs->opts.cache_dir,
		       strerror(-rc));
		return rc;
	}
	rc = open_online(fs);
	if (rc < 0)
		return rc;
	rc = meta_txn_begin(fs->meta, true, &t);
	if (rc < 0)
		return rc;
	if (meta_get(t, META_MISC, "clean", &val, NULL) == 0)
		clean = strcmp(val, "1") == 0;
	free(val);
	/*
	 * An index of an older layout (before the catalog table, or with a
	 * table per kind) is rebuilt once: this writer's catalog would
	 * leave out what it did not change, and readers would find nothing.
	 */
	if (meta_get(t, META_MISC, "layout", &val, NULL) == 0)
		current = strcmp(val, META_LAYOUT) == 0;
	else
		current = false;
	free(val);
	val = NULL;
	meta_txn_abort(t);
	/*
	 * A fresh index of a prefix whose writer left cleanly comes from
	 * the catalog alone, and a thread checks it against the bucket
	 * (LIST and all) while holding changes back: a fresh mount lists at
	 * once rather than after a LIST of every manifest.
	 */
	if (created && fs->s3 && remote_catalog_trusted(fs) &&
	    repo_rebuild_trusted(fs) == 0) {
		*verify = true;
		fs_log(fs, LOG_INFO, "index from the catalog; checking it "
				     "against the bucket");
	} else if (created || !clean || !current || !remote_index_current(fs)) {
		rc = repo_rebuild(fs);
		if (rc < 0) {
			fs_log(fs, LOG_ERR, "index rebuild: %s", strerror(-rc));
			return rc;
		}
		fs_log(fs, LOG_INFO, "index rebuilt from the store (%s)",
		       created  ? "new index"
		       : !clean ? "unclean shutdown"
				: "an older layout");
	}
	/* Until a clean unmount says otherwise, the next mount rebuilds. */
	rc = meta_txn_begin(fs->meta, false, &t);
	if (rc < 0)
		return rc;
	rc = meta_put(t, META_MISC, "clean", "0", 1);
	if (rc < 0) {
		meta_txn_abort(t);
		return rc;
	}
	return meta_txn_commit(t);
}

static void mark_clean(struct fs *fs)
{
	struct meta_txn *t;

	if (meta_txn_begin(fs->meta, false, &t) < 0)
		return;
	if (meta_put(t, META_MISC, "clean", "1", 1) < 0) {
		meta_txn_abort(t);
		return;
	}
	meta_txn_commit(t);
}

static void fs_free(struct fs *fs)
{
	for (unsigned i = 0; i < FS_ERRORS_KEEP; i++)
		free(fs->errors[i]);
	answers_stop(fs);
	featonline_stop(fs);
	http_stop(fs); /* a mount that failed before it served */
	served_cache_close(fs);
	plot_cache_close(fs);
	if (fs->anon_key)
		explicit_bzero(fs->anon_key, fs->anon_key_len);
	free(fs->anon_key);
	/* the store first: its export threads ask the S3 mode's gate */
	store_close(fs->store);
	fs->store = NULL;
	remote_close(fs);
	repo_close(fs);
	meta_close(fs->meta);
	meta_close(fs->online);
	node_table_free(fs);
	fs_glue_free(fs);
	plugin_load_join(fs); /* a no-op: stop_services joined it */
	plugin_set_free(fs->plugins);
	free(fs->opts.store);
	free(fs->opts.store_dir);
	free(fs->opts.mountpoint);
	free(fs->opts.cache_dir);
	free(fs->opts.plugin_dir);
}

/*
 * The S3 store's checks, before the daemon detaches: the cache folder
 * (default: one per bucket prefix under /var/cache/mlfs or
 * ~/.cache/mlfs), the endpoint, credentials, bucket, format and lease.
 * One line and status 1 on failure.
 */
static int open_remote(struct fs *fs, struct cli *cli, int *lock_fd)
{
	struct remote_opts ro = { 0 };
	char msg[512], dir[PATH_MAX];
	int rc;

	ro.url = cli->store;
	ro.endpoint = cli->endpoint;
	ro.region = cli->region;
	ro.path_style = cli->path_style;
	ro.import_ttl = cli->import_ttl;
	if (cli->cache_size && parse_size(cli->cache_size, &ro.cache_size) < 0)
		return fail("cache_size=%s: not a size (e.g. 20G)%s",
			    cli->cache_size, "");
	if (cli->cache) {
		snprintf(dir, sizeof(dir), "%s", cli->cache);
	} else {
		char id[600];
		const char *home = getenv("HOME");

		snprintf(id, sizeof(id), "%s|%s", cli->store,
			 cli->endpoint ? cli->endpoint : "");
		if (geteuid() == 0 || !home)
			snprintf(dir, sizeof(dir), "/var/cache/mlfs");
		else
			snprintf(dir, sizeof(dir), "%s/.cache/mlfs", home);
		mkdir(dir, 0700);
		snprintf(dir + strlen(dir), sizeof(dir) - strlen(dir),
			 "/%016llx",
			 (unsigned long long)XXH3_64bits(id, strlen(id)));
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return fail("cache %s: %s", dir, strerror(errno));
	fs->opts.cache_dir = strdup(dir);
	fs->opts.store_dir = strdup(dir); /* statfs: the cache's disk */
	if (!fs->opts.cache_dir || !fs->opts.store_dir)
		return fail("%s%s", strerror(ENOMEM), "");
	/* one mount per cache folder, held by the daemon across the fork */
	snprintf(dir + strlen(dir), sizeof(dir) - strlen(dir), "/mlfs.lock");
	*lock_fd = open(dir, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (*lock_fd < 0 || flock(*lock_fd, LOCK_EX | LOCK_NB) < 0)
		return fail("cache %s: %s", fs->opts.cache_dir,
			    errno == EWOULDBLOCK
				    ? "in use by another mlfs"
				    : strerror(errno));
	rc = remote_check(fs, &ro, msg, sizeof(msg));
	if (rc < 0)
		return fail("store %s: %s", cli->store, msg);
	return 0;
}

/* --help, --version or too few arguments: *status is the exit status. */
static bool cli_only_answers(const struct cli *cli, int *status)
{
	if (cli->help) {
		usage(stdout);
		*status = 0;
		return true;
	}
	if (cli->version) {
		printf("mlfs %s (FUSE %s)\n", MLFS_VERSION, fuse_pkgversion());
		*status = 0;
		return true;
	}
	if (!cli->store || !cli->mountpoint) {
		usage(stderr);
		return true;
	}
	return false;
}

static void cli_free(struct cli *cli)
{
	free(cli->store);
	free(cli->mountpoint);
	free(cli->cache);
	free(cli->cache_size);
	free(cli->plugins);
	free(cli->log);
	free(cli->max_file);
	free(cli->endpoint);
	free(cli->region);
	free(cli->predictions_sync);
	free(cli->anon_key);
	free(cli->http);
	free(cli->http_token);
	free(cli->http_max_body);
	free(cli->predictions_keep);
}

/*
 * -o anon_key=FILE: the master key pii values are hashed under.  A
 * regular file of root's that no one else may read or write (0600 or
 * 0400), of 16 to 4096 bytes; anything else refuses the mount.  0, or
 * -1 after one line.
 */
static int read_anon_key(struct fs *fs, const char *path)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	unsigned char buf[4097];
	struct stat st;
	ssize_t n;

	if (fd < 0)
		return -fail("anon_key=%s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != 0 ||
	    (st.st_mode & 0177) != 0) {
		close(fd);
		return -fail("anon_key=%s: %s", path,
			     "must be a regular file of root's, mode 0600");
	}
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n < 16 || n > 4096) {
		explicit_bzero(buf, sizeof(buf));
		return -fail("anon_key=%s: %s", path,
			     "must hold 16 to 4096 bytes of key");
	}
	fs->anon_key = malloc((size_t)n);
	if (!fs->anon_key)
		return -fail("%s%s", strerror(ENOMEM), "");
	memcpy(fs->anon_key, buf, (size_t)n);
	fs->anon_key_len = (size_t)n;
	explicit_bzero(buf, sizeof(buf));
	return 0;
}

/* -o http, http_token, http_max_body: bound before the daemon detaches. */
static int bind_http(struct fs *fs, const struct cli *cli)
{
	struct http_opts ho = { cli->http, cli->http_token, 0 };

	if (cli->http_max_body &&
	    (parse_size(cli->http_max_body, &ho.max_body) < 0 ||
	     ho.max_body == 0))
		return fail("http_max_body=%s: not a size (e.g. 64M)%s",
			    cli->http_max_body, "");
	return http_bind(fs, &ho) < 0 ? 1 : 0;
}

/* predictions_keep=AGE[:SIZE], either part alone also. */
static int parse_keep(const char *s, struct fs_opts *o)
{
	char buf[64], *colon;
	int64_t secs;

	if (strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);
	colon = strchr(buf, ':');
	if (colon)
		*colon = '\0';
	if (featspec_duration(buf, &secs) == 0)
		o->predictions_keep_secs = (uint64_t)secs;
	else if (colon || parse_size(buf, &o->predictions_keep_bytes) < 0 ||
		 o->predictions_keep_bytes == 0)
		return -1;
	if (colon && (parse_size(colon + 1, &o->predictions_keep_bytes) < 0 ||
		      o->predictions_keep_bytes == 0))
		return -1;
	return 0;
}

/* The options fs keeps, with their defaults.  0, or 1 after one line. */
static int opts_from_cli(struct fs *fs, const struct cli *cli)
{
	fs->opts.max_file = (uint64_t)64 << 30;
	fs->opts.endpoint = cli->endpoint;
	fs->opts.region = cli->region;
	fs->opts.path_style = cli->path_style;
	fs->opts.import_ttl = cli->import_ttl;
	fs->opts.gc_grace = cli->gc_grace >= 0 ? (unsigned)cli->gc_grace : 600;
	fs->opts.verify_delay =
		cli->verify_delay >= 0 ? (unsigned)cli->verify_delay : 10;
	fs->opts.sync_timeout =
		cli->sync_timeout >= 0 ? (unsigned)cli->sync_timeout : 300;
	fs->opts.predictions_sync_ms = 1000;
	if (cli->predictions_sync) {
		char *end;
		double v = strtod(cli->predictions_sync, &end);

		if (end == cli->predictions_sync || *end || !(v >= 0.001) ||
		    v > 3600)
			return fail("predictions_sync=%s: not a number of "
				    "seconds from 0.001 to 3600%s",
				    cli->predictions_sync, "");
		fs->opts.predictions_sync_ms = (unsigned)(v * 1000 + 0.5);
	}
	if (cli->anon_key && read_anon_key(fs, cli->anon_key) < 0)
		return 1;
	if (cli->predictions_keep &&
	    parse_keep(cli->predictions_keep, &fs->opts) < 0)
		return fail("predictions_keep=%s: %s", cli->predictions_keep,
			    "expected an age (30d), a size (10G) or both "
			    "(30d:10G)");
	if (cli->max_file && parse_size(cli->max_file, &fs->opts.max_file) < 0)
		return fail("max_file=%s: not a size (e.g. 512M, 20G)%s",
			    cli->max_file, "");
	return 0;
}

/*
 * The store argument: an S3 URL (*remote), or a writable folder whose
 * real path goes in real.  0, or 1 after one line.
 */
static int check_store(const struct cli *cli, bool *remote,
		       char real[PATH_MAX])
{
	struct stat st;

	*remote = remote_is_url(cli->store);
	if (*remote)
		return 0;
	if (stat(cli->store, &st) < 0)
		return fail("store %s: %s", cli->store, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return fail("store %s: %s", cli->store, strerror(ENOTDIR));
	if (access(cli->store, W_OK) < 0)
		return fail("store %s: not writable: %s", cli->store,
			    strerror(errno));
	if (!realpath(cli->store, real))
		return fail("store %s: %s", cli->store, strerror(errno));
	return 0;
}

/* A folder that is not a mountpoint yet: fs->opts.mountpoint, its path. */
static int check_mountpoint(struct fs *fs, const struct cli *cli)
{
	char real[PATH_MAX];
	struct stat st;

	if (stat(cli->mountpoint, &st) < 0)
		return fail("mountpoint %s: %s", cli->mountpoint,
			    strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return fail("mountpoint %s: %s", cli->mountpoint,
			    strerror(ENOTDIR));
	if (mountpoint_busy(cli->mountpoint))
		return fail("mountpoint %s: already a mountpoint (busy)%s",
			    cli->mountpoint, "");
	if (!realpath(cli->mountpoint, real))
		return fail("mountpoint %s: %s", cli->mountpoint,
			    strerror(errno));
	fs->opts.mountpoint = strdup(real);
	return 0;
}

/* The cache folder of a local store: made if missing, writable. */
static int open_local_cache(struct fs *fs, const struct cli *cli)
{
	fs->opts.cache_dir = cli->cache ? strdup(cli->cache)
					: default_cache_dir(fs->opts.store_dir);
	if (!fs->opts.store || !fs->opts.store_dir || !fs->opts.mountpoint ||
	    !fs->opts.cache_dir)
		return fail("%s%s", strerror(ENOMEM), "");
	if (mkdir(fs->opts.cache_dir, 0700) < 0 && errno != EEXIST)
		return fail("cache %s: %s", fs->opts.cache_dir,
			    strerror(errno));
	if (access(fs->opts.cache_dir, W_OK) < 0)
		return fail("cache %s: not writable: %s", fs->opts.cache_dir,
			    strerror(errno));
	return 0;
}

/*
 * The local store's checks, before the daemon detaches: not around the
 * mountpoint, its cache folder, its format and its lock (*lock_fd).  One
 * line and status 1 on failure.
 */
static int open_local(struct fs *fs, const struct cli *cli, int *lock_fd)
{
	size_t slen = strlen(fs->opts.store_dir);
	char msg[256], lock[PATH_MAX];
	int rc;

	if (strncmp(fs->opts.mountpoint, fs->opts.store_dir, slen) == 0 &&
	    (fs->opts.mountpoint[slen] == '/' ||
	     fs->opts.mountpoint[slen] == '\0'))
		return fail("mountpoint %s is inside the store %s",
			    cli->mountpoint, cli->store);
	rc = open_local_cache(fs, cli);
	if (rc)
		return rc;
	rc = store_local_open(fs->opts.store_dir, &fs->store);
	if (rc < 0)
		return fail("store %s: %s", cli->store, strerror(-rc));
	rc = repo_format_check(fs, msg, sizeof(msg));
	if (rc < 0)
		return fail("store %s: %s", cli->store,
			    msg[0] ? msg : strerror(-rc));
	/*
	 * One mount per store: a second one would clear the first one's
	 * staging files and race its version numbers.  The lock is held by
	 * the open file description, which the daemon inherits at fork.
	 */
	snprintf(lock, sizeof(lock), "%s/.mlfs-lock", fs->opts.store_dir);
	*lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (*lock_fd < 0 || flock(*lock_fd, LOCK_EX | LOCK_NB) < 0)
		return fail("store %s: %s", cli->store,
			    errno == EWOULDBLOCK
				    ? "already mounted by another mlfs"
				    : strerror(errno));
	clean_tmp(fs->opts.store_dir);
	return 0;
}

/* Where messages go (fs->log_fp).  0, or 1 after a line. */
static int open_log(struct fs *fs, const struct cli *cli)
{
	fs->opts.foreground = cli->foreground || cli->debug;
	fs->opts.debug = cli->debug;
	fs->log_fp = fs->opts.foreground ? stderr : NULL;
	if (cli->log) {
		fs->log_fp = fopen(cli->log, "ae");
		if (!fs->log_fp)
			return fail("log %s: %s", cli->log, strerror(errno));
	}
	return 0;
}

/* On the plugin loader's thread, before anyone sees the set. */
static void plugins_loaded(struct fs *fs, struct plugin_set *ps, int err)
{
	if (!ps) {
		fs_log(fs, LOG_ERR, "plugins %s: %s", fs->opts.plugin_dir,
		       strerror(-err));
		return;
	}
	for (size_t i = 0; i < ps->nrefused; i++)
		fs_log(fs, LOG_WARNING, "plugin refused: %s", ps->refused[i]);
}

/*
 * The plugin directory into fs->opts.plugin_dir: absolute (a daemon's
 * working directory becomes /, and a thread loads them after that) and
 * one we can list, or the mount fails as it did when they loaded here.
 * A directory that does not exist is an empty set.  0, or 1 after a line.
 */
static int plugin_dir(struct fs *fs, const struct cli *cli)
{
	const char *pdir = cli->plugins ? cli->plugins : plugin_default_dir();
	char real[PATH_MAX];
	char cwd[PATH_MAX];
	DIR *d;
	int n;

	if (!*pdir) {
		real[0] = '\0'; /* plugins= : none, as before */
	} else if (realpath(pdir, real)) {
		d = opendir(real);
		if (!d)
			return fail("plugins %s: %s", pdir, strerror(errno));
		closedir(d);
	} else if (errno != ENOENT) {
		return fail("plugins %s: %s", pdir, strerror(errno));
	} else if (pdir[0] == '/') {
		snprintf(real, sizeof(real), "%s", pdir);
	} else {
		if (!getcwd(cwd, sizeof(cwd)))
			return fail("plugins %s: %s", pdir, strerror(errno));
		n = snprintf(real, sizeof(real), "%s/%s", cwd, pdir);
		if (n < 0 || (size_t)n >= sizeof(real))
			return fail("plugins %s: %s", pdir,
				    strerror(ENAMETOOLONG));
	}
	fs->opts.plugin_dir = strdup(real);
	if (!fs->opts.plugin_dir)
		return fail("%s%s", strerror(ENOMEM), "");
	return 0;
}

/*
 * Every user's handles and jobs share the daemon's descriptors: take all
 * the kernel allows us.
 */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* The rest of struct fs: limits, locks, the repository, the node table. */
static int fs_setup(struct fs *fs, const struct cli *cli)
{
	fs->opts.jobs = cli->jobs;
	fs->opts.handles_per_uid = cli->handles_per_uid;
	fs->mounted = time(NULL);
	pthread_mutex_init(&fs->errors_lock, NULL);
	pthread_mutex_init(&fs->ds_lock, NULL);
	pthread_mutex_init(&fs->cat_lock, NULL);
	pthread_mutex_init(&fs->online_lock, NULL);
	fs_glue_init(fs);
	root_init();
	if (repo_open(fs) < 0 || served_cache_open(fs) < 0 ||
	    plot_cache_open(fs) < 0 || answers_start(fs) < 0 || featonline_start(fs) < 0 || node_table_init(fs) < 0)
		return fail("%s%s", strerror(ENOMEM), "");
	return 0;
}

/*
 * The FUSE session, its signal handlers and the mount (*out), or nothing
 * of them and status 1 after one line.
 */
static int session_mount(struct fs *fs, const struct cli *cli,
			 struct fuse_args *args, struct fuse_session **out)
{
	struct fuse_session *se;
	char max_read[32];
	int status;

	*out = NULL;
	/* The kernel checks permissions against the modes we report. */
	fuse_opt_add_arg(args, "-odefault_permissions");
	fuse_opt_add_arg(args, "-ofsname=mlfs");
	fuse_opt_add_arg(args, "-osubtype=mlfs");
	/* after the user's options: the init reply must say the same */
	snprintf(max_read, sizeof(max_read), "-omax_read=%u", fuse_read_max());
	fuse_opt_add_arg(args, max_read);
	if (cli->debug)
		fuse_opt_add_arg(args, "-d");
	se = fuse_session_new(args, &fs_fuse_ops, sizeof(fs_fuse_ops), fs);
	if (!se)
		return fail("bad mount options (see mlfs --help)%s%s", "", "");
	if (fuse_set_signal_handlers(se) < 0) {
		status = fail("cannot set signal handlers%s%s", "", "");
		goto out_session;
	}
	/*
	 * libfuse makes SIGHUP unmount.  A daemon has no terminal whose
	 * hangup means anything, and a SIGHUP is what a user who got a
	 * terminal opened by the daemon would send to unmount it for
	 * everyone: ignore it (SIGTERM and SIGINT still unmount).
	 */
	signal(SIGHUP, SIG_IGN);
	if (fuse_session_mount(se, fs->opts.mountpoint) < 0) {
		status = fail("mount %s failed%s", cli->mountpoint, "");
		goto out_signals;
	}
	*out = se;
	return 0;
out_signals:
	fuse_remove_signal_handlers(se);
out_session:
	fuse_session_destroy(se);
	return status;
}

/* Undo session_mount. */
static void session_unmount(struct fuse_session *se)
{
	fuse_session_unmount(se);
	fuse_remove_signal_handlers(se);
	fuse_session_destroy(se);
}

/*
 * After the fork: what starts threads or maps files.  0, or -1 after a
 * line in the log; stop_services() undoes what started either way.
 */
static int start_services(struct fs *fs, const struct cli *cli, bool remote)
{
	bool verify = false;
	char msg[256];

	/* first, so that any request finds it; it loads at the end's time */
	if (plugin_load_start(fs, fs->opts.plugin_dir, plugins_loaded) < 0) {
		fs_log(fs, LOG_ERR, "cannot start a thread");
		return -1;
	}
	if (remote) {
		if (remote_start(fs, msg, sizeof(msg)) < 0) {
			fs_log(fs, LOG_ERR, "%s: %s", cli->store, msg);
			return -1;
		}
	} else if (remote_poll_start(fs) < 0) {
		fs_log(fs, LOG_ERR, "cannot start a thread");
		return -1;
	}
	if (open_index(fs, &verify) < 0)
		return -1;
	remote_index_ready(fs);
	uploads_sweep(fs); /* the writer's: what a crash cut is aborted */
	if (reap_start(fs) < 0) {
		fs_log(fs, LOG_ERR, "cannot start a thread");
		return -1;
	}
	if (verify && repo_verify_start(fs) < 0) {
		fs_log(fs, LOG_ERR, "cannot start a thread");
		return -1;
	}
	if (runner_start(fs) < 0) {
		fs_log(fs, LOG_ERR, "cannot start the job runner");
		return -1;
	}
	if (deploy_start(fs, fs->opts.predictions_sync_ms) < 0) {
		fs_log(fs, LOG_ERR, "cannot start a thread");
		return -1;
	}
	next_start(fs);
	if (collect_start(fs) < 0) {
		fs_log(fs, LOG_ERR, "cannot start following landing "
				    "directories");
		return -1;
	}
	if (http_start(fs) < 0) {
		fs_log(fs, LOG_ERR, "http: cannot start serving");
		return -1;
	}
	/*
	 * A moment after the services: a fresh mount's first requests (a
	 * listing) go before loading the plugins, unless they need them.
	 */
	plugin_load_after(fs, PLUGINS_DELAY_MS);
	return 0;
}

static void stop_services(struct fs *fs)
{
	http_stop(fs); /* no request in flight from here on */
	collect_stop(fs); /* no import from here on */
	repo_imports_stop(fs); /* nor a lazy one */
	pthread_mutex_lock(&fs->ds_lock);
	next_stop(fs); /* parked readers are answered at unmount */
	pthread_mutex_unlock(&fs->ds_lock);
	repo_verify_join(fs);
	reap_stop(fs);
	runner_stop(fs);
	deploy_stop(fs); /* what is pending committed; models let go */
	served_cache_clear(fs); /* before the plugins they use go */
	remote_stop(fs);
	plugin_load_join(fs); /* while the log is open: it may write */
}

/*
 * FUSE's loop until the unmount; *status is then the exit status.
 * -ENOMEM, *status untouched, if the loop could not start.
 */
static int serve(struct fs *fs, struct fuse_session *se, int *status)
{
	struct fuse_loop_config *lcfg = fuse_loop_cfg_create();
	int rc;

	if (!lcfg)
		return -ENOMEM;
	fuse_loop_cfg_set_clone_fd(lcfg, 0);
	fuse_loop_cfg_set_idle_threads(lcfg, 10);
	fuse_loop_cfg_set_max_threads(lcfg, 64);
	rc = fuse_session_loop_mt(se, lcfg);
	/*
	 * fusermount3 -u, SIGTERM, SIGINT: a clean unmount.  So is
	 * ECONNABORTED: the kernel gives it to a worker that took a request
	 * while the unmount tore the connection down (seen under load).
	 */
	*status = (rc == 0 || rc == SIGTERM || rc == SIGINT ||
		   rc == -ECONNABORTED || rc == ECONNABORTED)
			  ? 0
			  : 1;
	/* an import that would commit after the clean mark is stopped */
	repo_imports_stop(fs);
	/* an index from the catalog that was never checked is not clean */
	if (repo_verify_join(fs) == 0 && *status == 0)
		mark_clean(fs);
	fuse_loop_cfg_destroy(lcfg);
	return 0;
}

/* After the fork: the services, FUSE's loop, their end.  The exit status. */
static int daemon_run(struct fs *fs, const struct cli *cli,
		      struct fuse_session *se, bool remote)
{
	int status;

	/*
	 * A failure after the fork exits 1 on a local store but 0 on an S3
	 * one: before main() was split, the status open_remote() returned
	 * (0) was still the one returned there.  A refactor keeps it; whether
	 * it should be 1 is a question of its own.
	 */
	status = remote ? 0 : 1;
	if (start_services(fs, cli, remote) == 0)
		serve(fs, se, &status);
	stop_services(fs);
	return status;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_session *se = NULL;
	struct cli cli = { .gc_grace = -1, .verify_delay = -1,
			   .sync_timeout = -1, .handles_per_uid = 4096 };
	struct fs fs = { 0 };
	char real[PATH_MAX];
	int status = 1;
	int lock_fd = -1;
	bool remote = false;

	/* once, before any thread: the S3 probe runs before the fork */
	curl_global_init(CURL_GLOBAL_DEFAULT);
	/*
	 * Before any thread, and before the train plugins bring OpenBLAS
	 * in: its pool would start one thread per core, which spins in
	 * sched_yield for about 0.1 s (5 % of the daemon's CPU in a profile
	 * of a cold read just after the mount).  Serving scores small
	 * batches on one thread; jobs get their own setting (sched.c).
	 */
	setenv("OPENBLAS_NUM_THREADS", "1", 1);
	if (fuse_opt_parse(&args, &cli, cli_opts, cli_proc) < 0)
		return 1;
	if (cli_only_answers(&cli, &status))
		goto out_args;
	status = opts_from_cli(&fs, &cli);
	/* before the store and its lease: a bad directory changes nothing */
	if (status == 0)
		status = plugin_dir(&fs, &cli);
	if (status)
		goto out_args;
	status = check_store(&cli, &remote, real);
	if (status) {
		free(fs.opts.plugin_dir);
		goto out_args;
	}
	fs.opts.store = strdup(cli.store);
	fs.opts.store_dir = remote ? NULL : strdup(real);
	/* before open_remote: the S3 checks keep what they find there */
	if (remote_open(&fs) < 0) {
		status = fail("%s%s", strerror(ENOMEM), "");
		goto out_fs;
	}
	status = check_mountpoint(&fs, &cli);
	if (status)
		goto out_fs;
	/* before open_remote: a mount that is ro by choice takes no lease */
	fs.opts.read_only = cli.ro;
	status = remote ? open_remote(&fs, &cli, &lock_fd)
			: open_local(&fs, &cli, &lock_fd);
	if (status)
		goto out_fs;
	status = open_log(&fs, &cli);
	if (status)
		goto out_fs;
	raise_nofile();
	status = bind_http(&fs, &cli);
	if (status)
		goto out_fs;
	status = fs_setup(&fs, &cli);
	if (status)
		goto out_fs;
	status = session_mount(&fs, &cli, &args, &se);
	if (status)
		goto out_fs;
	raise_readahead(&fs, fs.opts.mountpoint);
	if (!fs.opts.foreground)
		openlog("mlfs", LOG_PID, LOG_DAEMON);
	if (fuse_daemonize(fs.opts.foreground) < 0) {
		status = 1;
		goto out_unmount;
	}
	status = daemon_run(&fs, &cli, se, remote);
out_unmount:
	session_unmount(se);
out_fs:
	if (fs.log_fp && fs.log_fp != stderr)
		fclose(fs.log_fp);
	fs_free(&fs);
	if (lock_fd >= 0)
		close(lock_fd);
out_args:
	fuse_opt_free_args(&args);
	cli_free(&cli);
	curl_global_cleanup();
	return status;
}

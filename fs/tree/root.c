/* SPDX-License-Identifier: MIT */
/*
 * The root of the mount: the generated README, .mlfs/ (the filesystem's
 * own controls and status) and the top-level directories.  Any FUSE
 * worker enters; the errors ring is under fs->errors_lock.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <syslog.h>
#include <time.h>

#include "config.h"
#include "datasets.h"
#include "feature_sets.h"
#include "deployments.h"
#include "jobs.h"
#include "models.h"
#include "plugin.h"
#include "bcache.h"
#include "catalog.h"
#include "repo.h"
#include "objects.h"
#include "predict.h"
#include "prom.h"
#include "remote.h"
#include "uploads.h"
#include "fs.h"
#include "node.h"

static int readme_show(struct node *n, struct strbuf *out);

static int version_show(struct node *n, struct strbuf *out)
{
	(void)n;
	return sb_printf(out, "mlfs %s\n", MLFS_VERSION);
}

static int stats_show(struct node *n, struct strbuf *out)
{
	struct fs *fs = n->fs;

	return sb_printf(out,
			 "uptime_seconds %lld\n"
			 "lookups %llu\n"
			 "getattrs %llu\n"
			 "opens %llu\n"
			 "reads %llu\n"
			 "writes %llu\n"
			 "flushes %llu\n"
			 "bytes_read %llu\n"
			 "bytes_written %llu\n"
			 "versions_created %llu\n"
			 "rejected %llu\n"
			 "models_in_memory %zu\n",
			 (long long)(time(NULL) - fs->mounted),
			 (unsigned long long)fs->n_lookup,
			 (unsigned long long)fs->n_getattr,
			 (unsigned long long)fs->n_open,
			 (unsigned long long)fs->n_read,
			 (unsigned long long)fs->n_write,
			 (unsigned long long)fs->n_flush,
			 (unsigned long long)fs->bytes_read,
			 (unsigned long long)fs->bytes_written,
			 (unsigned long long)fs->n_versions,
			 (unsigned long long)fs->n_rejected, served_cached(fs));
}

/*
 * .mlfs/errors is a stream (tail -f follows it): the kept lines, at
 * absolute offsets that survive the eviction of old lines.
 */
static int errors_open(struct fs_file *f, const struct fs_ctx *ctx)
{
	(void)ctx;
	if ((f->flags & O_ACCMODE) != O_RDONLY)
		return -EACCES;
	f->direct_io = true;
	return 0;
}

static int errors_read(struct fs_file *f, size_t size, off_t off,
		       struct fs_reply *r)
{
	struct fs *fs = f->node->fs;
	uint64_t pos, want = (uint64_t)off;
	unsigned count, start;
	bool all = f->uid == 0;
	char *buf;
	size_t used = 0;

	buf = malloc(size ? size : 1);
	if (!buf)
		return -ENOMEM;
	pthread_mutex_lock(&fs->errors_lock);
	count = fs->errors_total < FS_ERRORS_KEEP ? (unsigned)fs->errors_total
						   : FS_ERRORS_KEEP;
	start = (fs->errors_next + FS_ERRORS_KEEP - count) % FS_ERRORS_KEEP;
	/*
	 * Root reads every line, at absolute offsets (evicted lines keep
	 * theirs).  Anyone else reads only the lines they caused: a line may
	 * quote what its writer wrote or data only they may read.  Their
	 * view starts at 0 with the oldest kept line of theirs; the size the
	 * file reports stays the whole ring's, never less than their view.
	 */
	pos = all ? fs->errors_dropped : 0;
	if (want < pos)
		want = pos; /* evicted: continue with the oldest kept line */
	for (unsigned i = 0; i < count && used < size; i++) {
		const char *line = fs->errors[(start + i) % FS_ERRORS_KEEP];
		size_t len = strlen(line);

		if (!all && fs->errors_uid[(start + i) % FS_ERRORS_KEEP] !=
				    f->uid)
			continue;

		if (pos + len > want) {
			size_t skip = (size_t)(want - pos);
			size_t n = len - skip;

			if (n > size - used)
				n = size - used;
			memcpy(buf + used, line + skip, n);
			used += n;
			want += n;
		}
		pos += len;
	}
	pthread_mutex_unlock(&fs->errors_lock);
	fs_reply_buf(r, buf, used);
	free(buf);
	return 0;
}

static int errors_getattr(struct node *n, struct stat *st)
{
	struct fs *fs = n->fs;

	pthread_mutex_lock(&fs->errors_lock);
	st->st_size = (off_t)(fs->errors_dropped + fs->errors_bytes);
	pthread_mutex_unlock(&fs->errors_lock);
	st->st_mtim.tv_sec = time(NULL);
	return 0;
}

static int plugins_show(struct node *n, struct strbuf *out)
{
	return plugin_render(fs_plugins(n->fs), out);
}

static int cache_show(struct node *n, struct strbuf *out)
{
	struct fs *fs = n->fs;
	struct bcache_stats st;

	char lease[8192];

	remote_describe(fs, lease, sizeof(lease));
	sb_printf(out, "store %s\ncache_dir %s\nmode %s\n%s", fs->opts.store,
		  fs->opts.cache_dir,
		  __atomic_load_n(&fs->opts.read_only, __ATOMIC_RELAXED) ? "ro"
									 : "rw",
		  lease);
	if (!bcache_is_cache(fs->store) || bcache_stats(fs->store, &st) < 0)
		return sb_puts(out, "cache none (a local store is read in "
				    "place)\ncommands sync gc\n");
	return sb_printf(out,
			 "hits %llu\nmisses %llu\nbytes_cached %llu\n"
			 "bytes_outbox %llu\nsize_limit %llu\n"
			 "evictions %llu\ncorrupt_blocks %llu\n"
			 "corrupt_objects %llu\n"
			 "exports_queued %llu\nexports_done %llu\n"
			 "export_failures %llu\nfetches %llu\n"
			 "fetch_bytes %llu\nfetch_mb_per_s %.1f\n"
			 "fetch_threads %llu\n"
			 "commands sync gc prefetch PATH release PATH\n",
			 (unsigned long long)st.hits,
			 (unsigned long long)st.misses,
			 (unsigned long long)st.bytes_cached,
			 (unsigned long long)st.bytes_outbox,
			 (unsigned long long)st.size_limit,
			 (unsigned long long)st.evictions,
			 (unsigned long long)st.corrupt,
			 (unsigned long long)st.corrupt_objects,
			 (unsigned long long)st.exports_queued,
			 (unsigned long long)st.exports_done,
			 (unsigned long long)st.export_failures,
			 (unsigned long long)st.fetches,
			 (unsigned long long)st.fetch_bytes,
			 st.fetch_seconds > 0 ? (double)st.fetch_bytes /
							st.fetch_seconds / 1e6
					      : 0.0,
			 (unsigned long long)st.fetch_threads);
}

/*
 * Commands: sync (wait until every export is in the store), gc (remove
 * blobs nothing references), prefetch PATH, release PATH (PATH relative
 * to the mount, or absolute under it).
 */
static int cache_store(struct node *n, const char *text, size_t len,
		       const struct fs_ctx *ctx, struct problem *pb)
{
	struct fs *fs = n->fs;
	char cmd[1200], key[128];
	const char *arg;
	size_t mlen = strlen(fs->opts.mountpoint);
	int rc;

	while (len && (text[len - 1] == '\n' || text[len - 1] == ' '))
		len--;
	snprintf(cmd, sizeof(cmd), "%.*s", (int)len, text);
	if (strcmp(cmd, "sync") == 0) {
		rc = obj_sync(fs, NULL, n->path, ctx);
		/*
		 * sync leaves a current catalog in the bucket, too, if this
		 * mount still holds the lease (see remote_export_wait)
		 */
		if (rc == 0)
			rc = remote_export_wait(fs);
		return rc < 0 ? rc : catalog_write(fs);
	}
	if (strcmp(cmd, "gc") == 0) {
		if (fs->opts.read_only)
			return -EROFS; /* the writer's to do */
		rc = repo_gc(fs);
		if (rc >= 0)
			rc = uploads_sweep(fs);
		return rc < 0 ? rc : 0;
	}
	arg = strchr(cmd, ' ');
	if (!arg || (strncmp(cmd, "prefetch ", 9) && strncmp(cmd, "release ", 8)))
		return problem_set(pb, 1, 1,
				   "unknown command \"%.64s\" (commands: "
				   "sync, gc, prefetch PATH, release PATH)",
				   cmd);
	arg++;
	if (strncmp(arg, fs->opts.mountpoint, mlen) == 0 && arg[mlen] == '/')
		arg += mlen + 1;
	rc = obj_path_blob(fs, arg, key, sizeof(key));
	/* prefetch of a lazy import not read yet: import it (hsm_restore) */
	if (rc == -EREMOTE && cmd[0] == 'p') {
		rc = obj_path_import(fs, arg, pb);
		if (rc < 0)
			return rc;
		rc = obj_path_blob(fs, arg, key, sizeof(key));
	}
	if (rc == -EREMOTE)
		return 0; /* release of what is only in the source bucket */
	if (rc < 0)
		return problem_set(pb, 1, (unsigned)(arg - cmd) + 1,
				   "\"%s\": no stored content there (a "
				   "data.csv, or a file of a model version)",
				   arg);
	if (!bcache_is_cache(fs->store))
		return 0; /* a local store: always here */
	if (cmd[0] == 'p') {
		rc = bcache_prefetch(fs->store, key);
		/* a version found not to match its hash lately (reported then) */
		return rc == -EBADMSG ? -EIO : rc;
	}
	rc = bcache_release(fs->store, key);
	if (rc == -EBUSY)
		problem_set(pb, 1, (unsigned)(arg - cmd) + 1,
			    "\"%s\": not exported yet: only exported content "
			    "can be released",
			    arg);
	return rc;
}

/* .mlfs/http: where -o http listens ("unix:PATH", "ADDR:PORT"), or
 * nothing. */
static int http_show(struct node *n, struct strbuf *out)
{
	return n->fs->http_addr[0] ? sb_printf(out, "%s\n", n->fs->http_addr)
				   : 0;
}

static const struct node_type mlfs_files[] = {
	{ "version", S_IFREG | 0444, 0, .show = version_show },
	{ "plugins", S_IFREG | 0444, 0, .show = plugins_show },
	{ "cache", S_IFREG | 0644, NODE_F_SCRATCH | NODE_F_COMMAND,
	  .show = cache_show,
	  .store = cache_store },
	{ "stats", S_IFREG | 0444, 0, .show = stats_show },
	{ "metrics.prom", S_IFREG | 0444, NODE_F_VOLATILE,
	  .show = daemon_prom_show },
	{ "http", S_IFREG | 0444, 0, .show = http_show },
	{ "errors", S_IFREG | 0444, NODE_F_STREAM, .open = errors_open,
	  .read = errors_read, .getattr = errors_getattr },
	{ NULL },
};

static const struct node_type readme_type = {
	"README", S_IFREG | 0444, 0, .show = readme_show,
};

static const struct node_type mlfs_type = {
	".mlfs", S_IFDIR | 0555, 0, .children = mlfs_files,
};

/*
 * The root's entries, in readdir order, each with the text the mount's
 * README gives it.  The README is generated from this table and the
 * root's children are copied from it, so a top-level directory cannot be
 * served without being described.
 */
struct root_entry {
	const struct node_type *type;
	const char *about; /* lines, each ending in '\n' */
};

static const struct root_entry root_entries[] = {
	{ &readme_type, "this file\n" },
	{ &mlfs_type,
	  "the filesystem's own files: version, plugins (loaded and\n"
	  "refused), stats, cache (block cache and export queue; takes\n"
	  "sync, gc, prefetch PATH, release PATH), errors (bad input,\n"
	  "newest last: each user sees their own lines), metrics.prom,\n"
	  "http (where -o http serves the Open Inference Protocol)\n" },
	{ &datasets_type,
	  "<ds>/            mkdir makes a dataset; rmdir removes it with\n"
	  "                 its versions\n"
	  "  data.csv       the latest version: cp, > or >> a CSV here to\n"
	  "                 make a new version (on close)\n"
	  "  source         write a local path or s3://bucket/key to import\n"
	  "                 it as a new version\n"
	  "  schema         column types and roles (JSON); write to override,\n"
	  "                 e.g. {\"columns\": [{\"name\": \"id\", \"role\": \"id\"}]}\n"
	  "  stats          per-column statistics (JSON)\n"
	  "  prepare        write a spec of prep steps: a new version (job)\n"
	  "  label/         queue (rows whose label is empty), stats,\n"
	  "                 answers (key,label lines: a version), model\n"
	  "  watch          a host directory: each file landing, a version\n"
	  "  schedule       an interval: source imported again if changed\n"
	  "  next           blocks until a newer version exists, names it\n"
	  "  latest -> v<n> the newest version\n"
	  "  <alias> -> v<n> ln -s v2 prod; ln -sfn v3 prod; rm prod\n"
	  "  v<n>/          immutable: data.csv schema stats lineage next\n" },
	{ &features_type,
	  "<fs>/            mkdir makes a feature set\n"
	  "  spec           its definition (JSON): entity, timestamp, source,\n"
	  "                 features with agg and window; each new spec is a\n"
	  "                 new version\n"
	  "  latest -> v<n> the newest version; aliases as in datasets/\n"
	  "  v<n>/          immutable: spec\n" },
	{ &train_type,
	  "<job>.json       write a training spec here to start job <job>:\n"
	  "                 {\"dataset\": \"iris@1\", \"algorithm\": \"logistic\"}\n" },
	{ &jobs_type,
	  "<job>/           one per spec: status, wait (blocks until the job\n"
	  "                 ends), progress, log, metrics, split, spec, ctl\n"
	  "                 (takes cancel), trials/; rmdir removes an ended job\n" },
	{ &models_type,
	  "<m>/             made by training (or mkdir)\n"
	  "  predict        write rows (CSV or JSON lines), read the answers\n"
	  "  latest -> v<n> the newest version; ln -sfn v1 production pins\n"
	  "                 the one predict serves\n"
	  "  import         copy a bundle.tar here: a new version once its\n"
	  "                 sample reproduces\n"
	  "  v<n>/          immutable: model meta.json metrics.json\n"
	  "                 sample.csv bundle.tar (all of it, portable)\n"
	  "                 predict\n" },
	{ &batch_type,
	  "<job>.json       write a batch spec here to score a dataset with a\n"
	  "                 model into another: {\"model\": \"iris@1\",\n"
	  "                 \"dataset\": \"iris@1\", \"output\": \"scored\"}\n" },
	{ &deployments_type,
	  "<d>/             mkdir, then write spec: a strategy (single,\n"
	  "                 blue-green, canary, epsilon-greedy, thompson,\n"
	  "                 shadow) over model versions; each new spec is a\n"
	  "                 revision v<n>/\n"
	  "  predict        as a model's, routed; answers start with an id\n"
	  "  feedback       write id,truth rows: delayed labels\n"
	  "  predictions    every answer and label (JSON lines; tail -f)\n"
	  "  metrics        a JSON line per candidate per interval (tail -f)\n"
	  "  metrics.prom   the same for Prometheus; drift: each input's\n"
	  "                 PSI and KS or chi-squared against training\n"
	  "  traffic ctl    weights; promote, rollback, pause, resume\n"
	  "  status log     one line; a line per change\n" },
};

#define ROOT_N (sizeof(root_entries) / sizeof(root_entries[0]))

static int readme_show(struct node *n, struct strbuf *out)
{
	int rc;

	(void)n;
	rc = sb_puts(out,
		     "mlfs: a machine-learning platform as a filesystem\n");
	for (size_t i = 0; i < ROOT_N && rc >= 0; i++) {
		const struct node_type *t = root_entries[i].type;
		const char *line = root_entries[i].about;

		rc = sb_printf(out, "\n%s%s\n", t->name,
			       node_is_dir(t) ? "/" : "");
		while (*line && rc >= 0) {
			const char *nl = strchr(line, '\n');
			int len = (int)(nl ? nl - line : (long)strlen(line));

			rc = sb_printf(out, "    %.*s\n", len, line);
			line += len + (nl != NULL);
		}
	}
	if (rc >= 0)
		rc = sb_puts(out, "\nErrors: a bad CSV, schema or spec fails "
				  "the write or close with EINVAL,\nand the "
				  "reason, with file, line and column, goes "
				  "to .mlfs/errors.\nMore: man mlfs.\n");
	return rc;
}

/*
 * C cannot put an extern const object into a static initializer by
 * value, so the root's children are copied from root_entries once at
 * startup (root_init, before any thread), and constant after: a table
 * of the code, the same for every mount, not state of one.
 */
static struct node_type root_children[ROOT_N + 1];

/*
 * df: the store's disk; on S3, the cache's limit and what it holds (a
 * fuller disk than the cache limit shows as less free space).
 */
static int root_statfs(struct node *n, struct statvfs *sv)
{
	struct fs *fs = n->fs;
	struct bcache_stats st;

	if (statvfs(fs->opts.store_dir, sv) < 0)
		return -errno;
	sv->f_namemax = 255;
	if (bcache_is_cache(fs->store) && bcache_stats(fs->store, &st) == 0 &&
	    st.size_limit && sv->f_frsize) {
		uint64_t used = st.bytes_cached + st.bytes_outbox;
		uint64_t free_b = used >= st.size_limit
					  ? 0
					  : (st.size_limit - used) / sv->f_frsize;

		sv->f_blocks = st.size_limit / sv->f_frsize;
		if (free_b < sv->f_bfree)
			sv->f_bfree = free_b;
		if (free_b < sv->f_bavail)
			sv->f_bavail = free_b;
	}
	return 0;
}

const struct node_type root_type = {
	"", S_IFDIR | 0755, 0, .children = root_children,
	.statfs = root_statfs,
};

void root_init(void)
{
	for (size_t i = 0; i < ROOT_N; i++) {
		assert(root_entries[i].about && root_entries[i].about[0]);
		root_children[i] = *root_entries[i].type;
	}
	root_children[ROOT_N] = (struct node_type){ NULL };
}


/* SPDX-License-Identifier: MIT */
/*
 * The root of the mount: the generated README, .mlfs/ (the filesystem's
 * own controls and status) and the top-level directories.  Any FUSE
 * worker enters; the errors ring is under fs->errors_lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "config.h"
#include "datasets.h"
#include "jobs.h"
#include "models.h"
#include "plugin.h"
#include "predict.h"
#include "fs.h"
#include "node.h"

static const char readme_text[] =
	"mlfs: a machine-learning platform as a filesystem\n"
	"\n"
	"  datasets/<ds>/        mkdir makes a dataset; rmdir removes it\n"
	"    data.csv            the current version: cp or > a CSV here to\n"
	"                        make a new version (on close)\n"
	"    source              write a local path to import it as a version\n"
	"    schema              column types and roles (JSON); write to\n"
	"                        override, e.g.\n"
	"                        {\"columns\": [{\"name\": \"id\", \"role\": \"id\"}]}\n"
	"    stats               per-column statistics (JSON)\n"
	"    latest -> v<n>      the newest version\n"
	"    v<n>/               immutable: data.csv schema stats lineage\n"
	"    <alias> -> v<n>     ln -s v2 prod; ln -sfn v3 prod; rm prod\n"
	"  .mlfs/                version, stats, errors (bad input, newest "
	"last)\n"
	"\n"
	"Errors: a bad CSV or spec fails the write or close with EINVAL and\n"
	"the reason, with file, line and column, goes to .mlfs/errors.\n";

static int readme_show(struct node *n, struct strbuf *out)
{
	(void)n;
	return sb_puts(out, readme_text);
}

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
			 "reads %llu\n"
			 "writes %llu\n"
			 "bytes_read %llu\n"
			 "bytes_written %llu\n"
			 "versions_created %llu\n"
			 "rejected %llu\n"
			 "models_in_memory %zu\n",
			 (long long)(time(NULL) - fs->mounted),
			 (unsigned long long)fs->n_lookup,
			 (unsigned long long)fs->n_read,
			 (unsigned long long)fs->n_write,
			 (unsigned long long)fs->bytes_read,
			 (unsigned long long)fs->bytes_written,
			 (unsigned long long)fs->n_versions,
			 (unsigned long long)fs->n_rejected, served_cached());
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
	char *buf;
	size_t used = 0;

	buf = malloc(size ? size : 1);
	if (!buf)
		return -ENOMEM;
	pthread_mutex_lock(&fs->errors_lock);
	count = fs->errors_total < FS_ERRORS_KEEP ? (unsigned)fs->errors_total
						   : FS_ERRORS_KEEP;
	start = (fs->errors_next + FS_ERRORS_KEEP - count) % FS_ERRORS_KEEP;
	pos = fs->errors_dropped;
	if (want < pos)
		want = pos; /* evicted: continue with the oldest kept line */
	for (unsigned i = 0; i < count && used < size; i++) {
		const char *line = fs->errors[(start + i) % FS_ERRORS_KEEP];
		size_t len = strlen(line);

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
	return plugin_render(n->fs->plugins, out);
}

static int cache_show(struct node *n, struct strbuf *out)
{
	struct fs *fs = n->fs;

	return sb_printf(out, "store %s\ncache_dir %s\n", fs->opts.store,
			 fs->opts.cache_dir);
}

static const struct node_type mlfs_files[] = {
	{ "version", S_IFREG | 0444, 0, .show = version_show },
	{ "plugins", S_IFREG | 0444, 0, .show = plugins_show },
	{ "cache", S_IFREG | 0444, 0, .show = cache_show },
	{ "stats", S_IFREG | 0444, 0, .show = stats_show },
	{ "errors", S_IFREG | 0444, NODE_F_STREAM, .open = errors_open,
	  .read = errors_read, .getattr = errors_getattr },
	{ NULL },
};

static const struct node_type root_files[] = {
	{ "README", S_IFREG | 0444, 0, .show = readme_show },
	{ ".mlfs", S_IFDIR | 0555, 0, .children = mlfs_files },
	{ .name = "datasets" }, /* placeholders, replaced below */
	{ .name = "train" },
	{ .name = "jobs" },
	{ .name = "models" },
	{ NULL },
};

/*
 * C cannot put an extern const object into a static initializer by
 * value, so the root's children are assembled once at startup.
 */
static struct node_type root_children[sizeof(root_files) /
				      sizeof(root_files[0])];

const struct node_type root_type = {
	"", S_IFDIR | 0755, 0, .children = root_children,
};

void root_init(void)
{
	memcpy(root_children, root_files, sizeof(root_files));
	root_children[2] = datasets_type;
	root_children[3] = train_type;
	root_children[4] = jobs_type;
	root_children[5] = models_type;
}


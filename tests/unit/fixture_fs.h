/* SPDX-License-Identifier: MIT */
/*
 * The struct fs the unit programs and fuzz targets test against, without
 * FUSE: the base a mount has (log, locks, limits), a memory store or one
 * the test built (a faulty store over a memory one), and on request the
 * repository with a real LMDB index.  What sits above that (the served
 * model cache, the node table, the runner) is each test's own business.
 * Single-threaded setup and teardown; the fs itself is then as
 * thread-safe as the modules it holds.
 */
#ifndef MLFS_TESTS_UNIT_FIXTURE_FS_H
#define MLFS_TESTS_UNIT_FIXTURE_FS_H

#include <stdbool.h>

struct fs;
struct plugin_set;
struct problem;
struct store;

/* What fixture_fs_setup() builds; a zeroed struct: a memory store only. */
struct fixture_fs_opts {
	struct store *store; /* fs->store, handed over (closed at teardown,
				or by a setup that fails); NULL: a new
				memory store, unless s3 */
	bool s3;             /* the new memory store is fs->s3, the bucket
				the catalog is read from, and fs->store
				stays NULL */
	const char *index;   /* directory of the LMDB index, made if need
				be, and the repository over it (repo_open);
				NULL: neither */
	struct plugin_set *plugins; /* fs->plugins; borrowed, must outlive
				       the fs; may be NULL */
	bool quiet;          /* log to /dev/null, not stderr */
};

/*
 * fixture_fs_setup: fill *fs (its previous content is ignored) as opts
 * says.  0, or -errno (-ENOMEM, or the index's meta_open error) with
 * everything it did undone, the store it was handed closed too.
 */
int fixture_fs_setup(struct fs *fs, const struct fixture_fs_opts *opts);

/*
 * fixture_fs_teardown: free what fixture_fs_setup made, and what the fs
 * holds then: the .mlfs/errors lines, the repository, fs->meta, both
 * stores (NULL ones skipped, so a test may close one early and clear
 * it) and a log that is not stderr.  The index directory stays.
 */
void fixture_fs_teardown(struct fs *fs);

/*
 * fixture_fs_publish: stage text in a temporary file of the store's and
 * make it a version of dataset name (which must exist) with ds_publish,
 * as a write from uid 0 would.  0 with *ver and *created as ds_publish
 * sets them, or its -errno (pb filled for bad CSV), the staged file
 * removed.
 */
int fixture_fs_publish(struct fs *fs, const char *name, const char *text,
		       unsigned *ver, bool *created, struct problem *pb);

/* fixture_fs_rmrf: remove the directory dir and all below it (rm -rf). */
void fixture_fs_rmrf(const char *dir);

#endif

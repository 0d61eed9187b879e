/* SPDX-License-Identifier: MIT */
/*
 * The struct fs of the unit programs and fuzz targets (see fixture_fs.h):
 * set up as fs/main.c sets up a mount's, short of FUSE and of the modules
 * above the repository.  Built into each program that uses it, so in the
 * unit programs its allocations go through the failalloc wrappers too.
 * Single-threaded.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture_fs.h"
#include "fs.h"
#include "meta.h"
#include "repo.h"
#include "store.h"

int fixture_fs_setup(struct fs *fs, const struct fixture_fs_opts *opts)
{
	bool created;
	int rc;

	memset(fs, 0, sizeof(*fs));
	pthread_mutex_init(&fs->errors_lock, NULL);
	pthread_mutex_init(&fs->ds_lock, NULL);
	pthread_mutex_init(&fs->cat_lock, NULL);
	pthread_mutex_init(&fs->online_lock, NULL);
	fs->store = opts->store;
	fs->plugins = opts->plugins;
	fs->opts.max_file = 1 << 20;
	fs->log_fp = stderr;
	/* teardown undoes a partial setup: each step below is NULL-safe */
	if (opts->quiet) {
		fs->log_fp = fopen("/dev/null", "w");
		if (!fs->log_fp) {
			rc = -errno;
			goto out_teardown;
		}
	}
	if (!opts->store) {
		rc = store_mem_open(opts->s3 ? &fs->s3 : &fs->store);
		if (rc < 0)
			goto out_teardown;
	}
	if (!opts->index)
		return 0;
	rc = repo_open(fs);
	if (rc < 0)
		goto out_teardown;
	rc = meta_open(opts->index, &fs->meta, &created);
	if (rc < 0)
		goto out_teardown;
	return 0;

out_teardown:
	fixture_fs_teardown(fs);
	return rc;
}

void fixture_fs_teardown(struct fs *fs)
{
	for (unsigned i = 0; i < FS_ERRORS_KEEP; i++)
		free(fs->errors[i]);
	repo_close(fs);
	meta_close(fs->meta);
	store_close(fs->store);
	store_close(fs->s3);
	if (fs->log_fp && fs->log_fp != stderr)
		fclose(fs->log_fp);
	pthread_mutex_destroy(&fs->cat_lock);
	pthread_mutex_destroy(&fs->online_lock);
	pthread_mutex_destroy(&fs->ds_lock);
	pthread_mutex_destroy(&fs->errors_lock);
	memset(fs, 0, sizeof(*fs));
}

int fixture_fs_publish(struct fs *fs, const char *name, const char *text,
		       unsigned *ver, bool *created, struct problem *pb)
{
	struct repo_origin o = { "write", "test", NULL, 0, 0, 0 };
	size_t len = strlen(text);
	char path[4096];
	int fd, rc;

	rc = store_tmp_path(fs->store, path, sizeof(path));
	if (rc < 0)
		return rc;
	fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0)
		return -errno;
	if (write(fd, text, len) != (ssize_t)len) {
		close(fd);
		return -EIO;
	}
	rc = ds_publish(fs, name, path, fd, &o, ver, created, pb);
	close(fd);
	if (rc < 0)
		unlink(path);
	return rc;
}

void fixture_fs_rmrf(const char *dir)
{
	char cmd[4200];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "# cannot remove %s\n", dir);
}

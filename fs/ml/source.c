/* SPDX-License-Identifier: MIT */
/*
 * Imports from outside the mount (source.h).  A host file is copied into
 * the store's temporary folder first (another user may change it under
 * us, and it is not ours to move), then published: ds_publish judges it
 * as CSV and makes no version for content equal to the latest's.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"
#include "remote.h"
#include "repo.h"
#include "source.h"
#include "store.h"

#define APPEND_TRIES 4 /* publishes raced by another change, then ESTALE */

static int import_s3(struct fs *fs, const char *name, const char *url,
		     struct repo_origin *origin, unsigned *ver, bool *created,
		     struct problem *pb)
{
	char etag[80], msg[400];
	uint64_t size;
	int rc;

	rc = remote_head(fs, url, fs->opts.max_file, &size, etag, sizeof(etag),
			 msg, sizeof(msg));
	if (rc < 0) {
		problem_set(pb, 1, 1, "%s", msg);
		return rc;
	}
	origin->etag = etag;
	return ds_publish_pending(fs, name, origin, size, ver, created);
}

/* u's descriptor of the host file path, or -errno with pb. */
static int open_as(const struct host_user *u, const char *path, int *fd,
		   struct problem *pb)
{
	int rc = host_open(u, path, false, fd);

	if (rc == -EINVAL)
		return problem_set(pb, 1, 1, "\"%s\": not a regular file",
				   path);
	if (rc < 0)
		problem_set(pb, 1, 1, "\"%s\": %s", path, strerror(-rc));
	return rc;
}

int source_check(struct fs *fs, const char *src, const struct host_user *u,
		 struct problem *pb)
{
	char etag[80], msg[400];
	uint64_t size;
	int fd, rc;

	if (strncmp(src, "s3://", 5) == 0) {
		rc = remote_head(fs, src, fs->opts.max_file, &size, etag,
				 sizeof(etag), msg, sizeof(msg));
		if (rc < 0)
			problem_set(pb, 1, 1, "%s", msg);
		return rc;
	}
	rc = open_as(u, src, &fd, pb);
	if (rc == 0)
		close(fd);
	return rc;
}

int source_import(struct fs *fs, const char *name, const char *src,
		  const struct host_user *u, const char *made_by,
		  unsigned *ver, bool *created, char *where, size_t wherelen,
		  struct problem *pb)
{
	struct repo_origin origin = { made_by, src, NULL, u->uid, u->pid, 0 };
	char proc[64];
	ssize_t got;
	int in, rc;

	*ver = 0;
	*created = false;
	if (where)
		snprintf(where, wherelen, "%s", src);
	if (strncmp(src, "s3://", 5) == 0)
		return import_s3(fs, name, src, &origin, ver, created, pb);
	/* opened as the writer (relative to their working directory):
	 * never with the daemon's rights, never a terminal or a FIFO */
	rc = open_as(u, src, &in, pb);
	if (rc < 0)
		return rc;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", in);
	if (where && (got = readlink(proc, where, wherelen - 1)) > 0)
		where[got] = '\0';
	rc = source_import_fd(fs, name, in, src, u, made_by, false, ver,
			      created, pb);
	close(in);
	return rc;
}

/* The first line of p (n bytes), without its CR LF: its length. */
static size_t first_line(const char *p, size_t n)
{
	const char *nl = memchr(p, '\n', n);
	size_t len = nl ? (size_t)(nl - p) : n;

	return len && p[len - 1] == '\r' ? len - 1 : len;
}

/*
 * A copy of the latest version of name with in's rows after it, into the
 * open file out; its number in *over.  -EINVAL with pb when in's header
 * is not the version's.
 */
static int append_copy(struct fs *fs, const char *name, int in,
		       uint64_t size, int out, unsigned *over,
		       struct problem *pb)
{
	char *old = NULL, *add = NULL;
	size_t olen = 0, ol, al;
	json_t *man = NULL;
	ssize_t got = 0;
	int rc;

	*over = 0;
	rc = repo_version(fs, &repo_datasets, name, 0, &man);
	if (rc == -ENOENT) /* nothing yet: the file is the first version */
		return host_copy(in, out, size);
	if (rc < 0)
		return rc;
	*over = (unsigned)json_integer_value(json_object_get(man, "version"));
	json_decref(man);
	rc = ds_version_ready(fs, name, *over, &man, pb);
	if (rc == 0)
		rc = store_get(fs->store,
			       json_string_value(json_object_get(man, "blob")),
			       SIZE_MAX, &old, &olen);
	json_decref(man);
	add = rc == 0 ? malloc(size ? size : 1) : NULL;
	if (rc == 0 && !add)
		rc = -ENOMEM;
	if (rc == 0)
		got = pread(in, add, size, 0);
	if (rc == 0 && got != (ssize_t)size)
		rc = got < 0 ? -errno : -EIO;
	if (rc < 0)
		goto out;
	ol = first_line(old, olen);
	al = first_line(add, size);
	if (ol != al || memcmp(old, add, ol) != 0) {
		rc = problem_set(pb, 1, 1,
				 "the header is not v%u's (append takes its "
				 "columns)",
				 *over);
		goto out;
	}
	al = memchr(add, '\n', size) ? (size_t)((char *)memchr(add, '\n', size) -
						add) + 1
				     : size;
	if (write(out, old, olen) != (ssize_t)olen ||
	    (olen && old[olen - 1] != '\n' && write(out, "\n", 1) != 1) ||
	    write(out, add + al, size - al) != (ssize_t)(size - al))
		rc = -EIO;
out:
	free(old);
	free(add);
	return rc;
}

int source_import_fd(struct fs *fs, const char *name, int in,
		     const char *detail, const struct host_user *u,
		     const char *made_by, bool append, unsigned *ver,
		     bool *created, struct problem *pb)
{
	struct repo_origin origin = { made_by, detail, NULL, u->uid, u->pid,
				      0 };
	char tmp[PATH_MAX];
	struct stat st;
	int out, rc;

	*ver = 0;
	*created = false;
	if (fstat(in, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size > fs->opts.max_file) {
		problem_set(pb, 1, 1, "\"%s\": larger than max_file", detail);
		return -EFBIG;
	}
	if (!append) {
		/* copied, scanned and hashed at once */
		snprintf(pb->path, sizeof(pb->path), "%s", detail);
		return ds_publish_copy(fs, name, in, (uint64_t)st.st_size,
				       &origin, ver, created, pb);
	}
	for (int i = 0; i < APPEND_TRIES; i++) {
		rc = store_tmp_path(fs->store, tmp, sizeof(tmp));
		out = rc < 0 ? -1
			     : open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
				    0600);
		if (rc == 0 && out < 0)
			rc = -errno;
		if (rc == 0)
			rc = append_copy(fs, name, in, (uint64_t)st.st_size,
					 out, &origin.over, pb);
		if (rc < 0 && out >= 0) {
			close(out);
			unlink(tmp);
		}
		if (rc < 0)
			return rc;
		snprintf(pb->path, sizeof(pb->path), "%s", detail);
		rc = ds_publish(fs, name, tmp, out, &origin, ver, created, pb);
		if (rc < 0)
			unlink(tmp);
		close(out);
		/* an append raced by another change: again, on top of it */
		if (rc != -ESTALE)
			break;
	}
	return rc;
}

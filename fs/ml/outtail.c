/* SPDX-License-Identifier: MIT */
/*
 * A job's output followed while the job writes it (outtail.h).
 *
 * One thread a followed job looks at the file every TAIL_MS and copies
 * what it gained (repo_follow_copy, whose stage scan reads it on another
 * thread).  The anonymize benchmark's job writes 1.1 GB: copied, scanned
 * and made durable only after the job ended, that was 1.5 to 1.9 s of its
 * 4.5 s.  A file that shrinks is no longer followed; one replaced by
 * another (the job program starts its output again in a new file) is
 * found at the end, by its inode: either way the publish copies the
 * whole file, as before.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "deadline.h"
#include "hostfile.h"
#include "outtail.h"

/* How often the file is looked at, milliseconds. */
#define TAIL_MS 10

struct out_tail {
	struct fs *fs;
	char dir[PATH_MAX];
	char file[256];
	struct repo_follow *follow;
	int in;                 /* the file, once it exists; -1 before */
	struct stat first;      /* its identity when first opened */
	bool direct;            /* the job writes the copy (out_tail_writer) */
	bool broken;            /* no longer followed: copy it whole */
	pthread_t tid;
	pthread_mutex_t mu;
	pthread_cond_t cv;      /* CLOCK_MONOTONIC */
	bool stop;              /* under mu */
};

/* Copy what the file gained since the last look. */
static void tail_step(struct out_tail *t)
{
	struct stat st;

	if (t->broken)
		return;
	if (t->direct) {
		if (repo_follow_grew(t->follow) < 0)
			t->broken = true;
		return;
	}
	if (t->in < 0) {
		if (host_openat_nofollow(t->dir, t->file, O_RDONLY, &t->in) < 0) {
			t->in = -1;
			return;
		}
		if (fstat(t->in, &t->first) < 0 || !S_ISREG(t->first.st_mode))
			t->broken = true;
		return;
	}
	if (fstat(t->in, &st) < 0 ||
	    (uint64_t)st.st_size < repo_follow_copied(t->follow) ||
	    repo_follow_copy(t->follow, t->in, (uint64_t)st.st_size) < 0)
		t->broken = true;
}

static void *tail_main(void *arg)
{
	struct out_tail *t = arg;
	struct timespec at;

	pthread_mutex_lock(&t->mu);
	while (!t->stop && !t->broken) {
		pthread_mutex_unlock(&t->mu);
		tail_step(t);
		at = deadline_in(TAIL_MS);
		pthread_mutex_lock(&t->mu);
		if (!t->stop)
			cond_wait_until(&t->cv, &t->mu, &at);
	}
	pthread_mutex_unlock(&t->mu);
	return NULL;
}

struct out_tail *out_tail_start(struct fs *fs, const char *dir,
				const char *file)
{
	struct out_tail *t = calloc(1, sizeof(*t));
	pthread_condattr_t ca;

	if (!t)
		return NULL;
	t->fs = fs;
	t->in = -1;
	snprintf(t->dir, sizeof(t->dir), "%s", dir);
	snprintf(t->file, sizeof(t->file), "%s", file);
	pthread_mutex_init(&t->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&t->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (repo_follow_start(fs, fs->opts.max_file, &t->follow) < 0)
		goto fail;
	if (pthread_create(&t->tid, NULL, tail_main, t) != 0) {
		repo_follow_drop(t->follow);
		goto fail;
	}
	return t;
fail:
	pthread_mutex_destroy(&t->mu);
	pthread_cond_destroy(&t->cv);
	free(t);
	return NULL;
}

static void tail_stop(struct out_tail *t)
{
	pthread_mutex_lock(&t->mu);
	t->stop = true;
	pthread_cond_signal(&t->cv);
	pthread_mutex_unlock(&t->mu);
	pthread_join(t->tid, NULL);
	pthread_mutex_destroy(&t->mu);
	pthread_cond_destroy(&t->cv);
}

static void tail_free(struct out_tail *t)
{
	if (t->in >= 0)
		close(t->in);
	free(t);
}

void out_tail_cancel(struct out_tail *t)
{
	if (!t)
		return;
	tail_stop(t);
	repo_follow_drop(t->follow);
	tail_free(t);
}

int out_tail_writer(struct out_tail *t)
{
	int fd = repo_follow_writer(t->follow);

	if (fd >= 0)
		t->direct = true;
	return fd;
}

/* out_tail_publish of what the job wrote into the copy itself. */
static int direct_publish(struct out_tail *t, const char *name,
			  const struct repo_origin *origin, unsigned *ver,
			  bool *created, struct problem *pb)
{
	int fd, rc;

	if (t->broken) { /* past max_file: whatever else it wrote */
		repo_follow_drop(t->follow);
		return -EFBIG;
	}
	/* it went back to out/data.csv (its whole table, after a part
	 * failed): that file is the output */
	if (host_openat_nofollow(t->dir, t->file, O_RDONLY, &fd) == 0) {
		close(fd);
		repo_follow_drop(t->follow);
		return -EAGAIN;
	}
	rc = repo_follow_seal(t->follow);
	if (rc == -ENOLCK) /* no leases here: take what it holds now */
		return repo_follow_publish_copy(t->follow, name, origin, ver,
						created, pb);
	if (rc < 0) {
		repo_follow_drop(t->follow);
		return rc;
	}
	return repo_follow_publish(t->follow, name, origin, ver, created, pb);
}

int out_tail_publish(struct out_tail *t, const char *name,
		     const struct repo_origin *origin, unsigned *ver,
		     bool *created, struct problem *pb)
{
	struct stat now, st;
	int fd = -1;
	int rc;

	*ver = 0;
	*created = false;
	tail_stop(t);
	if (t->direct) {
		rc = direct_publish(t, name, origin, ver, created, pb);
		tail_free(t);
		return rc;
	}
	tail_step(t); /* opens it if the job wrote it at its very end */
	/* the file the job left is the one followed, whole */
	rc = t->broken || t->in < 0 ? -EAGAIN : 0;
	if (rc == 0 && host_openat_nofollow(t->dir, t->file, O_RDONLY, &fd) < 0)
		rc = -EAGAIN;
	if (rc == 0 && (fstat(fd, &now) < 0 || now.st_ino != t->first.st_ino ||
			now.st_dev != t->first.st_dev ||
			fstat(t->in, &st) < 0 ||
			(uint64_t)st.st_size < repo_follow_copied(t->follow)))
		rc = -EAGAIN;
	if (fd >= 0)
		close(fd);
	if (rc == 0 && repo_follow_copy(t->follow, t->in,
					(uint64_t)st.st_size) < 0)
		rc = -EAGAIN;
	if (rc == 0)
		rc = repo_follow_publish(t->follow, name, origin, ver, created,
					 pb);
	else
		repo_follow_drop(t->follow);
	tail_free(t);
	return rc;
}

/* SPDX-License-Identifier: MIT */
/*
 * The check of an index taken from the S3 catalog, and the lock every
 * change takes (which waits for that check).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bcache.h"
#include "catalog.h"
#include "csv.h"
#include "deadline.h"
#include "repo.h"
#include "fs.h"
#include "hash.h"
#include "hostfile.h"
#include "jsonout.h"
#include "meta.h"
#include "reap.h"
#include "remote.h"
#include "repo_int.h"
#include "store.h"

/* ds_lock, for a change: after the check of a catalog index, if any. */
void repo_lock(struct fs *fs)
{
	int rc;

	pthread_mutex_lock(&fs->repo->verify.m);
	while (fs->repo->verify.pending && fs->repo->verify.alive) {
		fs->repo->verify.kicked = true;
		pthread_cond_broadcast(&fs->repo->verify.cond);
		pthread_cond_wait(&fs->repo->verify.cond, &fs->repo->verify.m);
	}
	if (!fs->repo->verify.pending) {
		pthread_mutex_unlock(&fs->repo->verify.m);
		pthread_mutex_lock(&fs->ds_lock);
		return;
	}
	/* Unmounting left it unchecked: a late change (a job's end) checks. */
	pthread_mutex_unlock(&fs->repo->verify.m);
	pthread_mutex_lock(&fs->ds_lock);
	rc = repo_rebuild_index(fs, false);
	pthread_mutex_lock(&fs->repo->verify.m);
	if (rc == 0)
		fs->repo->verify.pending = false;
	pthread_mutex_unlock(&fs->repo->verify.m);
}

static void *verify_main(void *arg)
{
	struct fs *fs = arg;
	struct timespec until;
	unsigned backoff = 1;
	double t0;
	int rc;

	until = deadline_in((int64_t)fs->opts.verify_delay * 1000);
	for (;;) {
		pthread_mutex_lock(&fs->repo->verify.m);
		while (!fs->repo->verify.kicked && !fs->repo->verify.stop &&
		       cond_wait_until(&fs->repo->verify.cond,
				       &fs->repo->verify.m, &until) != ETIMEDOUT)
			;
		if (fs->repo->verify.stop && !fs->repo->verify.kicked) {
			/*
			 * Unmounting before any change asked: leave it
			 * unchecked (the index is not marked clean; a late
			 * change checks in repo_lock) rather than hold the
			 * unmount, and the lease, for a LIST.
			 */
			fs->repo->verify.rc = -ECANCELED;
			fs->repo->verify.alive = false;
			pthread_cond_broadcast(&fs->repo->verify.cond);
			pthread_mutex_unlock(&fs->repo->verify.m);
			return NULL;
		}
		/* Below the FUSE workers, unless a change waits for it. */
		if (!fs->repo->verify.kicked && !fs->repo->verify.stop)
			setpriority(PRIO_PROCESS, (id_t)gettid(), 10);
		pthread_mutex_unlock(&fs->repo->verify.m);
		t0 = repo_now_s();
		pthread_mutex_lock(&fs->ds_lock);
		rc = repo_rebuild_index(fs, false);
		pthread_mutex_unlock(&fs->ds_lock);
		setpriority(PRIO_PROCESS, (id_t)gettid(), 0);
		if (rc == 0) {
			fs_log(fs, 6, "the index from the catalog checked "
				      "against the bucket in %.3f s",
			       repo_now_s() - t0);
			break;
		}
		fs_log(fs, 4, "checking the catalog against the bucket: %s; "
			      "changes wait, retrying in %u s", strerror(-rc),
		       backoff);
		pthread_mutex_lock(&fs->repo->verify.m);
		if (fs->repo->verify.stop) {
			/* unmounting: the index is not marked clean */
			pthread_mutex_unlock(&fs->repo->verify.m);
			break;
		}
		pthread_mutex_unlock(&fs->repo->verify.m);
		until = deadline_in((int64_t)backoff * 1000);
		backoff = backoff < 30 ? backoff * 2 : 30;
		pthread_mutex_lock(&fs->repo->verify.m);
		fs->repo->verify.kicked = false;	/* wait out the backoff */
		pthread_mutex_unlock(&fs->repo->verify.m);
	}
	pthread_mutex_lock(&fs->repo->verify.m);
	fs->repo->verify.pending = rc < 0 && fs->repo->verify.pending;
	if (rc == 0)
		fs->repo->verify.pending = false;
	fs->repo->verify.rc = rc;
	fs->repo->verify.alive = false;
	pthread_cond_broadcast(&fs->repo->verify.cond);
	pthread_mutex_unlock(&fs->repo->verify.m);
	return NULL;
}

void repo_verify_arm(struct fs *fs)
{
	pthread_mutex_lock(&fs->repo->verify.m);
	fs->repo->verify.pending = true;
	fs->repo->verify.kicked = false;
	fs->repo->verify.stop = false;
	fs->repo->verify.rc = 0;
	pthread_mutex_unlock(&fs->repo->verify.m);
}

int repo_verify_start(struct fs *fs)
{
	int rc;

	pthread_mutex_lock(&fs->repo->verify.m);
	fs->repo->verify.alive = true;
	pthread_mutex_unlock(&fs->repo->verify.m);
	rc = pthread_create(&fs->repo->verify.th, NULL, verify_main, fs);
	if (rc) {
		fs->repo->verify.alive = false;
		pthread_mutex_lock(&fs->repo->verify.m);
		fs->repo->verify.pending = false;
		fs->repo->verify.rc = -rc;
		pthread_mutex_unlock(&fs->repo->verify.m);
		return -rc;
	}
	fs->repo->verify.started = true;
	return 0;
}

int repo_verify_join(struct fs *fs)
{
	if (!fs->repo->verify.started) {
		pthread_mutex_lock(&fs->repo->verify.m);
		fs->repo->verify.pending = false;
		pthread_mutex_unlock(&fs->repo->verify.m);
		return fs->repo->verify.rc;
	}
	/* a check not begun is dropped; one running is waited for */
	pthread_mutex_lock(&fs->repo->verify.m);
	fs->repo->verify.stop = true;
	pthread_cond_broadcast(&fs->repo->verify.cond);
	pthread_mutex_unlock(&fs->repo->verify.m);
	pthread_join(fs->repo->verify.th, NULL);
	fs->repo->verify.started = false;
	return fs->repo->verify.rc;
}

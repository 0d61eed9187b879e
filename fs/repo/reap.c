/* SPDX-License-Identifier: MIT */
/*
 * Deferred deletion of the blobs of removed versions (reap.h).  rmdir
 * takes a version out of the namespace at once, but a reader that opened
 * its data.csv before reads it through the cache from the bucket, and on
 * another mount too: deleting the blob then would fail its next read
 * with ENOENT.  So the writer deletes it gc_grace seconds later; a read
 * after that fails with ESTALE (objects.c), as NFS answers a handle whose
 * file is gone.
 *
 * The queue is in memory, ordered by due time.  A crash or an unmount
 * forgets what is not due yet: those blobs stay unreferenced in the
 * bucket, which is what gc removes.  Kept in memory on purpose: a queue
 * found in a cache folder that another writer has since followed would
 * judge "unreferenced" by a stale index.
 *
 * The queue is the mount's (fs->repo->reap, set up by repo_open).
 *
 * Threads: FUSE workers (under ds_lock, from repo/blobs.c) add and cancel; one
 * thread of this module waits for the first due time and calls
 * repo_blob_reap() (which takes ds_lock) with no lock of ours held.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "repo.h"
#include "fs.h"
#include "reap.h"
#include "repo_int.h"

#define REAP_RETRY 30 /* seconds: a deletion that failed is tried again */

struct reap_ent {
	struct reap_ent *next; /* by due time */
	time_t due;            /* CLOCK_REALTIME seconds */
	char key[96];
};

/* Insert e by due time.  Under q->lock. */
static void reap_insert_locked(struct reap_queue *q, struct reap_ent *e)
{
	struct reap_ent **pp = &q->head;

	while (*pp && (*pp)->due <= e->due)
		pp = &(*pp)->next;
	e->next = *pp;
	*pp = e;
}

/* Unlink and return key's entry, or NULL.  Under q->lock. */
static struct reap_ent *reap_take_locked(struct reap_queue *q,
					 const char *key)
{
	struct reap_ent **pp, *e;

	for (pp = &q->head; (e = *pp); pp = &e->next) {
		if (strcmp(e->key, key) == 0) {
			*pp = e->next;
			return e;
		}
	}
	return NULL;
}

static void *reap_main(void *arg)
{
	struct fs *fs = arg;
	struct reap_queue *q = &fs->repo->reap;
	struct reap_ent *e;
	struct timespec ts;
	int rc;

	pthread_mutex_lock(&q->lock);
	while (!q->stop) {
		e = q->head;
		if (!e) {
			pthread_cond_wait(&q->cond, &q->lock);
			continue;
		}
		if (e->due > time(NULL)) {
			ts.tv_sec = e->due;
			ts.tv_nsec = 0;
			pthread_cond_timedwait(&q->cond, &q->lock, &ts);
			continue;
		}
		q->head = e->next;
		pthread_mutex_unlock(&q->lock);
		/* a fenced or read-only writer deletes nothing */
		rc = __atomic_load_n(&fs->opts.read_only, __ATOMIC_RELAXED)
			     ? 0
			     : repo_blob_reap(fs, e->key);
		pthread_mutex_lock(&q->lock);
		if (rc < 0 && !q->stop) {
			fs_log(fs, LOG_NOTICE, "%s: deleting it failed: %s; "
					       "trying again in %d s", e->key,
			       strerror(-rc), REAP_RETRY);
			e->due = time(NULL) + REAP_RETRY;
			reap_insert_locked(q, e);
		} else {
			free(e);
		}
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

int reap_start(struct fs *fs)
{
	struct reap_queue *q = &fs->repo->reap;
	int rc;

	if (!fs->s3 || fs->opts.read_only || fs->opts.gc_grace == 0)
		return 0;
	pthread_mutex_lock(&q->lock);
	q->stop = false;
	rc = pthread_create(&q->thread, NULL, reap_main, fs);
	q->started = rc == 0;
	pthread_mutex_unlock(&q->lock);
	return -rc;
}

void reap_stop(struct fs *fs)
{
	struct reap_queue *q = &fs->repo->reap;
	struct reap_ent *e;
	unsigned n = 0;

	pthread_mutex_lock(&q->lock);
	if (!q->started) {
		pthread_mutex_unlock(&q->lock);
		return;
	}
	q->stop = true;
	q->started = false;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
	pthread_join(q->thread, NULL);
	while ((e = q->head)) {
		q->head = e->next;
		free(e);
		n++;
	}
	if (n)
		fs_log(fs, LOG_INFO, "%u blob%s of removed versions not deleted "
				     "yet: gc removes them", n,
		       n == 1 ? "" : "s");
}

int reap_later(struct fs *fs, const char *key)
{
	struct reap_queue *q = &fs->repo->reap;
	struct reap_ent *e;

	if (strlen(key) >= sizeof(e->key))
		return -EINVAL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	snprintf(e->key, sizeof(e->key), "%s", key);
	pthread_mutex_lock(&q->lock);
	if (!q->started) {
		pthread_mutex_unlock(&q->lock);
		free(e);
		return -EAGAIN;
	}
	free(reap_take_locked(q, key)); /* removed twice: the later grace */
	e->due = time(NULL) + (time_t)fs->opts.gc_grace;
	reap_insert_locked(q, e);
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
	return 0;
}

void reap_cancel(struct fs *fs, const char *key)
{
	struct reap_queue *q = &fs->repo->reap;

	pthread_mutex_lock(&q->lock);
	free(reap_take_locked(q, key));
	pthread_mutex_unlock(&q->lock);
}

bool reap_is_pending(struct fs *fs, const char *key)
{
	struct reap_queue *q = &fs->repo->reap;
	struct reap_ent *e;
	bool found = false;

	pthread_mutex_lock(&q->lock);
	for (e = q->head; e && !found; e = e->next)
		found = strcmp(e->key, key) == 0;
	pthread_mutex_unlock(&q->lock);
	return found;
}

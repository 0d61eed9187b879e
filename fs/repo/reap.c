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
 * Threads: FUSE workers (under ds_lock, from repo/blobs.c) add and cancel; one
 * thread of this module waits for the first due time and calls
 * ds_blob_reap() (which takes ds_lock) with no lock of ours held.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "ds.h"
#include "fs.h"
#include "reap.h"

#define REAP_RETRY 30 /* seconds: a deletion that failed is tried again */

struct reap_ent {
	struct reap_ent *next; /* by due time */
	time_t due;            /* CLOCK_REALTIME seconds */
	char key[96];
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct reap_ent *head; /* under lock, earliest first */
	bool stop;             /* under lock */
	bool started;          /* under lock */
	pthread_t thread;
	struct fs *fs;
} reap = { .lock = PTHREAD_MUTEX_INITIALIZER,
	   .cond = PTHREAD_COND_INITIALIZER };

/* Insert e by due time.  Under reap.lock. */
static void reap_insert_locked(struct reap_ent *e)
{
	struct reap_ent **pp = &reap.head;

	while (*pp && (*pp)->due <= e->due)
		pp = &(*pp)->next;
	e->next = *pp;
	*pp = e;
}

/* Unlink and return key's entry, or NULL.  Under reap.lock. */
static struct reap_ent *reap_take_locked(const char *key)
{
	struct reap_ent **pp, *e;

	for (pp = &reap.head; (e = *pp); pp = &e->next) {
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
	struct reap_ent *e;
	struct timespec ts;
	int rc;

	pthread_mutex_lock(&reap.lock);
	while (!reap.stop) {
		e = reap.head;
		if (!e) {
			pthread_cond_wait(&reap.cond, &reap.lock);
			continue;
		}
		if (e->due > time(NULL)) {
			ts.tv_sec = e->due;
			ts.tv_nsec = 0;
			pthread_cond_timedwait(&reap.cond, &reap.lock, &ts);
			continue;
		}
		reap.head = e->next;
		pthread_mutex_unlock(&reap.lock);
		/* a fenced or read-only writer deletes nothing */
		rc = __atomic_load_n(&fs->opts.read_only, __ATOMIC_RELAXED)
			     ? 0
			     : ds_blob_reap(fs, e->key);
		pthread_mutex_lock(&reap.lock);
		if (rc < 0 && !reap.stop) {
			fs_log(fs, LOG_NOTICE, "%s: deleting it failed: %s; "
					       "trying again in %d s", e->key,
			       strerror(-rc), REAP_RETRY);
			e->due = time(NULL) + REAP_RETRY;
			reap_insert_locked(e);
		} else {
			free(e);
		}
	}
	pthread_mutex_unlock(&reap.lock);
	return NULL;
}

int reap_start(struct fs *fs)
{
	int rc;

	if (!fs->s3 || fs->opts.read_only || fs->opts.gc_grace == 0)
		return 0;
	pthread_mutex_lock(&reap.lock);
	reap.stop = false;
	reap.fs = fs;
	rc = pthread_create(&reap.thread, NULL, reap_main, fs);
	reap.started = rc == 0;
	pthread_mutex_unlock(&reap.lock);
	return -rc;
}

void reap_stop(struct fs *fs)
{
	struct reap_ent *e;
	unsigned n = 0;

	pthread_mutex_lock(&reap.lock);
	if (!reap.started) {
		pthread_mutex_unlock(&reap.lock);
		return;
	}
	reap.stop = true;
	reap.started = false;
	pthread_cond_broadcast(&reap.cond);
	pthread_mutex_unlock(&reap.lock);
	pthread_join(reap.thread, NULL);
	while ((e = reap.head)) {
		reap.head = e->next;
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
	struct reap_ent *e;

	if (strlen(key) >= sizeof(e->key))
		return -EINVAL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	snprintf(e->key, sizeof(e->key), "%s", key);
	pthread_mutex_lock(&reap.lock);
	if (!reap.started || reap.fs != fs) {
		pthread_mutex_unlock(&reap.lock);
		free(e);
		return -EAGAIN;
	}
	free(reap_take_locked(key)); /* removed twice: the later grace */
	e->due = time(NULL) + (time_t)fs->opts.gc_grace;
	reap_insert_locked(e);
	pthread_cond_signal(&reap.cond);
	pthread_mutex_unlock(&reap.lock);
	return 0;
}

void reap_cancel(struct fs *fs, const char *key)
{
	(void)fs;
	pthread_mutex_lock(&reap.lock);
	free(reap_take_locked(key));
	pthread_mutex_unlock(&reap.lock);
}

bool reap_is_pending(struct fs *fs, const char *key)
{
	struct reap_ent *e;
	bool found = false;

	(void)fs;
	pthread_mutex_lock(&reap.lock);
	for (e = reap.head; e && !found; e = e->next)
		found = strcmp(e->key, key) == 0;
	pthread_mutex_unlock(&reap.lock);
	return found;
}

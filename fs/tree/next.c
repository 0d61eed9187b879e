/* SPDX-License-Identifier: MIT */
/*
 * v<n>/next (repo.h): a read that blocks until a version newer than v<n>
 * exists, then names the oldest such version ("v7\n").  inotify on a
 * FUSE mount sees only what the mount's own system calls change, not the
 * versions the daemon publishes itself, so a pipeline waits here instead
 * and misses nothing: `while v=$(cat d/$v/next); do ...; done`.
 *
 * A waiting read holds no worker thread: it is parked (fs_park) on the
 * object's waiter, one a (kind, name) that some reader waited on, kept
 * until the unmount (a few bytes each), in fs->next_waiters.  The
 * repository calls fs->on_version when it publishes or removes (the
 * engine's parking is above it).  Reads check and park under
 * ds_lock, and a new version wakes its object's readers under it too, so
 * none slips between.  Every parked reader of an object asked about its
 * newest version (an older one would have been answered at once), so
 * they all get the same answer.  Removing the object answers them with
 * end of file.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "next.h"
#include "node.h"
#include "repo.h"

struct waiter {
	struct waiter *next;
	const struct repo_kind *k;
	char name[];
};

/* (k, name)'s waiter, made if asked (make); under ds_lock. */
static struct waiter *waiter_of(struct fs *fs, const struct repo_kind *k,
				const char *name, bool make)
{
	struct waiter *w;

	for (w = fs->next_waiters; w; w = w->next)
		if (w->k == k && strcmp(w->name, name) == 0)
			return w;
	if (!make)
		return NULL;
	w = malloc(sizeof(*w) + strlen(name) + 1);
	if (!w)
		return NULL;
	w->k = k;
	strcpy(w->name, name);
	w->next = fs->next_waiters;
	fs->next_waiters = w;
	return w;
}

struct first_after {
	unsigned after, found;
};

static int first_after(void *arg, unsigned ver)
{
	struct first_after *fa = arg;

	if (ver > fa->after && (!fa->found || ver < fa->found))
		fa->found = ver;
	return 0;
}

int next_read(struct fs *fs, const struct repo_kind *k, const char *name,
		   unsigned ver, struct fs_reply *r, size_t size, off_t off)
{
	struct first_after fa = { ver, 0 };
	struct waiter *w;
	char line[32];
	json_t *rec;
	int rc, n;

	if (off > 0)
		return fs_reply_buf(r, NULL, 0); /* the answer was the whole */
	pthread_mutex_lock(&fs->ds_lock);
	rc = repo_get(fs, k, name, &rec);
	if (rc == 0) {
		/* latest/next: the version latest is now */
		if (ver == 0)
			fa.after = (unsigned)json_integer_value(
				json_object_get(rec, "latest"));
		json_decref(rec);
		rc = repo_versions(fs, k, name, first_after, &fa);
	}
	if (rc == 0 && !fa.found) {
		w = waiter_of(fs, k, name, true);
		rc = w ? fs_park(r, w, size) : -ENOMEM;
		pthread_mutex_unlock(&fs->ds_lock);
		return rc;
	}
	pthread_mutex_unlock(&fs->ds_lock);
	if (rc < 0)
		return rc;
	n = snprintf(line, sizeof(line), "v%u\n", fa.found);
	return fs_reply_buf(r, line, (size_t)n < size ? (size_t)n : size);
}

/* fs->on_version: ver of name published (0: name removed), under
 * ds_lock. */
static void on_version(struct fs *fs, const struct repo_kind *k,
		       const char *name, unsigned ver)
{
	struct waiter *w = waiter_of(fs, k, name, false);
	char line[32];
	int n;

	if (!w)
		return;
	n = ver ? snprintf(line, sizeof(line), "v%u\n", ver) : 0;
	fs_unpark(fs, w, line, (size_t)n);
}

void next_start(struct fs *fs)
{
	fs->on_version = on_version;
}

void next_stop(struct fs *fs)
{
	fs->on_version = NULL;
	while (fs->next_waiters) {
		struct waiter *w = fs->next_waiters;

		fs->next_waiters = w->next;
		free(w);
	}
}

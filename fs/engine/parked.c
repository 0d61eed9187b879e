/* SPDX-License-Identifier: MIT */
/*
 * Parked requests (the FUSE glue, glue.h): blocking reads such as
 * jobs/<job>/wait hold no worker thread; they wait here until answered,
 * or until their reader is interrupted.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include "fs.h"
#include "fuse_ops.h"
#include "glue.h"
#include "node.h"

/* --- parked requests --- */

/*
 * Parked requests live here, not with their owner: the interrupt callback
 * finds an entry by its id, so neither side ever holds a pointer the
 * other may have freed.  In fs->parked, under fs->parked_lock.
 */
struct parked {
	struct parked *next;
	uint64_t id;
	const void *key;
	size_t size;
	fuse_req_t req;
};

void fs_glue_init(struct fs *fs)
{
	pthread_mutex_init(&fs->files_lock, NULL);
	pthread_mutex_init(&fs->parked_lock, NULL);
}

void fs_glue_free(struct fs *fs)
{
	struct parked *p;

	/* the session is gone: nobody is left to answer */
	while ((p = fs->parked)) {
		fs->parked = p->next;
		free(p);
	}
	pthread_mutex_destroy(&fs->parked_lock);
	pthread_mutex_destroy(&fs->files_lock);
}

static void parked_interrupt(fuse_req_t req, void *data)
{
	struct fs *fs = req_fs(req);
	uint64_t id = (uint64_t)(uintptr_t)data;
	struct parked **pp, *p = NULL;

	pthread_mutex_lock(&fs->parked_lock);
	for (pp = &fs->parked; *pp; pp = &(*pp)->next) {
		if ((*pp)->id == id) {
			p = *pp;
			*pp = p->next;
			break;
		}
	}
	pthread_mutex_unlock(&fs->parked_lock);
	if (p) {
		fuse_reply_err(p->req, EINTR);
		free(p);
	}
}

int fs_park(struct fs_reply *r, const void *key, size_t size)
{
	struct fs *fs = req_fs(r->req);
	struct parked *p = malloc(sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->key = key;
	p->size = size;
	p->req = r->req;
	pthread_mutex_lock(&fs->parked_lock);
	p->id = ++fs->parked_next_id;
	p->next = fs->parked;
	fs->parked = p;
	pthread_mutex_unlock(&fs->parked_lock);
	/* May call parked_interrupt at once if already interrupted. */
	fuse_req_interrupt_func(r->req, parked_interrupt,
				(void *)(uintptr_t)p->id);
	return 0;
}

static void unpark(struct fs *fs, const void *key, bool all, const char *buf,
		   size_t len)
{
	struct parked **pp, *p, *done = NULL;

	pthread_mutex_lock(&fs->parked_lock);
	pp = &fs->parked;
	while ((p = *pp)) {
		if (all || p->key == key) {
			*pp = p->next;
			p->next = done;
			done = p;
		} else {
			pp = &p->next;
		}
	}
	pthread_mutex_unlock(&fs->parked_lock);
	/* Replies outside the lock: a reply can run the interrupt path. */
	while ((p = done)) {
		done = p->next;
		fuse_reply_buf(p->req, buf, len < p->size ? len : p->size);
		free(p);
	}
}

void fs_unpark(struct fs *fs, const void *key, const char *buf, size_t len)
{
	unpark(fs, key, false, buf, len);
}

void fs_unpark_all(struct fs *fs, const char *buf, size_t len)
{
	unpark(fs, NULL, true, buf, len);
}

/* SPDX-License-Identifier: MIT */
/*
 * Stream files that answer what is written to them (models/<m>/predict,
 * features/<fs>/join): the handle (answers.h) and the answers kept per
 * shell session, so that `echo rows > f; cat f` reads what the echo's
 * handle answered.  The answering itself is the caller's ops.  Any FUSE
 * worker; a handle's calls are serialised by its lock.
 *
 * The answers of the last handle that wrote in a process session are
 * kept for that session (user, session id, session leader's start time)
 * for ANSWER_SESSION_S seconds, and no other session sees them.  Only a
 * write-only handle leaves them (`>`, `>>`): one opened to read and write
 * reads its own.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "answers.h"
#include "fs.h"

#define ANSWER_SESSION_S 60
#define ANSWER_OUT_MAX ((size_t)1 << 30) /* bytes of unread answers */

struct session {
	struct session *next;     /* under fs->sessions->lock */
	char *file;               /* the stream file's path: answers belong
				     to the file that gave them */
	uid_t uid;
	pid_t sid;
	unsigned long long start; /* the session leader's start time */
	time_t at;
	char *out;
	size_t len;
};

/* The answers kept for shell sessions, of one mount (fs->sessions). */
struct answer_sessions {
	pthread_mutex_t lock;
	struct session *list; /* under lock */
};

static void session_free(struct session *s)
{
	free(s->out);
	free(s->file);
	free(s);
}

int answers_start(struct fs *fs)
{
	struct answer_sessions *ss = calloc(1, sizeof(*ss));

	if (!ss)
		return -ENOMEM;
	pthread_mutex_init(&ss->lock, NULL);
	fs->sessions = ss;
	return 0;
}

void answers_stop(struct fs *fs)
{
	struct answer_sessions *ss = fs->sessions;
	struct session *s;

	if (!ss)
		return;
	while ((s = ss->list)) {
		ss->list = s->next;
		session_free(s);
	}
	pthread_mutex_destroy(&ss->lock);
	free(ss);
	fs->sessions = NULL;
}

/* Session id of pid and its leader's start time (proc(5) stat fields). */
static int proc_session(pid_t pid, pid_t *sid, unsigned long long *start)
{
	char path[64], buf[1024], *p;
	FILE *fp;
	size_t n;
	int field;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fp = fopen(path, "re");
	if (!fp)
		return -errno;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	p = strrchr(buf, ')'); /* comm may hold spaces */
	if (!p)
		return -EINVAL;
	/* fields after comm: 3 state, 4 ppid, 5 pgrp, 6 session */
	if (sscanf(p + 2, "%*c %*d %*d %d", sid) != 1)
		return -EINVAL;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)*sid);
	fp = fopen(path, "re");
	if (!fp) {
		*start = 0; /* a leader gone: the id alone */
		return 0;
	}
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p)
		return -EINVAL;
	p += 2;
	/* field 22 starttime is the 20th after comm */
	for (field = 3; field < 22 && p; field++) {
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	if (!p || sscanf(p, "%llu", start) != 1)
		*start = 0;
	return 0;
}

/* Forget answers older than ANSWER_SESSION_S.  Under ss->lock. */
static void sessions_expire_locked(struct answer_sessions *ss, time_t now)
{
	struct session **pp = &ss->list, *s;

	while ((s = *pp)) {
		if (now - s->at > ANSWER_SESSION_S) {
			*pp = s->next;
			session_free(s);
		} else {
			pp = &s->next;
		}
	}
}

static bool session_is(const struct session *s, const struct fs_ctx *ctx,
		       pid_t sid, unsigned long long start, const char *file)
{
	return s->uid == ctx->uid && s->sid == sid && s->start == start &&
	       strcmp(s->file, file) == 0;
}

/* Keep out as the session's answers of file (replacing earlier ones). */
static void session_store(struct fs *fs, const struct fs_ctx *ctx,
			  const char *file, const char *out, size_t len)
{
	struct answer_sessions *ss = fs->sessions;
	struct session *s, **pp;
	unsigned long long start;
	time_t now = time(NULL);
	pid_t sid;
	char *copy;

	if (proc_session(ctx->pid, &sid, &start) < 0)
		return;
	copy = malloc(len ? len : 1);
	if (!copy)
		return;
	memcpy(copy, out, len);
	pthread_mutex_lock(&ss->lock);
	sessions_expire_locked(ss, now);
	for (pp = &ss->list; (s = *pp); pp = &s->next)
		if (session_is(s, ctx, sid, start, file))
			break;
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (s)
			s->file = strdup(file);
		if (!s || !s->file) {
			pthread_mutex_unlock(&ss->lock);
			free(s);
			free(copy);
			return;
		}
		s->uid = ctx->uid;
		s->sid = sid;
		s->start = start;
		s->next = ss->list;
		ss->list = s;
	}
	free(s->out);
	s->out = copy;
	s->len = len;
	s->at = now;
	pthread_mutex_unlock(&ss->lock);
}

/* The session's answers of file, copied into out; false if none. */
static bool session_fetch(struct fs *fs, const struct fs_ctx *ctx,
			  const char *file, struct strbuf *out)
{
	struct answer_sessions *ss = fs->sessions;
	unsigned long long start;
	struct session *s;
	bool found = false;
	pid_t sid;

	if (proc_session(ctx->pid, &sid, &start) < 0)
		return false;
	pthread_mutex_lock(&ss->lock);
	sessions_expire_locked(ss, time(NULL));
	for (s = ss->list; s; s = s->next) {
		if (session_is(s, ctx, sid, start, file)) {
			sb_append(out, s->out, s->len);
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&ss->lock);
	return found;
}

struct ahandle {
	pthread_mutex_t lock;
	const struct answer_ops *ops;
	void *st;            /* the ops' state */
	struct strbuf out;   /* answers not yet read */
	size_t read_pos;     /* of out */
	struct strbuf all;   /* everything answered, for the session */
	bool wrote;
	bool read_any;       /* the handle has read answers itself */
	bool stored;         /* the session has this handle's answers */
};

int answers_open(struct fs_file *f, const struct fs_ctx *ctx,
		 const struct answer_ops *ops, void *st)
{
	struct ahandle *h = calloc(1, sizeof(*h));

	if (!h) {
		ops->free(st);
		return -ENOMEM;
	}
	pthread_mutex_init(&h->lock, NULL);
	h->ops = ops;
	h->st = st;
	h->out.max = ANSWER_OUT_MAX;
	h->all.max = ANSWER_OUT_MAX;
	/* a reader that writes nothing reads its session's answers */
	if ((f->flags & O_ACCMODE) == O_RDONLY)
		session_fetch(f->node->fs, ctx, f->node->path, &h->out);
	/*
	 * A handle opened to read and write reads its own answers: it
	 * leaves none for the session, and with nothing to make durable
	 * its close needs no FLUSH (a round trip of the four an
	 * open + write + read + close of one row takes).
	 */
	f->noflush = (f->flags & O_ACCMODE) == O_RDWR && !ops->sync;
	f->priv = h;
	f->direct_io = true;
	return 0;
}

ssize_t answers_write(struct fs_file *f, const char *buf, size_t size,
			     off_t off)
{
	struct ahandle *h = f->priv;
	size_t before;
	int rc;

	(void)off; /* a stream: rows are taken in the order written */
	pthread_mutex_lock(&h->lock);
	if (!h->wrote) {
		/* this handle's answers replace the session's */
		sb_free(&h->out);
		h->out.max = ANSWER_OUT_MAX;
		h->read_pos = 0;
	}
	h->wrote = true;
	h->stored = false;
	before = h->out.len;
	rc = h->ops->write(h->st, buf, size, &h->out);
	/* the session's copy, only while the handle reads nothing itself */
	if (h->out.len > before && !h->read_any && !f->noflush)
		sb_append(&h->all, h->out.buf + before, h->out.len - before);
	if (h->all.err) {
		/* keep only the newest answers for the session */
		sb_free(&h->all);
		h->all.max = ANSWER_OUT_MAX;
	}
	pthread_mutex_unlock(&h->lock);
	if (rc == -E2BIG)
		return -E2BIG;
	if (rc < 0 && rc != -EIO)
		return rc;
	return (ssize_t)size;
}

/* Score a last row without its newline. */
static void finish_locked(struct ahandle *h)
{
	size_t before = h->out.len;

	h->ops->finish(h->st, &h->out);
	if (h->out.len > before && !h->read_any)
		sb_append(&h->all, h->out.buf + before, h->out.len - before);
}

int answers_read(struct fs_file *f, size_t size, off_t off,
			struct fs_reply *r)
{
	struct ahandle *h = f->priv;
	size_t avail;

	(void)off; /* answers are consumed in order */
	pthread_mutex_lock(&h->lock);
	if (h->wrote)
		finish_locked(h);
	avail = h->out.len - h->read_pos;
	if (size > avail)
		size = avail;
	fs_reply_buf(r, h->out.buf ? h->out.buf + h->read_pos : NULL, size);
	h->read_pos += size;
	if (size && !h->read_any) {
		/* a reader of its own answers: no session copy to keep */
		h->read_any = true;
		sb_free(&h->all);
		h->all.max = ANSWER_OUT_MAX;
	}
	if (h->read_pos == h->out.len) {
		h->out.len = 0;
		h->read_pos = 0;
	}
	pthread_mutex_unlock(&h->lock);
	return 0;
}

int answers_flush(struct fs_file *f, const struct fs_ctx *ctx,
			 struct problem *pb)
{
	struct ahandle *h = f->priv;
	int rc;

	(void)pb;
	pthread_mutex_lock(&h->lock);
	if (h->wrote && !h->stored) {
		finish_locked(h);
		/*
		 * Keep the answers for the session only when the handle has
		 * not read them all itself (echo > predict; cat predict): a
		 * program that reads its own answers needs no copy.
		 */
		if (h->out.len > h->read_pos || !h->read_any)
			session_store(f->node->fs, ctx, f->node->path,
				      h->all.buf ? h->all.buf : "",
				      h->all.len);
		h->stored = true;
	}
	rc = h->ops->sync ? h->ops->sync(h->st) : 0;
	pthread_mutex_unlock(&h->lock);
	return rc;
}

int answers_fsync(struct fs_file *f, const struct fs_ctx *ctx)
{
	struct ahandle *h = f->priv;
	int rc;

	(void)ctx;
	pthread_mutex_lock(&h->lock);
	rc = h->ops->sync ? h->ops->sync(h->st) : 0;
	pthread_mutex_unlock(&h->lock);
	return rc;
}

int answers_truncate(struct fs_file *f, off_t size)
{
	(void)f;
	(void)size;
	return 0; /* O_TRUNC and `>` are fine: the content is a stream */
}

void answers_release(struct fs_file *f)
{
	struct ahandle *h = f->priv;

	if (!h)
		return;
	h->ops->free(h->st);
	sb_free(&h->out);
	sb_free(&h->all);
	pthread_mutex_destroy(&h->lock);
	free(h);
}


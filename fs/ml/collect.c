/* SPDX-License-Identifier: MIT */
/*
 * Landing directories and schedules (collect.h).
 *
 * FUSE workers only judge a setting and keep it in the dataset's record;
 * then they name the dataset to this module's thread, which owns every
 * watch and schedule: it reads the record again and follows what it
 * says.  So the thread needs no lock for its lists, and a setting is
 * never half applied.  Imports run in the thread, one at a time, as the
 * user who set the watch or schedule (never the daemon), and publish
 * like any other writer.
 *
 * A watch is an inotify watch on the directory the user opened (the
 * watch is added through /proc/self/fd, so the daemon never resolves the
 * user's path with its own rights).  Two datasets may follow one
 * directory: inotify gives them one watch descriptor, so events go to
 * every landing that has it.  The files taken are recorded by (name,
 * size, mtime, inode) in the store object datasets/<d>/landing.seen,
 * written after each import: a file that arrives while the mount is
 * down is found at the next mount, and one already taken is not taken
 * again.  A crash between a publish and its record can only have left
 * out the file of the latest version, whose lineage names it
 * (taken_last).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "collect.h"
#include "fs.h"
#include "hostfile.h"
#include "repo.h"
#include "source.h"
#include "store.h"

#define WATCHES_PER_USER 64
#define FUSE_SUPER_MAGIC 0x65735546
#define SEEN_MAX ((size_t)64 << 20) /* bytes of a landing.seen read */
#define IN_MASK (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MODIFY | IN_DELETE_SELF | \
		 IN_MOVE_SELF | IN_ONLYDIR)

struct pending {
	struct pending *next;
	int64_t due; /* ms, CLOCK_MONOTONIC */
	char file[];
};

struct landing {
	struct landing *next;
	char name[NAME_MAX + 1]; /* the dataset */
	char path[PATH_MAX];
	bool append;
	struct host_user u;
	int wd;             /* -1: the directory went */
	json_t *seen;       /* file -> [size, mtime s, mtime ns, inode] */
	struct pending *pend;
	char inc[40];       /* the dataset's incarnation when it began */
};

struct sched {
	struct sched *next;
	char name[NAME_MAX + 1];
	int64_t every, due; /* ms */
	struct host_user u;
	char inc[40];       /* the dataset's incarnation when it began */
};

struct req {
	struct req *next;
	bool *done; /* set when read again (under lock), or NULL */
	char name[];
};

struct collect {
	pthread_t thr;
	int ifd, efd;
	pthread_mutex_t lock; /* reqs, stop, the requests' done */
	pthread_cond_t done;  /* a request was done */
	struct req *reqs;
	bool stop;
	struct landing *lands; /* the thread's */
	struct sched *scheds;  /* the thread's */
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The user behind a setting of rec (pid 0: groups from the database). */
static struct host_user setter(json_t *cfg)
{
	struct host_user u = {
		(uid_t)json_integer_value(json_object_get(cfg, "uid")),
		(gid_t)json_integer_value(json_object_get(cfg, "gid")), 0
	};

	return u;
}

static void seen_key(const char *name, char *key, size_t len)
{
	snprintf(key, len, "datasets/%s/landing.seen", name);
}

/* A problem of the watch or schedule of name, for its user. */
static void say(struct fs *fs, const char *name, const char *file, uid_t uid,
		const struct problem *why, int rc)
{
	struct problem pb = { 0 };

	snprintf(pb.path, sizeof(pb.path), "datasets/%s/%s", name, file);
	pb.line = why ? why->line : 0;
	pb.col = why ? why->col : 0;
	snprintf(pb.msg, sizeof(pb.msg), "%s",
		 why && why->msg[0] ? why->msg : strerror(-rc));
	fs_problem(fs, uid, &pb);
}

/*
 * Is field ("watch", "schedule") of dataset name still the one set by
 * uid in incarnation inc?  A dataset removed and made again (perhaps by
 * another user) under its name must never receive what the old one's
 * setting brings: the thread is told of changes to settings, not of
 * removals, so an import asks first.
 */
static bool still_set(struct fs *fs, const char *name, const char *inc,
		      const char *field, uid_t uid)
{
	json_t *rec, *cfg;
	const char *now;
	bool same;

	if (repo_get(fs, &repo_datasets, name, &rec) < 0)
		return false;
	now = json_string_value(json_object_get(rec, "incarnation"));
	cfg = json_object_get(rec, field);
	same = cfg && strcmp(now ? now : "", inc) == 0 &&
	       (uid_t)json_integer_value(json_object_get(cfg, "uid")) == uid;
	json_decref(rec);
	return same;
}

static void incarnation_of(json_t *rec, char *inc, size_t len)
{
	const char *s = json_string_value(json_object_get(rec, "incarnation"));

	snprintf(inc, len, "%s", s ? s : "");
}

static void ask(struct collect *c, const char *name, bool wait);

/* --- the thread's landings --- */

static int seen_save(struct fs *fs, struct landing *l)
{
	char key[NAME_MAX + 64], *text;
	json_t *j = json_pack("{s:s, s:O}", "path", l->path, "files", l->seen);
	int rc;

	text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!text)
		return -ENOMEM;
	seen_key(l->name, key, sizeof(key));
	rc = store_put(fs->store, key, text, strlen(text));
	free(text);
	if (rc < 0)
		fs_log(fs, 4, "datasets/%s/watch: cannot record the files "
			      "taken: %s", l->name, strerror(-rc));
	return rc;
}

static json_t *file_id(const struct stat *st)
{
	return json_pack("[I, I, I, I]", (json_int_t)st->st_size,
			 (json_int_t)st->st_mtim.tv_sec,
			 (json_int_t)st->st_mtim.tv_nsec,
			 (json_int_t)st->st_ino);
}

static bool skipped(const char *file)
{
	return file[0] == '.' || file[0] == '\0';
}

/* l's file opened as its user: 0 and *fd and *st, or -errno. */
static int open_file(const struct landing *l, const char *file, int *fd,
		     struct stat *st)
{
	char path[PATH_MAX + NAME_MAX + 2];
	int rc;

	snprintf(path, sizeof(path), "%s/%s", l->path, file);
	rc = host_open(&l->u, path, false, fd);
	if (rc == 0 && fstat(*fd, st) < 0) {
		rc = -errno;
		close(*fd);
		*fd = -1;
	}
	return rc;
}

/* Take file of l: a version, unless it was taken as it is now. */
static void take(struct fs *fs, struct landing *l, const char *file)
{
	struct problem pb = { 0 };
	char detail[PATH_MAX + NAME_MAX + 2];
	struct stat st;
	json_t *id;
	unsigned ver;
	bool created;
	int fd, rc;

	if (!still_set(fs, l->name, l->inc, "watch", l->u.uid)) {
		ask(fs->collect, l->name, false); /* follow the record */
		return;
	}
	rc = open_file(l, file, &fd, &st);
	if (rc == -ENOENT || rc == -EINVAL)
		return; /* gone again, or not a regular file */
	if (rc < 0) {
		snprintf(pb.msg, sizeof(pb.msg), "%.300s: %s", file,
			 strerror(-rc));
		say(fs, l->name, "watch", l->u.uid, &pb, rc);
		return;
	}
	id = file_id(&st);
	if (json_equal(id, json_object_get(l->seen, file))) {
		json_decref(id);
		close(fd);
		return;
	}
	snprintf(detail, sizeof(detail), "%s/%s", l->path, file);
	rc = source_import_fd(fs, l->name, fd, detail, &l->u, "watch",
			      l->append, &ver, &created, &pb);
	close(fd);
	if (rc == 0 && created)
		fs_log(fs, 6, "datasets/%s: v%u from %s", l->name, ver,
		       detail);
	if (rc < 0) {
		char msg[sizeof(pb.msg)];

		/* the place is the file's, not the watch's */
		if (pb.line)
			snprintf(msg, sizeof(msg), "%.200s:%u:%u: %.280s", file,
				 pb.line, pb.col,
				 pb.msg[0] ? pb.msg : strerror(-rc));
		else
			snprintf(msg, sizeof(msg), "%.200s: %.300s", file,
				 pb.msg[0] ? pb.msg : strerror(-rc));
		snprintf(pb.msg, sizeof(pb.msg), "%s", msg);
		pb.line = pb.col = 0;
		say(fs, l->name, "watch", l->u.uid, &pb, rc);
	}
	/* taken, even when refused: not again until it changes */
	json_object_set_new(l->seen, file, id);
	seen_save(fs, l);
}

static void pend(struct landing *l, const char *file, bool only_if_pending)
{
	struct pending **pp, *p;

	for (pp = &l->pend; (p = *pp); pp = &p->next)
		if (strcmp(p->file, file) == 0)
			break;
	if (!p && only_if_pending)
		return;
	if (p) {
		*pp = p->next; /* due later: to the end */
	} else {
		p = malloc(sizeof(*p) + strlen(file) + 1);
		if (!p)
			return;
		strcpy(p->file, file);
	}
	/* in due order, which is the order they came in: the files found
	 * at a mount are taken oldest first */
	p->due = now_ms() + COLLECT_QUIET_MS;
	p->next = NULL;
	for (pp = &l->pend; *pp; pp = &(*pp)->next)
		;
	*pp = p;
}

/*
 * Was file (as st says) what made the latest version?  Only the latest
 * can have been taken without being recorded (a crash between the two):
 * its lineage names the file, and a version of it whole (replace) has
 * its size.
 */
static bool taken_last(struct fs *fs, const struct landing *l,
		       const char *file, const struct stat *st)
{
	char path[PATH_MAX + NAME_MAX + 2];
	const char *by, *detail;
	json_t *man, *lin;
	bool same;

	if (repo_version(fs, &repo_datasets, l->name, 0, &man) < 0)
		return false;
	lin = json_object_get(man, "lineage");
	by = json_string_value(json_object_get(lin, "made_by"));
	detail = json_string_value(json_object_get(lin, "detail"));
	snprintf(path, sizeof(path), "%s/%s", l->path, file);
	same = by && detail && strcmp(by, "watch") == 0 &&
	       strcmp(detail, path) == 0 &&
	       (l->append || json_integer_value(json_object_get(lin, "size")) ==
				     (json_int_t)st->st_size);
	json_decref(man);
	return same;
}

struct ent {
	struct timespec t;
	char *name;
	struct stat st;
};

static int by_mtime(const void *a, const void *b)
{
	const struct ent *x = a, *y = b;

	if (x->t.tv_sec != y->t.tv_sec)
		return x->t.tv_sec < y->t.tv_sec ? -1 : 1;
	if (x->t.tv_nsec != y->t.tv_nsec)
		return x->t.tv_nsec < y->t.tv_nsec ? -1 : 1;
	return strcmp(x->name, y->name);
}

/*
 * Read l's directory (as its user): with baseline, record every file as
 * taken; otherwise take, oldest first, the files not taken as they are
 * (those written in the last quiet period wait for it), and forget the
 * files that went.
 */
static void scan(struct fs *fs, struct landing *l, bool baseline)
{
	struct ent *ents = NULL;
	size_t n = 0, cap = 0;
	json_t *still = json_object();
	struct dirent *de;
	int dfd, rc;
	DIR *d;

	rc = host_open(&l->u, l->path, true, &dfd);
	d = rc == 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		if (rc == 0)
			close(dfd);
		say(fs, l->name, "watch", l->u.uid, NULL, rc < 0 ? rc : -errno);
		json_decref(still);
		return;
	}
	while ((de = readdir(d))) {
		struct stat st;
		int fd;

		if (skipped(de->d_name) ||
		    (de->d_type != DT_REG && de->d_type != DT_UNKNOWN &&
		     de->d_type != DT_LNK))
			continue;
		if (open_file(l, de->d_name, &fd, &st) < 0)
			continue;
		close(fd);
		if (baseline) {
			json_object_set_new(l->seen, de->d_name, file_id(&st));
			continue;
		}
		json_object_set_new(still, de->d_name, json_true());
		if (n == cap) {
			struct ent *ne;

			cap = cap ? 2 * cap : 64;
			ne = realloc(ents, cap * sizeof(*ne));
			if (!ne)
				break;
			ents = ne;
		}
		ents[n].t = st.st_mtim;
		ents[n].st = st;
		ents[n].name = strdup(de->d_name);
		if (ents[n].name)
			n++;
	}
	closedir(d);
	if (!baseline) {
		const char *k;
		json_t *v, *tmp;
		time_t fresh = time(NULL) - COLLECT_QUIET_MS / 1000;

		json_object_foreach_safe(l->seen, tmp, k, v)
			if (!json_object_get(still, k))
				json_object_del(l->seen, k);
		qsort(ents, n, sizeof(*ents), by_mtime);
		for (size_t i = 0; i < n; i++) {
			json_t *id = file_id(&ents[i].st);

			if (json_equal(id, json_object_get(l->seen,
							   ents[i].name))) {
				json_decref(id);
				continue;
			}
			if (taken_last(fs, l, ents[i].name, &ents[i].st)) {
				json_object_set_new(l->seen, ents[i].name, id);
				continue;
			}
			json_decref(id);
			if (ents[i].t.tv_sec >= fresh)
				pend(l, ents[i].name, false);
			else
				take(fs, l, ents[i].name);
		}
	}
	for (size_t i = 0; i < n; i++)
		free(ents[i].name);
	free(ents);
	json_decref(still);
	seen_save(fs, l);
}

static void landing_free(struct collect *c, struct landing *l)
{
	bool shared = false;

	for (struct landing *o = c->lands; o; o = o->next)
		shared |= o != l && o->wd == l->wd;
	if (l->wd >= 0 && !shared)
		inotify_rm_watch(c->ifd, l->wd);
	while (l->pend) {
		struct pending *p = l->pend;

		l->pend = p->next;
		free(p);
	}
	json_decref(l->seen);
	free(l);
}

/* Follow cfg (a record's "watch") for dataset name. */
static void landing_add(struct fs *fs, struct collect *c, const char *name,
			json_t *rec, json_t *cfg)
{
	struct landing *l = calloc(1, sizeof(*l));
	char key[NAME_MAX + 64], proc[64], *buf = NULL;
	json_t *old = NULL;
	size_t len;
	int dfd, rc;

	if (!l)
		return;
	snprintf(l->name, sizeof(l->name), "%s", name);
	snprintf(l->path, sizeof(l->path), "%s",
		 json_string_value(json_object_get(cfg, "path")));
	l->append = json_is_true(json_object_get(cfg, "append"));
	l->u = setter(cfg);
	l->wd = -1;
	incarnation_of(rec, l->inc, sizeof(l->inc));
	rc = host_open(&l->u, l->path, true, &dfd);
	if (rc == 0) {
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", dfd);
		l->wd = inotify_add_watch(c->ifd, proc, IN_MASK);
		rc = l->wd < 0 ? -errno : 0;
		close(dfd);
	}
	if (rc < 0) {
		say(fs, name, "watch", l->u.uid, NULL, rc);
		fs_log(fs, 4, "datasets/%s/watch: %s: %s", name, l->path,
		       strerror(-rc));
	}
	seen_key(name, key, sizeof(key));
	if (store_get(fs->store, key, SEEN_MAX, &buf, &len) == 0)
		old = json_loadb(buf, len, 0, NULL);
	free(buf);
	l->next = c->lands;
	c->lands = l;
	if (old && json_equal(json_object_get(old, "path"),
			      json_object_get(cfg, "path")) &&
	    json_is_object(json_object_get(old, "files"))) {
		l->seen = json_incref(json_object_get(old, "files"));
		json_decref(old);
		if (l->wd >= 0)
			scan(fs, l, false); /* what came while we were away */
		return;
	}
	json_decref(old);
	l->seen = json_object();
	if (l->wd >= 0)
		scan(fs, l, true); /* a new watch: from now on */
}

/* --- the thread's schedules --- */

static void sched_run(struct fs *fs, struct collect *c, struct sched *s)
{
	struct problem pb = { 0 };
	json_t *rec;
	unsigned ver;
	bool created;
	int rc;

	s->due = now_ms() + s->every;
	if (!still_set(fs, s->name, s->inc, "schedule", s->u.uid)) {
		ask(c, s->name, false); /* follow the record */
		return;
	}
	if (repo_get(fs, &repo_datasets, s->name, &rec) < 0)
		return;
	{
		const char *src = json_string_value(json_object_get(rec,
								    "source"));
		char copy[PATH_MAX + 8];

		snprintf(copy, sizeof(copy), "%s", src ? src : "");
		json_decref(rec);
		if (!copy[0])
			return;
		rc = source_import(fs, s->name, copy, &s->u, "schedule", &ver,
				   &created, NULL, 0, &pb);
	}
	if (rc == 0 && created)
		fs_log(fs, 6, "datasets/%s: v%u by its schedule", s->name, ver);
	if (rc < 0)
		say(fs, s->name, "schedule", s->u.uid, &pb, rc);
}

/* --- requests: read a dataset's settings again --- */

static void reload(struct fs *fs, struct collect *c, const char *name)
{
	struct landing **lp, *l;
	struct sched **sp, *s;
	json_t *rec = NULL, *w = NULL, *sc = NULL;
	bool dropped = false;

	if (repo_get(fs, &repo_datasets, name, &rec) == 0) {
		w = json_object_get(rec, "watch");
		sc = json_object_get(rec, "schedule");
	}
	for (lp = &c->lands; (l = *lp);) {
		if (strcmp(l->name, name) != 0) {
			lp = &l->next;
			continue;
		}
		*lp = l->next;
		landing_free(c, l);
		dropped = true;
	}
	if (!w && dropped) {
		char key[NAME_MAX + 64];

		seen_key(name, key, sizeof(key));
		store_del(fs->store, key); /* stopped, or the dataset went */
	}
	if (json_is_object(w))
		landing_add(fs, c, name, rec, w);
	for (sp = &c->scheds; (s = *sp);) {
		if (strcmp(s->name, name) != 0) {
			sp = &s->next;
			continue;
		}
		*sp = s->next;
		free(s);
	}
	if (json_is_object(sc) && (s = calloc(1, sizeof(*s)))) {
		snprintf(s->name, sizeof(s->name), "%s", name);
		s->every = json_integer_value(json_object_get(sc, "every")) *
			   1000;
		s->due = now_ms() + s->every;
		s->u = setter(sc);
		incarnation_of(rec, s->inc, sizeof(s->inc));
		s->next = c->scheds;
		c->scheds = s;
	}
	json_decref(rec);
}

/*
 * Ask the thread to read name's settings again; with wait, return once it
 * did (a new watch's files are then recorded as there before it: a file
 * moved in after the write that set it is taken).
 */
static void ask(struct collect *c, const char *name, bool wait)
{
	struct req *r = malloc(sizeof(*r) + strlen(name) + 1);
	uint64_t one = 1;
	bool done = false;

	if (!r)
		return;
	strcpy(r->name, name);
	r->done = wait ? &done : NULL;
	pthread_mutex_lock(&c->lock);
	r->next = c->reqs;
	c->reqs = r;
	pthread_mutex_unlock(&c->lock);
	if (write(c->efd, &one, sizeof(one)) < 0) {
		/* the counter is full: the thread is awake anyway */
	}
	pthread_mutex_lock(&c->lock);
	while (wait && !done && !c->stop)
		pthread_cond_wait(&c->done, &c->lock);
	pthread_mutex_unlock(&c->lock);
}

static int ask_one(void *arg, const char *name)
{
	ask(arg, name, false);
	return 0;
}

/* --- events --- */

static void events(struct fs *fs, struct collect *c)
{
	char buf[64 * 1024]
		__attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n = read(c->ifd, buf, sizeof(buf));

	for (char *p = buf; n > 0 && p < buf + n;) {
		const struct inotify_event *ev = (const void *)p;

		p += sizeof(*ev) + ev->len;
		if (ev->mask & IN_Q_OVERFLOW) {
			/* events were lost: read every directory again */
			for (struct landing *l = c->lands; l; l = l->next)
				if (l->wd >= 0)
					scan(fs, l, false);
			continue;
		}
		for (struct landing *l = c->lands; l; l = l->next) {
			if (l->wd != ev->wd)
				continue;
			if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) {
				struct problem pb = { 0 };

				snprintf(pb.msg, sizeof(pb.msg),
					 "%.400s: the directory went; write "
					 "the watch again to follow it",
					 l->path);
				say(fs, l->name, "watch", l->u.uid, &pb,
				    -ENOENT);
				inotify_rm_watch(c->ifd, l->wd);
				l->wd = -1;
				continue;
			}
			if (ev->mask & IN_IGNORED) {
				l->wd = -1;
				continue;
			}
			if (!ev->len || skipped(ev->name) ||
			    (ev->mask & IN_ISDIR))
				continue;
			if (ev->mask & IN_MOVED_TO)
				take(fs, l, ev->name);
			else if (ev->mask & IN_CLOSE_WRITE)
				pend(l, ev->name, false);
			else if (ev->mask & IN_MODIFY)
				pend(l, ev->name, true);
		}
	}
}

/* Take what is due; the ms until the next thing is (-1: nothing). */
static int due(struct fs *fs, struct collect *c)
{
	int64_t now = now_ms(), next = INT64_MAX;

	for (struct landing *l = c->lands; l; l = l->next) {
		struct pending *p;

		/* in due order: the first not due ends it */
		while ((p = l->pend) && p->due <= now) {
			l->pend = p->next;
			take(fs, l, p->file);
			free(p);
			now = now_ms();
		}
		if (p && p->due < next)
			next = p->due;
	}
	for (struct sched *s = c->scheds; s; s = s->next) {
		if (s->due <= now) {
			sched_run(fs, c, s);
			now = now_ms();
		}
		if (s->due < next)
			next = s->due;
	}
	if (next == INT64_MAX)
		return -1;
	return next <= now ? 0 : (int)(next - now < INT32_MAX ? next - now
							       : INT32_MAX);
}

static void *collect_main(void *arg)
{
	struct fs *fs = arg;
	struct collect *c = fs->collect;
	struct pollfd pf[2] = { { c->ifd, POLLIN, 0 }, { c->efd, POLLIN, 0 } };

	for (;;) {
		struct req *reqs;
		uint64_t cnt;
		int timeout = due(fs, c);

		if (poll(pf, 2, timeout) < 0 && errno != EINTR)
			break;
		if (pf[1].revents & POLLIN) {
			if (read(c->efd, &cnt, sizeof(cnt)) < 0) {
				/* another wake-up took it */
			}
		}
		pthread_mutex_lock(&c->lock);
		reqs = c->reqs;
		c->reqs = NULL;
		if (c->stop) {
			pthread_mutex_unlock(&c->lock);
			while (reqs) {
				struct req *r = reqs;

				reqs = r->next;
				free(r);
			}
			break;
		}
		pthread_mutex_unlock(&c->lock);
		while (reqs) {
			struct req *r = reqs;

			reqs = r->next;
			reload(fs, c, r->name);
			pthread_mutex_lock(&c->lock);
			if (r->done)
				*r->done = true;
			pthread_cond_broadcast(&c->done);
			pthread_mutex_unlock(&c->lock);
			free(r);
		}
		if (pf[0].revents & POLLIN)
			events(fs, c);
	}
	return NULL;
}

int collect_start(struct fs *fs)
{
	struct collect *c;

	if (fs->opts.read_only)
		return 0;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	c->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->done, NULL);
	if (c->ifd < 0 || c->efd < 0) {
		int rc = -errno;

		if (c->ifd >= 0)
			close(c->ifd);
		if (c->efd >= 0)
			close(c->efd);
		free(c);
		return rc;
	}
	fs->collect = c;
	/* every dataset's settings, read by the thread */
	repo_list(fs, &repo_datasets, ask_one, c);
	if (pthread_create(&c->thr, NULL, collect_main, fs) != 0) {
		fs->collect = NULL;
		close(c->ifd);
		close(c->efd);
		free(c);
		return -EAGAIN;
	}
	return 0;
}

void collect_stop(struct fs *fs)
{
	struct collect *c = fs->collect;
	uint64_t one = 1;

	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->stop = true;
	pthread_cond_broadcast(&c->done);
	pthread_mutex_unlock(&c->lock);
	if (write(c->efd, &one, sizeof(one)) < 0) {
		/* full: the thread wakes anyway */
	}
	pthread_join(c->thr, NULL);
	while (c->lands) {
		struct landing *l = c->lands;

		c->lands = l->next;
		landing_free(c, l);
	}
	while (c->scheds) {
		struct sched *s = c->scheds;

		c->scheds = s->next;
		free(s);
	}
	close(c->ifd);
	close(c->efd);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->done);
	free(c);
	fs->collect = NULL;
}

/* --- settings, from FUSE workers --- */

/* May ctx change name's settings?  Its writers may. */
static int may_set(struct fs *fs, const char *name, const struct fs_ctx *ctx)
{
	struct host_user u = { ctx->uid, ctx->gid, ctx->pid };

	return repo_may(fs, &repo_datasets, name, &u, W_OK | X_OK);
}

struct count_watches {
	struct fs *fs;
	const char *name;
	uid_t uid;
	size_t n;
};

static int count_one(void *arg, const char *name)
{
	struct count_watches *cw = arg;
	json_t *rec, *w;

	if (strcmp(name, cw->name) == 0 ||
	    repo_get(cw->fs, &repo_datasets, name, &rec) < 0)
		return 0;
	w = json_object_get(rec, "watch");
	cw->n += w && (uid_t)json_integer_value(json_object_get(w, "uid")) ==
			      cw->uid;
	json_decref(rec);
	return 0;
}

/* Lines of text: at most two, trimmed; the count, or -EINVAL. */
static int lines_of(const char *text, size_t len, char line[2][PATH_MAX],
		    struct problem *pb)
{
	int n = 0;

	while (len) {
		const char *nl = memchr(text, '\n', len);
		size_t ll = nl ? (size_t)(nl - text) : len;
		size_t skip = nl ? ll + 1 : ll;

		while (ll && (text[ll - 1] == '\r' || text[ll - 1] == ' ' ||
			      text[ll - 1] == '\t'))
			ll--;
		if (ll) {
			if (n == 2)
				return problem_set(pb, (unsigned)n + 1, 1,
						   "at most two lines: a mode "
						   "and a path");
			if (ll >= PATH_MAX)
				return problem_set(pb, (unsigned)n + 1, 1,
						   "a path too long");
			if (memchr(text, '\0', ll))
				return problem_set(pb, (unsigned)n + 1, 1,
						   "a NUL byte");
			memcpy(line[n], text, ll);
			line[n++][ll] = '\0';
		}
		text += skip;
		len -= skip;
	}
	return n;
}

/* May ctx change name's settings, and the lines of text: their count. */
static int setting_lines(struct fs *fs, const char *name, const char *text,
			 size_t len, const struct fs_ctx *ctx,
			 char line[2][PATH_MAX], struct problem *pb)
{
	int rc = may_set(fs, name, ctx);

	return rc < 0 ? rc : lines_of(text, len, line, pb);
}

/* Keep field of name's record (NULL: remove it), then have the thread
 * follow it (with wait, before returning). */
static int setting_put(struct fs *fs, const char *name, const char *field,
		       json_t *value, bool wait)
{
	int rc = repo_record_set(fs, &repo_datasets, name, field, value);

	if (rc == 0 && fs->collect)
		ask(fs->collect, name, wait);
	return rc;
}

int collect_set_watch(struct fs *fs, const char *name, const char *text,
		      size_t len, const struct fs_ctx *ctx, bool apply,
		      struct problem *pb)
{
	struct host_user u = { ctx->uid, ctx->gid, ctx->pid };
	struct count_watches cw = { fs, name, ctx->uid, 0 };
	char line[2][PATH_MAX], proc[64], path[PATH_MAX];
	struct statfs sfs;
	const char *dir;
	bool append = false;
	ssize_t got;
	int n, dfd, rc;

	if (!apply && (!len || text[len - 1] != '\n'))
		return 0; /* judged once a line is whole */
	n = setting_lines(fs, name, text, len, ctx, line, pb);
	if (n < 0)
		return n;
	if (n == 0)
		return apply ? setting_put(fs, name, "watch", NULL, true) : 0;
	dir = line[n - 1];
	if (n == 2 && strcmp(line[0], "append") == 0)
		append = true;
	else if (n == 2 && strcmp(line[0], "replace") != 0)
		return problem_set(pb, 1, 1,
				   "\"%s\": the mode is append or replace",
				   line[0]);
	else if (n == 1 && (strcmp(dir, "append") == 0 ||
			    strcmp(dir, "replace") == 0) && !apply)
		return 0; /* the path comes next */
	/* opened as the writer, who must be able to read it */
	rc = host_open(&u, dir, true, &dfd);
	if (rc < 0 && !apply && n == 1 && !strchr(dir, '/'))
		return 0; /* a mode, maybe, whose path comes next */
	if (rc < 0) {
		problem_set(pb, (unsigned)n, 1, "\"%s\": %s", dir,
			    rc == -EINVAL ? "not a directory"
					  : strerror(-rc));
		return rc == -EINVAL ? -ENOTDIR : rc;
	}
	/* inotify sees only local changes on FUSE (this mount included,
	 * which the daemon must never wait on) */
	if (fstatfs(dfd, &sfs) == 0 && sfs.f_type == FUSE_SUPER_MAGIC) {
		close(dfd);
		return problem_set(pb, (unsigned)n, 1,
				   "\"%s\": on a FUSE filesystem, which "
				   "inotify cannot follow",
				   dir);
	}
	/* kept as the directory's absolute path */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", dfd);
	got = readlink(proc, path, sizeof(path) - 1);
	close(dfd);
	if (got <= 0)
		return problem_set(pb, (unsigned)n, 1, "\"%s\": no path", dir);
	path[got] = '\0';
	repo_list(fs, &repo_datasets, count_one, &cw);
	if (cw.n >= WATCHES_PER_USER) {
		problem_set(pb, (unsigned)n, 1,
			    "%u watches are a user's most",
			    WATCHES_PER_USER);
		return -ENOSPC;
	}
	if (!fs->collect) {
		problem_set(pb, (unsigned)n, 1, "no watches on this mount");
		return -EROFS;
	}
	if (!apply)
		return 0;
	return setting_put(fs, name, "watch",
			   json_pack("{s:s, s:b, s:i, s:i}", "path", path,
				     "append", append, "uid", (int)ctx->uid,
				     "gid", (int)ctx->gid),
			   true);
}

int collect_show_watch(struct fs *fs, const char *name, struct strbuf *out)
{
	json_t *rec, *w;
	int rc = repo_get(fs, &repo_datasets, name, &rec);

	if (rc < 0)
		return rc;
	w = json_object_get(rec, "watch");
	if (w && json_is_true(json_object_get(w, "append")))
		sb_puts(out, "append\n");
	if (w)
		sb_printf(out, "%s\n",
			  json_string_value(json_object_get(w, "path")));
	json_decref(rec);
	return out->err;
}

/* "30s", "5m", "2h", "1d" or seconds: seconds, or 0 if not one. */
static long long interval(const char *s)
{
	char *end;
	long long n;

	if (*s < '0' || *s > '9')
		return 0;
	n = strtoll(s, &end, 10);
	if (n <= 0 || n > 366LL * 86400)
		return 0;
	switch (*end) {
	case 'd':
		n *= 24;
		/* fall through */
	case 'h':
		n *= 60;
		/* fall through */
	case 'm':
		n *= 60;
		/* fall through */
	case 's':
		end++;
		break;
	default:
		break;
	}
	return *end || n > 366LL * 86400 ? 0 : n;
}

int collect_set_schedule(struct fs *fs, const char *name, const char *text,
			 size_t len, const struct fs_ctx *ctx, bool apply,
			 struct problem *pb)
{
	char line[2][PATH_MAX];
	long long every;
	json_t *rec;
	bool source;
	int n, rc;

	if (!apply && (!len || text[len - 1] != '\n'))
		return 0;
	n = setting_lines(fs, name, text, len, ctx, line, pb);
	if (n < 0)
		return n;
	if (n == 2)
		return problem_set(pb, 2, 1, "one interval, one line");
	if (n == 0)
		return apply ? setting_put(fs, name, "schedule", NULL, false)
			     : 0;
	every = interval(line[0]);
	if (!every)
		return problem_set(pb, 1, 1,
				   "\"%s\": an interval is 30s, 5m, 2h, 1d or "
				   "seconds (at most a year)",
				   line[0]);
	rc = repo_get(fs, &repo_datasets, name, &rec);
	if (rc < 0)
		return rc;
	source = json_string_value(json_object_get(rec, "source")) != NULL;
	json_decref(rec);
	if (!source)
		return problem_set(pb, 1, 1,
				   "no source to import again: write an "
				   "absolute path or an s3:// URL to source "
				   "first");
	if (!fs->collect) {
		problem_set(pb, 1, 1, "no schedules on this mount");
		return -EROFS;
	}
	if (!apply)
		return 0;
	return setting_put(fs, name, "schedule",
			   json_pack("{s:I, s:s, s:i, s:i}", "every",
				     (json_int_t)every, "text", line[0], "uid",
				     (int)ctx->uid, "gid", (int)ctx->gid),
			   false);
}

int collect_show_schedule(struct fs *fs, const char *name,
			  struct strbuf *out)
{
	json_t *rec, *s;
	int rc = repo_get(fs, &repo_datasets, name, &rec);

	if (rc < 0)
		return rc;
	s = json_object_get(rec, "schedule");
	if (s)
		sb_printf(out, "%s\n",
			  json_string_value(json_object_get(s, "text")));
	json_decref(rec);
	return out->err;
}

/* SPDX-License-Identifier: MIT */
/*
 * The namespace engine.  Each directory of the tree is declared as data:
 * a table of node types, each with a name (or a lookup callback for
 * entries that come and go, such as datasets and versions), a mode, flags
 * for the kernel's caching, and the ops that type supports.  fs/fuse.c
 * receives FUSE's low-level calls and dispatches through the node's type;
 * a NULL op means "not supported" and the glue answers with the matching
 * errno.  Only fs/fuse.c talks to libfuse: ops answer through the
 * fs_reply_* helpers it exports.
 *
 * Nodes are the kernel's inodes: one per path the kernel has looked up,
 * freed when the kernel forgets it (not at unlink).  A node knows its path
 * split in components, so callbacks find their object by position
 * (datasets/<name>/v<n>/...: comp[1] is the dataset, comp[2] the
 * version).  The node table is internally locked; node fields other than
 * nlookup and refs are immutable after creation.
 */
#ifndef MLFS_FS_NODE_H
#define MLFS_FS_NODE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "ctx.h"
#include "names.h"
#include "problem.h"
#include "strbuf.h"

struct fs;
struct node;
struct fs_file;
struct fs_reply;
struct strbuf;
struct node_type;
struct repo_kind;
struct statvfs;

#define NODE_MAX_DEPTH 8

/* Flags of a node type: how the kernel may cache it. */
#define NODE_F_STREAM 0x1    /* grows by itself: attr timeout 0, direct_io */
#define NODE_F_IMMUTABLE 0x2 /* never changes: keep the page cache */
#define NODE_F_DYNAMIC 0x4   /* entries appear by themselves: no negative
				caching of lookups in this directory */
#define NODE_F_VOLATILE 0x8  /* content changes (data.csv): attr timeout 0,
				page cache dropped at open */
#define NODE_F_SCRATCH 0x10  /* writes change nothing stored (predict):
				allowed on a read-only mount */
#define NODE_F_COMMAND 0x20  /* each line is a command, run by store in
				the write that completes it, so its
				result is that write's (.mlfs/cache) */
#define NODE_F_LASTING 0x40  /* a name that, once found, seldom goes (an
				online key), whose attributes never
				change (a size of 0, direct_io): the
				kernel keeps the entry and attributes as
				an immutable one's, so an open sends no
				getattr; open says ENOENT once it went */


/*
 * fs_interrupted: has the caller behind ctx's request been signalled
 * (Ctrl-C, SIGKILL), so that the kernel asks us to give up?  An op that
 * waits for something slow (fsync and sync waiting for the bucket) polls
 * it and returns -EINTR: until the answer comes, a killed caller stays in
 * the kernel, unkillable.  False when ctx is NULL or has no request.
 */
bool fs_interrupted(const struct fs_ctx *ctx);

/* readdir callback for dynamic entries: 0 to go on, 1 when full. */
typedef int (*node_fill_fn)(void *ctx, const char *name,
			    const struct node_type *type);

struct node_type {
	const char *name; /* fixed entry name; NULL in dynamic types */
	mode_t mode;      /* S_IFDIR|0755, S_IFREG|0444, S_IFLNK|0777 */
	unsigned flags;   /* NODE_F_* */

	/* --- directories --- */
	/* Fixed entries, listed first and in table order; {NULL}-ended. */
	const struct node_type *children;
	/*
	 * lookup: is name a dynamic entry of dir?  0 and *type set, or
	 * -ENOENT.  list: call fill for each dynamic entry.
	 */
	int (*lookup)(struct node *dir, const char *name,
		      const struct node_type **type);
	int (*list)(struct node *dir, node_fill_fn fill, void *ctx);
	/*
	 * create: a new file named name in dir (train/<job>.json): fill f
	 * (f->node is set by the glue after a lookup of name succeeds, so
	 * lookup must find pending names) and return 0.
	 */
	int (*create)(struct node *dir, const char *name, struct fs_file *f,
		      const struct fs_ctx *ctx);
	/* mkdir and rmdir of objects (configfs style). */
	int (*make)(struct node *dir, const char *name, mode_t mode,
		    const struct fs_ctx *ctx);
	int (*drop)(struct node *dir, const char *name,
		    const struct fs_ctx *ctx);
	/* Aliases: symlink, unlink of a symlink, rename over one. */
	int (*symlink)(struct node *dir, const char *name,
		       const char *target, const struct fs_ctx *ctx);
	int (*unlink)(struct node *dir, const char *name,
		      const struct fs_ctx *ctx);
	int (*rename)(struct node *dir, const char *from, const char *to,
		      unsigned flags, const struct fs_ctx *ctx);

	/* --- every node --- */
	/*
	 * getattr: fill what the type knows (size, times, owner, mode
	 * bits); the glue has set ino, type bits, nlink and the table's
	 * mode before.  NULL: attribute files take their size from show.
	 */
	int (*getattr)(struct node *n, struct stat *st);
	/*
	 * fgetattr: what the open handle f sees of its file, on top of the
	 * node's st (a write handle's staged size).  The glue asks it for a
	 * GETATTR that names the handle (lseek SEEK_END, reads past EOF)
	 * and for one without a handle (fstat) from the process holding a
	 * write handle on the node.  NULL: every handle sees the node.
	 */
	int (*fgetattr)(struct fs_file *f, struct stat *st);
	/* setattr for chmod/chown of objects; NULL: EPERM. */
	int (*chmod)(struct node *n, mode_t mode, const struct fs_ctx *ctx);
	/* readlink: malloc'd target. */
	int (*readlink)(struct node *n, char **target);

	/* --- attribute files: one value, rendered whole --- */
	/* show: append the whole content to out at open (the snapshot). */
	int (*show)(struct node *n, struct strbuf *out);
	/*
	 * store: the whole written text, NUL-terminated, on the first flush
	 * that carries new bytes.  Apply it completely or change nothing and
	 * return -errno (fill pb for bad input).
	 */
	int (*store)(struct node *n, const char *text, size_t len,
		     const struct fs_ctx *ctx, struct problem *pb);
	/*
	 * check: judge the text written so far (NUL-terminated), on every
	 * write, so that bad input fails the write that carries it (bash
	 * ignores close's result).  0 while the text is incomplete (no
	 * newline yet, a JSON value not closed) or good; -errno with pb
	 * fails that write, and the handle then stores nothing.  Changes
	 * nothing: store applies at flush.  NULL: judged at flush only.
	 */
	int (*check)(struct node *n, const char *text, size_t len,
		     const struct fs_ctx *ctx, struct problem *pb);

	/* --- data files and streams: the type manages the handle --- */
	int (*open)(struct fs_file *f, const struct fs_ctx *ctx);
	/* read: answer with fs_reply_buf/fs_reply_fd (now or later). */
	int (*read)(struct fs_file *f, size_t size, off_t off,
		    struct fs_reply *r);
	ssize_t (*write)(struct fs_file *f, const char *buf, size_t size,
			 off_t off);
	/* truncate an open handle (ftruncate, O_TRUNC without atomic). */
	int (*truncate)(struct fs_file *f, off_t size);
	/*
	 * flush: commit new bytes; its result is what close() returns.  A
	 * read-only handle is never flushed (FOPEN_NOFLUSH): it wrote
	 * nothing to commit.
	 */
	int (*flush)(struct fs_file *f, const struct fs_ctx *ctx,
		     struct problem *pb);
	/* fsync: may wait; polls fs_interrupted(ctx) while it does. */
	int (*fsync)(struct fs_file *f, const struct fs_ctx *ctx);
	void (*release)(struct fs_file *f);

	/*
	 * kind: set on the top directory of a kind of versioned object
	 * (datasets/, models/): the objects, versions and files under it
	 * are of that kind (obj_kind looks up the ancestors).  The engine
	 * never looks inside it.  NULL elsewhere.
	 */
	const struct repo_kind *kind;
	/*
	 * blob: the store key of the content this file serves (for the
	 * .mlfs/cache commands and the user.mlfs.* attributes); -ENODATA
	 * when it has none, -EREMOTE for a lazy import not fetched yet.
	 * NULL: generated content.
	 */
	int (*blob)(struct node *n, char *key, size_t len);
	/*
	 * xattr: the value of attribute name (user.mlfs.*) into out, its
	 * length, or -ENODATA.  NULL: the glue's answer for a file whose
	 * content is generated here ("local", and its size).
	 */
	int (*xattr)(struct node *n, const char *name, char *out,
		     size_t outlen);
	/* statfs (the root's): what df shows.  NULL: ENOSYS. */
	int (*statfs)(struct node *n, struct statvfs *sv);

	/*
	 * refuse: why the glue refuses (EPERM) to make, remove, link or
	 * rename entries of this directory, for the caller's .mlfs/errors
	 * ("versions are immutable").  NULL: the glue says what it can
	 * ("kept by the filesystem").
	 */
	const char *refuse;
};

struct node_retired {
	struct node_retired *next;
	char *path;
	char *compbuf;
};

struct node {
	uint64_t ino;
	struct fs *fs;
	const struct node_type *type;
	struct node *parent;       /* holds a reference; NULL for the root */
	char *path;                /* "datasets/iris/v2", "" for the root */
	const char *name;          /* last component, inside path */
	unsigned depth;            /* number of components */
	const char *comp[NODE_MAX_DEPTH]; /* components, inside compbuf */
	char *compbuf;
	_Atomic uint64_t nlookup;  /* the kernel's count */
	_Atomic unsigned refs;     /* table + open handles + children */
	struct node_retired *retired; /* paths before node_move() */
	struct node *next_ino;     /* under the table lock */
	struct node *next_path;    /* under the table lock */
};

/* An open file.  Fields other than priv are owned by the glue. */
struct fs_file {
	_Atomic unsigned refs; /* the kernel's handle + ops running on it */
	struct node *node; /* holds a reference */
	int flags;         /* open(2) flags */
	uid_t uid;
	gid_t gid;
	pid_t pid;
	pid_t tgid;         /* the process (thread group) of pid */
	struct fs *charged; /* counted in its handles per uid (fuse.c) */
	/* attribute files: */
	char *snap; /* show() at open */
	size_t snap_len;
	char *wbuf; /* bytes written, at their offsets */
	size_t wlen;
	size_t wdone; /* NODE_F_COMMAND: bytes of wbuf already run */
	size_t wcap;
	uint64_t gen;       /* bumped by each write/truncate */
	uint64_t committed; /* gen at the last commit */
	bool direct_io;     /* set by open ops for streams */
	bool keep_cache;    /* set by open ops for immutable content */
	bool noflush;       /* set by open ops: close has nothing to do */
	void *priv;         /* the type's own state */
	struct fs_file *prev, *next; /* open handles, under fs->files_lock */
};

/* The root's type is declared in root.c. */
extern const struct node_type root_type;

/* Create the node table with the root node; -ENOMEM. */
int node_table_init(struct fs *fs);
void node_table_free(struct fs *fs);

/* Find by inode with a reference taken (node_put); NULL if unknown. */
struct node *node_get_ino(struct fs *fs, uint64_t ino);
/*
 * Find or make the child node (parent, name, type), with one more kernel
 * lookup counted and a reference taken.  -ENOMEM.
 */
int node_child(struct node *parent, const char *name,
	       const struct node_type *type, struct node **out);
/* Take and drop references; the last put frees the node. */
void node_ref(struct node *n);
void node_put(struct node *n);
/*
 * After a rename in dir: the kernel now knows the node that was at from
 * by the name to, so give it that path.  Only for leaves (symlinks).
 */
void node_move(struct node *dir, const char *from, const char *to);
/* The kernel forgets n nlookup times. */
void node_forget(struct fs *fs, uint64_t ino, uint64_t nlookup);

/*
 * node_walk: the node at path (relative to the mount, "a/b/c"), resolved
 * component by component as lookups would, without the kernel knowing
 * it: a chain of nodes of the caller's own, outside the table, freed by
 * node_walk_free.  For paths users name in commands (.mlfs/cache).
 * -ENOENT, -ENOTDIR, -ENOMEM.
 */
int node_walk(struct fs *fs, const char *path, struct node **out);
void node_walk_free(struct node *n);

/*
 * Resolve name inside dir: a fixed child or a dynamic entry.  0 and
 * *type, -ENOENT, -ENOTDIR.
 */
int node_resolve(struct node *dir, const char *name,
		 const struct node_type **type);

static inline bool node_is_dir(const struct node_type *t)
{
	return S_ISDIR(t->mode);
}


/* Answers to a read, from fs/fuse.c.  Each returns 0. */
int fs_reply_buf(struct fs_reply *r, const void *buf, size_t len);
int fs_reply_fd(struct fs_reply *r, int fd, off_t off, size_t len);
int fs_reply_err(struct fs_reply *r, int err);

/*
 * Blocking reads (jobs/<job>/wait) park their request instead of holding
 * a worker thread.  fs_park: the request of r is answered later by
 * fs_unpark(fs, key, ...), fs being the mount the request came to, with
 * content, or with EINTR when the reader is interrupted (Ctrl-C).
 * Returns 0; the op then returns 0 without answering.  fs_unpark: answer
 * every request parked under key with buf (each gets at most the size it
 * asked for).  fs_unpark_all: answer all, at unmount.  The parked
 * requests are fs's (fs->parked, set up by fs_glue_init).
 */
int fs_park(struct fs_reply *r, const void *key, size_t size);
void fs_unpark(struct fs *fs, const void *key, const char *buf, size_t len);
void fs_unpark_all(struct fs *fs, const char *buf, size_t len);


#endif

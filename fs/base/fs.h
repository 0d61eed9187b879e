/* SPDX-License-Identifier: MIT */
/*
 * struct fs: one mounted mlfs.  Created by main() before the daemon
 * detaches (options, store, index), then shared by every FUSE worker.
 * Fields are set up before the session loop starts and read-only after,
 * except where a comment names the lock that protects them.
 */
#ifndef MLFS_FS_FS_H
#define MLFS_FS_FS_H

#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "problem.h"

struct store;
struct meta;
struct node;
struct plugin_set;
struct plugin_loader;
struct runner;
struct dir_list;
struct parked;
struct remote;
struct served_cache;
struct answer_sessions;
struct feat_cache;
struct dtable;

struct fs_opts {
	char *store;          /* STORE as given */
	char *store_dir;      /* absolute local directory */
	char *mountpoint;     /* absolute */
	char *cache_dir;      /* index and cache; default under the store */
	char *log_file;       /* -o log=FILE */
	char *plugin_dir;     /* absolute (main.c: plugin_dir) */
	uint64_t max_file;    /* bytes: cap on one written file (EFBIG) */
	char *endpoint;       /* S3: -o endpoint, or NULL */
	char *region;         /* S3: -o region, or NULL */
	bool path_style;      /* S3: -o path_style */
	unsigned import_ttl;  /* seconds: S3 sources and readers refresh */
	unsigned gc_grace;    /* seconds: gc spares blobs younger than this;
				 rmdir deletes blobs from S3 this late */
	unsigned verify_delay; /* seconds: check a catalog index after this */
	unsigned sync_timeout; /* seconds: fsync and sync wait for the bucket
				  at most this long; 0: no limit */
	unsigned jobs;
	unsigned predictions_sync_ms; /* a deployment's answers are durable
					 this long after they are read */
	uint64_t predictions_keep_secs;  /* a prediction store keeps this
					    long (0: for ever) */
	uint64_t predictions_keep_bytes; /* and this much (0: no bound) */
	unsigned handles_per_uid; /* open handles one uid may hold: past it,
				     EMFILE to that user alone; 0: no bound */
	bool foreground;
	bool debug;
	bool read_only;
};

#define FS_ERRORS_KEEP 1000 /* lines kept in .mlfs/errors */

struct repo_kind;
struct waiter;

struct fs {
	struct fs_opts opts;
	struct store *store;
	struct meta *meta;
	struct meta *online;   /* feature sets' online stores (featonline.c):
				* a scratch index, loaded again after a crash */
	time_t mounted;
	FILE *log_fp; /* stderr, -o log=FILE, or NULL for syslog */
	struct plugin_set *plugins; /* read-only once loaded: fs_plugins() */
	struct plugin_loader *plugin_loader; /* plugin.c: the thread loading
						them, from mount time */
	/*
	 * The state of the modules above the engine, one per mount, each
	 * made and freed by its owner (in parentheses) from main().
	 */
	struct runner *runner;      /* jobs (runner_start) */
	struct served_cache *served; /* models in memory (served_cache_open) */
	struct plot_cache *plots;   /* pictures drawn (plot_cache_open) */
	struct http *http;          /* -o http (http_bind), or NULL */
	char http_addr[160];        /* where it listens: .mlfs/http */
	struct oip_cache *oip_cache; /* versions HTTP read (oip_cache_open) */
	struct feat_cache *feat_cache;    /* feature sets' latest specs and
					     marks (featonline_start) */
	struct dtable *deploys;     /* deployments in memory (deploy_start) */
	unsigned char *anon_key;    /* -o anon_key: the master key that pii
				       values are hashed under, or NULL */
	size_t anon_key_len;
	struct answer_sessions *sessions; /* stream answers kept for shell
					     sessions (answers_start) */
	struct repo *repo;          /* the repository's state (repo_open) */
	struct collect *collect;    /* watches and schedules (collect.c);
				       NULL on a read-only mount */
	struct remote *remote;      /* the S3 mode's lease and the sources'
				       poll (remote_open) */
	/*
	 * Does a queued or running job read dataset name (version ver, or
	 * any if 0)?  1 with why, else 0.  Set by the runner, which sits
	 * above the repository (repo/kinds.c asks through it); NULL: no jobs.
	 */
	int (*jobs_read_dataset)(struct fs *fs, const char *name, unsigned ver,
				 char *why, size_t whylen);
	/*
	 * Must the glue refuse uid's change now (and has it said why)?  Set
	 * by the S3 mode (remote.c) for a writer unsure of its lease; NULL:
	 * fs->opts.read_only alone decides.
	 */
	bool (*refuses_change)(struct fs *fs, uid_t uid);
	/*
	 * The repository published version ver of name (0: removed name),
	 * under ds_lock.  Set by the tree (next.c), whose readers of
	 * v<n>/next wait for it; NULL: nobody asks.
	 */
	void (*on_version)(struct fs *fs, const struct repo_kind *k,
			   const char *name, unsigned ver);
	struct waiter *next_waiters; /* next.c's, under ds_lock */

	/* the node table (node.c) */
	pthread_mutex_t nodes_lock;
	struct node **by_ino;     /* under nodes_lock */
	struct node **by_path;    /* under nodes_lock */
	size_t nbuckets;          /* under nodes_lock */
	size_t nnodes;            /* under nodes_lock */
	uint64_t next_ino;        /* under nodes_lock */
	struct node *root;

	/* .mlfs/errors: a ring of lines */
	pthread_mutex_t errors_lock;
	char *errors[FS_ERRORS_KEEP]; /* under errors_lock */
	uid_t errors_uid[FS_ERRORS_KEEP]; /* under errors_lock: who caused it */
	unsigned errors_next;         /* under errors_lock */
	uint64_t errors_total;        /* under errors_lock */
	uint64_t errors_bytes;        /* under errors_lock: kept, with \n */
	uint64_t errors_dropped;      /* under errors_lock: bytes evicted */

	/*
	 * Open file handles (fuse.c; set up by fs_glue_init).  The kernel
	 * may drop RELEASE requests still in flight at unmount, so destroy
	 * releases whatever is left here.
	 */
	pthread_mutex_t files_lock;
	struct fs_file *files;        /* under files_lock */
	struct uid_count *handles;    /* per uid, under files_lock */
	struct dir_list *dirs;        /* under files_lock */

	/*
	 * Requests parked by fs_park (fuse.c) until fs_unpark answers them
	 * or their reader is interrupted; set up by fs_glue_init.
	 */
	pthread_mutex_t parked_lock;
	struct parked *parked;        /* under parked_lock */
	uint64_t parked_next_id;      /* under parked_lock */

	/* serialises changes to datasets (versions, aliases, removal) */
	pthread_mutex_t ds_lock;

	/*
	 * The catalog object (catalog.h).  s3 is set by remote_start() before
	 * the index is opened and closed by remote_stop().
	 */
	struct store *s3;             /* the S3 store under the cache, used
				       * directly (no HEAD, nothing cached);
				       * NULL on a local store */
	_Atomic uint64_t cat_gen;     /* bumped by every META_CAT change */
	_Atomic uint64_t rec_gen;     /* bumped after every commit that
				       * changes META_REC (index records) */
	pthread_mutex_t cat_lock;     /* serialises catalog writes */
	pthread_mutex_t online_lock;  /* serialises event appends and loads
					 of feature sets' online stores */
	uint64_t cat_written;         /* under cat_lock: cat_gen last put */

	/* counters for .mlfs/stats */
	_Atomic uint64_t n_lookup;
	_Atomic uint64_t n_getattr;
	_Atomic uint64_t n_open;
	_Atomic uint64_t n_flush;
	_Atomic uint64_t n_read;
	_Atomic uint64_t n_write;
	_Atomic uint64_t bytes_read;
	_Atomic uint64_t bytes_written;
	_Atomic uint64_t n_versions;
	_Atomic uint64_t n_rejected;
};

/*
 * fs_problem: record bad input that uid wrote: a line "path:line:col: msg"
 * in .mlfs/errors (shown to uid and root only: it may quote what uid
 * wrote, or data only they may read) and in the log.  uid 0 when no user
 * is behind it.  Any thread.
 */
void fs_problem(struct fs *fs, uid_t uid, const struct problem *pb);
/*
 * fs_damage: like fs_problem, for damage found in the store rather than
 * bad input (content that does not match its hash, a manifest gone), or
 * a fault of the daemon's (a library it cannot load): the
 * line goes to .mlfs/errors (shown to uid and root) and the log, and is
 * not counted as rejected.  Any thread.
 */
void fs_damage(struct fs *fs, uid_t uid, const struct problem *pb);
/*
 * fs_refused: say why a change by uid was refused with rc (-EPERM or
 * -EACCES; other codes pass through silently): a line "path: operation
 * not permitted: why" (or "permission denied") through fs_problem, so in
 * uid's .mlfs/errors and the log.  dir is mount-relative ("" for the
 * root), name the entry in it or NULL for dir itself.  Returns rc.  Any
 * thread.
 */
int fs_refused(struct fs *fs, uid_t uid, const char *dir, const char *name,
	       int rc, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));
/* fs_log: printf-style line to the log (stderr or syslog). */
void fs_log(struct fs *fs, int prio, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Assemble the root's table (root.c); once, before mounting. */
void root_init(void);

#endif

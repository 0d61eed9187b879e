/* SPDX-License-Identifier: MIT */
/*
 * The requests HTTP serves (http.c takes them off the socket): the Open
 * Inference Protocol v2 over REST, the feedback extension and /metrics,
 * each run as the caller's uid under the permissions the files have.
 * Any thread.
 *
 *   GET  /v2                              server metadata
 *   GET  /v2/health/live, /v2/health/ready
 *   GET  /v2/models/<name>[/versions/<n>]  model metadata
 *   GET  /v2/models/<name>[/versions/<n>]/ready
 *   POST /v2/models/<name>[/versions/<n>]/infer
 *   POST /v2/models/<d>/feedback           delayed labels (deployments)
 *   GET  /metrics                          Prometheus, families merged
 *
 * <name> is a deployment if one has that name, else a registry model
 * (production, else latest); /versions/<n> is always the registry's.
 */
#ifndef MLFS_HTTP_OIP_H
#define MLFS_HTTP_OIP_H

#include <stddef.h>

#include "hostfile.h"
#include "strbuf.h"

struct fs;

/* Who asks: a uid, its primary group and its supplementary groups as
 * they were when it connected (SO_PEERGROUPS), or the group database's
 * (a token's uid). */
struct oip_caller {
	uid_t uid;
	gid_t gid;
	const gid_t *groups;
	int ngroups;
};

struct oip_reply {
	int status;              /* 200, 400, 403, 404, 405, 413, 503 */
	const char *type;        /* Content-Type */
	struct strbuf body;      /* the caller frees it (sb_free) */
};

/* The versions HTTP has read, one cache a mount (fs->oip_cache). */
int oip_cache_open(struct fs *fs);
void oip_cache_close(struct fs *fs);

/*
 * oip_serve: answer one request (body: len bytes, not NUL-terminated)
 * for u.  Errors are {"error": "..."} bodies with their status; it never
 * fails otherwise.
 */
void oip_serve(struct fs *fs, const struct oip_caller *u, const char *method,
	       const char *url, const char *body, size_t len,
	       struct oip_reply *r);

#endif

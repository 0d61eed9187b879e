/* SPDX-License-Identifier: MIT */
/*
 * HTTP beside the mount (DESIGN.md §4 "HTTP"): the Open Inference
 * Protocol v2 and /metrics, served by libmicrohttpd on a unix socket
 * (-o http=unix:PATH, callers known by SO_PEERCRED) or TCP (-o
 * http=ADDR:PORT, callers known by a bearer token of -o http_token=FILE).
 * Every request runs as a uid, under the files' permissions (oip.c).
 *
 * http_bind, in main() before the daemon detaches: parses the options,
 * reads the token file and binds the socket, so that a bad option or a
 * busy port is a one-line error and exit 1; fs->http_addr then says
 * where it listens.  http_start, once the daemon's services run, starts
 * the accepting thread and libmicrohttpd's; http_stop ends them (first
 * at unmount: no request is in flight when the services stop).
 */
#ifndef MLFS_HTTP_HTTP_H
#define MLFS_HTTP_HTTP_H

#include <stdint.h>

struct fs;

struct http_opts {
	const char *listen;   /* -o http: "unix:PATH" or "ADDR:PORT" */
	const char *tokens;   /* -o http_token: FILE, or NULL */
	uint64_t max_body;    /* -o http_max_body: bytes (0: 64 MiB) */
};

/* 0, or -1 after one line on stderr ("mlfs: -o http=...: why"). */
int http_bind(struct fs *fs, const struct http_opts *o);
int http_start(struct fs *fs);
void http_stop(struct fs *fs);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * serve_bench.c: the C client of bench_serve.sh, so that a deployment's
 * predict and its model's predict are driven by the same code and pay
 * the same (small) client overhead.
 *
 *   serve_bench handle PREDICT ROWFILE N PREFIX
 *       one handle: write ROWFILE's bytes (one row) + read its answer
 *       line, N times (after N/10 warm-up iterations); prints
 *       "p50_us p99_us mean_us"
 *   serve_bench open PREDICT ROWFILE N PREFIX
 *       open(O_RDWR) + write the row + read the answer + close, N times
 *       (after N/10 warm-up iterations); prints "p50_us p99_us mean_us"
 *   serve_bench load PREDICT ROWFILE CLIENTS SECONDS PREFIX IDS
 *       CLIENTS threads, each on its own handle, write the row + read its
 *       answer line until SECONDS have passed (a row under way is
 *       finished); the id of every answer (its first field) goes to the
 *       file IDS, one a line; prints
 *       "rows seconds rows_per_s p50_us p99_us mean_us errors"
 *
 * PREFIX ("-" for none): every answer must start with it (a
 * deployment's request id, "<d>-").  An answer is good when it ends with
 * a newline, does not start with "error" and starts with PREFIX.  In
 * handle and open the program exits 1 on the first bad answer; in load
 * bad answers and failed system calls are counted as errors (a client
 * whose call failed opens a new handle) and the run goes on.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BENCH_PROG "serve_bench"
#include "../handle.h"

#define ANSWER_MAX 65536

static const char *prefix_arg(const char *p)
{
	return strcmp(p, "-") == 0 ? "" : p;
}

static int lat_predict(const char *path, const char *rowfile, long n,
		       const char *prefix, int reopen)
{
	double *lat = malloc((size_t)n * sizeof(*lat));
	char *ans = malloc(ANSWER_MAX);
	size_t rowlen;
	char *row = slurp(rowfile, &rowlen);
	long warm = n / 10;
	int fd = -1;

	if (!lat || !ans)
		die("out of memory for", path);
	if (!reopen) {
		fd = open(path, O_RDWR);
		if (fd < 0)
			die("open", path);
	}
	for (long i = -warm; i < n; i++) {
		double t0 = now_ns();
		ssize_t got;

		if (reopen) {
			fd = open(path, O_RDWR);
			if (fd < 0)
				die("open", path);
		}
		if (write_all(fd, row, rowlen) < 0)
			die("write", path);
		got = read_line(fd, ans, ANSWER_MAX);
		if (got < 0)
			die("read", path);
		if (reopen && close(fd) < 0)
			die("close", path);
		if (i >= 0)
			lat[i] = now_ns() - t0;
		if (!answer_is_good(ans, (size_t)got, prefix)) {
			fprintf(stderr, "serve_bench: bad answer from %s: %.*s\n",
				path, (int)got, ans);
			exit(1);
		}
	}
	if (!reopen && close(fd) < 0)
		die("close", path);
	report(lat, n);
	printf("\n");
	free(lat);
	free(ans);
	free(row);
	return 0;
}

/* --- load: CLIENTS threads, each on its own handle --- */

struct client {
	pthread_t tid;
	const char *path, *row, *prefix;
	size_t rowlen;
	double deadline;
	double *lat;        /* one per answered row */
	long n, cap;
	char *ids;          /* the answers' ids, a line each */
	size_t idlen, idcap;
	long errors;
};

static int client_note(struct client *c, double ns, const char *ans,
		       size_t len)
{
	const char *comma = memchr(ans, ',', len);
	size_t il = comma ? (size_t)(comma - ans) : len - 1;

	if (c->n == c->cap) {
		long cap = c->cap ? c->cap * 2 : 65536;
		double *nl = realloc(c->lat, (size_t)cap * sizeof(*nl));

		if (!nl)
			return -ENOMEM;
		c->lat = nl;
		c->cap = cap;
	}
	if (c->idlen + il + 1 > c->idcap) {
		size_t cap = c->idcap ? c->idcap * 2 : 1 << 20;
		char *ni;

		while (cap < c->idlen + il + 1)
			cap *= 2;
		ni = realloc(c->ids, cap);
		if (!ni)
			return -ENOMEM;
		c->ids = ni;
		c->idcap = cap;
	}
	c->lat[c->n++] = ns;
	memcpy(c->ids + c->idlen, ans, il);
	c->idlen += il;
	c->ids[c->idlen++] = '\n';
	return 0;
}

static void *client_run(void *arg)
{
	struct client *c = arg;
	char *ans = malloc(ANSWER_MAX);
	int fd = -1;

	if (!ans) {
		c->errors++;
		return NULL;
	}
	while (now_ns() < c->deadline) {
		double t0;
		ssize_t got;

		if (fd < 0) {
			fd = open(c->path, O_RDWR);
			if (fd < 0) {
				fprintf(stderr, "serve_bench: open %s: %s\n",
					c->path, strerror(errno));
				c->errors++;
				break;
			}
		}
		t0 = now_ns();
		if (write_all(fd, c->row, c->rowlen) < 0) {
			fprintf(stderr, "serve_bench: write %s: %s\n", c->path,
				strerror(errno));
			c->errors++;
			close(fd);
			fd = -1;
			continue;
		}
		got = read_line(fd, ans, ANSWER_MAX);
		if (got < 0 || !answer_is_good(ans, (size_t)got, c->prefix)) {
			if (got < 0)
				fprintf(stderr, "serve_bench: read %s: %s\n",
					c->path, strerror((int)-got));
			else
				fprintf(stderr, "serve_bench: bad answer: %.*s\n",
					(int)got, ans);
			c->errors++;
			close(fd);
			fd = -1;
			continue;
		}
		if (client_note(c, now_ns() - t0, ans, (size_t)got) < 0) {
			c->errors++;
			break;
		}
	}
	if (fd >= 0 && close(fd) < 0) {
		fprintf(stderr, "serve_bench: close %s: %s\n", c->path,
			strerror(errno));
		c->errors++;
	}
	free(ans);
	return NULL;
}

static int load(const char *path, const char *rowfile, int nclients,
		double secs, const char *prefix, const char *idsfile)
{
	struct client *cs = calloc((size_t)nclients, sizeof(*cs));
	size_t rowlen;
	char *row = slurp(rowfile, &rowlen);
	long total = 0, errors = 0, k = 0;
	double *lat, t0, t1;
	FILE *ids;

	if (!cs)
		die("out of memory for", path);
	t0 = now_ns();
	for (int i = 0; i < nclients; i++) {
		cs[i] = (struct client){ .path = path, .row = row,
					 .rowlen = rowlen, .prefix = prefix,
					 .deadline = t0 + secs * 1e9 };
		if (pthread_create(&cs[i].tid, NULL, client_run, &cs[i]) != 0)
			die("cannot start a client for", path);
	}
	for (int i = 0; i < nclients; i++) {
		pthread_join(cs[i].tid, NULL);
		total += cs[i].n;
		errors += cs[i].errors;
	}
	t1 = now_ns();
	ids = fopen(idsfile, "w");
	if (!ids)
		die("cannot open", idsfile);
	lat = malloc((size_t)(total ? total : 1) * sizeof(*lat));
	if (!lat)
		die("out of memory for", path);
	for (int i = 0; i < nclients; i++) {
		memcpy(lat + k, cs[i].lat, (size_t)cs[i].n * sizeof(*lat));
		k += cs[i].n;
		if (cs[i].idlen &&
		    fwrite(cs[i].ids, 1, cs[i].idlen, ids) != cs[i].idlen)
			die("cannot write", idsfile);
		free(cs[i].lat);
		free(cs[i].ids);
	}
	if (fclose(ids) != 0)
		die("cannot write", idsfile);
	printf("%ld %.3f %.0f ", total, (t1 - t0) / 1e9,
	       (double)total / ((t1 - t0) / 1e9));
	report(lat, total);
	printf(" %ld\n", errors);
	free(lat);
	free(cs);
	free(row);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 6 && strcmp(argv[1], "handle") == 0)
		return lat_predict(argv[2], argv[3], atol(argv[4]),
				   prefix_arg(argv[5]), 0);
	if (argc == 6 && strcmp(argv[1], "open") == 0)
		return lat_predict(argv[2], argv[3], atol(argv[4]),
				   prefix_arg(argv[5]), 1);
	if (argc == 8 && strcmp(argv[1], "load") == 0 && atoi(argv[4]) > 0)
		return load(argv[2], argv[3], atoi(argv[4]), atof(argv[5]),
			    prefix_arg(argv[6]), argv[7]);
	fprintf(stderr, "usage: serve_bench handle|open PREDICT ROWFILE N PREFIX"
			" | load PREDICT ROWFILE CLIENTS SECONDS PREFIX IDS\n");
	return 2;
}

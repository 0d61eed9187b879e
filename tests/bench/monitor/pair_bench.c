/* SPDX-License-Identifier: MIT */
/*
 * pair_bench.c: the C client of bench_monitor.sh's per-row overhead:
 * serve_bench.c's "handle" measurement (tests/bench/serve/: one row
 * written and its answer line read on one open handle, timed per row)
 * on two predict files side by side, so that the two are measured in
 * the same seconds of a noisy machine.
 *
 *   pair_bench A B ROWFILE N BLOCK PREFIX_A PREFIX_B
 *
 * Opens A and B once each (O_RDWR); then N rows on each, in blocks of
 * BLOCK rows, A's block and B's block in turn (which of the two goes
 * first alternates from one pair of blocks to the next), after N/10
 * warm-up rows on each the same way.  The rows are ROWFILE's lines (each
 * with its newline) in turn, the same sequence on both sides.  Prints
 * "a_p50_us a_p99_us a_mean_us b_p50_us b_p99_us b_mean_us".
 *
 * PREFIX_A, PREFIX_B ("-" for none): every answer of that side must start
 * with it (a deployment's request id, "<d>-").  An answer is good when it
 * ends with a newline, does not start with "error" and starts with the
 * prefix; the program exits 1 on the first bad answer or failed call.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BENCH_PROG "pair_bench"
#include "../handle.h"

#define ANSWER_MAX 65536

struct side {
	const char *path, *prefix;
	int fd;
	size_t next;  /* the next row */
	double *lat;
	long n;
};

/* The lines of buf (each with its newline): offsets and lengths. */
static size_t split_lines(const char *buf, size_t len, size_t **off,
			  size_t **lens)
{
	size_t n = 0, k = 0, at = 0;

	for (size_t i = 0; i < len; i++)
		n += buf[i] == '\n' || i + 1 == len;
	*off = malloc((n ? n : 1) * sizeof(**off));
	*lens = malloc((n ? n : 1) * sizeof(**lens));
	if (!*off || !*lens)
		die("out of memory for", "rows");
	for (size_t i = 0; i < len; i++)
		if (buf[i] == '\n' || i + 1 == len) {
			(*off)[k] = at;
			(*lens)[k++] = i + 1 - at;
			at = i + 1;
		}
	return k;
}

static const char *rows;
static size_t *row_off, *row_len, nrows;
static char ans[ANSWER_MAX];

/* count rows on s; their times noted when keep */
static void run_block(struct side *s, long count, int keep)
{
	for (long i = 0; i < count; i++) {
		size_t k = s->next++ % nrows;
		double t0 = now_ns();
		ssize_t got;

		if (write_all(s->fd, rows + row_off[k], row_len[k]) < 0)
			die("write", s->path);
		got = read_line(s->fd, ans, ANSWER_MAX);
		if (got < 0) {
			errno = (int)-got;
			die("read", s->path);
		}
		if (keep)
			s->lat[s->n++] = now_ns() - t0;
		if (!answer_is_good(ans, (size_t)got, s->prefix)) {
			fprintf(stderr, "pair_bench: bad answer from %s: %.*s\n",
				s->path, (int)got, ans);
			exit(1);
		}
	}
}

/* n rows a side, blocks in turn */
static void run(struct side *a, struct side *b, long n, long block, int keep)
{
	for (long done = 0, pair = 0; done < n; pair++) {
		long c = n - done < block ? n - done : block;

		if (pair % 2 == 0) {
			run_block(a, c, keep);
			run_block(b, c, keep);
		} else {
			run_block(b, c, keep);
			run_block(a, c, keep);
		}
		done += c;
	}
}

int main(int argc, char **argv)
{
	struct side s[2];
	size_t len;
	long n, block;

	if (argc != 8 || atol(argv[4]) < 1 || atol(argv[5]) < 1) {
		fprintf(stderr, "usage: pair_bench A B ROWFILE N BLOCK "
				"PREFIX_A PREFIX_B\n");
		return 2;
	}
	n = atol(argv[4]);
	block = atol(argv[5]);
	rows = slurp(argv[3], &len);
	nrows = split_lines(rows, len, &row_off, &row_len);
	if (nrows == 0) {
		fprintf(stderr, "pair_bench: %s has no rows\n", argv[3]);
		return 2;
	}
	for (int i = 0; i < 2; i++) {
		s[i] = (struct side){ .path = argv[1 + i],
				      .prefix = strcmp(argv[6 + i], "-") == 0
							? ""
							: argv[6 + i] };
		s[i].lat = malloc((size_t)n * sizeof(*s[i].lat));
		if (!s[i].lat)
			die("out of memory for", s[i].path);
		s[i].fd = open(s[i].path, O_RDWR);
		if (s[i].fd < 0)
			die("open", s[i].path);
	}
	run(&s[0], &s[1], n / 10, block, 0);
	run(&s[0], &s[1], n, block, 1);
	for (int i = 0; i < 2; i++) {
		if (close(s[i].fd) < 0)
			die("close", s[i].path);
		if (i)
			printf(" ");
		report(s[i].lat, s[i].n);
		free(s[i].lat);
	}
	printf("\n");
	free(row_off);
	free(row_len);
	free((char *)rows);
	return 0;
}

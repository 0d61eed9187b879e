/* SPDX-License-Identifier: MIT */
/*
 * predict_bench.c: the C client of bench_ml.sh, so that both sides of
 * each latency comparison pay the same (small) client overhead.
 *
 *   predict_bench read FILE N
 *       open(O_RDONLY) + read 4 KiB + close, N times (after N/10 warm-up
 *       iterations); prints "p50_us p99_us mean_us"
 *   predict_bench open PREDICT ROWFILE N
 *       open(O_RDWR) + write ROWFILE's bytes (one row) + read the answer
 *       + close, N times; prints "p50_us p99_us mean_us"
 *   predict_bench handle PREDICT ROWFILE N
 *       one handle: write the row + read its answer line, N times;
 *       prints "p50_us p99_us mean_us"
 *   predict_bench batch PREDICT INPUT OUTPUT [CHUNK]
 *       INPUT (CSV, a header line then rows) written through one predict
 *       handle in writes of up to CHUNK bytes (default 1 MiB) that end at a
 *       newline, draining the answers after each write into OUTPUT; prints
 *       "rows seconds rows_per_s answers errors"
 *   predict_bench batch-raw PREDICT INPUT OUTPUT [CHUNK]
 *       the same with writes of exactly CHUNK bytes, rows cut anywhere;
 *       answers and error answers are counted, not checked
 *
 * Every latency answer is checked: it must end with a newline and must
 * not start with "error"; the program exits 1 on the first bad one.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void die(const char *what, const char *path)
{
	fprintf(stderr, "predict_bench: %s %s: %s\n", what, path,
		strerror(errno));
	exit(1);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void report(double *lat, long n)
{
	double sum = 0;
	long i99 = (long)(0.99 * (double)n);

	for (long i = 0; i < n; i++)
		sum += lat[i];
	qsort(lat, (size_t)n, sizeof(*lat), cmp_double);
	if (i99 >= n)
		i99 = n - 1;
	printf("%.2f %.2f %.2f\n", lat[n / 2] / 1e3, lat[i99] / 1e3,
	       sum / (double)n / 1e3);
}

static char *slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	char *buf;
	long n;

	if (!fp)
		die("cannot open", path);
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	rewind(fp);
	buf = malloc((size_t)n + 1);
	if (!buf || fread(buf, 1, (size_t)n, fp) != (size_t)n)
		die("cannot read", path);
	fclose(fp);
	buf[n] = '\0';
	*len = (size_t)n;
	return buf;
}

static void write_all(int fd, const char *buf, size_t len, const char *path)
{
	while (len) {
		ssize_t w = write(fd, buf, len);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			die("write", path);
		}
		buf += w;
		len -= (size_t)w;
	}
}

/* Read one answer line (the row's) on fd; returns its length. */
static size_t read_answer(int fd, char *buf, size_t cap, const char *path)
{
	size_t got = 0;

	for (;;) {
		ssize_t r = read(fd, buf + got, cap - got);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			die("read", path);
		}
		if (r == 0)
			break;
		got += (size_t)r;
		if (buf[got - 1] == '\n' || got == cap)
			break;
	}
	if (got == 0 || buf[got - 1] != '\n' || strncmp(buf, "error", 5) == 0) {
		fprintf(stderr, "predict_bench: bad answer from %s: %.*s\n",
			path, (int)got, buf);
		exit(1);
	}
	return got;
}

static int lat_read(const char *path, long n)
{
	double *lat = malloc((size_t)n * sizeof(*lat));
	char buf[4096];
	long warm = n / 10;

	for (long i = -warm; i < n; i++) {
		double t0 = now_ns();
		int fd = open(path, O_RDONLY);

		if (fd < 0)
			die("open", path);
		if (read(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
			die("short read of", path);
		close(fd);
		if (i >= 0)
			lat[i] = now_ns() - t0;
	}
	report(lat, n);
	free(lat);
	return 0;
}

static int lat_predict(const char *path, const char *rowfile, long n,
		       int reopen)
{
	double *lat = malloc((size_t)n * sizeof(*lat));
	char ans[65536];
	size_t rowlen;
	char *row = slurp(rowfile, &rowlen);
	long warm = n / 10;
	int fd = -1;

	if (!reopen) {
		fd = open(path, O_RDWR);
		if (fd < 0)
			die("open", path);
	}
	for (long i = -warm; i < n; i++) {
		double t0 = now_ns();

		if (reopen) {
			fd = open(path, O_RDWR);
			if (fd < 0)
				die("open", path);
		}
		write_all(fd, row, rowlen, path);
		read_answer(fd, ans, sizeof(ans), path);
		if (reopen && close(fd) < 0)
			die("close", path);
		if (i >= 0)
			lat[i] = now_ns() - t0;
	}
	if (!reopen)
		close(fd);
	report(lat, n);
	free(lat);
	free(row);
	return 0;
}

/* Read every pending answer; counts lines and lines that are errors. */
static void drain(int pfd, int ofd, char *buf, size_t cap, const char *path,
		  const char *out, long *lines, long *errors, int *bol)
{
	for (;;) {
		ssize_t r = read(pfd, buf, cap);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			die("read", path);
		}
		if (r == 0)
			return;
		for (ssize_t i = 0; i < r; i++) {
			if (*bol && buf[i] == 'e' && i + 5 <= r &&
			    memcmp(buf + i, "error", 5) == 0)
				(*errors)++;
			*bol = buf[i] == '\n';
			if (*bol)
				(*lines)++;
		}
		write_all(ofd, buf, (size_t)r, out);
	}
}

/*
 * Aligned (the default): each write ends at a newline (the rest of the
 * chunk goes with the next one), because a read scores a pending partial
 * row as if it were complete.  Raw: exact CHUNK-byte writes, whatever the
 * rows; answers and errors are counted, not checked.
 */
static int batch(const char *path, const char *input, const char *output,
		 size_t chunk, int raw)
{
	char *in = malloc(chunk), *ans = malloc(1 << 20);
	long lines = 0, rows = 0, errors = 0;
	size_t have = 0;
	int ifd, pfd, ofd, bol = 1;
	double t0, t1;

	if (!in || !ans)
		die("out of memory for", input);
	t0 = now_ns();
	ifd = open(input, O_RDONLY);
	if (ifd < 0)
		die("open", input);
	pfd = open(path, O_RDWR);
	if (pfd < 0)
		die("open", path);
	ofd = open(output, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (ofd < 0)
		die("open", output);
	for (;;) {
		ssize_t r = read(ifd, in + have, chunk - have);
		size_t len, send;

		if (r < 0) {
			if (errno == EINTR)
				continue;
			die("read", input);
		}
		len = have + (size_t)r;
		if (len == 0)
			break;
		for (char *p = in + have; (p = memchr(p, '\n', (size_t)(in + len - p)));
		     p++)
			rows++;
		send = len;
		if (!raw && r > 0) {
			char *nl = memrchr(in, '\n', len);

			send = nl ? (size_t)(nl - in) + 1 : 0;
			if (send == 0 && len == chunk) {
				fprintf(stderr, "predict_bench: a row longer than %zu bytes\n",
					chunk);
				return 1;
			}
		}
		if (send)
			write_all(pfd, in, send, path);
		have = len - send;
		memmove(in, in + send, have);
		drain(pfd, ofd, ans, 1 << 20, path, output, &lines, &errors, &bol);
		if (r == 0)
			break;
	}
	drain(pfd, ofd, ans, 1 << 20, path, output, &lines, &errors, &bol);
	if (close(pfd) < 0)
		die("close", path);
	close(ifd);
	if (close(ofd) < 0)
		die("close", output);
	t1 = now_ns();
	rows -= 1; /* the header */
	printf("%ld %.3f %.0f %ld %ld\n", rows, (t1 - t0) / 1e9,
	       (double)rows / ((t1 - t0) / 1e9), lines, errors);
	if (!raw && (lines != rows || errors)) {
		fprintf(stderr, "predict_bench: %ld rows in, %ld answers out, "
				"%ld errors\n", rows, lines, errors);
		return 1;
	}
	free(in);
	free(ans);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "read") == 0)
		return lat_read(argv[2], atol(argv[3]));
	if (argc == 5 && strcmp(argv[1], "open") == 0)
		return lat_predict(argv[2], argv[3], atol(argv[4]), 1);
	if (argc == 5 && strcmp(argv[1], "handle") == 0)
		return lat_predict(argv[2], argv[3], atol(argv[4]), 0);
	if ((argc == 5 || argc == 6) && strcmp(argv[1], "batch") == 0)
		return batch(argv[2], argv[3], argv[4],
			     argc == 6 ? (size_t)atol(argv[5]) : (size_t)1 << 20, 0);
	if ((argc == 5 || argc == 6) && strcmp(argv[1], "batch-raw") == 0)
		return batch(argv[2], argv[3], argv[4],
			     argc == 6 ? (size_t)atol(argv[5]) : (size_t)1 << 20, 1);
	fprintf(stderr, "usage: predict_bench read FILE N | open PREDICT ROWFILE N"
			" | handle PREDICT ROWFILE N"
			" | batch|batch-raw PREDICT INPUT OUTPUT [CHUNK]\n");
	return 2;
}

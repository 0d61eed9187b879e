/* SPDX-License-Identifier: MIT */
/*
 * handle.h: what the C clients that drive a predict handle share
 * (serve_bench.c, monitor/pair_bench.c): the clock, latency figures,
 * reading a file, writing all of a buffer, reading one answer line and
 * judging it.  Static functions, included by each client, which first
 * defines BENCH_PROG, its name (for die).
 */
#ifndef MLFS_BENCH_HANDLE_H
#define MLFS_BENCH_HANDLE_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const bench_prog = BENCH_PROG;

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void die(const char *what, const char *path)
{
	fprintf(stderr, "%s: %s %s: %s\n", bench_prog, what, path,
		strerror(errno));
	exit(1);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Sorts lat; prints "p50_us p99_us mean_us" (no newline). */
static void report(double *lat, long n)
{
	double sum = 0;
	long i99 = (long)(0.99 * (double)n);

	if (n == 0) {
		printf("nan nan nan");
		return;
	}
	for (long i = 0; i < n; i++)
		sum += lat[i];
	qsort(lat, (size_t)n, sizeof(*lat), cmp_double);
	if (i99 >= n)
		i99 = n - 1;
	printf("%.2f %.2f %.2f", lat[n / 2] / 1e3, lat[i99] / 1e3,
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

/* 0, or -errno */
static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t w = write(fd, buf, len);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += w;
		len -= (size_t)w;
	}
	return 0;
}

/* One answer line into buf: its length, or -errno of a failed read. */
static ssize_t read_line(int fd, char *buf, size_t cap)
{
	size_t got = 0;

	for (;;) {
		ssize_t r = read(fd, buf + got, cap - got);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			break;
		got += (size_t)r;
		if (buf[got - 1] == '\n' || got == cap)
			break;
	}
	return (ssize_t)got;
}

static int answer_is_good(const char *buf, size_t len, const char *prefix)
{
	size_t pl = strlen(prefix);

	return len > 0 && buf[len - 1] == '\n' &&
	       strncmp(buf, "error", 5) != 0 &&
	       (pl == 0 || (len >= pl && memcmp(buf, prefix, pl) == 0));
}

#endif

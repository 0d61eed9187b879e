/* SPDX-License-Identifier: MIT */
/*
 * csv_bench: time csv_scan() (validation, schema, stats and the float
 * matrix, in one pass) on a file, and, for comparison, a plain tokenizer
 * that converts each field with strtod() on a NUL-terminated copy or with
 * csv_parse_double() in place.  Prints one line per run:
 *
 *   scan: 500.0 MB in 0.800 s = 625.0 MB/s
 *
 * The time covers open(), mmap() and the parse: what a caller pays for
 * a file in the page cache.  MB is 10^6 bytes.
 *
 * Modes: scan (the default; on as many threads as csv_scan() takes),
 * scan1 (the same in one pass: csv_scan_split() in 1 part), stats
 * (csv_scan() without the matrix), stats1 (that in one pass),
 * strtod and fast (the tokenizer), and feed: csv_feed() on the file in
 * FEED_CHUNK pieces, as the daemon checks a cp into data.csv; its time
 * is the CPU time of the csv_feed() calls alone (what the daemon pays,
 * and steadier than the clock on a busy machine).
 *
 * usage: csv_bench FILE [scan|scan1|stats|stats1|strtod|fast|feed]
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "csv.h"

/* Bytes per csv_feed() call in feed mode: a FUSE write with big_writes. */
#define FEED_CHUNK ((size_t)128 << 10)

static double clock_s(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double now(void)
{
	return clock_s(CLOCK_MONOTONIC);
}

/*
 * The comparison tokenizer: no quotes, one row per line, each field
 * converted and summed (so that the conversion cannot be left out).
 * Returns the number of values.
 */
static long tokenize(const char *p, const char *end, int use_strtod,
		     double *sum)
{
	long n = 0;
	char buf[64];

	p = memchr(p, '\n', (size_t)(end - p)); /* skip the header */
	p = p ? p + 1 : end;
	*sum = 0;
	while (p < end) {
		const char *f = p;
		double v;

		while (p < end && *p != ',' && *p != '\n')
			p++;
		if (use_strtod) {
			size_t len = (size_t)(p - f);

			if (len >= sizeof(buf))
				len = sizeof(buf) - 1;
			memcpy(buf, f, len);
			buf[len] = '\0';
			v = strtod(buf, NULL);
		} else if (!csv_parse_double(f, (size_t)(p - f), &v)) {
			v = NAN;
		}
		*sum += v;
		n++;
		p++;
	}
	return n;
}

/* csv_feed() over data[0..len) in FEED_CHUNK pieces: 0 or its error. */
static int feed(const char *data, size_t len, struct problem *pb)
{
	struct csv_feed c = { 0 };
	int rc = 0;

	for (size_t at = 0; at < len && rc == 0; at += FEED_CHUNK)
		rc = csv_feed(&c, data + at,
			      len - at < FEED_CHUNK ? len - at : FEED_CHUNK, pb);
	return rc;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 2 ? argv[2] : "scan";
	struct csv_matrix mat;
	struct csv_info *info = NULL;
	struct problem pb = { 0 };
	struct stat st;
	double t0, t1 = 0;
	double sum = 0;
	long n = 0;
	char *data;
	int fd;
	int rc;

	if (argc < 2) {
		fprintf(stderr, "usage: csv_bench FILE "
				"[scan|scan1|stats|stats1|strtod|fast|feed]\n");
		return 2;
	}
	t0 = now();
	fd = open(argv[1], O_RDONLY);
	if (fd < 0 || fstat(fd, &st) < 0 || st.st_size == 0) {
		perror(argv[1]);
		return 1;
	}
	/* One populate call instead of a page fault per 64 KiB. */
	data = mmap(NULL, (size_t)st.st_size, PROT_READ,
		    MAP_PRIVATE | MAP_POPULATE, fd, 0);
	if (data == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	if (!strncmp(mode, "scan", 4) || !strncmp(mode, "stats", 5)) {
		/* scan1, stats1: one pass, on one thread (csv_scan() splits) */
		rc = csv_scan_split(data, (size_t)st.st_size, NULL, &info,
				    strncmp(mode, "stats", 5) ? &mat : NULL,
				    &pb, mode[strlen(mode) - 1] == '1' ? 1 : 0);
		if (rc < 0) {
			fprintf(stderr, "%s:%u:%u: %s (%s)\n", argv[1], pb.line,
				pb.col, pb.msg, strerror(-rc));
			return 1;
		}
	} else if (!strcmp(mode, "feed")) {
		t0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
		rc = feed(data, (size_t)st.st_size, &pb);
		t1 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
		if (rc < 0) {
			fprintf(stderr, "%s:%u:%u: %s (%s)\n", argv[1], pb.line,
				pb.col, pb.msg, strerror(-rc));
			return 1;
		}
	} else {
		n = tokenize(data, data + st.st_size, !strcmp(mode, "strtod"),
			     &sum);
	}
	if (strcmp(mode, "feed"))
		t1 = now();
	printf("%s: %.1f MB in %.3f s = %.1f MB/s\n", mode,
	       (double)st.st_size / 1e6, t1 - t0,
	       (double)st.st_size / 1e6 / (t1 - t0));
	if (info)
		fprintf(stderr, "rows %llu cols %zu; col 0: %s mean %g std %g "
			"distinct %llu%s\n", (unsigned long long)info->nrows,
			info->ncols, csv_type_name(info->cols[0].type),
			info->cols[0].mean, info->cols[0].std,
			(unsigned long long)info->cols[0].distinct,
			info->cols[0].distinct_estimated ? " (estimated)" : "");
	else
		fprintf(stderr, "values %ld sum %g\n", n, sum);
	csv_info_free(info);
	if (!strcmp(mode, "scan"))
		free(mat.data);
	munmap(data, (size_t)st.st_size);
	close(fd);
	return 0;
}

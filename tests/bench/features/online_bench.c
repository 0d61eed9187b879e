/* SPDX-License-Identifier: MIT */
/*
 * online_bench.c: the C client of bench_online.sh, so that every side of
 * each comparison pays the same (small) client overhead.
 *
 *   online_bench ingest CSV EVENTS [CHUNK]
 *       CSV (a header line, then one event a line), read into memory
 *       first, written through one open handle of EVENTS in writes of up
 *       to CHUNK bytes (default 1 MiB) that end at a newline, the header
 *       at the start of the first; prints "events seconds events_per_s
 *       writes"; on stderr, the rate of each tenth of the stream
 *   online_bench file FILE N
 *       open(O_RDONLY) + read 4 KiB + close of FILE, N times (after N/10
 *       warm-up iterations); prints "p50_us p99_us mean_us"
 *   online_bench read DIR KEYS N [SEED]
 *       open(O_RDONLY) + read(4 KiB) + close of DIR/<key> for N keys drawn
 *       at random from KEYS (one a line), after N/10 warm-up ones; the
 *       answer must end with a newline; prints "p50_us p99_us mean_us"
 *   online_bench redis-load HOST PORT DIR KEYS [COPY]
 *       SET <key> <the whole content of DIR/<key>> in Redis for every key
 *       (pipelined), and write it to COPY/<key> too if given (the files
 *       passthrough_ll serves); prints "keys bytes seconds"
 *   online_bench redis HOST PORT KEYS N [SEED]
 *       GET <key> for N keys drawn as by read (the same sequence for the
 *       same SEED), after N/10 warm-up ones; the answer must be a string
 *       ending with a newline; prints "p50_us p99_us mean_us"
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#define ANSWER_MAX 4096

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void die(const char *what, const char *path)
{
	fprintf(stderr, "online_bench: %s %s: %s\n", what, path,
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

/* The whole of path; reads of cap bytes first (doubled as it fills). */
static char *slurp(const char *path, size_t cap, size_t *len)
{
	int fd = open(path, O_RDONLY);
	size_t got = 0;
	char *buf = malloc(cap + 1);

	if (fd < 0)
		die("cannot open", path);
	if (!buf)
		die("out of memory reading", path);
	for (;;) {
		ssize_t r;

		if (got == cap) {
			cap *= 2;
			buf = realloc(buf, cap + 1);
			if (!buf)
				die("out of memory reading", path);
		}
		r = read(fd, buf + got, cap - got);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			die("cannot read", path);
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	buf[got] = '\0';
	*len = got;
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

static long count_lines(const char *p, const char *end)
{
	long n = 0;

	while ((p = memchr(p, '\n', (size_t)(end - p)))) {
		n++;
		p++;
	}
	return n;
}

static int ingest(const char *csv, const char *path, size_t chunk)
{
	size_t len;
	char *buf = slurp(csv, (size_t)1 << 20, &len);
	const char *p = buf, *end = buf + len;
	long events = count_lines(buf, end) - 1, writes = 0, done = 0;
	long next = events / 10, tenth = 1, prev = 0;
	double t0, t1, tp;
	int fd;

	t0 = now_ns();
	tp = t0;
	fd = open(path, O_WRONLY | O_APPEND);
	if (fd < 0)
		die("open", path);
	while (p < end) {
		size_t n = (size_t)(end - p) < chunk ? (size_t)(end - p) : chunk;
		const char *nl = memrchr(p, '\n', n);

		if (n < (size_t)(end - p)) {
			if (!nl) {
				fprintf(stderr, "online_bench: a row longer "
						"than %zu bytes\n", chunk);
				return 1;
			}
			n = (size_t)(nl - p) + 1;
		}
		write_all(fd, p, n, path);
		writes++;
		done += count_lines(p, p + n);
		p += n;
		if (next > 0 && done - 1 >= next * tenth && tenth < 10) {
			double t = now_ns();

			fprintf(stderr, "online_bench: %ld0%%: %ld events, "
					"%.1f s, %.0f events/s in this tenth\n",
				tenth, done - 1, (t - t0) / 1e9,
				(double)(done - 1 - prev) / ((t - tp) / 1e9));
			tp = t;
			prev = done - 1;
			while (done - 1 >= next * tenth && tenth < 10)
				tenth++;
		}
	}
	if (close(fd) < 0)
		die("close", path);
	t1 = now_ns();
	if (next > 0 && done - 1 > prev)
		fprintf(stderr, "online_bench: 100%%: %ld events, %.1f s, "
				"%.0f events/s in this tenth (to the close)\n",
			done - 1, (t1 - t0) / 1e9,
			(double)(done - 1 - prev) / ((t1 - tp) / 1e9));
	printf("%ld %.3f %.0f %ld\n", events, (t1 - t0) / 1e9,
	       (double)events / ((t1 - t0) / 1e9), writes);
	free(buf);
	return 0;
}

static int lat_file(const char *path, long n)
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

struct keys {
	char **k;
	size_t *len;
	size_t n;
};

static void keys_load(const char *path, struct keys *ks)
{
	size_t len, cap = 1024;
	char *buf = slurp(path, (size_t)1 << 20, &len), *p = buf;
	char *end = buf + len;

	ks->k = malloc(cap * sizeof(*ks->k));
	ks->len = malloc(cap * sizeof(*ks->len));
	ks->n = 0;
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));

		if (!nl)
			nl = end;
		*nl = '\0';
		if (nl > p) {
			if (ks->n == cap) {
				cap *= 2;
				ks->k = realloc(ks->k, cap * sizeof(*ks->k));
				ks->len = realloc(ks->len,
						  cap * sizeof(*ks->len));
			}
			if (!ks->k || !ks->len)
				die("out of memory reading", path);
			ks->k[ks->n] = p;
			ks->len[ks->n] = (size_t)(nl - p);
			ks->n++;
		}
		p = nl + 1;
	}
	if (!ks->n) {
		fprintf(stderr, "online_bench: no keys in %s\n", path);
		exit(1);
	}
}

/* xorshift64*: the same key sequence for every side given the seed */
static size_t draw(uint64_t *s, size_t n)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return (size_t)((*s * 2685821657736338717ULL) >> 11) % n;
}

static int lat_read(const char *dir, const char *keyfile, long n,
		    uint64_t seed)
{
	double *lat = malloc((size_t)n * sizeof(*lat));
	char buf[ANSWER_MAX], path[4096];
	long warm = n / 10;
	struct keys ks;
	uint64_t s = seed * 0x9E3779B97F4A7C15ULL + 1;

	keys_load(keyfile, &ks);
	for (long i = -warm; i < n; i++) {
		size_t k = draw(&s, ks.n);
		double t0;
		ssize_t r;
		int fd;

		snprintf(path, sizeof(path), "%s/%s", dir, ks.k[k]);
		t0 = now_ns();
		fd = open(path, O_RDONLY);
		if (fd < 0)
			die("open", path);
		r = read(fd, buf, sizeof(buf));
		if (r <= 0 || buf[r - 1] != '\n')
			die("bad or short read of", path);
		close(fd);
		if (i >= 0)
			lat[i] = now_ns() - t0;
	}
	report(lat, n);
	free(lat);
	return 0;
}

static redisContext *redis_open(const char *host, const char *port)
{
	redisContext *c = redisConnect(host, atoi(port));

	if (!c || c->err) {
		fprintf(stderr, "online_bench: redis %s:%s: %s\n", host, port,
			c ? c->errstr : "cannot connect");
		exit(1);
	}
	return c;
}

static void redis_check(redisContext *c, redisReply *r, const char *what)
{
	if (!r || r->type == REDIS_REPLY_ERROR) {
		fprintf(stderr, "online_bench: redis %s: %s\n", what,
			r ? r->str : c->errstr);
		exit(1);
	}
}

static int redis_load(const char *host, const char *port, const char *dir,
		      const char *keyfile, const char *copy)
{
	redisContext *c = redis_open(host, port);
	char path[4096];
	struct keys ks;
	size_t bytes = 0, pending = 0;
	double t0 = now_ns();

	keys_load(keyfile, &ks);
	for (size_t i = 0; i < ks.n; i++) {
		size_t len;
		char *val;

		snprintf(path, sizeof(path), "%s/%s", dir, ks.k[i]);
		val = slurp(path, ANSWER_MAX, &len);
		if (!len || val[len - 1] != '\n') {
			fprintf(stderr, "online_bench: %s: no answer\n", path);
			return 1;
		}
		if (copy) {
			int fd;

			snprintf(path, sizeof(path), "%s/%s", copy, ks.k[i]);
			fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
			if (fd < 0)
				die("cannot create", path);
			write_all(fd, val, len, path);
			if (close(fd) < 0)
				die("close", path);
		}
		redisAppendCommand(c, "SET %b %b", ks.k[i], ks.len[i], val,
				   len);
		free(val);
		bytes += len;
		if (++pending == 1000 || i + 1 == ks.n) {
			while (pending) {
				redisReply *r;

				if (redisGetReply(c, (void **)&r) != REDIS_OK)
					r = NULL;
				redis_check(c, r, "SET");
				freeReplyObject(r);
				pending--;
			}
		}
	}
	printf("%zu %zu %.3f\n", ks.n, bytes, (now_ns() - t0) / 1e9);
	redisFree(c);
	return 0;
}

static int lat_redis(const char *host, const char *port, const char *keyfile,
		     long n, uint64_t seed)
{
	double *lat = malloc((size_t)n * sizeof(*lat));
	redisContext *c = redis_open(host, port);
	long warm = n / 10;
	struct keys ks;
	uint64_t s = seed * 0x9E3779B97F4A7C15ULL + 1;

	keys_load(keyfile, &ks);
	for (long i = -warm; i < n; i++) {
		size_t k = draw(&s, ks.n);
		double t0 = now_ns();
		redisReply *r = redisCommand(c, "GET %b", ks.k[k], ks.len[k]);

		redis_check(c, r, "GET");
		if (r->type != REDIS_REPLY_STRING || !r->len ||
		    r->str[r->len - 1] != '\n') {
			fprintf(stderr, "online_bench: redis GET %s: no "
					"vector\n", ks.k[k]);
			return 1;
		}
		freeReplyObject(r);
		if (i >= 0)
			lat[i] = now_ns() - t0;
	}
	report(lat, n);
	redisFree(c);
	free(lat);
	return 0;
}

int main(int argc, char **argv)
{
	if ((argc == 4 || argc == 5) && strcmp(argv[1], "ingest") == 0)
		return ingest(argv[2], argv[3],
			      argc == 5 ? (size_t)atol(argv[4]) : (size_t)1 << 20);
	if (argc == 4 && strcmp(argv[1], "file") == 0)
		return lat_file(argv[2], atol(argv[3]));
	if ((argc == 5 || argc == 6) && strcmp(argv[1], "read") == 0)
		return lat_read(argv[2], argv[3], atol(argv[4]),
				argc == 6 ? strtoull(argv[5], NULL, 10) : 1);
	if ((argc == 6 || argc == 7) && strcmp(argv[1], "redis-load") == 0)
		return redis_load(argv[2], argv[3], argv[4], argv[5],
				  argc == 7 ? argv[6] : NULL);
	if ((argc == 6 || argc == 7) && strcmp(argv[1], "redis") == 0)
		return lat_redis(argv[2], argv[3], argv[4], atol(argv[5]),
				 argc == 7 ? strtoull(argv[6], NULL, 10) : 1);
	fprintf(stderr, "usage: online_bench ingest CSV EVENTS [CHUNK]"
			" | file FILE N | read DIR KEYS N [SEED]"
			" | redis-load HOST PORT DIR KEYS [COPY]"
			" | redis HOST PORT KEYS N [SEED]\n");
	return 2;
}

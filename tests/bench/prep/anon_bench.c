/* SPDX-License-Identifier: MIT */
/*
 * anon_bench.c: anon_hmac of fs/base/anonkey.c, the anonymize prep step's
 * per-value HMAC-SHA-256, timed on its own on one thread.  Build it with
 * the anonkey.c to time (the tree's, or an older one for a before/after):
 *
 *   gcc -O2 -I fs/base -I build-release -o anon_bench \
 *       tests/bench/prep/anon_bench.c fs/base/anonkey.c -lcrypto
 *   taskset -c 1 ./anon_bench [VALUES [RUNS]]
 *
 * VALUES e-mail-like values (default 1,000,000) of 12 to 40 bytes, made
 * here from a fixed seed, are hashed RUNS times (default 7); then the same
 * for values of exactly 7, 26, 55, 56 and 64 bytes.  Prints, per set,
 * "name median_ns min_ns max_ns" a value.  A checksum of the digests is
 * printed too, so that two builds can be seen to agree.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "anonkey.h"

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint64_t splitmix64(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15u);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* values: n strings of 64 bytes' room each, lens[i] bytes long */
static void run(const char *name, const struct anon_hmac *h,
		const char *values, const unsigned char *lens, size_t n,
		int runs, uint64_t *sum)
{
	double *t = calloc((size_t)runs, sizeof(*t));
	unsigned char out[32];

	for (int r = 0; r < runs; r++) {
		double t0 = now_ns();

		for (size_t i = 0; i < n; i++) {
			if (anon_hmac(h, values + 64 * i, lens[i], out) < 0) {
				fprintf(stderr, "anon_hmac failed\n");
				exit(1);
			}
			if (r == 0) {
				uint64_t w;

				memcpy(&w, out, sizeof(w));
				*sum = (*sum ^ w) * 0x100000001b3u;
			}
		}
		t[r] = (now_ns() - t0) / (double)n;
	}
	qsort(t, (size_t)runs, sizeof(*t), cmp_double);
	printf("%-8s %7.1f %7.1f %7.1f\n", name, t[runs / 2], t[0],
	       t[runs - 1]);
	free(t);
}

int main(int argc, char **argv)
{
	static const char alnum[] = "abcdefghijklmnopqrstuvwxyz0123456789.";
	static const char *domains[] = { "@example.org", "@mail.com",
					 "@uni-heidelberg.de", "@x.io" };
	static const unsigned char fixed[] = { 7, 26, 55, 56, 64 };
	size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
	int runs = argc > 2 ? atoi(argv[2]) : 7;
	unsigned char key[ANON_KEY_LEN];
	char *values = malloc(64 * n);
	unsigned char *lens = malloc(n);
	struct anon_hmac *h;
	uint64_t sum = 0xcbf29ce484222325u;

	if (!values || !lens || n == 0 || runs < 1)
		return 1;
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (unsigned char)splitmix64();
	h = anon_hmac_new(key);
	if (!h)
		return 1;
	for (size_t i = 0; i < n; i++) {
		char *v = values + 64 * i;
		const char *d = domains[splitmix64() % 4];
		size_t user = 4 + splitmix64() % 18;

		for (size_t j = 0; j < user; j++)
			v[j] = alnum[splitmix64() % (sizeof(alnum) - 1)];
		memcpy(v + user, d, strlen(d));
		lens[i] = (unsigned char)(user + strlen(d));
	}
	run("email", h, values, lens, n, runs, &sum);
	for (size_t f = 0; f < sizeof(fixed); f++) {
		char name[16];

		for (size_t i = 0; i < n; i++) {
			memset(values + 64 * i, 'a' + (int)(i % 26), 64);
			lens[i] = fixed[f];
		}
		snprintf(name, sizeof(name), "len%u", fixed[f]);
		run(name, h, values, lens, n / 4 ? n / 4 : 1, runs, &sum);
	}
	printf("checksum %016llx\n", (unsigned long long)sum);
	anon_hmac_free(h);
	free(lens);
	free(values);
	return 0;
}

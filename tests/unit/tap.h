/* SPDX-License-Identifier: MIT */
/*
 * A tiny TAP producer for the unit tests: plan, ok, is_int, is_str, skip,
 * skip_all, done.  A failure prints file:line, the expression and, for
 * is_int on a negative errno, its strerror.  Single-threaded use.
 */
#ifndef MLFS_TESTS_TAP_H
#define MLFS_TESTS_TAP_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_n, tap_failed, tap_planned;

static inline void plan(int n)
{
	tap_planned = n;
	printf("1..%d\n", n);
}

static inline int tap_ok(int cond, const char *file, int line,
			 const char *expr, const char *name)
{
	tap_n++;
	printf("%sok %d - %s\n", cond ? "" : "not ", tap_n, name ? name : expr);
	if (!cond) {
		tap_failed++;
		printf("#   failed at %s:%d: %s\n", file, line, expr);
	}
	return cond;
}

#define ok(cond, name) tap_ok(!!(cond), __FILE__, __LINE__, #cond, name)

#define is_int(got, want, name)                                              \
	do {                                                                 \
		long long g_ = (long long)(got), w_ = (long long)(want);     \
		if (!tap_ok(g_ == w_, __FILE__, __LINE__, #got " == " #want, \
			    name))                                           \
			printf("#   got %lld (%s), want %lld\n", g_,         \
			       g_ < 0 ? strerror((int)-g_) : "", w_);        \
	} while (0)

#define is_str(got, want, name)                                              \
	do {                                                                 \
		const char *g_ = (got), *w_ = (want);                        \
		int c_ = g_ && w_ && strcmp(g_, w_) == 0;                    \
		if (!tap_ok(c_, __FILE__, __LINE__, #got " eq " #want,      \
			    name))                                           \
			printf("#   got \"%s\", want \"%s\"\n",              \
			       g_ ? g_ : "(null)", w_ ? w_ : "(null)");      \
	} while (0)

static inline void skip(const char *why)
{
	tap_n++;
	printf("ok %d # skip %s\n", tap_n, why);
}

/*
 * skip_all: the whole program cannot run on this host; returns the exit
 * status for main().  meson 1.0's TAP runner counts any non-zero status
 * (77 included) as an error, so the skip is the TAP plan "1..0 # SKIP why"
 * with status 0, which meson reports as SKIP and tests/tally.py counts as
 * one skip (a failure unless tests/skips.allow lists it).
 */
static inline int skip_all(const char *why)
{
	printf("1..0 # SKIP %s\n", why);
	return 0;
}

/* done: exit status for main(): 0 if all passed and the plan was met. */
static inline int done(void)
{
	if (!tap_planned)
		printf("1..%d\n", tap_n);
	else if (tap_planned != tap_n)
		printf("# planned %d, ran %d\n", tap_planned, tap_n);
	return tap_failed || (tap_planned && tap_planned != tap_n) ? 1 : 0;
}

#endif

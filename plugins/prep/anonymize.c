/* SPDX-License-Identifier: MIT */
/*
 * anonymize: the "anonymize" prep plugin rewrites or removes the columns
 * that identify people.  Each param names a column and gives its method
 * ({"email": "hash", "zip": "truncate:3"}); "default" gives a method for
 * every column with the pii role that no param names:
 *
 * - hash: the lowercase hex of the host's anon_hash (HMAC-SHA-256 under
 *   the job owner's key) of the cell as the CSV has it.  The plugin never
 *   sees the key; a mount without one (-ENOKEY), or a host older than ABI
 *   1.3, fails the step rather than leave the column readable.
 * - drop: the column goes.
 * - mask: every character but the last 4 becomes '*' (one '*' a
 *   character: UTF-8 is counted in code points, not bytes); a value of 4
 *   characters or fewer is left as it is.
 * - truncate:N: the first N characters (code points).
 * - month, year: a time column's ISO 8601 values ("2024-03-17",
 *   "2024-03-17T10:00:00Z") cut to "YYYY-MM" or "YYYY".
 * - bucket:W: a numeric column's values become the lower bound of their
 *   W-wide bucket, floor(x / W) x W, allowing for binary fractions as
 *   balance does (a quotient a hair under a whole number counts as it).
 *
 * Missing values stay missing.  A value a method cannot read (a time that
 * is not ISO 8601, a number column's text that is not a number) fails the
 * step, naming the column and row but not the value: leaving it as it is
 * would publish it, and the message goes to the job's log.  hash, mask and
 * truncate make numeric and time columns categorical (their values are
 * no longer numbers or times); hash makes text columns categorical too.
 *
 * "k_anonymity" names columns (comma-separated: the ABI has no list of
 * strings) and "k" a count: after the methods, every combination of those
 * columns' values (as the CSV will have them) must occur in at least k
 * rows, or the step fails naming the smallest group.  So "default", "k"
 * and "k_anonymity" cannot name a column.
 *
 * Nothing random: the seed is not used.  No state; check and run may be
 * called from any thread.  Without k-anonymity each row is its own
 * (by_rows): the job may run the step on parts of the table at once.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "mlfs_plugin.h"
#include "mlfs_plugin_util.h"
#include "prep_i.h"

#define ANON_TRUNCATE_MAX 1000000
#define ANON_K_MAX 1000000
#define ANON_HEX_LEN 65 /* 32 bytes in hex, and the NUL */
#define ANON_MASK_KEEP 4

enum anon_method {
	ANON_NONE,
	ANON_HASH,
	ANON_DROP,
	ANON_MASK,
	ANON_TRUNCATE,
	ANON_MONTH,
	ANON_YEAR,
	ANON_BUCKET,
};

/* One column's method (or "default"'s). */
struct anon_rule {
	const char *column; /* borrowed: the param's name */
	const char *text;   /* borrowed: the method as given */
	int method;	    /* enum anon_method */
	size_t n;	    /* truncate: characters kept */
	double width;	    /* bucket */
};

struct anon {
	struct anon_rule *rule; /* [nrule], malloc'd: the columns named */
	size_t nrule;
	struct anon_rule dflt;	/* method ANON_NONE: no "default" */
	const char *kcols;	/* borrowed; NULL: no k-anonymity */
	long k;
};

static const char *const anon_names[] = {
	[ANON_HASH] = "hash", [ANON_DROP] = "drop",   [ANON_MASK] = "mask",
	[ANON_MONTH] = "month", [ANON_YEAR] = "year",
};

#define ANON_METHODS                                                  \
	"\"hash\", \"drop\", \"mask\", \"truncate:N\", \"month\", \"year\" " \
	"or \"bucket:W\""

static const struct mlfs_param_spec anon_k_spec =
	MLFS_PARAM_INT("k", struct anon, k, 0, 2, ANON_K_MAX);

static void anon_free(struct anon *a)
{
	free(a->rule);
}

/* "truncate:N": N a whole number in range, nothing else; 0 if not. */
static size_t anon_parse_count(const char *s)
{
	size_t n = 0;

	if (!*s)
		return 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return 0;
		n = n * 10 + (size_t)(*s - '0');
		if (n > ANON_TRUNCATE_MAX)
			return 0;
	}
	return n;
}

/* "bucket:W": W a finite number > 0, all of it; NaN if not. */
static double anon_parse_width(const char *s)
{
	char *end;
	double w;

	if (!*s || *s == ' ' || *s == '\t')
		return NAN;
	w = strtod(s, &end);
	if (*end || !isfinite(w) || w <= 0)
		return NAN;
	return w;
}

/* p's value as a method into r; -EINVAL naming p if it is none. */
static int anon_parse_method(const struct mlfs_param *p, struct anon_rule *r,
			     char *msg, size_t msglen)
{
	const char *s = p->string;

	memset(r, 0, sizeof(*r));
	r->column = p->name;
	if (p->type != MLFS_PARAM_STRING || !s)
		return mlfs_err(msg, msglen, "\"%s\": must be %s, got %s",
				p->name, ANON_METHODS,
				mlfs_param_type_name(p->type));
	r->text = s;
	for (size_t m = 0; m < sizeof(anon_names) / sizeof(anon_names[0]);
	     m++) {
		if (anon_names[m] && strcmp(s, anon_names[m]) == 0) {
			r->method = (int)m;
			return 0;
		}
	}
	if (strncmp(s, "truncate:", 9) == 0) {
		r->method = ANON_TRUNCATE;
		r->n = anon_parse_count(s + 9);
		if (!r->n)
			return mlfs_err(msg, msglen,
					"\"%s\": must be \"truncate:N\" with N a whole number from 1 to %d, got \"%s\"",
					p->name, ANON_TRUNCATE_MAX, s);
		return 0;
	}
	if (strncmp(s, "bucket:", 7) == 0) {
		r->method = ANON_BUCKET;
		r->width = anon_parse_width(s + 7);
		if (isnan(r->width))
			return mlfs_err(msg, msglen,
					"\"%s\": must be \"bucket:W\" with W a number > 0, got \"%s\"",
					p->name, s);
		return 0;
	}
	return mlfs_err(msg, msglen, "\"%s\": must be %s, got \"%s\"", p->name,
			ANON_METHODS, s);
}

/* Judge params completely; a's strings borrow from params. */
static int anon_parse(const struct mlfs_param *params, size_t nparams,
		      struct anon *a, char *msg, size_t msglen)
{
	const struct mlfs_param *kp = NULL;
	int rc;

	memset(a, 0, sizeof(*a));
	a->rule = malloc((nparams ? nparams : 1) * sizeof(*a->rule));
	if (!a->rule)
		return -ENOMEM;
	for (size_t i = 0; i < nparams; i++) {
		const struct mlfs_param *p = &params[i];

		if (!p->name) {
			rc = mlfs_err(msg, msglen, "parameter %zu has no name",
				      i);
			goto out_free;
		}
		for (size_t e = 0; e < i; e++) {
			if (params[e].name &&
			    strcmp(params[e].name, p->name) == 0) {
				rc = mlfs_err(msg, msglen,
					      "\"%s\": given twice", p->name);
				goto out_free;
			}
		}
		if (strcmp(p->name, "k") == 0) {
			kp = p;
			rc = mlfs_param_one(&anon_k_spec, p, a, msg, msglen);
		} else if (strcmp(p->name, "k_anonymity") == 0) {
			rc = prep_names_check(p, msg, msglen);
			a->kcols = p->string;
		} else if (strcmp(p->name, "default") == 0) {
			rc = anon_parse_method(p, &a->dflt, msg, msglen);
		} else {
			rc = anon_parse_method(p, &a->rule[a->nrule++], msg,
					       msglen);
		}
		if (rc < 0)
			goto out_free;
	}
	if (a->kcols && !kp) {
		rc = mlfs_err(msg, msglen,
			      "\"k\": needed for \"k_anonymity\"");
		goto out_free;
	}
	if (kp && !a->kcols) {
		rc = mlfs_err(msg, msglen,
			      "\"k\": used only with \"k_anonymity\"");
		goto out_free;
	}
	return 0;
out_free:
	anon_free(a);
	a->rule = NULL;
	return rc;
}

static int anon_check(const struct mlfs_param *params, size_t nparams,
		      char *msg, size_t msglen)
{
	struct anon a;
	int rc = anon_parse(params, nparams, &a, msg, msglen);

	anon_free(&a);
	return rc;
}

/* ---- which column gets which method ---- */

static const char *anon_type_name(int type)
{
	switch (type) {
	case MLFS_COL_NUMERIC:
		return "numeric";
	case MLFS_COL_CATEGORICAL:
		return "categorical";
	case MLFS_COL_TIME:
		return "time";
	case MLFS_COL_TEXT:
		return "text";
	}
	return "of no known type";
}

/* Whether rule r can apply to column c; -EINVAL naming c if not. */
static int anon_fits(const struct anon_rule *r, const struct mlfs_column *c,
		     char *msg, size_t msglen)
{
	if ((r->method == ANON_MONTH || r->method == ANON_YEAR) &&
	    c->type != MLFS_COL_TIME)
		return mlfs_err(msg, msglen,
				"column \"%s\": \"%s\" is for time columns, not %s",
				prep_col_name(c), r->text,
				anon_type_name(c->type));
	if (r->method == ANON_BUCKET && c->type != MLFS_COL_NUMERIC)
		return mlfs_err(msg, msglen,
				"column \"%s\": \"%s\" is for numeric columns, not %s",
				prep_col_name(c), r->text,
				anon_type_name(c->type));
	return 0;
}

/*
 * how[j]: the rule for column j of t, or NULL: the named ones, then
 * "default" for pii columns no param names.  -EINVAL naming a column
 * not in t, or one its method does not fit.
 */
static int anon_assign(const struct anon *a, const struct mlfs_table *t,
		       const struct anon_rule **how, char *msg, size_t msglen)
{
	int rc;

	for (size_t r = 0; r < a->nrule; r++) {
		bool found = false;

		for (size_t j = 0; j < t->cols; j++) {
			if (!t->col[j].name ||
			    strcmp(t->col[j].name, a->rule[r].column) != 0)
				continue;
			how[j] = &a->rule[r];
			found = true;
		}
		if (!found)
			return mlfs_err(msg, msglen,
					"column \"%s\": not in the table",
					a->rule[r].column);
	}
	for (size_t j = 0; j < t->cols; j++) {
		if (!how[j] && a->dflt.method != ANON_NONE &&
		    (t->col[j].roles & MLFS_ROLE_PII))
			how[j] = &a->dflt;
		if (!how[j])
			continue;
		rc = anon_fits(how[j], &t->col[j], msg, msglen);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/*
 * kin[0..*nk): the input columns "k_anonymity" names, none dropped;
 * -EINVAL naming one that is not in t or is dropped.
 */
static int anon_kcols(const struct anon *a, const struct mlfs_table *t,
		      const struct anon_rule *const *how, size_t *kin,
		      size_t *nk, char *msg, size_t msglen)
{
	const char *rest = a->kcols;

	*nk = 0;
	while (rest) {
		size_t len;
		const char *name = prep_next_name(rest, &len, &rest);
		long j = prep_col_findn(t, name, len);
		int shown = (int)(len < 256 ? len : 256);

		if (j < 0)
			return mlfs_err(msg, msglen,
					"\"k_anonymity\": column \"%.*s\" not in the table",
					shown, name);
		if (how[j] && how[j]->method == ANON_DROP)
			return mlfs_err(msg, msglen,
					"\"k_anonymity\": column \"%.*s\" is dropped",
					shown, name);
		kin[(*nk)++] = (size_t)j;
	}
	return 0;
}

/*
 * The host's keyed hash, tried once on nothing before any column is
 * touched, so a mount without a key fails the step whatever the table
 * holds.  -ENOKEY and the message when there is no key (or no hash, in
 * a host older than ABI 1.3); the host's error otherwise.
 */
static int anon_hash_ready(const struct mlfs_host *host, char *msg,
			   size_t msglen)
{
	unsigned char out[32];
	int rc;

	if (!PREP_HOST_HAS(host, anon_hash)) {
		mlfs_err(msg, msglen, "hash: the mount has no -o anon_key");
		return -ENOKEY;
	}
	rc = host->anon_hash(host->ctx, "", 0, out);
	if (rc == -ENOKEY)
		mlfs_err(msg, msglen, "hash: the mount has no -o anon_key");
	else if (rc < 0)
		mlfs_err(msg, msglen, "hash: the host's hash failed: %s",
			 strerror(-rc));
	return rc < 0 ? rc : 0;
}

/* ---- the methods ---- */

/* Whether byte b starts a UTF-8 character (or is a stray byte). */
static bool anon_char_start(unsigned char b)
{
	return (b & 0xC0) != 0x80;
}

static size_t anon_chars(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += anon_char_start((unsigned char)*s);
	return n;
}

/* The byte offset of character n of s (from 0); strlen(s) past the end. */
static size_t anon_char_at(const char *s, size_t n)
{
	size_t seen = 0, i;

	for (i = 0; s[i]; i++) {
		if (!anon_char_start((unsigned char)s[i]))
			continue;
		if (seen == n)
			return i;
		seen++;
	}
	return i;
}

static bool anon_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/*
 * Whether s is an ISO 8601 date or time this plugin can cut: "YYYY",
 * "YYYY-MM", "YYYY-MM-DD" (month 01-12, day 01-31), the last followed by
 * nothing or by 'T' or ' ' and a time.  month: "YYYY" alone will not do.
 */
static bool anon_is_date(const char *s, bool month)
{
	int mm, dd;

	if (!anon_digits(s, 4))
		return false;
	if (!s[4])
		return !month;
	if (s[4] != '-' || !anon_digits(s + 5, 2))
		return false;
	mm = (s[5] - '0') * 10 + (s[6] - '0');
	if (mm < 1 || mm > 12)
		return false;
	if (!s[7])
		return true;
	if (s[7] != '-' || !anon_digits(s + 8, 2))
		return false;
	dd = (s[8] - '0') * 10 + (s[9] - '0');
	if (dd < 1 || dd > 31)
		return false;
	return !s[10] || s[10] == 'T' || s[10] == ' ';
}

/* floor(x / w) x w, a quotient a hair under a whole number counting as it */
static double anon_bucket(double x, double w)
{
	double q = x / w;

	/* + 0.0: a bucket of -0 is 0 */
	return floor(q + fabs(q) * 1e-12) * w + 0.0;
}

/*
 * Bytes of new text column c needs under rule r: every cell's, to point
 * at from text[] until prep_out_finish copies them.  0: none (drop,
 * bucket).  SIZE_MAX: more than memory.
 */
static size_t anon_scratch_len(const struct anon_rule *r,
			       const struct mlfs_column *c, size_t rows)
{
	char num[PREP_NUM_LEN];
	size_t len = 0;

	switch (r->method) {
	case ANON_HASH:
		return rows > SIZE_MAX / ANON_HEX_LEN ? SIZE_MAX
						      : rows * ANON_HEX_LEN;
	case ANON_MONTH:
		return rows * sizeof("YYYY-MM");
	case ANON_YEAR:
		return rows * sizeof("YYYY");
	case ANON_MASK:
	case ANON_TRUNCATE:
		for (size_t i = 0; i < rows; i++) {
			const char *v = prep_cell(c, i, num);

			if (v)
				len += strlen(v) + 1;
		}
		return len;
	}
	return 0;
}

/* A column that is no longer numbers (or times) becomes categorical. */
static void anon_categorical(struct mlfs_column *c)
{
	c->type = MLFS_COL_CATEGORICAL;
	free(c->num);
	c->num = NULL;
}

/* Values a call of the host's anon_hash_many takes. */
#define ANON_BATCH 64

/* The host's hash of n values, many at a time where it can (ABI 1.5). */
static int anon_hash_batch(const struct mlfs_host *host, size_t n,
			   const void *const *data, const size_t *len,
			   unsigned char (*out)[32])
{
	int rc = 0;

	if (PREP_HOST_HAS(host, anon_hash_many))
		return host->anon_hash_many(host->ctx, n, data, len, out);
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = host->anon_hash(host->ctx, data[i], len[i], out[i]);
	return rc;
}

/*
 * h in lower-case hex, and a NUL.  With SSE2 (every x86-64), 16 bytes at
 * a time: the nibbles interleaved high first, '0' added, and 'a' - '0' -
 * 10 more where a nibble is past 9.  A byte at a time, a table lookup
 * each, this was 4 % of an anonymize job that writes 15 million digests.
 */
static void anon_hex(const unsigned char h[32], char *at)
{
#ifdef __SSE2__
	const __m128i low = _mm_set1_epi8(0x0f);
	const __m128i nine = _mm_set1_epi8(9);
	const __m128i zero = _mm_set1_epi8('0');
	const __m128i gap = _mm_set1_epi8('a' - '0' - 10);

	for (int k = 0; k < 2; k++) {
		__m128i x = _mm_loadu_si128((const __m128i *)(h + 16 * k));
		__m128i hi = _mm_and_si128(_mm_srli_epi16(x, 4), low);
		__m128i lo = _mm_and_si128(x, low);
		__m128i d[2] = { _mm_unpacklo_epi8(hi, lo),
				 _mm_unpackhi_epi8(hi, lo) };

		for (int i = 0; i < 2; i++) {
			__m128i past = _mm_cmpgt_epi8(d[i], nine);

			d[i] = _mm_add_epi8(_mm_add_epi8(d[i], zero),
					    _mm_and_si128(past, gap));
			_mm_storeu_si128((__m128i *)(at + 32 * k + 16 * i),
					 d[i]);
		}
	}
#else
	static const char hex[] = "0123456789abcdef";

	for (size_t b = 0; b < 32; b++) {
		at[2 * b] = hex[h[b] >> 4];
		at[2 * b + 1] = hex[h[b] & 0xF];
	}
#endif
	at[64] = '\0';
}

static int anon_hash_col(const struct mlfs_host *host,
			 const struct mlfs_column *in, struct mlfs_column *c,
			 size_t rows, char *at, char *msg, size_t msglen)
{
	char num[ANON_BATCH][PREP_NUM_LEN];
	const void *data[ANON_BATCH];
	size_t len[ANON_BATCH], row[ANON_BATCH];
	unsigned char h[ANON_BATCH][32];

	for (size_t i = 0; i < rows;) {
		size_t n = 0;
		int rc;

		/* the next ANON_BATCH values, skipping missing ones */
		for (; i < rows && n < ANON_BATCH; i++) {
			const char *v = prep_cell(in, i, num[n]);

			c->text[i] = NULL;
			if (!v)
				continue;
			data[n] = v;
			len[n] = strlen(v);
			row[n++] = i;
		}
		rc = n ? anon_hash_batch(host, n, data, len, h) : 0;
		if (rc < 0) {
			if (rc == -ENOKEY)
				mlfs_err(msg, msglen,
					 "hash: the mount has no -o anon_key");
			else
				mlfs_err(msg, msglen,
					 "column \"%s\": hash: the host's hash failed: %s",
					 prep_col_name(in), strerror(-rc));
			return rc;
		}
		for (size_t k = 0; k < n; k++) {
			anon_hex(h[k], at);
			c->text[row[k]] = at;
			at += ANON_HEX_LEN;
		}
	}
	anon_categorical(c);
	return 0;
}

/* mask and truncate: text cut by characters. */
static void anon_cut_col(const struct anon_rule *r,
			 const struct mlfs_column *in, struct mlfs_column *c,
			 size_t rows, char *at)
{
	char num[PREP_NUM_LEN];

	for (size_t i = 0; i < rows; i++) {
		const char *v = prep_cell(in, i, num);
		size_t n, off;

		c->text[i] = NULL;
		if (!v)
			continue;
		c->text[i] = at;
		if (r->method == ANON_TRUNCATE) {
			off = anon_char_at(v, r->n);
			memcpy(at, v, off);
			at += off;
		} else {
			n = anon_chars(v);
			n = n > ANON_MASK_KEEP ? n - ANON_MASK_KEEP : 0;
			off = anon_char_at(v, n);
			/* one '*' a character: never longer than v */
			memset(at, '*', n);
			at += n;
			memcpy(at, v + off, strlen(v + off));
			at += strlen(v + off);
		}
		*at++ = '\0';
	}
	if (c->type == MLFS_COL_NUMERIC || c->type == MLFS_COL_TIME)
		anon_categorical(c);
}

static int anon_date_col(const struct anon_rule *r,
			 const struct mlfs_column *in, struct mlfs_column *c,
			 size_t rows, char *at, char *msg, size_t msglen)
{
	bool month = r->method == ANON_MONTH;
	size_t keep = month ? 7 : 4;

	for (size_t i = 0; i < rows; i++) {
		const char *v = prep_text(in, i);

		c->text[i] = NULL;
		if (!v)
			continue;
		/* the value stays out of the message: it is what we hide */
		if (!anon_is_date(v, month))
			return mlfs_err(msg, msglen,
					"column \"%s\": row %zu: not an ISO 8601 date (%s)",
					prep_col_name(in), i + 1,
					month ? "YYYY-MM..." : "YYYY...");
		memcpy(at, v, keep);
		at[keep] = '\0';
		c->text[i] = at;
		at += keep + 1;
	}
	return 0;
}

static int anon_bucket_col(const struct anon_rule *r,
			   const struct mlfs_column *in,
			   struct mlfs_column *c, size_t rows, char *msg,
			   size_t msglen)
{
	for (size_t i = 0; i < rows; i++) {
		double v = prep_num(in, i);

		if (isnan(v) && !prep_text(in, i))
			continue; /* missing stays missing */
		if (!isfinite(v))
			return mlfs_err(msg, msglen,
					"column \"%s\": row %zu: not a finite number",
					prep_col_name(in), i + 1);
		/* the ABI's way: the host prints a changed number */
		c->num[i] = anon_bucket(v, r->width);
		c->text[i] = NULL;
	}
	return 0;
}

/* Column j of out (in's column from) under rule r. */
static int anon_apply(const struct mlfs_host *host, const struct anon_rule *r,
		      const struct mlfs_column *in, struct mlfs_column *c,
		      size_t rows, char **scratch, char *msg, size_t msglen)
{
	size_t len = anon_scratch_len(r, in, rows);

	*scratch = NULL;
	if (len == SIZE_MAX)
		return -ENOMEM;
	if (len) {
		*scratch = malloc(len);
		if (!*scratch)
			return -ENOMEM;
	}
	prep_log(host, MLFS_LOG_INFO, "anonymize: column \"%s\": %s",
		 prep_col_name(in), r->text);
	switch (r->method) {
	case ANON_HASH:
		return anon_hash_col(host, in, c, rows, *scratch, msg, msglen);
	case ANON_MASK:
	case ANON_TRUNCATE:
		anon_cut_col(r, in, c, rows, *scratch);
		return 0;
	case ANON_MONTH:
	case ANON_YEAR:
		return anon_date_col(r, in, c, rows, *scratch, msg, msglen);
	case ANON_BUCKET:
		return anon_bucket_col(r, in, c, rows, msg, msglen);
	}
	return 0;
}

/* ---- k-anonymity ---- */

/* msg: the group of row i over out's columns k[0..nk), and its size. */
static void anon_k_msg(const struct mlfs_table *out, const size_t *k,
		       size_t nk, size_t i, size_t size, long kmin, char *msg,
		       size_t msglen)
{
	char group[512], num[PREP_NUM_LEN];
	size_t used = 0;

	group[0] = '\0';
	for (size_t c = 0; c < nk && used < sizeof(group); c++) {
		const struct mlfs_column *col = &out->col[k[c]];
		const char *v = prep_cell(col, i, num);
		int w = snprintf(group + used, sizeof(group) - used, "%s%s=%s",
				 c ? "," : "", prep_col_name(col),
				 v ? v : "(missing)");

		if (w < 0)
			break;
		used += (size_t)w;
	}
	mlfs_err(msg, msglen,
		 "k-anonymity: the group %s has %zu row%s, fewer than k %ld",
		 group, size, size == 1 ? "" : "s", kmin);
}

/*
 * Every combination of out's columns k[0..nk) (as the CSV will have
 * them) in at least kmin rows; -EINVAL naming the smallest group (the
 * first seen of a tie) if not.
 */
static int anon_k_check(const struct mlfs_host *host,
			const struct mlfs_table *out, const size_t *k,
			size_t nk, long kmin, char *msg, size_t msglen)
{
	const char **keys;
	char *buf;
	size_t *id, *count, nids, least = 0;
	int rc;

	id = malloc((out->rows ? out->rows : 1) * sizeof(*id));
	if (!id)
		return -ENOMEM;
	rc = prep_row_keys(out, k, nk, false, &keys, &buf);
	if (rc < 0)
		goto out_free_id;
	rc = prep_distinct(keys, out->rows, id, &nids);
	if (rc < 0)
		goto out_free_keys;
	count = calloc(nids ? nids : 1, sizeof(*count));
	if (!count) {
		rc = -ENOMEM;
		goto out_free_keys;
	}
	for (size_t i = 0; i < out->rows; i++)
		count[id[i]]++;
	/* ids count in order of first appearance: strict < keeps the first */
	for (size_t g = 1; g < nids; g++)
		if (count[g] < count[least])
			least = g;
	if (nids && count[least] < (size_t)kmin) {
		for (size_t i = 0; i < out->rows; i++) {
			if (id[i] != least)
				continue;
			anon_k_msg(out, k, nk, i, count[least], kmin, msg,
				   msglen);
			break;
		}
		rc = -EINVAL;
	} else {
		prep_log(host, MLFS_LOG_INFO,
			 "anonymize: %zu groups, the smallest of %zu rows, k %ld",
			 nids, nids ? count[least] : 0, kmin);
	}
	free(count);
out_free_keys:
	free(keys);
	free(buf);
out_free_id:
	free(id);
	return rc;
}

/* ---- run ---- */

/* What run holds; anon_work_free releases any part of it. */
struct anon_work {
	const struct anon_rule **how; /* [in cols] */
	size_t *kin;		      /* [in cols]: k-anonymity's, of in */
	size_t *kout;		      /* [in cols]: the same, of out */
	size_t *from;		      /* [out cols]: out's column j is in's */
	struct mlfs_column *view;     /* [out cols]: in without the dropped */
	char **scratch;		      /* [out cols]: new texts, till finish */
	size_t ncols;		      /* out's */
};

static void anon_work_free(struct anon_work *w)
{
	for (size_t j = 0; w->scratch && j < w->ncols; j++)
		free(w->scratch[j]);
	free(w->scratch);
	free(w->view);
	free(w->from);
	free(w->kout);
	free(w->kin);
	free(w->how);
}

static int anon_work_new(const struct mlfs_table *in, struct anon_work *w)
{
	size_t n = in->cols ? in->cols : 1;

	memset(w, 0, sizeof(*w));
	w->how = calloc(n, sizeof(*w->how));
	w->kin = calloc(n, sizeof(*w->kin));
	w->kout = calloc(n, sizeof(*w->kout));
	w->from = calloc(n, sizeof(*w->from));
	w->view = calloc(n, sizeof(*w->view));
	w->scratch = calloc(n, sizeof(*w->scratch));
	if (!w->how || !w->kin || !w->kout || !w->from || !w->view ||
	    !w->scratch) {
		anon_work_free(w);
		return -ENOMEM;
	}
	return 0;
}

/* Every column but the dropped ones, as out's: w->from, w->view. */
static void anon_keep(const struct mlfs_table *in, struct anon_work *w,
		      struct mlfs_table *view)
{
	for (size_t j = 0; j < in->cols; j++) {
		if (w->how[j] && w->how[j]->method == ANON_DROP)
			continue;
		w->from[w->ncols] = j;
		w->view[w->ncols] = in->col[j];
		w->ncols++;
	}
	view->rows = in->rows;
	view->cols = w->ncols;
	view->col = w->view;
}

static int anon_run(const struct mlfs_host *host,
		    const struct mlfs_param *params, size_t nparams,
		    uint64_t seed, const struct mlfs_table *in,
		    struct mlfs_table **out, char *msg, size_t msglen)
{
	struct mlfs_table view, *t = NULL;
	struct anon_work w;
	struct anon a;
	bool hashes = false;
	size_t nk = 0;
	int rc;

	(void)seed;
	if (!out)
		return mlfs_err(msg, msglen, "no place for the output table");
	*out = NULL;
	rc = anon_parse(params, nparams, &a, msg, msglen);
	if (rc < 0)
		return rc;
	rc = prep_table_check(in, msg, msglen);
	if (rc < 0)
		goto out_free_params;
	rc = anon_work_new(in, &w);
	if (rc < 0)
		goto out_free_params;
	rc = anon_assign(&a, in, w.how, msg, msglen);
	if (rc == 0 && a.kcols)
		rc = anon_kcols(&a, in, w.how, w.kin, &nk, msg, msglen);
	if (rc < 0)
		goto out_free_work;
	for (size_t j = 0; j < in->cols; j++)
		hashes = hashes || (w.how[j] && w.how[j]->method == ANON_HASH);
	if (hashes) {
		rc = anon_hash_ready(host, msg, msglen);
		if (rc < 0)
			goto out_free_work;
	}
	anon_keep(in, &w, &view);
	rc = prep_out_new(&view, in->rows, &t);
	if (rc < 0)
		goto out_free_work;
	for (size_t j = 0; j < w.ncols && rc == 0; j++) {
		const struct anon_rule *r = w.how[w.from[j]];

		for (size_t i = 0; i < in->rows; i++)
			prep_out_copy(t, i, &view, j, i);
		if (r)
			rc = anon_apply(host, r, &view.col[j], &t->col[j],
					in->rows, &w.scratch[j], msg, msglen);
		for (size_t c = 0; c < nk; c++)
			if (w.kin[c] == w.from[j])
				w.kout[c] = j;
	}
	if (rc == 0 && PREP_HOST_KEEPS_INPUT(host)) {
		/* the new texts go with the output; the rest is the input's */
		for (size_t j = 0; j < w.ncols; j++) {
			prep_out_adopt(t, j, w.scratch[j]);
			w.scratch[j] = NULL;
		}
		rc = prep_out_borrow(t, &view);
	} else if (rc == 0) {
		rc = prep_out_finish(t, &view);
	}
	if (rc == 0 && a.kcols)
		rc = anon_k_check(host, t, w.kout, nk, a.k, msg, msglen);
	if (rc < 0)
		prep_out_free(t);
	else
		*out = t;
out_free_work:
	anon_work_free(&w);
out_free_params:
	anon_free(&a);
	return rc;
}

/* Row by row unless k-anonymity counts groups over the whole table. */
static int anon_by_rows(const struct mlfs_param *params, size_t nparams)
{
	for (size_t i = 0; i < nparams; i++)
		if (params[i].name && (strcmp(params[i].name, "k") == 0 ||
				       strcmp(params[i].name, "k_anonymity") == 0))
			return 0;
	return 1;
}

static const struct mlfs_prep_ops anon_ops = {
	.size = sizeof(anon_ops),
	.check = anon_check,
	.run = anon_run,
	.out_free = prep_out_free,
	.by_rows = anon_by_rows,
};

MLFS_EXPORT const struct mlfs_plugin mlfs_plugin = {
	.abi_major = MLFS_ABI_MAJOR,
	.abi_minor = MLFS_ABI_MINOR,
	.stage = MLFS_STAGE_PREP,
	.name = "anonymize",
	.version = "1.0.0",
	.ops = &anon_ops,
};

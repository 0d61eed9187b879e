/* SPDX-License-Identifier: MIT */
/*
 * Distinct values of a CSV column, counted during csv_scan() in three
 * tiers (struct colstate in csv_int.h says why): a small hash set with
 * counts and spellings, for classes (struct cset, also csv.c's check of
 * duplicate header names); 64-bit hashes up to CSV_DISTINCT_EXACT values,
 * in a small hash table, then in sorted batches; then a HyperLogLog
 * sketch.  All the sets of one scan share a budget of bytes (struct
 * scan), so memory is bounded whatever the input.
 *
 * No global state: the thread that runs the scan, on that scan's state.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "csv_int.h"

/*
 * Hashes appended to tier 2 between two sorts.  Each flush merges the
 * batch into every distinct hash kept, so a column that stays in tier 2
 * pays (kept + batch) / batch moves a value: a 1 GiB `cp` of 7 columns
 * of 15,000 distinct values each spent 28% of the daemon's CPU sorting
 * and merging with 8192, 8% less CPU with 32768 (65536: no better).
 */
#define KEYS_BATCH ((size_t)32768)
/* hash_sort(): buckets by the top bits (about 4 hashes a bucket), and
 * the biggest insertion sort. */
#define SORT_BITS 13
#define SORT_SMALL 32
/*
 * Tier 2's hash table: KEYS_TABLE_FIRST slots when tier 1 moves in, at
 * most half full, doubled up to KEYS_TABLE_MAX slots; past that the
 * column goes on in sorted batches.  A column of a few thousand values
 * repeated (prices, counts, readings of a few decimals) then costs one
 * probe of a line of the table a value instead of a sort and a merge:
 * one thread's scan of bench_fs's 1 GiB CSV (7 columns of 14,000 values)
 * took 2.75 s with sorted batches only, 1.97 s so; 8 columns of 5,000
 * values 0.72 -> 0.48 s; 40,000 values (past the table) 3% slower.
 */
#define KEYS_TABLE_FIRST ((size_t)4096)
#define KEYS_TABLE_MAX ((size_t)32768)
/* Lines a probe of the table may pass (table_slot()). */
#define KEYS_PROBE 16
_Static_assert(KEYS_TABLE_FIRST >= 2 * (CSV_CAT_MAX + 1),
	       "tier 1's values fit the first table");
_Static_assert(KEYS_TABLE_MAX / 2 + 2 <= KEYS_BATCH,
	       "a full table's hashes are one batch");

/* Order of two raw contents as unescaped bytes. */
int csv_raw_cmp(const char *a, size_t an, bool aesc, const char *b, size_t bn,
		bool besc)
{
	size_t i = 0;
	size_t j = 0;
	int r;

	if (!aesc && !besc) {
		r = memcmp(a, b, an < bn ? an : bn);
		if (r)
			return r;
		return (an > bn) - (an < bn);
	}
	while (i < an && j < bn) {
		unsigned char x = (unsigned char)a[i];
		unsigned char y = (unsigned char)b[j];

		if (x != y)
			return x < y ? -1 : 1;
		i += aesc && x == '"' ? 2 : 1;
		j += besc && y == '"' ? 2 : 1;
	}
	return (i < an) - (j < bn);
}

uint64_t csv_hll_estimate(const uint8_t *reg)
{
	double m = (double)HLL_REGS;
	double sum = 0;
	double e;
	size_t zeros = 0;
	size_t i;

	for (i = 0; i < HLL_REGS; i++) {
		sum += ldexp(1.0, -reg[i]);
		zeros += !reg[i];
	}
	e = 0.7213 / (1 + 1.079 / m) * m * m / sum;
	/* Small range: linear counting is better while registers are 0. */
	if (e <= 2.5 * m && zeros)
		e = m * log(m / (double)zeros);
	return (uint64_t)llround(e);
}

static bool ent_equal(const struct cset_ent *e, uint64_t h, uint32_t flags,
		      const char *p, size_t n)
{
	if (e->hash != h || ((e->flags ^ flags) & ENT_NUM))
		return false;
	if (flags & ENT_NUM)
		return true;
	return !csv_raw_cmp(e->p, e->len, e->flags & ENT_ESC, p, n,
			    flags & ENT_ESC);
}

/*
 * csv_cset_add: count a value times.  Returns 1 if it was new, 0 if
 * seen before, -ENOMEM, or -ENOSPC if the set would have to grow past
 * *budget bytes (budget NULL: no limit) or hold more than cap values.
 */
int csv_cset_add(struct cset *set, uint64_t h, uint32_t flags, const char *p,
		 size_t n, uint64_t times, size_t *budget, size_t cap)
{
	struct cset_ent *e;
	size_t i = 0; /* set by the probe loop; gcc -O2 cannot tell */

	if (set->slots) {
		for (i = h & set->mask;; i = (i + 1) & set->mask) {
			e = &set->slots[i];
			if (!e->count)
				break;
			if (ent_equal(e, h, flags, p, n)) {
				e->count += times;
				return 0;
			}
		}
	}
	if (set->size >= cap)
		return -ENOSPC;
	/* Keep the load at most 1/2: probes stay short. */
	if (!set->slots || (set->size + 1) * 2 > set->mask + 1) {
		size_t old = set->slots ? set->mask + 1 : 0;
		size_t nslots = old ? old * 2 : 16;
		struct cset_ent *ns;
		size_t j;

		if (budget && (nslots - old) * sizeof(*ns) > *budget)
			return -ENOSPC;
		ns = calloc(nslots, sizeof(*ns));
		if (!ns)
			return -ENOMEM;
		for (j = 0; j < old; j++) {
			if (!set->slots[j].count)
				continue;
			for (i = set->slots[j].hash & (nslots - 1); ns[i].count;
			     i = (i + 1) & (nslots - 1))
				;
			ns[i] = set->slots[j];
		}
		free(set->slots);
		set->slots = ns;
		set->mask = nslots - 1;
		if (budget)
			*budget -= (nslots - old) * sizeof(*ns);
		for (i = h & set->mask; ns[i].count; i = (i + 1) & set->mask)
			;
	}
	e = &set->slots[i];
	e->hash = h;
	e->count = times;
	e->p = p;
	e->len = (uint32_t)n;
	e->flags = flags;
	set->size++;
	return 1;
}

/* Entries of keys to walk: a table's slots (0: empty), or the hashes. */
static size_t keys_slots(const struct colstate *s)
{
	return s->kmask ? s->kmask + 1 : s->nkeys + s->nbatch;
}

/*
 * Tier 3: move a column's distinct values (known of them, exactly) into a
 * HyperLogLog sketch.
 */
static int col_estimate(struct scan *sc, struct colstate *s, uint64_t known)
{
	size_t i;

	s->hll = calloc(HLL_REGS, 1);
	if (!s->hll)
		return -ENOMEM;
	for (i = 0; i < keys_slots(s); i++)
		if (s->keys[i] || !s->kmask)
			hll_add(s->hll, s->keys[i]);
	if (s->kzero)
		hll_add(s->hll, 0);
	if (s->pending)
		hll_add(s->hll, s->pend);
	s->pending = false;
	for (i = 0; s->set.slots && i <= s->set.mask; i++)
		if (s->set.slots[i].count)
			hll_add(s->hll, s->set.slots[i].hash);
	s->exact = known;
	sc->budget += s->kcap * sizeof(*s->keys);
	free(s->keys);
	s->keys = NULL;
	s->nkeys = 0;
	s->nbatch = 0;
	s->kcap = 0;
	s->kmask = 0;
	s->kzero = false;
	if (s->set.slots)
		sc->budget += (s->set.mask + 1) * sizeof(*s->set.slots);
	free(s->set.slots);
	memset(&s->set, 0, sizeof(s->set));
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a;
	uint64_t y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/*
 * Sort n hashes from a into out.  They are uniform, so one pass into
 * 2^SORT_BITS buckets by the top bits leaves a handful per bucket, and
 * an insertion sort finishes each; a big bucket (a value repeated many
 * times, or inputs chosen to collide) goes to qsort() instead.
 */
static void hash_sort(const uint64_t *a, uint64_t *out, size_t n)
{
	uint32_t start[((size_t)1 << SORT_BITS) + 1];
	size_t b;
	size_t i;
	size_t j;

	if (n < ((size_t)1 << SORT_BITS) / 4) {
		/* a column's last, small batch: not worth the buckets */
		memcpy(out, a, n * sizeof(*out));
		qsort(out, n, sizeof(*out), cmp_u64);
		return;
	}
	memset(start, 0, sizeof(start));
	for (i = 0; i < n; i++)
		start[(a[i] >> (64 - SORT_BITS)) + 1]++;
	for (b = 1; b <= (size_t)1 << SORT_BITS; b++)
		start[b] += start[b - 1];
	for (i = 0; i < n; i++)
		out[start[a[i] >> (64 - SORT_BITS)]++] = a[i];
	/* Each start[b] now is where bucket b + 1 begins. */
	for (b = 0; b < (size_t)1 << SORT_BITS; b++) {
		size_t lo = b ? start[b - 1] : 0;
		size_t hi = start[b];

		if (hi - lo > SORT_SMALL) {
			qsort(out + lo, hi - lo, sizeof(*out), cmp_u64);
			continue;
		}
		for (i = lo + 1; i < hi; i++) {
			uint64_t x = out[i];

			for (j = i; j > lo && out[j - 1] > x; j--)
				out[j] = out[j - 1];
			out[j] = x;
		}
	}
}

static int add_hash(struct scan *sc, struct colstate *s, uint64_t h);

/*
 * Sort the batch and merge it into the sorted distinct hashes.  Past
 * CSV_DISTINCT_EXACT the column moves on to tier 3.
 */
int csv_keys_flush(struct scan *sc, struct colstate *s)
{
	uint64_t *k;
	uint64_t *b;
	size_t nb = 0;
	size_t total;
	size_t i;
	size_t j;
	size_t w;

	/*
	 * The pending hash first: settling it may move the column on,
	 * flush and allocate sort_tmp, so both are read after.
	 */
	if (s->pending) {
		int rc;

		s->pending = false;
		rc = add_hash(sc, s, s->pend);
		if (rc < 0)
			return rc;
	}
	if (s->kmask || !s->nbatch)
		return 0;
	k = s->keys;
	b = sc->sort_tmp;
	if (!b) {
		b = malloc(KEYS_BATCH * sizeof(*b));
		if (!b)
			return -ENOMEM;
		sc->sort_tmp = b;
	}
	hash_sort(k + s->nkeys, b, s->nbatch);
	for (i = 0; i < s->nbatch; i++)
		if (!nb || b[nb - 1] != b[i])
			b[nb++] = b[i];
	/*
	 * Merge from the back: the write index never passes a read index.
	 * Hashes are random, so the loop is written without branches on
	 * their order, which would be mispredicted half the time.
	 */
	total = s->nkeys + nb;
	i = s->nkeys;
	j = nb;
	w = total;
	while (i && j) {
		uint64_t x = k[i - 1];
		uint64_t y = b[j - 1];

		k[--w] = x >= y ? x : y;
		i -= x >= y;
		j -= y >= x;
	}
	while (j)
		k[--w] = b[--j];
	w -= i;
	memmove(k + i, k + i + w, (total - i - w) * sizeof(*k));
	s->nkeys = total - w;
	s->nbatch = 0;
	if (s->nkeys > CSV_DISTINCT_EXACT)
		return col_estimate(sc, s, s->nkeys);
	return 0;
}

static int table_grow(struct scan *sc, struct colstate *s);
static int table_to_batches(struct scan *sc, struct colstate *s);

/*
 * The slot of table t (mask + 1 slots) that holds h (not 0), or the one
 * it goes in: the first empty slot from h's line on.  Nothing is ever
 * removed, so a line's hashes come before its empty slots.  NULL past
 * KEYS_PROBE lines: numbers chosen so that their hashes (a bijection,
 * num_hash()) share a line would otherwise make every probe walk them
 * all; such a column goes on in sorted batches.
 */
static uint64_t *table_slot(uint64_t *t, size_t mask, uint64_t h)
{
	size_t i = h & mask & ~(KEYS_LINE - 1);
	size_t n;
	size_t j;

	for (n = 0; n < KEYS_PROBE; n++, i = (i + KEYS_LINE) & mask)
		for (j = i; j < i + KEYS_LINE; j++)
			if (t[j] == h || !t[j])
				return &t[j];
	return NULL;
}

/* A table of n slots, empty, on whole cache lines. */
static uint64_t *table_new(size_t n)
{
	uint64_t *t = aligned_alloc(KEYS_LINE * sizeof(*t), n * sizeof(*t));

	if (t)
		memset(t, 0, n * sizeof(*t));
	return t;
}

/*
 * Tier 2 keeps 64-bit hashes.  For numbers the hash is a bijection of
 * the value, so the count is exact; two texts are taken as one only if
 * their XXH3 hashes collide (about 1e-10 for 65536 values).
 */
static int keys_add(struct scan *sc, struct colstate *s, uint64_t h)
{
	if (s->kmask) {
		uint64_t *slot;

		if (!h) {
			s->nkeys += !s->kzero;
			s->kzero = true;
			return 0;
		}
		slot = table_slot(s->keys, s->kmask, h);
		if (!slot) {
			int rc = table_to_batches(sc, s);

			return rc < 0 ? rc : keys_add(sc, s, h);
		}
		if (*slot)
			return 0;
		*slot = h;
		if (++s->nkeys * 2 <= s->kcap)
			return 0;
		return table_grow(sc, s);
	}
	if (s->nkeys + s->nbatch == s->kcap) {
		/* A flush leaves at most CSV_DISTINCT_EXACT, then a batch. */
		size_t cap = s->kcap * 2;
		uint64_t *k;

		if (cap > CSV_DISTINCT_EXACT + KEYS_BATCH)
			cap = CSV_DISTINCT_EXACT + KEYS_BATCH;
		if ((cap - s->kcap) * sizeof(*k) > sc->budget) {
			int rc = col_estimate(sc, s, s->nkeys + 1);

			if (rc == 0)
				hll_add(s->hll, h);
			return rc;
		}
		k = realloc(s->keys, cap * sizeof(*k));
		if (!k)
			return -ENOMEM;
		sc->budget -= (cap - s->kcap) * sizeof(*k);
		s->keys = k;
		s->kcap = cap;
	}
	s->keys[s->nkeys + s->nbatch++] = h;
	if (s->nbatch < KEYS_BATCH)
		return 0;
	return csv_keys_flush(sc, s);
}

/*
 * The table of s is half full: double it, or past KEYS_TABLE_MAX (or the
 * budget) go on in sorted batches, in the table's room.
 */
static int table_grow(struct scan *sc, struct colstate *s)
{
	size_t nslots = s->kcap * 2;
	uint64_t *t;
	size_t i;

	if (nslots <= KEYS_TABLE_MAX &&
	    (nslots - s->kcap) * sizeof(*t) <= sc->budget) {
		t = table_new(nslots);
		if (!t)
			return -ENOMEM;
		for (i = 0; i < s->kcap; i++) {
			uint64_t *slot;

			if (!s->keys[i])
				continue;
			slot = table_slot(t, nslots - 1, s->keys[i]);
			if (!slot) {
				free(t);
				return table_to_batches(sc, s);
			}
			*slot = s->keys[i];
		}
		sc->budget -= (nslots - s->kcap) * sizeof(*t);
		free(s->keys);
		s->keys = t;
		s->kcap = nslots;
		s->kmask = nslots - 1;
		return 0;
	}
	/* past the biggest table, or the budget: batches in the same room */
	return table_to_batches(sc, s);
}

/* Tier 2 of s goes on in sorted batches, from the hashes of its table. */
static int table_to_batches(struct scan *sc, struct colstate *s)
{
	size_t i;
	size_t j;

	/* The hashes, packed at the front, are one batch to sort. */
	for (i = j = 0; i < s->kcap; i++)
		if (s->keys[i])
			s->keys[j++] = s->keys[i];
	if (s->kzero)
		s->keys[j++] = 0;
	if (s->pending)
		s->keys[j++] = s->pend; /* perhaps there too: the sort dedups */
	s->pending = false;
	s->kmask = 0;
	s->kzero = false;
	s->nkeys = 0;
	s->nbatch = j;
	return csv_keys_flush(sc, s);
}

int csv_keys_put(struct scan *sc, struct colstate *s, uint64_t h)
{
	return keys_add(sc, s, h);
}

/*
 * Tier 1 is full: move its hashes to tier 2 (or, past the budget, to
 * tier 3, with one more value than it holds: the one that did not fit).
 */
static int col_to_keys(struct scan *sc, struct colstate *s)
{
	struct cset *set = &s->set;
	size_t cap = KEYS_TABLE_FIRST;
	size_t i;
	int rc = 0;

	if (cap * sizeof(*s->keys) > sc->budget)
		return col_estimate(sc, s, set->size + 1);
	s->keys = table_new(cap);
	if (!s->keys)
		return -ENOMEM;
	sc->budget -= cap * sizeof(*s->keys);
	s->kcap = cap;
	s->kmask = cap - 1;
	/*
	 * At most CSV_CAT_MAX hashes: the table stays at most a quarter
	 * full.  None (no slots) when a merge brings a part's tier 2 into a
	 * column with no values yet.
	 */
	for (i = 0; rc == 0 && set->slots && i <= set->mask; i++)
		if (set->slots[i].count)
			rc = keys_add(sc, s, set->slots[i].hash);
	if (set->slots)
		sc->budget += (set->mask + 1) * sizeof(*set->slots);
	free(set->slots);
	memset(set, 0, sizeof(*set));
	return rc;
}

/* Count hash h in tier 2 or 3, whichever s is in. */
static int add_hash(struct scan *sc, struct colstate *s, uint64_t h)
{
	if (s->hll) {
		hll_add(s->hll, h);
		return 0;
	}
	return keys_add(sc, s, h);
}

/* csv_col_distinct() of a value seen times. */
static int col_distinct_n(struct scan *sc, struct colstate *s, uint64_t h,
			  uint32_t flags, const char *p, size_t n,
			  uint64_t times)
{
	int rc;

	if (s->hll || s->keys)
		return add_hash(sc, s, h);
	rc = csv_cset_add(&s->set, h, flags, p, n, times, &sc->budget,
			  CSV_CAT_MAX);
	if (rc != -ENOSPC)
		return rc < 0 ? rc : 0;
	if (s->set.size == CSV_CAT_MAX)
		rc = col_to_keys(sc, s);
	else
		rc = col_estimate(sc, s, s->set.size + 1);
	return rc < 0 ? rc : add_hash(sc, s, h);
}

int csv_col_distinct(struct scan *sc, struct colstate *s, uint64_t h,
		     uint32_t flags, const char *p, size_t n)
{
	return col_distinct_n(sc, s, h, flags, p, n, 1);
}

/* A tier 2 or 3 hash of another part into s. */
static int merge_hash(struct scan *sc, struct colstate *s, uint64_t h)
{
	int rc = 0;

	if (!s->hll && !s->keys)
		rc = col_to_keys(sc, s);
	return rc < 0 ? rc : add_hash(sc, s, h);
}

/*
 * b's values were seen after a's: a's spellings stay first, and a value
 * new to a brings b's.  Every tier of a grows only as a serial scan's
 * would: the same values in the end are the same tier, but for the
 * budget, which a part of a split scan holds a share of.
 */
int csv_col_merge(struct scan *sa, struct colstate *a,
		  const struct colstate *b)
{
	size_t i;
	int rc = 0;

	if (b->hll) {
		if (!a->hll) {
			rc = a->keys ? csv_keys_flush(sa, a) : 0;
			if (rc == 0 && !a->hll)
				rc = col_estimate(sa, a,
						  a->keys ? a->nkeys
							  : a->set.size);
			if (rc < 0)
				return rc;
		}
		for (i = 0; i < HLL_REGS; i++)
			a->hll[i] = b->hll[i] > a->hll[i] ? b->hll[i]
							  : a->hll[i];
		a->exact = b->exact > a->exact ? b->exact : a->exact;
		return 0;
	}
	for (i = 0; rc == 0 && i < keys_slots(b); i++)
		if (b->keys[i] || !b->kmask)
			rc = merge_hash(sa, a, b->keys[i]);
	if (rc == 0 && b->kzero)
		rc = merge_hash(sa, a, 0);
	for (i = 0; rc == 0 && b->set.slots && i <= b->set.mask; i++) {
		const struct cset_ent *e = &b->set.slots[i];

		if (e->count)
			rc = col_distinct_n(sa, a, e->hash, e->flags, e->p,
					    e->len, e->count);
	}
	return rc;
}

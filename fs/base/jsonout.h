/* SPDX-License-Identifier: MIT */
/*
 * JSON as people read it: what the mount shows (stats, schema, lineage,
 * meta.json, metrics.json, trials) prints each real number as the
 * shortest decimal that reads back to the same double (5.471, not
 * 5.4710000000000001), which jansson's fixed precision cannot do.  The
 * same rule prints the numbers of predict's CSV answers (floats).
 */
#ifndef MLFS_FS_JSONOUT_H
#define MLFS_FS_JSONOUT_H

#include <stddef.h>

#include <jansson.h>

/* Bytes num_shortest may write, with its NUL. */
#define NUM_SHORTEST_MAX 32

/*
 * num_shortest: v as the shortest decimal that reads back to the same
 * double (digits 17) or, with digits 9, to the same float (v is then
 * taken as a float), printed as "%.Ng" prints it with N the digits it
 * needs: "0.1", "1e+300", "2.5e+05", "-0", "nan", "inf".  out holds
 * NUM_SHORTEST_MAX bytes; returns the length.  The float form takes no
 * printf in the common case (predict prints every answer with it).  Any
 * thread.
 */
size_t num_shortest(double v, int digits, char *out);

/*
 * num_g17: v as printf's "%.17g" prints it (the same bytes: a text that
 * reads back to v), into out (NUM_SHORTEST_MAX bytes); returns the
 * length.  Without printf for |v| from 1e-4 to under 1e17, with it
 * otherwise.  Any thread.
 */
size_t num_g17(double v, char *out);

/*
 * json_dumps_short: json_dumps(j, flags) with every real number in its
 * shortest round-trip form.  malloc'd text, or NULL (no memory, or j
 * cannot be encoded).  Any thread.
 */
char *json_dumps_short(const json_t *j, size_t flags);

/* json_dump_file_short: the same into path (replaced); 0 or -errno. */
int json_dump_file_short(const json_t *j, const char *path, size_t flags);

/*
 * sb_json_string: p[0..n) as a JSON string, quoted and escaped, appended
 * to sb (its err set on failure).  Bytes that are not UTF-8 are kept as
 * they are: the text is the caller's to have checked.  For logs written
 * a row at a time, where building a json_t per row would cost more than
 * the row.
 */
struct strbuf;
void sb_json_string(struct strbuf *sb, const char *p, size_t n);

/*
 * Prometheus text exposition: the "# HELP" and "# TYPE" lines that open
 * a metric family (one pair a family: promtool refuses repeats).
 */
void sb_prom_family(struct strbuf *sb, const char *name, const char *type,
		    const char *help);

/*
 * prom_merge: expositions texts[0..n) (lens[i] bytes each) as one: each
 * family's HELP and TYPE once, then every sample of it from every text,
 * families in the order they first appear.  A sample belongs to the
 * family its text last opened.  Appends to out.
 */
void prom_merge(const char *const *texts, const size_t *lens, size_t n,
		struct strbuf *out);

/* j dumped with flags (json_dumps'), appended to sb. */
void sb_put_json(struct strbuf *sb, const json_t *j, size_t flags);

#endif

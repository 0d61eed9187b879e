/* SPDX-License-Identifier: MIT */
/*
 * The record loop of the CSV scan, as a template that csv.c includes
 * twice: once for any CPU, once for x86-64 cores with SSE4.1, whose
 * FAST_FIELD reads a number 16 bytes at a time (csv_simd.h); scan_rows()
 * picks one at run time.  Define SCAN_ROWS (the name), SCAN_ROWS_FN (its
 * attributes) and FAST_FIELD (fast_field() or one with its signature)
 * before including it.  No include guard, on purpose.
 */

/*
 * The data records: fast_field() or plain_field() where they can,
 * csv_field_next() otherwise.
 * The physical position lives in locals here, and in *sc around slow
 * fields.
 */
static SCAN_ROWS_FN int SCAN_ROWS(struct scan *sc, struct colstate *cs,
				  size_t ncols, struct matbuf *mb,
				  uint64_t *nrows_out)
{
	const char *const start = sc->tok.p;
	const char *const end = sc->tok.end;
	const char *p = start;
	const char *line_start = sc->tok.line_start;
	const char *blank_end = p; /* blank lines before it don't reach EOF */
	const size_t max_field = sc->tok.max_field;
	uint64_t line = sc->tok.line;
	uint64_t nrows = 0;
	int rc;

	while (p < end) {
		const char *rec = p;
		const char *term_at = p;
		uint64_t rec_line = line;
		uint64_t term_line = line;
		uint64_t term_col = 1;
		float *row = NULL;
		size_t c = 0;
		enum csv_term term = CSV_TERM_COMMA;

		if ((*p == '\n' || *p == '\r') && p >= blank_end) {
			blank_end = skip_blank(p, sc->data_end);
			if (blank_end == sc->data_end)
				break;
		}
		if (mb) {
			if (nrows == mb->ready) {
				rc = mat_reserve(mb, ncols, nrows,
						 (size_t)(p - start),
						 (size_t)(end - start));
				if (rc < 0)
					return rc;
			}
			row = mb->data + nrows * ncols;
		}
		while (term == CSV_TERM_COMMA) {
			const char *q;
			const char *next;
			double v;
			struct csv_field f;

			if (c == ncols) {
				sc->tok.p = p;
				sc->tok.line = line;
				sc->tok.line_start = line_start;
				return csv_too_many(&sc->tok, ncols);
			}
			if (FAST_FIELD(p, end, max_field, &v, &q, &next,
				       &term)) {
				if (q == p) {
					cs[c].missing++;
				} else {
					rc = col_add_num(sc, &cs[c], v, p,
							 (size_t)(q - p));
					if (rc < 0)
						return rc;
				}
				if (row)
					row[c] = (float)v;
			} else if (plain_field(p, end, max_field, &q, &next,
					       &term)) {
				rc = col_add_plain(sc, &cs[c], p,
						   (size_t)(q - p),
						   row ? &row[c] : NULL);
				if (rc < 0)
					return rc;
			} else {
				sc->tok.p = p;
				sc->tok.line = line;
				sc->tok.line_start = line_start;
				rc = csv_field_next(&sc->tok, &f);
				if (rc < 0)
					return rc;
				rc = col_add_field(sc, &cs[c], &f,
						   row ? &row[c] : NULL);
				if (rc < 0)
					return rc;
				p = sc->tok.p;
				line = sc->tok.line;
				line_start = sc->tok.line_start;
				term = f.term;
				term_at = f.term_at;
				term_line = f.term_line;
				term_col = f.term_col;
				c++;
				continue; /* the position is set */
			}
			if (term != CSV_TERM_COMMA) {
				term_at = q;
				term_line = line;
				term_col = (uint64_t)(q - line_start) + 1;
			}
			if (term == CSV_TERM_EOL) {
				line++;
				line_start = next;
			}
			p = next;
			c++;
		}
		if (c < ncols)
			return csv_ragged(sc->tok.pb, term_line, term_col, c,
					  ncols);
		if ((size_t)(term_at - rec) > sc->max_line)
			return csv_too_big(sc->tok.pb, rec_line, 1, "record",
					   sc->max_line);
		nrows++;
	}
	sc->tok.p = p;
	sc->tok.line = line;
	sc->tok.line_start = line_start;
	*nrows_out = nrows;
	return 0;
}

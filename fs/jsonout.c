/* SPDX-License-Identifier: MIT */
/*
 * Shortest round-trip reals in JSON text (jsonout.h).  jansson prints
 * every real with one precision (17 digits by default, for round trips),
 * so the text is dumped as jansson does it and each real number token,
 * outside strings, is printed again with the fewest digits (1 to 17) that
 * strtod reads back to the same double.  Pure functions; any thread.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonout.h"

/* The shortest %.Ng (N = 1..17) of v that reads back as v, into out. */
static void shortest(double v, char *out, size_t outlen)
{
	for (int p = 1; p <= 17; p++) {
		snprintf(out, outlen, "%.*g", p, v);
		if (strtod(out, NULL) == v)
			break;
	}
	/* a real stays a real: "5" would read back as an integer */
	if (!strpbrk(out, ".eEn") && strlen(out) + 2 < outlen)
		strcat(out, ".0");
}

char *json_dumps_short(const json_t *j, size_t flags)
{
	char *in = json_dumps(j, flags), *out;
	size_t n, o = 0;
	bool str = false;

	if (!in)
		return NULL;
	n = strlen(in);
	out = malloc(n + 1); /* never longer: 17 digits is jansson's most */
	if (!out) {
		free(in);
		return NULL;
	}
	for (size_t i = 0; i < n;) {
		char c = in[i];

		if (str) {
			out[o++] = c;
			i++;
			if (c == '\\' && i < n)
				out[o++] = in[i++];
			else if (c == '"')
				str = false;
			continue;
		}
		if (c == '"') {
			str = true;
			out[o++] = in[i++];
			continue;
		}
		if (c == '-' || (c >= '0' && c <= '9')) {
			size_t k = i + 1;
			bool real = false;
			char num[40];

			while (k < n && strchr("0123456789+-.eE", in[k])) {
				real = real || strchr(".eE", in[k]);
				k++;
			}
			if (real && k - i < sizeof(num)) {
				char fmt[40];

				memcpy(num, in + i, k - i);
				num[k - i] = '\0';
				shortest(strtod(num, NULL), fmt, sizeof(fmt));
				if (strlen(fmt) <= k - i) {
					memcpy(out + o, fmt, strlen(fmt));
					o += strlen(fmt);
					i = k;
					continue;
				}
			}
			memcpy(out + o, in + i, k - i);
			o += k - i;
			i = k;
			continue;
		}
		out[o++] = in[i++];
	}
	out[o] = '\0';
	free(in);
	return out;
}

int json_dump_file_short(const json_t *j, const char *path, size_t flags)
{
	char *text = json_dumps_short(j, flags);
	FILE *fp;
	int rc = 0;

	if (!text)
		return -ENOMEM;
	fp = fopen(path, "we");
	if (!fp) {
		free(text);
		return -errno;
	}
	if (fputs(text, fp) < 0)
		rc = -EIO;
	if (fclose(fp) != 0 && rc == 0)
		rc = -EIO;
	free(text);
	return rc;
}

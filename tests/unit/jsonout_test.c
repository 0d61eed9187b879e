/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for jsonout (fs/jsonout.c): reals print as the shortest
 * decimal that reads back to the same double, strings and integers are
 * left alone, and the text parses back equal.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "jsonout.h"
#include "tap.h"

int main(void)
{
	json_t *j = json_pack(
		"{s:f, s:f, s:f, s:f, s:f, s:s, s:[i, f, f, f], s:i}", "a",
		5.471, "b", 0.1, "c", 1.0, "d", 1e300, "e",
		0.30000000000000004, "s", "5.4710000000000001", "n", 7, 2.5,
		-0.0, 123456789.123, "i", 42);
	char *text = json_dumps_short(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_t *back;

	is_str(text,
	       "{\"a\":5.471,\"b\":0.1,\"c\":1.0,\"d\":1e+300,"
	       "\"e\":0.30000000000000004,\"s\":\"5.4710000000000001\","
	       "\"n\":[7,2.5,-0.0,123456789.123],\"i\":42}",
	       "shortest reals, strings and integers as they are");
	back = text ? json_loads(text, 0, NULL) : NULL;
	ok(back && json_equal(back, j), "reads back equal");
	json_decref(back);
	free(text);
	text = json_dumps_short(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	ok(text && strstr(text, "\"a\": 5.471,\n"), "indented too");
	free(text);
	json_decref(j);
	return done();
}

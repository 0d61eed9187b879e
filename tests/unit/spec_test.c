/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for spec_check_text (fs/ml/spec.c): a valid spec written in two
 * pieces, cut at every byte, is never refused before its end (jansson
 * calls a cut number, literal or escape invalid syntax); bad text still
 * fails at the write that carries it, with line and column.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "problem.h"
#include "spec.h"
#include "tap.h"

static const char *const valid[] = {
	"{\"dataset\": \"iris@1\", \"algorithm\": \"logistic\", "
	"\"params\": {\"l2\": 0.001, \"max_iter\": 1e3, \"tol\": -1.5E-4}, "
	"\"split\": {\"train\": 0.6, \"stratify\": true, \"seed\": 42}, "
	"\"model\": \"caf\\u00e9\", \"search\": null, \"x\": false, "
	"\"y\": [-0, 1E+2, \"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]}",
	"{\"a\":[true,false,null,0,-1,2.5e-3]}",
	/* a real whose digits, cut, are an integer too big for jansson
	 * (found by tests/fuzz spec_fuzz) */
	"{\"lr\": 77777777777777777777777777777777777777777777771e-2, "
	"\"b\": -99999999999999999999999.5}",
	/* raw UTF-8 of 2, 3 and 4 bytes: a write may cut a character */
	"{\"model\": \"caf\xc3\xa9\", \"memory\": \"\xce\xbf\", "
	"\"note\": \"\xe2\x82\xac \xf0\x9f\x98\x80\"}",
};

static const struct {
	const char *text;
	const char *msg; /* substring of the problem */
	unsigned col;
} bad[] = {
	{ "{\"a\": tru}", "invalid token", 9 },
	{ "{\"a\": 1.x", "invalid token", 0 },
	{ "{\"a\" 1", "':' expected", 0 },
	{ "{\"a\": 1} x", "end of file expected", 0 },
	{ "[1, 2]", "a spec is a JSON object", 1 },
	{ "{\"a\": nan}", "invalid token", 0 },
	{ "{\"a\": \"\\x\"}", "invalid escape", 0 },
	{ "{\"a\": \"\xce\"}", "unable to decode byte", 0 },
};

int main(void)
{
	struct problem pb;
	char msg[200];

	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		size_t len = strlen(valid[i]), failed = 0, at = 0;

		for (size_t k = 0; k <= len; k++) {
			memset(&pb, 0, sizeof(pb));
			if (spec_check_text(valid[i], k, false, &pb) < 0 &&
			    !failed++)
				at = k;
		}
		snprintf(msg, sizeof(msg),
			 "valid spec %zu cut at each of %zu bytes", i, len + 1);
		ok(failed == 0, msg);
		if (failed)
			printf("#   first refused at byte %zu: %s\n", at,
			       pb.msg);
		memset(&pb, 0, sizeof(pb));
		is_int(spec_check_text(valid[i], len, true, &pb), 0,
		       "and whole, at close");
		memset(&pb, 0, sizeof(pb));
		is_int(spec_check_text(valid[i], len - 1, true, &pb), -EINVAL,
		       "cut, at close: incomplete");
		ok(strstr(pb.msg, "incomplete JSON") != NULL, pb.msg);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&pb, 0, sizeof(pb));
		is_int(spec_check_text(bad[i].text, strlen(bad[i].text), false,
				       &pb),
		       -EINVAL, bad[i].text);
		ok(strstr(pb.msg, bad[i].msg) != NULL, pb.msg);
		if (bad[i].col)
			is_int(pb.col, bad[i].col, "its column");
	}
	return done();
}

/* SPDX-License-Identifier: MIT */
/*
 * names: the name grammar of objects and aliases (DESIGN.md), version
 * names, the strbuf ceiling, and problem rendering.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "failalloc.h"
#include "node.h"
#include "problem.h"
#include "tap.h"

static const struct {
	const char *name;
	int rc;
	const char *msg; /* substring of the problem */
} names[] = {
	{ "iris", 0, NULL },
	{ "A-b_c.1", 0, NULL },
	{ "v1x", 0, NULL },
	{ "latest2", 0, NULL },
	{ "", -EINVAL, "empty name" },
	{ ".hidden", -EINVAL, "starts with '.'" },
	{ "..", -EINVAL, "starts with '.'" },
	{ "latest", -EINVAL, "is reserved" },
	{ "v3", -EINVAL, "is reserved" },
	{ "v01", -EINVAL, "is reserved" },
	{ "v0", -EINVAL, "is reserved" },
	{ "v99999999999", -EINVAL, "is reserved" },
	{ "a b", -EINVAL, "has ' '" },
	{ "a/b", -EINVAL, "has '/'" },
	{ "caf\xc3\xa9", -EINVAL, "byte 0xc3" },
	{ "tab\there", -EINVAL, "byte 0x09" },
};

int main(void)
{
	char long_name[300], out[256];
	struct problem pb;
	struct strbuf sb = { 0 };
	unsigned v;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		memset(&pb, 0, sizeof(pb));
		is_int(node_name_check(names[i].name, &pb), names[i].rc,
		       names[i].name);
		if (names[i].msg)
			ok(strstr(pb.msg, names[i].msg) != NULL, pb.msg);
	}
	memset(long_name, 'x', 255);
	long_name[255] = '\0';
	is_int(node_name_check(long_name, NULL), 0, "255 bytes is fine");
	long_name[255] = 'x';
	long_name[256] = '\0';
	is_int(node_name_check(long_name, NULL), -EINVAL, "256 bytes is not");

	ok(node_name_is_version("v1", &v) && v == 1, "v1");
	ok(node_name_is_version("v123", &v) && v == 123, "v123");
	ok(!node_name_is_version("v", &v), "v alone");
	ok(!node_name_is_version("v01", &v), "one spelling per version");
	ok(!node_name_is_version("v1a", &v), "v1a");
	ok(!node_name_is_version("v9999999999", &v), "too large");

	sb.max = 8;
	is_int(sb_puts(&sb, "12345678"), 0, "fills to the ceiling");
	is_int(sb_puts(&sb, "9"), -E2BIG, "past the ceiling");
	is_int(sb_puts(&sb, ""), -E2BIG, "the error sticks");
	sb_free(&sb);
	sb = (struct strbuf){ 0 };
	is_int(sb_printf(&sb, "%0600d", 7), 0, "long printf");
	is_int(sb.len, 600, "its length");
	sb_free(&sb);
	for (unsigned n = 1;; n++) {
		int rc;

		sb = (struct strbuf){ 0 };
		failalloc_arm(n);
		rc = sb_printf(&sb, "%0900d", 1);
		failalloc_arm(0);
		sb_free(&sb);
		if (rc == 0) {
			ok(n > 1, "allocation failures are -ENOMEM until success");
			break;
		}
		if (rc != -ENOMEM) {
			is_int(rc, -ENOMEM, "allocation failure");
			break;
		}
	}

	memset(&pb, 0, sizeof(pb));
	snprintf(pb.path, sizeof(pb.path), "train/j.json");
	is_int(problem_field(&pb, "{\n  \"l2\": -1}", "l2", "must be >= 0"),
	       -EINVAL, "problem_field");
	problem_format(&pb, out, sizeof(out));
	is_str(out, "train/j.json:2:3: \"l2\": must be >= 0", "rendered");
	memset(&pb, 0, sizeof(pb));
	problem_set(&pb, 0, 0, "no position");
	problem_format(&pb, out, sizeof(out));
	is_str(out, "no position", "without a path or position");
	{
		static const struct {
			const char *raw;
			size_t len;
			const char *name;
		} enc[] = {
			{ "c1", 2, "c1" },
			{ "a/b,c", 5, "a%2Fb%2Cc" },
			{ ".x", 2, "%2Ex" },
			{ "x.y~_-", 6, "x.y~_-" },
			{ "\xc3\xa9 %", 4, "%C3%A9%20%25" },
			{ "", 0, "" },
		};
		static const char *const bad[] = { "%", "%2", "%zz", "%41",
						   "a b", "a/b", ".x", "%2e",
						   "x%2Ey" };
		char buf[64];

		for (size_t i = 0; i < sizeof(enc) / sizeof(enc[0]); i++) {
			long n = name_encode(enc[i].raw, enc[i].len, buf,
					     sizeof(buf));

			is_str(n >= 0 ? buf : "(error)", enc[i].name,
			       "name_encode");
			n = name_decode(enc[i].name, strlen(enc[i].name), buf,
					sizeof(buf));
			ok(n == (long)enc[i].len &&
				   !memcmp(buf, enc[i].raw, enc[i].len),
			   "name_decode gives the bytes back");
		}
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
			is_int(name_decode(bad[i], strlen(bad[i]), buf,
					   sizeof(buf)),
			       -EINVAL, bad[i]);
		is_int(name_encode("/////", 5, buf, 10), -ENAMETOOLONG,
		       "an encoding past its room");
	}
	return done();
}

/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the record loop's SSE4.1 number reader (csv_simd.h)
 * against the loop for any CPU (csv_both_ways(), tests/unit/csvboth.h:
 * csv.c built in): each input is scanned both ways, with the float
 * matrix, with the default limits and with fields of at most 12 bytes
 * (each side of the reader's 15): the same error at the same place, or
 * the same rows and every column's type, counts, distinct count and
 * classes, and the same statistics and matrix to the bit.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "csvboth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct csv_limits short_field = { .max_field = 12 };
	bool failed;

	if (!__builtin_cpu_supports("sse4.1"))
		return 0;
	if (!csv_both_ways((const char *)data, size, NULL, &failed) ||
	    !csv_both_ways((const char *)data, size, &short_field, &failed))
		abort();
	return 0;
}

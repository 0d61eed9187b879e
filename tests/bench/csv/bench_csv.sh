#!/bin/bash
# SPDX-License-Identifier: MIT
#
# bench_csv.sh [DIR] - csv_scan() against numpy.loadtxt on a 500 MB
# numeric CSV (20 columns of "%.6f"-style decimals).
#
# Builds gen_csv and csv_bench with -O2 into DIR (default /tmp/mlfs-bench),
# writes the CSV there, and times, in 3 rounds of one run each:
#   scan    csv_scan(): validation, schema, stats and the float matrix,
#           in parts on threads (one a core)
#   scan1   the same in one pass, on one thread (csv_scan_split(), 1 part)
#   strtod  a plain tokenizer converting each field with strtod()
#   fast    the same tokenizer with csv_parse_double()
#   numpy   numpy.loadtxt(delimiter=',', skiprows=1, dtype=float32),
#           timing only the loadtxt call
# and prints the medians and the speedup of scan over numpy.  The CSV is
# removed on exit.  MB is 10^6 bytes.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
dir=${1:-/tmp/mlfs-bench}
mb=${MLFS_BENCH_MB:-500}
runs=${MLFS_BENCH_RUNS:-3}
csv=$dir/bench.csv
cc=${CC:-cc}

mkdir -p "$dir"
trap 'rm -f "$csv"' EXIT

"$cc" -std=c17 -O2 -Wall -Wextra -o "$dir/gen_csv" "$here/gen_csv.c"
"$cc" -std=c17 -O2 -Wall -Wextra -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 \
	-I"$root/fs/base" -o "$dir/csv_bench" "$here/csv_bench.c" \
	"$root"/fs/base/csv*.c "$root/fs/base/problem.c" \
	"$root/fs/base/names.c" -lm -ljansson -pthread

echo "generating $mb MB in $csv"
"$dir/gen_csv" "$mb" > "$csv"
bytes=$(stat -c %s "$csv")
# Into the page cache, so that every contender starts alike.
cat "$csv" > /dev/null

# median of the numbers on stdin
median() {
	sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

# seconds for one csv_bench run in mode $1
bench_run() {
	"$dir/csv_bench" "$csv" "$1" 2>/dev/null |
		sed -n 's/.* in \([0-9.]*\) s = .*/\1/p'
}

# numpy.loadtxt, timing only the call; prints seconds
numpy_run() {
	/usr/bin/python3 -c "
import sys, time, numpy
t = time.perf_counter()
numpy.loadtxt(sys.argv[1], delimiter=',', skiprows=1, dtype=numpy.float32)
print(time.perf_counter() - t)" "$csv"
}

# Rounds of one run each, so that other load on the machine hits every
# contender alike.
declare -A times med
for ((i = 0; i < runs; i++)); do
	for mode in scan scan1 strtod fast; do
		times[$mode]+="$(bench_run "$mode") "
	done
	times[numpy]+="$(numpy_run) "
done
for k in scan scan1 strtod fast numpy; do
	echo "$k: ${times[$k]}s"
	med[$k]=$(printf '%s\n' ${times[$k]} | median)
done

echo
printf '%-8s %8s %9s\n' what 's' 'MB/s'
for k in scan scan1 strtod fast numpy; do
	awk -v k="$k" -v t="${med[$k]}" -v b="$bytes" \
		'BEGIN { printf "%-8s %8.3f %9.1f\n", k, t, b / 1e6 / t }'
done
awk -v a="${med[numpy]}" -v b="${med[scan]}" \
	'BEGIN { printf "mlfs/numpy speedup (medians): %.2fx\n", a / b }'
awk -v a="${med[numpy]}" -v b="${med[scan1]}" \
	'BEGIN { printf "one pass/numpy speedup (medians): %.2fx\n", a / b }'

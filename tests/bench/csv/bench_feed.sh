#!/bin/bash
# SPDX-License-Identifier: MIT
#
# bench_feed.sh [DIR] - csv_feed(), the check of records as they are
# appended to data.csv, on a 500 MB numeric CSV fed in 128 KiB pieces
# (csv_bench's feed mode), and optionally the same at another commit.
#
# Builds gen_csv and csv_bench with -O2 into DIR (default /tmp/mlfs-bench)
# from this tree's fs/base and, if MLFS_BENCH_BASE names a commit
# (MLFS_BENCH_BASE=main), from that commit's fs/base too; writes the CSV
# there and times rounds of one run of each, then prints the medians in
# MB/s (10^6 bytes per CPU second).  The CSV is removed on exit.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
dir=${1:-/tmp/mlfs-bench}
mb=${MLFS_BENCH_MB:-500}
runs=${MLFS_BENCH_RUNS:-3}
base=${MLFS_BENCH_BASE:-}
csv=$dir/feed.csv
cc=${CC:-cc}

mkdir -p "$dir"
trap 'rm -rf "$csv" "$dir/base-src"' EXIT

# csv_bench against the fs/base sources in $1, as $2
build() {
	"$cc" -std=c17 -O2 -Wall -Wextra -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 \
		-I"$1" -o "$2" "$here/csv_bench.c" "$1"/csv*.c \
		"$1/problem.c" $([ -f "$1/names.c" ] && echo "$1/names.c") -lm
}

"$cc" -std=c17 -O2 -Wall -Wextra -o "$dir/gen_csv" "$here/gen_csv.c"
build "$root/fs/base" "$dir/feed_tree"
kinds=(tree)
if [ -n "$base" ]; then
	mkdir -p "$dir/base-src"
	git -C "$root" archive "$base" fs/base | tar -x -C "$dir/base-src"
	build "$dir/base-src/fs/base" "$dir/feed_base"
	kinds=(base tree)
fi

echo "generating $mb MB in $csv"
"$dir/gen_csv" "$mb" > "$csv"
cat "$csv" > /dev/null

median() {
	sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

declare -A speeds
for ((i = 0; i < runs; i++)); do
	for k in "${kinds[@]}"; do
		speeds[$k]+="$("$dir/feed_$k" "$csv" feed 2>/dev/null |
			sed -n 's/.* = \([0-9.]*\) MB\/s/\1/p') "
	done
done
for k in "${kinds[@]}"; do
	printf '%-5s %s MB/s; median %s MB/s\n' "$k" "${speeds[$k]}" \
		"$(printf '%s\n' ${speeds[$k]} | median)"
done

#!/bin/bash
# SPDX-License-Identifier: MIT
#
# bench_train.sh [DIR] - the logistic and mlp plugins against
# scikit-learn on the same synthetic data (see bench_train.py), with
# OPENBLAS_NUM_THREADS=2 for both (each side prints the threads its BLAS
# reports).  scikit-learn gets float32, as the plugins do, and float64
# beside it; both sides time from the arrays in memory to the fitted
# model (plugin init + fit; fit() with its input checks), RUNS times
# (default 3), and the ratios are computed from the printed medians.
# Builds the plugins and train_bench with -O2 into DIR (default
# /tmp/mlfs-bench-train); the data files (about 450 MB) are removed on
# exit.
#
#   logistic  1,000,000 x 50, two classes, lbfgs, default l2 (sklearn C=1)
#   mlp       200,000 x 100, ten classes, hidden [64], 50 epochs,
#             batch 200, no early stopping
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
dir=${1:-/tmp/mlfs-bench-train}
cc=${CC:-cc}
runs=${RUNS:-3}
export OPENBLAS_NUM_THREADS=2 OMP_NUM_THREADS=2

mkdir -p "$dir"
trap 'rm -f "$dir/logistic.bin" "$dir/mlp.bin"' EXIT
blas=$(pkg-config --cflags --libs openblas)
for p in logistic mlp; do
	# shellcheck disable=SC2086
	"$cc" -std=c17 -O2 -shared -fPIC -fvisibility=hidden -D_GNU_SOURCE \
		-I"$root/plugins" -o "$dir/$p.so" "$root/plugins/train/$p.c" \
		$blas -lm
done
"$cc" -std=c17 -O2 -Wall -Wextra -D_GNU_SOURCE -I"$root/plugins" \
	-o "$dir/train_bench" "$here/train_bench.c"

# fit_s LINE: the median fit seconds a side printed ("fit 1.234 s")
fit_s() { sed -n 's/.*: fit \([0-9.]*\) s .*/\1/p' <<<"$1"; }

# compare NAME [p=v ...]: both sides, then the ratios of their medians
compare() {
	local name=$1 sk ml f32 f64 m
	shift
	sk=$(/usr/bin/python3 "$here/bench_train.py" "$dir" "$name" "$runs")
	printf '%s\n' "$sk"
	ml=$("$dir/train_bench" -n "$runs" "$dir/$name.so" "$dir/$name.bin" "$@")
	printf '%s\n' "$ml"
	f32=$(fit_s "$(grep ' float32:' <<<"$sk")")
	f64=$(fit_s "$(grep ' float64:' <<<"$sk")")
	m=$(fit_s "$ml")
	awk -v n="$name" -v m="$m" -v a="$f32" -v b="$f64" 'BEGIN {
		printf "%s: mlfs / scikit-learn fit time %.2fx (float32), %.2fx (float64)\n",
			n, m / a, m / b }'
}

compare logistic
compare mlp 'hidden=[64]' epochs=50 batch_size=200 early_stopping=false

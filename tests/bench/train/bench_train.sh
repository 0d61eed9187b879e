#!/bin/bash
# SPDX-License-Identifier: MIT
#
# bench_train.sh [DIR] - the logistic and mlp plugins against
# scikit-learn on the same synthetic data (see bench_train.py), with
# OPENBLAS_NUM_THREADS=2 for both.  Builds the plugins and train_bench
# with -O2 into DIR (default /tmp/mlfs-bench-train); the data files
# (about 450 MB) are removed on exit.
#
#   logistic  1,000,000 x 50, two classes, lbfgs, default l2 (sklearn C=1)
#   mlp       200,000 x 100, ten classes, hidden [64], 50 epochs,
#             batch 200, no early stopping
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
dir=${1:-/tmp/mlfs-bench-train}
cc=${CC:-cc}
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

/usr/bin/python3 "$here/bench_train.py" "$dir" logistic
"$dir/train_bench" "$dir/logistic.so" "$dir/logistic.bin"
/usr/bin/python3 "$here/bench_train.py" "$dir" mlp
"$dir/train_bench" "$dir/mlp.so" "$dir/mlp.bin" 'hidden=[64]' epochs=50 \
	batch_size=200 early_stopping=false

#!/bin/bash
# SPDX-License-Identifier: MIT
#
# examples/bundles.sh [MOUNT] - a model moved between two mounts as a
# bundle, and a dataset scored with it, from the top of the source tree:
# train on MOUNT (default /mnt/ml), copy models/<m>/v1/bundle.tar out,
# mount a second store beside it, copy the bundle into that mount's
# models/<m>/import (a job reproduces its sample first), compare the
# answers of both, and batch-score a dataset on the second mount.
# README.md runs it in its tests.
set -euo pipefail

m=${1:-/mnt/ml}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tmp=$(mktemp -d /tmp/mlfs-bundles.XXXXXX)
two=$tmp/mnt
step() { printf '== %s\n' "$*"; }
finish() {
	if mountpoint -q "$two"; then fusermount3 -u "$two"; fi
	rm -rf "$tmp"
}
trap finish EXIT

step "a model on the first mount"
mkdir "$m/datasets/petals"
cp "$here/data/iris.csv" "$m/datasets/petals/data.csv"
echo '{"dataset": "petals@1", "algorithm": "logistic", "model": "petal"}' \
	> "$m/train/petal-1.json"
cat "$m/jobs/petal-1/wait"

step "its bundle: a tar of data, never code"
cp "$m/models/petal/v1/bundle.tar" "$tmp/petal.tar"
tar -tf "$tmp/petal.tar" | paste -sd' '

step "a second mount, on a store of its own, imports it"
mkdir -p "$tmp/store" "$two"
mlfs "$tmp/store" "$two"
mkdir "$two/models/petal"
cp "$tmp/petal.tar" "$two/models/petal/import"
cat "$two/jobs/petal-import-1/status"

step "both answer alike"
tail -n +2 "$here/data/iris.csv" | cut -d, -f1-4 > "$tmp/rows.csv"
n=0
for d in "$m" "$two"; do
	n=$((n + 1))
	cp "$tmp/rows.csv" "$d/models/petal/v1/predict"
	cut -d, -f1 "$d/models/petal/v1/predict" > "$tmp/answers-$n"
done
cmp "$tmp/answers-1" "$tmp/answers-2"
echo "the same $(wc -l < "$tmp/answers-2") classes on both"

step "the second mount scores a dataset with it"
mkdir "$two/datasets/irises"
cp "$here/data/iris.csv" "$two/datasets/irises/data.csv"
echo '{"model": "petal@1", "dataset": "irises@1", "output": "scored",
       "keep": ["species"]}' > "$two/batch/score.json"
cat "$two/jobs/score/wait"
head -2 "$two/datasets/scored/latest/data.csv" | cut -d, -f1-2

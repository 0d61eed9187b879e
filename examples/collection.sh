#!/bin/bash
# SPDX-License-Identifier: MIT
#
# examples/collection.sh [MOUNT] - from files landing on a host to a
# trained model, on a fresh mlfs mount (default /mnt/ml): a landing
# directory followed with inotify, a pipeline that waits for versions
# with `next`, labelling through a queue, anonymizing and balancing with
# prepare, and training on the result.  Each step prints what it shows;
# README.md runs it in its tests.
set -euo pipefail

m=${1:-/mnt/ml}
d=$m/datasets/claims
step() { printf '== %s\n' "$*"; }
host=$(mktemp -d /tmp/mlfs-collection.XXXXXX)
mkdir "$host/staging" "$host/landing"
mover= watcher=
trap 'kill $mover $watcher 2>/dev/null; rm -rf "$host"' EXIT

# An export of claims: claim_id, email, age, amount, fraud (1 when the
# amount is large); day 2 leaves the label of its last 10 rows empty.
export_day() {
	awk -v day="$1" 'BEGIN {
		print "claim_id,email,age,amount,fraud"
		for (i = 1; i <= 60; i++) {
			amount = (i * 37 + day * 11) % 1000
			fraud = amount > 900 ? 1 : 0
			if (day == 2 && i > 50) fraud = ""
			printf "c%d-%02d,user%d@example.org,%d,%d,%s\n", day, i,
				i, 20 + (i * 7) % 50, amount, fraud
		}
	}'
}

step "the first export, copied in by hand"
mkdir "$d"
export_day 1 > "$d/data.csv"
readlink "$d/latest"

step "then a landing directory, followed: each file's rows are appended"
printf 'append\n%s\n' "$host/landing" > "$d/watch"
sed "s|$host|HOST|" "$d/watch"

step "on the host, inotifywait moves finished exports into it whole"
exec 3< <(inotifywait -m -q -e close_write --format %f "$host/staging")
watcher=$!
while read -r -u 3 f; do mv "$host/staging/$f" "$host/landing/$f"; done &
mover=$!
sleep 0.2

step "the next export arrives; a pipeline waits for its version"
export_day 2 > "$host/staging/day2.csv"
v=$(cat "$d/v1/next")     # blocks until a version newer than v1 exists
echo "$v: $(($(wc -l < "$d/$v/data.csv") - 1)) rows"
echo > "$d/watch"         # stop following

step "labelling: the queue, and answers by a rule (a person would do)"
head -3 "$d/label/queue"
awk -F, 'NR > 1 { print $1 "," ($4 > 900 ? 1 : 0) }' "$d/label/queue" \
	> "$d/label/answers"
sed 's/.*"unlabelled": \([0-9]*\).*/unlabelled: \1/' "$d/label/stats"

step "prepare: drop the e-mail, bucket the age, balance the classes"
cat > "$d/prepare" <<'JSON'
{"steps": [{"anonymize": {"email": "drop", "age": "bucket:10"}},
           {"balance": {"method": "smote", "k": 3}}],
 "output": "claims_train", "seed": 7}
JSON
cat "$m/jobs/claims-prepare-1/wait"
cut -d, -f4 "$m/datasets/claims_train/latest/data.csv" | sort | uniq -c

step "train on it, and score a large claim"
echo '{"dataset": "claims_train", "algorithm": "logistic", "model": "fraud", "params": {"l2": 0.0001}}' \
	> "$m/train/fraud1.json"
cat "$m/jobs/fraud1/wait"
echo 30,990 > "$m/models/fraud/predict"
cut -d, -f1 "$m/models/fraud/predict"

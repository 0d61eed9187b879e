#!/bin/bash
# SPDX-License-Identifier: MIT
#
# examples/deployments.sh [MOUNT] - serving in a shell, on an mlfs mount
# (default /mnt/ml), from the top of the source tree: two versions of a
# model, a blue-green deployment, traffic, labels fed back, a rollback
# the deployment makes by itself, and a bandit that learns which version
# answers better.  Each step prints what it shows; README.md runs it in
# its tests.
set -euo pipefail

m=${1:-/mnt/ml}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
step() { printf '== %s\n' "$*"; }

# the rows of iris.csv without their label
features() { tail -n +2 "$here/data/iris.csv" | cut -d, -f1-4; }

step "two versions: flower@1, and flower@2 from a badly labelled export"
mkdir "$m/datasets/flowers"
cp "$here/data/iris.csv" "$m/datasets/flowers/data.csv"
echo '{"dataset": "flowers@1", "algorithm": "logistic", "model": "flower"}' \
	> "$m/train/flower-1.json"
cat "$m/jobs/flower-1/wait"
# every other versicolor and virginica row swapped: a bad export
awk -F, -v OFS=, 'NR > 1 && $5 != "setosa" && NR % 2 {
	$5 = $5 == "versicolor" ? "virginica" : "versicolor" } 1' \
	"$here/data/iris.csv" > "$m/datasets/flowers/data.csv"
echo '{"dataset": "flowers@2", "algorithm": "logistic", "model": "flower"}' \
	> "$m/train/flower-2.json"
cat "$m/jobs/flower-2/wait"

step "deploy blue-green: flower@1 serves, flower@2 waits"
mkdir "$m/deployments/shop"
cat > "$m/deployments/shop/spec" <<'JSON'
{"strategy": "blue-green", "candidates": ["flower@1", "flower@2"],
 "rollback": {"accuracy_below": 0.9, "min_requests": 50}}
JSON
echo 5.1,3.5,1.4,0.2 > "$m/deployments/shop/predict"
cat "$m/deployments/shop/predict"              # a request id, then the answer

step "promote: flower@2 takes the traffic"
echo promote > "$m/deployments/shop/ctl"
cat "$m/deployments/shop/traffic"
features | shuf --random-source=<(yes) > /tmp/shop-rows.csv
cp /tmp/shop-rows.csv "$m/deployments/shop/predict"
cat "$m/deployments/shop/predict" > /tmp/shop-answers.csv
cat "$m/deployments/shop/status"

step "labels arrive: flower@2 is wrong too often, and rolls back"
# the true species of each row, by its request id
paste -d, <(cut -d, -f1 /tmp/shop-answers.csv) \
	<(while IFS= read -r row; do
		grep -m1 "^$row," "$here/data/iris.csv" | cut -d, -f5
	done < /tmp/shop-rows.csv) > "$m/deployments/shop/feedback"
cut -d' ' -f1-5 "$m/deployments/shop/status"
cat "$m/deployments/shop/traffic"
tail -1 "$m/deployments/shop/log" | cut -d' ' -f2-4

step "a bandit: epsilon-greedy learns from the same labels"
cat > "$m/deployments/shop/spec" <<'JSON'
{"strategy": "epsilon-greedy", "epsilon": 0.1, "seed": 7,
 "candidates": ["flower@1", "flower@2"]}
JSON
for round in 1 2 3 4 5 6; do
	cp /tmp/shop-rows.csv "$m/deployments/shop/predict"
	cat "$m/deployments/shop/predict" > /tmp/shop-answers.csv
	paste -d, <(cut -d, -f1 /tmp/shop-answers.csv) \
		<(while IFS= read -r row; do
			grep -m1 "^$row," "$here/data/iris.csv" | cut -d, -f5
		done < /tmp/shop-rows.csv) > "$m/deployments/shop/feedback"
done
awk '$3 > 600 { print $1, "answered most of the requests" }' \
	"$m/deployments/shop/traffic"
rm -f /tmp/shop-rows.csv /tmp/shop-answers.csv

#!/bin/bash
# SPDX-License-Identifier: MIT
#
# examples/monitoring.sh [MOUNT] - a deployment watched, on an mlfs mount
# (default /mnt/ml), from the top of the source tree: a model of orders,
# deployed with monitoring and a closed loop; ordinary traffic, then
# traffic whose amounts moved; the drift alert, the retrain it starts,
# and the new version entering as a canary, all without a human step.
# Each step prints what it shows; README.md runs it in its tests.
set -euo pipefail

m=${1:-/mnt/ml}
step() { printf '== %s\n' "$*"; }

# n rows of amount,hour,channel (and a label with labels=1): amounts
# around 50 + shift, the label says whether the order was returned
orders() {
	awk -v n="$1" -v shift="$2" -v seed="$3" -v labels="${4:-0}" 'BEGIN {
		srand(seed)
		if (labels) print "amount,hour,channel,returned"
		for (i = 0; i < n; i++) {
			u = rand(); v = rand()
			a = 50 + shift + 15 * sqrt(-2 * log(u + 1e-12)) * cos(6.2831853 * v)
			h = int(rand() * 24); c = rand() < 0.5 ? "web" : "shop"
			line = sprintf("%.2f,%d,%s", a, h, c)
			if (labels) line = line "," (a > 60 ? "yes" : "no")
			print line
		}
	}'
}

step "a model of orders"
mkdir "$m/datasets/orders"
orders 2000 0 1 1 > "$m/datasets/orders/data.csv"
echo '{"dataset": "orders", "algorithm": "logistic", "model": "returns", "label": "returned"}' \
	> "$m/train/returns-1.json"
cat "$m/jobs/returns-1/wait"

step "deployed, watched every second, retrained when inputs drift"
mkdir "$m/deployments/returns"
cat > "$m/deployments/returns/spec" <<'JSON'
{"candidates": ["returns@1"],
 "monitor": {"interval": 1, "window": 300},
 "on_alert": {"retrain": {"dataset": "orders", "algorithm": "logistic",
                          "label": "returned"},
              "then": "canary 10"}}
JSON
orders 300 0 2 > /tmp/returns-rows.csv
cp /tmp/returns-rows.csv "$m/deployments/returns/predict"
sleep 2.5
tail -1 "$m/deployments/returns/metrics" | cut -c1-60

step "amounts move up by two standard deviations; the new orders are kept"
orders 1000 30 3 1 | tail -n +2 >> "$m/datasets/orders/data.csv"
orders 300 30 4 > /tmp/returns-rows.csv
cp /tmp/returns-rows.csv "$m/deployments/returns/predict"
# tail -f follows alerts as they come; here, until the loop has closed
for _ in $(seq 120); do
	grep -q '"entered"' "$m/deployments/returns/alerts" && break
	sleep 0.5
done
grep -o '"rule":"psi","subject":"amount"' "$m/deployments/returns/alerts" | head -1
grep -o '"step":"[a-z ]*","detail":"[^"]*"' "$m/deployments/returns/alerts"
cat "$m/deployments/returns/traffic" | cut -d' ' -f1-2
rm -f /tmp/returns-rows.csv

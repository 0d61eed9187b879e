#!/bin/bash
# SPDX-License-Identifier: MIT
#
# examples/features.sh [MOUNT] - a feature store in a shell, on a fresh
# mlfs mount (default /mnt/ml): events, a feature set, a sync, online
# reads, a point-in-time join, training on the features and predict by
# key.  Each step prints what it shows; README.md runs it in its tests.
set -euo pipefail

m=${1:-/mnt/ml}
step() { printf '== %s\n' "$*"; }

step "events of the past, as a dataset"
mkdir "$m/datasets/payments"
{
	echo customer_id,ts,amount,country
	for d in 01 02 03 04 05 06 07; do
		echo "alice,2024-01-${d}T09:00:00Z,$((10 + 10#$d)),fr"
		echo "bob,2024-01-${d}T18:00:00Z,$((100 - 10#$d)),de"
	done
} > "$m/datasets/payments/data.csv"

step "a feature set: windows over the events"
mkdir "$m/features/cust"
cat > "$m/features/cust/spec" <<'JSON'
{"entity": "customer_id", "timestamp": "ts", "source": "payments",
 "features": [
   {"name": "spend_7d", "column": "amount", "agg": "sum", "window": "7d"},
   {"name": "payments_1d", "agg": "count", "window": "1d"},
   {"name": "country", "column": "country"}]}
JSON

step "sync: the history, as a job"
echo sync > "$m/features/cust/ctl"
cat "$m/jobs/cust-sync-1/wait"
head -3 "$m/features/cust/offline.csv"

step "a new event, online before the write returns"
printf 'customer_id,ts,amount,country\nalice,2024-01-08T09:00:00Z,30,it\n' \
	> "$m/features/cust/events"
ls "$m/features/cust/online"
# as of now, when these 2024 windows hold nothing: sums and counts are 0
cut -d, -f3- "$m/features/cust/online/alice"

step "point in time: each row sees only its past"
printf 'customer_id,ts\nalice,2024-01-03T12:00:00Z\nalice,2024-01-08T12:00:00Z\n' \
	> "$m/features/cust/join"
cat "$m/features/cust/join"

step "training on the features, joined as of each row's time"
mkdir "$m/datasets/visits"
{
	echo customer_id,ts,segment
	for d in 02 03 04 05 06 07; do
		echo "alice,2024-01-${d}T12:00:00Z,small"
		echo "bob,2024-01-${d}T20:00:00Z,big"
	done
} > "$m/datasets/visits/data.csv"
echo '{"dataset": "visits", "label": "segment", "algorithm": "logistic",
 "feature_sets": ["cust"], "model": "segment"}' > "$m/train/segment.json"
cat "$m/jobs/segment/wait"

step "predict by key: the features come from the online store"
# as of a time given with the key (without one: as of now, when these
# 2024 windows hold nothing any more)
printf 'customer_id,ts\nalice,2024-01-08T12:00:00Z\nbob,2024-01-07T20:00:00Z\n' \
	> "$m/models/segment/predict"
cut -d, -f1 "$m/models/segment/predict"

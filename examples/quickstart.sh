#!/bin/bash
# A tour of mlfs with nothing but a shell: a real dataset (Fisher's Iris),
# versioned, inspected through its schema and stats, aliased, and a bad
# CSV refused.  Usage: examples/quickstart.sh MOUNTPOINT
set -euo pipefail

MNT=${1:?usage: quickstart.sh MOUNTPOINT}
HERE=$(cd "$(dirname "$0")" && pwd)
DS=$MNT/datasets/iris

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { step "$*"; bash -c "$*"; }

# A second run starts over: the model trained on the dataset goes first
# (a dataset a model was trained on is busy), then its job, then the
# dataset.  configfs style: rmdir takes an object with all its versions.
rm -f "$MNT/models/iris/production"
[ -d "$MNT/models/iris" ] && rmdir "$MNT/models/iris"
[ -d "$MNT/jobs/iris-search" ] && rmdir "$MNT/jobs/iris-search"
[ -d "$DS" ] && rmdir "$DS"

run "mkdir $DS"
run "cp $HERE/data/iris.csv $DS/data.csv"           # version 1
run "ls -l $DS"
run "head -3 $DS/v1/data.csv"
run "cat $DS/schema"
run "grep -A12 '\"species\"' $DS/stats | head -14"

# A second version: only two of the three species.
run "head -101 $HERE/data/iris.csv > $DS/data.csv"
run "ls $DS; readlink $DS/latest"
run "cat $DS/v2/lineage"

# Pin a version under a name, then move the name atomically.
run "ln -s v1 $DS/full && ls -l $DS/full"
run "ln -sfn v2 $DS/full && readlink $DS/full"
run "rm $DS/full"

# Override the schema: a new version with the same data.
run "echo '{\"columns\": [{\"name\": \"sepal_width\", \"role\": \"pii\"}]}' > $DS/schema"
run "ls $DS"

# Bad input changes nothing and says where it is: cp reports the EINVAL
# that close() returned.
printf 'a,b\n1,2\n3\n' >/tmp/mlfs-quickstart-bad.csv
step "cp /tmp/mlfs-quickstart-bad.csv $DS/data.csv"
cp /tmp/mlfs-quickstart-bad.csv "$DS/data.csv" || echo "(refused, as it should be)"
rm -f /tmp/mlfs-quickstart-bad.csv
run "tail -1 $MNT/.mlfs/errors"
run "readlink $DS/latest"

# Train: a spec written into train/ starts a job; a small random search
# over the L2 strength picks the best on the validation split.
run "cat > $MNT/train/iris-search.json <<'SPEC'
{
  \"dataset\": \"iris@1\",
  \"algorithm\": \"logistic\",
  \"model\": \"iris\",
  \"split\": {\"train\": 0.6, \"validation\": 0.2, \"test\": 0.2, \"seed\": 42},
  \"search\": {\"method\": \"random\", \"trials\": 6, \"metric\": \"accuracy\",
             \"goal\": \"maximize\", \"space\": {\"l2\": {\"log_uniform\": [1e-4, 1]}}}
}
SPEC"
run "cat $MNT/jobs/iris-search/wait"                # blocks until the job ends
run "ls $MNT/jobs/iris-search $MNT/jobs/iris-search/trials"
run "tail -3 $MNT/jobs/iris-search/log"
run "grep -E '\"(accuracy|f1_macro|log_loss|fit_seconds)\"' $MNT/models/iris/v1/metrics.json"
run "ls -l $MNT/models/iris $MNT/models/iris/v1"

# Predict from the shell, and pin the version that serves.
run "ln -sfn v1 $MNT/models/iris/production"
run "echo 5.1,3.5,1.4,0.2 > $MNT/models/iris/predict; cat $MNT/models/iris/predict"
run "printf 'petal_length,petal_width,sepal_length,sepal_width\n4.7,1.4,7.0,3.2\n6.0,2.5,6.3,3.3\n' > $MNT/models/iris/predict; cat $MNT/models/iris/predict"

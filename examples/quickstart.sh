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

if [ -d "$DS" ]; then
	rmdir "$DS" # configfs style: rmdir takes the dataset and its versions
fi

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

#!/bin/bash
# The README's first command: install what is missing, build, mount mlfs
# on an embedded local store and run the quickstart on it.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEMO=${MLFS_DEMO:-/tmp/mlfs-demo}
cd "$ROOT"

bash tests/deps.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
meson compile -C build >/dev/null

mkdir -p "$DEMO/store" "$DEMO/mnt"
if grep -q " $DEMO/mnt fuse" /proc/self/mounts; then
	fusermount3 -u "$DEMO/mnt"
fi
build/fs/mlfs -o log="$DEMO/mlfs.log" "$DEMO/store" "$DEMO/mnt"
bash examples/quickstart.sh "$DEMO/mnt"
cat <<MSG

mlfs is mounted at $DEMO/mnt (store: $DEMO/store, log: $DEMO/mlfs.log).
Try: ls $DEMO/mnt/datasets/iris; cat $DEMO/mnt/README
Unmount with: fusermount3 -u $DEMO/mnt
MSG

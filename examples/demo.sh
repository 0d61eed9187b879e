#!/bin/bash
# The README's first command: install what is missing, build, install
# mlfs into /usr/local with meson (the daemon, its job program, the
# plugins, the man page and the plugin header), mount it on an embedded
# local store and run the quickstart on it.  Afterwards `mlfs` is on the
# PATH and `man mlfs` opens; `ninja -C build uninstall` removes them.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEMO=${MLFS_DEMO:-/tmp/mlfs-demo}
cd "$ROOT"

bash tests/deps.sh
if [ -f build/build.ninja ]; then
	meson configure build -Dprefix=/usr/local >/dev/null
else
	meson setup build --prefix=/usr/local >/dev/null
fi
meson compile -C build >/dev/null
meson install -C build --quiet >/dev/null
hash -r
if [ "$(command -v mlfs)" != /usr/local/bin/mlfs ]; then
	echo "demo: /usr/local/bin is not first on PATH for mlfs" \
		"($(command -v mlfs || echo none)); running the installed one" >&2
fi

mkdir -p "$DEMO/store" "$DEMO/mnt"
if grep -q " $DEMO/mnt fuse" /proc/self/mounts; then
	fusermount3 -u "$DEMO/mnt"
fi
/usr/local/bin/mlfs -o log="$DEMO/mlfs.log" "$DEMO/store" "$DEMO/mnt"
bash examples/quickstart.sh "$DEMO/mnt"
cat <<MSG

mlfs is installed in /usr/local (man mlfs) and mounted at $DEMO/mnt
(store: $DEMO/store, log: $DEMO/mlfs.log).
Try: ls $DEMO/mnt/datasets/iris; cat $DEMO/mnt/README; and the README's tour
Unmount with: fusermount3 -u $DEMO/mnt
MSG

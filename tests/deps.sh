#!/bin/bash
# Install what building and testing mlfs needs on Debian 12, as root.
# Only missing packages are installed; a machine that has them all is
# left alone (no apt-get update).
set -euo pipefail

PKGS=(
	# build (make and g++: the install test builds the example plugin
	# with make and checks the ABI header compiles as C++)
	gcc g++ make meson ninja-build pkg-config
	libfuse3-dev fuse3 liblmdb-dev libcurl4-openssl-dev libopenblas-dev
	libxxhash-dev libjansson-dev libssl-dev inotify-tools
	libarchive-dev zlib1g-dev libmicrohttpd-dev
	# tests
	python3 python3-pytest python3-pytest-timeout python3-pytest-xdist
	python3-numpy util-linux xxhash
	# what ls asks of the mount, counted (test_mount.py)
	strace
	# the demo installs the man page: man mlfs needs man-db
	man-db
	# the S3 tests: the SigV4-verifying gateway, aws cli
	python3-botocore awscli curl
	# monitoring: promtool checks every .prom file; scipy checks drift
	prometheus python3-scipy
	# plots: rendered to PNG with the fonts they name, checked as XML
	librsvg2-bin fonts-dejavu-core libxml2-utils
	# http: a real client besides curl
	python3-requests
)

missing=()
for p in "${PKGS[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
		grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
# s3rver runs on Node.js with npm; a machine may have them from another
# source than Debian (whose npm then conflicts): ask for the commands.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	missing+=(nodejs npm)
fi
if ((${#missing[@]})); then
	echo "deps: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	# Wait for another apt (unattended upgrades, a parallel install)
	# rather than fail on its lock.
	apt-get -o DPkg::Lock::Timeout=600 update -qq
	apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
		--no-install-recommends "${missing[@]}" >&2
fi
if [ ! -e /dev/fuse ]; then
	echo "deps: /dev/fuse is missing: FUSE cannot mount here" >&2
	exit 1
fi

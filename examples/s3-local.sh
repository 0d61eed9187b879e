#!/bin/bash
# SPDX-License-Identifier: MIT
# Try mlfs's S3 mode without an account: start a local S3 server and print
# the command that mounts a bucket on it.
#
#   examples/s3-local.sh          start (again: just print the command)
#   examples/s3-local.sh stop     stop the server; its bucket stays on disk
#
# The server is the one the tests use (tests/s3/start.sh): s3rver on
# 127.0.0.1, behind a gateway that checks every request's SigV4 signature
# as S3 does.  Its state (the bucket, the logs, the mount's block cache)
# is kept in $MLFS_S3_LOCAL, default /tmp/mlfs-s3.  Needs what
# tests/deps.sh installs (nodejs, npm, python3-botocore, curl); s3rver
# itself is installed from npm on first use.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${MLFS_S3_LOCAL:-/tmp/mlfs-s3}
BUCKET=mlfs
MNT=/mnt/ml

case "${1:-start}" in
start) ;;
stop)
	bash "$ROOT/tests/s3/stop.sh" "$DIR"
	echo "stopped the local S3 server (its bucket stays in $DIR/data)"
	exit 0
	;;
*)
	echo "usage: $0 [start|stop]" >&2
	exit 2
	;;
esac

mkdir -p "$DIR"
endpoint=$(MLFS_S3_BUCKET=$BUCKET bash "$ROOT/tests/s3/start.sh" "$DIR")
# s3rver's one account (tests/s3/start.sh); the gateway checks signatures
# made with it
cat <<MSG
A local S3 server is running: $endpoint, bucket $BUCKET (state in $DIR).
Mount the bucket (prefix ml) with:

  mkdir -p $MNT
  AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER mlfs -o endpoint=$endpoint,path_style,cache=$DIR/cache s3://$BUCKET/ml $MNT

Unmount with: fusermount3 -u $MNT
Stop the server with: examples/s3-local.sh stop
MSG

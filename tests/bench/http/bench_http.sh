#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench_http.sh - mlfs's HTTP server (-o http, DESIGN.md §4 "HTTP": the
# Open Inference Protocol v2 with libmicrohttpd) measured against a Flask
# app behind gunicorn serving the same model, and against nginx serving a
# static file as the floor of HTTP on this machine, in one run.
#
# A benchmark, not a test: it measures, prints medians and ratios, and marks
# each goal met or missed; it fails only when something cannot be measured.
#
# Everything on loopback.  mlfs (the release build) listens on TCP
# 127.0.0.1, a port it picks (-o http=127.0.0.1:0, read back from
# .mlfs/http), with -o http_token=FILE (one token, uid 0); a logistic model
# "iris" is trained through the mount (datasets/iris/data.csv is
# examples/data/iris.csv; train/j.json {"dataset": "iris", "algorithm":
# "logistic", "model": "iris"}).  Every load is wrk: THREADS threads,
# CONNS connections kept alive, DURATION seconds, --latency, post.lua
# (the same request to every side but the URL: the body, Content-Type
# application/json and the bearer token).  RUNS rounds, the sides in turn
# (the order reversed every other round), so that all see the same
# seconds of a shared machine.
#
#   1. single-row infer: POST /v2/models/iris/infer with one iris row,
#      {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64",
#      "data": [[5.1, 3.5, 1.4, 0.2]]}]}; the answer has the outputs
#      predict (BYTES [1]) and proba (FP64 [1, 3]).  Peer: flask_app.py
#      under gunicorn (-w GUNICORN_WORKERS -k gthread --threads
#      GUNICORN_THREADS, so connections are kept alive), the same request
#      and answer shape, a scikit-learn StandardScaler + LogisticRegression
#      (C=1, mlfs's default l2) fitted on the train rows of mlfs's
#      jobs/j/split of the same CSV: parse the tensor, predict +
#      predict_proba, the outputs as JSON.  Before the load, all 150 iris
#      rows are sent to both in one request: the classes both answer and
#      the largest difference of a probability are printed.
#   2. the floor: nginx (Debian nginx-light, worker_processes auto, no
#      access log) serving a static 200-byte file, GET, on another
#      loopback port; its config is written into the scratch dir.
#   3. batched infer: BATCH_ROWS iris rows (the 150 in turn) in one [N, 4]
#      tensor a request, on mlfs: rows/s; as context, the same on the
#      Flask peer (PEER_BATCH=1).
#   4. the daemon's RssAnon (/proc/PID/status) after every load.
#
# Reported per side: requests/s, p50 and p99 latency (wrk's, per request),
# CPU milliseconds of the server's processes per 1000 requests (the daemon's
# threads; gunicorn's and nginx's master and workers), non-2xx answers
# and socket errors; medians over the rounds.
#
# Goals: (1) mlfs requests/s >= 10x gunicorn's, and mlfs p99 <= 0.2x
# gunicorn's p99; (2) mlfs requests/s >= 0.5x nginx's; (4) RssAnon under
# 100 MB after the run.  Judged on the ratio of the medians over rounds;
# the ratio in each round is printed beside it.  (3) has no goal.
#
# Usage: tests/bench/http/bench_http.sh   (as root: FUSE, and the token
#        file must be root's)
#        DURATION=2 RUNS=1 tests/bench/http/bench_http.sh   to try it
# Environment:
#   DURATION     seconds of each wrk run (10)
#   RUNS         rounds (3)
#   CONNS        wrk connections (32; mlfs takes up to 64 a uid)
#   THREADS      wrk threads (2)
#   BATCH_ROWS   rows of a batched request (1000)
#   PEER_BATCH   1 (default): also the batched request on the Flask peer,
#                as context; 0: not
#   GUNICORN_WORKERS  gunicorn's workers (2, one per CPU of the machine
#                this was written on)
#   GUNICORN_THREADS  threads of a gunicorn worker (16: 2 x 16 = 32
#                connections kept alive at once)
#   MLFS_BUILD   release build dir (default: <repo>/build-release); it is
#                configured -Dbuildtype=release -Dtests=false -Db_sanitize=none
#                (set up here when missing).  Jobs run $MLFS_BUILD/fs/mlfs-job:
#                use a private build dir on a shared tree
#   BENCH_DIR    scratch dir (default: mktemp -d /tmp/mlfs-bench-http.XXXXXX);
#                must be new or empty; removed at exit
#   KEEP=1       keep the scratch dir at exit
#   MLFS_REV     what to call the mlfs measured (default: git rev of REPO)
#   PY           the Python with Flask, gunicorn and scikit-learn
#                (/usr/bin/python3: Debian's python3-flask, gunicorn,
#                python3-sklearn)
#
# Needs: meson, ninja, cc, pkg-config, fusermount3, jq, curl, wrk, nginx,
# python3-flask, gunicorn, python3-sklearn (Debian: apt-get install -y wrk
# nginx-light python3-flask gunicorn python3-sklearn; the script installs
# them when missing and it runs as root with apt-get).
# About 3 minutes with DURATION=10 RUNS=3 on 2 vCPUs once the release build
# is there (5 sides x 3 rounds x 10 s, plus the setup).  wrk's 2 threads
# share the 2 CPUs with the server measured: every side pays that alike.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
BUILD=${MLFS_BUILD:-$REPO/build-release}
DURATION=${DURATION:-10}
RUNS=${RUNS:-3}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
BATCH_ROWS=${BATCH_ROWS:-1000}
PEER_BATCH=${PEER_BATCH:-1}
GUNICORN_WORKERS=${GUNICORN_WORKERS:-2}
GUNICORN_THREADS=${GUNICORN_THREADS:-16}
KEEP=${KEEP:-0}
PY=${PY:-/usr/bin/python3}
IRIS=$REPO/examples/data/iris.csv
WRK_LUA=$HERE/post.lua
START=$(date +%s)

# log, is_mounted, unmount, wait_mounted, note_load, cpu_s, med, ratio,
# verdict, build_release, check_binaries
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"
die() { log "error: $*"; exit 1; }

if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null ||
	! "$PY" -c 'import flask, gunicorn, sklearn' 2>/dev/null; then
	if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
		log "installing wrk nginx-light python3-flask gunicorn python3-sklearn"
		DEBIAN_FRONTEND=noninteractive apt-get install -y wrk nginx-light \
			python3-flask gunicorn python3-sklearn >/dev/null 2>&1 ||
			die "apt-get install wrk nginx-light python3-flask gunicorn python3-sklearn failed"
	fi
fi
for cmd in meson cc pkg-config fusermount3 awk jq curl wrk nginx; do
	command -v "$cmd" >/dev/null || die "$cmd not found"
done
"$PY" -c 'import flask, gunicorn, sklearn, numpy' 2>/dev/null ||
	die "$PY lacks flask, gunicorn or sklearn (apt-get install python3-flask gunicorn python3-sklearn)"
[[ $(id -u) == 0 ]] || die "run as root: FUSE, and -o http_token wants a file of root's"
[[ -r $IRIS && -r $WRK_LUA && -r $HERE/flask_app.py ]] ||
	die "iris.csv, post.lua or flask_app.py missing"
((RUNS >= 1 && DURATION >= 1 && CONNS >= 1 && THREADS >= 1 && BATCH_ROWS >= 1)) ||
	die "RUNS, DURATION, CONNS, THREADS and BATCH_ROWS must be 1 or more"
((CONNS >= THREADS)) || die "CONNS ($CONNS) must be at least THREADS ($THREADS), as wrk wants"

# ---------------------------------------------------------------- scratch
if [[ -n ${BENCH_DIR:-} ]]; then
	mkdir -p "$BENCH_DIR"
	[[ -z $(ls -A "$BENCH_DIR") ]] || die "BENCH_DIR $BENCH_DIR is not empty"
	W=$(cd "$BENCH_DIR" && pwd -P)
else
	W=$(mktemp -d /tmp/mlfs-bench-http.XXXXXX)
	W=$(cd "$W" && pwd -P)
fi
RES=$W/res
DATA=$W/data
STORE=$W/store
CACHE=$W/cache
MNT=$W/mnt
NGX=$W/nginx
mkdir -p "$RES" "$DATA" "$STORE" "$CACHE" "$MNT" "$NGX/html" "$NGX/tmp"
# nginx's workers run as nobody: they need to get through to html/
chmod 711 "$W"
chmod 755 "$NGX" "$NGX/html"

ML_PID=
GU_PID=
NGX_PID=

# stop PID NAME: TERM a server this script started, and wait for it
stop() {
	local pid=$1 i
	[[ -n $pid ]] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "$2 (pid $pid) still running 10 s after TERM; sending KILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	stop "$GU_PID" gunicorn
	stop "$NGX_PID" nginx
	unmount "$MNT" "$ML_PID" mlfs
	if is_mounted "$MNT"; then
		log "a mount is still active; leaving $W in place"
	elif [[ $KEEP == 1 ]]; then
		log "kept $W"
	else
		rm -rf "$W"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

MED_DIGITS=2 # med (lib.sh): medians of two with 2 decimals

# free_port: a TCP port of 127.0.0.1 free now
free_port() {
	"$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# tree_cpu PID: CPU seconds of PID and its children (all their threads)
tree_cpu() {
	local p t=0
	for p in "$1" $(ps -o pid= --ppid "$1" 2>/dev/null); do
		t=$(awk -v a="$t" -v b="$(cpu_s "$p" 2>/dev/null || echo 0)" 'BEGIN { printf "%.2f", a + b }')
	done
	echo "$t"
}

# rss PID: "RssAnon VmHWM" of PID in kB
rss() { awk '/^RssAnon:/ { a = $2 } /^VmHWM:/ { h = $2 } END { print a, h }' "/proc/$1/status"; }

note_load start

# ---------------------------------------------------------------- build
build_release

# ---------------------------------------------------------------- mlfs
TOKEN=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
(
	umask 077
	printf '0 %s\n' "$TOKEN" >"$W/token"
)

log "mounting mlfs with -o http=127.0.0.1:0"
"$MLFS" -f -o "cache=$CACHE,http=127.0.0.1:0,http_token=$W/token" \
	"$STORE" "$MNT" >"$W/mlfs.log" 2>&1 &
ML_PID=$!
wait_mounted "$MNT" "$ML_PID" mlfs "$W/mlfs.log"
ML_ADDR=$(cat "$MNT/.mlfs/http") || die "cannot read .mlfs/http"
[[ $ML_ADDR == 127.0.0.1:* ]] || die ".mlfs/http says '$ML_ADDR', not a TCP address"
ML_URL=http://$ML_ADDR/v2/models/iris/infer
log "mlfs serves on $ML_ADDR"
read -r RSS_MOUNT HWM_MOUNT < <(rss "$ML_PID")

log "training iris (logistic) through the mount"
mkdir "$MNT/datasets/iris"
cp "$IRIS" "$MNT/datasets/iris/data.csv" || die "cp iris.csv into mlfs failed"
printf '%s\n' '{"dataset": "iris", "algorithm": "logistic", "model": "iris"}' \
	>"$MNT/train/j.json" || { tail -n 3 "$MNT/.mlfs/errors" >&2; die "train spec refused"; }
st=$(cat "$MNT/jobs/j/wait")
if [[ $st != succeeded ]]; then
	tail -n 20 "$MNT/jobs/j/log" >&2 || true
	check_binaries
	die "job j: $st"
fi
cp "$MNT/jobs/j/split" "$DATA/split.csv" || die "cannot read jobs/j/split"
jq -e '.inputs == ["sepal_length", "sepal_width", "petal_length", "petal_width"]' \
	"$MNT/models/iris/v1/meta.json" >/dev/null ||
	die "models/iris/v1/meta.json's inputs are not iris's four features in order"

# ---------------------------------------------------------------- bodies
# body N FILE: a request of N iris rows (the 150 in turn), one [N, 4] tensor
body() {
	"$PY" - "$IRIS" "$1" >"$2" <<'EOF' || die "cannot write a request body"
import csv, json, sys

with open(sys.argv[1], newline="") as fp:
    rows = [[float(v) for v in r[:4]] for r in list(csv.reader(fp))[1:] if r]
n = int(sys.argv[2])
print(json.dumps({"inputs": [{"name": "x", "shape": [n, 4], "datatype": "FP64",
                              "data": [rows[i % len(rows)] for i in range(n)]}]}))
EOF
}
body 1 "$DATA/one.json"
body "$BATCH_ROWS" "$DATA/batch.json"
body 150 "$DATA/all.json"
log "bodies: 1 row $(wc -c <"$DATA/one.json") bytes, $BATCH_ROWS rows $(wc -c <"$DATA/batch.json") bytes"

# ---------------------------------------------------------------- peers
GU_PORT=$(free_port)
log "starting gunicorn (flask_app.py) on 127.0.0.1:$GU_PORT"
MLFS_BENCH_CSV=$IRIS MLFS_BENCH_SPLIT=$DATA/split.csv PYTHONDONTWRITEBYTECODE=1 \
	"$PY" -m gunicorn -w "$GUNICORN_WORKERS" -k gthread --threads "$GUNICORN_THREADS" \
	-b "127.0.0.1:$GU_PORT" --chdir "$HERE" --graceful-timeout 5 \
	--log-level warning --error-logfile "$W/gunicorn.log" \
	flask_app:app >"$W/gunicorn.out" 2>&1 &
GU_PID=$!
GU_URL=http://127.0.0.1:$GU_PORT/v2/models/iris/infer

NGX_PORT=$(free_port)
head -c 199 /dev/zero | tr '\0' x >"$NGX/html/f200"
echo >>"$NGX/html/f200"
cat >"$NGX/nginx.conf" <<EOF
# written by bench_http.sh: a static file, nothing else
daemon off;
worker_processes auto;
pid $NGX/nginx.pid;
error_log $NGX/error.log warn;
events {
	worker_connections 1024;
}
http {
	access_log off;
	client_body_temp_path $NGX/tmp;
	default_type application/octet-stream;
	server {
		listen 127.0.0.1:$NGX_PORT;
		root $NGX/html;
		location / {
		}
	}
}
EOF
log "starting nginx on 127.0.0.1:$NGX_PORT"
nginx -e "$NGX/error.log" -p "$NGX/" -c "$NGX/nginx.conf" >"$NGX/out.log" 2>&1 &
NGX_PID=$!
NGX_URL=http://127.0.0.1:$NGX_PORT/f200

# ready NAME PID URL [BODY]: until URL answers 200 (30 s), or die
ready() {
	local i code
	for ((i = 0; i < 300; i++)); do
		if [[ -n ${4:-} ]]; then
			code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
				-H 'Content-Type: application/json' --data-binary "@$4" "$3" || true)
		else
			code=$(curl -s -o /dev/null -w '%{http_code}' "$3" || true)
		fi
		[[ $code == 200 ]] && return 0
		kill -0 "$2" 2>/dev/null || break
		sleep 0.1
	done
	tail -n 20 "$W/gunicorn.log" "$W/gunicorn.out" "$NGX/out.log" "$NGX/error.log" >&2 2>/dev/null || true
	die "$1 does not answer 200 at $3 (last: ${code:-none})"
}
ready gunicorn "$GU_PID" "$GU_URL" "$DATA/one.json"
ready nginx "$NGX_PID" "$NGX_URL"
ready mlfs "$ML_PID" "$ML_URL" "$DATA/one.json"
[[ $(wc -c <"$NGX/html/f200") == 200 && $(curl -s "$NGX_URL" | wc -c) == 200 ]] ||
	die "nginx does not serve the 200-byte file"

# ---------------------------------------------------------------- agreement
log "the 150 iris rows in one request to mlfs and to the Flask peer"
for side in mlfs gunicorn; do
	url=$ML_URL
	[[ $side == gunicorn ]] && url=$GU_URL
	curl -sf -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
		--data-binary "@$DATA/all.json" -o "$RES/all-$side.json" "$url" ||
		die "$side does not answer the 150 rows"
	curl -sf -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
		--data-binary "@$DATA/one.json" -o "$RES/one-$side.json" "$url" ||
		die "$side does not answer one row"
	log "$side answers one row: $(head -c 400 "$RES/one-$side.json")"
done
"$PY" - "$RES/all-mlfs.json" "$RES/all-gunicorn.json" >"$RES/agree.json" <<'EOF' ||
import json, sys


def outputs(path):
    with open(path) as fp:
        o = {t["name"]: t for t in json.load(fp)["outputs"]}
    return o


a, b = outputs(sys.argv[1]), outputs(sys.argv[2])
shape = {n: (t["datatype"], t["shape"]) for n, t in a.items()}
assert shape == {n: (t["datatype"], t["shape"]) for n, t in b.items()}, \
    "outputs differ: %r" % ({n: (t["datatype"], t["shape"]) for n, t in b.items()},)
pa, pb = a["predict"]["data"], b["predict"]["data"]
qa, qb = a["proba"]["data"], b["proba"]["data"]
assert len(pa) == len(pb) == 150 and len(qa) == len(qb) == 450
diff = [i for i in range(150) if pa[i] != pb[i]]
print(json.dumps({
    "rows": len(pa),
    "same_class": len(pa) - len(diff),
    "rows_differing": diff[:10],
    "max_abs_dproba": float("%.3g" % max(abs(x - y) for x, y in zip(qa, qb))),
    "outputs": {n: list(v) for n, v in shape.items()},
}))
EOF
	die "the answers of mlfs and the Flask peer cannot be compared"
log "agreement: $(cat "$RES/agree.json")"

# ---------------------------------------------------------------- load
# run SIDE ROUND: one wrk run; a line of $RES/wrk.tsv:
#   side round requests seconds p50_us p99_us mean_us max_us non2xx
#   connect read write timeout cpu_s
run() {
	local side=$1 r=$2 url pid body='' tok='' out c0 c1 line n secs
	case $side in
	mlfs) url=$ML_URL pid=$ML_PID body=$DATA/one.json tok=$TOKEN ;;
	gunicorn) url=$GU_URL pid=$GU_PID body=$DATA/one.json tok=$TOKEN ;;
	nginx) url=$NGX_URL pid=$NGX_PID ;;
	mlfs-batch) url=$ML_URL pid=$ML_PID body=$DATA/batch.json tok=$TOKEN ;;
	gunicorn-batch) url=$GU_URL pid=$GU_PID body=$DATA/batch.json tok=$TOKEN ;;
	esac
	out=$RES/wrk-$side-$r.txt
	c0=$(tree_cpu "$pid")
	BODY_FILE=$body TOKEN=$tok wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency \
		-s "$WRK_LUA" "$url" >"$out" 2>&1 || { cat "$out" >&2; die "wrk on $side failed"; }
	c1=$(tree_cpu "$pid")
	line=$(awk '$1 == "wrk-result" { $1 = ""; print substr($0, 2) }' "$out")
	[[ -n $line ]] || { cat "$out" >&2; die "wrk on $side printed no result"; }
	read -r n secs _ <<<"$line"
	((n > 0)) || { cat "$out" >&2; die "no request to $side completed"; }
	printf '%s\t%s\t%s\t%s\n' "$side" "$r" "$line" \
		"$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.2f", b - a }')" |
		tr ' ' '\t' >>"$RES/wrk.tsv"
	log "$side round $r: $(awk -v n="$n" -v s="$secs" 'BEGIN { printf "%.0f", n / s }') req/s; $(grep -E '^ +(50|99)%' "$out" | tr -s ' ' | paste -sd' ')"
}

SIDES=(mlfs gunicorn nginx mlfs-batch)
[[ $PEER_BATCH == 1 ]] && SIDES+=(gunicorn-batch)
: >"$RES/wrk.tsv"
: >"$RES/rss.tsv"
log "load: ${SIDES[*]}; $RUNS rounds of $DURATION s each, wrk -t$THREADS -c$CONNS"
for ((r = 1; r <= RUNS; r++)); do
	note_load "round-$r"
	order=("${SIDES[@]}")
	if ((r % 2 == 0)); then
		order=()
		for ((i = ${#SIDES[@]} - 1; i >= 0; i--)); do
			order+=("${SIDES[i]}")
		done
	fi
	for side in "${order[@]}"; do
		run "$side" "$r"
		if [[ $side == mlfs* ]]; then
			printf '%s-%s\t%s\n' "$side" "$r" "$(rss "$ML_PID")" >>"$RES/rss.tsv"
		fi
	done
done

# ---------------------------------------------------------------- end
note_load end
check_binaries
read -r RSS_END HWM_END < <(rss "$ML_PID")
RSS_MAX=$(awk -F'\t' '{ split($2, a, " "); if (a[1] > m) m = a[1] } END { print m + 0 }' "$RES/rss.tsv")
ML_ERRS=$(grep -ciE 'error|warning' "$W/mlfs.log" || true)
V_NGINX=$(nginx -v 2>&1 | sed 's/.*: //')
V_PY=$("$PY" -c 'import flask, gunicorn, sklearn, importlib.metadata as m, platform
print("Python %s, Flask %s, gunicorn %s, scikit-learn %s" % (platform.python_version(), m.version("flask"), gunicorn.__version__, sklearn.__version__))')
V_WRK=$( (wrk -v 2>&1 || true) | head -n 1 | cut -d' ' -f1-2)
V_MHD=$(pkg-config --modversion libmicrohttpd 2>/dev/null || echo unknown)
stop "$GU_PID" gunicorn
GU_PID=
stop "$NGX_PID" nginx
NGX_PID=
unmount "$MNT" "$ML_PID" mlfs
ML_PID=

# fig SIDE WHAT: the median over rounds; what: rps p50 p99 (ms) cpu (ms
# of CPU per 1000 requests) non2xx sockerr
fig() {
	awk -F'\t' -v s="$1" -v w="$2" '$1 == s {
		rps = $3 / $4
		if (w == "rps") v = rps
		else if (w == "p50") v = $5 / 1000
		else if (w == "p99") v = $6 / 1000
		else if (w == "cpu") v = 1e6 * $14 / $3
		else if (w == "non2xx") v = $9
		else if (w == "sockerr") v = $10 + $11 + $12 + $13
		printf "%.3f\n", v }' "$RES/wrk.tsv" | med
}
# total SIDE FIELD: the sum over rounds of a field of wrk.tsv
total() { awk -F'\t' -v s="$1" -v f="$2" '$1 == s { t += $f } END { print t + 0 }' "$RES/wrk.tsv"; }
# round_ratios A B WHAT: WHAT of A over that of B in each round
round_ratios() {
	awk -F'\t' -v a="$1" -v b="$2" -v w="$3" '
		function v() { return w == "rps" ? $3 / $4 : $6 }
		$1 == a { x[$2] = v() }
		$1 == b { y[$2] = v() }
		END { for (r = 1; r in x; r++) if ((r in y) && y[r] > 0) printf "%.2f ", x[r] / y[r] }' \
		"$RES/wrk.tsv" | sed 's/ $//'
}
# side_line SIDE: requests/s p50 p99 cpu errors, formatted
side_line() {
	printf '%10.0f %9.2f %9.2f %9.2f   %s non-2xx, %s socket errors' \
		"$(fig "$1" rps)" "$(fig "$1" p50)" "$(fig "$1" p99)" "$(fig "$1" cpu)" \
		"$(total "$1" 9)" "$(($(total "$1" 10) + $(total "$1" 11) + $(total "$1" 12) + $(total "$1" 13)))"
}
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

M_RPS=$(fig mlfs rps) G_RPS=$(fig gunicorn rps) N_RPS=$(fig nginx rps)
M_P99=$(fig mlfs p99) G_P99=$(fig gunicorn p99)
R_RPS=$(ratio "$M_RPS" "$G_RPS")
R_P99=$(ratio "$M_P99" "$G_P99")
R_NGX=$(ratio "$M_RPS" "$N_RPS")
MB_RPS=$(fig mlfs-batch rps)
MB_ROWS=$(awk -v r="$MB_RPS" -v n="$BATCH_ROWS" 'BEGIN { printf "%.0f", r * n }')
if [[ $PEER_BATCH == 1 ]]; then
	GB_ROWS=$(awk -v r="$(fig gunicorn-batch rps)" -v n="$BATCH_ROWS" 'BEGIN { printf "%.0f", r * n }')
fi
RSS_MB=$(mb "$RSS_END")

cat <<EOF

==== mlfs HTTP benchmark: summary ====
mlfs        $REV (libmicrohttpd $V_MHD)
peers       $V_PY; nginx $V_NGINX; $V_WRK
machine     $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(nproc) CPUs, $(uname -r)
load avg    $(awk -F'\t' '{ printf "%s %s%s; ", $1, $2, $3 ? " (" $3 " compilers running)" : "" }' "$RES/load.tsv")
minutes     $((($(date +%s) - START + 59) / 60))
load        wrk -t$THREADS -c$CONNS -d${DURATION}s, $RUNS rounds, all on 127.0.0.1; medians over rounds
agreement   150 iris rows: $(jq -r '"\(.same_class)/\(.rows) the same class, largest |d proba| \(.max_abs_dproba)"' "$RES/agree.json")$(jq -r 'if .rows_differing != [] then ", rows differing \(.rows_differing)" else "" end' "$RES/agree.json")
daemon      $ML_ERRS error/warning lines in its log

                                      req/s    p50 ms    p99 ms  CPU ms/1000 req
1. single-row infer, POST /v2/models/iris/infer
   mlfs (TCP, bearer token)      $(side_line mlfs)
   Flask + gunicorn gthread      $(side_line gunicorn)
   mlfs/gunicorn req/s           $(printf '%9sx' "$R_RPS")    goal >= 10x: $(verdict "$R_RPS >= 10")   (each round: $(round_ratios mlfs gunicorn rps))
   mlfs/gunicorn p99             $(printf '%9sx' "$R_P99")    goal <= 0.2x: $(verdict "$R_P99 <= 0.2")  (each round: $(round_ratios mlfs gunicorn p99))

2. the floor: GET of a static 200-byte file
   nginx                         $(side_line nginx)
   mlfs/nginx req/s              $(printf '%9sx' "$R_NGX")    goal >= 0.5x: $(verdict "$R_NGX >= 0.5")  (each round: $(round_ratios mlfs nginx rps))

3. batched infer, $BATCH_ROWS rows a request
   mlfs                          $(side_line mlfs-batch)
   mlfs rows/s                   $(printf '%10s' "$MB_ROWS")    (no goal)
$(if [[ $PEER_BATCH == 1 ]]; then
	printf '   context: Flask + gunicorn     %s\n' "$(side_line gunicorn-batch)"
	printf '   context: gunicorn rows/s      %10s    mlfs/gunicorn rows/s %sx (each round: %s)\n' \
		"$GB_ROWS" "$(ratio "$MB_ROWS" "$GB_ROWS")" "$(round_ratios mlfs-batch gunicorn-batch rps)"
fi)

4. daemon memory (RssAnon)
   after the run $RSS_MB MB (largest after a load $(mb "$RSS_MAX") MB; once mounted $(mb "$RSS_MOUNT") MB, VmHWM then $(mb "$HWM_MOUNT") MB; VmHWM at the end $(mb "$HWM_END") MB)
   goal < 100 MB: $(verdict "$RSS_MB < 100")
EOF

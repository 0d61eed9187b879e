#!/bin/bash
# tests/fuzz/run.sh [SECONDS] [TARGET...]: build the libFuzzer targets of
# tests/fuzz with clang, ASan and UBSan (in build-fuzz/, its own meson
# build directory) and run each for SECONDS (default 60) over a copy of
# its seed corpus in tests/fuzz/corpus/<target>/, one target at a time.
# FUZZ_RUNS=N ends a target after N executions if that comes first (the
# campaign the integrity issue asks for: FUZZ_RUNS=10000000 run.sh 3600).
# Prints per target the executions run and whether it found a crash, a
# leak or a sanitizer report (the reproducer is left in
# build-fuzz/fuzz-out/<target>/); exits non-zero if any target did.
# Not part of tests/run.sh: the default build uses gcc and never builds
# these.  Needs clang with libFuzzer (Debian: clang-14).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(csv csvsimd spec predict model catalog s3 features deploy bundle)
build="$root/build-fuzz"
out="$build/fuzz-out"

if [ ! -d "$build" ]; then
	CC=${FUZZ_CC:-clang} meson setup "$build" "$root" \
		-Db_sanitize=address,undefined -Db_lundef=false \
		-Db_ndebug=false -Dtests=false -Dfuzz=true >/dev/null || exit 2
fi
ninja -C "$build" >/dev/null || { ninja -C "$build"; exit 2; }

# Inputs per target: the spec target checks every prefix of a valid
# spec, and predict writes each input three ways.
declare -A max_len=([spec]=2048 [predict]=4096 [deploy]=2048)
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
failed=0
for t in "${targets[@]}"; do
	dir="$out/$t"
	rm -rf "$dir"
	mkdir -p "$dir/corpus"
	cp "$here/corpus/$t/"* "$dir/corpus/"
	start=$(date +%s)
	(cd "$dir" && "$build/tests/fuzz/${t}_fuzz" -max_total_time="$secs" \
		-max_len="${max_len[$t]:-8192}" -timeout=25 -rss_limit_mb=2048 \
		${FUZZ_RUNS:+-runs="$FUZZ_RUNS"} -print_final_stats=1 -artifact_prefix="$dir/" corpus \
		>"$dir/log" 2>&1)
	rc=$?
	took=$(($(date +%s) - start))
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log")
	found=$(ls "$dir" | grep -E '^(crash|leak|timeout|oom|slow-unit)-' |
		grep -v '^slow-unit-' | tr '\n' ' ')
	if [ $rc -ne 0 ] || [ -n "$found" ]; then
		failed=1
		echo "$t: FAILED after ${execs:-?} executions in ${took}s:" \
			"${found:-exit $rc} (log: $dir/log)"
		grep -m1 -E 'ERROR: |runtime error|abort|SUMMARY' "$dir/log" |
			sed 's/^/    /'
	else
		echo "$t: ${execs:-?} executions in ${took}s," \
			"corpus $(ls "$dir/corpus" | wc -l) inputs, no crash or leak"
	fi
done
exit $failed

#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/fuzz_*.c) with clang in build-fuzz/ and runs each for
# a bounded time from its seed corpus (tests/fuzz/corpus/<target>/). Fails on any crash, leak,
# sanitizer report or timeout; the input that did it is left in build-fuzz/artifacts/.
#   scripts/fuzz.sh                  every target, HB_FUZZ_SECONDS (default 45) each
#   scripts/fuzz.sh fuzz_codec ...   only these
# Inputs found along the way go to build-fuzz/corpus/<target>/ (kept between runs, not in git).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${HB_FUZZ_SECONDS:-45}"
dir=build-fuzz

cmake -S . -B "$dir" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHB_FUZZ=ON \
	-DHB_TESTS=OFF -DHB_JEMALLOC=OFF >/dev/null
cmake --build "$dir" -j"$(nproc)" --target fuzz >/dev/null

if [ $# -gt 0 ]; then
	targets="$*"
else
	targets=$(cd tests/fuzz && ls fuzz_*.c | sed 's/\.c$//')
fi
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
status=0
mkdir -p "$dir/artifacts"
for t in $targets; do
	seeds=tests/fuzz/corpus/$t
	work=$dir/corpus/$t
	log=$dir/$t.log
	mkdir -p "$work"
	[ -d "$seeds" ] || echo "warning: $t has no seed corpus ($seeds)" >&2
	dict=()
	[ -f "tests/fuzz/$t.dict" ] && dict=("-dict=tests/fuzz/$t.dict")
	# -close_fd_mask=1: a target may print to stdout (fuzz_config's --help); errors go to stderr.
	if "$dir/fuzz/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
		-max_len=65536 -close_fd_mask=1 -print_final_stats=1 \
		-artifact_prefix="$dir/artifacts/$t-" "${dict[@]}" "$work" $([ -d "$seeds" ] && echo "$seeds") \
		>"$log" 2>&1; then
		rc=0
	else
		rc=$?
	fi
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	last=$(grep -E '^#[0-9]+' "$log" | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' || true)
	if [ "$rc" -ne 0 ]; then
		status=1
		echo "FAIL $t (exit $rc): see $log and $dir/artifacts/"
		grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$log" | head -20
	else
		echo "ok   $t: ${seconds}s, ${execs:-?} execs, ${last:-no stats}"
	fi
done
exit $status

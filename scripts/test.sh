#!/usr/bin/env bash
# Builds and runs every test: Criterion unit tests and the pytest integration suite against the
# real binary, first in the release build, then again under ASan+UBSan, then the lock-free
# modules' unit tests under TSan.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PYTHONDONTWRITEBYTECODE=1
status=0
run() { echo "==> $*"; "$@" || status=1; }

scripts/build.sh release
run ctest --test-dir build --output-on-failure -j2
run /usr/bin/python3 -m pytest -q tests/integration

scripts/build.sh asan
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run ctest --test-dir build-asan --output-on-failure -j2
run env HB_BINARY="$PWD/build-asan/hornbeam-uring" /usr/bin/python3 -m pytest -q tests/integration

scripts/build.sh tsan
run ctest --test-dir build-tsan --output-on-failure -j2 -R 'unit_core_(test_spsc|test_shmap|test_hub|test_stream)'

if [ $status -ne 0 ]; then echo "test.sh: FAILED"; else echo "test.sh: all passed"; fi
exit $status

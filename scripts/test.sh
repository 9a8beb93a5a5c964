#!/usr/bin/env bash
# Builds and runs every test: Criterion unit tests and the pytest integration suite against the
# real binary, first in the release build, then again under ASan+UBSan+LSan, then the fuzz
# targets for a bounded time, then the lock-free modules' unit tests under TSan.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PYTHONDONTWRITEBYTECODE=1
status=0
passed=0
failed=0
run() {
	echo "==> $*"
	if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); status=1; fi
}

run scripts/check-format.sh
scripts/build.sh release
run ctest --test-dir build --output-on-failure -j2
run /usr/bin/python3 -m pytest -q tests/integration

# The build against Debian's Python 3.11 (workers in the main interpreter): only what is
# specific to it (FastAPI, pydantic, numpy; WSGI and ASGI basics) and the examples, not the
# whole suite again. The chat test across workers needs two interpreters: not on 3.11.
cmake -S . -B build-py311 -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHB_WERROR=ON \
	-DHB_PYTHON_CONFIG=/usr/bin/python3.11-config >/dev/null
cmake --build build-py311 -j"$(nproc)" --target hornbeam-uring
run env HB_PY311=1 HB_BINARY="$PWD/build-py311/hornbeam-uring" /usr/bin/python3 -m pytest -q \
	tests/integration/test_py311.py tests/integration/test_frameworks.py \
	tests/integration/test_asgi_examples.py tests/integration/test_examples.py \
	-k "not chat_reaches_every_member_across_workers"

scripts/build.sh asan
# A small quarantine: the RSS bounds the tests check should measure us, not ASan holding freed
# memory (256 MiB by default). LeakSanitizer checks every (forked) unit test, and the server at
# the end of each clean shutdown (src/main.c); the suppression files hold only what CPython
# itself leaks, each with its reason (the server's is wider: tests/lsan-server.supp says why).
asan="abort_on_error=1:halt_on_error=1:quarantine_size_mb=16"
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run env ASAN_OPTIONS="detect_leaks=1:$asan" \
	LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0" \
	ctest --test-dir build-asan --output-on-failure -j2
run env ASAN_OPTIONS="detect_leaks=1:$asan" HB_BINARY="$PWD/build-asan/hornbeam-uring" \
	LSAN_OPTIONS="suppressions=$PWD/tests/lsan-server.supp:print_suppressions=0" \
	/usr/bin/python3 -m pytest -q tests/integration

# Fuzzers (clang, libFuzzer + ASan/UBSan/LSan): each target HB_FUZZ_SECONDS (default 45) from
# its seed corpus in tests/fuzz/corpus/.
run scripts/fuzz.sh

# TSan: the lock-free modules only. Criterion cannot start under TSan (Snaipe/Criterion#274),
# so these tests carry a minimal runner of their own when built with -fsanitize=thread.
tsan_tests=""
for t in spsc hub stream shmap pubsub funcs xbus xbus_hub; do
	[ -f tests/unit/core/test_$t.c ] && tsan_tests="$tsan_tests unit_core_test_$t"
done
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DHB_TSAN=ON >/dev/null
cmake --build build-tsan -j"$(nproc)" --target $tsan_tests
for t in $tsan_tests; do
	run env TSAN_OPTIONS=halt_on_error=1 build-tsan/unit/$t
done

echo "suites: $passed passed, $failed failed"
exit $status

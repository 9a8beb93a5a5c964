#!/usr/bin/env bash
# Configures and builds one flavour: `scripts/build.sh` (release, in build/) or
# `scripts/build.sh asan` (ASan+UBSan, in build-asan/), `tsan`, `py311` (against Debian's
# Python 3.11, in build-py311/). Extra args go to cmake.
set -euo pipefail
cd "$(dirname "$0")/.."
flavour="${1:-release}"
[ $# -gt 0 ] && shift
case "$flavour" in
release) dir=build; opts="-DCMAKE_BUILD_TYPE=RelWithDebInfo -DHB_WERROR=ON" ;;
asan) dir=build-asan; opts="-DCMAKE_BUILD_TYPE=Debug -DHB_ASAN=ON -DHB_UBSAN=ON -DHB_WERROR=ON" ;;
tsan) dir=build-tsan; opts="-DCMAKE_BUILD_TYPE=Debug -DHB_TSAN=ON" ;;
# Debian's Python 3.11: no per-interpreter GIL (workers share the main interpreter), but its
# FastAPI, pydantic 1 and numpy load (tests/integration/test_py311.py).
py311) dir=build-py311; opts="-DCMAKE_BUILD_TYPE=RelWithDebInfo -DHB_WERROR=ON -DHB_PYTHON_CONFIG=/usr/bin/python3.11-config" ;;
*) echo "usage: $0 [release|asan|tsan|py311] [cmake args]" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" $opts "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)"

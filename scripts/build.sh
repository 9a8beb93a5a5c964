#!/usr/bin/env bash
# Configures and builds one flavour: `scripts/build.sh` (release, in build/) or
# `scripts/build.sh asan` (ASan+UBSan, in build-asan/). Extra args go to cmake.
set -euo pipefail
cd "$(dirname "$0")/.."
flavour="${1:-release}"
[ $# -gt 0 ] && shift
case "$flavour" in
release) dir=build; opts="-DCMAKE_BUILD_TYPE=RelWithDebInfo -DHB_WERROR=ON" ;;
asan) dir=build-asan; opts="-DCMAKE_BUILD_TYPE=Debug -DHB_ASAN=ON -DHB_UBSAN=ON -DHB_WERROR=ON" ;;
tsan) dir=build-tsan; opts="-DCMAKE_BUILD_TYPE=Debug -DHB_TSAN=ON" ;;
*) echo "usage: $0 [release|asan|tsan] [cmake args]" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" $opts "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)"

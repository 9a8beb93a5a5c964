#!/usr/bin/env bash
# Installs the Debian packages hornbeam-uring needs to build, test and benchmark.
# As root it runs apt-get; otherwise it prints the one command to run. Idempotent and quiet when
# everything is already there.
set -euo pipefail

BUILD_PKGS="build-essential cmake pkg-config liburing-dev node-llhttp libjemalloc-dev clang libclang-rt-14-dev clang-format
  libcriterion-dev zlib1g-dev libnghttp2-dev libwolfssl-dev"
TEST_PKGS="python3 python3-pytest python3-requests python3-httpx python3-h2 python3-websockets gunicorn
  python3-flask python3-django python3-starlette curl nghttp2-client openssl iproute2
  python3-yaml python3-kubernetes python3-wsproto libpython3.11-dev python3-fastapi python3-pydantic
  python3-numpy nginx-light libnginx-mod-stream prometheus"
PERF_PKGS="wrk nginx-light gunicorn python3-uvicorn python3-uvloop python3-httptools
  uwsgi uwsgi-plugin-python3 python3-hypercorn python3-matplotlib linux-perf valgrind
  redis-server python3-redis serf"

want="$BUILD_PKGS $TEST_PKGS"
[ "${1:-}" = "--perf" ] && want="$want $PERF_PKGS"

missing=""
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" = 0 ]; then
		echo "setup: installing:$missing"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -q >/dev/null
		apt-get install -y -q --no-install-recommends $missing >/dev/null
	else
		echo "setup: missing Debian packages. Run:"
		echo "  sudo apt-get install -y$missing"
		exit 1
	fi
fi

# CPython >= 3.12 with a shared libpython is needed for embedding (Debian 12 ships 3.11 only):
# the build looks for python3.13-config / python3.12-config on PATH and in pyenv installs.
if ! cmake -P cmake/CheckPython.cmake >/dev/null 2>&1; then
	cmake -P cmake/CheckPython.cmake || true
	exit 1
fi

#!/usr/bin/env bash
# Builds hornbeam-uring and serves examples/hello_wsgi on http://127.0.0.1:8000 (Ctrl-C stops).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh release
exec build/hornbeam-uring app:application --pythonpath examples/hello_wsgi --bind 127.0.0.1:8000 "$@"

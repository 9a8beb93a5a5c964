#!/usr/bin/env bash
# Builds the release flavour and installs it under PREFIX (default /usr/local): the binary, its
# Python package (hornbeam_erlang, hornbeam_ml), the docs, and the embedded Python's runtime
# (cmake/HornbeamInstall.cmake has the layout). Extra args go to cmake's configure step, e.g.
# `scripts/install.sh /opt/hornbeam -DHB_INSTALL_PYTHON_RUNTIME=OFF`.
# DESTDIR is honoured (packaging): DESTDIR=/tmp/stage scripts/install.sh /usr
set -euo pipefail
prefix="${1:-/usr/local}"
[ $# -gt 0 ] && shift
case "$prefix" in
/*) ;;
*) prefix="$(pwd)/$prefix" ;;
esac
cd "$(dirname "$0")/.."
scripts/build.sh release "$@"
cmake --install build --prefix "$prefix"
echo "installed: $prefix/bin/hornbeam-uring"

#!/bin/sh
# Builds the single-phase-init test extension into the directory given as $1, for the Python
# whose python3.X-config is $PYTHON_CONFIG (default: the embedding Python 3.13 under pyenv, else
# python3-config on PATH).
set -eu
out=${1:?usage: build.sh OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "${PYTHON_CONFIG:-}" ]; then
	if [ -x /root/.pyenv/versions/3.13.0/bin/python3.13-config ]; then
		PYTHON_CONFIG=/root/.pyenv/versions/3.13.0/bin/python3.13-config
	else
		PYTHON_CONFIG=python3-config
	fi
fi
suffix=$("$PYTHON_CONFIG" --extension-suffix)
mkdir -p "$out"
${CC:-cc} -shared -fPIC -O1 $("$PYTHON_CONFIG" --includes) \
	-o "$out/hbtest_singlephase$suffix" "$here/hbtest_singlephase.c"
echo "$out/hbtest_singlephase$suffix"

#!/usr/bin/env bash
# Checks that every C file in the tree is formatted with the root .clang-format.
# `scripts/check-format.sh --fix` formats them in place instead.
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files 'src/*.c' 'src/*.h' 'tests/*.c' 'tests/*.h' 'perf/*.c')
if [ "${1:-}" = "--fix" ]; then
	clang-format -i $files
	exit 0
fi
bad=0
for f in $files; do
	if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
		echo "not formatted: $f (scripts/check-format.sh --fix)"
		bad=1
	fi
done
exit $bad

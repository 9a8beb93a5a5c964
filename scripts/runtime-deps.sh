#!/usr/bin/env bash
# Prints the Debian packages that an installed hornbeam-uring tree (scripts/install.sh PREFIX)
# needs at run time, one per line: the packages owning the shared libraries that the binary,
# the bundled libpython and its extension modules load (libraries inside PREFIX excluded).
# A container build installs exactly these in its runtime stage (examples/kubernetes/Dockerfile).
#   scripts/runtime-deps.sh /opt/hornbeam
set -euo pipefail
prefix="${1:?usage: $0 PREFIX}"
prefix="$(cd "$prefix" && pwd -P)"
[ -x "$prefix/bin/hornbeam-uring" ] || { echo "$0: no $prefix/bin/hornbeam-uring" >&2; exit 2; }

owner() { # the package that ships library path $1 (merged /usr or not), or nothing
	local p
	for p in "$1" "$(readlink -f "$1")" "/usr$1" "${1#/usr}"; do
		dpkg-query -S "$p" 2>/dev/null | head -1 | cut -d: -f1 && return 0
	done
	return 0
}

find "$prefix/bin" "$prefix/lib" -type f \( -name '*.so' -o -name '*.so.*' -o -perm -u+x \) -print0 2>/dev/null |
	xargs -0 -r -n 50 sh -c 'ldd "$@" 2>/dev/null; exit 0' ldd | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | sort -u |
	while read -r lib; do
		case "$(readlink -f "$lib")" in "$prefix"/*) continue ;; esac
		pkg="$(owner "$lib")"
		if [ -z "$pkg" ]; then
			echo "$0: no Debian package ships $lib" >&2
			exit 1
		fi
		echo "$pkg"
	done | sort -u

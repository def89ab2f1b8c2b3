#!/bin/sh
# Check that libpvmem.so exports exactly the functions its public headers mark PVM_EXPORT,
# all under the PVMEM_ version node. Usage: check-exports.sh INCLUDE_DIR LIBPVMEM.so
set -eu
inc=$1 lib=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# Declarations may span lines: join each header, then pick names after PVM_EXPORT.
for h in "$inc"/*.h; do tr '\n' ' ' < "$h"; echo; done |
	perl -ne 'while (/PVM_EXPORT[^;]*?\b(pvm_\w+)\s*\(/g) { print "$1\n" }' | sort -u > "$tmp/declared"
nm -D --defined-only "$lib" | awk '$2 ~ /^[TtWw]$/ {print $3}' | sed 's/@.*//' | sort -u > "$tmp/exported"
status=0
if ! diff -u "$tmp/declared" "$tmp/exported" > "$tmp/diff"; then
	echo "exported symbols differ from the PVM_EXPORT declarations (- declared only, + exported only):"
	grep '^[-+]pvm\|^[-+][a-z_]' "$tmp/diff" || cat "$tmp/diff"
	status=1
fi
if objdump -T "$lib" | awk '$4 == ".text" || $4 ~ /text/' | grep -v 'PVMEM_0\.' | grep -q pvm_; then
	echo "symbols outside a PVMEM_ version node:"; objdump -T "$lib" | grep pvm_ | grep -v PVMEM_
	status=1
fi
n=$(wc -l < "$tmp/exported")
[ "$status" = 0 ] && echo "ok: $n exported symbols match the public headers"
exit $status

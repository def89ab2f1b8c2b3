#!/bin/sh
# Install the Debian packages pvmem needs to build, test and run, when they are missing.
# Usage: install-deps.sh [build|run|check|fuzz]. Runs apt-get only as root and only for packages
# that dpkg does not already list as installed.
set -eu
what=${1:-build}
pkgs="meson ninja-build gcc pkg-config libc6-dev libnuma-dev libjson-c-dev libxml2-dev scdoc python3"
case "$what" in
	check) pkgs="$pkgs libcmocka-dev binutils perl" ;;
	fuzz) pkgs="$pkgs libcmocka-dev binutils perl clang libclang-rt-dev" ;;
	run) pkgs="$pkgs gnuplot-nox" ;;
esac
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "pvmem: missing Debian packages:$missing" >&2
	echo "pvmem: run 'sudo apt-get install$missing' (or run make as root)" >&2
	exit 1
fi
echo "pvmem: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# The package lists may be absent on a fresh machine; refresh them once when an install fails.
apt-get install -y -q --no-install-recommends $missing >/dev/null 2>&1 ||
	{ apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $missing >/dev/null; }

#!/usr/bin/env bash
# gpu-deps.sh - packs the build and test dependencies that a bare GPU machine lacks (OpenBLAS,
# Criterion and their shared libraries, with headers) into .deps/gpu-deps.tar.xz, taken from
# this machine's Debian packages, for scripts/gpu-check.sh to unpack there.
#   scripts/gpu-deps.sh            (after `make build/tests/test_suite`)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/tests/test_suite}
[ -x "$bin" ] || { echo "gpu-deps: build $bin first (make build/tests/test_suite)" >&2; exit 1; }
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/lib" "$stage/include"
# every shared library the test binary loads, except the C library's own
ldd "$bin" | awk '/=> \//{print $3}' | grep -v -E '/(libc|libm|libpthread|libdl|librt|libresolv|ld-linux[^/]*)\.so' |
  while read -r f; do cp -L "$f" "$stage/lib/"; done
ln -s libopenblas.so.0 "$stage/lib/libopenblas.so"
ln -s libcriterion.so.3 "$stage/lib/libcriterion.so"
cp -L /usr/include/x86_64-linux-gnu/cblas.h /usr/include/x86_64-linux-gnu/openblas_config.h "$stage/include/"
cp -rL /usr/include/criterion "$stage/include/"
mkdir -p .deps
tar -C "$stage" -cJf .deps/gpu-deps.tar.xz lib include
ls -la .deps/gpu-deps.tar.xz

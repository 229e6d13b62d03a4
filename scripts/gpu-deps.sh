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
# every shared library the test binary and the chat tool load, except the C library's own
for b in "$bin" "$(dirname "$bin")/../s2s-chat"; do [ -x "$b" ] && ldd "$b"; done | awk '/=> \//{print $3}' |
  grep -v -E '/(libc|libm|libpthread|libdl|librt|libresolv|libstdc\+\+|libgcc_s|ld-linux[^/]*)\.so' | grep -v -E '/(libcu|libnv|libseq2seq)[^/]*\.so' | sort -u |
  while read -r f; do cp -L "$f" "$stage/lib/"; done
# unversioned names for the linker
for f in "$stage"/lib/*.so.*; do
  base=$(basename "$f"); short=${base%%.so.*}.so
  [ -e "$stage/lib/$short" ] || ln -s "$base" "$stage/lib/$short"
done
cp -L /usr/include/x86_64-linux-gnu/cblas.h /usr/include/x86_64-linux-gnu/openblas_config.h "$stage/include/"
cp -L /usr/include/zlib.h /usr/include/zconf.h /usr/include/sentencepiece_processor.h \
  /usr/include/sentencepiece_trainer.h "$stage/include/"
cp -rL /usr/include/criterion /usr/include/cjson /usr/include/editline "$stage/include/"
mkdir -p .deps
rm -f .deps/gpu-deps.tar.*
tar -C "$stage" -czf .deps/gpu-deps.tar.gz lib include
ls -la .deps/gpu-deps.tar.gz

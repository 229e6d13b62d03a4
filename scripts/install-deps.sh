#!/usr/bin/env bash
# install-deps.sh - the Debian packages libseq2seq needs, listed once.
#   scripts/install-deps.sh          install what is missing (as root), or print the apt-get line
#   scripts/install-deps.sh --check  exit 0 when everything is installed, 1 otherwise (prints what)
# The CUDA toolkit is optional and not installed here: the Makefile builds the CUDA backend
# when it finds nvcc.
set -euo pipefail

PACKAGES=(
  build-essential pkg-config      # compiler, make, pkg-config (the installed .pc file)
  libopenblas-dev                 # CBLAS GEMMs of the CPU backend
  libcriterion-dev                # the test suite
  zlib1g-dev                      # gzip corpora, CRC32 of model files
  libcjson-dev                    # config and safetensors headers
  libsentencepiece-dev            # the subword tokenizer
  libedit-dev                     # line editing at the chat prompt
  libmicrohttpd-dev               # s2s-serve's HTTP
  libdnnl-dev                     # oneDNN: bf16 and int8 decoding on the CPU
  libopenmpi-dev openmpi-bin      # Open MPI: data-parallel training (mpirun) and its tests
  # for the tests of s2s-serve: a load generator, and a real browser driven by Selenium
  hey chromium chromium-driver python3-selenium
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ "${1:-}" = "--check" ]; then
  [ ${#missing[@]} -eq 0 ] && exit 0
  echo "missing Debian packages: ${missing[*]}" >&2
  exit 1
fi
[ ${#missing[@]} -eq 0 ] && { echo "install-deps: all packages present"; exit 0; }

line="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages; run as root:" >&2
  echo "  apt-get update && $line" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
$line

#!/usr/bin/env bash
# fuzz.sh - runs the libFuzzer targets that `make fuzz` builds (tests/fuzz/README.md).
#
#   scripts/fuzz.sh SECONDS [build-fuzz/fuzz_NAME ...]   run each target SECONDS s (default: all)
#   scripts/fuzz.sh --make-seeds                          rebuild the binary seeds in tests/fuzz/seeds
#
# Each target runs on its own growing corpus build-fuzz/corpus/NAME (new inputs land there),
# seeded from tests/fuzz/seeds/NAME (never written), with the -max_len and dictionary that suit
# its format. Crashes, leaks, timeouts and out-of-memory inputs are saved under
# build-fuzz/crashes/NAME/. Prints one line per target (executions, executions/s, corpus size,
# new findings) and exits 1 when any target found something this run.
# Extra libFuzzer flags: FUZZ_ARGS="-fork=4 -ignore_crashes=1" scripts/fuzz.sh 3600
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--make-seeds" ]; then
  set -e
  make --no-print-directory BUILD=build-fuzz/host CUDA=0 lib >/dev/null
  ${CC:-cc} -O1 -std=c11 -D_GNU_SOURCE -fopenmp -Iinclude $(for d in lib lib/*/; do printf -- "-I%s " "${d%/}"; done)tests/fuzz/make_seeds.c -o build-fuzz/make_seeds \
    build-fuzz/host/libseq2seq.a -lsentencepiece_train -lsentencepiece -lcjson -lz -lopenblas -lm -lstdc++
  build-fuzz/make_seeds tests/fuzz/seeds
  du -sh tests/fuzz/seeds/*
  exit 0
fi

secs=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then # the built targets: executables, not their object files
  for f in build-fuzz/fuzz_*; do
    [ -x "$f" ] && [ "${f%.o}" = "$f" ] && targets+=("$f")
  done
fi
[ ${#targets[@]} -gt 0 ] || { echo "fuzz.sh: no targets built (make fuzz builds them)" >&2; exit 2; }
case "$secs" in '' | 0 | *[!0-9]*) echo "fuzz.sh: SECONDS must be a positive whole number, not '$secs'" >&2; exit 2 ;; esac

# -max_len per target: big enough for the seeds and some growth, small enough to stay fast.
max_len() {
  case "$1" in
    fuzz_modelfile) echo 16384 ;;
    fuzz_chatterbot | fuzz_dailydialog) echo 8192 ;;
    *) echo 4096 ;;
  esac
}

# Scratch files of the targets (fuzz_util.h): in a directory of this run, removed at the end
# even when a target dies (libFuzzer leaves by _exit on a crash, and -fork kills its workers).
shm=/dev/shm
[ -w "$shm" ] || shm=${TMPDIR:-/tmp}
TMPDIR=$(mktemp -d "$shm/s2s-fuzz-run.XXXXXX")
export TMPDIR
trap 'rm -rf "$TMPDIR"' EXIT

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
found=0
for bin in "${targets[@]}"; do
  name=$(basename "$bin")
  if [ ! -x "$bin" ]; then
    echo "fuzz.sh: $bin is not built (make fuzz builds it)" >&2
    exit 2
  fi
  corpus=build-fuzz/corpus/$name crashes=build-fuzz/crashes/$name log=build-fuzz/logs/$name.log
  seeds=tests/fuzz/seeds/${name#fuzz_}
  dict=tests/fuzz/dict/${name#fuzz_}.dict
  mkdir -p "$corpus" "$crashes" build-fuzz/logs
  before=$(ls "$crashes" | wc -l)
  args=(-max_total_time="$secs" -max_len="$(max_len "$name")" -timeout=20 -rss_limit_mb=2048
        -print_final_stats=1 -artifact_prefix="$crashes/")
  [ -f "$dict" ] && args+=(-dict="$dict")
  # shellcheck disable=SC2086
  "$bin" "${args[@]}" ${FUZZ_ARGS:-} "$corpus" "$seeds" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  [ -n "$execs" ] || execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#') # -fork mode
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  [ -n "$rate" ] || rate=$(grep -oE 'exec/s:? [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
  new=$(( $(ls "$crashes" | wc -l) - before ))
  printf '%-18s %4ss  %9s execs  %6s exec/s  cov %5s  corpus %5s  findings %d%s\n' "$name" "$secs" "${execs:-?}" \
    "${rate:-?}" "${cov:-?}" "$(ls "$corpus" | wc -l)" "$new" "$([ $rc -ne 0 ] && echo "  (exit $rc, see $log)")"
  if [ "$new" -gt 0 ] || [ $rc -ne 0 ]; then
    found=1
    ls -t "$crashes" | head -n "$new" | sed "s|^|    $crashes/|"
  fi
done
exit $found

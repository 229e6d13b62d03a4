#!/usr/bin/env bash
# gpu-check.sh OUTDIR - everything that needs a real NVIDIA GPU, in one run (about 6 minutes
# on an H100):
#   1. build for sm_90 (make CUDA_ARCH=90), with OpenBLAS and Criterion from
#      .deps/gpu-deps.tar.gz when the machine lacks them (scripts/gpu-deps.sh makes it) and
#      cuDNN from the toolkit or PyTorch's wheels; a build carried in build-gpu-prebuilt/
#      (make CUDA_ARCH=90 CUDNN=0 BUILD=build-gpu-prebuilt) is the fallback if the build fails;
#   2. the whole test suite with the GPU tests active, and the data-parallel cases under
#      mpirun (tests/mpi/run.sh: the CPU ranks and the NCCL communicator on this GPU; MPI
#      builds only);
#   3. compute-sanitizer memcheck on the GPU op, model, wavefront, graph and cuDNN-layer tests,
#      racecheck on the GPU op tests;
#   4. bench/compare.sh --device cuda: our LSTM against cuDNN and PyTorch, the whole model
#      against PyTorch eager, with the cuBLAS GEMM rate as the ceiling;
#   5. a short table, printed last and written to OUTDIR/summary.md.
# Every stage has a time limit and the script goes on after a failing stage; the summary says
# which stages failed. Logs go to OUTDIR.
#
# scripts/gpu-check.sh OUTDIR --recheck (about 4 minutes): the same without the layer
# benchmarks (compare.sh --model), for a second run after fixes.
#
# scripts/gpu-check.sh OUTDIR --shapes (about 7 minutes; GPU_CHECK_SECONDS=540 by default): the
# build, then bench/compare.sh --device cuda --full --quick: every shape of the benchmark issue
# (T=50 with B in {1,16,64,128} x H in {256,512,1024}; T=256 with B in {1,4,8} x H in
# {512,1024,2048}) besides the usual ones; no tests, no sanitizers.
#
# scripts/gpu-check.sh OUTDIR --train (about 4 minutes): the build, the sanitizers on the GPU
# tests, then the translator trained on the GPU on Multi30k (data/multi30k, carried or fetched)
# for 90 seconds and evaluated on its test set, greedy and beam 5.
set -uo pipefail
out=${1:?usage: scripts/gpu-check.sh OUTDIR [--recheck|--shapes|--train]}
mode=${2:-full}
case $mode in full|--recheck|--shapes|--train) ;; *) echo "gpu-check.sh: unknown mode $mode" >&2; exit 2 ;; esac
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."
start=$(date +%s)
default_seconds=420; [ "$mode" = --shapes ] && default_seconds=540
deadline=${GPU_CHECK_SECONDS:-$default_seconds} # 7 minutes for the whole run; each stage's limit is cut to what is left
declare -A status
stage() { # stage NAME LOG SECONDS COMMAND...: runs with a limit, appends to OUTDIR/LOG.log
  local name=$1 log=$2 limit=$3; shift 3
  local t0=$(date +%s) left=$(( deadline - ($(date +%s) - start) - 15 ))
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -lt 10 ]; then status[$name]="skipped: the run's time budget is spent"; echo "== $name: skipped"; return 1; fi
  echo "== $name: $*" >>"$out/$log.log"
  timeout --kill-after=5 "$limit" "$@" >>"$out/$log.log" 2>&1
  local rc=$?
  status[$name]="rc=$rc in $(( $(date +%s) - t0 ))s"
  echo "== $name: ${status[$name]}"
  return $rc
}

gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)
echo "GPU: $gpu; nvcc: $(nvcc --version 2>/dev/null | tail -1)"

# --- dependencies: what the machine lacks comes from the carried archive ---
deps=/tmp/s2s-deps
if [ -f .deps/gpu-deps.tar.gz ] && ! echo '#include <criterion/criterion.h>' | cc -E - >/dev/null 2>&1; then
  mkdir -p "$deps" && tar -C "$deps" -xzf .deps/gpu-deps.tar.gz
  export CPATH="$deps/include${CPATH:+:$CPATH}" LIBRARY_PATH="$deps/lib${LIBRARY_PATH:+:$LIBRARY_PATH}"
  export LD_LIBRARY_PATH="$deps/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

# cuDNN: the toolkit's, or else the one PyTorch's wheels bring (headers and library)
cuda_home=${CUDA_HOME:-/usr/local/cuda}
cudnn=0
if ls "$cuda_home"/lib64/libcudnn.so >/dev/null 2>&1 || ldconfig -p 2>/dev/null | grep -q 'libcudnn\.so '; then
  cudnn=1
else
  d=$(env -u LD_LIBRARY_PATH python3 -c 'import nvidia.cudnn as m; print(list(m.__path__)[0])' 2>/dev/null)
  if [ -n "$d" ] && [ -f "$d/include/cudnn.h" ] && ls "$d"/lib/libcudnn.so.* >/dev/null 2>&1; then
    mkdir -p /tmp/s2s-cudnn && ln -sf "$(ls "$d"/lib/libcudnn.so.[0-9]* | head -1)" /tmp/s2s-cudnn/libcudnn.so
    export CPATH="$d/include${CPATH:+:$CPATH}" LIBRARY_PATH="/tmp/s2s-cudnn:$d/lib${LIBRARY_PATH:+:$LIBRARY_PATH}"
    export LD_LIBRARY_PATH="$d/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    cudnn=1
  fi
fi
echo "cuDNN for the build: $cudnn ${d:-}"

# --- 1. build ---
B=build-gpu
if ! stage build build 150 make -j"$(nproc)" CUDA=1 CUDNN=$cudnn CUDA_ARCH=90 BUILD=$B all $B/tests/test_suite; then
  if [ -x build-gpu-prebuilt/tests/test_suite ]; then
    B=build-gpu-prebuilt
    echo "build failed (see build.log): using the carried build $B"
  fi
fi

# --- 2. the whole suite, GPU tests active ---
export S2S_BUILD=$B
[ "$mode" = --train ] || [ "$mode" = --shapes ] || stage tests tests 120 "$B/tests/test_suite" -j8 --verbose
if [ "$mode" != --shapes ]; then
  if command -v mpicc >/dev/null && make -j"$(nproc)" CUDA=1 CUDNN=$cudnn CUDA_ARCH=90 BUILD=$B $B/tests/dp_test \
      >>"$out/build.log" 2>&1; then
    stage mpi tests 90 tests/mpi/run.sh $B/tests/dp_test
  else
    status[mpi]="not built: no MPI on this machine (mpicc) or the build failed (build.log)"
  fi
fi
tests_line=$(grep -a "Synthesis" "$out/tests.log" 2>/dev/null | tail -1)
gpu_skips=$(grep -a -c -E "^\[SKIP\] (cuda_|golden_cuda|wavefront::cuda|cudnn_layer)" "$out/tests.log" 2>/dev/null)

command -v compute-sanitizer >/dev/null || export PATH="$PATH:${CUDA_HOME:-/usr/local/cuda}/bin"

# --- 3. sanitizers on the GPU tests (the 300-step training test is left out: too slow) ---
if [ "$mode" != --shapes ]; then
  san_filter='@(cuda_parity|golden_cuda)/*'
  stage memcheck sanitizers 90 compute-sanitizer --tool memcheck --target-processes all --error-exitcode 9 \
    "$B/tests/test_suite" -j1 --filter "$san_filter"
  stage memcheck_model sanitizers 45 compute-sanitizer --tool memcheck --target-processes all --error-exitcode 9 \
    "$B/tests/test_suite" -j1 --filter 'cuda_model/@(step_lstm_bidir_general_fp32|greedy_graph_replay_is_exact)'
  stage memcheck_layers sanitizers 60 compute-sanitizer --tool memcheck --target-processes all --error-exitcode 9 \
    "$B/tests/test_suite" -j1 --filter '@(wavefront/cuda_lstm_*|cuda_graphs/*|cudnn_layer/lstm_*)'
  # racecheck looks at shared memory: the kernels that use it
  race_filter='cuda_parity/@(colsum|sum_sumsq|embed_bwd|attn_fwd|attn_bwd|xent|log_softmax|argmax|topk)'
  [ "$mode" = --train ] && race_filter='cuda_parity/attn_*'
  stage racecheck sanitizers 90 compute-sanitizer --tool racecheck --target-processes all --error-exitcode 9 \
    "$B/tests/test_suite" -j1 --filter "$race_filter"
fi

# --- 4. benchmarks, or (--train) the translator trained and evaluated on the GPU ---
if [ "$mode" = --train ]; then
  d=data/multi30k
  stage train train 150 "$B/s2s-translate" train --train-src $d/train.en --train-tgt $d/train.de \
    --valid-src $d/val.en --valid-tgt $d/val.de --out /tmp/m30k-gpu --device cuda --minutes 1.5 --vocab 6000 \
    --bidirectional --hidden 256 --embed 256 --dropout 0.3 --lr 2e-3 --warmup 400 --batch-tokens 3000 \
    --max-len 60 --valid-every 400 --valid-max 1014 --label-smoothing 0.1
  for dec in "--greedy" "--beam 5"; do
    stage "eval $dec" train 60 "$B/s2s-translate" eval --model /tmp/m30k-gpu.best.safetensors --src $d/test.en \
      --ref $d/test.de --device cuda $dec
  done
fi
case $mode in
  full) stage bench bench 240 bench/compare.sh --device cuda --quick --build "$B" --out "$out/bench" ;;
  --recheck) stage bench bench 120 bench/compare.sh --device cuda --quick --model --build "$B" --out "$out/bench" ;;
  --shapes) stage bench bench 420 bench/compare.sh --device cuda --quick --full --build "$B" --out "$out/bench" ;;
esac
for f in "$out"/bench/*; do [ -f "$f" ] && mv "$f" "$out/bench-$(basename "$f")"; done
rmdir "$out/bench" 2>/dev/null

# --- 5. summary ---
{
  echo "# GPU check: $gpu, $(date -u +%Y-%m-%d)"
  echo
  echo "| stage | result |"
  echo "|---|---|"
  for s in build tests mpi memcheck memcheck_model memcheck_layers racecheck bench train "eval --greedy" "eval --beam 5"; do
    echo "| $s | ${status[$s]:-not run} |"
  done
  echo
  echo "- test suite (build $B): ${tests_line:-no synthesis line}; GPU tests skipped: $gpu_skips"
  grep -a -h "^tests/mpi: .*\(NCCL\|cases passed\|FAIL\)" "$out/tests.log" 2>/dev/null | sed 's/^/- /'
  echo "- sanitizers (memcheck, racecheck): $(grep -a -E "ERROR SUMMARY|RACECHECK SUMMARY" "$out/sanitizers.log" 2>/dev/null |
    sort | uniq -c | tr -s ' ' | paste -sd';' -)"
  grep -a -h "^\[FAIL\]\|Assertion Failed" "$out/tests.log" 2>/dev/null | head -20 | sed 's/^/    /'
  echo
  [ -f "$out/train.log" ] && grep -a -E "validation at|BLEU =|sentences in|training on" "$out/train.log"
  md=$(ls "$out"/bench-*.md 2>/dev/null | head -1)
  [ -n "$md" ] && cat "$md"
  echo
  echo "total: $(( $(date +%s) - start ))s"
} >"$out/summary.md"
cat "$out/summary.md"

#!/usr/bin/env bash
# compare.sh - ours against the peers on the same shapes in one run: a Markdown table with the
# ratio peer time / our time, written to bench/results/DATE-DEVICE.md (raw JSON lines beside it).
#   bench/compare.sh [--device cpu|cuda] [--full] [--quick] [--model] [--build DIR] [--out DIR]
# --model: the whole model only (and, on the GPU, the bf16 headline layer), for a short rerun.
# CPU: PyTorch's nn.LSTM (Debian python3-torch) with the same thread count.
# GPU: cuDNN through our binding (best algorithm) and PyTorch's nn.LSTM (cuDNN), fp32, tf32 and
# bf16 (cuDNN's RNN API has none: ours against PyTorch's bf16 module); wavefront schedules.
# The GEMM rate measured in the same run (OpenBLAS or cuBLAS) is the ceiling.
set -euo pipefail
cd "$(dirname "$0")/.."
device=cpu; full=0; quick=0; model=0; build=build; out=bench/results
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device=$2; shift ;;
    --full) full=1 ;;
    --quick) quick=1 ;;
    --model) model=1 ;;
    --build) build=$2; shift ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "compare.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
. bench/torch_python.sh
py=$(torch_python compare.sh)
threads=$(nproc)
reps=20; [ $quick = 1 ] && reps=7
raw=$(mktemp)
trap 'rm -f "$raw"' EXIT

if [ "$device" = cpu ]; then
  shapes="30,32,256,256,1 50,64,512,512,1 100,16,128,128,1 30,1,256,256,1"
  gemm="3200,2048,512"
  impls="fused torch"
else
  shapes="100,64,1024,1024,1 100,64,512,512,1 100,64,512,512,4 50,1,512,512,1 50,64,1024,1024,1 256,8,1024,1024,1 1024,16,768,768,1"
  if [ $full = 1 ]; then
    for B in 1 16 64 128; do for H in 256 512 1024; do shapes="$shapes 50,$B,$H,$H,1"; done; done
    for B in 1 4 8; do for H in 512 1024 2048; do shapes="$shapes 256,$B,$H,$H,1"; done; done
  fi
  gemm="6400,4096,1024"
  impls="fused cudnn torch"
fi

run() { "$@" >>"$raw" 2>>"$raw.err" || echo "compare.sh: failed: $*" >&2; }
precisions=fp32; [ "$device" = cuda ] && precisions="fp32 tf32 bf16"
[ $model = 1 ] && { precisions=""; [ "$device" = cuda ] && precisions=bf16; }
for prec in $precisions; do
  run "$build/bench_lstm" --device "$device" --precision "$prec" --gemm "$gemm" --reps "$reps"
  for s in $shapes; do
    IFS=, read -r T B I H L <<<"$s"
    [ "$prec" != fp32 ] && [ "$s" != "100,64,1024,1024,1" ] && continue   # tf32, bf16: the headline shape only
    for mode in fwd fwdbwd; do
      bw=""; [ $mode = fwdbwd ] && bw=--backward
      for impl in $impls; do
        args=(--device "$device" --T "$T" --B "$B" --I "$I" --H "$H" --layers "$L" --precision "$prec" --reps "$reps" $bw)
        case $impl in
          fused|cudnn) run "$build/bench_lstm" --impl "$impl" "${args[@]}" ;;
          torch) run env -u LD_LIBRARY_PATH "$py" bench/peers/torch_lstm.py "${args[@]}" --threads "$threads" ;;
        esac
      done
    done
  done
done
# the layer wavefront: the 4-layer shape with one lane (no overlap), 3 and 4 lanes, other chunks
if [ "$device" = cuda ] && [ $model = 0 ]; then
  for v in "1 10" "2 5" "2 25" "3 10" "4 10"; do
    read -r ln ch <<<"$v"
    run "$build/bench_lstm" --impl fused --device cuda --T 100 --B 64 --I 512 --H 512 --layers 4 --backward \
        --reps "$reps" --lanes "$ln" --chunk "$ch"
  done
fi
cfgs="small medium"; [ $quick = 1 ] && cfgs=medium
for c in $cfgs; do
  run "$build/bench_seq2seq" --config "$c" --device "$device" --reps $((reps / 2 + 1))
  [ "$device" = cuda ] && run "$build/bench_seq2seq" --config "$c" --device cuda --impl cudnn --mode train \
      --reps $((reps / 2 + 1))
  # decoding latency without the second stream (the encoder's two directions one after the other)
  [ "$device" = cuda ] && run "$build/bench_seq2seq" --config "$c" --device cuda --streams 1 --mode greedy1 \
      --reps $((reps / 2 + 1))
  run env -u LD_LIBRARY_PATH "$py" bench/peers/torch_seq2seq.py --config "$c" --device "$device" \
      --reps $((reps / 2 + 1)) --threads "$threads"
done
mkdir -p "$out"
name=$("$py" - "$raw" <<'PY'
import json, re, sys
for line in open(sys.argv[1]):
    if line.startswith("{"):
        d = json.loads(line)
        if d.get("impl") in ("fused", "ours"):
            print(re.sub(r"[^A-Za-z0-9]+", "-", d["device_name"]).strip("-")); break
PY
)
stamp="$(date -u +%Y-%m-%d)-${name:-$device}"
cp "$raw" "$out/$stamp.jsonl"
[ -s "$raw.err" ] && cp "$raw.err" "$out/$stamp.err.log"
rm -f "$raw.err"
"$py" bench/table.py "$out/$stamp.jsonl" | tee "$out/$stamp.md"

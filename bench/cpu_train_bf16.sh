#!/usr/bin/env bash
# cpu_train_bf16.sh - a training step on the CPU at fp32 and bf16 (the context's precision),
# ours against PyTorch (fp32, and bf16 under torch.autocast) in one run, the same shapes and
# threads; --base DIR adds another build's fp32 step (the code before a change) side by side.
#   bench/cpu_train_bf16.sh [--base BUILD] [--reps N] [--out FILE.md]
# Writes a Markdown table (median ms per step, tokens/s) to --out (default: standard output)
# and the JSON lines beside it (FILE.jsonl).
set -euo pipefail
cd "$(dirname "$0")/.."
base=""; reps=11; out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --base) base=$2; shift ;;
    --reps) reps=$2; shift ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "cpu_train_bf16.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
. bench/torch_python.sh
py=$(torch_python cpu_train_bf16.sh)
threads=$(nproc)
raw=$(mktemp)
trap 'rm -f "$raw"' EXIT
tag() { sed "s/^{/{\"build\":\"$1\",/"; }
for c in small medium; do
  [ -n "$base" ] && "$base/bench_seq2seq" --config "$c" --device cpu --mode train --reps "$reps" | tag base >>"$raw"
  for p in fp32 bf16; do
    build/bench_seq2seq --config "$c" --device cpu --precision "$p" --mode train --reps "$reps" | tag this >>"$raw"
    env -u LD_LIBRARY_PATH "$py" bench/peers/torch_seq2seq.py --config "$c" --device cpu --precision "$p" \
        --mode train --reps "$reps" --threads "$threads" | tag torch >>"$raw"
  done
done
table=$("$py" - "$raw" "$threads" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
print(f"Training step on the CPU ({sys.argv[2]} threads), B = 64, 30 tokens per side; median of the runs.\n")
print("| config | build | precision | median ms | tokens/s | PyTorch ms (same precision) | PyTorch / ours |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    if r["build"] == "torch":
        continue
    peer = [t for t in rows if t["build"] == "torch" and t["config"] == r["config"] and t["precision"] == r["precision"]]
    pm = peer[0]["median_ms"] if peer else None
    name = "before (--base)" if r["build"] == "base" else "this"
    print(f"| {r['config']} | {name} | {r['precision']} | {r['median_ms']:.1f} | {r['tokens_per_s']} | "
          f"{pm:.1f} | {pm / r['median_ms']:.2f} |" if pm else "")
PY
)
if [ -n "$out" ]; then
  mkdir -p "$(dirname "$out")"
  printf '%s\n' "$table" >"$out"
  cp "$raw" "${out%.md}.jsonl"
  echo "cpu_train_bf16.sh: wrote $out and ${out%.md}.jsonl" >&2
else
  printf '%s\n' "$table"
fi

#!/usr/bin/env bash
# cpu_precision.sh - decoding speed and BLEU on the CPU at fp32, bf16 and int8, against PyTorch
# eager (fp32, and torch's dynamic int8 quantization of the LSTM and Linear layers) on the same
# weights, in one run: rounds alternate ours and the peers, the table takes medians.
#   bench/cpu_precision.sh --model FILE [--src F --ref F] [--rounds N] [--b1 N] [--threads T] [--out DIR]
#                          [--base BUILD]   (BUILD: an earlier commit's build folder, run at fp32 too)
# Cases: beam 5 and greedy at batch 64 on the whole test set (sentences per second), beam 5 and
# greedy at batch 1 on its first --b1 lines (milliseconds per sentence). Writes DIR/raw.jsonl,
# DIR/cpu.txt (lscpu, the features each path used) and DIR/table.md (printed last).
set -euo pipefail
cd "$(dirname "$0")/.."
model=runs/m30k.best.safetensors; src=data/multi30k/test.en; ref=data/multi30k/test.de
rounds=3; b1=200; threads=2; out=bench/results/$(date +%F)-cpu-precision; build=build; base=
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model=$2; shift ;;
    --src) src=$2; shift ;;
    --ref) ref=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    --b1) b1=$2; shift ;;
    --threads) threads=$2; shift ;;
    --out) out=$2; shift ;;
    --build) build=$2; shift ;;
    --base) base=$2; shift ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "cpu_precision.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
for f in "$model" "$src" "$ref" "$build/s2s-translate"; do
  [ -e "$f" ] || { echo "cpu_precision.sh: $f is missing (make; scripts/fetch-data.sh; train a model)" >&2; exit 1; }
done
py=${PYTHON:-/usr/bin/python3}
"$py" -c 'import torch' 2>/dev/null || { echo "cpu_precision.sh: $py has no torch (set PYTHON)" >&2; exit 1; }
mkdir -p "$out"
raw=$out/raw.jsonl; : >"$raw"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
head -n "$b1" "$src" >"$tmp/b1.src"; head -n "$b1" "$ref" >"$tmp/b1.ref"
export OMP_NUM_THREADS=$threads   # libgomp's default waiting for every program (one runs at a time)

{ echo "date: $(date -u +%FT%TZ)"; echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo none)"
  lscpu | grep -E '^(Model name|CPU\(s\)|Thread|Core|Socket|Hypervisor|L2|L3)'
  echo "flags: $(grep -o -w -E 'avx2|fma|avx512f|avx512_vnni|avx_vnni|avx512_bf16|amx_bf16|amx_int8' /proc/cpuinfo | sort -u | tr '\n' ' ')"
  [ -n "$base" ] && echo "base (--base): the build of commit $(git -C "$base/.." rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo "torch: $("$py" -c 'import torch; print(torch.__version__, torch.backends.quantized.engine)')"
  for p in bf16 int8; do
    echo "ours --precision $p: $(echo 'A man.' | "$build/s2s-translate" translate --model "$model" --precision $p \
      --threads "$threads" 2>&1 >/dev/null | grep -E 'decoding (with|in)' | sed 's/^s2s-translate: //')"
  done; } >"$out/cpu.txt"

case_args() { # case -> "mode batch src ref"
  case $1 in
    beam64) echo "beam 64 $src $ref" ;;
    greedy64) echo "greedy 64 $src $ref" ;;
    beam1) echo "beam 1 $tmp/b1.src $tmp/b1.ref" ;;
    greedy1) echo "greedy 1 $tmp/b1.src $tmp/b1.ref" ;;
  esac
}
ours() { # case precision round [build who]
  local mode batch s r; read -r mode batch s r <<<"$(case_args "$1")"
  local b=${4:-$build} who=${5:-ours}
  local flag=--beam; [ "$mode" = greedy ] && flag=--greedy
  local arg=(); [ "$mode" = beam ] && arg=(5)
  local o; o=$("$b/s2s-translate" eval --model "$model" --src "$s" --ref "$r" $flag "${arg[@]}" --batch "$batch" \
               --precision "$2" --threads "$threads" 2>"$tmp/err") || { cat "$tmp/err" >&2; return 1; }
  "$py" - "$1" "$2" "$3" "$o" "$who" <<'EOF' >>"$raw"
import json, re, sys
case, prec, rnd, o, who = sys.argv[1:]
bleu = float(re.search(r"BLEU = ([0-9.]+)", o).group(1))
m = re.search(r"(\d+) sentences in ([0-9.]+) s \(([0-9.]+) sentences/s\), \w+, (\w+)", o)
n, sec = int(m.group(1)), float(m.group(2))
print(json.dumps({"who": who, "case": case, "asked": prec, "used": m.group(4) if m.group(4) in ("fp32", "tf32", "bf16", "int8") else "fp32", "round": int(rnd),
                  "sentences": n, "seconds": sec, "bleu": bleu}))
EOF
}
peer() { # case quantize(0|1) round
  local mode batch s r; read -r mode batch s r <<<"$(case_args "$1")"
  local q=(); [ "$2" = 1 ] && q=(--quantize)
  PYTHONPATH=python S2S_LIBRARY=$build/libseq2seq.so "$py" bench/peers/torch_translate.py --model "$model" --src "$s" \
    --ref "$r" --mode "$mode" --batch "$batch" --threads "$threads" "${q[@]}" |
  "$py" -c 'import json,sys; d=json.loads(sys.stdin.read()); print(json.dumps({"who":"torch","case":sys.argv[1],
"asked":d["precision"],"used":d["precision"],"round":int(sys.argv[2]),"sentences":d["sentences"],
"seconds":d["seconds"],"bleu":d["bleu"]}))' "$1" "$3" >>"$raw"
}

for r in $(seq 1 "$rounds"); do
  for c in beam64 greedy64 greedy1 beam1; do
    echo "cpu_precision.sh: round $r/$rounds, $c" >&2
    [ -n "$base" ] && ours $c fp32 "$r" "$base" base
    for p in fp32 bf16 int8; do ours $c $p "$r"; done
    peer $c 0 "$r"; peer $c 1 "$r"
  done
done
"$py" bench/cpu_precision_table.py "$raw" "$out/cpu.txt" >"$out/table.md"
cat "$out/table.md"

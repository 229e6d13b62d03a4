#!/usr/bin/env bash
# serve.sh - s2s-serve under load: continuous batching against one request at a time, in one run.
#
#   bench/serve.sh --translate MODEL [--chat MODEL] [--lines FILE] [--n 200] [--threads 2]
#                  [--conc "1 4 16 64"] [--out DIR] [--check]
#
# For each kind (translation: POST /translate, beam 5; chat: streaming /v1/chat/completions,
# greedy) and each mode, a server is started on a free loopback port and bench/serve_load.py
# runs a closed loop of N requests (the first N lines of FILE) at each concurrency:
#   batched   the engine's continuous batching (the defaults: 256 rows)
#   single    one request at a time (--max-rows 5 for beam 5, 1 for greedy), as OpenNMT-py's
#             server decodes
# The load generator runs on the same machine as the server and shares its cores.
# --check: first, every line of FILE through the server at concurrency 16, each answer compared
# with `s2s-translate translate --batch 1` (the line decoded alone, beam 5).
# Writes DIR/serve.jsonl (one line per run) and DIR/serve.md (the table), and prints the table.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
TR="" CH="" LINES=data/multi30k/test.en N=200 THREADS=2 CONC="1 4 16 64" OUT="" CHECK=0
while [ $# -gt 0 ]; do
  case "$1" in
    --translate) TR=$2; shift 2 ;;
    --chat) CH=$2; shift 2 ;;
    --lines) LINES=$2; shift 2 ;;
    --n) N=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --conc) CONC=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --check) CHECK=1; shift ;;
    -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "serve.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$TR" ] || { echo "serve.sh: --translate MODEL is needed" >&2; exit 2; }
[ -f "$LINES" ] || { echo "serve.sh: no lines file $LINES (scripts/fetch-data.sh multi30k)" >&2; exit 2; }
OUT=${OUT:-$(mktemp -d /tmp/s2s_serve_bench_XXXXXX)}
mkdir -p "$OUT"
: >"$OUT/serve.jsonl"
export OMP_WAIT_POLICY=passive

run_mode() { # kind model mode max_rows [expect-file]
  local kind=$1 model=$2 mode=$3 rows=$4 log="$OUT/server-$1-$3.log" port=""
  "$B/s2s-serve" --model m="$model" --port 0 --threads "$THREADS" --device cpu --max-rows "$rows" \
    --queue 1024 --token-budget 1000000 --deadline 600 --quiet 2>"$log" &
  local pid=$!
  for _ in $(seq 1 600); do
    grep -q "ready:" "$log" 2>/dev/null && break
    sleep 0.1
  done
  port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\)\/.*/\1/p' "$log" | head -1)
  [ -n "$port" ] || { cat "$log"; kill "$pid"; exit 1; }
  if [ -n "${5:-}" ]; then
    python3 bench/serve_load.py --port "$port" --kind "$kind" --concurrency 16 --lines "$LINES" --n 1000000 \
      --label check --expect "$5" | tee "$OUT/check.json"
  else
    for c in $CONC; do
      python3 bench/serve_load.py --port "$port" --kind "$kind" --concurrency "$c" --lines "$LINES" --n "$N" \
        --label "$mode" | tee -a "$OUT/serve.jsonl"
    done
  fi
  kill -TERM "$pid"
  wait "$pid" || true
}

echo "serve.sh: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores; server threads $THREADS; $N requests per run" \
  | tee "$OUT/machine.txt"
if [ "$CHECK" = 1 ]; then
  "$B/s2s-translate" translate --model "$TR" --batch 1 --threads "$THREADS" --device cpu --quiet <"$LINES" \
    >"$OUT/alone.txt"
  run_mode translate "$TR" check 256 "$OUT/alone.txt"
fi
run_mode translate "$TR" batched 256
run_mode translate "$TR" single 5
if [ -n "$CH" ]; then
  run_mode chat "$CH" batched 256
  run_mode chat "$CH" single 1
fi
python3 - "$OUT" <<'EOF'
import json, sys
out = sys.argv[1]
rows = [json.loads(l) for l in open(out + "/serve.jsonl")]
by = {(r["kind"], r["label"], r["concurrency"]): r for r in rows}
lines = ["| kind | concurrency | batched sent/s | single sent/s | speed-up | batched p50 / p99 ms | single p50 / p99 ms"
         " | batched TTFT p50 ms | batched per token ms | errors |", "|" + "---|" * 10]
for kind in ("translate", "chat"):
    for c in sorted({r["concurrency"] for r in rows if r["kind"] == kind}):
        b, s = by.get((kind, "batched", c)), by.get((kind, "single", c))
        if not b or not s:
            continue
        lines.append("| %s | %d | %.1f | %.1f | %.2fx | %.0f / %.0f | %.0f / %.0f | %s | %s | %d |" % (
            kind, c, b["sentences_per_s"], s["sentences_per_s"], b["sentences_per_s"] / s["sentences_per_s"],
            b["p50_ms"], b["p99_ms"], s["p50_ms"], s["p99_ms"], b.get("ttft_p50_ms", "-"), b.get("tpot_p50_ms", "-"),
            b["errors"] + s["errors"]))
open(out + "/serve.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
echo "serve.sh: results in $OUT"

#!/usr/bin/env bash
# dp_cpu.sh - data-parallel training on the CPU: global target tokens per second of the medium
# configuration (2 layers, 512, bidirectional encoder, vocabulary 8000) on Multi30k en-de with
# s2s-translate train, at 1 rank with 1 thread, 1 rank with 2 threads, and 2 ranks (mpirun) with
# 1 thread each (plain, and with the optimizer sharded: ZeRO-1), and the fraction of each 2-rank step spent waiting on the other rank (the
# trainer's own measurement: sums not hidden behind backward, and load imbalance).
#   bench/dp_cpu.sh [--steps N] [--rounds R] [--batch-tokens N] [--out DIR]
# Rounds alternate the three setups; the table takes medians over the progress reports (every 5
# steps, the first report left out as warm-up) and over rounds. Writes DIR/raw.jsonl, DIR/cpu.txt
# and DIR/table.md (printed last).
set -euo pipefail
cd "$(dirname "$0")/.."
steps=25; rounds=3; btok=2000; out=bench/results/$(date +%F)-cpu-data-parallel; build=build
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) steps=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    --batch-tokens) btok=$2; shift ;;
    --out) out=$2; shift ;;
    --build) build=$2; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "dp_cpu.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
for f in data/multi30k/train.en data/multi30k/train.de "$build/s2s-translate"; do
  [ -e "$f" ] || { echo "dp_cpu.sh: $f is missing (make; scripts/fetch-data.sh multi30k)" >&2; exit 1; }
done
command -v mpirun >/dev/null || { echo "dp_cpu.sh: mpirun is missing (apt-get install openmpi-bin)" >&2; exit 1; }
mkdir -p "$out"
raw=$out/raw.jsonl; : >"$raw"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
root=""; [ "$(id -u)" = 0 ] && root=--allow-run-as-root
export OMPI_MCA_btl_vader_single_copy_mechanism=none
{ lscpu; echo; nproc; } >"$out/cpu.txt"

train_args=(train --train-src data/multi30k/train.en --train-tgt data/multi30k/train.de --vocab 8000
            --layers 2 --hidden 512 --embed 512 --bidirectional --batch-tokens "$btok" --max-steps "$steps"
            --report-every 5 --valid-every 0)

# one run: NAME RANKS THREADS [EXTRA...] -> one JSON line per progress report
run() {
  local name=$1 ranks=$2 threads=$3 log=$tmp/$1.log
  shift 3
  rm -f "$tmp"/run.*
  if [ "$ranks" = 1 ]; then
    OMP_NUM_THREADS=$threads "$build/s2s-translate" "${train_args[@]}" --threads "$threads" --out "$tmp/run" \
      >"$log" 2>&1
  else
    OMP_NUM_THREADS=$threads mpirun $root -np "$ranks" --bind-to none "$build/s2s-translate" "${train_args[@]}" \
      --threads "$threads" --out "$tmp/run" "$@" >"$log" 2>&1
  fi
  python3 - "$name" "$ranks" "$threads" "$log" >>"$raw" <<'EOF'
import json, re, sys
name, ranks, threads, log = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
for line in open(log):
    m = re.search(r"step (\d+)/\d+ loss ([\d.]+) (\d+) tok/s(?: on \d+ ranks \((\d+)% waiting\))?", line)
    if m:
        print(json.dumps({"setup": name, "ranks": ranks, "threads": threads, "step": int(m[1]),
                          "loss": float(m[2]), "tokens_per_s": int(m[3]),
                          "waiting": int(m[4]) / 100 if m[4] else None}))
EOF
  grep -q "done" "$log" || { echo "dp_cpu.sh: $name failed:" >&2; tail -5 "$log" >&2; exit 1; }
}

for r in $(seq 1 "$rounds"); do
  echo "dp_cpu.sh: round $r of $rounds" >&2
  run 1rank-1thread 1 1
  run 1rank-2threads 1 2
  run 2ranks-1thread 2 1
  run 2ranks-1thread-zero1 2 1 --shard-optimizer
done

python3 - "$raw" "$out/table.md" "$steps" "$btok" <<'EOF'
import json, statistics, sys
raw, table, steps, btok = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
rows = [json.loads(l) for l in open(raw)]
setups = ["1rank-1thread", "1rank-2threads", "2ranks-1thread", "2ranks-1thread-zero1"]
med, wait, loss = {}, {}, {}
for s in setups:
    r = [x for x in rows if x["setup"] == s and x["step"] > 5]  # the first report is warm-up
    med[s] = statistics.median(x["tokens_per_s"] for x in r)
    w = [x["waiting"] for x in r if x["waiting"] is not None]
    wait[s] = statistics.median(w) if w else None
    loss[s] = sorted({x["loss"] for x in rows if x["setup"] == s and x["step"] == int(steps)})
cpu = next((l.split(":", 1)[1].strip() for l in open(raw.rsplit("/", 1)[0] + "/cpu.txt") if l.startswith("Model name")), "?")
out = ["# Data-parallel training on the CPU (%s)" % cpu, "",
       "Medium configuration (2 layers, 512, bidirectional encoder, vocabulary 8000), Multi30k en-de, "
       "batches of %s target tokens, %s steps; global target tokens/s, median of the progress reports "
       "(every 5 steps, the first left out) over all rounds. Command: `bench/dp_cpu.sh`." % (btok, steps), "",
       "| setup | tokens/s | vs 1 rank, 1 thread | waiting on the other rank | loss at step %s |" % steps,
       "|---|---:|---:|---:|---|"]
for s in setups:
    out.append("| %s | %.0f | %.2fx | %s | %s |" % (s, med[s], med[s] / med["1rank-1thread"],
               "%.0f%%" % (100 * wait[s]) if wait[s] is not None else "-", ", ".join("%.4f" % v for v in loss[s])))
out += ["", "2 ranks vs 1 rank with 2 threads: %.2fx" % (med["2ranks-1thread"] / med["1rank-2threads"])]
open(table, "w").write("\n".join(out) + "\n")
print("\n".join(out))
EOF

#!/usr/bin/env bash
# recipe_sweep.sh - training recipes compared on a validation set only (never a test set), each
# trained for the same minutes on this machine, one after another (each takes every core):
#   bench/recipe_sweep.sh --corpus demo|multi30k --minutes M --settings FILE [--out DIR] [--threads N]
#                         [--models DIR]   (keep the trained models there; default: deleted)
# FILE: one setting per line, "NAME<TAB>train options" ('#' lines are comments); the options
# come after the corpus's own (--train-*/--valid-*, --out, --minutes, --threads). Each model's
# best checkpoint is scored by `s2s-translate eval` (beam 5) on the validation split: for demo
# the first 500 pairs of data/tatoeba-eng-fra/valid.tsv (scripts/demo.sh's split), for
# multi30k data/multi30k/val.{en,de} (1014 pairs). Writes DIR/sweep.jsonl (one line per
# setting: options, steps, validation BLEU), DIR/cpu.txt, and DIR/table.md (printed last).
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=""; minutes=""; settings=""; out=""; models=""; vfile=""; threads=$(nproc); build=${BUILD:-build}
while [ $# -gt 0 ]; do
  case "$1" in
    --corpus) corpus=$2; shift ;;
    --minutes) minutes=$2; shift ;;
    --settings) settings=$2; shift ;;
    --out) out=$2; shift ;;
    --threads) threads=$2; shift ;;
    --models) models=$2; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "recipe_sweep.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$corpus" ] && [ -n "$minutes" ] && [ -f "$settings" ] ||
  { echo "recipe_sweep.sh: needs --corpus demo|multi30k, --minutes M and --settings FILE (see --help)" >&2; exit 2; }
out=${out:-bench/results/$(date +%F)-recipe-sweep-$corpus-${minutes}min}
mkdir -p "$out"
case $corpus in
  demo)
    d=data/tatoeba-eng-fra
    [ -s $d/valid.tsv ] || { echo "recipe_sweep.sh: $d/valid.tsv is missing: run make demo (or scripts/demo.sh) once" >&2; exit 1; }
    data=(--train-tsv $d/train.tsv --valid-tsv $d/valid.tsv)
    vfile=$(mktemp /tmp/s2s-sweep-valid-XXXXXX.tsv) # the corpus's pairs: not into bench/results
    head -500 $d/valid.tsv >"$vfile"
    evalset=(--tsv "$vfile") ;;
  multi30k)
    d=data/multi30k
    [ -s $d/val.en ] || { echo "recipe_sweep.sh: $d is missing: scripts/fetch-data.sh multi30k" >&2; exit 1; }
    data=(--train-src $d/train.en --train-tgt $d/train.de --valid-src $d/val.en --valid-tgt $d/val.de)
    evalset=(--src $d/val.en --ref $d/val.de) ;;
  *) echo "recipe_sweep.sh: unknown corpus $corpus (demo or multi30k)" >&2; exit 2 ;;
esac
{ lscpu; echo; nproc; } >"$out/cpu.txt"
cp "$settings" "$out/settings.tsv"
jsonl=$out/sweep.jsonl
if [ -n "$models" ]; then mkdir -p "$models"; tmp=$models; trap 'rm -f "$vfile"' EXIT
else tmp=$(mktemp -d); trap 'rm -rf "$tmp" "$vfile"' EXIT; fi
while IFS=$'\t' read -r name opts; do
  case "$name" in ''|'#'*) continue ;; esac
  if [ -f "$jsonl" ] && grep -q "\"setting\": \"$name\"" "$jsonl"; then echo "== $name: done before, kept" >&2; continue; fi
  echo "== $name: $opts" >&2
  # shellcheck disable=SC2086
  "$build/s2s-translate" train "${data[@]}" --out "$tmp/$name" --minutes "$minutes" --threads "$threads" $opts \
    >"$out/$name.train.log" 2>&1 || { echo "recipe_sweep.sh: $name failed:" >&2; tail -3 "$out/$name.train.log" >&2; continue; }
  sed -i "s|$tmp/|MODELS/|g" "$out/$name.train.log" # the log names the models' folder, not this machine's path
  model=$tmp/$name.best.safetensors
  [ -f "$tmp/$name.avg.safetensors" ] && model=$tmp/$name.avg.safetensors
  "$build/s2s-translate" eval --model "$model" "${evalset[@]}" --threads "$threads" --quiet >"$out/$name.eval.log" 2>&1
  python3 - "$name" "$opts" "$out/$name.train.log" "$out/$name.eval.log" "$model" >>"$jsonl" <<'EOF'
import json, re, sys
name, opts, tlog, elog, model = sys.argv[1:6]
steps = 0
for line in open(tlog, errors="replace"):
    for m in re.finditer(r"step (\d+)\b", line):
        steps = max(steps, int(m[1]))
bleu = None
for line in open(elog, errors="replace"):
    m = re.match(r"BLEU = ([\d.]+)", line)
    if m:
        bleu = float(m[1])
print(json.dumps({"setting": name, "options": opts, "steps": steps, "valid_bleu": bleu,
                  "scored": "average of checkpoints" if model.endswith(".avg.safetensors") else "best checkpoint"}))
EOF
  tail -1 "$jsonl" >&2
done <"$settings"
python3 - "$jsonl" "$out/table.md" "$corpus" "$minutes" "$threads" "$out/cpu.txt" <<'EOF'
import json, sys
jsonl, table, corpus, minutes, threads, cpu = sys.argv[1:7]
rows = [json.loads(l) for l in open(jsonl)]
name = next((l.split(":", 1)[1].strip() for l in open(cpu) if l.startswith("Model name")), "?")
out = ["# Recipe sweep: %s, %s minutes of training, %s threads (%s)" % (corpus, minutes, threads, name), "",
       "Validation BLEU (beam 5, `s2s-translate eval`) of each setting's model; command: "
       "`bench/recipe_sweep.sh --corpus %s --minutes %s --settings settings.tsv`." % (corpus, minutes), "",
       "| setting | options | steps | validation BLEU |", "|---|---|---:|---:|"]
for r in rows:
    out.append("| %s | `%s` | %d | %s |" % (r["setting"], r["options"], r["steps"],
               "%.2f" % r["valid_bleu"] if r["valid_bleu"] is not None else "failed"))
open(table, "w").write("\n".join(out) + "\n")
print("\n".join(out))
EOF

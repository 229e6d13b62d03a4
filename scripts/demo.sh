#!/usr/bin/env bash
# demo.sh - the README's first command: fetch the Tatoeba English-French pairs, train a small
# attention translator for a bounded time (5 minutes on the CPU by default; S2S_DEMO_MINUTES
# overrides; 2 on a GPU), then translate a dozen held-out sentences and print the BLEU of 500.
# The recipe is the winner of a sweep on the validation split for this 5-minute CPU budget
# (bench/results/2026-12-05-recipe-sweep-demo-5min: a 2,000-piece vocabulary and batches of
# 1,000 target tokens give several times the steps of 6,000 and 2,500 in the same minutes), with
# weights drawn uniform in +-0.1 (--init-uniform 0.1: bench/results/2026-12-08-demo-init-uniform).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
scripts/fetch-data.sh tatoeba-eng-fra
d=data/tatoeba-eng-fra
# a fixed split: every 50th pair is held out (half test, half validation); the rest trains
if [ ! -s $d/test.tsv ]; then
  awk -F'\t' -v OFS='\t' 'NR % 50 == 0 { if (NR % 100 == 0) print > "'$d'/test.tsv"; else print > "'$d'/valid.tsv"; next }
                          { print > "'$d'/train.tsv" }' $d/eng-fra.tsv
fi
device=${S2S_DEMO_DEVICE:-auto}
minutes=${S2S_DEMO_MINUTES:-}
if [ -z "$minutes" ]; then
  if $B/bench_lstm --device cuda --T 1 --B 1 --I 8 --H 8 --reps 1 >/dev/null 2>&1; then minutes=2; else minutes=5; fi
fi
mkdir -p runs
echo "== training for $minutes minutes (device: $device); progress below, full log in runs/demo.log"
$B/s2s-translate train --train-tsv $d/train.tsv --valid-tsv $d/valid.tsv --out runs/demo \
  --device "$device" --minutes "$minutes" --vocab 2000 --shared-vocab --hidden 256 --embed 256 \
  --dropout 0.1 --lr 3e-3 --warmup 200 --batch-tokens 1000 --max-len 40 --valid-every 1000 --valid-max 400 \
  --label-smoothing 0.1 --init-uniform 0.1 2> >(tee runs/demo.log >&2)
echo
echo "== a dozen held-out sentences (beam 5)"
head -500 $d/test.tsv > runs/demo-test.tsv
awk -F'\t' 'NR % 40 == 7' runs/demo-test.tsv | head -12 > runs/demo-12.tsv
cut -f1 runs/demo-12.tsv | $B/s2s-translate translate --model runs/demo.best.safetensors --device "$device" --quiet \
  > runs/demo-12.out
paste runs/demo-12.tsv runs/demo-12.out | awk -F'\t' '{ printf "  en:  %s\n  ref: %s\n  out: %s\n\n", $1, $2, $3 }'
echo "== BLEU on 500 held-out sentences"
$B/s2s-translate eval --model runs/demo.best.safetensors --tsv runs/demo-test.tsv --device "$device" --quiet

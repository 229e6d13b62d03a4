#!/usr/bin/env bash
# valgrind-check.sh - Valgrind memcheck over the command-line tool on a tiny end-to-end run:
# `s2s-translate train` (tokenizer training, a small model, 5 steps, one validation with BLEU,
# checkpoint and best-model files) and `s2s-translate translate` of a few lines with that model.
# Fails unless both report 0 errors and 0 bytes definitely or indirectly lost.
#
#   scripts/valgrind-check.sh                 (builds the CPU-only tool in build-valgrind/)
#   BUILD=build-cpu THREADS=1 scripts/valgrind-check.sh
#   KEEP=1 scripts/valgrind-check.sh          (keeps the data, model, logs and Valgrind logs)
#
# It builds its own CPU-only tree (CUDA=0) instead of using build/, which may hold a CUDA build:
# under Valgrind the CUDA runtime alone reports thousands of errors. Data: 200 pairs of the
# Tatoeba corpus (shared/data, see its README) when present, else 200 generated pairs.
# Suppressions for third-party code (OpenBLAS, libgomp, SentencePiece) are in
# scripts/valgrind.supp. Takes about a minute or two.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-valgrind}
THREADS=${THREADS:-2}

command -v valgrind >/dev/null || { echo "valgrind-check: valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }
make --no-print-directory -j"${JOBS:-1}" CUDA=0 BUILD="$BUILD" "$BUILD/s2s-translate" >/dev/null

work=$(mktemp -d /tmp/s2s-valgrind-XXXXXX)
if [ "${KEEP:-0}" = 1 ]; then echo "valgrind-check: keeping $work"; else trap 'rm -rf "$work"' EXIT; fi
tsv=""
for f in ../shared/data/tatoeba-eng-fra/eng-fra.tsv data/tatoeba-eng-fra/eng-fra.tsv; do
  [ -f "$f" ] && { tsv=$f; break; }
done
if [ -n "$tsv" ]; then
  sed -n '1001,1200p' "$tsv" >"$work/train.tsv"
  sed -n '5001,5020p' "$tsv" >"$work/valid.tsv"
else
  tsv="generated"
  words=(red blue green cat dog sees likes the a big small bird)
  for i in $(seq 1 220); do
    a="${words[$((i % 12))]} ${words[$((i * 7 % 12))]} ${words[$((i * 5 % 11))]}"
    printf '%s\t%s\n' "$a" "$(echo "$a" | awk '{for (i = NF; i > 0; i--) printf "%s%s", $i, (i > 1 ? " " : "\n")}')"
  done >"$work/all.tsv"
  head -n 200 "$work/all.tsv" >"$work/train.tsv"
  tail -n 20 "$work/all.tsv" >"$work/valid.tsv"
fi

vg=(valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=3
    --suppressions=scripts/valgrind.supp --num-callers=40)

# Runs a tool command under memcheck (log in $work/NAME.vg); prints its summary; 0 when clean.
check() {
  local name=$1 rc=0
  shift
  "${vg[@]}" --log-file="$work/$name.vg" "$@" >"$work/$name.out" 2>"$work/$name.err" || rc=$?
  local errors definite indirect possible
  errors=$(sed -n 's/.*ERROR SUMMARY: \([0-9,]*\) errors.*/\1/p' "$work/$name.vg" | tail -1 | tr -d ,)
  definite=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$work/$name.vg" | tail -1 | tr -d ,)
  indirect=$(sed -n 's/.*indirectly lost: \([0-9,]*\) bytes.*/\1/p' "$work/$name.vg" | tail -1 | tr -d ,)
  possible=$(sed -n 's/.*possibly lost: \([0-9,]*\) bytes.*/\1/p' "$work/$name.vg" | tail -1 | tr -d ,)
  printf 'valgrind-check: %-9s exit %d, %s errors, definitely lost %s B, indirectly lost %s B (possibly lost %s B)\n' \
    "$name" "$rc" "${errors:-?}" "${definite:-0}" "${indirect:-0}" "${possible:-0}"
  if [ "$rc" -ne 0 ] || [ "${errors:-1}" != 0 ] || [ "${definite:-0}" != 0 ] || [ "${indirect:-0}" != 0 ]; then
    echo "---- $name: tool stderr (tail)"; tail -n 20 "$work/$name.err"
    echo "---- $name: valgrind log"; cat "$work/$name.vg"
    return 1
  fi
}

status=0
check train "$BUILD/s2s-translate" train --train-tsv "$work/train.tsv" --valid-tsv "$work/valid.tsv" \
  --out "$work/m" --vocab 100 --hidden 16 --embed 16 --max-steps 5 --valid-every 5 --device cpu \
  --threads "$THREADS" || status=1
model="$work/m.best.safetensors"
[ -f "$model" ] || model=$(ls "$work"/m.ckpt-*.safetensors 2>/dev/null | head -n 1)
if [ -z "$model" ]; then
  echo "valgrind-check: training wrote no model file" >&2
  status=1
else
  printf 'Go.\nI am cold.\n\nWhere is the station?\n' >"$work/in.txt"
  check translate "$BUILD/s2s-translate" translate --model "$model" --device cpu --threads "$THREADS" \
    --beam 3 <"$work/in.txt" || status=1
  [ "$(wc -l <"$work/translate.out")" -eq 4 ] || { echo "valgrind-check: translate did not print 4 lines" >&2; status=1; }
fi
echo "valgrind-check: data $tsv, $THREADS threads: $([ $status -eq 0 ] && echo PASS || echo FAIL)"
exit $status

#!/usr/bin/env bash
# output_matrix.sh BUILD - the tools against every way output can be lost or input can be odd
# (tests/test_tools.c runs it in make test). Each case checks the exit status, the message, and
# that no earlier output or checkpoint was damaged. Prints "ok NAME", "skip NAME: why" or
# "FAIL NAME: why" per case and exits 1 when any case failed.
#
# A tiny model is trained here first (a few steps on a made-up corpus: seconds). Cases that need
# a non-root user (a read-only folder means nothing to root) or a tmpfs mount skip where those
# are not to be had.
set -u
B=$(cd "${1:?usage: output_matrix.sh BUILD}" && pwd)
T=$(mktemp -d /tmp/s2s_matrix_XXXXXX)
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
MOUNTED=
cleanup() { [ -n "$MOUNTED" ] && umount "$MOUNTED" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
fails=0
ok() { echo "ok $1"; }
skip() { echo "skip $1: $2"; }
fail() { echo "FAIL $1: $2"; fails=$((fails + 1)); }
TR="$B/s2s-translate"
CH="$B/s2s-chat"
COMMON="--device cpu --threads 1"

# expect NAME STATUS NEEDLE: the last command's status ($rc) and stderr ($T/err) against them.
expect() {
  local name=$1 want=$2 needle=$3
  if [ "$rc" != "$want" ]; then fail "$name" "exit $rc, want $want; stderr: $(head -c 600 "$T/err")"; return 1; fi
  if [ -n "$needle" ] && ! grep -qF -- "$needle" "$T/err"; then
    fail "$name" "no '$needle' in stderr: $(head -c 600 "$T/err")"; return 1
  fi
  ok "$name"
}
lines() { wc -l <"$1" | tr -d ' '; }

# ---- a corpus and a model ---------------------------------------------------------------------
words=(red blue green cat dog sees likes the a big small bird)
for i in $(seq 1 300); do
  a="${words[$((i * 7 % 12))]} ${words[$((i * 5 % 11))]} ${words[$((i * 3 % 12))]}"
  printf '%s\t%s\n' "$a" "$(echo "$a" | awk '{for (i = NF; i > 0; i--) printf "%s%s", $i, (i > 1 ? " " : "\n")}')"
done >"$T/train.tsv"
cut -f1 "$T/train.tsv" | head -20 >"$T/test.src"
cut -f2 "$T/train.tsv" | head -20 >"$T/test.ref"
TRAIN="--train-tsv $T/train.tsv --vocab 30 --hidden 16 --embed 8 --valid-every 0 --quiet $COMMON"
if ! "$TR" train $TRAIN --out "$T/m" --max-steps 3 2>"$T/err"; then
  echo "FAIL setup: could not train the model: $(cat "$T/err")"; exit 1
fi
M="$T/m.best.safetensors"
mkfifo "$T/fifo"
mkdir "$T/dir"
printf 'red cat\nblue dog sees\n' >"$T/in.txt"
DEC="--greedy --max-len-a 0 --max-len-b 4 $COMMON --quiet"
CDEC="--greedy $COMMON --quiet" # chat: replies up to 2 x the line + 10 tokens

# ---- standard output: full, closed, a reader that leaves -----------------------------------------
"$TR" translate --model "$M" $DEC <"$T/in.txt" >/dev/full 2>"$T/err"; rc=$?
expect translate_dev_full 1 "cannot write the translations to standard output: No space left on device"
"$TR" translate --model "$M" --beam 2 --nbest 2 $COMMON --quiet --max-len-a 0 --max-len-b 4 <"$T/in.txt" >/dev/full 2>"$T/err"; rc=$?
expect translate_nbest_dev_full 1 "No space left on device"
"$TR" translate --model "$M" $DEC <"$T/in.txt" 2>"$T/err" >&-; rc=$?
expect translate_stdout_closed 1 "standard output is closed"
for i in $(seq 1 3000); do echo "red cat sees the big bird"; done >"$T/many.txt"
"$TR" translate --model "$M" $DEC --batch 1 <"$T/many.txt" 2>"$T/err" | head -1 >"$T/out"; rc=${PIPESTATUS[0]}
expect translate_reader_leaves 0 "" && [ "$(lines "$T/out")" = 1 ] && [ ! -s "$T/err" ] ||
  fail translate_reader_leaves_quietly "head got $(lines "$T/out") lines; stderr: $(cat "$T/err")"
"$TR" eval --model "$M" --src "$T/test.src" --ref "$T/test.ref" $DEC >/dev/full 2>"$T/err"; rc=$?
expect eval_dev_full 1 "cannot write standard output"
echo "earlier output" >"$T/old.out"
"$TR" eval --model "$M" --src "$T/test.src" --ref "$T/test.ref" $DEC --output /dev/full >"$T/out" 2>"$T/err"; rc=$?
expect eval_output_dev_full 1 "cannot write /dev/full" && ! grep -q BLEU "$T/out" ||
  fail eval_output_dev_full_no_bleu "BLEU printed although the translations were not written: $(cat "$T/out")"
"$TR" eval --model "$M" --src "$T/test.src" --ref "$T/test.ref" $DEC --output "$T/dir" >"$T/out" 2>"$T/err"; rc=$?
expect eval_output_directory 1 "is a directory"
printf 'red cat\n\xff bad\n' >"$T/bad.src"; printf 'cat red\nbad\n' >"$T/bad.ref"
"$TR" eval --model "$M" --src "$T/bad.src" --ref "$T/bad.ref" $DEC --strict --output "$T/old.out" >"$T/out" 2>"$T/err"; rc=$?
# the corpus reader skips the invalid pair before translation: the run succeeds and says so
expect eval_skips_invalid_pairs 0 "invalid UTF-8" && [ "$(lines "$T/old.out")" = 1 ] ||
  fail eval_output_replaced "want 1 translated line in the output, got: $(cat "$T/old.out")"
echo "earlier output" >"$T/old.out"
"$TR" eval --model "$M" --src "$T/test.src" --ref "$T/test.ref" $DEC --output "$T/old.out" 2>"$T/err" >&-; rc=$?
expect eval_stdout_closed 1 "standard output is closed" && [ "$(cat "$T/old.out")" = "earlier output" ] ||
  fail eval_stdout_closed_keeps_output "the earlier output changed: $(head -2 "$T/old.out")"
"$TR" inspect --model "$M" >/dev/full 2>"$T/err"; rc=$?
expect inspect_dev_full 1 "No space left on device"
"$TR" inspect --model "$M" 2>"$T/err" >&-; rc=$?
expect inspect_stdout_closed 1 "standard output is closed"
"$CH" chat --model "$M" $CDEC <"$T/in.txt" >/dev/full 2>"$T/err"; rc=$?
expect chat_dev_full 1 "cannot write the reply to standard output"
"$CH" chat --model "$M" $CDEC <"$T/in.txt" 2>"$T/err" >&-; rc=$?
expect chat_stdout_closed 1 "standard output is closed"
head -300 "$T/many.txt" | "$CH" chat --model "$M" $CDEC 2>"$T/err" | head -1 >"$T/out"; rc=${PIPESTATUS[1]}
expect chat_reader_leaves 0 "" && [ ! -s "$T/err" ] || fail chat_reader_leaves_quietly "stderr: $(cat "$T/err")"
# ---- decoding at int8 and in ensembles ------------------------------------------------------------
"$CH" chat --model "$M" $CDEC --precision int8 <"$T/in.txt" >"$T/out" 2>"$T/err"; rc=$?
expect chat_int8 0 "int8" && [ "$(lines "$T/out")" = 2 ] || fail chat_int8_replies "$(cat "$T/out")"
"$TR" translate --model "$M" $DEC <"$T/in.txt" >"$T/one" 2>"$T/err"
"$TR" translate --model "$M" --model "$M" $DEC <"$T/in.txt" >"$T/out" 2>"$T/err"; rc=$?
expect translate_ensemble_of_copies 0 "" && cmp -s "$T/one" "$T/out" ||
  fail translate_ensemble_equals_alone "$(paste "$T/one" "$T/out")"
"$CH" chat --model "$M" $CDEC <"$T/in.txt" >"$T/one" 2>"$T/err"
"$CH" chat --model "$M" --model "$M" $CDEC <"$T/in.txt" >"$T/out" 2>"$T/err"; rc=$?
expect chat_ensemble_of_copies 0 "" && cmp -s "$T/one" "$T/out" ||
  fail chat_ensemble_equals_alone "$(paste "$T/one" "$T/out")"
if "$TR" train $TRAIN --vocab 28 --out "$T/m2" --max-steps 1 2>"$T/err"; then
  "$TR" translate --model "$M" --model "$T/m2.best.safetensors" $DEC <"$T/in.txt" >"$T/out" 2>"$T/err"; rc=$?
  expect ensemble_other_tokenizers 1 "tokenizers differ"
else
  fail ensemble_other_tokenizers "could not train the second model: $(cat "$T/err")"
fi
# warm restarts: one snapshot per cycle, decoded together; refused without the linear schedule
"$TR" train $TRAIN --out "$T/cy" --max-steps 4 --schedule linear --cycles 2 >"$T/out" 2>"$T/err"; rc=$?
expect train_cycles 0 "" && [ -f "$T/cy.snap-1.safetensors" ] && [ -f "$T/cy.snap-2.safetensors" ] &&
  [ ! -e "$T/cy.snap-3.safetensors" ] || fail train_cycles_snapshots "$(ls "$T" | grep '^cy\.')"
"$TR" translate --model "$T/cy.snap-1.safetensors" --model "$T/cy.snap-2.safetensors" $DEC <"$T/in.txt" \
  >"$T/out" 2>"$T/err"; rc=$?
expect translate_snapshot_ensemble 0 "" && [ "$(lines "$T/out")" = "$(lines "$T/in.txt")" ] ||
  fail translate_snapshot_ensemble_lines "$(cat "$T/out")"
"$TR" train $TRAIN --out "$T/cy2" --max-steps 4 --cycles 2 >"$T/out" 2>"$T/err"; rc=$?
expect train_cycles_need_linear 1 "only with the LINEAR schedule"
"$B/hello_rnn" --steps 5 >/dev/full 2>"$T/err"; rc=$?
expect hello_dev_full 1 "cannot write standard output"
"$B/bench_lstm" --device cpu --T 2 --B 1 --I 4 --H 4 --reps 1 >/dev/full 2>"$T/err"; rc=$?
expect bench_lstm_dev_full 1 "cannot write standard output"

# ---- inputs that are not regular files: refused at once, never waited on ------------------------
for what in fifo dir; do
  timeout 20 "$TR" translate --model "$T/$what" $DEC <"$T/in.txt" >"$T/out" 2>"$T/err"; rc=$?
  expect "translate_model_$what" 1 "$([ $what = fifo ] && echo "is a named pipe" || echo "is a directory")"
  timeout 20 "$CH" chat --model "$T/$what" $CDEC <"$T/in.txt" >"$T/out" 2>"$T/err"; rc=$?
  expect "chat_model_$what" 1 "$T/$what"
  timeout 20 "$TR" eval --model "$M" --src "$T/$what" --ref "$T/test.ref" $DEC >"$T/out" 2>"$T/err"; rc=$?
  expect "eval_src_$what" 1 "$T/$what"
  timeout 20 "$TR" train --train-tsv "$T/$what" --out "$T/x" --quiet $COMMON >"$T/out" 2>"$T/err"; rc=$?
  expect "train_corpus_$what" 1 "$T/$what"
  timeout 20 "$CH" train --tsv "$T/$what" --out "$T/x" --quiet $COMMON >"$T/out" 2>"$T/err"; rc=$?
  expect "chat_train_corpus_$what" 1 "$T/$what"
done
# a pipe the user gives as standard input is read
"$TR" train --train-tsv /dev/stdin --out "$T/piped" --vocab 30 --hidden 16 --embed 8 --valid-every 0 --quiet \
  $COMMON --max-steps 1 <"$T/train.tsv" >"$T/out" 2>"$T/err"; rc=$?
expect train_corpus_from_stdin 0 ""

# ---- output folders: checked before any work ------------------------------------------------------
"$TR" train $TRAIN --out /nonexistent/dir/m --max-steps 3 >"$T/out" 2>"$T/err"; rc=$?
expect train_out_missing_folder 1 "output folder '/nonexistent/dir'" && ! grep -q "training the tokenizer" "$T/err" ||
  fail train_out_missing_folder_early "work began before the check: $(cat "$T/err")"
"$CH" train --tsv "$T/train.tsv" --out /nonexistent/dir/m --quiet $COMMON >"$T/out" 2>"$T/err"; rc=$?
expect chat_train_out_missing_folder 1 "output folder '/nonexistent/dir'"
"$TR" train $TRAIN --out "$T/dir/" --max-steps 3 >"$T/out" 2>"$T/err"; rc=$?
expect train_out_ends_in_slash 1 "ends in '/'"
mkdir "$T/ro" && cp "$M" "$T/ro/m.ckpt-3.safetensors" && chmod 777 "$T" && chmod 555 "$T/ro"
sum0=$(cksum <"$T/ro/m.ckpt-3.safetensors")
AS_NOBODY="setpriv --reuid=65534 --regid=65534 --clear-groups"
chmod 644 "$T/train.tsv"
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null && $AS_NOBODY "$TR" --help >/dev/null 2>&1; then
  $AS_NOBODY "$TR" train $TRAIN --out "$T/ro/m" --max-steps 3 >"$T/out" 2>"$T/err"; rc=$?
  expect train_out_read_only_folder 1 "cannot create files in the output folder"
  [ "$(cksum <"$T/ro/m.ckpt-3.safetensors")" = "$sum0" ] && ok train_read_only_keeps_checkpoint ||
    fail train_read_only_keeps_checkpoint "the earlier checkpoint changed"
elif [ "$(id -u)" != 0 ]; then
  "$TR" train $TRAIN --out "$T/ro/m" --max-steps 3 >"$T/out" 2>"$T/err"; rc=$?
  expect train_out_read_only_folder 1 "cannot create files in the output folder"
else
  skip train_out_read_only_folder "root, and no setpriv to run the tools as another user (or they are out of its reach)"
fi
chmod 755 "$T/ro"

# a full tmpfs during a checkpoint: the write fails with a message, earlier checkpoints stay whole
mkdir "$T/small"
if mount -t tmpfs -o size=1m tmpfs "$T/small" 2>/dev/null; then
  MOUNTED="$T/small"
  "$TR" train $TRAIN --out "$T/small/m" --max-steps 200 --valid-every 1 --keep 1000 >"$T/out" 2>"$T/err"; rc=$?
  if expect train_tmpfs_fills_up 1 "No space left on device"; then
    n=0 bad=0
    for f in "$T"/small/m.ckpt-*.safetensors; do
      n=$((n + 1)); "$TR" inspect --model "$f" >/dev/null 2>&1 || bad=$((bad + 1))
    done
    left=$(ls "$T/small" | grep -c '\.tmp' || true)
    [ "$n" -gt 0 ] && [ "$bad" = 0 ] && [ "$left" = 0 ] && ok train_tmpfs_earlier_checkpoints_intact ||
      fail train_tmpfs_earlier_checkpoints_intact "$n checkpoints, $bad failing their CRC check, $left temporary files left"
  fi
  rm -f "$T"/small/*
  "$TR" train --train-tsv "$T/train.tsv" --vocab 30 --hidden 512 --embed 8 --valid-every 0 --quiet $COMMON \
    --out "$T/small/big" --max-steps 3 >"$T/out" 2>"$T/err"; rc=$?
  expect train_tmpfs_too_small_refused 1 "a checkpoint needs about"
  umount "$T/small" && MOUNTED=
else
  skip train_tmpfs_fills_up "cannot mount a tmpfs here (not root, or no CAP_SYS_ADMIN)"
fi

# ---- odd input lines: alignment kept, each one named --------------------------------------------
long=$(for i in $(seq 1 25000); do printf 'red cat sees the big bird . '; done)
{ echo "blue dog"; echo "$long"; echo "green bird"; } >"$T/long.txt"
"$TR" translate --model "$M" $DEC <"$T/long.txt" >"$T/out" 2>"$T/err"; rc=$?
expect translate_long_line_in_pieces 0 "line 2 has" && [ "$(lines "$T/out")" = 3 ] && [ -n "$(sed -n 2p "$T/out")" ] ||
  fail translate_long_line_alignment "want 3 output lines, the second not empty: $(lines "$T/out") lines"
"$TR" translate --model "$M" $DEC --strict <"$T/long.txt" >"$T/out" 2>"$T/err"; rc=$?
expect translate_long_line_strict 1 "line 2 has"
printf 'blue dog\n\nred cat\n\xff\xfe cat\nI am\0 here.\ngreen bird\n' >"$T/odd.txt"
"$TR" translate --model "$M" $DEC <"$T/odd.txt" >"$T/out" 2>"$T/err"; rc=$?
expect translate_odd_lines 0 "line 4 is not valid UTF-8 at byte 1" && grep -qF "line 5 holds a NUL byte at byte 5" "$T/err" &&
  [ "$(lines "$T/out")" = 6 ] && [ -z "$(sed -n 2p "$T/out")$(sed -n 4p "$T/out")$(sed -n 5p "$T/out")" ] &&
  [ -n "$(sed -n 6p "$T/out")" ] || fail translate_odd_lines_alignment "$(lines "$T/out") lines; stderr: $(cat "$T/err")"
"$TR" translate --model "$M" $DEC --strict <"$T/odd.txt" >"$T/out" 2>"$T/err"; rc=$?
expect translate_invalid_utf8_strict 1 "line 4 is not valid UTF-8"
printf 'blue dog\nI am\0 here.\n' | "$TR" translate --model "$M" $DEC --strict >"$T/out" 2>"$T/err"; rc=$?
expect translate_nul_strict 1 "line 2 holds a NUL byte" && [ "$(lines "$T/out")" = 1 ] ||
  fail translate_nul_strict_earlier_lines "line 1's translation must be written before the stop: $(lines "$T/out") lines"

# ---- more ways to lose output -----------------------------------------------------------------
# a line whose translation is longer than stdio's buffer, to a reader that has gone
{ echo "blue dog"; echo "$long"; } | "$TR" translate --model "$M" $DEC 2>"$T/err" | true; rc=${PIPESTATUS[1]}
expect translate_long_output_reader_gone 0 "" && ! grep -q "cannot write" "$T/err" ||
  fail translate_long_output_reader_gone_quiet "stderr: $(head -c 300 "$T/err")"
# eval --output to a pipe: read whole it works; a reader that leaves is named
"$TR" eval --model "$M" --src "$T/test.src" --ref "$T/test.ref" $DEC --output /dev/stdout 2>"$T/err" >"$T/out"; rc=$?
expect eval_output_to_stdout 0 "" && [ "$(grep -vc BLEU "$T/out")" -ge 20 ] || fail eval_output_to_stdout_lines "$(cat "$T/out")"
# an --output that is a link: the file it names is replaced (mode kept), the link stays
echo old >"$T/target.txt" && chmod 640 "$T/target.txt" && ln -s "$T/target.txt" "$T/link.txt"
"$TR" eval --model "$M" --src "$T/test.src" --ref "$T/test.ref" $DEC --output "$T/link.txt" >"$T/out" 2>"$T/err"; rc=$?
expect eval_output_link 0 "" && [ -L "$T/link.txt" ] && [ "$(lines "$T/target.txt")" = 20 ] &&
  [ "$(stat -c %a "$T/target.txt")" = 640 ] || fail eval_output_link_kept "link or mode changed: $(ls -l "$T/link.txt" "$T/target.txt")"
# process substitution names a pipe this process holds: read
"$TR" train --train-src <(cut -f1 "$T/train.tsv") --train-tgt <(cut -f2 "$T/train.tsv") --out "$T/subst" --vocab 30 \
  --hidden 16 --embed 8 --valid-every 0 --quiet $COMMON --max-steps 1 >"$T/out" 2>"$T/err"; rc=$?
expect train_process_substitution 0 ""
"$CH" chat --model "$M" $CDEC <"$T/odd.txt" >"$T/out" 2>"$T/err"; rc=$?
expect chat_odd_lines 0 "line 5 holds a NUL byte" && [ "$(lines "$T/out")" = 6 ] ||
  fail chat_odd_lines_alignment "$(lines "$T/out") replies for 6 lines"

echo "output_matrix: $fails failed"
[ "$fails" = 0 ]

#!/bin/sh
# run.sh DP_TEST - the data-parallel cases of tests/mpi/dp_test.c, each under mpirun on this
# machine (shared memory, no network), each bounded by a timeout. Prints one line per case;
# exits non-zero when any fails (its output is shown).
set -u
BIN=$1
MPIRUN=$(command -v mpirun) || { echo "tests/mpi: mpirun not found (install openmpi-bin)"; exit 1; }
ROOT=""
[ "$(id -u)" = 0 ] && ROOT="--allow-run-as-root"
# containers: no cross-memory attach; one thread per rank; ranks may outnumber cores
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
export OMPI_MCA_btl=self,vader
TMP=$(mktemp -d /tmp/s2s-mpi-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
fails=0
n=0

# run NAME EXPECT NP ARGS...: EXPECT is "ok" (exit 0), "ok-or-skip" (0, or 77: no GPU) or
# "fail:TEXT" (non-zero exit within 30 s
# with TEXT in the output)
run() {
    name=$1 expect=$2 np=$3
    shift 3
    n=$((n + 1))
    start=$(date +%s)
    timeout 120 "$MPIRUN" $ROOT --oversubscribe -np "$np" "$BIN" "$@" >"$TMP/out" 2>&1
    rc=$?
    secs=$(($(date +%s) - start))
    ok=0
    case $expect in
    ok) [ $rc = 0 ] && ok=1 ;;
    ok-or-skip) { [ $rc = 0 ] || [ $rc = 77 ]; } && ok=1 ;;
    fail:*) text=${expect#fail:}
        [ $rc != 0 ] && [ $rc != 124 ] && [ $secs -lt 30 ] && grep -q "$text" "$TMP/out" && ok=1 ;;
    esac
    if [ $ok = 1 ]; then
        echo "tests/mpi: ok   $name (${secs} s) $(grep -E 'equal within|refused|did not reach|noticed|skipped|equal training' "$TMP/out" | tail -1)"
    else
        echo "tests/mpi: FAIL $name (exit $rc after ${secs} s; expected $expect):"
        sed 's/^/    /' "$TMP/out" | tail -30
        fails=$((fails + 1))
    fi
}

run "2 ranks = 1 process (loss, weights; ranks bit-identical)" ok 2 equal
run "an MPI communicator of 1 rank = no communicator" ok 1 equal
run "2 ranks = 1 process, all embeddings tied" ok 2 equal tied
run "ZeRO-1 = plain data parallel, 2 ranks" ok 2 zero
run "ZeRO-1 = plain data parallel, 2 ranks, an odd parameter count" ok 2 zero odd
run "ZeRO-1 = plain data parallel, 3 ranks (padded shards)" ok 3 zero
mkdir -p "$TMP/r21" "$TMP/r12" "$TMP/z23"
run "checkpoint at 2 ranks" ok 2 resume a "$TMP/r21"
run "  resumed at 1 rank" ok 1 resume b "$TMP/r21"
run "checkpoint at 1 rank" ok 1 resume a "$TMP/r12"
run "  resumed at 2 ranks" ok 2 resume b "$TMP/r12"
run "checkpoint at 2 ranks, sharded moments" ok 2 resume a "$TMP/z23" zero
run "  resumed at 3 ranks, sharded moments" ok 3 resume b "$TMP/z23" zero
run "ranks with other options refused" ok 2 mismatch
run "a hung rank named within the timeout" "fail:rank 1 did not reach step" 2 hang
run "a killed rank ends the job" "fail:rank 1" 2 kill
# NCCL: one rank per GPU; skipped (exit 77) where there is none. GPU_RANKS=N for more GPUs.
run "NCCL on ${GPU_RANKS:-1} GPU rank(s): collectives, training = alone" ok-or-skip "${GPU_RANKS:-1}" nccl

# the tool: s2s-translate train under mpirun, rank 0 alone writing files and reporting
TOOL=$(dirname "$BIN")/../s2s-translate
if [ -x "$TOOL" ]; then
    n=$((n + 1))
    awk 'BEGIN { split("red blue green cat dog sees likes the a big small bird", w, " ");
                 srand(7); for (i = 0; i < 400; i++) { k = 2 + int(rand() * 5); a = ""; b = "";
                 for (j = 0; j < k; j++) x[j] = w[1 + int(rand() * 12)];
                 for (j = 0; j < k; j++) { a = a (j ? " " : "") x[j]; b = b (j ? " " : "") x[k - 1 - j] }
                 print a "\t" b } }' > "$TMP/toy.tsv"
    timeout 120 "$MPIRUN" $ROOT --oversubscribe -np 2 "$TOOL" train --train-tsv "$TMP/toy.tsv" \
        --valid-tsv "$TMP/toy.tsv" --valid-max 60 --out "$TMP/tool" --vocab 40 --hidden 32 --embed 16 \
        --batch-tokens 300 --max-steps 20 --valid-every 10 --report-every 10 --threads 1 >"$TMP/out" 2>&1
    rc=$?
    if [ $rc = 0 ] && grep -q "on 2 ranks" "$TMP/out" && [ "$(grep -c '^validation at step 20' "$TMP/out")" = 1 ] &&
        [ -f "$TMP/tool.ckpt-20.safetensors" ] && [ -f "$TMP/tool.best.safetensors" ] &&
        [ "$(grep -c ',valid,' "$TMP/tool.metrics.csv")" = 2 ]; then
        echo "tests/mpi: ok   s2s-translate train on 2 ranks (one report line per step, files written once)"
    else
        echo "tests/mpi: FAIL s2s-translate train on 2 ranks (exit $rc):"
        sed 's/^/    /' "$TMP/out" | tail -30
        fails=$((fails + 1))
    fi
fi
echo "tests/mpi: $((n - fails)) of $n cases passed"
[ $fails = 0 ]

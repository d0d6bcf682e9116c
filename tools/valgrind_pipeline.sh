#!/bin/sh
# valgrind_pipeline.sh — `make valgrind`: every kvq command of the pipeline (info, capture, fit,
# inspect, eval, ppl, and inspect of a corrupt file) under valgrind memcheck on the small
# stories260K model; fails on any leak (definite/indirect) or memory error.
set -u
: "${KVQ:=build/kvq}"
shared=${KVQ_SHARED:-../shared}
M=$shared/models/stories260K/stories260K.bin
T=$shared/data/text/tinystories_val_subset.txt
[ -f "$M" ] || { echo "valgrind: $M not found (set KVQ_SHARED)"; exit 1; }
out=$(mktemp -d)
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 KVQ_PROGRESS=0
vg="valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99 -q"
fail=0
run() {   # expected-exit-code args...
    want=$1; shift
    $vg "$KVQ" "$@" > "$out/log" 2>&1
    rc=$?
    if [ $rc -eq 99 ] || [ $rc -ne "$want" ]; then
        echo "valgrind: FAIL kvq $* (exit $rc, want $want)"; cat "$out/log"; fail=1
    else
        echo "valgrind: ok   kvq $1"
    fi
}
run 0 info --model "$M"
run 0 capture --model "$M" --text "$T" --samples 2 --seq-len 64 -o "$out/c.h5"
run 0 fit "$out/c.h5" --bits 2 -o "$out/c.kvqc"
run 0 inspect "$out/c.kvqc" --json
run 0 eval --model "$M" --codebook "$out/c.kvqc" --text "$T" --seq-len 64 --max-windows 2 --method kvquant,int,kivi
run 0 ppl --model "$shared/models/stories260K/stories260K.gguf" --text "$T" --seq-len 64 --max-windows 2
run 3 inspect tests/golden/bad_payload_crc.kvqc
rm -rf "$out"
[ $fail -eq 0 ] && echo "valgrind: no leaks, no memory errors"
exit $fail

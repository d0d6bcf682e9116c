#!/bin/sh
# demo.sh — `make demo`: the whole pipeline on the model shipped in data/models (kvq-tiny-15m):
# capture pre-RoPE K, V and Fisher on calibration text, fit 4/3/2-bit codebooks, inspect one,
# and evaluate each against the unquantized model (perplexity, KL, top-1, bits per element).
# Text: WikiText-2 (valid for calibration, test for evaluation) from ../shared when present; on a
# machine without it, two licence texts every Debian system ships (real English, no download).
set -eu
: "${KVQ:=build/kvq}" "${MODEL:=data/models/kvq-tiny-15m}" "${OUT:=build/demo}"
: "${SAMPLES:=16}" "${SEQ_LEN:=512}" "${EVAL_WINDOWS:=16}"
mkdir -p "$OUT"
if [ -f ../shared/data/text/wiki.valid.raw ]; then
    CALIB=../shared/data/text/wiki.valid.raw; EVAL=../shared/data/text/wiki.test.raw
else
    CALIB=/usr/share/common-licenses/GPL-3; EVAL=/usr/share/common-licenses/Apache-2.0
fi
echo "== demo: model $MODEL"
echo "   calibration text $CALIB ($SAMPLES x $SEQ_LEN tokens), evaluation text $EVAL"
"$KVQ" info --model "$MODEL"

echo; echo "== 1. capture: pre-RoPE K, V and Fisher information -> $OUT/cal.h5"
rm -f "$OUT/cal.h5"
"$KVQ" capture --model "$MODEL" --text "$CALIB" --samples "$SAMPLES" --seq-len "$SEQ_LEN" --seed 0 \
    -o "$OUT/cal.h5"

for b in 4 3 2; do
    echo; echo "== 2. fit: $b-bit codebook -> $OUT/kvq-$b.kvqc"
    "$KVQ" fit "$OUT/cal.h5" --bits "$b" -o "$OUT/kvq-$b.kvqc"
done

echo; echo "== 3. inspect $OUT/kvq-3.kvqc"
"$KVQ" inspect "$OUT/kvq-3.kvqc"

for b in 4 3 2; do
    echo; echo "== 4. eval: $b-bit KVQuant vs the unquantized model and the int$b per-token baseline"
    "$KVQ" eval --model "$MODEL" --codebook "$OUT/kvq-$b.kvqc" --method kvquant,int --bits "$b" \
        --text "$EVAL" --seq-len "$SEQ_LEN" --max-windows "$EVAL_WINDOWS"
done
echo; echo "demo: done; files in $OUT"

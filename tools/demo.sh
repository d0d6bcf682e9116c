#!/bin/sh
# demo.sh — `make demo`: the whole pipeline on the model that ships in data/ — calibrate (capture
# K, V and Fisher), fit 2/3/4-bit codebooks, inspect one, evaluate it against fp16.
# Text: WikiText-2 from ../shared when present, else the GPL-3 text every Debian system ships.
set -eu
: "${KVQ:=build/kvq}" "${MODEL:=data/models/kvq-tiny-15m}" "${OUT:=build/demo}"
mkdir -p "$OUT"
if [ -f ../shared/data/text/wiki.valid.raw ]; then
    CALIB=../shared/data/text/wiki.valid.raw; EVAL=../shared/data/text/wiki.test.raw
else
    CALIB=/usr/share/common-licenses/GPL-3; EVAL=/usr/share/common-licenses/Apache-2.0
fi
echo "demo: model $MODEL, calibration text $CALIB, evaluation text $EVAL"
"$KVQ" ppl --model "$MODEL" --text "$EVAL" --seq-len 512 --max-windows 8

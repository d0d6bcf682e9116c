#!/bin/sh
# bench_calib_gpu.sh — `make bench-calib-gpu`: on a machine with an NVIDIA GPU, writes a
# LLaMA-2-7B-shaped random model (kvq synth, bf16) and runs side by side the kvq CUDA engine
# (bench_calib_gpu: 16 windows x 2048 tokens with Fisher, bf16 and a shorter fp32 run, one
# 32K-token window) and PyTorch + HF transformers doing the same job (tools/bench_capture_torch.py).
# Environment: BENCH (the benchmark program), SYNTH_DIR (default /tmp/kvq-synth-llama-2-7b: about
# 13 GB), WINDOWS (16), SEQ (2048), LONG (32768), RUNS (override bench_calib_gpu's --runs),
# TORCH_LONG (1: also try one LONG window with PyTorch). Output: JSON lines on stdout.
set -e
BENCH=${BENCH:-build/gpu/bench_calib_gpu}
DIR=${SYNTH_DIR:-/tmp/kvq-synth-llama-2-7b}
W=${WINDOWS:-16}
SEQ=${SEQ:-2048}
LONG=${LONG:-32768}
RUNS=${RUNS:-bf16:$W:$SEQ,fp32:2:$SEQ,bf16:1:$LONG:1}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$BENCH" --model "$DIR" --synth llama-2-7b --runs "$RUNS"
if [ "${TORCH_LONG:-1}" = 1 ]; then ALSO="--also-seq $LONG"; else ALSO=""; fi
python3 tools/bench_capture_torch.py --model "$DIR" --windows "$W" --seq "$SEQ" $ALSO

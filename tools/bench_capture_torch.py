#!/usr/bin/env python3
"""bench_capture_torch.py — the baseline for the GPU capture benchmark: PyTorch + HF transformers
doing the calibration capture's GPU work the way the KVQuant reference implementation does it:
LlamaForCausalLM in bf16, forward hooks on every layer's k_proj and v_proj that keep the outputs
and call retain_grad(), loss.backward() on the next-token loss, then K, V and the squares of their
gradients copied to host memory as fp32, per window. Prints one JSON line per run (seconds,
tokens/s, peak GPU memory from torch.cuda.max_memory_allocated). Model loading is timed apart.

  python3 tools/bench_capture_torch.py --model DIR [--windows 16] [--seq 2048] [--seed 1]
                                       [--attn sdpa|eager] [--also-seq 32768]

Not part of the product; needs torch and transformers (tests never run it)."""
import argparse
import json
import time

import torch
from transformers import LlamaForCausalLM


def run(model, windows, seq, seed, vocab):
    layers = model.model.layers
    kept = {}

    def hook(name):
        def fn(_mod, _inp, out):
            out.retain_grad()
            kept[name] = out
        return fn

    handles = []
    for i, layer in enumerate(layers):
        handles.append(layer.self_attn.k_proj.register_forward_hook(hook(("k", i))))
        handles.append(layer.self_attn.v_proj.register_forward_hook(hook(("v", i))))
    g = torch.Generator().manual_seed(seed)
    torch.cuda.reset_peak_memory_stats()
    elapsed, losses, probe = 0.0, [], 0.0
    try:
        for w in range(-1, windows):  # w = -1: warm-up, not timed
            ids = torch.randint(0, vocab, (1, seq), generator=g).cuda()
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = model(input_ids=ids, labels=ids, use_cache=False)
            out.loss.backward()
            host = {}
            for (kind, i), t in kept.items():
                host[(kind, i)] = t.detach().float().cpu()
                host[(kind + "_fisher", i)] = t.grad.float().pow(2).cpu()
            torch.cuda.synchronize()
            if w >= 0:
                elapsed += time.perf_counter() - t0
                losses.append(out.loss.item())
                probe += host[("k_fisher", len(layers) - 1)][0, seq // 2, 0].item()
            model.zero_grad(set_to_none=True)
            kept.clear()
            del out, host
    finally:
        for h in handles:
            h.remove()
    return {"seconds": round(elapsed, 3), "tokens_per_s": round(windows * seq / elapsed),
            "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
            "mean_loss": round(sum(losses) / len(losses), 5), "fisher_probe": probe}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--windows", type=int, default=16)
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"])
    ap.add_argument("--also-seq", type=int, default=0, help="then one window of this length (fit test)")
    a = ap.parse_args()
    t0 = time.perf_counter()
    model = LlamaForCausalLM.from_pretrained(a.model, dtype=torch.bfloat16, attn_implementation=a.attn).cuda()
    load = time.perf_counter() - t0
    base = {"engine": "torch", "torch": torch.__version__, "device": torch.cuda.get_device_name(),
            "attn": a.attn, "dtype": "bf16", "load_seconds": round(load, 2)}
    print(json.dumps({**base, "windows": a.windows, "seq": a.seq, **run(model, a.windows, a.seq, a.seed,
                                                                           model.config.vocab_size)}), flush=True)
    if a.also_seq:
        try:
            r = run(model, 1, a.also_seq, a.seed, model.config.vocab_size)
        except torch.cuda.OutOfMemoryError as e:
            r = {"error": "out of memory: " + str(e).splitlines()[0][:160],
                 "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)}
        print(json.dumps({**base, "windows": 1, "seq": a.also_seq, **r}), flush=True)


if __name__ == "__main__":
    main()

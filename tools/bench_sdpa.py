#!/usr/bin/env python3
"""bench_sdpa.py — the PyTorch baseline of `make bench-gpu`: fp16 decode attention through
torch.nn.functional.scaled_dot_product_attention (one query token, GQA via enable_gqa) for the
shapes of kernels/bench/bench_rt.cu, timed with CUDA events (median of 30 calls after warm-up,
rotating over enough K/V copies to exceed the L2 cache). Then merges bench_rt's CSV
($KVQ_BENCH_CSV, default build/bench_rt.csv) into one side-by-side markdown table, printed and
written to build/bench_gpu.md. Not a correctness check."""
import csv
import os
import statistics

SHAPES = [("llama2-7b", 32, 32, 128), ("llama3-8b", 32, 8, 128)]
BATCHES = (1, 8)
LENS = (4096, 32768, 131072)


def time_sdpa():
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        print("bench_sdpa: PyTorch not available; SDPA baseline not measured")
        return {}, "not measured (no PyTorch)"
    if not torch.cuda.is_available():
        print("bench_sdpa: no CUDA device; SDPA baseline not measured")
        return {}, "not measured (no GPU)"
    res = {}
    for name, hq, hkv, d in SHAPES:
        for b in BATCHES:
            for t in LENS:
                per = b * t * hkv * d * 2
                nrot = min(8, max(1, (400 << 20) // (2 * per) + 1))
                ks = [torch.randn(b, hkv, t, d, dtype=torch.float16, device="cuda") for _ in range(nrot)]
                vs = [torch.randn(b, hkv, t, d, dtype=torch.float16, device="cuda") for _ in range(nrot)]
                q = torch.randn(b, hq, 1, d, dtype=torch.float16, device="cuda")
                gqa = hq != hkv

                def call(i):
                    return F.scaled_dot_product_attention(q, ks[i % nrot], vs[i % nrot], enable_gqa=gqa)

                for i in range(3):
                    call(i)
                torch.cuda.synchronize()
                times = []
                for i in range(30):
                    e0 = torch.cuda.Event(enable_timing=True)
                    e1 = torch.cuda.Event(enable_timing=True)
                    e0.record()
                    call(i)
                    e1.record()
                    e1.synchronize()
                    times.append(e0.elapsed_time(e1) * 1e3)
                us = statistics.median(times)
                res[(name, b, t)] = us
                print(f"  {name:10s} B={b} T={t:<6d} sdpa-fp16    {us:9.1f} us  {2 * per / us / 1e3:8.1f} GB/s")
                del ks, vs, q
                torch.cuda.empty_cache()
    return res, f"torch {torch.__version__}"


def main():
    sdpa, ver = time_sdpa()
    path = os.environ.get("KVQ_BENCH_CSV", "build/bench_rt.csv")
    rows = {}
    copy = None
    extra = []
    try:
        with open(path) as f:
            for r in csv.DictReader(f):
                if r["shape"] == "copy":
                    copy = float(r["gbps"])
                elif r["kernel"].startswith("append") or r["kernel"].endswith("1M"):
                    extra.append(r)
                else:
                    rows[(r["shape"], int(r["batch"]), int(r["tokens"]), r["kernel"])] = r
    except OSError:
        print(f"bench_sdpa: {path} not found (run build/bench_rt first); SDPA figures only")
    out = []
    out.append(f"Device-to-device copy: {copy:.0f} GB/s (read + write). SDPA: {ver}." if copy else f"SDPA: {ver}.")
    out.append("")
    out.append("| shape | B | tokens | SDPA fp16 us | ours fp16 us | 4-bit us | 3-bit us | 2-bit us | 3-bit vs SDPA | 3-bit vs ours fp16 | 3-bit GB/s | 3-bit % copy | fp16 % copy |")
    out.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, _, _, _ in SHAPES:
        for b in BATCHES:
            for t in LENS:
                def us(k):
                    r = rows.get((name, b, t, k))
                    return float(r["us"]) if r else None
                s = sdpa.get((name, b, t))
                f16, q4, q3, q2 = us("ours-fp16"), us("kvq-4bit"), us("kvq-3bit"), us("kvq-2bit")
                r3 = rows.get((name, b, t, "kvq-3bit"))
                rf = rows.get((name, b, t, "ours-fp16"))
                fmt = lambda x: f"{x:.1f}" if x else "—"
                ratio = lambda a, c: f"{a / c:.2f}x" if a and c else "—"
                out.append(f"| {name} | {b} | {t // 1024}K | {fmt(s)} | {fmt(f16)} | {fmt(q4)} | {fmt(q3)} | {fmt(q2)} | "
                           f"{ratio(s, q3)} | {ratio(f16, q3)} | {r3['gbps'] if r3 else '—'} | "
                           f"{r3['pct_copy'] if r3 else '—'} | {rf['pct_copy'] if rf else '—'} |")
    for r in extra:
        out.append("")
        out.append(f"{r['kernel']} {r['shape']} B={r['batch']} T={r['tokens']}: {float(r['us']):.1f} us"
                   + (f", {float(r['gbps']):.0f} GB/s ({float(r['pct_copy']):.1f} % of copy)" if float(r['gbps']) else ""))
    text = "\n".join(out)
    print(text)
    try:
        os.makedirs("build", exist_ok=True)
        with open("build/bench_gpu.md", "w") as f:
            f.write(text + "\n")
    except OSError:
        pass


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""check_capture.py — print the tree of a kvq capture file (docs/capture-format.md) with plain
h5py: groups, datasets (shape, dtype, chunks, filters, attributes) and the root/provenance
attributes, plus a quick look at the committed data. A development aid, not used by the tests.

usage: python3 tools/check_capture.py cal.h5
"""
import sys

import h5py
import numpy as np


def show_attrs(obj, indent):
    for k, v in obj.attrs.items():
        if isinstance(v, bytes):
            v = v.decode()
        if isinstance(v, np.ndarray) and v.size > 8:
            v = f"array{v.shape} [{', '.join(map(str, v[:8]))}, ...]"
        print(f"{indent}@{k} = {v!r}" if isinstance(v, str) else f"{indent}@{k} = {v}")


def show(name, obj):
    if name.startswith("layers/") and not name.startswith("layers/000"):
        return  # the other layer groups have the same datasets (listed after the tree)
    depth = name.count("/") + 1
    indent = "  " * depth
    if isinstance(obj, h5py.Dataset):
        filters = [f for f in ("shuffle", "compression", "fletcher32") if getattr(obj, f)]
        print(f"{indent}{name.split('/')[-1]}: shape {obj.shape} maxshape {obj.maxshape} {obj.dtype} "
              f"chunks {obj.chunks} filters {filters}")
        if not name.endswith("_stats") or name == "layers/000/k_pre_rope_stats":
            show_attrs(obj, indent + "  ")
    else:
        print(f"{indent}{name.split('/')[-1]}/")
        if name in ("provenance", "provenance/sources/000"):
            show_attrs(obj, indent + "  ")


def main():
    path = sys.argv[1]
    try:
        f = h5py.File(path, "r")
    except OSError:  # left by a killed writer: open as a SWMR reader (docs/capture-format.md)
        f = h5py.File(path, "r", swmr=True)
    with f:
        print(f"{path}/")
        show_attrs(f, "  ")
        f.visititems(show)
        others = sorted(f["layers"])[1:]
        if others:
            same = all(sorted(f["layers"][g]) == sorted(f["layers"]["000"]) for g in others)
            print(f"    layers {', '.join(others)}: {'the same datasets as 000' if same else 'DIFFERENT datasets'}")
        n = int(f["complete_samples"][()])
        length = f["samples/length"][:n]
        rows = int(length.sum())
        print(f"\ncomplete_samples = {n}, committed rows = {rows}")
        print("window_start =", f["samples/window_start"][:n].tolist())
        for layer in sorted(f["layers"]):
            g = f["layers"][layer]
            k = g["k_pre_rope"][:rows].astype(np.float32)
            stats = g["k_pre_rope_stats"][:n]
            mean = stats[:, 0].sum(0) / rows
            line = (f"layer {layer}: |K| max {np.abs(k).max():.3g}, K channel-mean from stats == from "
                    f"data: {np.allclose(mean, k.astype(np.float64).mean(0), rtol=1e-6, atol=1e-9)}")
            if "fisher_k" in g:
                fk = g["fisher_k"][:rows].astype(np.float32)
                line += f", mean F_K {fk.mean():.3g}, mean F_V {g['fisher_v'][:rows].astype(np.float32).mean():.3g}"
            print(line)


if __name__ == "__main__":
    main()

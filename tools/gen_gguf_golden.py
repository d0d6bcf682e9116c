#!/usr/bin/env python3
"""gen_gguf_golden.py — by hand only (tests never run it): writes tests/golden/gguf_<type>.bin, for
each ggml block type kvq dequantizes, a few blocks of random bytes followed by the fp32 values the
`gguf` Python package (gguf.quants.dequantize, numpy) decodes them to. Q8_K has no decoder in
gguf-py; its values are d * q computed here with numpy (float32 times int8 widened to float32).
File layout: n_blocks * block_bytes raw blocks, then n_blocks * block_elems little-endian float32.
fp16/fp32 scale fields are random finite values (normal and subnormal, both signs) rather than
random bits, so no block holds inf/NaN; the first block has all other bytes 0xFF, the second 0x00.
With a second directory argument it also writes kquants.gguf there (the fuzzing seed): one tensor
of each block type, a row of 256 elements, the first block of each golden file.

    python3 tools/gen_gguf_golden.py tests/golden tests/fuzz/seeds/fuzz_gguf  # pip install gguf numpy
"""
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGUFWriter
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize

# type -> (number of blocks, byte offsets of fp16 scale fields in a block)
TYPES = {
    "Q8_0": (8, [0]), "Q4_0": (8, [0]), "Q4_1": (8, [0, 2]), "Q5_0": (8, [0]), "Q5_1": (8, [0, 2]),
    "Q2_K": (4, [80, 82]), "Q3_K": (4, [108]), "Q4_K": (4, [0, 2]), "Q5_K": (4, [0, 2]),
    "Q6_K": (4, [208]), "Q8_K": (4, []),
}


def scale_values(rng, n, dtype):
    mag = np.exp2(rng.uniform(-26 if dtype == np.float16 else -40, 4, n))
    return (mag * rng.choice([-1.0, 1.0], n)).astype(dtype)


def make(name, rng):
    n_blocks, f16_offs = TYPES[name]
    qtype = T[name]
    elems, nbytes = GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, (n_blocks, nbytes), dtype=np.uint8)
    raw[0, :] = 0xFF
    raw[1, :] = 0x00
    for off in f16_offs:
        raw[:, off:off + 2] = scale_values(rng, n_blocks, np.float16).view(np.uint8).reshape(n_blocks, 2)
    if name == "Q8_K":
        d = scale_values(rng, n_blocks, np.float32)
        raw[:, 0:4] = d.view(np.uint8).reshape(n_blocks, 4)
        vals = d.reshape(n_blocks, 1) * raw[:, 4:4 + elems].view(np.int8).astype(np.float32)
    else:
        vals = dequantize(raw.reshape(-1), qtype)
    vals = np.ascontiguousarray(vals, dtype="<f4").reshape(-1)
    assert vals.size == n_blocks * elems and np.all(np.isfinite(vals))
    return raw.tobytes() + vals.tobytes()


def write_seed(path, blobs):
    w = GGUFWriter(path, "llama")
    for name, blob in blobs.items():
        elems, nbytes = GGML_QUANT_SIZES[T[name]]
        n_blocks = 256 // elems
        raw = np.frombuffer(blob[:n_blocks * nbytes], dtype=np.uint8).reshape(1, -1).copy()
        w.add_tensor(f"t.{name.lower()}", raw, raw_dtype=T[name])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/golden"
    rng = np.random.default_rng(20261123)
    blobs = {}
    for name in TYPES:
        blobs[name] = make(name, rng)
        with open(f"{out}/gguf_{name.lower()}.bin", "wb") as f:
            f.write(blobs[name])
    if len(sys.argv) > 2:
        write_seed(f"{sys.argv[2]}/kquants.gguf", blobs)


if __name__ == "__main__":
    main()

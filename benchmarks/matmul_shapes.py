"""Matmul throughput at the shapes a decoding step and a training step of
``*-mt-base`` run (d 512, FFN 2048, vocabulary 8,000): why cached decoding at batch 32
gets less out of the machine per FLOP than re-running the decoder over whole prefixes.

Each ``F.linear`` of an (M, K) input by a (N, K) weight is timed in a loop with the
weight reused (so it stays in cache, as the shared layer's weights do across levels).
Writes docs/results/speed/matmul_shapes.json for the speed page.

    python benchmarks/matmul_shapes.py
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

OUT = Path(__file__).resolve().parent.parent / "docs" / "results" / "speed" / "matmul_shapes.json"
LAYERS = {"Q/K/V": (512, 1536), "FFN up": (512, 2048), "FFN down": (2048, 512), "output layer": (512, 8000)}


def gflops(m: int, k: int, n: int, dtype: torch.dtype, calls: int) -> float:
    x, w = torch.randn(m, k).to(dtype), torch.randn(n, k).to(dtype)
    for _ in range(3):
        F.linear(x, w)
    start = time.perf_counter()
    for _ in range(calls):
        F.linear(x, w)
    return 2.0 * m * k * n * calls / (time.perf_counter() - start) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default="32,1024", help="M values: a decoding step's batch, a training batch's tokens")
    ap.add_argument("--calls", type=int, default=40)
    args = ap.parse_args()
    rows = [int(m) for m in args.rows.split(",")]
    result = {"threads": torch.get_num_threads(), "torch": torch.__version__, "rows": rows, "gflops": {}}
    for dtype, label in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        for name, (k, n) in LAYERS.items():
            for m in rows:
                value = gflops(m, k, n, dtype, args.calls)
                result["gflops"][f"{label} {name} M={m}"] = value
                print(f"{label:5} {name:13} M={m:<5} {value:7.1f} GFLOP/s", flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

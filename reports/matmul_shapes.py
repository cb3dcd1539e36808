"""Matmul throughput at the shapes a decoding step and a training step of
``*-mt-base`` run (d 512, FFN 2048, vocabulary 8,000): why cached decoding at batch 32
gets less out of the machine per FLOP than re-running the decoder over whole prefixes.

Each ``F.linear`` of an (M, K) input by a (N, K) weight is timed in a loop with the
weight reused (so it stays in cache, as the shared layer's weights do across levels),
then the same product through the packed oneDNN path that decoding uses
(:mod:`loopformer.packing`, rows "packed"). Writes docs/results/speed/matmul_shapes.json
for the speed page.

    python -m reports matmul_shapes
"""

from __future__ import annotations

import json
import time

import torch
import torch.nn.functional as F
from torch import nn

from loopformer.packing import packed_linears, packing_available

from . import runner
from .paths import RESULTS

OUT = RESULTS / "speed" / "matmul_shapes.json"
LAYERS = {"Q/K/V": (512, 1536), "FFN up": (512, 2048), "FFN down": (2048, 512), "output layer": (512, 8000)}


def gflops(m: int, k: int, n: int, dtype: torch.dtype, calls: int, packed: bool = False) -> float:
    """GFLOP/s of ``calls`` products of an (m, k) input by one reused (n, k) weight."""
    x = torch.randn(m, k).to(dtype)
    layer = nn.Linear(k, n, bias=False).to(dtype)
    with torch.no_grad(), packed_linears(layer, enabled=packed):
        f = layer if packed else (lambda t: F.linear(t, layer.weight))
        for _ in range(3):
            f(x)
        start = time.perf_counter()
        for _ in range(calls):
            f(x)
        return 2.0 * m * k * n * calls / (time.perf_counter() - start) / 1e9


def main(argv: list[str] | None = None) -> int:
    ap = runner.parser("matmul_shapes", __doc__)
    ap.add_argument("--rows", default="32,1024", help="M values: a decoding step's batch, a training batch's tokens")
    ap.add_argument("--calls", type=int, default=40)
    args = ap.parse_args(argv)
    rows = [int(m) for m in args.rows.split(",")]
    result = {"threads": torch.get_num_threads(), "torch": torch.__version__, "rows": rows, "gflops": {}}
    result["packing"] = packing_available()
    for dtype, label in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        for packed in (False, True) if result["packing"] else (False,):
            tag = f"{label} packed" if packed else label
            for name, (k, n) in LAYERS.items():
                for m in rows:
                    value = gflops(m, k, n, dtype, args.calls, packed)
                    result["gflops"][f"{tag} {name} M={m}"] = value
                    print(f"{tag:12} {name:13} M={m:<5} {value:7.1f} GFLOP/s", flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    return 0

"""Where a cached greedy decoding step of ``ringformer-mt-base`` spends its time.

Profiles greedy search (batch 32, 32 source tokens, 32 new tokens, vocabulary 8,000,
fp32, packed weights as decoding uses by default) with ``torch.profiler`` and sorts the
operators' own CPU time into the encoder pass and, for the decoding steps, linear
layers, attention against the cache, and everything else (norms, residual additions,
the level signals' low-rank products, GELU, cache writes, the softmax over the
vocabulary). It tells how far the cached search is from pure matmul arithmetic.
Writes docs/results/speed/decode_profile.json for the speed page.

    python -m reports decode_profile
"""

from __future__ import annotations

import json
import time

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from loopformer.generate import greedy_search
from loopformer.packing import packed_linears
from loopformer.registry import create_model

from . import runner
from .paths import RESULTS

OUT = RESULTS / "speed" / "decode_profile.json"
# matmul-like operators: the linear layers (packed or not) and the signals' low-rank products
LINEAR = ("mkldnn::_linear_pointwise", "aten::addmm", "aten::mm", "aten::baddbmm")


def category(name: str) -> str:
    """Which part of a decoding step a profiled operator belongs to."""
    if name in LINEAR:
        return "matmul"
    if "scaled_dot_product" in name:
        return "attention"
    return "other"


def measure(model, src, run) -> tuple:
    """Wall time of the search and of the encoder alone, their profiles (the encoder's to
    subtract from the whole search) and their matmul FLOPs, with packed weights."""
    with torch.no_grad(), packed_linears(model):
        for _ in range(2):
            run()
        start = time.perf_counter()
        run()
        wall = time.perf_counter() - start
        start = time.perf_counter()
        model.encode(src)
        encode_wall = time.perf_counter() - start
        with profile(activities=[ProfilerActivity.CPU]) as enc_prof:
            model.encode(src)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            run()
        matmul_flops = []
        for body in (lambda: model.encode(src), run):
            with FlopCounterMode(display=False) as counter:
                body()
            counts = counter.get_flop_counts().get("Global", {})
            matmul_flops.append(sum(v for op, v in counts.items() if "mm" in str(op)))
    return wall, encode_wall, prof, enc_prof, matmul_flops


def by_category(p) -> dict[str, float]:
    """Operators' own CPU time of a profile, in seconds, by :func:`category`."""
    out = {"matmul": 0.0, "attention": 0.0, "other": 0.0}
    for ev in p.key_averages():
        out[category(ev.key)] += ev.self_cpu_time_total / 1e6
    return out


def main(argv: list[str] | None = None) -> int:
    ap = runner.parser("decode_profile", __doc__)
    ap.add_argument("--steps", type=int, default=32)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    model = create_model("ringformer-mt-base", vocab_size=8000, tgt_vocab_size=8000).eval()
    src = torch.randint(4, 8000, (32, 32))
    never = 10**9  # no early stop: every step runs

    def run():
        return greedy_search(model, src, 1, never, args.steps)

    wall, encode_wall, prof, enc_prof, matmul_flops = measure(model, src, run)
    whole, enc = by_category(prof), by_category(enc_prof)
    steps = {k: max(whole[k] - enc[k], 0.0) for k in whole}
    result = {
        "torch": torch.__version__, "threads": torch.get_num_threads(), "steps": args.steps,
        "wall_s": wall, "encode_wall_s": encode_wall,
        "profiled_total_s": sum(whole.values()), "encoder_s": sum(enc.values()),
        "steps_s": steps,
        "per_step_ms": {k: 1e3 * v / args.steps for k, v in steps.items()},
        "matmul_gflop_per_step": (matmul_flops[1] - matmul_flops[0]) / args.steps / 1e9,
    }
    result["matmul_gflops_in_model"] = result["matmul_gflop_per_step"] / (result["per_step_ms"]["matmul"] / 1e3)
    for k, v in result["per_step_ms"].items():
        print(f"{k:10} {v:6.2f} ms per decoding step")
    print(f"matmuls: {result['matmul_gflop_per_step']:.2f} GFLOP per step at "
          f"{result['matmul_gflops_in_model']:.0f} GFLOP/s")
    print(f"wall {wall:.3f} s (encoder {encode_wall:.3f} s)")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    return 0

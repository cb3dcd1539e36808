"""Cost of RingFormer's level signals in a training step.

Times forward + backward + AdamW step of ``ringformer-mt-base`` against the same model
with every signal switched off (same shared layer, same per-level LayerNorms), the two
alternating in one process so that machine noise hits both alike, and prints the
median ratio (target <= 1.10). Writes a JSON record with ``--out``.

    python -m reports signal_overhead --steps 10 --vocab-size 8000
"""

from __future__ import annotations

import json
import platform
import statistics
import time

import torch

from loopformer import count_parameters, create_model

from . import runner


def make_step(model, batch, tokens, vocab, bf16):
    """One timed training step (forward, backward, AdamW) on fixed random data."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    src = torch.randint(1, vocab, (batch, tokens), generator=g)
    tgt = torch.randint(1, vocab, (batch, tokens + 1), generator=g)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> float:
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(src, tgt[:, :-1])
            loss = loss_fn(logits.float().reshape(-1, logits.shape[-1]), tgt[:, 1:].reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    return step


def main(argv: list[str] | None = None) -> int:
    ap = runner.parser("signal_overhead", __doc__)
    ap.add_argument("--preset", default="ringformer-mt-base")
    ap.add_argument("--vocab-size", type=int, default=8000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=24, help="source and target length")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per model")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None, help="write the result as JSON here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    common = dict(vocab_size=args.vocab_size, dropout=0.0)
    with_sig = create_model(args.preset, **common).train()
    without = create_model(
        args.preset, signal_q=False, signal_k=False, signal_v=False, signal_ffn=False, **common
    ).train()
    steps = {
        "signals": make_step(with_sig, args.batch, args.tokens, args.vocab_size, args.bf16),
        "no_signals": make_step(without, args.batch, args.tokens, args.vocab_size, args.bf16),
    }
    times, ratios = alternate(steps, args.warmup, args.steps)
    result = {
        "preset": args.preset,
        "vocab_size": args.vocab_size,
        "batch": args.batch,
        "tokens": args.tokens,
        "bf16": args.bf16,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "params_signals": count_parameters(with_sig).total,
        "params_no_signals": count_parameters(without).total,
        "median_step_s_signals": statistics.median(times["signals"]),
        "median_step_s_no_signals": statistics.median(times["no_signals"]),
        "median_ratio": statistics.median(ratios),
        "steps": args.steps,
    }
    print(
        f"{args.preset}: step {result['median_step_s_signals'] * 1000:.0f} ms with signals, "
        f"{result['median_step_s_no_signals'] * 1000:.0f} ms without "
        f"({args.batch}x{args.tokens} tokens, vocab {args.vocab_size}, bf16={args.bf16}, "
        f"{result['threads']} threads)"
    )
    print(f"median ratio (signals / no signals) over {args.steps} alternating steps: {result['median_ratio']:.3f}")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0


def alternate(steps: dict, warmup: int, n: int) -> tuple[dict[str, list[float]], list[float]]:
    """Time the two models' steps alternately, so that machine noise hits both alike, and
    return each one's step times and the per-round ratios."""
    for _ in range(warmup):
        for fn in steps.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in steps}
    ratios = []
    for _ in range(n):
        a = steps["signals"]()
        b = steps["no_signals"]()
        times["signals"].append(a)
        times["no_signals"].append(b)
        ratios.append(a / b)
    return times, ratios

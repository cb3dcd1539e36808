"""Activation memory with and without activation checkpointing of the looped core.

For each model, runs forward + backward once per setting and reports the bytes of the
tensors autograd saved for backward (what checkpointing trades for recomputation; exact
on any device), the step time, and on CUDA the peak allocated memory. Writes a JSON
record with ``--out``.

    python -m reports activation_memory --out docs/benchmarks/activation_memory.json
"""

from __future__ import annotations

import json
import platform
import time

import torch

from loopformer import create_model

from . import runner

CASES = [
    ("ringformer-mt-small", dict(vocab_size=8000), (32, 32)),
    ("spiral-lm-char", {}, (8, 256)),
    ("looped-lm-char", {}, (8, 256)),
    ("ringformer-vit-tiny", {}, (128, None)),
]


def make_inputs(model, batch: int, length: int | None, device):
    """Random inputs of the model's task (images, source and target ids, or token ids)."""
    cfg = model.config
    g = torch.Generator().manual_seed(0)
    if cfg.task == "vit":
        return (torch.randn(batch, cfg.in_channels, cfg.image_size, cfg.image_size, generator=g).to(device),)
    if cfg.task == "seq2seq":
        return (torch.randint(1, cfg.vocab_size, (batch, length), generator=g).to(device),
                torch.randint(1, cfg.vocab_size, (batch, length), generator=g).to(device))
    return (torch.randint(1, cfg.vocab_size, (batch, length), generator=g).to(device),)


def measure(name: str, kw: dict, shape, checkpointing: bool, device) -> dict:
    """Bytes autograd saves for backward in one step (counted by a saved-tensors hook, so
    exact on any device), the step time and, on CUDA, the peak allocated memory."""
    torch.manual_seed(0)
    model = create_model(name, activation_checkpointing=checkpointing, **kw).to(device).train()
    x = make_inputs(model, *shape, device)
    saved = 0

    def pack(t):
        nonlocal saved
        saved += t.numel() * t.element_size()
        return t

    model(*x).float().square().mean().backward()  # warm-up
    model.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(*x).float().square().mean()
    loss.backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
    out = {"saved_activation_bytes": saved, "step_seconds": time.perf_counter() - start}
    if device.type == "cuda":
        out["cuda_peak_bytes"] = torch.cuda.max_memory_allocated()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = runner.parser("activation_memory", __doc__)
    ap.add_argument("--out", default=None)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    rows = []
    for name, kw, shape in CASES:
        plain = measure(name, kw, shape, False, device)
        ckpt = measure(name, kw, shape, True, device)
        row = {"model": name, "batch": shape[0], "length": shape[1], "plain": plain, "checkpointed": ckpt,
               "saved_ratio": ckpt["saved_activation_bytes"] / plain["saved_activation_bytes"],
               "time_ratio": ckpt["step_seconds"] / plain["step_seconds"]}
        rows.append(row)
        print(f"{name:<22} saved activations {plain['saved_activation_bytes'] / 2**20:8.1f} MiB -> "
              f"{ckpt['saved_activation_bytes'] / 2**20:8.1f} MiB ({row['saved_ratio']:.2f}x), "
              f"step time x{row['time_ratio']:.2f}")
    record = {"device": str(device), "machine": platform.processor() or platform.machine(),
              "torch": torch.__version__, "threads": torch.get_num_threads(), "rows": rows}
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(record, fh, indent=2)
    return 0

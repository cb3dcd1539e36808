"""``loopformer bench``: argument parsing and output (the timing lives in runner.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import ConfigError


def add_parser(sub) -> None:
    p = sub.add_parser(
        "bench", help="time training, decoding and generation of presets side by side (medians, ratios, MFU)",
        description="Models are timed alternately in one process. Each model is PRESET[:fp32|bf16][+compile] "
                    "or torch-transformer[:bf16] (a torch.nn.Transformer sized like the first encoder-decoder "
                    "preset). key=value arguments override preset settings (e.g. max_len=1024).",
    )
    p.add_argument("models", nargs="+", help="entries to time, and key=value config overrides")
    p.add_argument("--workloads", default=None,
                   help="comma-separated; seq2seq: train,encode,greedy,greedy-nocache,greedy-rerun,beam; "
                        "decoder: train,prefill,generate,decode,core; vit: train,infer (default: the common ones)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="default precision of entries")
    p.add_argument("--baseline", default=None, help="entry that ratios are taken against")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--src-len", type=int, default=32, dest="src_len")
    p.add_argument("--tgt-len", type=int, default=32, dest="tgt_len", help="target tokens; new tokens when decoding")
    p.add_argument("--context", type=int, default=256, help="causal LM: training and prefill length")
    p.add_argument("--prompt", type=int, default=16, help="causal LM: prompt length before generation")
    p.add_argument("--new-tokens", type=int, default=32, dest="new_tokens")
    p.add_argument("--beam", type=int, default=4)
    p.add_argument("--positions", default="64,512", help="causal LM: positions of the per-token decode timing")
    p.add_argument("--vocab-size", type=int, default=None, dest="vocab_size")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds per workload")
    p.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-peak", action="store_true", dest="no_peak", help="skip the matmul peak measurement")
    p.add_argument("--json", default=None, help="also write the full result here")
    p.set_defaults(func=cmd_bench, overrides=[])


def cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from ..config import parse_override
    from ..device import resolve_device
    from .entries import Shape, parse_entry
    from .runner import format_results, run_bench
    from .workloads import DEFAULTS

    names = [m for m in args.models if "=" not in m]
    pairs = [m for m in args.models if "=" in m] + list(getattr(args, "overrides", []))
    overrides = dict(parse_override(o) for o in pairs)
    if not names:
        raise ConfigError("name at least one model to benchmark")
    if args.vocab_size is not None:
        overrides["vocab_size"] = args.vocab_size
    for flag in ("batch", "src_len", "tgt_len", "context", "prompt", "new_tokens", "beam", "repeats"):
        if getattr(args, flag) < 1:
            raise ConfigError(f"--{flag.replace('_', '-')} must be >= 1")
    if args.warmup < 0:
        raise ConfigError("--warmup must be >= 0")
    try:
        positions = tuple(int(p) for p in args.positions.split(","))
    except ValueError:
        raise ConfigError(f"--positions must be comma-separated integers, got '{args.positions}'") from None
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    shape = Shape(args.batch, args.src_len, args.tgt_len, args.context, args.prompt, args.new_tokens, args.beam,
                  positions)
    entries, like = [], None
    try:
        for name in names:
            entry = parse_entry(name, overrides, device, args.precision, like)
            if entry.config is not None and entry.task == "seq2seq" and like is None:
                like = entry.config
            entries.append(entry)
        tasks = {e.task for e in entries}
        if len(tasks) > 1:
            raise ConfigError(f"entries mix tasks ({', '.join(sorted(tasks))}); bench one task at a time")
        task = tasks.pop()
        workloads = args.workloads.split(",") if args.workloads else list(DEFAULTS[task])
        expanded = []
        for w in workloads:
            expanded += [f"decode@{p}" for p in positions] if w == "decode" else [w]
        result = run_bench(entries, expanded, shape, device, args.repeats, args.warmup, args.baseline,
                           not args.no_peak, progress=_progress)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    print(format_results(result))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return 0


def _progress(workload: str, done: int, total: int) -> None:
    if sys.stderr.isatty():
        print(f"\r{workload}: round {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)

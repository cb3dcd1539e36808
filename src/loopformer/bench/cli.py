"""``loopformer bench``: argument parsing and output (the timing lives in runner.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..arguments import add_depth, add_threads, count, output_file, positions, write_output
from ..generate import MAX_BEAM
from ..errors import ConfigError

# Bounds of the workload sizes, each flag alone and their products (tokens a step holds,
# hypotheses a beam search keeps), so that no combination of arguments makes a tiny
# model's bench allocate more than about a gigabyte (lengths are also checked against
# each model's max_len when its workloads are built).
MAX_BATCH, MAX_LENGTH, MAX_REPEATS = 256, 4096, 100
MAX_TRAIN_TOKENS = 16_384  # batch x the longest training sequence (activations kept for backward)
MAX_TOKENS = 65_536  # batch x the longest decoded sequence (inference keeps only a cache)
MAX_HYPOTHESES = 1024  # batch x beam


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
    length = count(1, MAX_LENGTH)
    p.add_argument("--batch", type=count(1, MAX_BATCH), default=32, help=f"1..{MAX_BATCH}")
    p.add_argument("--src-len", type=length, default=32, dest="src_len", help=f"1..{MAX_LENGTH}")
    p.add_argument("--tgt-len", type=length, default=32, dest="tgt_len",
                   help="target tokens; new tokens when decoding")
    p.add_argument("--context", type=length, default=256, help="causal LM: training and prefill length")
    p.add_argument("--prompt", type=length, default=16, help="causal LM: prompt length before generation")
    p.add_argument("--new-tokens", type=length, default=32, dest="new_tokens")
    p.add_argument("--beam", type=count(1, MAX_BEAM), default=4, help=f"1..{MAX_BEAM}")
    p.add_argument("--positions", type=positions, default="64,512",
                   help="causal LM: positions of the per-token decode timing (comma-separated)")
    p.add_argument("--vocab-size", type=count(2, 1 << 20), default=None, dest="vocab_size")
    p.add_argument("--repeats", type=count(1, MAX_REPEATS), default=5,
                   help=f"timed rounds per workload, 1..{MAX_REPEATS}")
    p.add_argument("--warmup", type=count(0, MAX_REPEATS), default=2, help="untimed rounds first")
    p.add_argument("--device", default="auto")
    add_depth(p)
    add_threads(p)
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
    _check_sizes(args)
    output_file(args.json, "bench result")  # before the timing, not after it
    positions = args.positions
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
            entries.append(_with_depth(entry, args))
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
        from ..checkpoint import atomic_write_bytes

        text = json.dumps(result.to_dict(), indent=2) + "\n"
        write_output(lambda: atomic_write_bytes(Path(args.json), text.encode()), args.json, "bench result")
    return 0


def _with_depth(entry, args: argparse.Namespace):
    """The entry with ``--loops/--level-rule/--exit`` set, when it has a loop to set them on."""
    from ..models.depth import looped_stacks, run_depth

    if args.loops is None and args.exit is None:
        return entry
    if not looped_stacks(entry.model):
        print(f"{entry.name}: --loops/--exit not applied (no looped core)", file=sys.stderr)
        return entry
    entry.depth = dict(loops=args.loops, rule=args.level_rule, exit=args.exit)
    with run_depth(entry.model, **entry.depth):  # refused now, not after other entries' timing
        pass
    return entry


def _check_sizes(args: argparse.Namespace) -> None:
    """The products of the size flags within their bounds (each flag's own range is argparse's)."""
    for longest, bound in ((max(args.src_len + args.tgt_len, args.context), MAX_TRAIN_TOKENS),
                           (max(args.prompt + args.new_tokens, max(args.positions) + 16), MAX_TOKENS)):
        if args.batch * longest > bound:
            raise ConfigError(f"--batch {args.batch} x {longest} tokens per sequence is more than the {bound:,} "
                              "tokens a bench step may hold; lower --batch or the lengths")
    if args.batch * args.beam > MAX_HYPOTHESES:
        raise ConfigError(f"--batch {args.batch} x --beam {args.beam} is more than the {MAX_HYPOTHESES:,} "
                          "hypotheses a beam search may keep")


def _progress(workload: str, done: int, total: int) -> None:
    if sys.stderr.isatty():
        print(f"\r{workload}: round {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)

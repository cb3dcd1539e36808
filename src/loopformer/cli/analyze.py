"""``loopformer analyze``: CKA, linear probes, attention distances (MAD), level-signal
sizes, parameters and FLOPs. One function per analysis; each prints a table or JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import ConfigError
from ..arguments import MAX_BATCH, MAX_BATCHES, MAX_LENGTH, add_threads, count, output_file, write_output
from .common import checkpoint_dir, set_threads
from .presets import cmd_flops, cmd_params


def add_parser(sub) -> None:
    p = sub.add_parser("analyze", help="CKA, linear probes, attention distances (MAD), level-signal sizes, "
                                         "parameters and FLOPs")
    p.add_argument("analysis", choices=list(ANALYSES))
    p.add_argument("targets", nargs="+", help="checkpoint(s) (cka, probe: A B) or, for params/flops, a preset")
    p.add_argument("--data", default=None, help="split: test2016/test2017/val (translation), test/val (vision)")
    p.add_argument("--plot", default=None, help="write a PNG figure here")
    p.add_argument("--json", action="store_true")
    p.add_argument("--batch-size", type=count(1, MAX_BATCH), default=64, dest="batch_size")
    p.add_argument("--max-batches", type=count(1, MAX_BATCHES), default=None, dest="max_batches",
                   help="at most this many minibatches (default: the whole split)")
    p.add_argument("--context", type=count(1, MAX_LENGTH), default=None, help="flops: sequence length")
    add_threads(p)
    p.set_defaults(func=cmd_analyze)


def cmd_analyze(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    run, n_targets = ANALYSES[args.analysis]
    if len(args.targets) != n_targets:
        what = "one preset or checkpoint" if args.analysis in ("params", "flops") else (
            "two checkpoints: A B" if n_targets == 2 else "one checkpoint")
        raise ConfigError(f"analyze {args.analysis} takes {what}")
    if args.plot is not None and args.analysis not in PLOTS:
        raise ConfigError(f"analyze {args.analysis} draws no figure; --plot is for {', '.join(PLOTS)}")
    if args.analysis not in ("params", "flops"):
        for target in args.targets:
            checkpoint_dir(target)
    output_file(args.plot, "figure")  # before the work, not after it
    return run(args)


def _preset_table(args: argparse.Namespace) -> int:
    args.target, args.overrides = args.targets[0], []
    return cmd_params(args) if args.analysis == "params" else cmd_flops(args)


def _probe(args: argparse.Namespace) -> int:
    from ..tasks.analyze import probe_levels

    res = probe_levels(args.targets[0], args.targets[1], args.data, args.batch_size, args.max_batches)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print("held-out accuracy (%) of a linear classifier telling A's states from B's (50 = indistinguishable)")
    for stack, r in res.items():
        print(f"{stack}:")
        for (la, lb), acc, (n_fit, n_test) in zip(r["pairs"], r["accuracy"], r["rows"]):
            print(f"  {la:<10} vs {lb:<10} {acc:6.2f}   ({n_fit:,} rows fitted, {n_test:,} tested)")
    return 0


def _cka(args: argparse.Namespace) -> int:
    from ..analysis.plots import format_matrix, plot_cka
    from ..tasks.analyze import compare_cka

    res = compare_cka(args.targets[0], args.targets[1], args.data, args.batch_size, args.max_batches)
    if args.plot:
        write_output(lambda: plot_cka(res, args.plot, name_a=args.targets[0], name_b=args.targets[1]),
                     args.plot, "figure")
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    for stack, r in res.items():
        print(f"{stack} ({r['batches']} minibatches): rows {args.targets[0]}, columns {args.targets[1]}")
        print(format_matrix(r["a_layers"], r["b_layers"], r["cka"]))
        n = min(len(r["a_layers"]), len(r["b_layers"]))
        diag = [r["cka"][i][i] for i in range(n)]
        print("diagonal: " + " ".join(f"{v:.3f}" for v in diag) + "\n")
    return 0


def _signals(args: argparse.Namespace) -> int:
    from ..tasks.analyze import signal_norms

    rows = signal_norms(args.targets[0], args.data, args.batch_size, args.max_batches)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print("level signal size relative to what it is added to: E||s(x)|| / E||base||")
    kinds = sorted({r["kind"] for r in rows}, key=["q", "k", "v", "ffn"].index)
    print(f"  {'module':<24} {'level':>5} " + " ".join(f"{k:>7}" for k in kinds))
    table: dict = {}
    for r in rows:
        table.setdefault((r["module"], r["level"]), {})[r["kind"]] = r["ratio"]
    for (module, level), by_kind in table.items():
        cells = " ".join(f"{by_kind[k]:7.3f}" if k in by_kind else f"{'-':>7}" for k in kinds)
        print(f"  {module:<24} {level:>5} {cells}")
    return 0


def _distances(args: argparse.Namespace) -> int:
    from ..analysis.plots import plot_distances
    from ..tasks.analyze import attention_distances
    from ..tasks.task_file import task_name

    if args.analysis == "mad" and task_name(args.targets[0]) != "vision":
        raise ConfigError("mad (mean attention distance in pixels) is for vision checkpoints; "
                          "use attention-distance for text models")
    res = attention_distances(args.targets[0], args.data, args.batch_size, args.max_batches)
    if args.plot:
        write_output(lambda: plot_distances(res, args.plot, title=Path(args.targets[0]).name), args.plot, "figure")
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    for stack, rows in res["stacks"].items():
        print(f"{stack}: mean attention distance in {res['unit']} (per head, then mean)")
        for row in rows:
            heads = " ".join(f"{v:6.2f}" for v in row["per_head"])
            print(f"  {row['layer']:<10} {heads}   mean {row['mean']:6.2f}")
    return 0


# analysis -> (function, number of targets)
ANALYSES = {"cka": (_cka, 2), "probe": (_probe, 2), "mad": (_distances, 1), "attention-distance": (_distances, 1),
            "signals": (_signals, 1), "params": (_preset_table, 1), "flops": (_preset_table, 1)}
PLOTS = ("cka", "mad", "attention-distance")

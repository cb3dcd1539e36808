"""``loopformer plot``: the training curves of one or more runs in one PNG, read from
their ``metrics.jsonl`` (no checkpoint needed: a run still training can be plotted)."""

from __future__ import annotations

import argparse

from ..arguments import output_file, write_output
from ..errors import ConfigError


def add_parser(sub) -> None:
    from ..analysis.curves import X_AXES

    p = sub.add_parser("plot", help="training loss, validation loss and the task metric of runs, as a PNG")
    p.add_argument("runs", nargs="+", metavar="RUN", help="a run directory (holding metrics.jsonl) or a metrics.jsonl")
    p.add_argument("--out", required=True, help="the PNG to write")
    p.add_argument("--labels", default=None, help="comma-separated legend labels, one per run "
                                                  "(default: the run directories' names)")
    p.add_argument("--x", default="step", choices=list(X_AXES), dest="x_axis",
                   help="step (default), tokens (training tokens seen) or minutes (training time)")
    p.set_defaults(func=cmd_plot)


def labels_of(text: str | None) -> list[str] | None:
    if text is None:
        return None
    labels = [label.strip() for label in text.split(",")]
    if not all(labels):
        raise ConfigError(f"--labels {text!r} has an empty label; give one name per run, separated by commas")
    return labels


def cmd_plot(args: argparse.Namespace) -> int:
    from ..analysis.curves import plot_curves, read_runs, summary

    labels = labels_of(args.labels)
    output_file(args.out, "figure")  # before reading the logs, not after
    runs = read_runs(args.runs, labels)
    write_output(lambda: plot_curves(runs, args.out, args.x_axis), args.out, "figure")
    print(f"wrote {args.out}")
    for run in runs:
        print(summary(run))
    return 0

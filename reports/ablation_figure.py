"""The rank sweep of the ablations page: test2016 BLEU against parameters for every
measured signal rank, with the reference models, and the sentence that reads it.

The sweep includes the default RingFormer (rank 16) from the translation page, so two
measured ranks are enough for a figure."""

from __future__ import annotations

import statistics
from pathlib import Path

from .stats import mean_half, pooled_sd


def rank_of(name: str) -> int:
    """The signal rank of a sweep row (``rank-d<k>`` is rank 256 / k; the default is 16)."""
    return 16 if name == "ringformer" else 256 // int(name.split("-d")[1])


def sweep(records: list[dict], reference: list[dict]) -> dict[int, list[dict]]:
    """Runs of the rank sweep by rank: the rank rows and the default RingFormer (r = 16)."""
    out: dict[int, list[dict]] = {}
    for r in records + [r for r in reference if r["name"] == "ringformer"]:
        if r["name"] == "ringformer" or r["name"].startswith("rank-d"):
            out.setdefault(rank_of(r["name"]), []).append(r)
    return out


def rank_sweep_figure(records: list[dict], reference: list[dict], path: Path) -> bool:
    """Draw the sweep into ``path``; False (nothing drawn) until two ranks have runs."""
    from loopformer.analysis.plots import new_figure, save_figure

    by_rank = sweep(records, reference)
    if len(by_rank) < 2:
        return False
    fig = new_figure(6.0, 4.2)
    ax = fig.subplots()
    pts = sorted((rs[0]["non_embedding"], statistics.mean(r["test2016"] for r in rs), rank, len(rs))
                 for rank, rs in by_rank.items())
    halves = [mean_half([r["test2016"] for r in by_rank[p[2]]])[1] for p in pts]
    ax.errorbar([p[0] / 1e6 for p in pts], [p[1] for p in pts], yerr=halves, fmt="o-", color="tab:red", capsize=3,
                label="RingFormer, rank sweep (bars: half the seed range)")
    for i, (x, y, rank, n) in enumerate(pts):  # labels alternate above and below: neighbours sit close
        ax.annotate(f"r={rank}" + ("" if n > 1 else " (1 seed)"), (x / 1e6, y), textcoords="offset points",
                    xytext=(6, 4 if i % 2 == 0 else -11), fontsize=7)
    _references(ax, reference)
    _axes(ax)
    save_figure(fig, path)
    return True


def _references(ax, reference: list[dict]) -> None:
    """The baselines as single points, to show where the ranks sit between them."""
    markers = {"vanilla": "s", "vanilla-matched": "D", "universal": "^", "looped": "v"}
    for name, marker in markers.items():
        rs = [r for r in reference if r["name"] == name]
        if rs:
            ax.plot(rs[0]["non_embedding"] / 1e6, statistics.mean(r["test2016"] for r in rs), marker,
                    color="tab:blue" if name.startswith("vanilla") else "tab:gray", label=name)


def _axes(ax) -> None:
    from matplotlib.ticker import FuncFormatter

    ax.set_xscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.set_xlabel("non-embedding parameters (millions, log scale)")
    ax.set_ylabel("test2016 BLEU (mean over seeds)")
    ax.set_title("Multi30k De→En, *-mt-small, 2,400 steps")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")


def rank_reading(records: list[dict], reference: list[dict]) -> str:
    """What the rank sweep shows, computed from the runs: how far BLEU moves across the
    measured ranks against the seed noise pooled over the ranks, and where the ranks sit
    between the reference models."""
    by_rank = sweep(records, reference)
    if len(by_rank) < 2:
        return ""
    means = {rank: statistics.mean(r["test2016"] for r in rs) for rank, rs in by_rank.items()}
    ranks = sorted(means)
    lo, hi = min(means.values()), max(means.values())
    params = [by_rank[k][0]["non_embedding"] for k in ranks]
    sd = pooled_sd([[r["test2016"] for r in rs] for rs in by_rank.values()])
    single = [k for k in ranks if len(by_rank[k]) < 2]
    if sd is None:
        verdict = "no seed noise measured yet to compare it with"
    else:  # standard error of the difference of two ranks' means
        se = sd * (1 / len(by_rank[min(means, key=means.get)]) + 1 / len(by_rank[max(means, key=means.get)])) ** 0.5
        verdict = (("more than" if hi - lo > 2 * se else "no more than")
                   + f" twice the standard error of the difference between the two ({2 * se:.2f}, from the "
                   f"seed-to-seed s.d. pooled over the ranks, {sd:.2f})")
    text = (f"Across the {len(ranks)} measured ranks (r = {', '.join(map(str, ranks))}; "
            f"{params[0] / 1e6:.2f}–{params[-1] / 1e6:.2f} M non-embedding parameters) test2016 BLEU spans "
            f"{lo:.2f}–{hi:.2f}, a range of {hi - lo:.2f}: {verdict}; best r = {max(means, key=means.get)}"
            + (f" (r = {', '.join(map(str, single))} one seed so far)" if single else "") + ".")
    refs = {n: statistics.mean(r["test2016"] for r in reference if r["name"] == n)
            for n in ("universal", "looped", "vanilla") if any(r["name"] == n for r in reference)}
    if refs:
        parts = [f"{sum(m > v for m in means.values())} of {len(means)} ranks above {n} ({v:.2f})"
                 for n, v in refs.items()]
        text += " Measured: " + "; ".join(parts) + "."
    return text + "\n"

"""The representation probe of the ablations page: how separable RingFormer's hidden
states are from a vanilla model's, read against two vanilla seeds.

Separately trained networks are usually linearly separable whatever they compute, so a
pair's probe accuracy means something only next to the control pair (two seeds of the
same model). Each pair leaves one JSON in ``docs/results/ablations/probe/``; the
checkpoints are the translation table's runs, trained again on a machine that lacks them
(their records go to ``runs/probe-records/``, never to the table's folder)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from . import translation
from .paths import RESULTS, RUNS

# pair -> (A, B): translation-table runs (row, seed); the control pair measures how
# separable two seeds of the same model already are
PROBES = {
    "ringformer-vs-vanilla": (("ringformer", 0), ("vanilla", 0)),
    "universal-vs-vanilla": (("universal", 0), ("vanilla", 0)),
    "control-vanilla-seeds": (("vanilla", 1), ("vanilla", 0)),
}
CONTROL = "control-vanilla-seeds"
PROBE_DIR = RESULTS / "ablations" / "probe"
PROBE_RECORDS = RUNS / "probe-records"  # records of checkpoints trained for the probe (not committed)


def checkpoint(name: str, seed: int, steps: int, device: str) -> Path:
    """The best checkpoint of a translation-table run, trained again (resuming what is
    there) when this machine lacks it or it was trained for another budget."""
    from loopformer.train.state import resolve

    from .training import train_row

    out = translation.SPEC.run_dir(name, seed)
    best = resolve(out / "best")
    metrics = out / "metrics.jsonl"
    if best is None or not metrics.exists() or not any(
            '"step": %d' % steps in line for line in metrics.read_text().splitlines()):
        train_row(translation.ROWS[name], name, seed, steps, device, out, PROBE_RECORDS)
        best = resolve(out / "best")
    return best


def run_probes(steps: int, device: str) -> None:
    """Measure every pair without a JSON yet."""
    from loopformer.tasks.analyze import probe_levels

    PROBE_DIR.mkdir(parents=True, exist_ok=True)
    for pair, (a, b) in PROBES.items():
        target = PROBE_DIR / f"{pair}.json"
        if target.exists():
            continue
        print(f"== probe {pair}", flush=True)
        path_a, path_b = checkpoint(*a, steps, device), checkpoint(*b, steps, device)
        res = probe_levels(str(path_a), str(path_b), "test2016")
        target.write_text(json.dumps({"a": f"{a[0]}-s{a[1]}", "b": f"{b[0]}-s{b[1]}", "split": "test2016",
                                      "checkpoints": _probe_records(a, b), "result": res}, indent=1) + "\n")


def _probe_records(*runs: tuple[str, int]) -> dict:
    """BLEU and device of the probed checkpoints, when this machine trained them."""
    out = {}
    for name, seed in runs:
        path = PROBE_RECORDS / f"{name}-s{seed}.json"
        if path.is_file():
            rec = json.loads(path.read_text())
            out[f"{name}-s{seed}"] = {k: rec[k] for k in ("test2016", "test2017", "device", "steps")}
    return out


HEAD = ("## Representation probe\n\nHeld-out accuracy (%) of a logistic-regression probe telling model A's "
        "hidden states from model B's at the same level on the same test2016 sentences (fitted on even batches, "
        "scored on odd ones; 50 = indistinguishable). Separately trained networks are usually linearly "
        "separable whatever they compute, so each pair is read against the control: two seeds of vanilla.\n")


def probe_section() -> str:
    """The probe's part of the page: per-level accuracy tables and their reading."""
    found = {p: json.loads((PROBE_DIR / f"{p}.json").read_text()) for p in PROBES if (PROBE_DIR / f"{p}.json").exists()}
    if not found:
        return HEAD + "\nNot measured yet: `python -m reports ablations --probe`.\n"
    out = [HEAD]
    checkpoints = {k: v for rec in found.values() for k, v in rec.get("checkpoints", {}).items()}
    if checkpoints:
        out.append("Probed checkpoints (the translation table's recipe and budget, trained by this script; "
                   "test2016 / test2017 BLEU): " + "; ".join(
                       f"{k} {v['test2016']:.2f} / {v['test2017']:.2f} ({v['device']})"
                       for k, v in sorted(checkpoints.items())) + ".")
    present = {s for rec in found.values() for s in rec["result"]}
    stacks = [s for s in ("encoder", "decoder") if s in present] + sorted(present - {"encoder", "decoder"})
    for stack in stacks:
        out += _level_table(found, stack)
    out += ["", *probe_reading(found, stacks)]
    return "\n".join(out) + "\n"


def _level_table(found: dict, stack: str) -> list[str]:
    """Accuracy per level of one stack (encoder or decoder), one column per pair."""
    cols = [p for p in PROBES if p in found and stack in found[p]["result"]]
    depth = max(len(found[p]["result"][stack]["accuracy"]) for p in cols)
    out = [f"\n{stack}:\n",
           "| level | " + " | ".join(f"{found[p]['a']} vs {found[p]['b']}" for p in cols) + " |",
           "|---|" + "---|" * len(cols)]
    for i in range(depth):
        cells = []
        for p in cols:
            acc = found[p]["result"][stack]["accuracy"]
            cells.append(f"{acc[i]:.1f}" if i < len(acc) else "")
        out.append(f"| {i + 1} | " + " | ".join(cells) + " |")
    return out


def _mean(found: dict, pair: str, stack: str) -> float | None:
    res = found.get(pair, {}).get("result", {}).get(stack)
    return statistics.mean(res["accuracy"]) if res else None


def probe_reading(found: dict, stacks: list[str]) -> list[str]:
    """Sentences computed from the probe JSONs: each pair's mean accuracy over levels,
    RingFormer against Universal, and every pair against the control when it has been
    measured (until then, the accuracies are said not to be readable)."""
    out = []
    for stack in stacks:
        parts = [f"{found[p]['a']} vs {found[p]['b']} {_mean(found, p, stack):.1f}" for p in PROBES
                 if _mean(found, p, stack) is not None]
        out.append(f"- {stack}, mean over levels: " + "; ".join(parts) + ".")
    for stack in stacks:
        r, u = _mean(found, "ringformer-vs-vanilla", stack), _mean(found, "universal-vs-vanilla", stack)
        if r is not None and u is not None and round(r, 1) != round(u, 1):
            closer = "RingFormer's" if r < u else "the Universal Transformer's"
            out.append(f"- {stack}: {closer} states are the harder to tell from vanilla's ({r:.1f} vs {u:.1f} for "
                       "RingFormer vs Universal), the direction the paper expects of its level signals; one seed "
                       "per model, so the size of the gap is not established.")
    if CONTROL not in found:
        out.append("- The control (two vanilla seeds) is not measured yet, so these accuracies cannot yet be read "
                   "as a difference in what the models compute: any two separately trained networks may be "
                   "this separable.")
        return out
    return out + _against_control(found, stacks)


def _against_control(found: dict, stacks: list[str]) -> list[str]:
    """Each pair's mean accuracy against the control's, one sentence per pair and stack."""
    out = []
    for stack in stacks:
        base = _mean(found, CONTROL, stack)
        for pair in PROBES:
            m = _mean(found, pair, stack)
            if pair == CONTROL or m is None or base is None:
                continue
            if round(m, 1) == round(base, 1):
                how = "as separable from vanilla as a second vanilla seed is"
            else:
                how = (f"{abs(m - base):.1f} points {'more' if m > base else 'less'} separable from vanilla than a "
                       "second vanilla seed is")
            out.append(f"- {stack}: {found[pair]['a']} is {how} ({m:.1f} vs {base:.1f}; one seed per model, so how "
                       "much this moves with the seed is not measured).")
    return out

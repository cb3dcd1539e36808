"""The noise estimates the pages judge differences by, and the cells that show them.

Most rows have two or three seeds, so every figure is shown with the spread it has and
every comparison is made against seed noise pooled over rows (see :func:`pooled_sd`)."""

from __future__ import annotations

import statistics


def mean_half(values: list[float]) -> tuple[float, float]:
    """Mean and half the range over seeds: the only noise estimate two seeds give."""
    return statistics.mean(values), (max(values) - min(values)) / 2


def pooled_sd(groups: list[list[float]]) -> float | None:
    """Seed-to-seed standard deviation pooled over every row with two or more seeds.

    Two seeds give each row a noisy spread of its own (two runs can agree to 0.01 by
    chance), so rows are compared against the noise of all rows together: the rows share
    one recipe and differ by one switch, so their seed noise is assumed alike."""
    num = sum(sum((v - statistics.mean(g)) ** 2 for v in g) for g in groups if len(g) > 1)
    dof = sum(len(g) - 1 for g in groups if len(g) > 1)
    return (num / dof) ** 0.5 if dof else None


def spread(values: list[float], digits: int = 2) -> str:
    """A table cell: "mean ± half-range", or the value and "(1 seed)" so a lone run is
    never read as a settled figure."""
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.{digits}f} (1 seed)"
    mean, half = mean_half(values)
    return f"{mean:.{digits}f} ± {half:.{digits}f}"


def device_of(record: dict) -> str:
    """The device a run's speed was measured on; records written before the device was
    recorded ran on the CPU with the recorded thread count."""
    return record.get("device") or f"CPU, {record.get('threads', '?')} thread(s)"


def speed_rows(records: list[dict], names: list[str], keys: list[str], digits: int = 0) -> str:
    """One row per (table row, device): mean of each speed figure over that device's runs,
    because speeds from different devices must never be averaged together."""
    out = []
    for name in names:
        by_device: dict[str, list[dict]] = {}
        for r in records:
            if r["name"] == name:
                by_device.setdefault(device_of(r), []).append(r)
        for device, rs in by_device.items():
            cells = " | ".join(f"{statistics.mean(r[k] for r in rs):,.{digits}f}" for k in keys)
            out.append(f"| {name} | {device} | {len(rs)} | {cells} |")
    return "\n".join(out)

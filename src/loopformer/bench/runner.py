"""Alternating timing loop, summary statistics and the printed table."""

from __future__ import annotations

import platform
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from .entries import Entry, Shape
from .peak import matmul_peak
from .workloads import Workload, make_workload


@dataclass
class Row:
    workload: str
    entry: str
    unit: str
    units: int
    seconds: list[float]
    ratio: float | None = None  # median over rounds of time / baseline's time in the same round
    flops: float | None = None
    mfu: float | None = None
    memory_mib: float | None = None
    memory_kind: str | None = None
    calls_per_token: float | None = None
    mean_loops: float | None = None  # with an early exit: loops run per token (or image)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def throughput(self) -> float:
        return self.units / self.median

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(median_s=self.median, min_s=min(self.seconds), max_s=max(self.seconds), per_s=self.throughput)
        return out


@dataclass
class BenchResult:
    device: str
    threads: int
    torch: str
    machine: str
    shape: dict[str, Any]
    peaks: dict[str, float]  # precision -> FLOP/s
    baseline: str | None
    rows: list[Row] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["rows"] = [r.to_dict() for r in self.rows]
        return out


def device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:  # Linux: the CPU's marketing name; platform.processor() is often empty there
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_bench(
    entries: list[Entry], workloads: list[str], shape: Shape, device: torch.device, repeats: int = 5,
    warmup: int = 2, baseline: str | None = None, measure_peak: bool = True, progress=None,
) -> BenchResult:
    """Time every workload on every entry, alternating entries round by round."""
    if baseline is not None and baseline not in [e.name for e in entries]:
        raise ValueError(f"baseline '{baseline}' is not one of the entries: {', '.join(e.name for e in entries)}")
    from .workloads import WORKLOADS

    for name in workloads:
        if not any(name.split("@")[0] in WORKLOADS[e.task] for e in entries):
            task = entries[0].task
            raise ValueError(f"{task} models have no workload '{name}'; choose from {', '.join(WORKLOADS[task])}")
    peaks: dict[str, float] = {}
    if measure_peak:
        peaks["fp32"] = matmul_peak(torch.float32, device)
        peaks["bf16"] = matmul_peak(torch.bfloat16, device)
    result = BenchResult(device_label(device), torch.get_num_threads(), torch.__version__,
                         platform.machine(), asdict(shape), peaks, baseline)
    for name in workloads:
        chosen = [e for e in entries if _supports(e, name)]
        if not chosen:
            continue
        work = [make_workload(name, e, shape, device) for e in chosen]
        times: list[list[float]] = [[] for _ in chosen]
        memory: list[float] = [0.0 for _ in chosen]
        for r in range(warmup + repeats):
            for i, w in enumerate(work):
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                t = w.run()
                if device.type == "cuda":
                    memory[i] = max(memory[i], torch.cuda.max_memory_allocated(device) / 2**20)
                if r >= warmup:
                    times[i].append(t)
            if progress is not None:
                progress(name, r + 1, warmup + repeats)
        base = next((i for i, e in enumerate(chosen) if e.name == baseline), None)
        for i, (e, w) in enumerate(zip(chosen, work)):
            row = _row(e, w, times[i], times[base] if base is not None else None, peaks)
            if device.type == "cuda":
                row.memory_mib, row.memory_kind = memory[i], "peak allocated"
            elif w.memory_bytes is not None:
                row.memory_mib, row.memory_kind = w.memory_bytes / 2**20, "weights+grads+AdamW+saved activations"
            result.rows.append(row)
    return result


def _supports(entry: Entry, workload: str) -> bool:
    from .workloads import WORKLOADS

    base = workload.split("@")[0]
    if base not in WORKLOADS[entry.task]:
        return False
    return entry.config is not None or base == "train"


def _row(entry: Entry, w: Workload, times: list[float], base: list[float] | None, peaks: dict[str, float]) -> Row:
    row = Row(w.name, entry.name, w.unit, w.units, times)
    if base is not None:
        row.ratio = statistics.median(a / b for a, b in zip(times, base))
    if w.flops is not None:
        row.flops = w.flops
        peak = peaks.get(entry.precision)
        if peak:
            row.mfu = w.flops / row.median / peak
    row.calls_per_token = getattr(w.run, "calls_per_token", None)
    row.mean_loops = getattr(w.run, "mean_loops", None)
    return row


def format_results(result: BenchResult) -> str:
    """A plain-text table: median time, min-max, throughput, ratio to baseline, achieved
    GFLOP/s (counted FLOPs / median time) and MFU."""
    lines = [f"device: {result.device}, {result.threads} threads, torch {result.torch}"]
    if result.peaks:
        lines.append("matmul peak: " + ", ".join(f"{k} {v / 1e9:,.0f} GFLOP/s" for k, v in result.peaks.items()))
    header = (f"{'workload':<15} {'model':<34} {'median ms':>10} {'min-max ms':>17} {'per s':>10} "
              f"{'ratio':>6} {'GFLOP/s':>8} {'MFU':>6}")
    lines += [header, "-" * len(header)]
    for r in result.rows:
        spread = f"{min(r.seconds) * 1e3:,.1f}-{max(r.seconds) * 1e3:,.1f}"
        ratio = f"{r.ratio:.3f}" if r.ratio is not None else ""
        mfu = f"{r.mfu:.1%}" if r.mfu is not None else ""
        achieved = f"{r.flops / r.median / 1e9:,.0f}" if r.flops else ""
        loops = f"  {r.mean_loops:.2f} loops" if r.mean_loops is not None else ""
        lines.append(f"{r.workload:<15} {r.entry:<34} {r.median * 1e3:>10,.1f} {spread:>17} "
                     f"{r.throughput:>10,.0f} {ratio:>6} {achieved:>8} {mfu:>6}{loops}")
    units = sorted({(r.workload, r.unit) for r in result.rows})
    lines.append("per s counts: " + "; ".join(f"{w}: {u}" for w, u in units))
    if result.baseline:
        lines.append(f"ratio: median over rounds of time / time of {result.baseline} in the same round (< 1 is faster)")
    return "\n".join(lines)

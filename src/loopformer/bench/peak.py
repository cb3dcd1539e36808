"""The machine's matmul peak, measured rather than looked up (model FLOPs utilisation
needs the ceiling of the same machine, threads and precision as the model)."""

from __future__ import annotations

import time

import torch


def matmul_peak(
    dtype: torch.dtype, device: torch.device, sizes: tuple[int, ...] | None = None, repeats: int = 5
) -> float:
    """Best FLOP/s of square ``n x n @ n x n`` matmuls over ``sizes`` (median of ``repeats``).

    A GPU needs far larger products than a CPU to reach its ceiling (a 2048-cube product
    is over in microseconds, mostly launch latency), so the default sizes follow the device."""
    if sizes is None:
        sizes = (4096, 8192) if device.type == "cuda" else (1024, 2048)
    best = 0.0
    for n in sizes:
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        a @ b  # warm-up: kernel selection, page faults
        times = []
        for _ in range(repeats):
            _sync(device)
            start = time.perf_counter()
            a @ b
            _sync(device)
            times.append(time.perf_counter() - start)
        times.sort()
        best = max(best, 2.0 * n**3 / times[len(times) // 2])
    return best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)

"""Pre-packed ``nn.Linear`` weights for inference on the CPU (oneDNN).

Decoding multiplies a few rows (batch x beam) by the same weights thousands of times.
On the CPU the default fp32 matmul (MKL) runs such thin products at well under its
large-matrix speed, while oneDNN with the weight packed once into its blocked layout
runs them at about the speed of a training-sized matmul (2-core AMD EPYC, torch 2.13:
32 x 512 x 2048 at ~210 GFLOP/s against ~120). Under bf16 autocast every call casts
every fp32 weight to bf16 before multiplying; the packed path casts and packs once.
The arithmetic is the same product in the same precision, only the summation order
differs (relative differences ~1e-6 in fp32, as between any two BLAS libraries).

:func:`packed_linears` switches a model's linear layers to the packed path for the
duration of a ``with`` block, like :mod:`loopformer.compile` from outside the model:
the modules, their state dicts and checkpoints are unchanged. Each weight is packed at
its first use in the block and the copy is dropped when the outermost block ends
(packing all of ``ringformer-mt-base`` takes ~10 ms). Copies are not kept across blocks
because nothing reliable says a weight has changed: the fused AdamW kernel updates
parameters in place without moving their version counter. Inside a block the weights
must not change; an update that does move the version (or replaces the storage) is
still noticed and repacked.

The packed path is taken only where it computes what ``F.linear`` would: no autograd,
CPU tensors, fp32 or bf16 (autocast's or the weights' own), no tracing and no dispatch
mode (FLOP counters see an ordinary ``linear``). Anything else falls through to
``F.linear``.
"""

from __future__ import annotations

import functools
import weakref
from contextvars import ContextVar
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils._python_dispatch import _get_current_dispatch_mode

T = TypeVar("T")

# module -> {compute dtype: (weight version, weight data pointer, packed weight)}, for
# the modules inside a packed_linears block
_PACKED: "weakref.WeakKeyDictionary[nn.Linear, dict]" = weakref.WeakKeyDictionary()
_DISABLED: ContextVar[bool] = ContextVar("loopformer_packing_disabled", default=False)
_ACTIVE: "weakref.WeakKeyDictionary[nn.Linear, int]" = weakref.WeakKeyDictionary()  # nesting depth


@functools.cache
def packing_available() -> bool:
    """Whether this torch build has the oneDNN packed linear (CPU builds with mkldnn)."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        torch.ops.mkldnn._linear_pointwise  # noqa: B018 (resolves the op or raises)
        torch.ops.mkldnn._reorder_linear_weight  # noqa: B018
    except (AttributeError, RuntimeError):
        return False
    return True


def _packed_weight(module: nn.Linear, dtype: torch.dtype) -> Tensor:
    w = module.weight
    entries = _PACKED.setdefault(module, {})
    entry = entries.get(dtype)
    if entry is None or entry[0] != w._version or entry[1] != w.data_ptr():
        entry = (w._version, w.data_ptr(), torch.ops.mkldnn._reorder_linear_weight(w.detach().to(dtype)))
        entries[dtype] = entry
    return entry[2]


_PACKABLE = (torch.float32, torch.bfloat16)

# A oneDNN call costs ~20 µs more than MKL's before any arithmetic (torch 2.13, measured
# through this module's forward): smaller products, e.g. a d=128 model decoding one
# sequence, stay on F.linear. From ~4M multiply-adds on, packing won at every shape tried.
MIN_PACKED_MACS = 1 << 22


def _compute_dtype(module: nn.Linear, x: Tensor) -> torch.dtype | None:
    """The dtype ``F.linear`` would multiply in here (autocast's, else the weight's), or
    None where the packed path would not compute the same thing."""
    w = module.weight
    if (torch.is_grad_enabled() or x.device.type != "cpu" or w.device.type != "cpu" or x.dim() < 2
            or x.numel() * w.shape[0] < MIN_PACKED_MACS
            or torch.compiler.is_compiling() or _get_current_dispatch_mode() is not None):
        return None
    if torch.is_autocast_enabled("cpu"):
        # autocast casts input, weight and bias to its dtype; fp32 weights only (the
        # fp32 master copy is what is packed, once, instead of being cast every call)
        dtype = torch.get_autocast_dtype("cpu")
        ok = w.dtype == torch.float32 and x.dtype in (torch.float32, dtype)
    else:
        dtype = w.dtype
        ok = x.dtype == dtype and (module.bias is None or module.bias.dtype == dtype)
    return dtype if ok and dtype in _PACKABLE else None


class _PackedForward:
    """The forward installed on a linear layer inside :func:`packed_linears`."""

    def __init__(self, module: nn.Linear) -> None:
        self.module = weakref.ref(module)

    def __call__(self, x: Tensor) -> Tensor:
        module = self.module()
        dtype = _compute_dtype(module, x)
        if dtype is None:
            return F.linear(x, module.weight, module.bias)
        bias = module.bias.to(dtype) if module.bias is not None else None
        return torch.ops.mkldnn._linear_pointwise(
            x.to(dtype).contiguous(), _packed_weight(module, dtype), bias, "none", [], ""
        )


@contextmanager
def packed_linears(model: nn.Module, enabled: bool = True) -> Iterator[int]:
    """Within the block, the ``nn.Linear`` layers of ``model`` multiply through oneDNN
    with pre-packed weights wherever that computes the same product (see the module
    docstring); yields how many layers were switched. Nested use is fine.
    ``enabled=False`` turns packing off for the block, nested blocks included (decoding
    calls pack by themselves), e.g. to time or compare against the unpacked path."""
    if not enabled:
        token = _DISABLED.set(True)
        try:
            yield 0
        finally:
            _DISABLED.reset(token)
        return
    if _DISABLED.get() or not packing_available():
        yield 0
        return
    # exact nn.Linear only (subclasses may compute something else); a layer whose forward
    # someone else has replaced is left alone
    switched = [m for m in model.modules()
                if type(m) is nn.Linear and (m in _ACTIVE or "forward" not in m.__dict__)]
    for m in switched:
        depth = _ACTIVE.get(m, 0)
        if depth == 0:
            m.forward = _PackedForward(m)
        _ACTIVE[m] = depth + 1
    try:
        yield len(switched)
    finally:
        for m in switched:
            depth = _ACTIVE.pop(m) - 1
            if depth:
                _ACTIVE[m] = depth
                continue
            _PACKED.pop(m, None)
            if isinstance(m.__dict__.get("forward"), _PackedForward):
                del m.forward  # the class method shows through again


def packs_linears(fn: Callable[..., T]) -> Callable[..., T]:
    """Decorator: run ``fn(model, ...)`` inside :func:`packed_linears` of its model."""

    @functools.wraps(fn)
    def wrapper(model, *args, **kwargs):
        with packed_linears(model):
            return fn(model, *args, **kwargs)

    return wrapper

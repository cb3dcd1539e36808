"""The timed operations of ``loopformer bench``, one factory per workload.

Every workload returns a function that runs once and returns the seconds of its timed
part (set-up such as filling a cache to a given position is excluded), and says how
many units (tokens, images) one run produces, so throughput is units / seconds.
"""

from __future__ import annotations

import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..generate import beam_search, greedy_search
from ..models.depth import ExitMeter, run_depth
from ..packing import packed_linears, packs_linears
from ..sampling import sample
from ..train.config import TrainConfig
from ..train.optim import build_optimizer
from .entries import Entry, Shape

BOS = 1
NEVER = -1  # an end-of-sequence id no model emits: decoding runs the full length

WORKLOADS = {
    "seq2seq": ("train", "encode", "greedy", "greedy-nocache", "greedy-rerun", "beam"),
    "decoder": ("train", "prefill", "generate", "decode", "core"),
    "vit": ("train", "infer"),
}
DEFAULTS = {
    "seq2seq": ("train", "encode", "greedy", "beam"),
    "decoder": ("train", "prefill", "generate"),
    "vit": ("train", "infer"),
}


@dataclass
class Workload:
    name: str
    unit: str  # what throughput counts ("target tokens", "images", ...)
    units: int  # per run
    run: Callable[[], float]  # one run -> seconds of its timed part
    flops: float | None = None  # per run, counted on an eager run
    memory_bytes: int | None = None  # CPU training: parameters + grads + optimizer + saved activations


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(entry: Entry, device: torch.device):
    dtype = entry.autocast_dtype
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def _tokens(shape: tuple[int, ...], vocab: int, device: torch.device, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(2, vocab, shape, generator=g).to(device)


def _vocab(entry: Entry) -> int:
    if entry.config is not None:
        return entry.config.vocab_size
    return entry.model.src_embed.num_embeddings if hasattr(entry.model, "src_embed") else 1000


def make_workload(name: str, entry: Entry, shape: Shape, device: torch.device) -> Workload:
    base = name.split("@")[0]
    if base not in WORKLOADS[entry.task]:
        raise ValueError(f"{entry.name} ({entry.task}) has no workload '{base}'; "
                         f"choose from {', '.join(WORKLOADS[entry.task])}")
    if base == "train":
        return _train(entry, shape, device)
    if base == "decode":
        position = int(name.split("@")[1]) if "@" in name else shape.positions[0]
        return _decode_at(entry, shape, device, position)
    factory = {"encode": _encode, "greedy": _greedy, "greedy-nocache": _greedy_nocache,
               "greedy-rerun": _greedy_rerun, "beam": _beam,
               "prefill": _prefill, "generate": _generate, "core": _core, "infer": _infer}[base]
    return factory(entry, shape, device)


# --- training ------------------------------------------------------------------------


def _train_inputs(entry: Entry, shape: Shape, device: torch.device) -> tuple[Callable[[], Tensor], Tensor, str, int]:
    """(forward closure, labels, unit, units per step)."""
    model, b = entry.model, shape.batch
    if entry.task == "seq2seq":
        v = _vocab(entry)
        src = _tokens((b, shape.src_len), v, device, 0)
        tgt = _tokens((b, shape.tgt_len + 1), v, device, 1)
        return (lambda: model(src, tgt[:, :-1])), tgt[:, 1:], "target tokens", b * shape.tgt_len
    if entry.task == "decoder":
        tok = _tokens((b, shape.context + 1), entry.config.vocab_size, device, 0)
        return (lambda: model(tok[:, :-1])), tok[:, 1:], "tokens", b * shape.context
    cfg = entry.config
    g = torch.Generator().manual_seed(0)
    images = torch.randn(b, cfg.in_channels, cfg.image_size, cfg.image_size, generator=g).to(device)
    labels = torch.randint(0, cfg.num_classes, (b,), generator=g).to(device)
    return (lambda: model(images)), labels, "images", b


def _train(entry: Entry, shape: Shape, device: torch.device) -> Workload:
    """Forward, backward and the library's AdamW step, with label-smoothed cross-entropy
    in fp32 (as the trainer computes it)."""
    model = entry.model
    forward, labels, unit, units = _train_inputs(entry, shape, device)
    opt, _ = build_optimizer(model, TrainConfig())

    def loss_fn() -> Tensor:
        with _autocast(entry, device), _depth(entry):
            logits = forward()
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), label_smoothing=0.1)

    def run() -> float:
        model.train()
        sync(device)
        start = time.perf_counter()
        loss_fn().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        return time.perf_counter() - start

    from torch.utils.flop_counter import FlopCounterMode

    # counted on the eager forward: the counting and the saved-tensor hooks are Python
    # callbacks that compiled code would trace (and recompile for)
    with torch.compiler.set_stance("force_eager"):
        with FlopCounterMode(display=False) as counter:
            loss_fn().backward()
        opt.zero_grad(set_to_none=True)
        flops = float(counter.get_total_flops())
        memory = _train_memory(model, loss_fn, opt) if device.type == "cpu" else None
    return Workload("train", unit, units, run, flops=flops, memory_bytes=memory)


def _train_memory(model, loss_fn, opt) -> int:
    """Bytes of parameters, gradients, optimizer state and the activations autograd
    saves for backward: what a training step holds at its peak, counted exactly."""
    saved: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        if t.device.type != "meta":
            storage = t.untyped_storage()
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loss_fn()
    loss.backward()
    params = {p.data_ptr(): p.numel() * p.element_size() for p in model.parameters()}
    grads = sum(p.grad.numel() * p.grad.element_size() for p in model.parameters() if p.grad is not None)
    opt.zero_grad(set_to_none=True)
    state = 4 * 2 * sum(params.values())  # AdamW's two fp32 moments per parameter (fp32 weights)
    return sum(params.values()) + grads + state + sum(saved.values())


# --- inference -----------------------------------------------------------------------


def _inference(name: str, unit: str, units: int, entry: Entry, device: torch.device,
               body: Callable[[], None]) -> Workload:
    """A timed inference workload with its FLOPs counted on one eager run (so decoding
    rows can be compared with the arithmetic they do, not only with each other)."""
    from torch.utils.flop_counter import FlopCounterMode

    entry.model.eval()
    try:
        with torch.compiler.set_stance("force_eager"), torch.no_grad(), _autocast(entry, device), _depth(entry):
            with _frozen(entry.model), FlopCounterMode(display=False) as counter:
                body()
    finally:
        entry.model.train()
    return Workload(name, unit, units, _timed_inference(entry, device, body), flops=float(counter.get_total_flops()))


@contextmanager
def _frozen(model: torch.nn.Module):
    """Parameters without requires_grad for the count: the counter's module tracker
    hooks the backward of every module output that requires grad, and a slice of a
    parameter (learned positions) taken under no_grad still claims to, with no graph
    behind it, which fails inside torch."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def _timed_inference(entry: Entry, device: torch.device, body: Callable[[], None]) -> Callable[[], float]:
    def run() -> float:
        entry.model.eval()
        meter = ExitMeter()
        with torch.no_grad(), _autocast(entry, device), packed_linears(entry.model, entry.packed), \
                _depth(entry, meter):
            sync(device)
            start = time.perf_counter()
            body()
            sync(device)
            elapsed = time.perf_counter() - start
        entry.model.train()
        if entry.depth is not None and entry.depth.get("exit") is not None:
            run.mean_loops = meter.mean_loops  # the row reports the last round's
        return elapsed

    return run


def _depth(entry: Entry, meter: ExitMeter | None = None):
    """The entry's test-time depth (``bench --loops/--level-rule/--exit``), if any."""
    if entry.depth is None:
        return nullcontext()
    return run_depth(entry.model, meter=meter, **entry.depth)


def _src(entry: Entry, shape: Shape, device: torch.device) -> Tensor:
    return _tokens((shape.batch, shape.src_len), _vocab(entry), device, 0)


def _library_only(entry: Entry, what: str) -> None:
    if entry.config is None:
        raise ValueError(f"{entry.name} is a training reference; '{what}' is measured on library models")


def _encode(entry: Entry, shape: Shape, device: torch.device) -> Workload:
    _library_only(entry, "encode")
    src = _src(entry, shape, device)
    return _inference("encode", "source tokens", src.numel(), entry, device, lambda: entry.model.encode(src))


def _greedy(entry: Entry, shape: Shape, device: torch.device) -> Workload:
    _library_only(entry, "greedy")
    src = _src(entry, shape, device)
    body = lambda: greedy_search(entry.model, src, BOS, NEVER, shape.tgt_len)  # noqa: E731
    return _inference("greedy", "new tokens", shape.batch * shape.tgt_len, entry, device, body)


def _beam(entry: Entry, shape: Shape, device: torch.device) -> Workload:
    _library_only(entry, "beam")
    src = _src(entry, shape, device)
    body = lambda: beam_search(entry.model, src, BOS, NEVER, shape.tgt_len, beam=shape.beam)  # noqa: E731
    return _inference(f"beam{shape.beam}", "new tokens", shape.batch * shape.tgt_len, entry, device, body)


@packs_linears
@torch.no_grad()
def greedy_uncached(model, src: Tensor, bos: int, steps: int, rerun_encoder: bool = False) -> Tensor:
    """Greedy decoding without a cache: the decoder re-runs over the whole prefix at every
    step (the encoder runs once, or, with ``rerun_encoder``, the whole model runs every
    step). The baselines that the cached search is compared with."""
    memory, mem_pad = model.encode(src)
    out = torch.full((src.shape[0], 1), bos, dtype=torch.long, device=src.device)
    for _ in range(steps):
        if rerun_encoder:
            memory, mem_pad = model.encode(src)
        logits = model.decode(out, memory, mem_pad)[:, -1]
        out = torch.cat([out, logits.argmax(-1, keepdim=True)], dim=1)
    return out[:, 1:]


def _greedy_nocache(entry: Entry, shape: Shape, device: torch.device) -> Workload:
    _library_only(entry, "greedy-nocache")
    src = _src(entry, shape, device)
    body = lambda: greedy_uncached(entry.model, src, BOS, shape.tgt_len)  # noqa: E731
    return _inference("greedy-nocache", "new tokens", shape.batch * shape.tgt_len, entry, device, body)


def _greedy_rerun(entry: Entry, shape: Shape, device: torch.device) -> Workload:
    _library_only(entry, "greedy-rerun")
    src = _src(entry, shape, device)
    body = lambda: greedy_uncached(entry.model, src, BOS, shape.tgt_len, rerun_encoder=True)  # noqa: E731
    return _inference("greedy-rerun", "new tokens", shape.batch * shape.tgt_len, entry, device, body)


def _prefill(entry: Entry, shape: Shape, device: torch.device) -> Workload:
    """A full-sequence forward over the context (what prefill computes), no cache."""
    tok = _tokens((shape.batch, shape.context), entry.config.vocab_size, device, 0)
    return _inference("prefill", "tokens", tok.numel(), entry, device, lambda: entry.model(tok))


def _generate(entry: Entry, shape: Shape, device: torch.device) -> Workload:
    prompt = _tokens((shape.batch, shape.prompt), entry.config.vocab_size, device, 0)
    body = lambda: sample(entry.model, prompt, shape.new_tokens, temperature=0.0)  # noqa: E731
    return _inference("generate", "new tokens", shape.batch * shape.new_tokens, entry, device, body)


def _decode_at(entry: Entry, shape: Shape, device: torch.device, position: int, steps: int = 16) -> Workload:
    """Cached one-token steps at ``position``..``position + steps``: the cache is filled to
    ``position`` first (untimed), then each step's time is summed."""
    model = entry.model
    if position + steps > model.config.max_len:
        raise ValueError(f"decode@{position} needs a context of {position + steps} > max_len {model.config.max_len}")
    tok = _tokens((shape.batch, position + steps), model.config.vocab_size, device, 0)

    def run() -> float:
        model.eval()
        with torch.no_grad(), _autocast(entry, device), packed_linears(model, entry.packed):
            cache = model.new_cache()
            model(tok[:, :position], cache=cache)
            total = 0.0
            for i in range(position, position + steps):
                sync(device)
                start = time.perf_counter()
                model(tok[:, i : i + 1], cache=cache)
                sync(device)
                total += time.perf_counter() - start
        model.train()
        return total

    return Workload(f"decode@{position}", "tokens", shape.batch * steps, run)


def _core(entry: Entry, shape: Shape, device: torch.device) -> Workload:
    """Seconds spent inside the shared core layers while generating ``new_tokens`` with the
    cache: the amortised per-token core cost (SpiralFormer's coarse levels run their core
    once per chunk, not once per token)."""
    model = entry.model
    core = getattr(model.decoder, "core", None)
    if core is None or len(core) == 0:
        raise ValueError(f"{entry.name} has no shared core to time")
    prompt = _tokens((shape.batch, shape.prompt), model.config.vocab_size, device, 0)
    clock = {"start": 0.0, "total": 0.0, "calls": 0}

    def pre(_module, _args):
        sync(device)
        clock["start"] = time.perf_counter()

    def post(_module, _args, _out):
        sync(device)
        clock["total"] += time.perf_counter() - clock["start"]
        clock["calls"] += 1

    def run() -> float:
        handles = [layer.register_forward_pre_hook(pre) for layer in core]
        handles += [layer.register_forward_hook(post) for layer in core]
        try:
            clock["total"], clock["calls"] = 0.0, 0
            model.eval()
            with torch.no_grad(), _autocast(entry, device), packed_linears(model, entry.packed):
                cache = model.new_cache()
                model(prompt, cache=cache)
                clock["total"], clock["calls"] = 0.0, 0  # only the generated tokens count
                last = prompt[:, -1:]
                for _ in range(shape.new_tokens):
                    last = model(last, cache=cache)[:, -1].argmax(-1, keepdim=True)
        finally:
            for h in handles:
                h.remove()
            model.train()
        run.calls_per_token = clock["calls"] / shape.new_tokens
        return clock["total"]

    run.calls_per_token = None
    return Workload("core", "new tokens", shape.batch * shape.new_tokens, run)


def _infer(entry: Entry, shape: Shape, device: torch.device) -> Workload:
    cfg = entry.config
    g = torch.Generator().manual_seed(0)
    images = torch.randn(shape.batch, cfg.in_channels, cfg.image_size, cfg.image_size, generator=g).to(device)
    return _inference("infer", "images", shape.batch, entry, device, lambda: entry.model(images))

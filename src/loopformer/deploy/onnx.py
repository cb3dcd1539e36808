"""Translation models as ONNX graphs, decoded by onnxruntime with loopformer's searches.

The model is unrolled first (:func:`loopformer.models.unroll.unroll`, level signals
folded into the weights), then written as three graphs: ``encoder.onnx`` (source ids and
padding -> encoder output), ``cross_kv.onnx`` (encoder output -> every decoder layer's
cross-attention keys and values, run once per batch) and ``decoder.onnx``, one decoding
step whose self-attention keys and values go in and come out as tensors (``past_k_i`` /
``past_v_i``, one pair per unrolled decoder layer), so a step costs what a cached step
costs in loopformer.
:class:`OnnxTranslator` wraps the two sessions in the interface loopformer's greedy and
beam search use (``encode``, ``decode``, ``new_cache``), so the searches are the very
same code.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import CheckpointError
from ..models.unroll import unroll
from .ctranslate2 import check_expressible

META = "loopformer_onnx.json"
OPSET = 17
# 2: cross-attention keys/values come from their own graph (cross_kv.onnx), once per batch
FORMAT = 2


class DecoderStep(nn.Module):
    """One decoding step of an unrolled post-norm decoder, its cache as tensors: each
    layer's cross-attention keys/values (computed once by :class:`CrossKV`) and past
    self-attention keys/values go in, the extended self-attention ones come out."""

    def __init__(self, flat: nn.Module) -> None:
        super().__init__()
        self.flat = flat
        self.heads = flat.config.n_heads

    def forward(self, tokens: Tensor, position: Tensor, memory_keep: Tensor, *state: Tensor):
        flat, h = self.flat, self.flat.tgt_input.embed(tokens)
        layers = len(flat.decoder.prelude)
        cross, past = state[: 2 * layers], state[2 * layers:]
        h = h + flat.tgt_input.positions.table[position].to(h.dtype)[None]
        keep = memory_keep[:, None, None, :]
        present = []
        for i, layer in enumerate(flat.decoder.prelude):
            norms = list(layer.norms)
            q, k, v = (self._heads(t) for t in layer.self_attn.qkv_proj(h).chunk(3, -1))
            k, v = torch.cat([past[2 * i], k], 2), torch.cat([past[2 * i + 1], v], 2)
            present += [k, v]
            h = norms[0](h + layer.self_attn.out_proj(self._merge(F.scaled_dot_product_attention(q, k, v))))
            ca = layer.cross_attn
            c = F.scaled_dot_product_attention(self._heads(ca.q_proj(h)), cross[2 * i], cross[2 * i + 1],
                                               attn_mask=keep)
            h = norms[1](h + ca.out_proj(self._merge(c)))
            h = norms[2](h + layer.ffn(h))
        return (flat.output(h)[:, -1], *present)

    def _heads(self, x: Tensor) -> Tensor:
        b, t, d = x.shape
        return x.view(b, t, self.heads, d // self.heads).transpose(1, 2)

    @staticmethod
    def _merge(x: Tensor) -> Tensor:
        b, h, t, hd = x.shape
        return x.transpose(1, 2).reshape(b, t, h * hd)


class CrossKV(nn.Module):
    """Every decoder layer's cross-attention keys and values of the encoder output,
    computed once per batch instead of at every step."""

    def __init__(self, flat: nn.Module) -> None:
        super().__init__()
        self.flat = flat
        self.heads = flat.config.n_heads

    def forward(self, memory: Tensor):
        b, s, d = memory.shape
        out = []
        for layer in self.flat.decoder.prelude:
            k, v = layer.cross_attn.kv_proj(memory).chunk(2, -1)
            out += [t.reshape(b, s, self.heads, d // self.heads).transpose(1, 2) for t in (k, v)]
        return tuple(out)


class Encoder(nn.Module):
    def __init__(self, flat: nn.Module) -> None:
        super().__init__()
        self.flat = flat

    def forward(self, src: Tensor, src_padding: Tensor) -> Tensor:
        return self.flat.encode(src, src_padding)[0]


def export_onnx(model: nn.Module, task, out: str | Path, folder: str | Path | None = None) -> Path:
    """Write ``encoder.onnx``, ``decoder.onnx``, their settings and the run's tokenizer."""
    check_expressible(model)
    flat = unroll(model).float().eval()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = flat.config
    layers, heads, d = len(flat.decoder.prelude), cfg.n_heads, cfg.d_model
    src = torch.tensor([[5, 6, 7, 2], [5, 6, 2, 0]])
    with torch.no_grad():
        _export(Encoder(flat), (src, src.eq(0)), out / "encoder.onnx", ["src", "src_padding"], ["memory"],
                {"src": {0: "batch", 1: "src_len"}, "src_padding": {0: "batch", 1: "src_len"},
                 "memory": {0: "batch", 1: "src_len"}})
        memory = flat.encode(src, src.eq(0))[0]
        cross_names = [f"cross_{kv}_{i}" for i in range(layers) for kv in "kv"]
        _export(CrossKV(flat), (memory,), out / "cross_kv.onnx", ["memory"], cross_names,
                {"memory": {0: "batch", 1: "src_len"}, **{n: {0: "batch", 2: "src_len"} for n in cross_names}})
        cross = CrossKV(flat)(memory)
        past = [torch.zeros(2, heads, 3, d // heads) for _ in range(2 * layers)]
        names = [f"past_{kv}_{i}" for i in range(layers) for kv in "kv"]
        outs = [f"present_{kv}_{i}" for i in range(layers) for kv in "kv"]
        axes = {"tokens": {0: "batch"}, "memory_keep": {0: "batch", 1: "src_len"}, "logits": {0: "batch"},
                **{n: {0: "batch", 2: "src_len"} for n in cross_names},
                **{n: {0: "batch", 2: "past_len"} for n in names}, **{n: {0: "batch", 2: "len"} for n in outs}}
        _export(DecoderStep(flat), (torch.tensor([[1], [1]]), torch.tensor([3]), src.ne(0), *cross, *past),
                out / "decoder.onnx", ["tokens", "position", "memory_keep", *cross_names, *names], ["logits", *outs],
                axes)
    meta = {"format": FORMAT, "layers": layers, "heads": heads, "d_model": d, "max_len": cfg.max_len,
            "pad_id": cfg.pad_id, "vocab_size": cfg.target_vocab_size}
    (out / META).write_text(json.dumps(meta, indent=1))
    if folder is not None:
        for name in ("tokenizer.json", "tokenizer-target.json", "task.json"):
            if (Path(folder) / name).is_file():
                shutil.copyfile(Path(folder) / name, out / name)
    return out


def _export(module, args, path, inputs, outputs, axes) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
        torch.onnx.export(module, args, str(path), input_names=inputs, output_names=outputs, dynamic_axes=axes,
                          opset_version=OPSET, dynamo=False)


class OnnxCache:
    """The decoder's state between steps: past self-attention keys/values (rows follow the
    search's reordering) and the cross-attention keys/values with their padding mask."""

    def __init__(self) -> None:
        self.past: list[Tensor] = []
        self.cross: list[Tensor] = []
        self.keep: Tensor | None = None  # (rows of cross, source length), True = a real token
        self.length = 0

    def reorder(self, index: Tensor, fixed: bool | Tensor = True) -> None:
        """As :meth:`loopformer.layers.cache.KVCache.reorder`. Cross-attention entries held
        one row per sentence follow ``fixed``; once widened to the beams' rows they follow
        ``index`` wherever ``fixed`` asks them to move at all."""
        rows = self.past[0].shape[0] if self.past else None
        self.past = [p.index_select(0, index) for p in self.past]
        if not self.cross or fixed is False:
            return
        pick = index if fixed is True or self.cross[0].shape[0] == rows else fixed
        self.cross = [c.index_select(0, pick) for c in self.cross]
        self.keep = self.keep.index_select(0, pick)

    def widen(self, rows: int) -> None:
        """Repeat each sentence's cross-attention row for its ``rows // sentences`` beams
        (once: the beams then keep these rows)."""
        group = rows // self.cross[0].shape[0]
        self.cross = [c.repeat_interleave(group, 0) for c in self.cross]
        self.keep = self.keep.repeat_interleave(group, 0)


class OnnxTranslator(nn.Module):
    """An exported folder run by onnxruntime behind loopformer's model interface."""

    def __init__(self, folder: str | Path, threads: int | None = None) -> None:
        super().__init__()
        import onnxruntime as ort

        folder = Path(folder)
        if not (folder / META).is_file():
            raise CheckpointError(f"{folder} is not a loopformer ONNX export ({META} is missing)")
        self.meta = json.loads((folder / META).read_text())
        if self.meta.get("format", 1) != FORMAT or not (folder / "cross_kv.onnx").is_file():
            raise CheckpointError(f"{folder} was exported by another loopformer version (ONNX format "
                                  f"{self.meta.get('format', 1)}, this one reads {FORMAT}): export it again")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        self.encoder, self.cross_kv, self.decoder = (
            ort.InferenceSession(str(folder / f"{name}.onnx"), opts, providers=["CPUExecutionProvider"])
            for name in ("encoder", "cross_kv", "decoder"))

    def encode(self, src: Tensor, src_padding_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        pad = src.eq(self.meta["pad_id"]) if src_padding_mask is None else src_padding_mask
        [memory] = self.encoder.run(None, {"src": src.numpy(), "src_padding": pad.numpy()})
        return torch.from_numpy(memory), pad

    def new_cache(self) -> OnnxCache:
        return OnnxCache()

    def decode(self, tgt: Tensor, memory: Tensor, memory_padding_mask: Tensor, cache: OnnxCache) -> Tensor:
        m = self.meta
        if not cache.cross:  # the first step: the encoder output's keys/values, once
            found = self.cross_kv.run(None, {"memory": memory.contiguous().numpy()})
            cache.cross = [torch.from_numpy(t) for t in found]
            cache.keep = ~memory_padding_mask
        if cache.cross[0].shape[0] != tgt.shape[0]:  # beam search's first widened step
            cache.widen(tgt.shape[0])
        if not cache.past:
            hd = m["d_model"] // m["heads"]
            cache.past = [torch.zeros(tgt.shape[0], m["heads"], 0, hd) for _ in range(2 * m["layers"])]
        feed = {"tokens": tgt.numpy(), "position": torch.tensor([cache.length]).numpy(),
                "memory_keep": cache.keep.numpy()}
        for i in range(m["layers"]):
            for j, kv in enumerate("kv"):
                feed[f"cross_{kv}_{i}"] = cache.cross[2 * i + j].contiguous().numpy()
                feed[f"past_{kv}_{i}"] = cache.past[2 * i + j].contiguous().numpy()
        logits, *present = self.decoder.run(None, feed)
        cache.past = [torch.from_numpy(p) for p in present]
        cache.length += 1
        return torch.from_numpy(logits)[:, None]

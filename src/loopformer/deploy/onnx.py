"""Translation models as ONNX graphs, decoded by onnxruntime with loopformer's searches.

The model is unrolled first (:func:`loopformer.models.unroll.unroll`, level signals
folded into the weights), then written as two graphs: ``encoder.onnx`` (source ids and
padding -> encoder output) and ``decoder.onnx``, one decoding step whose self-attention
keys and values go in and come out as tensors (``past_k_i`` / ``past_v_i``, one pair per
unrolled decoder layer), so a step costs what a cached step costs in loopformer.
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


class DecoderStep(nn.Module):
    """One decoding step of an unrolled post-norm decoder, its cache as tensors."""

    def __init__(self, flat: nn.Module) -> None:
        super().__init__()
        self.flat = flat
        self.heads = flat.config.n_heads

    def forward(self, tokens: Tensor, position: Tensor, memory: Tensor, memory_keep: Tensor, *past: Tensor):
        flat, h = self.flat, self.flat.tgt_input.embed(tokens)
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
            ck, cv = (self._heads(t) for t in ca.kv_proj(memory).chunk(2, -1))
            c = F.scaled_dot_product_attention(self._heads(ca.q_proj(h)), ck, cv, attn_mask=keep)
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
        past = [torch.zeros(2, heads, 3, d // heads) for _ in range(2 * layers)]
        names = [f"past_{kv}_{i}" for i in range(layers) for kv in "kv"]
        outs = [f"present_{kv}_{i}" for i in range(layers) for kv in "kv"]
        axes = {"tokens": {0: "batch"}, "memory": {0: "batch", 1: "src_len"},
                "memory_keep": {0: "batch", 1: "src_len"}, "logits": {0: "batch"},
                **{n: {0: "batch", 2: "past_len"} for n in names}, **{n: {0: "batch", 2: "len"} for n in outs}}
        _export(DecoderStep(flat), (torch.tensor([[1], [1]]), torch.tensor([3]), memory, src.ne(0), *past),
                out / "decoder.onnx", ["tokens", "position", "memory", "memory_keep", *names], ["logits", *outs], axes)
    meta = {"layers": layers, "heads": heads, "d_model": d, "max_len": cfg.max_len, "pad_id": cfg.pad_id,
            "vocab_size": cfg.target_vocab_size}
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
    """The decoder's past keys and values between steps; rows follow beam reordering."""

    def __init__(self, past: list[Tensor]) -> None:
        self.past = past
        self.length = 0

    def reorder(self, index: Tensor, fixed: bool = True) -> None:
        self.past = [p.index_select(0, index) for p in self.past]


class OnnxTranslator(nn.Module):
    """An exported folder run by onnxruntime behind loopformer's model interface."""

    def __init__(self, folder: str | Path, threads: int | None = None) -> None:
        super().__init__()
        import onnxruntime as ort

        folder = Path(folder)
        if not (folder / META).is_file():
            raise CheckpointError(f"{folder} is not a loopformer ONNX export ({META} is missing)")
        self.meta = json.loads((folder / META).read_text())
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        self.encoder = ort.InferenceSession(str(folder / "encoder.onnx"), opts, providers=["CPUExecutionProvider"])
        self.decoder = ort.InferenceSession(str(folder / "decoder.onnx"), opts, providers=["CPUExecutionProvider"])

    def encode(self, src: Tensor, src_padding_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        pad = src.eq(self.meta["pad_id"]) if src_padding_mask is None else src_padding_mask
        [memory] = self.encoder.run(None, {"src": src.numpy(), "src_padding": pad.numpy()})
        return torch.from_numpy(memory), pad

    def new_cache(self) -> OnnxCache:
        return OnnxCache([])

    def decode(self, tgt: Tensor, memory: Tensor, memory_padding_mask: Tensor, cache: OnnxCache) -> Tensor:
        m = self.meta
        if memory.shape[0] != tgt.shape[0]:  # beam search passes one encoder row per sentence
            rows = torch.arange(memory.shape[0]).repeat_interleave(tgt.shape[0] // memory.shape[0])
            memory, memory_padding_mask = memory.index_select(0, rows), memory_padding_mask.index_select(0, rows)
        if not cache.past:
            hd = m["d_model"] // m["heads"]
            cache.past = [torch.zeros(tgt.shape[0], m["heads"], 0, hd) for _ in range(2 * m["layers"])]
        feed = {"tokens": tgt.numpy(), "position": torch.tensor([cache.length]).numpy(),
                "memory": memory.contiguous().numpy(), "memory_keep": (~memory_padding_mask).numpy()}
        feed.update({f"past_{kv}_{i}": cache.past[2 * i + j].contiguous().numpy()
                     for i in range(m["layers"]) for j, kv in enumerate("kv")})
        logits, *present = self.decoder.run(None, feed)
        cache.past = [torch.from_numpy(p) for p in present]
        cache.length += 1
        return torch.from_numpy(logits)[:, None]

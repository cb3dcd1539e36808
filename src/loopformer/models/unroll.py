"""A looped model as the plain Transformer it computes: one layer per application.

Every application of a shared layer becomes a layer of its own carrying that level's
parameters: its LayerNorms, and its level signals folded into the projection weights.
RingFormer's signals are linear maps of an input, ``s(x) = x D^T U``; in a post-norm
layer that input is the very tensor the projection (or the FFN) reads, so
``W x + s(x) = (W + U^T D) x`` exactly, and likewise for the FFN input
``up(x + s(x)) = (W_up (I + D^T U)^T) x``. The folded weights are read off the model
itself, by feeding the identity matrix through each application's hooks, so any
combination of signal kinds and placements folds the same way.

What does not fold: the Universal timing signal (added per position and level), a
pre-norm layer whose signals read the raw residual while its projections read the
normalised one (the RingFormer ViT), static signals (they would need biases), spiral
schedules and state updates. Those are refused with the reason.

The unrolled model holds ``loops x core`` layers: memory grows by that factor, while a
forward skips the signal computation (``loopformer export`` uses this; as an inference
setting it trades memory for a little speed).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..config import ModelConfig, inapplicable_fields
from ..errors import ConfigError
from ..layers.block import TransformerLayer
from ..layers.hooks import NO_HOOKS, LayerHooks
from .depth import looped_stacks
from .levels import LevelAdapter
from .schedules import FullResolution


def unroll(model: nn.Module) -> nn.Module:
    """The vanilla model (same class, ``arch=vanilla``) that computes what ``model``
    computes at its trained depth; weights are copies, ``model`` is left as it was."""
    from . import build_model

    stacks = {name: _applications(stack, name) for name, stack in model.named_children()
              if stack in looped_stacks(model) or _is_stack(stack)}
    cfg = unrolled_config(model.config, {name: len(apps) for name, apps in stacks.items()})
    with torch.device("cpu"):
        flat = build_model(cfg)
    flat.load_state_dict({k: v for k, v in model.state_dict().items() if k.split(".")[0] not in stacks},
                         strict=False)
    with torch.no_grad():
        for name, apps in stacks.items():
            for target, (layer, hooks) in zip(getattr(flat, name).prelude, apps):
                fold_layer(target, layer, hooks, model.config.norm_style)
    return flat.to(next(model.parameters()).device).eval()


def _is_stack(module: nn.Module) -> bool:
    from .stack import LoopedStack

    return isinstance(module, LoopedStack)


def unrolled_config(cfg: ModelConfig, depths: dict[str, int]) -> ModelConfig:
    data = {**cfg.to_dict(), "arch": "vanilla", "shared_sublayer_norm": False, "n_prelude": 0, "n_coda": 0,
            "state_update": "none", "level_norm_eps": None, "n_layers": depths.get("encoder", depths.get("decoder"))}
    if cfg.task == "seq2seq":
        data["n_dec_layers"] = depths["decoder"]
    probe = ModelConfig.from_dict({**data, **{n: v for n, v in ModelConfig().to_dict().items()
                                              if n in inapplicable_fields(_loose(data))}})
    return probe


def _loose(data: dict) -> ModelConfig:
    """A config object read without validation (to ask which fields do not apply)."""
    cfg = object.__new__(ModelConfig)
    for name, value in data.items():
        setattr(cfg, name, value)
    return cfg


def _applications(stack, name: str) -> list[tuple[TransformerLayer, LayerHooks]]:
    """Each layer application of a stack at its trained depth, with its hooks."""
    if not isinstance(stack.schedule, FullResolution) or stack.state is not None:
        raise ConfigError(f"the {name} has a spiral schedule or a state update: it does not unroll into layers")
    if type(stack.adapter).enter is not LevelAdapter.enter:
        raise ConfigError(f"the {name} adds a per-level input signal (Universal timing): it does not fold into weights")
    apps = [(layer, NO_HOOKS) for layer in stack.prelude]
    for level in stack.plan.levels(stack.n_loops):
        apps += [(layer, stack.adapter.hooks(level, j)) for j, layer in enumerate(stack.core)]
    return apps + [(layer, NO_HOOKS) for layer in stack.coda]


def fold_layer(target: TransformerLayer, layer: TransformerLayer, hooks: LayerHooks, norm_style: str) -> None:
    """Write into ``target`` (a plain layer) the weights of ``layer`` applied with ``hooks``."""
    for dst, src in zip(target.norms, _norms(layer, hooks)):
        dst.load_state_dict(src.state_dict())
        dst.eps = src.eps  # per-level norms may have their own epsilon
    sa = layer.self_attn
    if norm_style == "pre" and type(hooks).qkv_split is not LayerHooks.qkv_split:
        _refuse_raw_signals(hooks, sa)
    split = lambda x: hooks.qkv_split(x, x, sa)  # noqa: E731
    _set_linear(target.self_attn.qkv_proj, _affine(lambda x: _split(sa.qkv_proj(x), split(x), 3), sa.qkv_proj))
    target.self_attn.out_proj.load_state_dict(sa.out_proj.state_dict())
    if layer.cross_attn is not None:
        ca = layer.cross_attn
        _set_linear(target.cross_attn.q_proj, _affine(lambda x: _split(ca.q_proj(x), hooks.cross_q_split(x), 1),
                                                      ca.q_proj))
        _set_linear(target.cross_attn.kv_proj, _affine(lambda x: _split(ca.kv_proj(x), hooks.cross_kv_split(x), 2),
                                                       ca.kv_proj))
        target.cross_attn.out_proj.load_state_dict(ca.out_proj.state_dict())
    if layer.ffn is not None:
        target.ffn.load_state_dict(layer.ffn.state_dict())
        if norm_style == "post":
            _set_linear(target.ffn.up, _affine(lambda x: layer.ffn.up(hooks.ffn_input(x, None)), layer.ffn.up))
        elif type(hooks).ffn_input is not LayerHooks.ffn_input:
            raise ConfigError("a pre-norm layer with an FFN signal does not fold into weights")


def _norms(layer: TransformerLayer, hooks: LayerHooks) -> list[nn.Module]:
    norms = list(hooks.norms(layer.norms))
    return norms * layer.spec.n_sublayers if len(norms) == 1 else norms


def _split(proj: Tensor, split, parts: int) -> Tensor:
    """A fused projection after its hooks' additions, fused again."""
    return torch.cat(split(proj) if split is not None else proj.chunk(parts, dim=-1), dim=-1)


def _affine(fn, like: nn.Linear) -> tuple[Tensor, Tensor]:
    """(weight, bias) of the affine map ``fn`` (d_in -> d_out), read off with the identity."""
    d = like.in_features
    eye = torch.eye(d, dtype=like.weight.dtype, device=like.weight.device)
    zero = fn(torch.zeros(1, d, dtype=eye.dtype, device=eye.device))[0]
    return (fn(eye) - zero).T.contiguous(), zero


def _set_linear(target: nn.Linear, weight_bias: tuple[Tensor, Tensor]) -> None:
    weight, bias = weight_bias
    target.weight.copy_(weight)
    if target.bias is not None:
        target.bias.copy_(bias)
    elif bias.abs().max() > 0:
        raise ConfigError("static level signals fold into biases, which a bias-free model does not have")


def _refuse_raw_signals(hooks: LayerHooks, sa) -> None:
    """A pre-norm signal computed from the raw residual is not a map of the normalised
    input the projection reads: it cannot be folded."""
    d = sa.qkv_proj.in_features
    eye = torch.eye(d, dtype=sa.qkv_proj.weight.dtype, device=sa.qkv_proj.weight.device)
    proj = sa.qkv_proj(eye)
    split = hooks.qkv_split(torch.zeros_like(eye), eye, sa)
    if split is not None and not torch.equal(_split(proj, split, 3), _split(proj, hooks.qkv_split(eye, eye, sa), 3)):
        raise ConfigError("pre-norm signals computed from the raw residual (signal_input=raw) do not fold into "
                          "the projections, which read the normalised input")

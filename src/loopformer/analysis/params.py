"""Parameter accounting that does not double count shared weights.

Each unique parameter is counted once and put in one group: input embeddings, output
head, shared core (applied ``n_loops`` times), per-level (signals, per-level norms),
unshared layers (vanilla layers, prelude/coda) or other (final norms). "Effective"
multiplies each shared weight by the number of times a forward pass uses it.
Non-embedding = total - embeddings - output head (the convention of the RingFormer
paper's translation table).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import nn

from ..models.observers import Observable


@dataclass
class ParameterCount:
    total: int
    embedding: int
    head: int
    non_embedding: int
    shared: int
    per_level: int
    layers: int
    other: int
    effective: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> ParameterCount:
    emb_prefixes = tuple(getattr(model, "embedding_prefixes", ()))
    head_prefixes = tuple(getattr(model, "head_prefixes", ()))
    loops = {(name + "." if name else ""): m.n_loops for name, m in model.named_modules() if isinstance(m, Observable)}
    groups = dict(embedding=0, head=0, shared=0, per_level=0, layers=0, other=0)
    effective = 0
    aliases: dict[int, int] = {}  # an FFN shared by several unshared layers (One Wide FFN) runs once per layer
    for _, p in model.named_parameters(remove_duplicate=False):
        aliases[id(p)] = aliases.get(id(p), 0) + 1
    for name, p in model.named_parameters():  # yields each tied/shared tensor once
        if trainable_only and not p.requires_grad:
            continue
        n = p.numel()
        uses = 1
        if name.startswith(emb_prefixes):
            group = "embedding"
        elif name.startswith(head_prefixes):
            group = "head"
        else:
            group = "other"
            for prefix, n_loops in loops.items():
                if name.startswith(prefix + "core."):
                    group, uses = "shared", n_loops
                elif name.startswith((prefix + "levels.", prefix + "adapter.")):  # a spiral's own per-level parts
                    group = "per_level"
                elif name.startswith((prefix + "prelude.", prefix + "coda.")):
                    group, uses = "layers", aliases[id(p)]
        groups[group] += n
        effective += n * uses
    total = sum(groups.values())
    return ParameterCount(
        total=total,
        non_embedding=total - groups["embedding"] - groups["head"],
        effective=effective,
        **groups,
    )


def format_parameter_table(count: ParameterCount, title: str = "") -> str:
    rows = [
        ("embeddings (input)", count.embedding),
        ("output layer / head", count.head),
        ("shared core layers", count.shared),
        ("per-level (signals, norms)", count.per_level),
        ("unshared layers", count.layers),
        ("other (final norms)", count.other),
        ("non-embedding", count.non_embedding),
        ("total (unique, trainable)", count.total),
        ("effective (shared x uses)", count.effective),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [title] if title else []
    lines.append(f"{'group':<{width}}  {'parameters':>14}")
    lines.append("-" * (width + 16))
    for label, value in rows:
        lines.append(f"{label:<{width}}  {value:>14,}")
    return "\n".join(lines)


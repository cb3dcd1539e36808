import os
from pathlib import Path

import pytest
import torch

# Tests never touch the network: data comes from the offline mirror beside the project.
_MIRROR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if _MIRROR.is_dir():
    os.environ.setdefault("LOOPFORMER_DATA_MIRROR", str(_MIRROR))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def tiny(arch: str, task: str, **kw):
    """A tiny model of a family; ``task`` is mt, lm or vit."""
    from loopformer import create_model

    if task == "vit":
        name = {"vanilla": "vit-tiny", "universal": "uit-tiny"}.get(arch, f"{arch}-vit-tiny")
        base = dict(d_model=32, n_heads=2, d_ff=64, n_layers=3, image_size=8, patch_size=4)
    else:
        name = f"{arch}-{task}-small"
        base = dict(d_model=32, n_heads=2, d_ff=64, n_layers=3, vocab_size=40)
    base.update(kw)
    return create_model(name, **base)


def randomize_signals(model, std: float = 0.3) -> None:
    """Signals start at exactly zero; give them values so that tests can see them act."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("_up", "_static")):
                p.normal_(std=std)

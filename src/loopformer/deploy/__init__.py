"""Deployment exports (``pip install "loopformer[deploy]"``): translation models as
CTranslate2 models and as ONNX graphs. Each backend module imports its runtime only
when used."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from ..tasks.registry import load_checkpoint


def export_model(target: str, checkpoint: str | Path, out: str | Path, quantization: str | None = None) -> Path:
    """Export a checkpoint folder for ``target`` (``ctranslate2`` or ``onnx``)."""
    model, task, kind = load_checkpoint(checkpoint)
    if kind != "translation":
        raise ConfigError(f"{checkpoint} is a {kind} checkpoint; {target} export takes translation checkpoints")
    if target == "ctranslate2":
        from .ctranslate2 import export_ctranslate2

        return export_ctranslate2(model, task, out, quantization)
    from .onnx import export_onnx

    return export_onnx(model, task, out, folder=checkpoint)

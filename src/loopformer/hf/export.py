"""Checkpoint folders to Hugging Face folders and back.

``export_hf`` writes what ``from_pretrained`` reads: ``config.json`` (a
:class:`~loopformer.hf.config.LoopformerConfig` with ``auto_map``), the weights as
``model.safetensors``, a ``PreTrainedTokenizerFast`` (text models) and two small code
files, so ``trust_remote_code=True`` loads the folder without ``import loopformer.hf``
(the code files import the ``loopformer`` package, which must be installed, as a hub
model that needs ``einops`` needs it installed). The run's own task and tokenizer files
travel in ``loopformer/``, so ``import_hf`` gives back a checkpoint folder that
``loopformer eval`` / ``translate`` / ``generate`` read as before.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from ..checkpoint import save_model, write_manifest
from ..data.tokenizer import BOS, EOS, PAD
from ..errors import CheckpointError
from ..tasks.registry import load_checkpoint
from .config import LoopformerConfig
from .modeling import HF_CLASSES
from .tokenizer import hf_tokenizer

TASK_DIR = "loopformer"  # the run's task and tokenizer files, for import_hf
TASK_FILES = ("task.json", "tokenizer.json", "tokenizer-target.json", "chars.json")
AUTO_CLASSES = {"decoder": "AutoModelForCausalLM", "seq2seq": "AutoModelForSeq2SeqLM",
                "vit": "AutoModelForImageClassification"}
REMOTE_CONFIG = '''"""Remote code of a loopformer export: the classes live in the loopformer package
(``pip install "loopformer[hf]"``); this file only names them for ``trust_remote_code``."""

from loopformer.hf.config import LoopformerConfig

__all__ = ["LoopformerConfig"]
'''
REMOTE_MODELING = '''"""Remote code of a loopformer export (see configuration_loopformer.py)."""

from loopformer.hf.modeling import LoopformerForCausalLM, LoopformerForImageClassification, LoopformerForSeq2SeqLM

__all__ = ["LoopformerForCausalLM", "LoopformerForImageClassification", "LoopformerForSeq2SeqLM"]
'''


def export_hf(checkpoint: str | Path, out: str | Path) -> Path:
    """Write the Hugging Face folder of a loopformer checkpoint folder; returns ``out``."""
    model, task, _ = load_checkpoint(checkpoint)
    config = model.config
    kind = config.task
    hf_config = LoopformerConfig(loopformer=config.to_dict(), **_hf_fields(kind, task))
    hf_config.auto_map = {"AutoConfig": "configuration_loopformer.LoopformerConfig",
                          AUTO_CLASSES[kind]: f"modeling_loopformer.{HF_CLASSES[kind].__name__}"}
    hf_model = HF_CLASSES[kind](hf_config)
    hf_model.net.load_state_dict(model.state_dict())
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    hf_model.save_pretrained(out)
    if kind != "vit":
        hf_tokenizer(task.tok, kind).save_pretrained(out)
    (out / "configuration_loopformer.py").write_text(REMOTE_CONFIG)
    (out / "modeling_loopformer.py").write_text(REMOTE_MODELING)
    _copy_task_files(Path(checkpoint), out / TASK_DIR)
    return out


def import_hf(folder: str | Path, out: str | Path) -> Path:
    """A loopformer checkpoint folder from an exported (possibly fine-tuned) HF folder."""
    folder = Path(folder)
    try:
        hf_config = LoopformerConfig.from_pretrained(folder)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{folder} is not a Hugging Face folder: {str(exc).splitlines()[0]}") from None
    if hf_config.model_type != "loopformer" or not hf_config.loopformer:
        raise CheckpointError(f"{folder}/config.json is not a loopformer export (model_type {hf_config.model_type!r})")
    hf_model = HF_CLASSES[hf_config.kind].from_pretrained(folder, config=hf_config, dtype=torch.float32)
    save_model(hf_model.net, out)
    task_files = folder / TASK_DIR
    if task_files.is_dir():
        _copy_task_files(task_files, Path(out))
    write_manifest(out)
    return Path(out)


def _hf_fields(kind: str, task) -> dict:
    """HF config fields: special ids for text, class names for images."""
    if kind == "seq2seq":
        return dict(pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS, decoder_start_token_id=BOS)
    if kind == "vit":
        names = list(task.classes)
        return dict(id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)})
    specials = getattr(task.tok, "backend", None) is not None  # byte-level BPE has <pad> <bos> <eos>
    return dict(pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS) if specials else dict(pad_token_id=0)


def _copy_task_files(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for name in TASK_FILES:
        if (src / name).is_file():
            shutil.copyfile(src / name, dst / name)

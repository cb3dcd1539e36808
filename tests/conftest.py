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


def tiny_translator(eos: int = 2):
    """A tiny RingFormer translation model with active signals (cross-attention too) whose
    hypotheses end at different steps: what the search tests decode with."""
    m = tiny("ringformer", "mt", cross_attention_signals=True).eval()
    randomize_signals(m)
    with torch.no_grad():
        m.output.bias[eos] += 2.0
    return m


def randomize_signals(model, std: float = 0.3) -> None:
    """Signals start at exactly zero; give them values so that tests can see them act."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("_up", "_static")):
                p.normal_(std=std)


# tiny trained checkpoints of each task (3 steps), shared by the integration tests
LM_TEXT = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n" * 40
LM = ["d_model=32", "n_heads=2", "d_ff=64", "context=32", "batch_size=4", "eval_windows=4", "progress=false",
      "log_every=1", "eval_every=100", "signal_rank=4", "tensorboard=off", "max_steps=3"]
MT = ["d_model=32", "n_heads=2", "d_ff=64", "n_layers=2", "signal_rank=4", "max_steps=2", "batch_tokens=512",
      "bpe_vocab_size=400", "val_bleu_sentences=4", "test_splits=", "progress=false", "log_every=1"]
VIT = ["d_model=32", "n_heads=2", "d_ff=64", "signal_rank=4", "progress=false", "log_every=1", "eval_batch_size=1000",
       "max_steps=2", "n_layers=2", "eval_every=100"]


@pytest.fixture(scope="session")
def lm_ckpt(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf-lm")
    (root / "corpus.txt").write_text(LM_TEXT)
    assert _cli_main(["train", "language", "--model", "ringformer", "--preset", "lm-char", "--out", str(root / "run"),
                 f"dataset={root / 'corpus.txt'}"] + LM) == 0
    return root / "run" / "best"


@pytest.fixture(scope="session")
def mt_ckpt(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf-mt")
    assert _cli_main(["train", "translation", "--model", "ringformer", "--preset", "mt-small", "--out",
                 str(root / "run")] + MT) == 0
    return root / "run" / "best"


@pytest.fixture(scope="session")
def vit_ckpt(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf-vit")
    assert _cli_main(["train", "vision", "--model", "ringformer", "--preset", "vit-tiny", "--out", str(root / "run")]
                + VIT) == 0
    return root / "run" / "best"


def _cli_main(argv):
    from loopformer.cli import main

    return main(argv)


# the tiny checkpoints exported as Hugging Face folders, once per test session
def _export(ckpt, tmp_path_factory, name):
    pytest.importorskip("transformers")
    from loopformer.hf import export_hf

    return export_hf(ckpt, tmp_path_factory.mktemp(name) / "hf")


@pytest.fixture(scope="session")
def lm_hf(lm_ckpt, tmp_path_factory):
    return _export(lm_ckpt, tmp_path_factory, "lm-export")


@pytest.fixture(scope="session")
def mt_hf(mt_ckpt, tmp_path_factory):
    return _export(mt_ckpt, tmp_path_factory, "mt-export")


@pytest.fixture(scope="session")
def vit_hf(vit_ckpt, tmp_path_factory):
    return _export(vit_ckpt, tmp_path_factory, "vit-export")

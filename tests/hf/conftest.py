"""The tiny checkpoints of tests/conftest.py, exported once per test session."""

import pytest


def export(ckpt, tmp_path_factory, name):
    pytest.importorskip("transformers")
    from loopformer.hf import export_hf

    return export_hf(ckpt, tmp_path_factory.mktemp(name) / "hf")


@pytest.fixture(scope="session")
def lm_hf(lm_ckpt, tmp_path_factory):
    return export(lm_ckpt, tmp_path_factory, "lm-export")


@pytest.fixture(scope="session")
def mt_hf(mt_ckpt, tmp_path_factory):
    return export(mt_ckpt, tmp_path_factory, "mt-export")


@pytest.fixture(scope="session")
def vit_hf(vit_ckpt, tmp_path_factory):
    return export(vit_ckpt, tmp_path_factory, "vit-export")

"""`loopformer analyze` on small checkpoints of each task: tables, JSON, PNG figures."""

import json

import numpy as np
import pytest
import torch

from loopformer.analysis.hooks import capture
from loopformer.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def mt_pair(tmp_path_factory):
    from loopformer.data.multi30k import load_multi30k
    from loopformer.data.tokenizer import BPETokenizer
    from loopformer.models import build_model
    from loopformer.registry import get_config
    from loopformer.tasks.translation import TranslationConfig, TranslationTask
    from loopformer.train import TrainConfig, Trainer

    root = tmp_path_factory.mktemp("mt")
    src, tgt = load_multi30k("train")
    tok = BPETokenizer.train(src[:2000] + tgt[:2000], vocab_size=400)
    task = TranslationTask(TranslationConfig(batch_tokens=300, val_bleu_sentences=2), tok,
                           splits={"train": (src[:64], tgt[:64]), "val": (src[:4], tgt[:4])})
    out = {}
    for name in ("ringformer-mt-small", "vanilla-mt-small", "universal-mt-small"):
        rank = {"signal_rank": 4} if name.startswith("ringformer") else {}
        cfg = get_config(name, d_model=32, n_heads=2, d_ff=64, **rank, **task.model_overrides())
        trainer = Trainer(task, build_model(cfg), TrainConfig(max_steps=2, progress=False, eval_every=100),
                          root / name)
        trainer.fit()
        out[name] = root / name / "last"
    return out


def test_cka_between_translation_checkpoints(mt_pair, tmp_path, capsys):
    png = tmp_path / "cka.png"
    a, b = str(mt_pair["ringformer-mt-small"]), str(mt_pair["vanilla-mt-small"])
    assert main(["analyze", "cka", a, b, "--max-batches", "2", "--batch-size", "32", "--plot", str(png),
                 "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert set(res) == {"encoder", "decoder"}
    m = np.array(res["encoder"]["cka"])
    assert m.shape == (3, 3) and np.all(m > -0.2) and np.all(m < 1.0 + 1e-6)
    assert png.read_bytes()[:8] == PNG
    # a checkpoint against itself: the diagonal is exactly one
    assert main(["analyze", "cka", a, a, "--max-batches", "1", "--json"]) == 0
    same = np.array(json.loads(capsys.readouterr().out)["decoder"]["cka"])
    np.testing.assert_allclose(np.diag(same), 1.0, atol=1e-9)
    assert main(["analyze", "cka", a, b, "--max-batches", "1"]) == 0
    assert "diagonal:" in capsys.readouterr().out


def test_text_attention_distance(mt_pair, tmp_path, capsys):
    png = tmp_path / "dist.png"
    assert main(["analyze", "attention-distance", str(mt_pair["universal-mt-small"]), "--max-batches", "1",
                 "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "encoder" in out and "decoder" in out and png.read_bytes()[:8] == PNG
    assert main(["analyze", "mad", str(mt_pair["universal-mt-small"])]) == 2
    assert "vision" in capsys.readouterr().err


def test_mad_for_vision(tmp_path, capsys):
    from loopformer.data.fashion_mnist import load_fashion_mnist
    from loopformer.tasks.vision_run import train_vision

    x, y = load_fashion_mnist("val")
    splits = {"train": (x[:32], y[:32]), "val": (x[:32], y[:32])}
    train_vision("ringformer", "vit-tiny", ["d_model=32", "n_heads=2", "d_ff=64", "max_steps=1", "progress=false",
                                            "batch_size=16"], out=str(tmp_path / "v"), splits=splits)
    png = tmp_path / "mad.png"
    assert main(["analyze", "mad", str(tmp_path / "v" / "last"), "--max-batches", "1", "--batch-size", "16",
                 "--plot", str(png), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    rows = res["stacks"]["encoder"]
    assert res["unit"] == "pixels" and len(rows) == 6 and len(rows[0]["per_head"]) == 2
    # with a 4x4 grid of 7-px patches, distances lie between 0 and the grid diagonal
    assert all(0 <= v <= 7 * 3 * 2 ** 0.5 for r in rows for v in r["per_head"])
    assert png.read_bytes()[:8] == PNG
    # CKA between vision checkpoints (patches + cls token per image): itself -> diagonal 1
    ckpt = str(tmp_path / "v" / "last")
    assert main(["analyze", "cka", ckpt, ckpt, "--max-batches", "2", "--batch-size", "16", "--json"]) == 0
    m = np.array(json.loads(capsys.readouterr().out)["encoder"]["cka"])
    assert m.shape == (6, 6)
    np.testing.assert_allclose(np.diag(m), 1.0, atol=1e-9)


def test_spiral_attention_distance_is_in_token_units(tmp_path):
    from loopformer import create_model
    from loopformer.analysis.attention import token_attention_distance

    model = create_model("spiral-lm-char", d_model=32, n_heads=2, d_ff=64, vocab_size=20).eval()
    tokens = torch.randint(0, 20, (2, 64))
    with capture(model, attention=True) as cap:
        model(tokens)
    shapes = {key: w.shape for (_, key, _), w in cap.attention.items()}
    assert shapes[(0, 0)][-1] == 16 and shapes[(1, 0)][-1] == 32 and shapes[(2, 0)][-1] == 64
    w = cap.attention[("decoder", (0, 0), "self")]
    assert torch.allclose(token_attention_distance(w, unit=4.0), 4 * token_attention_distance(w))
    # states: latents at the core, token states after each iteration
    assert cap.states[("decoder", (0, 1))].shape[1] == 16 and cap.states[("decoder", ("level", 0))].shape[1] == 64


def test_capture_is_free_when_off_and_cleans_up():
    from loopformer import create_model
    from loopformer.layers.block import TransformerLayer

    model = create_model("ringformer-lm-small", d_model=32, n_heads=2, d_ff=64).eval()
    tokens = torch.randint(0, 65, (1, 9))
    plain = model(tokens)
    with capture(model, attention=True) as cap:
        probed = model(tokens)
    torch.testing.assert_close(probed, plain, atol=1e-5, rtol=1e-5)
    assert len(cap.states) == 4 and len(cap.attention) == 4
    assert all(m.attn_probe is None for m in model.modules() if isinstance(m, TransformerLayer))
    assert not model.decoder._observers


def test_analyze_params_and_flops(capsys):
    assert main(["analyze", "params", "ringformer-vit-tiny"]) == 0
    assert "571,402" in capsys.readouterr().out
    assert main(["analyze", "flops", "spiral-lm-char", "--context", "64"]) == 0
    assert "per token" in capsys.readouterr().out


def test_signal_sizes_of_a_ringformer_checkpoint(mt_pair, capsys):
    ring = str(mt_pair["ringformer-mt-small"])
    assert main(["analyze", "signals", ring, "--max-batches", "1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    kinds = {(r["level"], r["kind"]) for r in rows}
    assert kinds == {(lvl, k) for lvl in range(3) for k in ("q", "k", "v", "ffn")}
    # after two Adam steps from zero the signals exist but are still small
    assert all(0 < r["ratio"] < 1 for r in rows)
    assert main(["analyze", "signals", ring, "--max-batches", "1"]) == 0
    assert "E||s(x)||" in capsys.readouterr().out
    assert main(["analyze", "signals", str(mt_pair["vanilla-mt-small"])]) == 2
    assert "ringformer models only" in capsys.readouterr().err


def test_linear_probe(mt_pair, capsys):
    from loopformer.analysis.probe import probe_accuracy

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(400, 8, generator=g), torch.randn(400, 8, generator=g)
    same = probe_accuracy(a[:200], b[:200], a[200:], b[200:])
    assert 40 < same < 60  # one distribution: chance
    assert probe_accuracy(a[:200], b[:200] + 3.0, a[200:], b[200:] + 3.0) > 99  # shifted: separable
    ring = str(mt_pair["ringformer-mt-small"])
    assert main(["analyze", "probe", ring, ring, "--max-batches", "2", "--batch-size", "32", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert set(res) == {"encoder", "decoder"} and len(res["encoder"]["accuracy"]) == 3
    assert all(acc == 50.0 for s in res.values() for acc in s["accuracy"])  # identical states: chance exactly
    van = str(mt_pair["vanilla-mt-small"])
    assert main(["analyze", "probe", ring, van, "--max-batches", "2", "--batch-size", "32"]) == 0
    assert "rows fitted" in capsys.readouterr().out
    assert main(["analyze", "probe", ring, van, "--max-batches", "1"]) == 2
    assert "two batches" in capsys.readouterr().err

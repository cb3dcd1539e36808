"""Vision task end to end: overfitting, exact resume, CLI train / eval / classify."""

import json

import numpy as np
import pytest
import torch

from loopformer.cli import main
from loopformer.data.fashion_mnist import load_fashion_mnist
from loopformer.tasks.vision_run import train_vision

TINY = ["d_model=32", "n_heads=2", "d_ff=64", "signal_rank=4", "progress=false", "log_every=1",
        "eval_batch_size=1000"]


@pytest.fixture(scope="module")
def small_splits():
    x, y = load_fashion_mnist("train")
    return {"train": (x[:64], y[:64]), "val": (x[:64], y[:64]), "test": (x[:64], y[:64])}


def test_tiny_vit_overfits_64_images(tmp_path, small_splits):
    res = train_vision("vanilla", "vit-tiny", ["d_model=64", "n_heads=4", "d_ff=128", "n_layers=2", "dropout=0",
                                               "batch_size=64", "crop_padding=0", "hflip=false", "lr=2e-3",
                                               "warmup_steps=10", "schedule=constant", "max_steps=150",
                                               "eval_every=50", "label_smoothing=0", "weight_decay=0",
                                               "progress=false"],
                       out=str(tmp_path / "run"), splits=small_splits)
    assert res["test"]["accuracy"] >= 98.0, res["test"]
    assert res["train"]["best_score"] >= 98.0


@pytest.mark.parametrize("model", ["ringformer", "universal", "looped", "vanilla"])
def test_resume_matches_an_uninterrupted_run(tmp_path, small_splits, model):
    common = [o for o in TINY if model == "ringformer" or not o.startswith("signal_")]
    common += ["n_layers=2", "batch_size=16", "eval_every=100"]
    train_vision(model, "vit-tiny", common + ["max_steps=6"], out=str(tmp_path / "full"), splits=small_splits)
    train_vision(model, "vit-tiny", common + ["max_steps=3"], out=str(tmp_path / "part"), splits=small_splits)
    train_vision(model, "vit-tiny", common + ["max_steps=6"], out=str(tmp_path / "part"), resume=True,
                 splits=small_splits)
    from loopformer.checkpoint import load_model

    a = load_model(tmp_path / "full" / "last").state_dict()
    b = load_model(tmp_path / "part" / "last").state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def vision_ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("vision") / "run"
    args = ["train", "vision", "--model", "ringformer", "--preset", "vit-tiny", "--out", str(out),
            "max_steps=2", "n_layers=2", "eval_every=100"] + TINY
    assert main(args) == 0
    return out


def test_cli_train_writes_results_and_stats(vision_ckpt):
    res = json.loads((vision_ckpt / "results.json").read_text())
    assert res["model"] == "ringformer-vit-tiny" and res["test"]["images"] == 10000
    task = json.loads((vision_ckpt / "best" / "task.json").read_text())
    assert task["task"] == "vision" and 0.2 < task["mean"] < 0.4 and 0.25 < task["std"] < 0.45
    assert len(task["classes"]) == 10


def test_cli_eval_prints_accuracy_and_saves_confusion_png(vision_ckpt, tmp_path, capsys):
    png = tmp_path / "cm.png"
    assert main(["eval", str(vision_ckpt / "best"), "--split", "val", "--confusion", str(png), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["split"] == "val" and res["images"] == 5000
    assert sum(map(sum, res["confusion"])) == 5000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["eval", str(vision_ckpt / "best"), "--split", "test2016"]) == 2
    assert "val or test" in capsys.readouterr().err


def test_cli_classify_images_of_any_size(vision_ckpt, tmp_path, capsys):
    from PIL import Image

    rgb = np.zeros((50, 90, 3), dtype=np.uint8)
    rgb[10:40, 30:60] = 200
    Image.fromarray(rgb).save(tmp_path / "a.png")
    Image.fromarray(255 - rgb).save(tmp_path / "b.jpg")
    assert main(["classify", str(vision_ckpt / "best"), str(tmp_path / "a.png"), str(tmp_path / "b.jpg"),
                 "--json", "--top-k", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [len(r["top"]) for r in out] == [2, 2]
    assert all(abs(sum(t["probability"] for t in r["top"])) <= 1.0 + 1e-6 for r in out)


def test_classify_rejects_non_images_with_one_line(vision_ckpt, tmp_path, capsys):
    bad = tmp_path / "notes.png"
    bad.write_text("this is not a picture\n")
    assert main(["classify", str(vision_ckpt / "best"), str(bad)]) == 2
    err = capsys.readouterr().err
    assert "not an image file" in err and err.count("\n") == 1
    assert main(["classify", str(vision_ckpt / "best"), str(tmp_path / "missing.png")]) == 2
    assert "no such image" in capsys.readouterr().err


def test_classify_refuses_a_non_vision_checkpoint(tmp_path, capsys):
    from loopformer import create_model
    from loopformer.checkpoint import save_model

    folder = save_model(create_model("ringformer-lm-small", d_model=32, n_heads=2, d_ff=64), tmp_path / "lm")
    assert main(["classify", str(folder), str(tmp_path / "x.png")]) == 2
    assert "not a vision checkpoint" in capsys.readouterr().err


def test_load_image_inverts_light_backgrounds(tmp_path):
    from PIL import Image

    from loopformer.data.images import load_image

    img = np.full((40, 40), 255, dtype=np.uint8)
    img[10:30, 15:25] = 0  # dark object on white paper
    Image.fromarray(img).save(tmp_path / "p.png")
    auto = load_image(tmp_path / "p.png", 28)
    assert auto.shape == (1, 28, 28) and auto[0, 0, 0] == 0 and auto[0, 14, 14] == 255
    assert load_image(tmp_path / "p.png", 28, invert="no")[0, 0, 0] == 255


def test_cli_classify_and_eval_with_loops_and_early_exit(vision_ckpt, tmp_path, capsys):
    from PIL import Image

    Image.fromarray(np.full((28, 28), 120, dtype=np.uint8)).save(tmp_path / "g.png")
    capsys.readouterr()
    assert main(["classify", str(vision_ckpt / "best"), str(tmp_path / "g.png"), "--json", "--loops", "4",
                 "--exit", "entropy:100"]) == 0
    out, err = capsys.readouterr()
    assert len(json.loads(out)) == 1 and "1.00 loops on average (of 4; trained 2)" in err
    assert main(["eval", str(vision_ckpt / "best"), "--split", "val", "--json", "--exit", "argmax:0.5:2"]) == 0
    depth = json.loads(capsys.readouterr().out)["depth"]
    assert depth["loops"] == 2 and depth["mean_loops"] == 2.0 and depth["exit"] == "argmax:0.5:2"

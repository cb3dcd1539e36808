"""``loopformer train vision data=DIR`` on a folder of images, then eval and classify
with the folder's class names, channel count and image size."""

import json
from pathlib import Path

import numpy as np
import pytest

from loopformer.cli import main

TINY = ["d_model=32", "n_heads=2", "d_ff=64", "signal_rank=4", "n_layers=2", "progress=false", "max_steps=3",
        "eval_every=100", "batch_size=8", "eval_batch_size=16"]
CLASSES = ["circle", "square", "stripes"]


def draw(kind: str, size: int, rgb: bool, rng: np.random.Generator):
    """A light shape on a dark ground, in colour or grey."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB" if rgb else "L", (size, size), (20, 20, 40) if rgb else 20)
    pen = ImageDraw.Draw(img)
    ink = tuple(int(v) for v in rng.integers(150, 256, 3)) if rgb else int(rng.integers(150, 256))
    lo, hi = size // 5, size - size // 5
    if kind == "circle":
        pen.ellipse((lo, lo, hi, hi), fill=ink)
    elif kind == "square":
        pen.rectangle((lo, lo, hi, hi), fill=ink)
    else:
        for x in range(0, size, 4):
            pen.line((x, 0, x, size), fill=ink, width=2)
    return img


def make_tree(root: Path, size: int = 32, rgb: bool = True, per_class: int = 8, splits=("train", "val", "test")):
    rng = np.random.default_rng(1)
    for split in splits:
        for c in CLASSES:
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                draw(c, size, rgb, rng).save(root / split / c / f"{i}.{'jpg' if i % 2 else 'png'}")
    return root


def train(tree: Path, out: Path, *settings: str, model: str = "ringformer") -> int:
    tiny = [s for s in TINY if model == "ringformer" or not s.startswith("signal_")]
    return main(["train", "vision", "--model", model, "--preset", "vit-tiny", "--out", str(out),
                 f"data={tree}", *tiny, *settings])


@pytest.fixture(scope="module")
def rgb_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("folder")
    tree = make_tree(root / "shapes")
    assert train(tree, root / "run") == 0
    return tree, root / "run"


def test_training_on_a_folder_records_what_the_data_fixed(rgb_run):
    tree, run = rgb_run
    res = json.loads((run / "results.json").read_text())
    assert res["test"]["images"] == 24 and len(res["test"]["confusion"]) == 3
    assert set(res["test"]["per_class"]) == set(CLASSES)
    assert res["data"]["images"] == {"train": 24, "val": 24, "test": 24} and res["data"]["channels"] == 3
    task = json.loads((run / "best" / "task.json").read_text())
    assert task["classes"] == CLASSES and task["data"] == str(tree)
    assert (task["image_size"], task["channels"]) == (32, 3)
    model = json.loads((run / "best" / "config.json").read_text())
    model = model["model"]
    assert (model["image_size"], model["in_channels"], model["num_classes"], model["patch_size"]) == (32, 3, 3, 4)


def test_eval_prints_the_folder_class_names(rgb_run, tmp_path, capsys):
    _, run = rgb_run
    assert main(["eval", str(run / "best"), "--split", "val", "--confusion", str(tmp_path / "cm.png")]) == 0
    out = capsys.readouterr().out
    assert "val accuracy" in out and "on 24 images" in out and all(c in out for c in CLASSES)
    assert (tmp_path / "cm.png").read_bytes()[:4] == b"\x89PNG"


def test_classify_names_the_folder_classes_and_keeps_colour(rgb_run, tmp_path, capsys):
    tree, run = rgb_run
    from PIL import Image

    Image.new("RGB", (50, 20), (250, 250, 250)).save(tmp_path / "light.png")  # light: never inverted in RGB
    picture = tree / "test" / "square" / "0.png"
    assert main(["classify", str(run / "best"), str(picture), str(tmp_path / "light.png"), "--json",
                 "--top-k", "5"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [len(r["top"]) for r in out] == [3, 3]
    assert {t["class"] for t in out[0]["top"]} == set(CLASSES)


def test_resume_continues_a_folder_run(tmp_path):
    tree = make_tree(tmp_path / "g", size=28, rgb=False, per_class=5, splits=("train",))
    settings = ("test_split=val", "max_steps=2")
    assert train(tree, tmp_path / "run", *settings, model="vanilla") == 0
    task = json.loads((tmp_path / "run" / "best" / "task.json").read_text())
    assert (task["image_size"], task["channels"]) == (28, 1)  # grey 28x28 squares
    assert main(["train", "vision", "--model", "vanilla", "--preset", "vit-tiny", "--out", str(tmp_path / "run"),
                 "--resume", "max_steps=4"]) == 0
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert res["train"]["step"] == 4 and res["test"]["split"] == "val" and res["test"]["images"] == 3  # 15 // 5


def test_a_greyscale_folder_model_does_not_invert_light_pictures(tmp_path, capsys):
    from loopformer.tasks.vision_run import default_invert, load_vision_checkpoint

    tree = make_tree(tmp_path / "g", size=28, rgb=False, per_class=5, splits=("train",))
    assert train(tree, tmp_path / "run", "test_split=val", "max_steps=1") == 0
    _, task = load_vision_checkpoint(tmp_path / "run" / "best")
    assert default_invert(task) == "no" and task.classes == tuple(CLASSES)


def test_bad_folder_runs_fail_with_one_line_before_training(tmp_path, capsys):
    tree = make_tree(tmp_path / "t", splits=("train", "val"), per_class=2)
    assert train(tree, tmp_path / "a") == 2  # no test/ and test_split=test
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tree / "test") in err
    assert not (tmp_path / "a" / "last").exists()
    assert train(tree, tmp_path / "b", "test_split=val", "patch_size=5") == 2  # 5 does not divide 32
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "patch_size=5" in err and "patch_size=4" in err
    assert train(tmp_path / "nowhere", tmp_path / "c") == 2
    assert "does not exist" in capsys.readouterr().err


def test_skipped_images_are_counted_in_the_results(tmp_path, capsys):
    tree = make_tree(tmp_path / "t", splits=("train", "val"), per_class=3)
    (tree / "train" / "circle" / "readme.txt").write_text("drawn with Pillow\n")
    assert train(tree, tmp_path / "a", "test_split=val") == 2
    assert "readme.txt" in capsys.readouterr().err
    assert train(tree, tmp_path / "b", "test_split=val", "bad_images=skip", "max_steps=1") == 0
    assert "skipped 1 unreadable" in capsys.readouterr().out
    res = json.loads((tmp_path / "b" / "results.json").read_text())
    assert res["data"]["skipped"]["train"] == 1 and "readme.txt" in res["data"]["skipped_files"][0]


def test_old_task_files_still_load(tmp_path):
    from loopformer.data.fashion_mnist import CLASSES as FASHION
    from loopformer.tasks.vision import load_vision_config, saved_classes

    (tmp_path / "task.json").write_text(json.dumps({"task": "vision", "dataset": "fashion-mnist", "mean": 0.28,
                                                    "std": 0.35, "batch_size": 256}))
    cfg = load_vision_config(tmp_path)
    assert cfg.data == "fashion-mnist" and cfg.batch_size == 256 and cfg.image_size is None
    assert saved_classes(tmp_path) == FASHION

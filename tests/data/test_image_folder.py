"""A class-per-folder image tree: listing, format inference, decoding, and every bad input
as one line naming the file or folder."""

from pathlib import Path

import numpy as np
import pytest

from loopformer.data.download import DataError
from loopformer.data.image_folder import infer_format, read_split, scan_tree
from loopformer.errors import ConfigError
from loopformer.tasks.vision import VisionConfig, VisionTask, dividing_patch

CLASSES = ("cat", "dog", "emu")


def picture(rng: np.random.Generator, size: tuple[int, int], mode: str):
    from PIL import Image

    shape = (size[1], size[0]) + ((3,) if mode == "RGB" else ())
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)


def make_tree(root: Path, splits=("train", "val", "test"), per_class=6, mode="mixed", sizes=None) -> Path:
    """PNG and JPEG files, RGB and greyscale, of several sizes, under root/<split>/<class>/."""
    rng = np.random.default_rng(0)
    sizes = sizes or [(20, 20), (31, 17), (16, 40)]
    for split in splits:
        for c in CLASSES:
            folder = root / split / c
            folder.mkdir(parents=True)
            for i in range(per_class):
                m = mode if mode != "mixed" else ("RGB" if i % 2 else "L")
                picture(rng, sizes[i % len(sizes)], m).save(folder / f"{i}.{'jpg' if i % 3 == 0 else 'png'}")
    return root


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message and len(message) < 400, message
    return message


def test_reads_a_mixed_tree(tmp_path):
    tree = scan_tree(make_tree(tmp_path / "d"), val_size=5000)
    assert tree.classes == CLASSES and not tree.held_out
    assert {k: len(v) for k, v in tree.files.items()} == {"train": 18, "val": 18, "test": 18}
    size, channels = infer_format(tree.files["train"], None, None, 28, "error")
    assert (size, channels) == (28, 3)  # mixed sizes: the default size; some RGB: three channels
    split = read_split(tree.files["train"], size, channels, "error", tmp_path / "d" / "train")
    assert split.images.shape == (18, 3, 28, 28) and split.images.dtype == np.uint8
    assert split.labels.tolist() == [0] * 6 + [1] * 6 + [2] * 6 and not split.skipped


def test_greyscale_squares_give_their_size_and_one_channel(tmp_path):
    tree = scan_tree(make_tree(tmp_path / "d", splits=("train",), mode="L", sizes=[(24, 24)]), val_size=5000)
    assert infer_format(tree.files["train"], None, None, 28, "error") == (24, 1)
    assert infer_format(tree.files["train"], None, 3, 28, "error") == (24, 3)
    images = read_split(tree.files["train"], 24, 3, "error", tmp_path).images
    assert np.array_equal(images[:, 0], images[:, 1])  # grey pictures in RGB: equal channels


def test_missing_val_holds_out_a_fixed_fifth(tmp_path):
    root = make_tree(tmp_path / "d", splits=("train",), per_class=10)
    a, b = scan_tree(root, 5000), scan_tree(root, 5000)
    assert a.held_out and len(a.files["val"]) == 6 and len(a.files["train"]) == 24  # 30 // 5
    assert a.files == b.files
    assert not set(a.files["val"]) & set(a.files["train"])
    assert len(scan_tree(root, 2).files["val"]) == 2  # val_size below a fifth wins


def test_too_few_images_to_hold_out(tmp_path):
    root = tmp_path / "d"
    make_tree(root, splits=("train",), per_class=1)
    with pytest.raises(DataError) as exc:
        scan_tree(root, 5000)
    assert "too few" in one_line(exc) and str(root / "val") in str(exc.value)


def test_truncated_jpeg_is_named(tmp_path):
    root = make_tree(tmp_path / "d")
    bad = root / "train" / "dog" / "0.jpg"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])  # the header survives: decoding fails
    tree = scan_tree(root, 5000)
    with pytest.raises(DataError) as exc:
        read_split(tree.files["train"], 16, 3, "error", root / "train")
    assert str(bad) in one_line(exc)


def test_a_file_that_is_not_an_image_is_named(tmp_path):
    root = make_tree(tmp_path / "d")
    for name in ("notes.txt", "fake.png"):
        bad = root / "train" / "cat" / name
        bad.write_text("not a picture\n")
        tree = scan_tree(root, 5000)
        with pytest.raises(DataError) as exc:
            infer_format(tree.files["train"], None, None, 28, "error")
        assert str(bad) in one_line(exc)
        bad.unlink()


def test_skip_counts_bad_images(tmp_path):
    root = make_tree(tmp_path / "d")
    (root / "train" / "cat" / "notes.txt").write_text("hello\n")
    jpeg = root / "train" / "emu" / "3.jpg"
    jpeg.write_bytes(jpeg.read_bytes()[:150])
    tree = scan_tree(root, 5000)
    size, channels = infer_format(tree.files["train"], None, None, 28, "skip")
    split = read_split(tree.files["train"], size, channels, "skip", root / "train")
    assert len(split.skipped) == 2 and len(split.labels) == 17  # 19 files
    assert any("notes.txt" in m for m in split.skipped) and any("3.jpg" in m for m in split.skipped)


def flatten_train(root: Path) -> None:
    """Images straight in train/, without class folders."""
    for i, path in enumerate(sorted((root / "train").rglob("*.png"))):
        path.rename(root / "train" / f"{i}.png")
    for folder in (root / "train").iterdir():
        if folder.is_dir():
            for path in folder.iterdir():
                path.unlink()
            folder.rmdir()


@pytest.mark.parametrize("damage, named", [
    (lambda r: (r / "train" / "yak").mkdir(), "train/yak"),  # an empty class folder
    (lambda r: [p.unlink() for p in (r / "val" / "emu").iterdir()], "val/emu"),
    (lambda r: (r / "train").rename(r / "training"), "train"),
    (flatten_train, "train"),
])
def test_layout_mistakes_are_named(tmp_path, damage, named):
    root = make_tree(tmp_path / "d", per_class=2)
    damage(root)
    with pytest.raises(DataError) as exc:
        scan_tree(root, 5000)
    assert str(root / named) in one_line(exc)


def test_a_class_unknown_to_train_is_refused(tmp_path):
    root = make_tree(tmp_path / "d", per_class=2)
    (root / "val" / "zebra").mkdir()
    (root / "val" / "zebra" / "z.png").write_bytes((root / "val" / "cat" / "1.png").read_bytes())
    with pytest.raises(DataError) as exc:
        scan_tree(root, 5000)
    message = one_line(exc)
    assert str(root / "val" / "zebra") in message and "'zebra'" in message


def test_missing_test_folder_fails_before_any_decoding(tmp_path):
    root = make_tree(tmp_path / "d", splits=("train", "val"))
    with pytest.raises(DataError) as exc:
        VisionTask.prepare(VisionConfig(data=str(root)))
    assert str(root / "test") in one_line(exc) and "test_split=val" in str(exc.value)
    task = VisionTask.prepare(VisionConfig(data=str(root), test_split="val"), patch_size=7)
    assert task.classes == CLASSES and task.model_overrides() == {
        "image_size": 28, "in_channels": 3, "num_classes": 3}


def test_prepare_resolves_the_format_and_a_dividing_patch(tmp_path):
    root = make_tree(tmp_path / "d", mode="L", sizes=[(32, 32)])
    task = VisionTask.prepare(VisionConfig(data=str(root)), patch_size=7)
    assert (task.cfg.image_size, task.cfg.channels) == (32, 1)
    assert task.model_overrides() == {"image_size": 32, "in_channels": 1, "num_classes": 3, "patch_size": 4}
    assert 0.0 < task.cfg.mean < 1.0 and task.cfg.std > 0
    assert task.split("val")[0].shape == (18, 1, 32, 32)
    assert dividing_patch(28, 7) == 7 and dividing_patch(30, 7) == 6 and dividing_patch(31, 7) == 1


def test_data_paths_are_stored_absolute(tmp_path, monkeypatch):
    make_tree(tmp_path / "d", mode="L", sizes=[(8, 8)], per_class=2)
    monkeypatch.chdir(tmp_path)
    task = VisionTask.prepare(VisionConfig(data="d"))
    assert task.cfg.data == str(tmp_path / "d")


@pytest.mark.parametrize("setting", [{"image_size": 32}, {"channels": 3}, {"bad_images": "skip"}])
def test_folder_settings_do_not_apply_to_fashion_mnist(setting):
    with pytest.raises(ConfigError) as exc:
        VisionConfig(**setting)
    assert "fashion-mnist" in one_line(exc)
    VisionConfig(image_size=28, channels=1)  # what Fashion-MNIST is anyway


@pytest.mark.parametrize("setting", [{"channels": 2}, {"bad_images": "ignore"}, {"data": ""}, {"image_size": 0}])
def test_bad_folder_settings_are_refused(setting):
    with pytest.raises(ConfigError):
        VisionConfig(**setting)

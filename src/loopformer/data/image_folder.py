"""Your own images: a class-per-folder tree read into uint8 arrays.

Layout: ``DIR/train/<class>/<image>`` (sub-folders of a class folder count as the class),
optionally ``DIR/val/<class>/...`` and ``DIR/test/<class>/...`` with classes from
``train``. The classes are the sorted names of ``train``'s sub-folders, so the label of a
class is the same on every machine whatever order the file system lists them in.

Listing the tree is cheap and happens first, so every layout mistake (no ``train/``, an
empty class folder, a class of ``val/`` that ``train/`` lacks) fails in a second, before
any decoding. A split is decoded only when it is asked for, each image once, on a thread
pool: Pillow releases the GIL while it decodes, so the threads overlap on every core.

Without ``val/``, a fixed part of ``train/`` is held out for validation (at most
``val_size`` images and at most a fifth of them, chosen by a fixed seed that the
training seed does not change, so every run of a folder validates on the same images).
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..files import check_regular
from .download import DataError
from .images import IMAGE_FILE_LIMIT, MAX_IMAGE_PIXELS, load_image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
IGNORED_FILES = frozenset({"thumbs.db", "desktop.ini"})  # besides hidden files: what file browsers leave
SPLIT_FOLDERS = ("train", "val", "test")
BAD_IMAGES = ("error", "skip")
HOLDOUT_SEED = 20240519  # fixed: the held-out images must not depend on the training seed
HOLDOUT_FRACTION = 5  # at most one image in five of train/ is held out
# Modes whose pixels have one value each; palette images count when their palette is grey.
GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
MAX_ARRAY_BYTES = 32 << 30  # a split's decoded images; beyond this, ask for a smaller image_size
MAX_WORKERS = 16


@dataclass(frozen=True)
class ImageTree:
    """The listed tree: classes and, per split, (file, label) in path order. ``held_out``
    says that ``val`` was taken out of ``train/`` (there is no ``val/``)."""

    root: Path
    classes: tuple[str, ...]
    files: dict[str, list[tuple[Path, int]]]
    held_out: bool = False

    def split_files(self, split: str) -> list[tuple[Path, int]]:
        """The files of a split; a DataError naming the missing folder when there is none."""
        if split not in self.files:
            raise DataError(f"{self.root / split} does not exist: put the {split} images there "
                            f"(one folder per class), or evaluate on another split")
        return self.files[split]


@dataclass
class DecodedSplit:
    """A split's images (uint8 (N, C, S, S)), labels (int64 (N,)) and the files skipped."""

    images: np.ndarray
    labels: np.ndarray
    skipped: list[str] = field(default_factory=list)  # one message per skipped file


# --- listing ----------------------------------------------------------------------------------


def scan_tree(root: str | Path, val_size: int) -> ImageTree:
    """List ``root``'s images without decoding any; DataError for a layout mistake."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder {root} " + ("is not a folder" if root.exists() else "does not exist"))
    train = root / "train"
    if not train.is_dir():
        raise DataError(f"{root} has no train/ folder: put the training images in {train}/<class>/")
    classes = tuple(class_folders(train))
    if not classes:
        raise DataError(f"{train} has no class folders: put each class's images in {train}/<class>/")
    index = {name: i for i, name in enumerate(classes)}
    files = {"train": list_split(train, index)}
    for split in ("val", "test"):
        if (root / split).is_dir():
            files[split] = list_split(root / split, index)
    held_out = "val" not in files
    if held_out:
        files["train"], files["val"] = hold_out(files["train"], val_size, root)
    return ImageTree(root, classes, files, held_out)


def class_folders(folder: Path) -> list[str]:
    """The sorted names of ``folder``'s sub-folders (hidden ones aside); loose files are ignored."""
    try:
        entries = list(os.scandir(folder))
    except OSError as exc:
        raise DataError(f"cannot list {folder}: {exc.strerror or exc}") from None
    return sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))


def list_split(folder: Path, index: dict[str, int]) -> list[tuple[Path, int]]:
    """(file, label) of every file under ``folder``'s class folders, in path order."""
    names = class_folders(folder)
    if not names:
        raise DataError(f"{folder} has no class folders: put each class's images in {folder}/<class>/")
    out: list[tuple[Path, int]] = []
    for name in names:
        if name not in index:
            known = ", ".join(sorted(index)[:20]) + (", ..." if len(index) > 20 else "")
            raise DataError(f"{folder / name}: class {name!r} is not one of the training classes ({known})")
        out += [(path, index[name]) for path in class_files(folder / name)]
    return out


def class_files(folder: Path) -> list[Path]:
    """Every file under a class folder (its sub-folders too), hidden and system files aside."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, onerror=_listing_error):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found += [Path(dirpath) / f for f in filenames
                  if not f.startswith(".") and f.lower() not in IGNORED_FILES]
    if not found:
        raise DataError(f"class folder {folder} holds no images")
    return sorted(found)


def _listing_error(exc: OSError) -> None:
    raise DataError(f"cannot list {exc.filename}: {exc.strerror or exc}")


def hold_out(files: list[tuple[Path, int]], val_size: int,
             root: Path) -> tuple[list[tuple[Path, int]], list[tuple[Path, int]]]:
    """(train, val): ``min(val_size, n // 5)`` files drawn by a fixed permutation."""
    n = len(files)
    count = min(val_size, n // HOLDOUT_FRACTION)
    if count == 0:
        raise DataError(f"{root / 'train'} has {n} image(s): too few to hold out a validation set "
                        f"(a fifth of them); add {root / 'val'}/ with validation images")
    order = np.random.RandomState(HOLDOUT_SEED).permutation(n)
    chosen = set(order[:count].tolist())
    return ([f for i, f in enumerate(files) if i not in chosen], [f for i, f in enumerate(files) if i in chosen])


# --- reading ----------------------------------------------------------------------------------


def check_image_name(path: Path) -> None:
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        raise DataError(f"{path} is not an image file (expected {', '.join(IMAGE_EXTENSIONS)}); "
                        f"remove it or set bad_images=skip")


def image_header(path: Path) -> tuple[int, int, bool]:
    """(width, height, greyscale) from a file's header, without decoding its pixels."""
    from PIL import Image, UnidentifiedImageError

    check_image_name(path)
    size = check_regular(path, "image", DataError)
    if size > IMAGE_FILE_LIMIT:
        raise DataError(f"image {path} has {size:,} bytes; more than the {IMAGE_FILE_LIMIT:,} an image may have")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height, grey = img.width, img.height, is_grey(img)
    except UnidentifiedImageError:
        raise DataError(f"{path} is not an image file Pillow can read (PNG, JPEG, ...)") from None
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot read image {path}: {exc}") from None
    if width * height > MAX_IMAGE_PIXELS:
        raise DataError(f"image {path} has {width}x{height} pixels; more than the {MAX_IMAGE_PIXELS:,} "
                        "an image may have")
    return width, height, grey


def is_grey(img: Any) -> bool:
    """Whether an opened image has grey pixels only, by its mode (and palette)."""
    if img.mode in GREY_MODES:
        return True
    if img.mode not in ("P", "PA"):
        return False
    try:
        palette = img.getpalette() or []
    except (OSError, ValueError):
        return False
    return all(palette[i] == palette[i + 1] == palette[i + 2] for i in range(0, len(palette) - 2, 3))


def infer_format(files: Sequence[tuple[Path, int]], size: int | None, channels: int | None,
                 default_size: int, bad_images: str) -> tuple[int, int]:
    """(image size, channels) of a split: a setting when given, else from the images'
    headers. Size: the side of the images when all are one square size, else
    ``default_size``; channels: 1 when every image is greyscale, else 3. With
    ``bad_images=skip`` an unreadable header is left out here (the decoding counts it)."""
    if size is not None and channels is not None:
        return size, channels
    headers, _ = map_files(lambda item: image_header(item[0]), files, skip=bad_images == "skip")
    found = [h for h in headers if h is not None]
    if size is None:
        sides = {(w, h) for w, h, _ in found}
        only = sides.pop() if len(sides) == 1 else (0, 1)
        size = only[0] if only[0] == only[1] else default_size
    if channels is None:
        channels = 1 if all(grey for _, _, grey in found) else 3
    return size, channels


def read_split(files: Sequence[tuple[Path, int]], size: int, channels: int, bad_images: str,
               where: Path) -> DecodedSplit:
    """Decode ``files`` (each once, in parallel) into arrays; ``where`` names the split's folder."""
    need = len(files) * channels * size * size
    if need > MAX_ARRAY_BYTES:
        raise DataError(f"{where}: {len(files):,} images of {channels}x{size}x{size} need {need / 2**30:.1f} GiB; "
                        f"more than {MAX_ARRAY_BYTES >> 30} GiB: set a smaller image_size")
    images = np.empty((len(files), channels, size, size), dtype=np.uint8)

    def decode(i: int) -> None:
        check_image_name(files[i][0])
        images[i] = load_image(files[i][0], size, channels, invert="no").numpy()

    done, skipped = map_files(decode, range(len(files)), skip=bad_images == "skip", failed=False)
    keep = np.asarray([d is not False for d in done], dtype=bool)
    labels = np.asarray([label for _, label in files], dtype=np.int64)
    if not keep.all():
        images, labels = images[keep], labels[keep]
    if not len(labels):
        raise DataError(f"{where} holds no readable images ({len(skipped)} skipped)")
    return DecodedSplit(images, labels, skipped)


def map_files(fn: Callable[[Any], Any], items: Sequence[Any], skip: bool,
              failed: Any = None) -> tuple[list[Any], list[str]]:
    """``fn`` over ``items`` on a thread pool: results in order (``failed`` where ``fn``
    raised a DataError) and the errors' messages. Without ``skip`` the first error (in
    order, so the message is the same on every run) is raised and queued work cancelled."""
    results: list[Any] = [failed] * len(items)
    errors: list[str] = []
    workers = max(1, min(MAX_WORKERS, os.cpu_count() or 1, len(items)))
    with ThreadPoolExecutor(workers, thread_name_prefix="loopformer-images") as pool:
        futures = [pool.submit(fn, item) for item in items]
        try:
            for i, future in enumerate(futures):
                try:
                    results[i] = future.result()
                except DataError as exc:
                    if not skip:
                        raise
                    errors.append(str(exc))
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return results, errors

"""Single image files (PNG, JPEG, ... via Pillow) turned into a model's input grid.

Any size or mode is accepted: the picture is padded to a square with its own border
colour (so the object is not stretched), resized, and converted to the model's channel
count. Fashion-MNIST shows light objects on black; a photo usually has a light
background, so ``invert="auto"`` inverts greyscale pictures whose border is light.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch

from ..files import MiB, read_bytes
from .download import DataError

INVERT_CHOICES = ("auto", "yes", "no")
# Bounds on what one image may cost: a file read whole, then decoded (a 24-megapixel photo
# fits; a crafted PNG that inflates to gigabytes does not).
IMAGE_FILE_LIMIT = 64 * MiB
MAX_IMAGE_PIXELS = 25_000_000
MAX_SIDE = 2048  # larger pictures are shrunk first; the model sees a few dozen pixels a side


def load_image(path: str | Path, size: int, channels: int = 1, invert: str = "auto") -> torch.Tensor:
    """uint8 tensor (channels, size, size) from an image file; DataError if it is not one."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if invert not in INVERT_CHOICES:
        raise DataError(f"invert must be one of {', '.join(INVERT_CHOICES)}, got {invert!r}")
    path = Path(path)
    if not path.exists():
        raise DataError(f"no such image file: {path}")
    data = read_bytes(path, "image", DataError, IMAGE_FILE_LIMIT)  # only regular files: a FIFO never blocks
    try:
        with warnings.catch_warnings():  # the size is refused below, in one line, not warned about
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
        with img:
            if img.width * img.height > MAX_IMAGE_PIXELS:
                raise DataError(f"image {path} has {img.width}x{img.height} pixels; more than the "
                                f"{MAX_IMAGE_PIXELS:,} an image may have")
            img.load()
            if img.mode in ("RGBA", "LA", "P"):
                img = img.convert("RGBA")
                backdrop = Image.new("RGBA", img.size, (255, 255, 255, 255))
                img = Image.alpha_composite(backdrop, img)
            img = img.convert("L" if channels == 1 else "RGB")
    except UnidentifiedImageError:
        raise DataError(f"{path} is not an image file Pillow can read (PNG, JPEG, ...)") from None
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot read image {path}: {exc}") from None
    if max(img.size) > MAX_SIDE:  # padding a long thin picture to a square would cost its side squared
        img.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    arr = np.asarray(img)
    border = np.concatenate([arr[0].reshape(-1, channels), arr[-1].reshape(-1, channels),
                             arr[:, 0].reshape(-1, channels), arr[:, -1].reshape(-1, channels)])
    fill = tuple(int(v) for v in np.median(border, axis=0))
    square = ImageOps.pad(img, (max(img.size),) * 2, color=fill[0] if channels == 1 else fill)
    square = square.resize((size, size), Image.Resampling.LANCZOS)
    out = np.asarray(square, dtype=np.uint8)
    if channels == 1 and (invert == "yes" or (invert == "auto" and fill[0] > 127)):
        out = 255 - out
    tensor = torch.from_numpy(out.copy())
    return tensor.unsqueeze(0) if channels == 1 else tensor.permute(2, 0, 1).contiguous()

"""IDX arrays (the MNIST / Fashion-MNIST file format), read with numpy only.

Layout: two zero bytes, a type code, the number of dimensions, one big-endian uint32 per
dimension, then the values in C order and big-endian. Files may be gzip-compressed. A
short or oversized payload is reported instead of silently reshaped, because a truncated
download would otherwise surface much later as a cryptic reshape error.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from .download import DataError

IDX_TYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def parse_idx(data: bytes, source: str = "IDX data") -> np.ndarray:
    """Decode raw (uncompressed) IDX bytes into a native-endian numpy array."""
    if len(data) < 4:
        raise DataError(f"{source} is truncated: {len(data)} bytes, too short for an IDX header")
    if data[0] != 0 or data[1] != 0:
        raise DataError(f"{source} is not an IDX file (bad magic bytes {data[:2].hex()})")
    code, ndim = data[2], data[3]
    if code not in IDX_TYPES:
        raise DataError(f"{source} has unknown IDX type code 0x{code:02x}")
    if ndim == 0:
        raise DataError(f"{source} declares zero dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{source} is truncated inside its header")
    shape = tuple(int(x) for x in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_TYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    got = len(data) - header
    if got < expected:
        raise DataError(f"{source} is truncated: shape {shape} needs {expected} bytes of values, found {got}")
    if got > expected:
        raise DataError(f"{source} has {got - expected} unexpected trailing bytes after shape {shape}")
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file, gzip-compressed or not (detected from the content)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path} is a damaged gzip file: {exc}") from None
    return parse_idx(raw, str(path))

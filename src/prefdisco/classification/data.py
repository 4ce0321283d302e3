"""Classification data: scikit-learn's handwritten digits (embedded, offline) and CIFAR-10 (the paper's), as one
file of tensors with a fixed train / validation / test split.

    python -m prefdisco.classification.data --dataset digits --seed 0 --output data.pt
    python -m prefdisco.classification.data --dataset cifar10 --root data/cifar10 [--url URL] --output data.pt

Digits: the 1,797 8x8 images scikit-learn ships (no download), split 60 / 20 / 20 by a seeded permutation.
CIFAR-10: the python-pickle batches of the official archive (downloaded once into ``--root`` unless already there,
checked against its MD5); the validation set is 5,000 images held out of the 50,000 training images by a seeded
permutation, the test set is the official 10,000. Fitness is validation accuracy; test accuracy is only reported.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import pickle
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path

import numpy as np
import torch

from prefdisco.cli import setup_logging

log = logging.getLogger(__name__)

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_BATCH = "test_batch"
CIFAR10_VALIDATION = 5000
# Per-channel mean and standard deviation of the CIFAR-10 training images (the usual normalisation).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
DATASETS = ("digits", "cifar10")


def digits_split(seed: int = 0) -> dict:
    """The digits as (N, 1, 8, 8) floats in [0, 1], split 60 / 20 / 20 by a permutation seeded with ``seed``."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    n_train, n_val = int(0.6 * len(order)), int(0.2 * len(order))
    parts = {"train": order[:n_train], "val": order[n_train:n_train + n_val], "test": order[n_train + n_val:]}
    split = {f"{name}_{kind}": (images if kind == "x" else labels)[index]
             for name, index in parts.items() for kind in ("x", "y")}
    return {**split, "classes": 10, "dataset": "digits", "seed": seed}


def download_cifar10(root: Path, url: str = CIFAR10_URL, md5: str | None = CIFAR10_MD5) -> Path:
    """The folder of CIFAR-10's python batches under ``root``, downloaded and unpacked first if it is not there.

    The archive is written to a temporary name, checked against ``md5`` (None: unchecked, for test archives) and
    unpacked member by member, refusing paths that leave ``root``.
    """
    root = Path(root)
    folder = root / CIFAR10_FOLDER
    if all((folder / name).is_file() for name in (*CIFAR10_TRAIN_BATCHES, CIFAR10_TEST_BATCH)):
        return folder
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=root, suffix=".tar.gz", delete=False) as handle:
        partial = Path(handle.name)
    try:
        log.info("downloading CIFAR-10 from %s", url)
        with urllib.request.urlopen(url) as response, partial.open("wb") as out:  # noqa: S310 -- a fixed or configured URL
            shutil.copyfileobj(response, out)
        if md5 is not None:
            digest = hashlib.md5(partial.read_bytes()).hexdigest()  # noqa: S324 -- the archive's published checksum
            if digest != md5:
                raise ValueError(f"{url}: MD5 {digest} does not match the published {md5}; the download is damaged")
        with tarfile.open(partial, "r:gz") as archive:
            for member in archive.getmembers():
                target = (root / member.name).resolve()
                if not target.is_relative_to(root.resolve()) or not (member.isfile() or member.isdir()):
                    raise ValueError(f"{url}: refusing archive member {member.name!r}")
            archive.extractall(root)  # noqa: S202 -- members checked above
    finally:
        partial.unlink(missing_ok=True)
    missing = [name for name in (*CIFAR10_TRAIN_BATCHES, CIFAR10_TEST_BATCH) if not (folder / name).is_file()]
    if missing:
        raise ValueError(f"{url}: the archive has no {CIFAR10_FOLDER}/{missing[0]}")
    return folder


def read_cifar10_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One python-pickle batch: images (N, 3, 32, 32) uint8 and labels (N,) int64."""
    with Path(path).open("rb") as handle:
        batch = pickle.load(handle, encoding="bytes")  # noqa: S301 -- the dataset's own format, MD5-checked
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if data is None or labels is None:
        raise ValueError(f"{path}: not a CIFAR-10 batch (no 'data' and 'labels')")
    data = np.asarray(data, dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise ValueError(f"{path}: expected data of shape (N, 3072) and N labels, got {data.shape} and {len(labels)}")
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


def cifar10_split(folder: Path, seed: int = 0, validation: int = CIFAR10_VALIDATION) -> dict:
    """CIFAR-10 as normalised (N, 3, 32, 32) floats: train minus ``validation`` held-out images, and the test set."""
    parts = [read_cifar10_batch(Path(folder) / name) for name in CIFAR10_TRAIN_BATCHES]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    test_images, test_labels = read_cifar10_batch(Path(folder) / CIFAR10_TEST_BATCH)
    if not 0 < validation < len(labels):
        raise ValueError(f"validation size {validation} must be between 0 and the {len(labels)} training images")
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    val_index, train_index = order[:validation], order[validation:]

    def normalise(array: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(array).float() / 255.0
        return (x - torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)) / torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)

    x, y = normalise(images), torch.from_numpy(labels)
    return {"train_x": x[train_index], "train_y": y[train_index], "val_x": x[val_index], "val_y": y[val_index],
            "test_x": normalise(test_images), "test_y": torch.from_numpy(test_labels), "classes": 10,
            "dataset": "cifar10", "seed": seed}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=DATASETS, required=True)
    parser.add_argument("--seed", type=int, default=0, help="seed of the split")
    parser.add_argument("--root", type=Path, default=None, help="cifar10: folder holding (or receiving) the batches")
    parser.add_argument("--url", default=CIFAR10_URL, help="cifar10: where the archive is downloaded from")
    parser.add_argument("--md5", default=CIFAR10_MD5, help="cifar10: the archive's MD5 ('none' skips the check)")
    parser.add_argument("--validation", type=int, default=CIFAR10_VALIDATION)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    if args.dataset == "digits":
        split = digits_split(args.seed)
    else:
        if args.root is None:
            parser.error("classification.data_dir: CIFAR-10 needs a folder for its batches")
        folder = download_cifar10(args.root, args.url, None if args.md5 == "none" else args.md5)
        split = cifar10_split(folder, args.seed, args.validation)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    partial = args.output.with_name(args.output.name + ".partial")
    torch.save(split, partial)
    partial.replace(args.output)
    log.info("%s: %d train, %d validation, %d test images -> %s", args.dataset, len(split["train_y"]),
             len(split["val_y"]), len(split["test_y"]), args.output)


if __name__ == "__main__":
    main()

"""CIFAR-10 loading on a small local archive in the real format (python-pickle batches in a .tar.gz)."""

from __future__ import annotations

import hashlib
import io
import pickle
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from prefdisco.classification.data import (
    CIFAR10_FOLDER,
    CIFAR10_TEST_BATCH,
    CIFAR10_TRAIN_BATCHES,
    cifar10_split,
    download_cifar10,
    read_cifar10_batch,
)

PER_BATCH = 12


def batch_bytes(seed: int, n: int) -> bytes:
    rng = np.random.default_rng(seed)
    batch = {b"batch_label": f"batch {seed}".encode(), b"labels": [int(v) for v in rng.integers(0, 10, n)],
             b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"filenames": [b"x.png"] * n}
    return pickle.dumps(batch, protocol=2)  # the official archive's pickles are protocol 2, bytes keys


@pytest.fixture()
def archive(tmp_path) -> Path:
    path = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for seed, name in enumerate((*CIFAR10_TRAIN_BATCHES, CIFAR10_TEST_BATCH)):
            data = batch_bytes(seed, PER_BATCH)
            info = tarfile.TarInfo(f"{CIFAR10_FOLDER}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_download_unpacks_checks_and_reads_the_real_format(archive, tmp_path):
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    folder = download_cifar10(tmp_path / "root", archive.as_uri(), md5)
    images, labels = read_cifar10_batch(folder / "data_batch_3")
    assert images.shape == (PER_BATCH, 3, 32, 32) and images.dtype == np.uint8 and labels.shape == (PER_BATCH,)
    raw = pickle.loads(batch_bytes(2, PER_BATCH))
    assert np.array_equal(images[0, 0, 0, :], raw[b"data"][0, :32])  # row-major: channel, row, column
    assert download_cifar10(tmp_path / "root", "file:///nonexistent", md5) == folder  # present: no second download

    split = cifar10_split(folder, seed=0, validation=10)
    assert len(split["train_y"]) == 5 * PER_BATCH - 10 and len(split["val_y"]) == 10
    assert len(split["test_y"]) == PER_BATCH and split["train_x"].shape[1:] == (3, 32, 32)
    assert split["train_x"].dtype == torch.float32 and abs(float(split["train_x"].mean())) < 1.0


def test_a_damaged_download_is_refused(archive, tmp_path):
    with pytest.raises(ValueError, match="MD5"):
        download_cifar10(tmp_path / "root", archive.as_uri(), "0" * 32)
    assert not (tmp_path / "root" / CIFAR10_FOLDER).exists()


def test_the_data_stage_writes_the_split(archive, tmp_path):
    out = tmp_path / "data.pt"
    subprocess.run([sys.executable, "-m", "prefdisco.classification.data", "--dataset", "cifar10", "--root",
                    str(tmp_path / "root"), "--url", archive.as_uri(), "--md5", "none", "--validation", "6",
                    "--output", str(out)], check=True, capture_output=True)
    split = torch.load(out)
    assert split["dataset"] == "cifar10" and len(split["val_y"]) == 6 and split["classes"] == 10

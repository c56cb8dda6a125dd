"""Shared test fixtures: paths to ../shared, real CIFAR-10 images, small helpers."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FIXTURES = SHARED / "fixtures" / "official"
CIFAR_ARCHIVE = SHARED / "data" / "cifar10" / "cifar10-jpg.tar.gz"
NB201_TABLE = SHARED / "data" / "nasbench201" / "nb201_cifar10.csv"


def require(path: Path) -> Path:
    """Skip the test with a clear reason when shared data is absent."""
    if not path.exists():
        pytest.skip(f"{path} is absent (shared data/fixtures live in ../shared)")
    return path


@pytest.fixture(scope="session")
def cifar_root(tmp_path_factory) -> Path:
    """The full shared CIFAR-10 JPEG set, extracted once per session."""
    from naonet.data.sources import extract_archive

    require(CIFAR_ARCHIVE)
    os.environ["NAONET_CACHE"] = str(tmp_path_factory.mktemp("naonet-cache"))
    return extract_archive(CIFAR_ARCHIVE)


@pytest.fixture(scope="session")
def cifar_mini(cifar_root, tmp_path_factory) -> Path:
    """A real CIFAR-10 subset: 60 training and 20 test images per class."""
    target = tmp_path_factory.mktemp("cifar-mini")
    for split, count in (("train", 60), ("test", 20)):
        for class_dir in sorted((cifar_root / split).iterdir()):
            out = target / split / class_dir.name
            out.mkdir(parents=True)
            for image in sorted(class_dir.iterdir())[:count]:
                shutil.copy(image, out / image.name)
    return target


def run_nao(*args: str, timeout: float = 600, env: dict | None = None
            ) -> subprocess.CompletedProcess:
    """Run the ``nao`` command line in a fresh process."""
    environment = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", **(env or {})}
    return subprocess.run([sys.executable, "-m", "naonet.cli.main", *args],
                          capture_output=True, text=True, timeout=timeout, env=environment)

"""Shared test fixtures: paths to ../shared, real CIFAR-10 images, small helpers."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NAONET_SHARED", REPO.parent / "shared"))  # ../shared by default
FIXTURES = SHARED / "fixtures" / "official"
CIFAR_ARCHIVE = SHARED / "data" / "cifar10" / "cifar10-jpg.tar.gz"
NB201_TABLE = SHARED / "data" / "nasbench201" / "nb201_cifar10.csv"


def require(path: Path) -> Path:
    """Skip the test with a clear reason when shared data is absent."""
    if not path.exists():
        pytest.skip(f"{path} is absent (shared data/fixtures live in ../shared)")
    return path


@pytest.fixture(scope="module", autouse=True)
def thread_count(request):
    """A module marked ``pytestmark = pytest.mark.threads(N)`` runs on N compute threads,
    and the count is restored after it: the pin stays inside that module, so every other
    module runs on torch's default count, as a user's process does."""
    marker = request.node.get_closest_marker("threads")
    if marker is None:
        yield
        return
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(marker.args[0])
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory) -> Path:
    """Extracted archives, decoded images and latencies go to this session's own cache,
    never to the user's ~/.cache/naonet."""
    folder = tmp_path_factory.mktemp("naonet-cache")
    os.environ["NAONET_CACHE"] = str(folder)
    return folder


@pytest.fixture(scope="session")
def cifar_root(private_cache) -> Path:
    """The full shared CIFAR-10 JPEG set, extracted once per session."""
    from naonet.data.sources import extract_archive

    require(CIFAR_ARCHIVE)
    return extract_archive(CIFAR_ARCHIVE)


MINI_COUNTS = {"train": 60, "test": 20}  # images per class in cifar_mini


@pytest.fixture(scope="session")
def cifar_mini(tmp_path_factory) -> Path:
    """A real CIFAR-10 subset: the first 60 training and 20 test images of every class,
    extracted straight from the shared archive (not the other 59,200)."""
    import tarfile

    require(CIFAR_ARCHIVE)
    target = tmp_path_factory.mktemp("cifar-mini")
    with tarfile.open(CIFAR_ARCHIVE) as archive:
        images: dict[tuple[str, str], list[tarfile.TarInfo]] = {}
        for member in archive.getmembers():
            parts = member.name.split("/")
            if member.isfile() and len(parts) == 3 and parts[0] in MINI_COUNTS:
                images.setdefault((parts[0], parts[1]), []).append(member)
        chosen = [member for (split, _), members in sorted(images.items())
                  for member in sorted(members, key=lambda m: m.name)[:MINI_COUNTS[split]]]
        archive.extractall(target, members=chosen, filter="data")
    return target


def relative_error(value, reference) -> float:
    """max |value - reference| / max |reference| (the scale of the logits), in float64;
    the fixtures' README gives released logits 1e-4 of it."""
    return ((value.double() - reference.double()).abs().max()
            / reference.double().abs().max().clamp_min(1e-12)).item()


def nao_in_process(capsys, *args: str):
    """Run the ``nao`` command line in this process: (exit status, stdout, stderr)."""
    from naonet.cli.main import main

    capsys.readouterr()
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def run_nao(*args: str, timeout: float = 600, env: dict | None = None
            ) -> subprocess.CompletedProcess:
    """Run the ``nao`` command line in a fresh process."""
    environment = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", **(env or {})}
    return subprocess.run([sys.executable, "-m", "naonet.cli.main", *args],
                          capture_output=True, text=True, timeout=timeout, env=environment)


def kill_when(process: subprocess.Popen, holds, what: str, timeout: float = 600) -> None:
    """SIGKILL ``process`` once ``holds()`` is true of what it has written so far. Once it
    looks true, the process is paused (SIGSTOP) and ``holds`` looks again, so it is
    killed in the state that was seen: a test that looked and then killed could lose the
    moment it wanted when the machine stalled it in between (under load, for seconds)."""
    import signal
    import time

    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            assert process.poll() is None, f"the process ended before {what}"
            if holds():  # then look again with the process paused
                process.send_signal(signal.SIGSTOP)
                _wait_until_stopped(process.pid)
                if holds():
                    process.send_signal(signal.SIGKILL)
                    return
                process.send_signal(signal.SIGCONT)
            time.sleep(0.05)
        raise AssertionError(f"{what} never came")
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=60)


def _wait_until_stopped(pid: int) -> None:
    """Return once the system reports every thread of process ``pid`` stopped (a signal
    is delivered after kill() returns), or the process gone."""
    import time

    def state(stat: Path) -> str:
        return stat.read_text().rsplit(")", 1)[1].split()[0]

    while True:
        try:
            states = [state(task / "stat") for task in Path(f"/proc/{pid}/task").iterdir()]
        except (FileNotFoundError, ProcessLookupError):
            return
        if all(value in ("T", "t", "Z", "X") for value in states):
            return
        time.sleep(0.001)


@pytest.fixture
def released_file(tmp_path):
    """A file as the released code saves it (weights beside a pickled argparse.Namespace)
    holding the released C 8 N 1 CIFAR network, and that network's fixture."""
    import argparse

    import torch

    fixture = torch.load(require(FIXTURES / "naonet_v2_cifar_c8_l1.pt"), weights_only=True)
    path = tmp_path / "model.pt"
    # What the released code saves: weights next to a pickled argparse.Namespace.
    args = argparse.Namespace(arch=fixture["arch"], dataset="cifar10", search_space="small",
                              layers=1, channels=8)
    torch.save({"model": fixture["state_dict"], "args": args, "epoch": 600}, path)
    return path, fixture


def seed_globally(seed: int) -> None:
    """Seed every global random stream (Python's, NumPy's, torch's CPU one)."""
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def global_draws() -> tuple:
    """One draw from each global random stream."""
    import random

    import numpy as np
    import torch

    return random.random(), float(np.random.rand()), torch.rand(1).item()

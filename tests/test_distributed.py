"""Two-process data-parallel training on the CPU (torchrun, gloo)."""

import json
import os
import subprocess
import sys

import pytest
import torch

pytestmark = pytest.mark.dist


def test_two_process_run_trains_writes_once_and_averages_over_ranks(cifar_mini, tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--standalone", "-m", "naonet.cli.main", "train",
               "--data", str(cifar_mini), "--output", str(tmp_path), "--channels", "8",
               "--layers", "1", "--batch-size", "32", "--epochs", "1", "--train-subset", "256",
               "--test-subset", "100", "--device", "cpu", "--no-progress", "--lr", "0.05"]
    environment = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600,
                            env=environment)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "x 2 processes" in result.stdout
    assert result.stdout.count("done: epoch 1/1") == 1  # only rank 0 reports
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".naonet.lock", "config.yaml", "last.pt", "metrics.jsonl", "result.json"]
    (record,) = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert record["train_images"] == 256  # both ranks' 128 images summed
    assert record["lr"] == pytest.approx(0.1)  # lr scaled with the 2 processes
    checkpoint = torch.load(tmp_path / "last.pt", weights_only=True)
    assert checkpoint["epoch"] == 1
    assert not any(key.startswith("module.") for key in checkpoint["model"])

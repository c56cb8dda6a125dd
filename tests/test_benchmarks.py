"""The benchmark scripts' own logic: what they estimate and choose from what they measure
(their timings are never asserted)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def nb201_step(monkeypatch):
    """benchmarks/nb201_step.py as a module; its folder stays on the path, where the
    worker processes it spawns find it."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import nb201_step

    return nb201_step


def test_the_step_probe_estimates_the_scripts_training_and_picks_the_soonest_layout(
        nb201_step):
    measured = {
        1: {"bf16": [{"steps": 100, "seconds": 1.0}],
            "none": [{"steps": 125, "seconds": 1.0}]},
        3: {"bf16": [{"steps": 40, "seconds": 1.0}] * 3,
            "none": [{"steps": 50, "seconds": 1.0}, {"steps": 50, "seconds": 1.0},
                     {"steps": 25, "seconds": 0.5}]},
    }
    rows = nb201_step.summarise(measured, steps_per_epoch=391, ranking_epochs=50)
    by = {(row["processes"], row["amp"]): row for row in rows}
    assert by[1, "bf16"]["step_ms"] == pytest.approx(10.0)
    assert by[3, "bf16"]["step_ms"] == pytest.approx(25.0)
    assert by[3, "bf16"]["steps_per_second"] == pytest.approx(120.0)
    assert by[3, "bf16"]["ratio"] == pytest.approx(1.0)  # the baseline
    assert by[1, "none"]["ratio"] == pytest.approx(125 / 120)
    # one after another: both 50-epoch rankings and the search's 3 x 8 epochs of 391
    # steps, every step at one process's 8 ms
    assert by[1, "none"]["estimated_seconds"] == pytest.approx((2 * 50 + 24) * 391 * 0.008)
    assert by[1, "none"]["layout"] == "one after another"
    # at once: a ranking's 50 epochs at 20 ms a step decide
    assert by[3, "none"]["estimated_seconds"] == pytest.approx(50 * 391 * 0.020)
    assert by[3, "none"]["layout"] == "3 at once"
    assert nb201_step.fastest(rows) is by[1, "none"]  # 388 s against 391 s


def test_the_step_probe_runs_its_layouts_on_the_cpu_and_writes_its_choice(
        nb201_step, tmp_path):
    report, env = tmp_path / "step.json", tmp_path / "layout.env"
    rows = nb201_step.main([
        "--device", "cpu", "--cells-per-stage", "1", "--image-size", "8",
        "--seconds", "0.2", "--warmup", "0", "--chunk", "1", "--processes", "2",
        "--amps", "none", "--threads", "1", "--json", str(report), "--env-file", str(env)])
    assert [(row["processes"], row["amp"]) for row in rows] == [(1, "none"), (2, "none")]
    saved = json.loads(report.read_text())
    assert saved["device"].startswith("cpu")
    assert [len(runs["none"]) for runs in saved["measured"].values()] == [1, 2]
    assert all(run["steps"] >= 1 for runs in saved["measured"].values()
               for run in runs["none"])
    # the script runs its three at once or one after another: two at once is no choice
    assert env.read_text() == "NAONET_GPU_AT_ONCE=1\nNAONET_GPU_AMP=none\n"


def test_the_gpu_script_refuses_a_layout_it_does_not_have(tmp_path):
    result = subprocess.run(
        ["bash", str(BENCHMARKS / "gpu_nb201.sh"), str(tmp_path / "out")],
        capture_output=True, text=True, env={**os.environ, "NAONET_GPU_AT_ONCE": "2"})
    assert result.returncode == 2
    assert "NAONET_GPU_AT_ONCE is 3 (the three runs at once) or 1" in result.stdout
    assert not (tmp_path / "out").exists()

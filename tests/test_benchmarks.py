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


def test_the_step_probe_estimates_the_script_per_layout_and_keeps_what_fits(nb201_step):
    measured = {
        1: {"bf16": [{"steps": 100, "seconds": 1.0}],
            "none": [{"steps": 125, "seconds": 1.0}]},
        3: {"bf16": [{"steps": 40, "seconds": 1.0}] * 3,
            "none": [{"steps": 50, "seconds": 1.0}, {"steps": 50, "seconds": 1.0},
                     {"steps": 25, "seconds": 0.5}]},
    }
    plan = nb201_step.Plan(budget=480, ranking_steps=50 * 391, search_steps=24 * 391,
                           ranking_overhead=25, search_overhead=90)
    rows = nb201_step.summarise(measured, plan)
    by = {(row["processes"], row["amp"]): row for row in rows}
    assert by[1, "bf16"]["step_ms"] == pytest.approx(10.0)
    assert by[3, "bf16"]["step_ms"] == pytest.approx(25.0)
    assert by[3, "bf16"]["steps_per_second"] == pytest.approx(120.0)
    assert by[3, "bf16"]["ratio"] == pytest.approx(1.0)  # the baseline
    assert by[1, "none"]["ratio"] == pytest.approx(125 / 120)
    # one after another everything adds up: both rankings and the search at 8 ms a step
    # and each run's allowance
    assert by[1, "none"]["estimated_seconds"] == pytest.approx(
        (2 * 50 + 24) * 391 * 0.008 + 2 * 25 + 90)
    # ... and uniform's 181 s overrun the 172 s the script gives it (460 s to the
    # deadline, 60 % of 480 kept for the two runs after it)
    assert not by[1, "none"]["fits"]
    # at once, the longest run decides: a ranking's 50 epochs at 20 ms a step
    assert by[3, "none"]["estimated_seconds"] == pytest.approx(50 * 391 * 0.020 + 25)
    assert by[3, "none"]["fits"] and not by[3, "bf16"]["fits"]  # 416 s, 514 s of 460
    assert nb201_step.choose(rows) is by[3, "none"]
    # where one after another fits, and sooner, it is chosen
    measured[1]["none"] = [{"steps": 200, "seconds": 1.0}]  # 5 ms a step: 382 s in all
    rows = nb201_step.summarise(measured, plan)
    assert nb201_step.choose(rows)["layout"] == "one after another"
    # where nothing fits, the three at once: every run keeps what it scored by then
    for runs in measured[3].values():
        runs[:] = [{"steps": 10, "seconds": 1.0}] * 3
    measured[1]["none"] = [{"steps": 50, "seconds": 1.0}]
    rows = nb201_step.summarise(measured, plan)
    assert not any(row["fits"] for row in rows)
    assert nb201_step.choose(rows)["processes"] == 3


def test_one_after_another_fits_as_the_scripts_limits_allow(nb201_step):
    # uniform may take 480 - 20 - 288 = 172 s; balanced what is left less 96 s; the
    # search the rest: a quick uniform hands its time on
    assert nb201_step.fits_one_after_another([172, 192, 96], 480)
    assert not nb201_step.fits_one_after_another([173, 150, 50], 480)
    assert nb201_step.fits_one_after_another([100, 264, 96], 480)
    assert not nb201_step.fits_one_after_another([100, 264, 97], 480)


def test_the_step_probe_runs_its_layouts_on_the_cpu_and_writes_its_choice(
        nb201_step, tmp_path):
    report, env = tmp_path / "step.json", tmp_path / "layout.env"
    rows = nb201_step.main([
        "--device", "cpu", "--cells-per-stage", "1", "--image-size", "8",
        "--seconds", "0.2", "--warmup", "0", "--chunk", "1", "--processes", "2",
        "--amps", "none", "--threads", "1", "--json", str(report), "--env-file", str(env),
        "--start-timeout", "600"])  # 13 s here idle, 107 s beside 8 busy processes
    assert [(row["processes"], row["amp"]) for row in rows] == [(1, "none"), (2, "none")]
    saved = json.loads(report.read_text())
    assert saved["device"].startswith("cpu")
    assert [len(runs["none"]) for runs in saved["measured"].values()] == [1, 2]
    assert all(run["steps"] >= 1 for runs in saved["measured"].values()
               for run in runs["none"])
    # the script runs its three at once or one after another: two at once is no choice
    assert env.read_text() == "NAONET_GPU_AT_ONCE=1\nNAONET_GPU_AMP=none\n"
    assert all(isinstance(row["fits"], bool) for row in rows)


def test_the_gpu_script_refuses_a_layout_it_does_not_have(tmp_path):
    result = subprocess.run(
        ["bash", str(BENCHMARKS / "gpu_nb201.sh"), str(tmp_path / "out")],
        capture_output=True, text=True, env={**os.environ, "NAONET_GPU_AT_ONCE": "2"})
    assert result.returncode == 2
    assert "NAONET_GPU_AT_ONCE is 3 (the three runs at once) or 1" in result.stdout
    assert not (tmp_path / "out").exists()


FAKE_PYTHON = """#!/usr/bin/env bash
# Stands in for python3: the probe records its arguments and chooses one after another
# with float32; anything else (gpu_nb201.sh's CUDA check, pytest) finds no GPU.
case "$*" in
  *nb201_step.py*)
    echo "$*" >> "$FAKE_LOG"
    while [ $# -gt 0 ]; do
      [ "$1" = --env-file ] && printf 'NAONET_GPU_AT_ONCE=1\\nNAONET_GPU_AMP=none\\n' > "$2"
      shift
    done ;;
  *) exit 1 ;;
esac
"""


@pytest.mark.parametrize("given, probed_amps, layout", [
    ({}, "--amps bf16 none", "NAONET_GPU_AT_ONCE=1, NAONET_GPU_AMP=none"),
    # a given autocast setting is the only one measured, and wins over the probe's
    ({"NAONET_GPU_AMP": "bf16"}, "--amps bf16", "NAONET_GPU_AT_ONCE=1, NAONET_GPU_AMP=bf16"),
    ({"NAONET_GPU_AMP": "bf16", "NAONET_GPU_AT_ONCE": "3"}, None,
     "NAONET_GPU_AT_ONCE=3, NAONET_GPU_AMP=bf16"),
])
def test_the_gpu_session_runs_the_probe_and_lays_gpu_nb201_out_as_it_chose(
        tmp_path, given, probed_amps, layout):
    from conftest import SHARED, require

    require(SHARED / "data")
    bin_folder = tmp_path / "bin"
    bin_folder.mkdir()
    for name, text in (("python3", FAKE_PYTHON), ("nvidia-smi", "#!/bin/sh\necho fake\n")):
        (bin_folder / name).write_text(text)
        (bin_folder / name).chmod(0o755)
    log = tmp_path / "probe.log"
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith("NAONET_GPU_")}
    environment.update(given, PATH=f"{bin_folder}:{os.environ['PATH']}", FAKE_LOG=str(log),
                       NAONET_SHARED=str(SHARED), TMPDIR=str(tmp_path))
    result = subprocess.run(["bash", str(BENCHMARKS / "gpu_session.sh"), str(tmp_path / "out")],
                            capture_output=True, text=True, env=environment, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    if probed_amps is None:
        assert "nb201_step.py skipped" in result.stdout and not log.exists()
    else:
        assert probed_amps in log.read_text() and "--budget 480" in log.read_text()
    assert "== gpu_nb201.sh (" in result.stdout and layout in result.stdout
    assert "no CUDA device visible" in result.stdout  # gpu_nb201.sh ran, and found none
    assert "== step_operators.py (" in result.stdout  # time was left for part (5)
    assert (tmp_path / "out" / "gpu-session.tar.gz").is_file()


def test_the_engine_clears_the_supernets_gradients_in_one_call(monkeypatch):
    """benchmarks/step_operators.py on the CPU: zero_grad clears the NB201 supernet's
    gradients one parameter at a time, the engine with one multi-tensor call, and the
    rest of the step is the same."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import step_operators

    from naonet.training import engine

    monkeypatch.setattr(engine, "zero_gradients", engine.zero_gradients)  # put back after
    args = step_operators.parse_arguments(["--device", "cpu", "--cells-per-stage", "1",
                                           "--image-size", "8", "--steps", "2"])
    baseline = step_operators.build(args, baseline=True)
    parameters = len(list(baseline.supernet.parameters()))
    zero_grad = step_operators.count(baseline, args)
    ours = step_operators.count(step_operators.build(args, baseline=False), args)
    assert zero_grad["clear gradients"] == parameters > 1
    assert ours["clear gradients"] == 1
    for phase in ("optimizer step", step_operators.REST):
        assert ours[phase] == zero_grad[phase]

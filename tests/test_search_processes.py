"""The search as separate processes: killed with SIGKILL and rerun, two gloo processes
under torchrun, and (slow) the quick preset on the whole shared CIFAR-10."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from naonet.spaces import Architecture

from conftest import CIFAR_ARCHIVE, NB201_TABLE, kill_when, require, run_nao

TINY_FLAGS = dict(device="cpu", valid_size=60, train_subset=192, channels=4, layers=1,
                  rounds=2, seed_pool_size=6, new_architectures=3, top_seeds=4,
                  supernet_epochs=3, batch_size=32, eval_batch_size=30, controller_epochs=3,
                  controller_batch_size=20, rerank_top=2, rerank_epochs=1, rerank_channels=4,
                  rerank_layers=1)
OUTPUTS = ("arch_pool", "arch_pool.perf", "arch_pool.final", "arch_pool.perf.final")


def flags(values: dict) -> list[str]:
    return [item for key, value in values.items()
            for item in ("--" + key.replace("_", "-"), str(value))]


def search_command(data: Path, output: Path, **overrides) -> list[str]:
    return ["search", "--data", str(data), "--output", str(output), "--no-progress",
            *flags({**TINY_FLAGS, **overrides})]


def checked(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def saved_state(run_dir: Path) -> dict:
    return torch.load(run_dir / "search_state.pt", weights_only=True)["state"]


@pytest.mark.slow  # resume itself: test_search.py::test_interrupted_search_resumes_...
@pytest.mark.parametrize("space", ["small", "nb201"])
def test_sigkill_during_round_two_training_resumes_to_the_same_outputs(space, cifar_mini,
                                                                      tmp_path):
    space_flags = dict(space=space)
    if space == "nb201":  # with the ground-truth reports, which must survive the kill too
        space_flags.update(reference=f"table:{require(NB201_TABLE)}", rerank_top=0)
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    checked(run_nao(*search_command(cifar_mini, reference, **space_flags)))
    command = [sys.executable, "-m", "naonet.cli.main",
               *search_command(cifar_mini, killed, **space_flags)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    kill_when(process, lambda: in_round_two_training(killed),
              "round 2 checkpointing a supernet epoch")
    resumed = checked(run_nao(*search_command(cifar_mini, killed, **space_flags)))
    assert "resuming in round 2, phase train" in resumed.stdout
    for name in OUTPUTS + ("pool.json",):
        assert (killed / name).read_text() == (reference / name).read_text(), name
    if space == "nb201":
        rounds = [json.loads(line) for line in (killed / "rounds.jsonl").read_text().splitlines()]
        truth = [record["reference"] for record in rounds]
        assert truth == [json.loads(line)["reference"] for line in
                         (reference / "rounds.jsonl").read_text().splitlines()]
        assert all(-1 <= record["kendall_tau"] <= 1 for record in truth)


def in_round_two_training(run_dir: Path) -> bool:
    """Whether round 2 has checkpointed a supernet epoch (the checkpoint is newer than
    round 1's summary) and its training goes on."""
    summary, state_file = run_dir / "rounds.jsonl", run_dir / "search_state.pt"
    if not (summary.exists() and summary.read_text().count("\n") == 1
            and state_file.stat().st_mtime_ns > summary.stat().st_mtime_ns):
        return False
    state = saved_state(run_dir)
    return (state["round"], state["phase"]) == (1, "train")


@pytest.mark.dist
@pytest.mark.slow  # the default run keeps the two-process training (test_distributed.py)
def test_two_gloo_processes_search_and_write_once(cifar_mini, tmp_path):
    output = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--standalone", "-m", "naonet.cli.main",
               *search_command(cifar_mini, output, supernet_epochs=1, train_subset=128)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900,
                            env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE",
                                 "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "x 2 processes" in result.stdout
    for text in ("round 1/2:", "round 2/2:", "re-rank 2/2", "done:"):
        assert result.stdout.count(text) == 1, text  # rank 0 alone reports
    pool = json.loads((output / "pool.json").read_text())
    assert pool["complete"] and len(pool["architectures"]) > TINY_FLAGS["seed_pool_size"]
    final = (output / "arch_pool.final").read_text().splitlines()
    assert len(final) == 2 and all(Architecture.parse(line) for line in final)
    assert (output / "scores.png").exists()
    # no temporary leftovers; the lock file says which command made the folder
    assert [p.name for p in output.iterdir() if p.name.startswith(".")] == [".naonet.lock"]


def ranking_flags(**overrides) -> list[str]:
    """TINY_FLAGS without the search's options the ranking experiment refuses (it does
    not read them: the rounds, the controller, the re-rank)."""
    from naonet.search.ranking import UNREAD_SEARCH_OPTIONS

    values = {**TINY_FLAGS, **overrides}
    return flags({key: value for key, value in values.items()
                  if key not in UNREAD_SEARCH_OPTIONS})


def ranking_command(data: Path, table: Path, output: Path) -> list[str]:
    return ["correlate", "--supernet", "--reference", f"table:{table}", "--data", str(data),
            "--archs", "6", "--samplings", "uniform,balanced", "--score-every", "2",
            "--score-metric", "loss", "--output", str(output),
            *ranking_flags(supernet_epochs=6)]


@pytest.mark.slow  # resume itself: test_analysis.py::test_an_experiment_stopped_mid_...
def test_sigkill_during_the_ranking_experiment_resumes_to_the_same_outputs(cifar_mini,
                                                                          tmp_path):
    from nb201_synthetic import write_synthetic_table

    table = write_synthetic_table(tmp_path / "table.csv")
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    checked(run_nao(*ranking_command(cifar_mini, table, reference)))
    process = subprocess.Popen(
        [sys.executable, "-m", "naonet.cli.main", *ranking_command(cifar_mini, table, killed)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    kill_when(process, lambda: in_second_sampling(killed / "ranking_state.pt"),
              "an epoch of the second sampling")
    resumed = checked(run_nao(*ranking_command(cifar_mini, table, killed)))
    assert "balanced: resumed after epoch" in resumed.stderr
    for name in ("scores_uniform.txt", "scores_balanced.txt", "parameters.txt"):
        assert (killed / name).read_text() == (reference / name).read_text(), name
    curves = [{sampling: [(point["epochs"], point["scores"]) for point in result["curve"]]
               for sampling, result in json.loads((folder / "summary.json").read_text())[
                   "samplings"].items()} for folder in (killed, reference)]
    assert curves[0] == curves[1]
    # a write the kill cut short leaves no temporary file once the rerun has claimed it
    assert [p.name for p in killed.iterdir() if p.name.startswith(".")] == [".naonet.lock"]


def in_second_sampling(state_file: Path) -> bool:
    """Whether the checkpoint holds the second sampling after an epoch of it."""
    if not state_file.exists():
        return False
    state = torch.load(state_file, weights_only=True)
    return len(state["finished"]) == 1 and state["current"] is not None


@pytest.mark.dist
@pytest.mark.slow
def test_two_gloo_processes_run_the_ranking_experiment_and_write_once(cifar_mini, tmp_path):
    from nb201_synthetic import write_synthetic_table

    table = write_synthetic_table(tmp_path / "table.csv")
    output = tmp_path / "ranking"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--standalone", "-m", "naonet.cli.main", "correlate", "--supernet",
               "--reference", f"table:{table}", "--data", str(cifar_mini), "--archs", "6",
               "--samplings", "balanced", "--score-every", "1", "--output", str(output),
               *ranking_flags(supernet_epochs=2, train_subset=128)]
    environment = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=900,
                            env=environment)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("supernet balanced") == 1  # rank 0 alone reports
    assert result.stderr.count("balanced: epoch 2/2") == 1
    summary = json.loads((output / "summary.json").read_text())
    assert summary["finished"] is True
    curve = summary["samplings"]["balanced"]["curve"]
    # 128 images an epoch: 2 steps of 32 on each of the 2 processes
    assert [(point["epochs"], point["images"]) for point in curve] == [(1, 128), (2, 256)]
    assert len((output / "scores_balanced.txt").read_text().splitlines()) == 6
    assert [p.name for p in output.iterdir() if p.name.startswith(".")] == [".naonet.lock"]
    # both processes read the finished checkpoint, and neither trains again
    again = subprocess.run(command, capture_output=True, text=True, timeout=900,
                           env=environment)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("every sampling finished") == 1
    assert "epoch" not in again.stderr and again.stdout == result.stdout


@pytest.mark.slow
def test_quick_preset_on_the_shared_cifar10(tmp_path):
    """The README's first search: the quick preset on all of CIFAR-10, then nao train."""
    archive = require(CIFAR_ARCHIVE)
    output = tmp_path / "quick"
    # its time is measured by benchmarks/search.py, not asserted here
    checked(run_nao("search", "--preset", "quick-cifar10", "--data", str(archive),
                    "--output", str(output), "--no-progress", timeout=1800))
    final = (output / "arch_pool.final").read_text().splitlines()
    records = json.loads((output / "arch_pool.final.json").read_text())["architectures"]
    assert len(final) == 5 and all(r["rerank_accuracy"] is not None for r in records)
    assert (output / "scores.png").read_bytes()[:4] == b"\x89PNG"
    trained = checked(run_nao("train", "--arch", final[0], "--data", str(archive),
                              "--channels", "4", "--layers", "1", "--epochs", "1",
                              "--train-subset", "64", "--test-subset", "64", "--no-progress",
                              "--output", str(tmp_path / "train")))
    assert final[0] in (tmp_path / "train" / "result.json").read_text(), trained.stdout

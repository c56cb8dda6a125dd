"""Two-process data-parallel training on the CPU (torchrun, gloo)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import nao_in_process

# one thread, as each rank runs: nao eval here gives the ranks' top-1 figure, which a
# near-tie in a barely trained network's logits could flip under another thread count
pytestmark = [pytest.mark.dist, pytest.mark.threads(1)]


def test_two_process_run_trains_writes_once_and_sums_over_ranks(cifar_mini, tmp_path, capsys):
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
    assert len(checkpoint["rng_other_ranks"]) == 1  # rank 1's streams, for a resume
    # The figures reported are those of the checkpoint: rank 1 evaluated its half with
    # the BatchNorm statistics its own last batch left (DDP copies rank 0's only at the
    # start of a training forward), so the run reported figures that nao eval of its
    # last.pt did not give.
    result = json.loads((tmp_path / "result.json").read_text())
    status, printed, err = nao_in_process(capsys, "eval", str(tmp_path / "last.pt"), "--data",
                                          str(cifar_mini), "--test-subset", "100",
                                          "--device", "cpu", "--json")
    assert status == 0, err
    evaluated = json.loads(printed)
    assert evaluated["top1"] == result["test_top1"]
    # the losses are summed over the ranks' halves in another order: float32 sums of
    # 100 losses of order 1 agree to far better than 1e-5
    assert evaluated["loss"] == pytest.approx(result["test_loss"], rel=1e-5)


STEPS_ON_HALVES = """
import sys

import torch
from torch import nn

from naonet.distributed import (
    close_distributed,
    exit_process,
    init_distributed,
    wrap_data_parallel,
)
from naonet.training.engine import Precision, train_one_epoch
from naonet.training.optimizer import sgd


class Net(nn.Module):  # no BatchNorm: its batch statistics would differ per half
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3))

    def forward(self, images):
        return self.body(images), None


def batches(rank, world_size):  # the same 3 batches of 8; each rank takes its share
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        images = torch.randn(8, 6, generator=generator, dtype=torch.float64)
        labels = torch.randint(0, 3, (8,), generator=generator)
        yield images[rank::world_size], labels[rank::world_size]


context = init_distributed("cpu")
torch.manual_seed(0)
network = Net().double()
model = wrap_data_parallel(network, context)
optimizer = sgd(network, 0.1, 0.9, 1e-3)
stats = train_one_epoch(model, batches(context.rank, context.world_size), optimizer,
                        nn.CrossEntropyLoss(), aux_weight=0.0, grad_clip=1e9,
                        precision=Precision("cpu"), scaler=None, first_step=0,
                        total_steps=3)
if context.rank == 0:
    torch.save({"weights": network.state_dict(), "images": stats.images,
                "loss": stats.loss}, sys.argv[1])
del model  # a script ends as every nao command does: the DDP wrapper first, then the group
close_distributed()
exit_process(0)
"""


def test_two_processes_step_as_one_process_on_the_whole_batch(tmp_path):
    """The gradient is averaged over the ranks: three SGD steps (momentum, weight decay)
    with each of two processes on half of every batch give the weights of one process
    on the whole batches."""
    script = tmp_path / "steps.py"
    script.write_text(STEPS_ON_HALVES)
    environment = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"}
    for command, output in (
            ([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
              "--standalone"], "two.pt"),
            ([sys.executable], "one.pt")):
        result = subprocess.run([*command, str(script), str(tmp_path / output)],
                                capture_output=True, text=True, timeout=300, env=environment)
        assert result.returncode == 0, result.stderr[-3000:]
    two, one = (torch.load(tmp_path / name, weights_only=True) for name in ("two.pt", "one.pt"))
    assert two["images"] == one["images"] == 24  # both ranks' 12 images counted
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-12)
    # float64: the mean of two half-batch means differs from the whole batch's mean by a
    # few roundings (eps 2.2e-16) of gradients of order 1, over 3 steps; 1e-12 leaves
    # three orders to spare and is far below what a missing average would give (about
    # 0.1 x the gradient of a step)
    for name, weight in one["weights"].items():
        assert torch.allclose(two["weights"][name], weight, rtol=0, atol=1e-12), name


INTERRUPTED_TRAINING = """
import inspect
import sys

from naonet.training import run
from naonet.training.config import TrainConfig

stop_before = int(sys.argv[2])  # the epoch every rank stops before (0: none)
run_epoch = run._run_epoch


def stopping(*args, **kwargs):
    state = inspect.signature(run_epoch).bind(*args, **kwargs).arguments["state"]
    if state.epoch + 1 == stop_before:  # last.pt holds the epochs before: a kill here
        raise SystemExit(3)
    return run_epoch(*args, **kwargs)


run._run_epoch = stopping
run.train(TrainConfig(data=sys.argv[3], output=sys.argv[1], channels=8, layers=1,
                      batch_size=32, epochs=3, train_subset=256, test_subset=60, cutout=8,
                      keep_prob=0.8, drop_path_keep_prob=0.8, lr=0.05, device="cpu"), False)
from naonet.distributed import close_distributed, exit_process

close_distributed()
exit_process(0)
"""


def test_two_processes_resume_to_the_uninterrupted_run(cifar_mini, tmp_path):
    """A 2-process run stopped after epoch 1 and rerun ends as the uninterrupted run
    does. last.pt held rank 0's random streams alone, which the resume gave rank 1 too:
    from then on both ranks drew the same dropout, drop path and cutout (epoch 3's train
    loss 2.9714 against 2.9659 in a trial)."""
    script = tmp_path / "train.py"
    script.write_text(INTERRUPTED_TRAINING)
    environment = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"}
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
              "--standalone", str(script)]
    for output, stop_before in (("whole", 0), ("stopped", 2), ("stopped", 0)):
        result = subprocess.run([*launch, str(tmp_path / output), str(stop_before),
                                 str(cifar_mini)], capture_output=True, text=True,
                                timeout=600, env=environment)
        assert (result.returncode == 0) == (stop_before == 0), result.stderr[-3000:]
    whole, resumed = (torch.load(tmp_path / name / "last.pt", weights_only=True)
                      for name in ("whole", "stopped"))
    assert resumed["epoch"] == whole["epoch"] == 3
    for name, weight in whole["model"].items():
        assert torch.equal(resumed["model"][name], weight), name
    assert logged(tmp_path / "stopped") == logged(tmp_path / "whole")


def logged(run_dir) -> list[dict]:
    """A run's metrics.jsonl records but for their speed (images per second)."""
    return [{key: value for key, value in json.loads(line).items()
             if key != "train_images_per_second"}
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie no parent has reaped yet does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's prctl and /proc")
def test_a_sigkill_to_torchruns_process_group_ends_its_processes(cifar_mini, tmp_path):
    """torchrun starts each process in a session of its own: a SIGKILL to its process
    group (a timeout, a job scheduler) left both training to the end, holding the folder
    ("in use by nao train"), so a rerun could not resume. They now end with torchrun."""
    import fcntl
    import signal
    import time

    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--standalone", "-m", "naonet.cli.main", "train", "--data", str(cifar_mini),
               "--output", str(tmp_path), "--channels", "8", "--layers", "1", "--batch-size",
               "32", "--epochs", "1000", "--train-subset", "256", "--test-subset", "100",
               "--device", "cpu", "--no-progress"]
    environment = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"}
    launcher = subprocess.Popen(command, env=environment, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        lock = tmp_path / ".naonet.lock"
        deadline = time.monotonic() + 600
        while not (lock.exists() and "nao train" in lock.read_text()):
            assert launcher.poll() is None and time.monotonic() < deadline
            time.sleep(0.5)
        tasks = Path(f"/proc/{launcher.pid}/task")  # torchrun's threads, and their children
        ranks = [int(pid) for task in tasks.iterdir()
                 for pid in (task / "children").read_text().split()]
        assert len(ranks) == 2 and all(_alive(pid) for pid in ranks)
    finally:
        os.killpg(launcher.pid, signal.SIGKILL)  # torchrun's group: the ranks are not in it
        launcher.wait()
    deadline = time.monotonic() + 120
    while any(_alive(pid) for pid in ranks) and time.monotonic() < deadline:
        time.sleep(0.5)
    survivors = [pid for pid in ranks if _alive(pid)]
    for pid in survivors:  # leave nothing behind, whatever the outcome
        os.kill(pid, signal.SIGKILL)
    assert not survivors, "the processes trained on without torchrun"
    # free for a rerun, once the last thread of each is gone (a process's first thread
    # shows as a zombie while the others still exit, holding its files)
    with open(lock) as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                assert time.monotonic() < deadline, "the run folder stayed locked"
                time.sleep(0.2)


def test_under_torchrun_rank_0_alone_reports_a_stop(capsys, monkeypatch):
    """Each rank is stopped (torchrun passes the signal on): the line came once per rank."""
    import argparse

    from naonet.cli import main as cli

    args = argparse.Namespace(resumes=True)
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "trial")
    for rank, said in (("1", ""), ("0", "nao: interrupted; rerun the same command to resume\n")):
        monkeypatch.setenv("RANK", rank)
        assert cli._report_stop(KeyboardInterrupt, args) == 130
        assert capsys.readouterr().err == said
    monkeypatch.setenv("RANK", "1")
    assert cli._report_stop(cli.Terminated, args) == 143  # the status still says it


def test_under_torchrun_bad_input_before_the_processes_meet_is_said_once(capsys,
                                                                         monkeypatch):
    """A bad flag, option or path under torchrun: every process printed the same line (8
    GPUs, 8 lines, a trial user); each process still stops with status 2, and the first
    of each machine alone says why. After the processes met, each says its own."""
    from naonet.cli import main as cli

    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "trial")
    monkeypatch.setenv("WORLD_SIZE", "2")
    bad = {("train", "--epochs", "0"): "nao train: error: --epochs must be >= 1, got 0\n",
           ("train", "--no-such-flag"): "nao train: error: unrecognized arguments: "
                                        "--no-such-flag (see 'nao train --help')\n"}
    # ranks 0 and 1 of the first machine, then rank 2, the first of a second machine
    for rank, local_rank, says in (("1", "1", False), ("0", "0", True), ("2", "0", True)):
        monkeypatch.setenv("RANK", rank)
        monkeypatch.setenv("LOCAL_RANK", local_rank)
        for argv, line in bad.items():
            try:
                status = cli.main(list(argv))
            except SystemExit as exit_:  # the parser's own refusal
                status = exit_.code
            assert status == 2
            assert capsys.readouterr().err == (line if says else "")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr("torch.distributed.is_initialized", lambda: True)
    assert cli.main(["train", "--epochs", "0"]) == 2
    assert capsys.readouterr().err == bad[("train", "--epochs", "0")]


def test_a_process_lost_mid_collective_is_one_line(capsys, monkeypatch):
    """Rank 1 killed (the out-of-memory killer): rank 0's next all-reduce raised gloo's
    "Connection reset by peer", printed as a traceback of 30 lines (a trial user)."""

    from torch.distributed import DistBackendError

    from naonet.cli import main as cli

    reset = ("[../third_party/gloo/gloo/transport/tcp/pair.cc:545] Read error "
             "[127.0.0.1]:29840: Connection reset by peer")
    for error in (RuntimeError(reset), DistBackendError("NCCL communicator was aborted")):
        def fails(args, error=error):
            raise error

        monkeypatch.setattr(cli, "build_parser", lambda: _parser_running(fails))
        monkeypatch.setenv("TORCHELASTIC_RUN_ID", "trial")
        monkeypatch.setenv("WORLD_SIZE", "2")
        assert cli.main(["train"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("nao train: error: a step shared with the other processes "
                              "failed, most likely because one of them ended")
        assert str(error)[:40] in err and len(err.splitlines()) == 1, err
        monkeypatch.setenv("WORLD_SIZE", "1")  # one process: no other to lose, a traceback
        with pytest.raises(type(error)):
            cli.main(["train"])
    monkeypatch.setenv("WORLD_SIZE", "2")  # any other error under torchrun is itself
    assert cli.describe_lost_process(RuntimeError("shape '[4]' is invalid")) is None


def _parser_running(handler):
    """A ``nao`` parser whose ``train`` runs ``handler``."""
    from naonet.cli import main as cli

    parser = cli._Parser(prog="nao")
    commands = parser.add_subparsers(dest="command")
    parser.subcommand_parsers = {"train": commands.add_parser("train", prog="nao train")}
    parser.subcommand_parsers["train"].set_defaults(handler=handler, resumes=True)
    return parser

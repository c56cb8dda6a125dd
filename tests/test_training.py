"""Training runs on real CIFAR-10 images: accuracy, checkpoints, resume after SIGKILL."""

import json
import re
import signal
import subprocess
import sys

import pytest
import torch

from naonet.errors import UserError
from naonet.seeding import capture_rng_state, restore_rng_state
from naonet.training.checkpoint import atomic_save
from naonet.training.config import TrainConfig, load_config_file, resolve_config

from conftest import global_draws, kill_when, nao_in_process, run_nao, seed_globally

TINY = ["--channels", "8", "--layers", "1", "--batch-size", "32", "--test-subset", "100",
        "--device", "cpu", "--no-progress", "--lr", "0.05", "--cutout", "8",
        "--drop-path-keep-prob", "0.8", "--keep-prob", "0.8"]


def train_command(data, output, *extra):
    return [sys.executable, "-m", "naonet.cli.main", "train", "--data", str(data),
            "--output", str(output), *TINY, *extra]


def read_metrics(folder):
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow  # resume itself is checked in process by the test below
def test_sigkill_mid_epoch_then_rerun_resumes_and_matches_an_uninterrupted_run(cifar_mini,
                                                                                tmp_path):
    extra = ["--epochs", "3", "--train-subset", "480", "--valid-size", "60"]
    reference = subprocess.run(train_command(cifar_mini, tmp_path / "ref", *extra),
                               capture_output=True, text=True, timeout=600)
    assert reference.returncode == 0, reference.stderr
    interrupted = tmp_path / "killed"
    process = subprocess.Popen(train_command(cifar_mini, interrupted, *extra),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # last.pt is epoch 1's last output: killed then, the run is inside epoch 2
    kill_when(process, lambda: (interrupted / "last.pt").exists(), "the end of epoch 1")
    assert torch.load(interrupted / "last.pt", weights_only=True)["epoch"] == 1
    resumed = subprocess.run(train_command(cifar_mini, interrupted, *extra),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after epoch 1" in resumed.stdout
    assert [m["epoch"] for m in read_metrics(interrupted)] == [1, 2, 3]
    final, expected = (torch.load(folder / "last.pt", weights_only=True)
                       for folder in (interrupted, tmp_path / "ref"))
    assert final["epoch"] == 3
    for key, value in expected["model"].items():
        assert torch.equal(final["model"][key], value), key
    assert read_metrics(interrupted)[-1]["test_top1"] == read_metrics(tmp_path / "ref")[-1][
        "test_top1"]
    best = torch.load(interrupted / "best.pt", weights_only=True)
    assert best["epoch"] == best["best_epoch"]  # chosen on the validation split
    assert set(final["config"]) >= {"lr", "arch", "epochs"}
    assert final["arch"].startswith("small:")


def test_a_training_resumes_only_on_as_many_training_images(capsys, cifar_mini, tmp_path):
    """An image added to --data: the run went on, on another validation split and with
    another number of steps an epoch, without a word."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(cifar_mini, data)
    train = ["train", "--data", str(data), "--output", str(tmp_path / "run"), *TINY,
             "--epochs", "1", "--train-subset", "64", "--valid-size", "32"]
    assert nao_in_process(capsys, *train)[0] == 0
    cats = data / "train" / "cat"
    shutil.copy(sorted(cats.iterdir())[0], cats / "zz-one-more.jpg")
    count = sum(1 for _ in (data / "train").rglob("*.jpg"))
    status, _, err = nao_in_process(capsys, *train)
    assert status == 2 and (f"last.pt was trained on {count - 1:,} training images of its "
                            f"--data, which holds {count:,} now") in err, err
    (cats / "zz-one-more.jpg").unlink()
    assert nao_in_process(capsys, *train)[0] == 0  # the same images again: it resumes


def test_a_run_without_its_checkpoint_is_refused_not_started_over(capsys, cifar_mini,
                                                                   tmp_path):
    """last.pt deleted after a run (to save space): the rerun started the training over
    on top of its results, without a word (a trial user). A first epoch's line alone is a
    run killed before its first checkpoint: that one starts over."""
    train = ["train", "--data", str(cifar_mini), "--output", str(tmp_path / "run"), *TINY,
             "--epochs", "1", "--train-subset", "32"]
    assert nao_in_process(capsys, *train)[0] == 0
    (tmp_path / "run" / "last.pt").unlink()
    kept = {path.name: path.read_bytes() for path in (tmp_path / "run").iterdir()}
    status, out, err = nao_in_process(capsys, *train)
    assert (status, out) == (2, "")
    assert err == (f"nao train: error: {tmp_path / 'run'} holds a finished training "
                   "(metrics.jsonl, result.json) but not its checkpoint last.pt, which a rerun "
                   "resumes from; put it back, or train anew in another --output (or delete "
                   f"{tmp_path / 'run'})\n")
    assert {path.name: path.read_bytes() for path in (tmp_path / "run").iterdir()} == kept
    (tmp_path / "run" / "result.json").unlink()  # killed after its first epoch's line
    status, _, err = nao_in_process(capsys, *train)
    assert status == 0, err


def test_rerunning_a_finished_run_only_reports_and_other_configs_are_refused(capsys, cifar_mini,
                                                                            tmp_path):
    train = ["train", "--data", str(cifar_mini), "--output", str(tmp_path), *TINY,
             "--epochs", "1", "--train-subset", "64"]
    status, _, err = nao_in_process(capsys, *train)
    assert status == 0, err
    result = json.loads((tmp_path / "result.json").read_text())
    # no validation split: null, once the sentinels -1.0 and -1
    assert result["best_valid_top1"] is None and result["best_epoch"] is None
    # every line has the same keys: the validation figures are null (they were left out)
    assert (result["valid_loss"], result["valid_top1"], result["valid_top5"]) == (None,) * 3
    # the code that trained it (nothing in a training's outputs said which it was)
    from naonet.revision import code_revision

    assert result["revision"] == read_metrics(tmp_path)[0]["revision"] == code_revision()
    assert torch.load(tmp_path / "last.pt", weights_only=True)["revision"] == code_revision()
    # nao info says how far a checkpoint trained, and how well (it said neither)
    status, out, err = nao_in_process(capsys, "info", str(tmp_path / "last.pt"))
    assert status == 0, err
    # of --test-subset's images: the figure is not the test set's (it read as if it were)
    assert (f"\ntrained to epoch 1 of 1, test top-1 {100 * result['test_top1']:.2f} % (of 100 "
            "test images: --test-subset), by "
            f"{code_revision()}\n") in out, out
    status, out, _ = nao_in_process(capsys, *train)
    assert status == 0 and "done: epoch 1/1" in out
    assert "finished (epoch 1): its results as saved" in out  # it said 'resuming'
    assert len(read_metrics(tmp_path)) == 1
    # result.json as the run wrote it: the rerun rewrote it without the training figures
    # (epoch, lr, train_loss, ...), from an evaluation of its own
    assert json.loads((tmp_path / "result.json").read_text()) == result
    assert result["train_loss"] == read_metrics(tmp_path)[0]["train_loss"]
    # so it does with metrics.jsonl deleted: the checkpoint keeps the last line (the rerun
    # wrote result.json without epoch, lr and the training figures)
    metrics = (tmp_path / "metrics.jsonl").read_bytes()
    (tmp_path / "metrics.jsonl").unlink()
    assert nao_in_process(capsys, *train)[0] == 0
    assert json.loads((tmp_path / "result.json").read_text()) == result
    (tmp_path / "metrics.jsonl").write_bytes(metrics)
    # the same architecture in other words is the same run (it was refused when the
    # text differed, e.g. only by its 'small:' prefix)
    from naonet.spaces import named_architecture

    same = named_architecture("naonet-v2")
    for words in (["--arch", same.to_qualified_string()],
                  ["--arch", same.to_string(), "--space", "small"]):
        status, out, err = nao_in_process(capsys, *train, *words)
        assert status == 0 and "done: epoch 1/1" in out, err
    other = same.space.mutate(same, __import__("random").Random(0)).to_qualified_string()
    status, _, err = nao_in_process(capsys, *train, "--arch", other)
    assert status == 2 and "belongs to a run with --arch naonet-v2, not --arch " in err
    status, _, err = nao_in_process(capsys, *train, "--weight-decay", "0.1")
    assert status == 2
    assert "belongs to a run with --weight-decay 0.0005, not --weight-decay 0.1" in err
    # the loader pipeline draws other augmentations than the device one: a run resumed
    # with it trained on, to other weights (a trial measured 29.00 % against 26.60 %)
    status, _, err = nao_in_process(capsys, *train, "--pipeline", "loader")
    assert status == 2, err
    assert "belongs to a run with --pipeline auto, not --pipeline loader" in err, err
    status, out, err = nao_in_process(capsys, *train, "--pipeline", "device")  # auto's
    assert status == 0 and "done: epoch 1/1" in out, err
    # --amp compares as resolved: none is what auto was on the CPU (it was refused), and a
    # run that trained in bf16 (auto on CUDA) is not resumed in float32 without a word
    status, out, err = nao_in_process(capsys, *train, "--amp", "none")
    assert status == 0 and "done: epoch 1/1" in out, err
    saved = torch.load(tmp_path / "last.pt", weights_only=True)
    assert saved["precision"] == "none"
    atomic_save({**saved, "precision": "bf16"}, tmp_path / "last.pt")
    status, _, err = nao_in_process(capsys, *train)
    assert status == 2 and err.endswith("last.pt trained with --amp bf16; --amp auto is none on "
                                        "this device: pass --amp bf16 to resume the run as it "
                                        "trained\n"), err
    atomic_save(saved, tmp_path / "last.pt")
    # every difference is named (the first alone hid the option that was changed)
    status, _, err = nao_in_process(capsys, *train, "--weight-decay", "0.1", "--lr", "0.2")
    assert status == 2 and ("belongs to a run with --lr 0.05, not --lr 0.2 (and --weight-decay "
                            "0.0005, not --weight-decay 0.1); rerun with its options to "
                            "resume it, or pass another --output") in err, err
    assert len(err.strip().splitlines()) == 1


def test_resuming_after_an_epoch_gives_the_uninterrupted_weights(cifar_mini, tmp_path,
                                                                 monkeypatch):
    """An interruption after epoch 1 of 2 (the SIGKILL version is the slow test above):
    the rerun resumes from last.pt and ends with the weights of an uninterrupted run."""
    from naonet.training import run as training_run
    from naonet.training.config import TrainConfig

    common = dict(data=str(cifar_mini), channels=8, layers=1, batch_size=32,
                  test_subset=40, train_subset=96, device="cpu", epochs=2, lr=0.05,
                  cutout=8, drop_path_keep_prob=0.8, keep_prob=0.8)
    seed_globally(11)
    expected = global_draws()
    seed_globally(11)
    training_run.train(TrainConfig(output=str(tmp_path / "ref"), **common), False)
    # the run seeds the global streams; a library caller's come back as they were
    assert global_draws() == expected
    interrupted = tmp_path / "interrupted"
    real_epoch = training_run._run_epoch
    calls = []

    def stop_after_one_epoch(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(training_run, "_run_epoch", stop_after_one_epoch)
    with pytest.raises(KeyboardInterrupt):
        training_run.train(TrainConfig(output=str(interrupted), **common), False)
    assert torch.load(interrupted / "last.pt", weights_only=True)["epoch"] == 1
    monkeypatch.setattr(training_run, "_run_epoch", real_epoch)
    training_run.train(TrainConfig(output=str(interrupted), **common), False)
    assert [m["epoch"] for m in read_metrics(interrupted)] == [1, 2]
    final, expected = (torch.load(folder / "last.pt", weights_only=True)
                       for folder in (interrupted, tmp_path / "ref"))
    for key, value in expected["model"].items():
        assert torch.equal(final["model"][key], value), key


def test_a_kill_while_an_epoch_is_saved_loses_none_of_its_outputs(cifar_mini, tmp_path,
                                                                   monkeypatch):
    """Interrupted at each write of epoch 1's outputs (the metrics line, last.pt, best.pt)
    in turn, the rerun ends with every metrics line, the uninterrupted weights and the
    uninterrupted best.pt (a kill before best.pt: written again on resume)."""
    from naonet.training import run as training_run
    from naonet.training.config import TrainConfig

    common = dict(data=str(cifar_mini), channels=8, layers=1, batch_size=32,
                  test_subset=40, train_subset=64, device="cpu", epochs=2, lr=0.05,
                  valid_size=32)
    result = training_run.train(TrainConfig(output=str(tmp_path / "ref"), **common), False)
    expected = torch.load(tmp_path / "ref" / "last.pt", weights_only=True)["model"]
    expected_best = torch.load(tmp_path / "ref" / "best.pt", weights_only=True)
    assert result["best_epoch"] == expected_best["epoch"] in (1, 2)
    assert result["best_valid_top1"] == expected_best["best_valid_top1"] >= 0
    real = {name: getattr(training_run, name) for name in ("write_checkpoint", "log_epoch")}
    writes_of_epoch_one = 3  # metrics, last.pt, best.pt (epoch 1 is the best so far)

    def killed_at(kill_at: int, calls: list, name: str):
        def write(*args, **kwargs):
            if len(calls) == kill_at:
                raise KeyboardInterrupt
            calls.append(name)
            return real[name](*args, **kwargs)
        return write

    for kill_at in range(writes_of_epoch_one):
        calls = []
        for name in real:
            monkeypatch.setattr(training_run, name, killed_at(kill_at, calls, name))
        folder = tmp_path / f"killed-at-{kill_at}"
        with pytest.raises(KeyboardInterrupt):
            training_run.train(TrainConfig(output=str(folder), **common), False)
        for name, function in real.items():
            monkeypatch.setattr(training_run, name, function)
        training_run.train(TrainConfig(output=str(folder), **common), False)
        assert [m["epoch"] for m in read_metrics(folder)] == [1, 2], calls
        final = torch.load(folder / "last.pt", weights_only=True)["model"]
        assert all(torch.equal(final[key], value) for key, value in expected.items()), calls
        best = torch.load(folder / "best.pt", weights_only=True)
        assert best["epoch"] == expected_best["epoch"], calls
        assert all(torch.equal(best["model"][key], value)
                   for key, value in expected_best["model"].items()), calls


def test_corrupt_last_checkpoint_is_reported_in_one_line(capsys, cifar_mini, tmp_path):
    (tmp_path / "last.pt").write_bytes(b"not a checkpoint at all")
    status, _, err = nao_in_process(capsys, "train", "--data", str(cifar_mini), "--output",
                                    str(tmp_path), *TINY, "--epochs", "1")
    assert status == 2 and len(err.strip().splitlines()) == 1
    assert err == (f"nao train: error: checkpoint {tmp_path / 'last.pt'} is corrupt or not a "
                   "naonet checkpoint (not a PyTorch zip archive, or truncated); pass another "
                   "--output, or delete the folder to start over\n")


def test_a_checkpoint_load_failure_is_said_in_a_few_words(tmp_path, monkeypatch):
    """PyTorch's paragraphs of weights_only advice were cut mid-word into the message."""
    from naonet.training.checkpoint import load_checkpoint

    intact = tmp_path / "intact.pt"
    torch.save({"model": {"w": torch.ones(2)}}, intact)
    (tmp_path / "truncated.pt").write_bytes(intact.read_bytes()[:200])
    # cut where torch's zip reader fails with OSError 22, "Invalid argument": it was
    # reported as a bad path ("check the paths you passed and the free disk space")
    torch.save({"model": {"w": torch.ones(10_000)}}, tmp_path / "large.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "large.pt").read_bytes()[:5000])
    torch.save({"model": tmp_path}, tmp_path / "pickled.pt")  # a class no one allowed (a path)
    reasons = {}
    for name in ("truncated", "cut", "pickled"):
        with pytest.raises(UserError) as error:
            load_checkpoint(tmp_path / f"{name}.pt")
        reasons[name] = str(error.value)
    assert "(not a PyTorch zip archive, or truncated)" in reasons["truncated"]
    assert reasons["cut"].startswith(f"checkpoint {tmp_path / 'cut.pt'} is corrupt")
    assert "PosixPath" in reasons["pickled"]  # the class the file holds, in torch's words
    for reason in reasons.values():
        assert "weights_only" not in reason and "Please" not in reason, reason
        assert "\n" not in reason

    def unreadable(path, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    # an intact file it may not read is not called corrupt (nor to be deleted): the
    # system's error reaches the command, which reports it in its own words
    monkeypatch.setattr(torch, "load", unreadable)
    with pytest.raises(PermissionError):
        load_checkpoint(intact)


def test_a_resume_at_another_number_of_processes_gives_each_rank_its_own_streams():
    """last.pt holds every rank's random streams; where it holds none for a rank (one
    process wrote it, three resume), the rank draws a stream of its own, the same on
    every such resume, and never rank 0's (every rank once took rank 0's)."""
    from naonet.distributed import DistributedContext
    from naonet.seeding import caller_random_state_kept, capture_rng_state
    from naonet.training.config import TrainConfig
    from naonet.training.run import restore_rank_random_state

    config = TrainConfig(seed=5)
    with caller_random_state_kept():
        torch.manual_seed(123)
        checkpoint = {"rng": capture_rng_state(), "rng_other_ranks": [], "epoch": 2}
        expected_rank0 = torch.rand(4)

        def draws(rank: int, world_size: int) -> torch.Tensor:
            context = DistributedContext(rank, world_size, rank, torch.device("cpu"))
            restore_rank_random_state(checkpoint, config, context)
            return torch.rand(4)

        first = [draws(rank, 3) for rank in range(3)]
        assert torch.equal(first[0], expected_rank0)  # rank 0 takes the saved streams
        assert not torch.equal(first[1], first[0]) and not torch.equal(first[2], first[1])
        assert all(torch.equal(draws(rank, 3), first[rank]) for rank in range(3))
        # saved by two processes and resumed by two: rank 1 takes its own saved streams
        torch.manual_seed(77)
        checkpoint["rng_other_ranks"] = [capture_rng_state()]
        expected_rank1 = torch.rand(4)
        assert torch.equal(draws(1, 2), expected_rank1)


def test_bad_input_in_a_fresh_process_is_one_line(tmp_path):
    """The rest of the bad-input table runs in process (tests/test_bad_input.py)."""
    result = run_nao("train", "--arch", "1 2 3", "--output", str(tmp_path))
    assert result.returncode == 2, result.stderr
    assert "has 3 integers" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_config_resolution_preset_then_file_then_flags(tmp_path):
    from naonet.runtime import resolve_amp

    path = tmp_path / "config.yaml"
    path.write_text("lr: 0.5\nchannels: 20\nlayers: 2\n")
    config = resolve_config("naonet-v2-cifar10", load_config_file(path), {"layers": 3})
    assert (config.lr, config.channels, config.layers, config.epochs) == (0.5, 20, 3, 600)
    assert config.cutout == 16 and config.drop_path_keep_prob == 0.8
    imagenet = resolve_config("naonet-v2-imagenet", {}, {})
    assert (imagenet.lr_schedule, imagenet.lr_gamma, imagenet.label_smoothing) == (
        "exponential", 0.97, 0.1)
    # the published recipes in float32, as released, on a GPU too (auto is bf16 there)
    assert config.amp == imagenet.amp == "none"
    assert resolve_amp(config.amp, torch.device("cuda")) == "none"
    path.write_text("learning_rate: 1\n")
    with pytest.raises(UserError, match="unknown option 'learning_rate'"):
        load_config_file(path)
    # a typo is named with what it is probably a typo of; preset: with its flag
    path.write_text("chanels: 8\n")
    with pytest.raises(UserError, match=r"unknown option 'chanels'; did you mean 'channels'\? "
                                        r"\(see 'nao train --help'\)$"):
        load_config_file(path)
    path.write_text("preset: quick-cifar10\n")
    with pytest.raises(UserError, match=r"unknown option 'preset'; --preset is given on the "
                                        r"command line only \(nao train --preset ...\)$"):
        load_config_file(path)


def test_checkpoints_are_written_atomically_and_rng_round_trips(tmp_path, monkeypatch):
    path = tmp_path / "state.pt"
    atomic_save({"value": torch.ones(2)}, path)

    def failing_save(obj, file):
        file.write(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(RuntimeError):
        atomic_save({"value": torch.zeros(2)}, path)
    monkeypatch.undo()
    assert torch.equal(torch.load(path, weights_only=True)["value"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]  # no temporary left behind
    state = capture_rng_state()
    atomic_save({"rng": state}, path)
    first = torch.rand(3)
    restore_rng_state(torch.load(path, weights_only=True)["rng"])
    assert torch.equal(torch.rand(3), first)


@pytest.mark.slow
def test_short_cpu_run_on_shared_cifar10_beats_chance_by_far(cifar_root, tmp_path):
    result = run_nao("train", "--data", str(cifar_root), "--output", str(tmp_path),
                     "--preset", "quick-cifar10", "--no-progress", "--device", "cpu",
                     "--test-subset", "0", timeout=3000)
    assert result.returncode == 0, result.stderr
    final = json.loads((tmp_path / "result.json").read_text())
    # a fraction; chance is 0.10. Measured on the 10,000 test images, one thread: 46.64,
    # 45.76 and 47.24 % with --seed 0, 1, 2; 0.30 leaves 15 points for other thread counts
    # and machines, and a network that does not learn stays near 0.10
    assert final["test_top1"] >= 0.30


@pytest.mark.slow  # bf16 and NHWC each keep a default test in tests/test_fast_paths.py
def test_bf16_channels_last_training_tracks_float32(cifar_mini, tmp_path):
    from naonet.training import train

    results = {}
    for name, extra in {"fp32": {}, "bf16": {"amp": "bf16", "channels_last": True}}.items():
        config = resolve_config(None, {}, dict(
            data=str(cifar_mini), output=str(tmp_path / name), channels=8, layers=1,
            batch_size=32, epochs=2, train_subset=192, test_subset=100, device="cpu",
            lr=0.05, seed=5, **extra))
        train(config, show_progress=False)
        results[name] = read_metrics(tmp_path / name)
    # bf16's unit roundoff is u = 2**-8; twelve steps amplify it: the epochs' train losses
    # differed by 0.0003 to 0.0255 (up to 6.5 u) over --seed 5, 0, 1, 2 at 1 and at 2
    # threads. 16 u bounds that; the two must differ, or the run never left float32.
    for fp32, bf16 in zip(results["fp32"], results["bf16"], strict=True):
        assert bf16["train_loss"] == pytest.approx(fp32["train_loss"], rel=16 * 2**-8)
    assert [r["train_loss"] for r in results["fp32"]] != [r["train_loss"] for r in
                                                            results["bf16"]]


def test_atomic_files_get_the_umask_mode_and_keep_a_users_chmod(tmp_path):
    import os

    from naonet.files import atomic_write_text

    previous = os.umask(0o022)
    try:
        path = tmp_path / "result.json"
        atomic_write_text(path, "{}")
        assert path.stat().st_mode & 0o777 == 0o644  # as open() would make it
        path.chmod(0o640)
        atomic_write_text(path, '{"resumed": true}')
        assert path.stat().st_mode & 0o777 == 0o640
        assert path.read_text() == '{"resumed": true}'
    finally:
        os.umask(previous)


def test_a_damaged_evaluation_image_is_named_before_the_first_epoch(capsys, cifar_mini,
                                                                    tmp_path, monkeypatch):
    """A truncated val/ image (read as it goes by the loader pipeline) stopped the run
    after its first epoch's training, which was lost: it is named before any training."""
    import shutil

    from naonet.training import run as training_run

    data = tmp_path / "data"
    for split in ("train", "test"):
        for name in ("cat", "dog"):
            shutil.copytree(cifar_mini / split / name, data / split / name)
    damaged = sorted((data / "test" / "dog").iterdir())[3]
    damaged.write_bytes(damaged.read_bytes()[:200])
    trained = []
    monkeypatch.setattr(training_run, "train_one_epoch",
                        lambda *args, **kwargs: trained.append(1))
    status, out, err = nao_in_process(
        capsys, "train", "--data", str(data), "--output", str(tmp_path / "run"), *TINY,
        "--dataset", "folder", "--image-size", "96", "--epochs", "1", "--workers", "0",
        "--test-subset", "0")
    assert status == 2 and trained == []
    assert "reading the 40 evaluation images once" in out
    assert f"cannot read image {damaged}" in err and len(err.strip().splitlines()) == 1
    # images decoded into memory at the start (CIFAR-sized, either pipeline) are not
    # read a second time
    from naonet.data import DataConfig, build_data
    from naonet.data.registry import reads_files_as_it_goes

    for pipeline in ("loader", "device"):
        bundle = build_data(DataConfig(data=str(cifar_mini), pipeline=pipeline, workers=0,
                                       valid_size=20), torch.device("cpu"))
        assert not any(reads_files_as_it_goes(part) for part in (bundle.valid, bundle.test))


@pytest.mark.parametrize("size", ["7", "96"])
def test_folder_data_trains_at_odd_and_large_image_sizes(capsys, cifar_mini, tmp_path, size):
    """Once a traceback each: the auxiliary head's fixed pooling needed 32 px (CIFAR
    skeleton, folder images <= 64 px) or 224 px (ImageNet skeleton, larger ones)."""
    import math

    from conftest import nao_in_process

    status, out, err = nao_in_process(
        capsys, "train", "--data", str(cifar_mini), "--output", str(tmp_path), *TINY,
        "--dataset", "folder", "--image-size", size, "--epochs", "1", "--train-subset", "32",
        "--workers", "0", "--aux-weight", "0.4")
    assert status == 0, err
    assert "done: epoch 1/1" in out
    [metrics] = read_metrics(tmp_path)
    assert math.isfinite(metrics["train_loss"]) and metrics["train_images"] == 32


def test_pictures_get_the_umask_mode_and_keep_a_users_chmod(tmp_path, capsys):
    import os
    import stat

    picture = tmp_path / "cells.png"
    assert nao_in_process(capsys, "show", "naonet-v2", "-o", str(picture))[0] == 0
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(picture.stat().st_mode) == 0o666 & ~umask
    picture.chmod(0o600)
    assert nao_in_process(capsys, "show", "naonet-v2", "-o", str(picture))[0] == 0
    assert stat.S_IMODE(picture.stat().st_mode) == 0o600
    assert [path.name for path in tmp_path.iterdir()] == ["cells.png"]  # no temporary left


def test_a_nas_bench_201_cell_trains_and_its_checkpoint_evaluates_and_exports(capsys,
                                                                             cifar_mini,
                                                                             tmp_path):
    """A line of a one-shot NB201 search's arch_pool (on a user's own images the table
    knows nothing of it) trains as the benchmark's network with the benchmark's recipe
    (--preset nb201-cifar10), here at C 4 with 1 cell per stage; its checkpoint evaluates
    to the run's own test accuracy and exports."""
    from naonet.spaces import get_space, parse_architecture

    from conftest import nao_in_process

    cell = ("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+"
            "|none~0|avg_pool_3x3~1|nor_conv_3x3~2|")
    run = tmp_path / "run"
    status, out, err = nao_in_process(
        capsys, "train", "--preset", "nb201-cifar10", "--arch", cell, "--data", str(cifar_mini),
        "--output", str(run),
        "--channels", "4", "--layers", "1", "--batch-size", "32", "--epochs", "2",
        "--train-subset", "64", "--test-subset", "40", "--device", "cpu", "--no-progress")
    assert status == 0, err
    assert "done: epoch 2/2" in out
    result = json.loads((run / "result.json").read_text())
    space = get_space("nb201")
    assert result["arch"] == cell
    assert result["params"] == space.parameter_count(parse_architecture(cell),
                                                     space.network_config(4, 1, 10))
    saved = torch.load(run / "last.pt", weights_only=True)
    # the benchmark's optimizer: Nesterov SGD, lr 0.1, weight decay 5e-4, no clipping
    group = saved["optimizer"]["param_groups"][0]
    assert (group["nesterov"], group["momentum"], group["weight_decay"]) == (True, 0.9, 5e-4)
    assert (saved["config"]["grad_clip"], saved["config"]["lr"]) == (0.0, 0.1)
    assert saved["network"] == {"channels": 4, "cells_per_stage": 1, "num_classes": 10,
                                "stages": 3}
    status, out, err = nao_in_process(capsys, "eval", str(run / "last.pt"), "--data",
                                      str(cifar_mini), "--test-subset", "40", "--device", "cpu")
    assert status == 0, err
    assert f"{100 * result['test_top1']:.2f} %" in out, out
    status, out, err = nao_in_process(capsys, "export", str(run / "last.pt"),
                                      str(tmp_path / "cell.pt"))
    assert status == 0 and "input dynamic x 3 x 32 x 32" in out, err
    status, out, err = nao_in_process(capsys, "info", str(run / "last.pt"))
    assert status == 0 and f"architecture: {cell}" in out, err
    # In Python too: create_model reads the checkpoint of any space, with or without the
    # architecture, and refuses another architecture.
    import naonet

    images = torch.randn(2, 3, 32, 32)
    for network in (naonet.create_model(checkpoint=run / "last.pt"),
                    naonet.create_model(cell, run / "last.pt"),
                    naonet.create_model(parse_architecture(cell), run / "last.pt")):
        assert network.config.to_dict() == saved["network"]
        torch.testing.assert_close(network.state_dict(), saved["model"], rtol=0, atol=0)
    with pytest.raises(naonet.UserError, match="holds .*, not .*; leave the architecture "
                                               r"out \(--arch; in Python, None\) to take "
                                               "the file's"):
        naonet.create_model(space.example().to_string(), run / "last.pt")
    fresh = naonet.create_model(cell, channels=4, cells_per_stage=1)
    assert fresh.eval()(images)[0].shape == (2, 10)
    with pytest.raises(naonet.UserError, match="unknown network option.s. layers for the "
                                               "nb201 network; use its config's fields"):
        naonet.create_model(cell, layers=1)


@pytest.mark.parametrize("scale", [True, False])
def test_the_learning_rates_grow_with_the_processes_as_the_searchs_do(scale):
    """Training and the search build their SGD through one helper: with
    scale_lr_with_world_size the maximum and the floor of the cosine schedule both grow
    with the number of processes (training once scaled only the maximum)."""
    from naonet.search.config import SearchConfig
    from naonet.search.supernet_training import build_optimizer as search_optimizer
    from naonet.search.supernet_training import start_schedule
    from naonet.training.config import TrainConfig
    from naonet.training.run import build_optimizer_and_schedule

    model = torch.nn.Linear(2, 2)
    config = TrainConfig(lr=0.1, lr_min=0.01, epochs=4, scale_lr_with_world_size=scale)
    optimizer, scheduler = build_optimizer_and_schedule(model, config, world_size=4)
    factor = 4 if scale else 1
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * factor)
    assert scheduler.eta_min == pytest.approx(0.01 * factor)
    search = SearchConfig(lr=0.1, lr_min=0.01, scale_lr_with_world_size=scale)
    supernet_optimizer = search_optimizer(model, search, world_size=4)
    schedule = start_schedule(supernet_optimizer, search, 4, epochs=4)
    assert (supernet_optimizer.param_groups[0]["lr"], schedule.eta_min) == pytest.approx(
        (optimizer.param_groups[0]["lr"], scheduler.eta_min))
    assert optimizer.param_groups[0]["momentum"] == config.momentum


def test_a_folder_from_before_an_option_resumes_only_with_that_options_old_value(tmp_path):
    """A last.pt written before --nesterov existed trained without it: resuming it with
    --nesterov would load the saved optimizer (nesterov off) under a config that says on."""
    from naonet.errors import UserError
    from naonet.training.checkpoint import check_same_run
    from naonet.training.config import TrainConfig
    from naonet.training.run import ADDED_OPTIONS, RESUMABLE_CHANGES

    old = TrainConfig().to_dict()
    del old["nesterov"]
    check_same_run(old, TrainConfig().to_dict(), tmp_path, RESUMABLE_CHANGES, "run",
                   ADDED_OPTIONS)
    with pytest.raises(UserError, match="belongs to a run with --no-nesterov, not --nesterov"):
        check_same_run(old, TrainConfig(nesterov=True).to_dict(), tmp_path,
                       RESUMABLE_CHANGES, "run", ADDED_OPTIONS)


def test_a_zero_clip_leaves_the_gradients_and_a_positive_one_bounds_their_norm():
    from naonet.training.engine import clip_gradients

    layer = torch.nn.Linear(4, 3)
    layer(torch.ones(2, 4)).sum().mul(100).backward()
    before = [p.grad.clone() for p in layer.parameters()]
    clip_gradients(list(layer.parameters()), 0.0)
    assert all(torch.equal(p.grad, g) for p, g in zip(layer.parameters(), before))
    clip_gradients(list(layer.parameters()), 1.0)
    norm = torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in layer.parameters()]))
    assert norm.item() == pytest.approx(1.0, rel=1e-5)  # clip_grad_norm_ adds 1e-6


class _AlternatingPaths(torch.nn.Module):
    """Two linear paths, the first step taking ``a``, every later one ``b`` (as a
    supernet's sampled path leaves other weights without a gradient)."""

    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
        self.steps = 0

    def forward(self, images):
        path = self.a if self.steps == 0 else self.b
        self.steps += 1
        return path(images), None


def _train_alternating(batches, clear_to_none: bool, ours: bool) -> torch.Tensor:
    """Path ``a``'s weights after training a fresh ``_AlternatingPaths`` on ``batches``
    with train_one_epoch (``ours``) or the textbook loop around optimizer.zero_grad."""
    from naonet.training import Precision, train_one_epoch

    torch.manual_seed(1)
    model = _AlternatingPaths()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    if ours:
        train_one_epoch(model, batches, optimizer, torch.nn.CrossEntropyLoss(),
                        aux_weight=0.0, grad_clip=5.0,
                        precision=Precision.from_name("none", torch.device("cpu")),
                        scaler=None, first_step=0, total_steps=len(batches),
                        clear_gradients_to_none=clear_to_none)
    else:
        for images, labels in batches:
            optimizer.zero_grad(set_to_none=clear_to_none)
            torch.nn.functional.cross_entropy(model(images)[0], labels).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
    return model.a.weight.detach().clone()


@pytest.mark.parametrize("clear_to_none", [False, True])
def test_off_path_weights_are_updated_as_zero_grad_leaves_them(clear_to_none):
    """train_one_epoch clears gradients as optimizer.zero_grad does, bit for bit: zeroed
    gradients keep momentum and weight decay moving the weights off the path (the
    released search), gradients set to None leave them where the last step put them."""
    torch.manual_seed(0)
    batches = [(torch.randn(5, 4), torch.randint(0, 3, (5,))) for _ in range(4)]
    ours = _train_alternating(batches, clear_to_none, ours=True)
    textbook = _train_alternating(batches, clear_to_none, ours=False)
    torch.testing.assert_close(ours, textbook, rtol=0, atol=0)
    after_its_only_step = _train_alternating(batches[:1], clear_to_none, ours=True)
    assert torch.equal(ours, after_its_only_step) == clear_to_none


def test_running_sums_are_float32_only_on_mps():
    """MPS has no float64: the evaluation's and the scorer's sums were float64 on every
    device, so a run with --device mps failed at its first evaluation."""
    from naonet.runtime import sum_dtype

    assert sum_dtype(torch.device("mps")) == torch.float32
    assert sum_dtype(torch.device("cpu")) == sum_dtype("cuda:0") == torch.float64


def test_the_data_sets_own_image_size_is_recorded_one_way(tmp_path):
    """A folder run started with --image-size 32 was refused when rerun without it (and
    the other way round), though both train at 32 px; nao info showed the size of one."""
    from naonet.search import SearchConfig
    from naonet.training.checkpoint import check_same_run

    assert TrainConfig(arch="naonet-v2", dataset="folder", image_size=32).image_size == 0
    assert SearchConfig(dataset="folder", image_size=32).image_size == 0
    assert TrainConfig(arch="naonet-v2", dataset="folder", image_size=64).image_size == 64
    # a named data set's folder of larger images is resized only when a size is given
    assert TrainConfig(arch="naonet-v2", dataset="cifar10", image_size=32).image_size == 32
    current = TrainConfig(arch="naonet-v2", dataset="folder").to_dict()
    # a folder written before: it recorded the 32 it was given
    check_same_run({**current, "image_size": 32}, current, tmp_path, (), "train")
    with pytest.raises(UserError, match="with --image-size 64, not --image-size 0"):
        check_same_run({**current, "image_size": 64}, current, tmp_path, (), "train")


def test_a_library_training_logs_where_its_caller_says(cifar_mini, tmp_path, capsys):
    """train() printed its lines whatever the caller wanted; ``log`` takes them, None
    silences them."""
    from naonet.training.run import train

    config = resolve_config(None, {}, {
        "data": str(cifar_mini), "output": str(tmp_path / "run"), "channels": 8, "layers": 1,
        "batch_size": 64, "train_subset": 64, "test_subset": 32, "epochs": 1,
        "device": "cpu"})
    lines = []
    result = train(config, show_progress=False, log=lines.append)
    assert capsys.readouterr().out == ""
    assert lines[0].startswith("training small:")
    assert "parameters, 1 step/epoch, 1 epoch;" in lines[0]  # once '1 steps/epoch'
    assert lines[1] == ("test figures on 32 of the test images (--test-subset): nao eval "
                        "gives the whole test set's")
    assert lines[2].startswith("epoch 1/1 lr ")
    assert lines[-1].startswith(f"done: epoch 1/1, test top-1 {100 * result['test_top1']:.2f} %")
    assert lines[-1].endswith(f"(results in {tmp_path / 'run'})")
    train(config, show_progress=False, log=None)  # finished: it only reports
    assert capsys.readouterr().out == ""


def test_a_last_batch_of_one_image_trains_and_batches_of_one_are_refused(capsys, cifar_mini,
                                                                         tmp_path,
                                                                         monkeypatch):
    """65 images in batches of 32 crashed with a traceback at the end of the first epoch
    (the auxiliary head's BatchNorm on one image); --batch-size 1 with the head now gets
    one line. A missing tensorboard is said before a folder is made or data read (it was
    said after, leaving config.yaml and the lock behind)."""
    import sys

    train = ["train", "--data", str(cifar_mini), *TINY, "--epochs", "1",
             "--train-subset", "65"]
    status, out, err = nao_in_process(capsys, *train, "--valid-size", "20", "--output",
                                      str(tmp_path / "odd"))
    assert status == 0, err
    assert "2 steps/epoch" in out
    # the last line names best.pt's validation accuracy beside the test's (it said only
    # the test's, with a validation split held out)
    assert re.search(r"\ndone: epoch 1/1, test top-1 [0-9.]+ % .*; best valid [0-9.]+ % at "
                     r"epoch 1 \(best.pt\) \(results in ", out), out
    assert read_metrics(tmp_path / "odd")[0]["train_images"] == 64

    status, out, err = nao_in_process(capsys, *train, "--batch-size", "1", "--output",
                                      str(tmp_path / "one"), "--data", str(tmp_path / "none"))
    assert (status, out) == (2, "")
    assert err == ("nao train: error: --batch-size 1 cannot train the auxiliary head (its "
                   "BatchNorm needs two images a batch); pass --batch-size 2 or more, or "
                   "--no-aux-head\n")
    assert not (tmp_path / "one").exists()  # said before the data (here none) is read

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # not installed
    status, out, err = nao_in_process(capsys, *train, "--tensorboard", "--output",
                                      str(tmp_path / "board" / "run"))
    assert (status, out) == (2, "")
    assert err.startswith("nao train: error: --tensorboard needs the tensorboard package")
    assert not (tmp_path / "board").exists()


def test_options_a_benchmark_network_lacks_are_named_as_unused(capsys, cifar_mini, tmp_path):
    """--aux-head, --keep-prob and --drop-path-keep-prob on a NAS-Bench-201 cell changed
    nothing, silently, while config.yaml recorded them."""
    cell = "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|"
    train = ["train", "--data", str(cifar_mini), *TINY, "--epochs", "1", "--train-subset",
             "64", "--arch", cell, "--layers", "1"]
    status, out, err = nao_in_process(capsys, *train, "--output", str(tmp_path / "a"))
    assert status == 0, err
    assert err.startswith("nao train: note: the nb201 network has no auxiliary head, dropout "
                          "or drop path, so --aux-head, --keep-prob 0.8 and "
                          "--drop-path-keep-prob 0.8 are not used"), err
    status, out, err = nao_in_process(capsys, *train, "--no-aux-head", "--keep-prob", "1",
                                      "--drop-path-keep-prob", "1", "--output",
                                      str(tmp_path / "b"))
    assert status == 0, err
    assert "note:" not in err


def test_a_run_folders_config_names_the_run_from_any_folder(capsys, cifar_mini, tmp_path,
                                                            monkeypatch):
    """config.yaml kept --data and --output as typed: '--config RUN/config.yaml' given
    from another folder trained a new run there instead of naming this one."""
    import shutil

    import yaml

    shutil.copytree(cifar_mini, tmp_path / "project" / "data")
    monkeypatch.chdir(tmp_path / "project")
    status, _, err = nao_in_process(capsys, "train", "--data", "data", *TINY,
                                    "--epochs", "1", "--train-subset", "32", "--output",
                                    "runs/first")
    assert status == 0, err
    saved = yaml.safe_load((tmp_path / "project" / "runs" / "first" / "config.yaml").read_text())
    assert saved["output"] == str(tmp_path / "project" / "runs" / "first")
    assert saved["data"] == str(tmp_path / "project" / "data")
    monkeypatch.chdir(tmp_path)
    status, out, err = nao_in_process(capsys, "train", "--config",
                                      "project/runs/first/config.yaml")
    assert status == 0, err
    assert "finished (epoch 1): its results as saved" in out
    assert sorted(path.name for path in tmp_path.iterdir()) == ["project"]


def test_a_stop_whose_exception_was_lost_still_stops_the_run(capsys, cifar_mini, tmp_path,
                                                             monkeypatch):
    """A Ctrl-C whose KeyboardInterrupt landed in a weakref callback ('Exception ignored
    in ...') was dropped, and the run went on to its end; the stop is now raised again
    at the next step. The stopped run's resume, as if on another number of processes,
    also checks that such a resume says so (it went on without a word)."""

    import naonet.training.run as run_module
    from naonet.cli import main as cli_main

    logged = run_module.log_epoch

    def log_then_lose_a_stop(*args):
        logged(*args)
        try:  # as a callback would: the handler's exception goes nowhere
            cli_main._stop(signal.SIGINT, None)
        except KeyboardInterrupt:
            pass

    monkeypatch.setattr(run_module, "log_epoch", log_then_lose_a_stop)
    train = ["train", "--data", str(cifar_mini), *TINY, "--epochs", "2", "--train-subset",
             "32", "--output", str(tmp_path)]
    status, _, err = nao_in_process(capsys, *train)
    assert (status, err.splitlines()[-1]) == (130, "nao: interrupted; rerun the same "
                                                   "command to resume")
    assert [m["epoch"] for m in read_metrics(tmp_path)] == [1]
    monkeypatch.setattr(run_module, "log_epoch", logged)
    # and a resume on another number of processes says so (it went on without a word)
    saved = torch.load(tmp_path / "last.pt", weights_only=True)
    assert saved["world_size"] == 1
    saved["rng_other_ranks"], saved["world_size"] = [saved["rng"]], 2  # as two wrote it
    atomic_save(saved, tmp_path / "last.pt")
    status, out, err = nao_in_process(capsys, *train)  # the stop was forgotten with it
    assert status == 0, err
    assert ("resuming after epoch 1 (trained on 2 processes so far: the learning rate goes "
            "on as it began)") in out


@pytest.mark.parametrize("classes", [3, 5, 6])
def test_top5_is_null_with_five_classes_or_fewer_in_every_record(classes):
    """metrics.jsonl and result.json recorded top-5 1.0 with five classes, where nao eval
    said null and printed none: evaluate() gives None there, for every caller."""
    from naonet.training import Precision, evaluate

    class Logits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(4, classes)

        def forward(self, images):
            return self.linear(images), None

    torch.manual_seed(0)
    batches = [(torch.randn(8, 4), torch.randint(0, classes, (8,))) for _ in range(2)]
    stats = evaluate(Logits(), batches, Precision.from_name("none", torch.device("cpu")))
    assert (stats.top5 is None) == (classes <= 5)
    assert stats.top5 is None or 0 <= stats.top5 <= 1
    assert stats.images == 16
    # no batches (an empty shard): 0 images, not 1
    empty = evaluate(Logits(), [], Precision.from_name("none", torch.device("cpu")))
    assert (empty.images, empty.loss, empty.top1) == (0, 0.0, 0.0)


def test_a_finished_run_of_few_classes_logged_before_reports_no_top5(capsys, cifar_mini,
                                                                     tmp_path):
    """A run of five classes or fewer logged top-5 1.0 before: rerun once finished, it
    printed "top-5 100.00 %" from that line and wrote it to result.json."""
    import shutil

    data = tmp_path / "data"
    for split in ("train", "test"):
        for name in ("cat", "dog"):
            shutil.copytree(cifar_mini / split / name, data / split / name)
    train = ["train", "--data", str(data), "--output", str(tmp_path / "run"), *TINY,
             "--dataset", "folder", "--epochs", "1"]
    assert nao_in_process(capsys, *train)[0] == 0
    metrics = tmp_path / "run" / "metrics.jsonl"
    [line] = read_metrics(tmp_path / "run")
    assert line["test_top5"] is None
    metrics.write_text(json.dumps({**line, "test_top5": 1.0}) + "\n")  # as logged before
    status, out, err = nao_in_process(capsys, *train)
    assert status == 0 and "finished (epoch 1)" in out, err
    assert "top-5" not in out
    assert json.loads((tmp_path / "run" / "result.json").read_text())["test_top5"] is None


def test_a_test_subset_as_large_as_the_test_set_is_not_called_one(capsys, cifar_mini,
                                                                  tmp_path):
    """--test-subset above the test set's size evaluates all of it: the start line and
    nao info called the figures a subset's. (At exactly its size they still say 'N of
    the test images', which is then all of them.)"""
    train = ["train", "--data", str(cifar_mini), "--output", str(tmp_path), *TINY,
             "--epochs", "1", "--train-subset", "64", "--test-subset", "5000"]
    status, out, err = nao_in_process(capsys, *train)
    assert status == 0, err
    assert "--test-subset" not in out
    [line] = read_metrics(tmp_path)
    assert line["test_images"] == 200 and line["valid_images"] is None  # all of them
    status, out, err = nao_in_process(capsys, "info", str(tmp_path / "last.pt"))
    assert status == 0 and "--test-subset" not in out and "test top-1" in out, err


def test_no_rank_of_one_training_seeds_as_a_rank_of_another_seeds():
    """Ranks were seeded with seed + rank: seed 0's rank 1 drew seed 1's rank 0's dropout
    and augmentation. Rank 0 keeps the seed itself (a one-process run, as released)."""
    from naonet.training.run import rank_seed

    seeds = {(seed, rank): rank_seed(seed, rank) for seed in range(8) for rank in range(8)}
    assert len(set(seeds.values())) == len(seeds)
    assert all(rank_seed(seed, 0) == seed for seed in range(8))
    # a rank seeded afresh on resume (another process count wrote the checkpoint) draws
    # what it drew nowhere before
    assert rank_seed(0, 1, epoch=3) not in seeds.values()


# The released repository (renqianluo/NAO_pytorch) at its head, 418ff71 (the scripts as
# of their last change, 0300aca): what its scripts pass (train_NAONet_V2_36_cifar10.sh,
# train_NAONet_V2_imagenet.sh) and the defaults of train_cifar.py / train_imagenet.py
# they rely on, in naonet's option names
# (l2_reg: weight_decay, grad_bound: grad_clip, lr_max: lr, label_smooth:
# label_smoothing, gamma: lr_gamma; the auxiliary loss weight 0.4 is written in the code).
RELEASED_FIXED_ARC = ("1 1 0 1 2 4 0 0 0 0 2 1 0 0 0 2 0 3 0 0 0 2 "
                      "0 2 2 2 1 0 0 0 0 1 0 0 0 3 0 0 0 1")
RELEASED_RECIPES = {
    "naonet-v2-cifar10": dict(
        aux_head=True, aux_weight=0.4, cutout=16, batch_size=128, eval_batch_size=500,
        epochs=600, layers=6, channels=36, grad_clip=5.0, lr=0.025, lr_min=0.0,
        lr_schedule="cosine", keep_prob=0.6, drop_path_keep_prob=0.8, weight_decay=5e-4,
        momentum=0.9, label_smoothing=0.0),
    "naonet-v2-imagenet": dict(
        aux_head=True, aux_weight=0.4, batch_size=128, eval_batch_size=500, epochs=250,
        layers=4, channels=52, keep_prob=1.0, drop_path_keep_prob=1.0, lr=0.1,
        momentum=0.9, grad_clip=5.0, label_smoothing=0.1, lr_schedule="exponential",
        lr_gamma=0.97, weight_decay=3e-5)}


@pytest.mark.parametrize("preset", sorted(RELEASED_RECIPES))
def test_the_published_presets_are_the_released_scripts(preset):
    from naonet.spaces import named_architecture
    from naonet.training.config import PRESETS, TrainConfig

    config = TrainConfig(**{**PRESETS[preset], "output": "unused"})
    assert {name: getattr(config, name) for name in RELEASED_RECIPES[preset]} == \
        RELEASED_RECIPES[preset]
    assert named_architecture(config.arch).to_integers() == \
        [int(token) for token in RELEASED_FIXED_ARC.split()]


def test_bf16_on_a_cpu_without_bf16_instructions_is_noted_at_the_start(capsys, cifar_mini,
                                                                       tmp_path, monkeypatch):
    """bf16 autocast on such a CPU trained 1.4x to 7x slower a step than float32, and
    nothing said so (a trial user followed the README's example to 1 image/s)."""
    from naonet import runtime

    cpu = torch.device("cpu")
    note = runtime.slow_bf16_note(cpu, "bf16", flags={"avx2", "fma"})
    assert note is not None and "drop --amp bf16" in note
    assert runtime.slow_bf16_note(cpu, "bf16", flags={"avx2", "avx512_bf16"}) is None
    assert runtime.slow_bf16_note(cpu, "none", flags=set()) is None
    assert runtime.slow_bf16_note(torch.device("cuda"), "bf16", flags=set()) is None
    assert runtime.cpu_flags() is None or "fpu" in runtime.cpu_flags()  # the list is read
    monkeypatch.setattr(runtime, "cpu_flags", lambda: {"avx2"})  # whatever this CPU has
    status, out, err = nao_in_process(capsys, "train", "--data", str(cifar_mini), "--output",
                                      str(tmp_path), *TINY, "--epochs", "1", "--train-subset",
                                      "32", "--amp", "bf16")
    assert status == 0, err
    assert note in out


def test_a_best_checkpoint_lost_after_its_epoch_is_said_not_claimed(tmp_path):
    """A finished run's rerun ended 'best valid ... at epoch 2 (best.pt)' with best.pt
    deleted or damaged (a trial user); of the last epoch it is written again, of an
    earlier one it cannot be, and a note says so."""
    from naonet.training.run import RunState, restore_best_checkpoint

    said, saved = [], []
    earlier = RunState(epoch=3, best_valid_top1=0.6, best_epoch=2)
    for damaged in (False, True):
        if damaged:
            (tmp_path / "best.pt").write_bytes(b"cut short")
        restore_best_checkpoint(tmp_path, earlier, saved.append, said.append)
        assert said.pop() == (f"note: {tmp_path / 'best.pt'} is missing or damaged: it held "
                              "epoch 2, the best, which last.pt (epoch 3) cannot give back; "
                              "the figures logged for it stand in metrics.jsonl")
    restore_best_checkpoint(tmp_path, RunState(epoch=3, best_valid_top1=0.6, best_epoch=3),
                            saved.append, said.append)
    assert saved == [tmp_path / "best.pt"] and said == []  # the last epoch's: made again

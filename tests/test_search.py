"""The NAO-V2 search: config and presets, scoring data, schedule, the loop end to end on
real CIFAR-10 images, its outputs, resumption, and ``nao show``."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from naonet.cli.main import main
from naonet.distributed import DistributedContext
from naonet.errors import UserError
from naonet.search import (
    PRESETS,
    PoolEntry,
    ScoringData,
    SearchConfig,
    build_scoring_data,
    derive_seed,
    plot_score_distribution,
    resolve_search_config,
    sample_once,
    score_pool,
    search,
)
from naonet.search import loop as search_loop
from naonet.search.supernet_training import build_optimizer, start_schedule
from naonet.spaces import Architecture, get_space, resolve_architecture
from naonet.supernet import Supernet, SupernetConfig, sample_architectures

from conftest import global_draws, nao_in_process, seed_globally

pytestmark = pytest.mark.threads(1)  # the thread count its figures were measured with

CPU = DistributedContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))

# A search that runs in seconds on real images: C 4, N 1, 128 training images, 2 rounds.
TINY = dict(device="cpu", valid_size=60, train_subset=128, channels=4, layers=1, rounds=2,
            seed_pool_size=6, new_architectures=3, top_seeds=4, supernet_epochs=2,
            batch_size=32, eval_batch_size=30, eval_batches=1, controller_epochs=3,
            controller_batch_size=20, rerank_top=2, rerank_epochs=1, rerank_channels=4,
            rerank_layers=1, log_every=1000)


def tiny_config(data: Path, output: Path, **overrides) -> SearchConfig:
    return resolve_search_config(None, {}, {**TINY, "data": str(data), "output": str(output),
                                            **overrides})


def read_lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


@pytest.fixture(scope="module")
def tiny_run(cifar_mini, tmp_path_factory) -> Path:
    """One uninterrupted tiny search; its run folder."""
    output = tmp_path_factory.mktemp("search") / "run"
    search(tiny_config(cifar_mini, output), show_progress=False)
    return output


def test_a_presets_proxy_size_on_a_folder_is_noted(capsys, tmp_path):
    """quick-nb201's 16 px, a proxy for CIFAR's 32, became the size a user's photos were
    read at and the found network trained at, without a word."""
    from naonet.cli.main import main

    command = ["search", "--preset", "quick-nb201", "--dataset", "folder", "--data",
               str(tmp_path / "missing"), "--output", str(tmp_path / "run")]
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err.startswith("nao search: note: --preset quick-nb201's image size, 16 px, is a "
                          "proxy for CIFAR's 32 px; a folder's images are read at it"), err
    for chosen in (["--image-size", "16"], ["--dataset", "cifar10"]):  # chosen: no note
        assert main([*command, *chosen]) == 2
        assert "note:" not in capsys.readouterr().err


def test_a_search_resumes_only_on_as_many_training_images(tiny_run, cifar_mini, tmp_path):
    """Images added since the search began: it resumed silently on another validation
    split (drawn by position), scoring later rounds on images earlier rounds trained on."""
    import shutil

    data, run = tmp_path / "data", tmp_path / "run"
    shutil.copytree(cifar_mini, data)
    shutil.copytree(tiny_run, run)
    cats = data / "train" / "cat"
    shutil.copy(sorted(cats.iterdir())[0], cats / "zz-one-more.jpg")
    count = sum(1 for _ in (data / "train").rglob("*.jpg"))
    with pytest.raises(UserError, match=rf"search_state.pt was searched on {count - 1:,} training "
                                        rf"images of its --data, which holds {count:,} now"):
        search(tiny_config(data, run), show_progress=False)


def test_a_search_needs_no_test_images_and_finds_the_same_without_them(tiny_run, cifar_mini,
                                                                       tmp_path, capsys):
    """The search scores on held-out training images: a folder of training images alone
    is enough (it once asked for a test/ folder), and the outputs are the same. The
    training command it ends with holds validation images out of that folder too (it
    once failed for want of test/), and that training runs."""
    import shutil

    train_only = tmp_path / "train-only"
    shutil.copytree(cifar_mini / "train", train_only / "train")
    seed_globally(11)
    expected = global_draws()
    seed_globally(11)
    search(tiny_config(train_only, tmp_path / "run"), show_progress=False)
    # the search seeds the global streams; a library caller's come back as they were
    assert global_draws() == expected
    said = capsys.readouterr().out
    command = said.split("train the first with: ")[1].splitlines()[0]
    assert f"--data {train_only} --valid-size 60 --output" in command, command
    # a re-rank's accuracy in percent, as on every console line (it was a fraction)
    assert re.search(r"\nre-rank 1/2: validation accuracy [0-9]+\.[0-9]{2} % \(supernet "
                     r"score -?[0-9.]+\) small:", said), said
    run = tmp_path / "train"
    status, out, err = nao_in_process(
        capsys, "train", "--arch", read_lines(tmp_path / "run" / "arch_pool.final")[0],
        "--data", str(train_only), "--valid-size", "60", "--train-subset", "64",
        "--channels", "4", "--layers", "1", "--epochs", "1", "--batch-size", "32",
        "--device", "cpu", "--no-progress", "--output", str(run))
    assert status == 0, err
    assert re.search(r"done: epoch 1/1, best valid [0-9.]+ % at epoch 1 \(no test images\)",
                     out), out
    result = json.loads((run / "result.json").read_text())
    assert result["test_top1"] is None and 0 <= result["best_valid_top1"] <= 1
    epoch = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert epoch["test_top1"] is None and epoch["valid_top1"] == result["best_valid_top1"]
    assert f"no test images in {train_only}" in out
    for name in ("arch_pool", "arch_pool.final"):
        assert (tmp_path / "run" / name).read_bytes() == (tiny_run / name).read_bytes(), name


# ----------------------------------------------------------------------- config
def test_defaults_are_the_released_search():
    config = SearchConfig()
    released = dict(space="small", valid_size=5000, channels=20, layers=3, keep_prob=1.0,
                    drop_path_keep_prob=0.9, sampling="balanced", rounds=4,
                    seed_pool_size=1000, new_architectures=300, top_seeds=100,
                    # the released loop generates with step 51 before it checks max 50
                    max_lambda=51, update_off_path=True, score_transform="raw",
                    fresh_controller=False, fill="none", drop_path_exempts_pass_through=False,
                    supernet_epochs=50, batch_size=64, lr=0.025, lr_min=0.001, momentum=0.9,
                    weight_decay=3e-4, grad_clip=5.0, restart_schedule=True,
                    reinit_supernet=False, eval_batch_size=500, eval_batches=1,
                    controller_epochs=1000, controller_batch_size=100, controller_lr=1e-3,
                    controller_trade_off=0.8, controller_augment=10, rerank_top=5,
                    rerank_epochs=10, rerank_channels=20, rerank_layers=3,
                    rerank_keep_prob=0.6, rerank_drop_path_keep_prob=0.8,
                    rerank_aux_weight=0.4, rerank_repeats=1, rerank_common_seeds=False,
                    rerank_turns=None)
    assert {key: getattr(config, key) for key in released} == released
    assert resolve_search_config("nao-v2-cifar10").controller_epochs == 1000
    assert resolve_search_config("nao-v2-cifar10").scoring == "per-architecture"
    train = config.controller_train_config()
    assert (train.mse_weight, train.augment_factor) == (0.8, 10)
    assert train.nll_weight == pytest.approx(0.2)


def test_presets_resolve_and_flags_override_files(tmp_path):
    for name in PRESETS:
        assert isinstance(resolve_search_config(name), SearchConfig)
    quick = resolve_search_config("quick-cifar10")
    assert quick.rounds == 2 and quick.channels < 20 and quick.train_subset > 0
    file = tmp_path / "search.yaml"
    file.write_text("rounds: 3\nsupernet-epochs: 7\n")
    from naonet.search.config import load_config_file

    config = resolve_search_config("quick-cifar10", load_config_file(file), {"rounds": 5})
    assert (config.rounds, config.supernet_epochs, config.channels) == (5, 7, quick.channels)


@pytest.mark.parametrize("bad", [dict(rounds=0), dict(scoring="random"), dict(sampling="x"),
                                 dict(lr_min=1.0), dict(controller_trade_off=2.0),
                                 dict(valid_size=0), dict(channels=3), dict(rerank_layers=0),
                                 dict(controller_epochs=0), dict(threads=-1),
                                 dict(seed_pool_size=1)])
def test_bad_options_are_one_line_user_errors(bad):
    with pytest.raises(UserError) as error:
        SearchConfig(**bad)
    assert "\n" not in str(error.value)


def test_a_seed_pool_of_one_is_refused_before_anything_runs():
    """Once refused only after the first round, with its folder then unusable."""
    with pytest.raises(UserError, match="--seed-pool-size must be >= 2 for NAO"):
        SearchConfig(seed_pool_size=1)
    assert SearchConfig(seed_pool_size=1, strategy="random").seed_pool_size == 1
    assert SearchConfig(seed_pool_size=1, rounds=1).seed_pool_size == 1  # no controller


def test_derived_seeds_are_stable_and_distinct():
    assert derive_seed(0, "sampler", 1, 2) == derive_seed(0, "sampler", 1, 2)
    seeds = {derive_seed(seed, stream, r, e) for seed in (0, 1) for stream in
             ("sampler", "supernet-epoch") for r in range(3) for e in range(3)}
    assert len(seeds) == 36 and all(0 <= s < 2**63 for s in seeds)


# ----------------------------------------------------------------------- scoring data
class CountingBatches:
    """A validation iterator that counts how often it is iterated."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int):
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.passes = 0

    def __iter__(self):
        self.passes += 1
        for start in range(0, len(self.labels), self.batch_size):
            yield (self.images[start:start + self.batch_size],
                   self.labels[start:start + self.batch_size])


def validation_set(count: int = 90):
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(count, 3, 8, 8, generator=generator)
    labels = torch.arange(count) % 10  # sorted by class in blocks, like an image folder
    return images, labels.sort().values


def test_sample_once_draws_distinct_samples_in_random_order():
    images, labels = validation_set()
    picked_images, picked_labels = sample_once(CountingBatches(images, labels, 16), 40,
                                               torch.Generator().manual_seed(1))
    rows = {tuple(row.flatten()[:4].tolist()) for row in picked_images}
    assert picked_images.shape[0] == 40 and len(rows) == 40  # no duplicates
    assert len(set(picked_labels[:10].tolist())) > 3  # not the class-sorted order
    again = sample_once(CountingBatches(images, labels, 16), 40, torch.Generator().manual_seed(1))
    assert torch.equal(again[0], picked_images)
    everything = sample_once(CountingBatches(images, labels, 16), 0,
                             torch.Generator().manual_seed(2))
    assert everything[1].sort().values.tolist() == labels.tolist()


class RecordingSupernet(torch.nn.Module):
    """Stands in for the supernet: records the batches each architecture is scored on."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.seen: list[tuple[Architecture, torch.Tensor]] = []

    def forward(self, images, architecture):
        self.seen.append((architecture, images))
        logits = torch.zeros(images.shape[0], 10)
        logits[:, sum(architecture.to_integers()) % 10] = 1.0
        return logits, None


def test_scoring_uses_the_same_batches_drawn_once():
    images, labels = validation_set()
    valid = CountingBatches(images, labels, 16)
    data = build_scoring_data(valid, batch_size=20, num_batches=2, mode="fixed", seed=3,
                              context=CPU)
    architectures = sample_architectures("small", 7, np.random.default_rng(0))
    model = RecordingSupernet()
    scores = score_pool(model, architectures, data, "fixed", [0] * 7, CPU)
    assert valid.passes == 1  # the validation data is read once, not once per architecture
    assert len(scores) == 7 and all(0.0 <= s <= 1.0 for s in scores)
    batches = {}
    for architecture, batch in model.seen:
        batches.setdefault(architecture, []).append(batch)
    reference = batches[architectures[0]]
    assert len(reference) == 2
    for seen in batches.values():
        assert all(a.data_ptr() == b.data_ptr() and torch.equal(a, b)
                   for a, b in zip(seen, reference))


@pytest.mark.parametrize("pipeline", ["device", "loader"])
def test_the_scoring_images_are_the_same_at_any_number_of_processes(pipeline):
    """Under torchrun rank 0 drew the scoring images from its own share of the
    validation split: 500 of the quick-nb201 preset's 1,000, and other ones than one
    process scores on."""
    from naonet.data import DeviceBatches, LoaderBatches
    from naonet.data.registry import CIFAR10_MEAN, CIFAR10_STD
    from naonet.data.sources import InMemorySplit

    generator = torch.Generator().manual_seed(0)
    split = InMemorySplit(torch.randint(0, 256, (90, 3, 8, 8), dtype=torch.uint8,
                                        generator=generator),
                          torch.randint(0, 10, (90,), generator=generator),
                          [str(label) for label in range(10)])

    def batches(rank, world_size):  # rank's share of the validation split, as built
        if pipeline == "device":
            return DeviceBatches(split, 16, torch.device("cpu"), CIFAR10_MEAN, CIFAR10_STD,
                                 train=False, rank=rank, world_size=world_size)
        images = split.images.float() / 255
        return LoaderBatches(torch.utils.data.TensorDataset(images, split.labels), 16,
                             torch.device("cpu"), train=False, workers=0, rank=rank,
                             world_size=world_size)

    drawn = [build_scoring_data(batches(0, world_size), 20, 3, "fixed", 3, CPU)
             for world_size in (1, 2, 3)]
    assert len(drawn[0]) == 60
    for other in drawn[1:]:
        assert torch.equal(other.images, drawn[0].images)
        assert torch.equal(other.labels, drawn[0].labels)


def test_released_scoring_draws_a_batch_per_architecture_reproducibly():
    images, labels = validation_set()
    data = build_scoring_data(CountingBatches(images, labels, 16), 20, 1, "per-architecture",
                              3, CPU)
    assert len(data) == 90  # the whole split, to draw from
    architectures = sample_architectures("small", 4, np.random.default_rng(0))
    model = RecordingSupernet()
    seeds = [derive_seed(0, "scoring", 0, index) for index in range(4)]
    first = score_pool(model, architectures, data, "per-architecture", seeds, CPU)
    seen = [batch for _, batch in model.seen]
    assert not torch.equal(seen[0], seen[1])
    assert first == score_pool(model, architectures, data, "per-architecture", seeds, CPU)


def test_sharded_scoring_adds_up_to_the_single_process_scores():
    torch.manual_seed(0)  # the same weights whatever ran before
    images, labels = validation_set()
    data = ScoringData(images, labels, 30, 2)
    architectures = sample_architectures("small", 5, np.random.default_rng(0))
    supernet = Supernet("small", SupernetConfig(channels=4, layers=1))
    whole = score_pool(supernet, architectures, data, "fixed", [0] * 5, CPU)
    shards = [score_pool(supernet, architectures, data, "fixed", [0] * 5,
                         replace(CPU, rank=rank, world_size=2)) for rank in (0, 1)]
    # Without a process group the sum over ranks is the identity: add the shards here.
    assert [a + b for a, b in zip(*shards)] == whole


# ----------------------------------------------------------------------- schedule
def test_cosine_schedule_restarts_every_round():
    config = SearchConfig(supernet_epochs=4)
    model = torch.nn.Linear(2, 2)
    optimizer = build_optimizer(model, config, world_size=1)
    lrs = []
    for _ in range(2):  # two rounds
        scheduler = start_schedule(optimizer, config, 1, config.supernet_epochs)
        for _ in range(config.supernet_epochs):
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
    assert lrs[0] == lrs[4] == pytest.approx(0.025)
    assert lrs[3] < lrs[1] < lrs[0] and lrs[4:] == pytest.approx(lrs[:4])
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.001)


# ----------------------------------------------------------------------- end to end
def test_tiny_search_writes_the_promised_outputs(tiny_run):
    pool = json.loads((tiny_run / "pool.json").read_text())
    lines = read_lines(tiny_run / "arch_pool")
    assert pool["complete"] and pool["reranked"] and pool["rounds_done"] == 2
    assert lines == [record["arch"] for record in pool["architectures"]]
    assert len(lines) == len(set(lines)) > TINY["seed_pool_size"]
    scores = [record["supernet_score"] for record in pool["architectures"]]
    assert scores == sorted(scores, reverse=True)
    assert [float(v) for v in read_lines(tiny_run / "arch_pool.perf")] == pytest.approx(scores)
    for record in pool["architectures"]:
        assert Architecture.parse(record["arch"]).to_qualified_string() == record["arch"]
        assert record["round"] in (1, 2) and record["params"] > 0
        assert set(record["scores_by_round"]) <= {"1", "2"}
    # Round 1 architectures: the controller trained on them; round 2: the one that made them.
    assert all(0 <= r["controller_prediction"] <= 1 for r in pool["architectures"])

    final = read_lines(tiny_run / "arch_pool.final")
    final_json = json.loads((tiny_run / "arch_pool.final.json").read_text())
    assert len(final) == TINY["rerank_top"] and set(final) == set(lines[:TINY["rerank_top"]])
    reranked = [record["rerank_accuracy"] for record in final_json["architectures"]]
    assert [r["arch"] for r in final_json["architectures"]] == final
    assert reranked == sorted(reranked, reverse=True) and all(0 <= r <= 1 for r in reranked)
    rounds = [json.loads(line) for line in read_lines(tiny_run / "rounds.jsonl")]
    assert [r["round"] for r in rounds] == [1, 2]
    assert rounds[0]["lambda_reached"] >= 1 and rounds[0]["controller_hamming_distance"] >= 0
    assert (tiny_run / "scores.png").read_bytes()[:4] == b"\x89PNG"


def test_each_round_leaves_its_pool_under_the_released_names(tiny_run):
    """The released search writes arch_pool.N and arch_pool.perf.N each round (from 0): a
    migrant's scripts read them. They hold the pool as that round scored it, best first,
    the scores pool.json records by round, and nao correlate reads them as a pair."""
    from naonet.analysis.scores import read_scores

    pool = json.loads((tiny_run / "pool.json").read_text())["architectures"]
    for number in (1, 2):
        scored = sorted(((record["scores_by_round"][str(number)], record["arch"])
                         for record in pool if str(number) in record["scores_by_round"]),
                        key=lambda pair: -pair[0])
        lines = read_lines(tiny_run / f"arch_pool.{number - 1}")
        assert lines == [arch for _, arch in scored]
        assert [float(v) for v in read_lines(tiny_run / f"arch_pool.perf.{number - 1}")] == [
            score for score, _ in scored]
        read = read_scores(tiny_run / f"arch_pool.{number - 1}")
        assert [read[arch] for _, arch in scored] == [score for score, _ in scored]
    assert not (tiny_run / "arch_pool.2").exists()
    assert len(read_lines(tiny_run / "arch_pool.1")) == len(pool) > len(
        read_lines(tiny_run / "arch_pool.0"))


def test_nao_train_accepts_the_first_final_line(tiny_run, cifar_mini, tmp_path, capsys):
    line = read_lines(tiny_run / "arch_pool.final")[0]
    assert resolve_architecture(line).to_qualified_string() == line
    status = main(["train", "--arch", line, "--data", str(cifar_mini), "--device", "cpu",
                   "--channels", "4", "--layers", "1", "--epochs", "1", "--train-subset",
                   "32", "--test-subset", "20", "--batch-size", "32", "--no-progress",
                   "--output", str(tmp_path / "train")])
    assert status == 0
    assert json.loads((tmp_path / "train" / "result.json").read_text())["arch"] == line


@pytest.mark.parametrize("space", ["small", "nb201"])
def test_a_search_ends_with_the_command_that_trains_its_first_line(cifar_mini, tmp_path,
                                                                    capsys, space):
    """The closing line trains the first line of arch_pool.final with its space's
    published recipe (NAONet-V2's, or NAS-Bench-201's for its cells); with --reference
    the found cell's truth is printed as well, not instead."""
    from conftest import NB201_TABLE, require

    reference = {"reference": f"table:{require(NB201_TABLE)}"} if space == "nb201" else {}
    run = tmp_path / "run"
    search(tiny_config(cifar_mini, run, space=space, rerank_top=0, plot=False, **reference),
           show_progress=False)
    out = capsys.readouterr().out
    preset = {"small": "naonet-v2-cifar10", "nb201": "nb201-cifar10"}[space]
    final = f"$(head -n 1 {run / 'arch_pool.final'})"
    assert f'train the first with: nao train --preset {preset} --arch "{final}" --dataset ' \
           f"cifar10 --data {cifar_mini} --output {run / 'train'}\n" in out, out
    if space == "nb201":
        first = read_lines(run / "arch_pool.final")[0]
        assert re.search(f"found: {re.escape(first)}: true test accuracy [0-9.]+ %, rank "
                         "[0-9,]+ of 15,625", out), out


def test_the_training_options_follow_the_data_set_and_the_spaces_final_size():
    """The preset's own size needs no flags; a space that delivers another size says it,
    and a NAONet found for ImageNet trains with the ImageNet recipe."""
    from naonet.spaces.cell_space import SMALL
    from naonet.spaces.nb201 import NB201Space

    assert SMALL.training_options("cifar100") == "--preset naonet-v2-cifar10"
    assert SMALL.training_options("imagenet") == "--preset naonet-v2-imagenet"
    assert replace(SMALL, final_size=(20, 3)).training_options("folder") == \
        "--preset naonet-v2-cifar10 --channels 20 --layers 3"
    assert NB201Space(final_size=(32, 2)).training_options("cifar10") == \
        "--preset nb201-cifar10 --channels 32 --layers 2"


def test_the_printed_training_fits_its_cutout_to_small_images(cifar_mini, tmp_path, capsys):
    """A search of 7-px images printed a training of the CIFAR recipe's 16-px cutout,
    which ``nao train`` refuses (it would hide every image whole): the square is scaled
    as the recipe's is to 32 px where, and only where, the recipe's would be refused."""
    import shlex

    from naonet.cli.main import build_parser
    from naonet.data.registry import check_augmentation
    from naonet.spaces.cell_space import SMALL
    from naonet.spaces.nb201 import NB201Space
    from naonet.spaces.protocol import fitted_to_images
    from naonet.training.config import field_names, resolve_config

    recipe = SMALL.training_options("folder")
    assert fitted_to_images(recipe, 7) == "--preset naonet-v2-cifar10 --cutout 3"
    assert fitted_to_images(recipe, 8) == "--preset naonet-v2-cifar10 --cutout 4"
    assert fitted_to_images(recipe, 9) == recipe
    assert fitted_to_images(recipe, 0) == recipe  # the data set's own size
    parser = build_parser()
    for space in (SMALL, NB201Space()):
        for image_size in range(1, 40):  # what a search prints, nao train accepts
            options = fitted_to_images(space.training_options("folder"), image_size)
            args = parser.parse_args(["train", *shlex.split(options), "--dataset", "folder",
                                      "--image-size", str(image_size)])
            config = resolve_config(args.preset, {},
                                    {name: getattr(args, name) for name in field_names()})
            check_augmentation(config.data_config())
    # and the search's closing line says so
    run = tmp_path / "run"
    search(tiny_config(cifar_mini, run, dataset="folder", image_size=7, rerank_top=0,
                       plot=False), show_progress=False)
    out = capsys.readouterr().out
    assert re.search(r"train the first with: nao train --preset naonet-v2-cifar10 "
                     r"--cutout 3 --arch .* --image-size 7 ", out), out


def test_finished_search_reruns_without_work(tiny_run, cifar_mini, monkeypatch, capsys):
    before = {name: (tiny_run / name).read_text() for name in ("arch_pool", "arch_pool.final")}
    for phase in ("supernet_epoch", "score_architectures_so_far", "controller_step",
                  "baseline_step", "rerank_epoch"):  # no phase runs again
        monkeypatch.setattr(search_loop, phase, _fail)
    capsys.readouterr()
    search(tiny_config(cifar_mini, tiny_run), show_progress=False)
    assert {name: (tiny_run / name).read_text() for name in before} == before
    out = capsys.readouterr().out  # once 'resuming in round 3, phase done'
    assert "; finished already: its outputs are rewritten" in out and "resuming" not in out


def _fail(*args, **kwargs):
    raise AssertionError("a finished search ran a phase again")


class Interrupted(Exception):
    """Stands in for a kill: raised before an epoch, after the last checkpoint."""


def interrupt_at(monkeypatch, name: str, when) -> None:
    original = getattr(search_loop, name)

    def step(run, *args):
        if when(run.state):
            raise Interrupted
        return original(run, *args)

    monkeypatch.setattr(search_loop, name, step)


def test_a_resumed_rounds_seconds_count_every_process_that_worked_on_it(cifar_mini,
                                                                         tmp_path):
    """rounds.jsonl gave a resumed round the seconds of the last process alone (12 s of
    a 40 s round). The first process here spends 4 s more on the round's first epoch: the
    round's seconds hold at least what it saved of the round (the old code gave the
    finishing process's 2 s here)."""
    import time

    config = tiny_config(cifar_mini, tmp_path / "run", rounds=1, rerank_top=0)
    original = search_loop.supernet_epoch

    def slow_first_epoch(run, *args):
        if run.state.epoch == 0:
            time.sleep(4.0)
        return original(run, *args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(search_loop, "supernet_epoch", slow_first_epoch)
        interrupt_at(patch, "supernet_epoch", lambda s: s.epoch == 1)  # after epoch 1's save
        with pytest.raises(Interrupted):
            search(config, show_progress=False)
    saved = torch.load(tmp_path / "run" / "search_state.pt", weights_only=False)["state"]
    first = sum(saved["timings"].values()) - saved["round_started_at"]
    search(config, show_progress=False)
    seconds = json.loads(read_lines(tmp_path / "run" / "rounds.jsonl")[0])["seconds"]
    assert first >= 4.0 and seconds >= round(first, 1)


def test_interrupted_search_resumes_to_the_same_outputs(tiny_run, cifar_mini, tmp_path,
                                                       capsys):
    config = tiny_config(cifar_mini, tmp_path / "run")
    with pytest.MonkeyPatch.context() as patch:  # during round 2's supernet training
        interrupt_at(patch, "supernet_epoch", lambda s: (s.round, s.epoch) == (1, 1))
        with pytest.raises(Interrupted):
            search(config, show_progress=False)
    assert len(read_lines(tmp_path / "run" / "rounds.jsonl")) == 1
    with pytest.MonkeyPatch.context() as patch:  # after round 2's training, before scoring
        interrupt_at(patch, "score_architectures_so_far", lambda s: s.round == 1)
        with pytest.raises(Interrupted):
            search(config, show_progress=False)
    with pytest.MonkeyPatch.context() as patch:  # during the second re-rank
        interrupt_at(patch, "rerank_epoch", lambda s: s.rerank_index == 1)
        with pytest.raises(Interrupted):
            search(config, show_progress=False)
    capsys.readouterr()
    search(config, show_progress=False)
    # it once said 'phase rerank, at its start' and went on with the second training
    assert "resuming in round 2, phase rerank, 1 re-rank training done" in capsys.readouterr().out
    for name in ("arch_pool", "arch_pool.perf", "arch_pool.final", "arch_pool.perf.final"):
        assert (tmp_path / "run" / name).read_text() == (tiny_run / name).read_text(), name
    resumed = json.loads((tmp_path / "run" / "pool.json").read_text())["architectures"]
    uninterrupted = json.loads((tiny_run / "pool.json").read_text())["architectures"]
    assert resumed == uninterrupted
    # A round resumed after its training still reports the supernet's last epoch.
    statistics = ("supernet_train_loss", "supernet_train_top1")
    for mine, reference in zip(read_lines(tmp_path / "run" / "rounds.jsonl"),
                               read_lines(tiny_run / "rounds.jsonl"), strict=True):
        mine, reference = json.loads(mine), json.loads(reference)
        assert all(mine[key] is not None for key in statistics)
        assert [mine[key] for key in statistics] == [reference[key] for key in statistics]


def test_a_search_without_momentum_resumes_to_the_same_scores(cifar_mini, tmp_path):
    """SGD without momentum keeps no state: the checkpoint's gradient holders alone tell
    which parameters off the sampled path keep getting weight decay after a resume."""
    def scored_pool(output: Path) -> list:
        return json.loads((output / "pool.json").read_text())["architectures"]

    # scored by loss, to every bit (accuracy on 60 images would hide a small change)
    options = dict(momentum=0.0, weight_decay=0.01, rounds=1, rerank_top=0,
                   score_metric="loss")
    search(tiny_config(cifar_mini, tmp_path / "straight", **options), show_progress=False)
    config = tiny_config(cifar_mini, tmp_path / "run", **options)
    with pytest.MonkeyPatch.context() as patch:
        interrupt_at(patch, "supernet_epoch", lambda s: s.epoch == 1)
        with pytest.raises(Interrupted):
            search(config, show_progress=False)
    search(config, show_progress=False)
    assert scored_pool(tmp_path / "run") == scored_pool(tmp_path / "straight")


def test_a_search_without_its_checkpoint_is_refused_not_searched_again(cifar_mini, tiny_run,
                                                                        tmp_path):
    """search_state.pt deleted after a search: the rerun searched again from scratch on
    top of its outputs, without a word (a trial user)."""
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    (copy / "search_state.pt").unlink()
    kept = {path.name: path.read_bytes() for path in copy.iterdir() if path.is_file()}
    with pytest.raises(UserError, match=rf"^{re.escape(str(copy))} holds a search's outputs "
                                        r"\(pool.json, arch_pool.final\) but not its checkpoint "
                                        r"search_state.pt, which a rerun resumes from; put it "
                                        "back, or search anew in another --output"):
        search(tiny_config(cifar_mini, copy), show_progress=False)
    assert {path.name: path.read_bytes() for path in copy.iterdir() if path.is_file()} == kept


def test_a_corrupt_search_checkpoint_is_refused_in_one_line(cifar_mini, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "search_state.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match=r"is corrupt or not a naonet checkpoint .*; pass "
                       r"another --output, or delete the folder to start over$"):
        search(tiny_config(cifar_mini, tmp_path / "run"), show_progress=False)


def test_a_search_resumes_only_at_the_number_of_processes_it_ran_on(cifar_mini, tmp_path,
                                                                    capsys):
    """The steps of an epoch and the learning rate are those of the search's process
    count: a rerun at another count once resumed silently, mixing two recipes."""
    config = tiny_config(cifar_mini, tmp_path / "run", rounds=1, rerank_top=0)
    lines = []  # and its lines go where the caller says (they were printed, always)
    search(config, show_progress=False, log=lines.append)
    assert capsys.readouterr().out == ""
    assert lines[0].startswith("searching the small space on cifar10 at "), lines[0]
    assert lines[-2].startswith("done: ") and lines[-1].startswith("train the first with: ")
    path = tmp_path / "run" / "search_state.pt"
    state = torch.load(path, weights_only=True)
    assert state["world_size"] == 1
    state["world_size"] = 3  # as if torchrun had run it with three processes
    torch.save(state, path)
    with pytest.raises(UserError, match=r"search_state.pt is a search of 3 processes, this "
                       r"one has 1: rerun it under torchrun with 3 processes .*, or pass "
                       r"another --output$"):
        search(config, show_progress=False)


def test_a_search_resumes_only_on_the_classes_it_was_searched_on(cifar_mini, tmp_path):
    """Labels are class positions: a class folder renamed or added under a stopped search
    once resumed it silently with shifted labels, or called its state damaged."""
    import shutil

    data = tmp_path / "photos"
    for name in ("cat", "dog", "ship"):
        shutil.copytree(cifar_mini / "train" / name, data / "train" / name)
    config = tiny_config(data, tmp_path / "run", dataset="folder", rounds=1, rerank_top=0,
                         train_subset=0, valid_size=30)
    search(config, show_progress=False)
    (data / "train" / "ship").rename(data / "train" / "boat")
    with pytest.raises(UserError, match=r"search_state.pt was searched on other classes "
                                        r"\(only in the run: ship; only in --data: boat\)"):
        search(config, show_progress=False)
    (data / "train" / "boat").rename(data / "train" / "ship")
    shutil.copytree(cifar_mini / "train" / "bird", data / "train" / "bird")
    with pytest.raises(UserError, match=r"was searched on other classes \(only in the run: "
                                        r"-; only in --data: bird\)"):
        search(config, show_progress=False)


def test_resuming_with_other_options_is_refused(tiny_run, cifar_mini):
    with pytest.raises(UserError, match="belongs to a search with --channels 4, not --channels 6"):
        search(tiny_config(cifar_mini, tiny_run, channels=6), show_progress=False)
    # the loader pipeline draws other augmentations: a resume with it ended elsewhere;
    # the pipeline auto resolves to, named, is the same run
    with pytest.raises(UserError,
                       match="belongs to a search with --pipeline auto, not --pipeline loader"):
        search(tiny_config(cifar_mini, tiny_run, pipeline="loader"), show_progress=False)
    from naonet.search.state import check_resumable

    saved = SearchConfig(pipeline="auto").to_dict()
    check_resumable(saved, SearchConfig(pipeline="device").to_dict(), tiny_run)
    with pytest.raises(UserError, match="--pipeline auto, not --pipeline loader"):
        check_resumable(saved, SearchConfig(pipeline="loader").to_dict(), tiny_run)


def test_a_folder_from_before_the_strategy_option_resumes_only_as_nao(tmp_path):
    from naonet.search.state import check_resumable

    saved = SearchConfig().to_dict()
    del saved["strategy"]  # written before the option existed: a NAO search
    check_resumable(saved, SearchConfig().to_dict(), tmp_path)
    with pytest.raises(UserError, match="with --strategy nao, not --strategy random"):
        check_resumable(saved, SearchConfig(strategy="random").to_dict(), tmp_path)


@pytest.mark.parametrize("common", [True, False])
def test_re_ranked_architectures_share_their_seeds_and_batches_only_when_asked(
        cifar_mini, tmp_path, monkeypatch, common):
    """Common random numbers: with ``rerank_common_seeds`` every candidate starts from
    the same seed and sees the same first batch; without, each its own."""
    from naonet.search import rerank

    init_seeds, first_batches = [], []
    start_job, train_epoch = rerank.start_rerank_job, rerank.train_one_epoch

    def start(architecture, config, data, context, init_seed):
        init_seeds.append(init_seed)
        return start_job(architecture, config, data, context, init_seed)

    def train(model, loader, *args, **kwargs):
        first_batches.append(next(iter(loader))[0].clone())
        return train_epoch(model, loader, *args, **kwargs)

    monkeypatch.setattr(rerank, "start_rerank_job", start)
    monkeypatch.setattr(rerank, "train_one_epoch", train)
    search(tiny_config(cifar_mini, tmp_path / "run", rounds=1, rerank_top=3,
                       rerank_common_seeds=common, plot=False), show_progress=False)
    assert len(init_seeds) == len(first_batches) == 3
    assert len(set(init_seeds)) == (1 if common else 3)
    same_batch = [torch.equal(batch, first_batches[0]) for batch in first_batches[1:]]
    assert same_batch == [common, common]


def test_re_rank_repeats_are_averaged_and_worker_processes_train_them_alike(cifar_mini,
                                                                              tmp_path):
    records = {}
    for processes in (1, 2):
        output = tmp_path / f"processes-{processes}"
        # threads=1: each worker gets one thread, so both runs compute on one
        search(tiny_config(cifar_mini, output, rounds=1, rerank_top=2, rerank_repeats=2,
                           rerank_processes=processes, threads=1, plot=False),
               show_progress=False)
        pool = json.loads((output / "pool.json").read_text())["architectures"]
        records[processes] = [(r["arch"], r["rerank_accuracy"], r["rerank_runs"])
                              for r in pool if r["rerank_runs"]]
        assert (output / "arch_pool.final").read_text() == \
            (tmp_path / "processes-1" / "arch_pool.final").read_text()
    assert records[2] == records[1] and len(records[1]) == 2
    for _, accuracy, runs in records[1]:
        assert len(runs) == 2 and accuracy == pytest.approx(sum(runs) / 2, abs=1e-12)


def test_a_parallel_re_rank_stopped_after_one_training_resumes_to_the_same_result(
        cifar_mini, tmp_path, monkeypatch):
    def config(name):
        return tiny_config(cifar_mini, tmp_path / name, rounds=1, rerank_top=2,
                           rerank_repeats=2, rerank_processes=2, threads=1, plot=False)

    def reranked(name):
        pool = json.loads((tmp_path / name / "pool.json").read_text())["architectures"]
        return [(r["arch"], r["rerank_accuracy"], r["rerank_runs"]) for r in pool]

    search(config("whole"), show_progress=False)
    record = search_loop.record_rerank

    def stop_after_the_first(run, top, accuracy):
        record(run, top, accuracy)
        raise KeyboardInterrupt  # the checkpoint holds one training's accuracy

    monkeypatch.setattr(search_loop, "record_rerank", stop_after_the_first)
    with pytest.raises(KeyboardInterrupt):
        search(config("stopped"), show_progress=False)
    assert sum(len(runs) for _, _, runs in reranked("stopped")) == 1
    monkeypatch.setattr(search_loop, "record_rerank", record)
    search(config("stopped"), show_progress=False)
    assert reranked("stopped") == reranked("whole")
    assert (tmp_path / "stopped" / "arch_pool.final").read_text() == \
        (tmp_path / "whole" / "arch_pool.final").read_text()


def test_re_rank_processes_are_refused_under_torchrun_or_on_an_accelerator():
    parallel = SearchConfig(rerank_top=5, rerank_processes=2)
    for context, fix in (
            (DistributedContext(rank=0, world_size=2, local_rank=0, device=torch.device("cpu")),
             "not under torchrun; pass --rerank-processes 1$"),  # --device cpu would not do
            (DistributedContext(rank=0, world_size=1, local_rank=0,
                                device=torch.device("meta")),
             "not on meta; pass --rerank-processes 1, or --device cpu$")):
        with pytest.raises(UserError, match=fix):
            search_loop.check_parallel_rerank(parallel, context)
        # one process, or no re-rank at all, runs anywhere
        search_loop.check_parallel_rerank(SearchConfig(rerank_top=5), context)
        search_loop.check_parallel_rerank(SearchConfig(rerank_top=0, rerank_processes=2),
                                          context)
    search_loop.check_parallel_rerank(parallel, CPU)


def test_a_search_refuses_re_rank_processes_before_it_writes_anything(tmp_path, monkeypatch):
    accelerator = DistributedContext(rank=0, world_size=1, local_rank=0,
                                     device=torch.device("meta"))
    monkeypatch.setattr(search_loop, "init_distributed", lambda device: accelerator)
    # options the device refuses come after the data's checks, which an empty folder passes
    config = SearchConfig(rerank_top=5, rerank_processes=2, output=str(tmp_path / "run"),
                          data=str(tmp_path))
    with pytest.raises(UserError, match="--rerank-processes 1"):
        search(config, show_progress=False)
    assert not (tmp_path / "run").exists()


def test_threads_one_runs_as_one_thread_of_the_environment_does(cifar_mini, tmp_path,
                                                                 capsys):
    """``threads=1`` (the NB201 CPU presets) runs the search on one thread from a process
    on two, gives what the documented ``OMP_NUM_THREADS=1`` runs gave, and hands the
    caller its two threads back."""
    from conftest import run_nao

    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        search(tiny_config(cifar_mini, tmp_path / "option", threads=1, plot=False),
               show_progress=False)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)
    assert "(cpu, 1 thread)" in capsys.readouterr().out  # what the search ran on
    flags = [item for key, value in TINY.items()
             for item in (f"--{key.replace('_', '-')}", str(value))]
    result = run_nao("search", *flags, "--data", str(cifar_mini),
                     "--output", str(tmp_path / "environment"), "--no-progress", "--no-plot",
                     env={"OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    for name in ("arch_pool", "arch_pool.final", "pool.json"):
        assert ((tmp_path / "option" / name).read_bytes()
                == (tmp_path / "environment" / name).read_bytes()), name
    saved = yaml.safe_load((tmp_path / "option" / "config.yaml").read_text())
    assert saved["threads"] == 1


def test_the_ranking_experiment_takes_its_thread_count_and_restores_the_callers(
        monkeypatch):
    from naonet.search import ranking

    class Applied(Exception):
        pass

    def apply_then_stop(threads, device):
        torch.set_num_threads(threads)
        raise Applied(threads, device.type)

    monkeypatch.setattr(ranking, "use_cpu_threads", apply_then_stop)
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        config = ranking.RankingConfig(SearchConfig(space="nb201", threads=1, device="cpu"),
                                       reference="unused")
        with pytest.raises(Applied) as applied:
            ranking.run_ranking_experiment(config, table=None)
        assert applied.value.args == (1, "cpu") and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)


def test_cpu_threads_are_set_on_the_cpu_only():
    from naonet.runtime import use_cpu_threads

    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        use_cpu_threads(0, torch.device("cpu"))  # 0: torch's default stays
        assert torch.get_num_threads() == 2
        use_cpu_threads(1, torch.device("meta"))  # an accelerator keeps its host threads
        assert torch.get_num_threads() == 2
        use_cpu_threads(1, torch.device("cpu"))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(previous)


def test_nb201_cpu_presets_run_on_one_thread_and_resume_on_any():
    from naonet.search.state import check_resumable

    for name in ("quick-nb201", "nb201-rank-cpu", "nb201-search-cpu"):
        assert resolve_search_config(name).threads == 1, name
    check_resumable(SearchConfig(threads=1).to_dict(), SearchConfig(threads=4).to_dict(),
                    Path("run"))


def test_a_folder_from_before_common_re_rank_seeds_resumes_only_without_them(tmp_path):
    from naonet.search.state import check_resumable

    saved = SearchConfig().to_dict()
    del saved["rerank_common_seeds"]  # written before the option: a seed per candidate
    check_resumable(saved, SearchConfig().to_dict(), tmp_path)
    with pytest.raises(UserError, match="with --no-rerank-common-seeds, not --rerank-common-seeds"):
        check_resumable(saved, SearchConfig(rerank_common_seeds=True).to_dict(), tmp_path)


def test_seed_pool_file_and_uniform_sampling(cifar_mini, tmp_path):
    architectures = sample_architectures("small", 4, np.random.default_rng(5))
    file = tmp_path / "seeds.txt"
    file.write_text("# my seeds\n" + "".join(a.to_qualified_string() + "\n"
                                             for a in architectures))
    output = tmp_path / "run"
    search(tiny_config(cifar_mini, output, seed_pool_file=str(file), rounds=1,
                       sampling="uniform", scoring="per-architecture", rerank_top=0,
                       supernet_epochs=1, plot=False), show_progress=False)
    assert set(read_lines(output / "arch_pool")) == {a.to_qualified_string()
                                                     for a in architectures}
    assert len(read_lines(output / "arch_pool.final")) == 4  # top 5 of a pool of 4
    assert not (output / "scores.png").exists()
    file.write_text("small:1 2 3\n")
    with pytest.raises(UserError, match="line 1"):
        search(tiny_config(cifar_mini, tmp_path / "other", seed_pool_file=str(file)),
               show_progress=False)


def test_the_final_list_and_the_re_rank_skip_twins_of_an_earlier_entry():
    """NB201 cells that differ only on dead edges tie in the supernet; a search at the
    CPU preset once re-ranked five copies of one function (docs/nas-bench-201.md)."""
    from naonet.search.outputs import distinct_top, final_entries
    from naonet.search.state import SearchState

    space = get_space("nb201")
    first, twin, other, last = (space.parse(text) for text in (
        "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|nor_conv_3x3~0|skip_connect~1|none~2|",
        "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|nor_conv_3x3~0|skip_connect~1|none~2|",
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
        "nor_conv_3x3~2|",
        "|none~0|+|none~0|none~1|+|nor_conv_1x1~0|none~1|none~2|"))
    pool = [PoolEntry(arch, born=0, score=score)
            for arch, score in ((first, 0.9), (twin, 0.9), (other, 0.8), (last, 0.7))]
    assert [e.architecture for e in distinct_top(pool, 3)] == [first, other, last]
    assert [e.architecture for e in distinct_top(pool, 2)] == [first, other]
    state = SearchState(pool=pool)
    assert [e.architecture for e in final_entries(state, 2)] == [first, other]
    pool[0].rerank, pool[2].rerank = 0.5, 0.6  # re-ranked: best re-rank accuracy first
    assert [e.architecture for e in final_entries(state, 2)] == [other, first]
    # Cell spaces keep every architecture (the released search lists its top as is).
    cell = sample_architectures("small", 1, np.random.default_rng(0))[0]
    assert get_space("small").canonical(cell) == cell


# ----------------------------------------------------------------------- pictures and CLI
def test_score_plot(tmp_path):
    architectures = sample_architectures("small", 6, np.random.default_rng(1))
    pool = [PoolEntry(a, born=i // 3, score=0.1 * i,
                      scores={0: 0.1 * i, 1: 0.05 * i} if i < 3 else {1: 0.05 * i})
            for i, a in enumerate(architectures)]
    plot_score_distribution(pool, 2, tmp_path / "scores.png")
    assert (tmp_path / "scores.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("metric, label", [
    ("accuracy", "supernet score: validation accuracy (a fraction)"),
    ("loss", "supernet score: minus the validation cross-entropy")])  # was 'accuracy'
def test_the_score_plot_names_the_score_it_shows(tmp_path, monkeypatch, metric, label):
    from naonet.search import plots

    drawn = []
    monkeypatch.setattr(plots, "save_figure", lambda figure, path: drawn.append(
        figure.axes[0].get_ylabel()))
    architectures = sample_architectures("small", 2, np.random.default_rng(1))
    pool = [PoolEntry(a, born=0, score=-2.0, scores={0: -2.0}) for a in architectures]
    plot_score_distribution(pool, 1, tmp_path / "scores.png", metric)
    assert drawn == [label]


def test_nao_show_draws_both_cells(tmp_path, capsys):
    assert main(["show", "naonet-v2", "-o", str(tmp_path / "cells.png")]) == 0
    assert (tmp_path / "cells.png").read_bytes()[:4] == b"\x89PNG"
    assert "normal:" in capsys.readouterr().out
    line = resolve_architecture("naonet-v2").to_qualified_string()
    assert main(["show", line, "-o", str(tmp_path / "cells.svg")]) == 0
    assert b"<svg" in (tmp_path / "cells.svg").read_bytes()[:400]
    assert main(["show", "naonet-v2", "-o", str(tmp_path / "cells.txt")]) == 2
    assert "cells.txt" in capsys.readouterr().err


def test_table_evaluator_dispatch(monkeypatch, capsys):
    from naonet.cli import search as search_cli

    seen = {}
    table, error = search_cli._table_search()
    assert table is not None, error  # part of this repository: its absence is a defect
    monkeypatch.setattr(table, "run_table_search", lambda args: seen.update(vars(args)))
    assert main(["search", "--evaluator", "table:x.csv", "--space", "nb201"]) == 0
    assert seen["controller_epochs"] is not None and seen["space"] == "nb201"
    # flags shared with the one-shot search take the table search's defaults here...
    assert seen["max_lambda"] == 10 and seen["fill"] == "predicted"
    monkeypatch.setattr(search_cli, "_table_search",
                        lambda: (None, ModuleNotFoundError("no table search")))
    assert main(["search", "--evaluator", "table:x.csv"]) == 2
    assert "table_search" in capsys.readouterr().err
    assert main(["search", "--evaluator", "magic"]) == 2
    assert main(["search", "--space", "nb201"]) == 2
    # ...and the one-shot search keeps the released ones
    import naonet.search.loop as loop

    monkeypatch.setattr(loop, "search", lambda config, **_: seen.update(one_shot=config))
    assert main(["search", "--space", "nb201", "--no-progress"]) == 0
    assert seen["one_shot"].max_lambda == 51 and seen["one_shot"].fill == "none"


def test_supernet_pool_all_trains_on_every_architecture_scored_so_far():
    from naonet.search.loop import training_pool
    from naonet.search.state import PoolEntry, SearchState

    scored = sample_architectures("small", 4, np.random.default_rng(0))
    new = sample_architectures("small", 2, np.random.default_rng(1))
    state = SearchState(pool=[PoolEntry(arch, born=0) for arch in scored], children=new)
    space = get_space("small")
    assert training_pool(state, SearchConfig(), space) == new  # released: the new ones
    everything = training_pool(state, SearchConfig(supernet_pool="all"), space)
    assert everything[:2] == new and set(everything) == set(new) | set(scored)
    with pytest.raises(UserError, match="--supernet-pool must be one of"):
        SearchConfig(supernet_pool="some")


def test_supernet_pool_space_trains_on_every_cell_of_a_small_space_only():
    from naonet.search.loop import training_pool
    from naonet.search.state import SearchState

    config = SearchConfig(space="nb201", supernet_pool="space")
    state = SearchState(children=sample_architectures("nb201", 3, np.random.default_rng(0)))
    pool = training_pool(state, config, get_space("nb201"))
    assert len(pool) == len(set(pool)) == 15_625
    assert set(state.children) <= set(pool)
    with pytest.raises(UserError, match="'small' space holds too many; use --supernet-pool all"):
        SearchConfig(space="small", supernet_pool="space")


class ManualClock:
    """A clock that moves only when told: phase arithmetic checked exactly, on any load."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_phase_clock_times_each_phase_exclusive_of_the_phases_inside():
    from naonet.search.loop import PhaseClock

    clock = ManualClock()
    phases = PhaseClock(clock=clock)
    with phases.phase("outer"):
        clock.advance(2.0)
        with phases.phase("inner"):
            clock.advance(3.0)
        phases.add("measured", 1.0)  # measured by the caller inside "outer"
        clock.advance(0.5)
    assert phases.seconds == {"inner": 3.0, "measured": 1.0, "outer": 1.5}
    assert sum(phases.seconds.values()) == 5.5  # the phases add up to the whole


def test_a_finished_search_writes_its_phase_timings(tiny_run):
    timings = json.loads((tiny_run / "timings.json").read_text())["seconds"]
    assert {"start-up and data", "supernet training", "scoring", "controller training",
            "generation", "re-ranking", "checkpoints and outputs"} <= set(timings)
    assert all(value >= 0 for value in timings.values())


@pytest.mark.parametrize("bad, fragment", [
    (dict(fill="bogus"), "unknown fill 'bogus'; use one of: none, random"),
    (dict(score_transform="x"), "unknown score transform 'x'; use one of: raw, rank"),
    (dict(controller_valid_fraction=2.0), "valid_fraction must be in [0, 1), got 2.0")])
def test_controller_options_are_checked_when_the_config_is_made(bad, fragment):
    with pytest.raises(UserError, match=re.escape(fragment)):
        SearchConfig(**bad)


def test_phase_clock_flush_counts_open_phases_before_a_checkpoint():
    from naonet.search.loop import PhaseClock

    clock = ManualClock()
    phases = PhaseClock(clock=clock)
    with phases.phase("training"):
        clock.advance(2.0)
        with phases.phase("scoring"):
            clock.advance(1.0)
            phases.flush()  # what a checkpoint inside the phases saves
            saved = dict(phases.seconds)
            clock.advance(4.0)
        clock.advance(0.5)
    assert saved == {"training": 2.0, "scoring": 1.0}
    assert phases.seconds == {"training": 2.5, "scoring": 5.0}  # counted on, never twice


@pytest.mark.parametrize("strategy", ["random", "evolution"])
def test_baseline_strategies_search_on_the_same_supernet_and_counts(strategy, cifar_mini,
                                                                   tmp_path):
    output = tmp_path / strategy
    config = tiny_config(cifar_mini, output, space="nb201", strategy=strategy, rounds=3,
                         population_size=4, sample_size=2, rerank_top=0)
    final = search(config, show_progress=False)
    pool = json.loads((output / "pool.json").read_text())["architectures"]
    born = [record["round"] for record in pool]
    # the seed pool, then new_architectures distinct new ones in each later round
    assert sorted(born) == [1] * 6 + [2] * 3 + [3] * 3
    assert len({record["arch"] for record in pool}) == len(pool)
    scores = [record["supernet_score"] for record in pool]
    assert scores == sorted(scores, reverse=True)
    assert final[0]["arch"] == pool[0]["arch"]
    rounds = read_lines(output / "rounds.jsonl")
    assert len(rounds) == 3 and all(json.loads(line)["controller_pairwise_accuracy"] is None
                                    for line in rounds)
    if strategy == "evolution":  # every child is one edge away from a member of the pool
        space = get_space("nb201")
        earlier = [space.parse(r["arch"]) for r in pool if r["round"] < 3]
        for record in (r for r in pool if r["round"] == 3):
            child = space.to_integers(space.parse(record["arch"]))
            assert any(sum(a != b for a, b in zip(child, space.to_integers(parent))) == 1
                       for parent in earlier)


def test_few_shot_search_splits_after_its_round_and_resumes_to_the_same_outputs(
        cifar_mini, tmp_path):
    def config(name):
        return tiny_config(cifar_mini, tmp_path / name, space="nb201", few_shot_split=3,
                           few_shot_after=1, supernet_pool="all")

    search(config("whole"), show_progress=False)
    with pytest.MonkeyPatch.context() as patch:  # round 2, before its first epoch (split)
        interrupt_at(patch, "supernet_epoch", lambda s: (s.round, s.epoch) == (1, 0))
        with pytest.raises(Interrupted):
            search(config("resumed"), show_progress=False)
    with pytest.MonkeyPatch.context() as patch:  # round 2, after the split was saved
        interrupt_at(patch, "supernet_epoch", lambda s: (s.round, s.epoch) == (1, 1))
        with pytest.raises(Interrupted):
            search(config("resumed"), show_progress=False)
    weights = torch.load(tmp_path / "resumed" / "search_state.pt",
                         weights_only=True)["supernet"]
    assert bool(weights["split_done"])
    # after an epoch on their own cells the copies differ (those of choices no cell of
    # the pool has only decay, alike)
    stems = {weights[f"parts.{part}.stem.0.weight"].numpy().tobytes() for part in range(5)}
    assert len(stems) >= 3
    with pytest.MonkeyPatch.context() as patch:  # during the second re-rank
        interrupt_at(patch, "rerank_epoch", lambda s: s.rerank_index == 1)
        with pytest.raises(Interrupted):
            search(config("resumed"), show_progress=False)
    search(config("resumed"), show_progress=False)
    for name in ("arch_pool", "arch_pool.perf", "arch_pool.final", "arch_pool.perf.final"):
        assert (tmp_path / "resumed" / name).read_text() == \
            (tmp_path / "whole" / name).read_text(), name
    # the two re-ranked cells are the best of two copies
    final = json.loads((tmp_path / "whole" / "arch_pool.final.json").read_text())
    choices = {get_space("nb201").to_integers(get_space("nb201").parse(r["arch"]))[3]
               for r in final["architectures"]}
    assert final["reranked"] and len(final["architectures"]) == 2 and len(choices) == 2


def test_few_shot_options_are_checked():
    with pytest.raises(UserError, match="--few-shot-split"):
        SearchConfig(space="nb201", few_shot_split=6)
    with pytest.raises(UserError, match="--few-shot-after"):
        SearchConfig(space="nb201", few_shot_split=3, few_shot_after=4, rounds=4)
    with pytest.raises(UserError, match="--rerank-turns must be a position 0-5"):
        SearchConfig(space="nb201", rerank_turns=6)
    with pytest.raises(UserError, match="re-ranks by turns at its split"):
        SearchConfig(space="nb201", few_shot_split=3, rerank_turns=2)


def test_re_rank_turns_group_one_supernets_candidates_by_the_choice_there():
    from naonet.search.loop import candidate_groups

    space = get_space("nb201")
    cell = space.parse("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
    assert candidate_groups(SearchConfig(space="nb201")) is None
    assert candidate_groups(SearchConfig(space="nb201", rerank_turns=3))(cell) == 1
    assert candidate_groups(SearchConfig(space="nb201", rerank_turns=0))(cell) == 3
    assert candidate_groups(SearchConfig(space="nb201", few_shot_split=3,
                                         rerank_turns=3))(cell) == 1


def test_with_a_few_shot_split_the_final_list_takes_the_copies_best_in_turn():
    from naonet.search.outputs import distinct_top, final_entries
    from naonet.search.state import SearchState
    from naonet.supernet.few_shot import choice_at

    space = get_space("nb201")
    cells = [space.parse(text) for text in (  # ops on edge 0 -> 3: conv, conv, skip, 1x1
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|none~1|none~2|",
        "|nor_conv_3x3~0|+|none~0|none~1|+|nor_conv_3x3~0|nor_conv_3x3~1|none~2|",
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
        "nor_conv_3x3~2|",
        "|none~0|+|none~0|none~1|+|nor_conv_1x1~0|none~1|none~2|")]
    pool = [PoolEntry(arch, born=0, score=score)
            for arch, score in zip(cells, (0.9, 0.85, 0.8, 0.7))]
    assert [e.architecture for e in distinct_top(pool, 3)] == cells[:3]
    by_edge_0_3 = choice_at(3)
    assert [by_edge_0_3(cell) for cell in cells] == [3, 3, 1, 2]
    assert [e.architecture for e in distinct_top(pool, 3, by_edge_0_3)] == \
        [cells[0], cells[2], cells[3]]
    assert [e.architecture for e in distinct_top(pool, 4, by_edge_0_3)] == \
        [cells[0], cells[2], cells[3], cells[1]]
    state = SearchState(pool=pool)
    assert [e.architecture for e in final_entries(state, 2, by_edge_0_3)] == \
        [cells[0], cells[2]]


def test_none_unsets_a_presets_optional_value_from_a_flag_or_a_file():
    preset = resolve_search_config("nb201-search-cpu", {}, {})
    assert preset.rerank_turns == 3  # the CPU preset re-ranks in turns on edge 0 -> 3
    assert resolve_search_config("nb201-search-cpu", {}, {"rerank_turns": "none"}
                                 ).rerank_turns is None
    assert resolve_search_config("nb201-search-cpu", {"rerank_turns": None}, {}
                                 ).rerank_turns is None
    assert resolve_search_config(None, {}, {"space": "nb201", "few_shot_split": "2"}
                                 ).few_shot_split == 2
    with pytest.raises(UserError, match="few_shot_split must be an integer or none"):
        resolve_search_config(None, {}, {"space": "nb201", "few_shot_split": "x"})
    # YAML reads no/off/false as False, which int() would turn into position 0
    for word in ("no", "off", "false", "true"):
        values = yaml.safe_load(f"few_shot_split: {word}")
        with pytest.raises(UserError, match="few_shot_split must be an integer or none"):
            resolve_search_config(None, values, {"space": "nb201"})


def test_a_folder_from_before_the_few_shot_option_resumes_only_with_one_supernet(tmp_path):
    from naonet.search.state import check_resumable

    saved = resolve_search_config("nb201-search-cpu", {}, {}).to_dict()
    del saved["few_shot_split"], saved["few_shot_after"]  # written before the options
    check_resumable(saved, resolve_search_config("nb201-search-cpu", {}, {}).to_dict(),
                    tmp_path)
    # a split must not load one supernet's checkpoint into the copies
    with pytest.raises(UserError, match="with --few-shot-split none, not --few-shot-split 3"):
        check_resumable(saved, resolve_search_config("nb201-search-cpu", {}, {
            "few_shot_split": "3"}).to_dict(), tmp_path)


# ------------------------------------------------- benchmarks/rerank_again.py
def load_rerank_again():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        import rerank_again
    finally:
        sys.path.pop(0)
    return rerank_again


def test_a_re_rank_run_again_on_a_finished_search_reproduces_it_and_takes_new_options(
        tiny_run, cifar_mini, tmp_path):
    """What docs/nas-bench-201.md's re-rank measurements rest on: a finished folder set
    back to its re-rank and resumed re-ranks the same candidates to the same accuracies,
    and with another re-rank option only the re-rank changes."""
    rerank_again = load_rerank_again()

    def reranked(folder):
        pool = json.loads((folder / "pool.json").read_text())["architectures"]
        return [(r["arch"], r["rerank_accuracy"]) for r in pool if r["rerank_runs"]]

    again = tmp_path / "again"
    rerank_again.reset_to_rerank(tiny_run, again, {})
    assert not (again / "pool.json").exists() and not (again / "arch_pool.final").exists()
    search(tiny_config(cifar_mini, again), show_progress=False)
    assert reranked(again) == reranked(tiny_run) and len(reranked(tiny_run)) == 2
    assert (again / "arch_pool.final").read_text() == \
        (tiny_run / "arch_pool.final").read_text()

    longer = tmp_path / "longer"
    rerank_again.reset_to_rerank(tiny_run, longer, rerank_again.parse_options(
        ["rerank_epochs=2"]))
    # the old command no longer fits
    with pytest.raises(UserError, match="--rerank-epochs 2, not --rerank-epochs 1"):
        search(tiny_config(cifar_mini, longer), show_progress=False)
    search(tiny_config(cifar_mini, longer, rerank_epochs=2), show_progress=False)
    assert [arch for arch, _ in reranked(longer)] == [arch for arch, _ in reranked(tiny_run)]
    assert [accuracy for _, accuracy in reranked(longer)] != \
        [accuracy for _, accuracy in reranked(tiny_run)]
    assert (longer / "arch_pool").read_text() == (tiny_run / "arch_pool").read_text()


def test_rerank_again_refuses_what_it_cannot_run_again(tiny_run, tmp_path):
    rerank_again = load_rerank_again()
    with pytest.raises(UserError, match="rerank_KEY=VALUE"):
        rerank_again.parse_options(["channels=8"])
    with pytest.raises(UserError, match="not options of nao search"):
        rerank_again.reset_to_rerank(tiny_run, tmp_path / "x", {"rerank_colour": 1})
    with pytest.raises(UserError, match="exists"):
        rerank_again.reset_to_rerank(tiny_run, tiny_run, {})
    assert rerank_again.main([str(tiny_run), str(tmp_path / "y"), "epochs=3"]) == 2
    assert not (tmp_path / "y").exists()


def test_a_search_folders_config_names_its_files_from_any_folder(cifar_mini, tmp_path,
                                                                 monkeypatch, capsys):
    """config.yaml kept --data, --reference table:PATH and --seed-pool-file as typed, and
    a resume named them by absolute paths was refused (the reference was no resumable
    change): '--config RUN/config.yaml' from another folder failed."""
    import os
    import random
    import shutil

    import yaml

    from conftest import NB201_TABLE, require

    project = tmp_path / "project"
    shutil.copytree(cifar_mini, project / "data")
    shutil.copy(require(NB201_TABLE), project / "table.csv")
    seeds = [get_space("nb201").sample(random.Random(seed)).to_qualified_string()
             for seed in range(6)]
    (project / "seeds.txt").write_text("\n".join(seeds) + "\n")
    monkeypatch.chdir(project)
    flags = [item for key, value in {**TINY, "rounds": 1, "rerank_top": 0}.items()
             for item in (f"--{key.replace('_', '-')}", str(value))]
    status, _, err = nao_in_process(capsys, "search", *flags, "--space", "nb201", "--data",
                                    "data", "--reference", "table:table.csv",
                                    "--seed-pool-file", "seeds.txt", "--output", "runs/s",
                                    "--no-plot", "--no-progress")
    assert status == 0, err
    saved = yaml.safe_load((project / "runs" / "s" / "config.yaml").read_text())
    assert (saved["data"], saved["reference"], saved["seed_pool_file"], saved["output"]) == (
        str(project / "data"), f"table:{project / 'table.csv'}", str(project / "seeds.txt"),
        str(project / "runs" / "s"))
    monkeypatch.chdir(tmp_path)
    status, out, err = nao_in_process(capsys, "search", "--config",
                                      os.path.join("project", "runs", "s", "config.yaml"),
                                      "--no-progress")
    assert status == 0, err
    assert "finished already" in out


def test_a_bf16_search_on_a_cpu_without_bf16_instructions_is_noted_at_its_start(
        cifar_mini, tmp_path, monkeypatch):
    """As a training's start notes it: bf16 autocast is slower than float32 there."""
    from naonet import runtime

    monkeypatch.setattr(runtime, "cpu_flags", lambda: {"avx2"})  # whatever this CPU has
    lines: list[str] = []
    search(tiny_config(cifar_mini, tmp_path, amp="bf16", rounds=1, rerank_top=0,
                       supernet_epochs=1), show_progress=False, log=lines.append)
    note = runtime.slow_bf16_note(torch.device("cpu"), "bf16", flags={"avx2"})
    assert lines[1] == note, lines[:3]

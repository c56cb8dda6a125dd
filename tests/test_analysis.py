"""Ranking statistics (against scipy), score files, ``nao correlate`` and the supernet
ranking experiment at small scale."""

from __future__ import annotations

import json
import math
import random
import re

import numpy as np
import pytest
import torch

from naonet.analysis.correlation import (
    average_ranks,
    correlate,
    kendall_tau,
    pairwise_accuracy,
    precision_at_top,
    spearman_rho,
)
from naonet.analysis.scores import read_scores, write_scores
from naonet.errors import UserError
from naonet.nb201 import DEFAULT_METRIC, BenchmarkTable, metric_column
from naonet.spaces import get_space

from conftest import NB201_TABLE, nao_in_process, require
from nb201_synthetic import write_synthetic_table

scipy_stats = pytest.importorskip("scipy.stats")
pytestmark = pytest.mark.threads(1)  # the thread count its figures were measured with


def random_pairs():
    rng = np.random.default_rng(0)
    for size in (2, 3, 7, 50, 700):
        x = rng.normal(size=size)
        yield x, x + rng.normal(size=size)  # continuous
        yield rng.integers(0, 4, size), rng.integers(0, 3, size)  # many ties
        yield x, rng.integers(0, 5, size)


@pytest.mark.parametrize("pair", list(random_pairs()), ids=lambda p: f"n{len(p[0])}")
def test_statistics_agree_with_scipy_on_random_data(pair):
    x, y = pair
    expected_tau = scipy_stats.kendalltau(x, y).statistic
    expected_rho = scipy_stats.spearmanr(x, y).statistic
    assert kendall_tau(x, y) == pytest.approx(expected_tau, abs=1e-12, nan_ok=True)
    assert spearman_rho(x, y) == pytest.approx(expected_rho, abs=1e-12, nan_ok=True)
    np.testing.assert_allclose(average_ranks(np.asarray(x, float)), scipy_stats.rankdata(x))


@pytest.mark.parametrize("size", [0, 1])
def test_fewer_than_two_architectures_rank_nothing(size):
    """No pair to order: nan, as for a constant input (none raised numpy's 'zero-size
    array' error, and rho warned of an empty mean)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for statistic in (kendall_tau, spearman_rho, pairwise_accuracy):
            assert math.isnan(statistic([0.5] * size, [1.0] * size)), statistic


def test_pairwise_accuracy_and_precision_at_top():
    reference = [1.0, 2.0, 3.0, 4.0]
    assert pairwise_accuracy(reference, reference) == 1.0
    assert pairwise_accuracy(reference[::-1], reference) == 0.0
    assert pairwise_accuracy([1.0, 1.0, 1.0, 1.0], reference) == 0.5  # ties: half right
    # Without ties, pairwise accuracy is (1 + tau) / 2.
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=40), rng.normal(size=40)
    assert pairwise_accuracy(x, y) == pytest.approx((1 + kendall_tau(x, y)) / 2)
    assert precision_at_top([4, 3, 2, 1], [4, 3, 1, 2], 2) == 1.0
    assert precision_at_top([1, 2, 3, 4], [4, 3, 2, 1], 2) == 0.0
    with pytest.raises(UserError, match=r"top-k needs 1 <= k <= 40 .*, got 41"):
        precision_at_top(x, y, 41)
    report = correlate(x, y, top_k=(5, 100))
    assert report.count == 40 and list(report.precision_at_top) == [5]


def test_precision_at_top_breaks_ties_at_the_cut_at_random_whatever_the_order():
    """Ties at a cut count as a random choice among the tied (the first listed won: the
    order of a file's lines turned 0 into 1)."""
    import itertools

    assert precision_at_top([1, 1, 0], [0.5, 0.9, 0.1], 1) == 0.5
    assert precision_at_top([1, 1, 0], [0.9, 0.5, 0.1], 1) == 0.5  # the lines swapped
    assert precision_at_top([7, 7, 7, 7, 7], [1, 2, 3, 4, 5], 2) == pytest.approx(2 / 5)
    # the expectation over every tie-break, each scoring's drawn on its own
    x, y = [3, 1, 1, 1, 0, 2], [2, 2, 5, 0, 2, 1]

    def chance_in_top(values, k):
        counts = np.zeros(len(values))
        orders = list(itertools.permutations(range(len(values))))
        for order in orders:  # the tied listed in this order, the first of them winning
            ranked = sorted(range(len(values)), key=lambda i: (-values[i], order.index(i)))
            counts[ranked[:k]] += 1
        return counts / len(orders)

    for k in range(1, 7):
        expected = float(np.dot(chance_in_top(x, k), chance_in_top(y, k))) / k
        assert precision_at_top(x, y, k) == pytest.approx(expected, abs=1e-12), k


def test_score_files_text_and_csv(tmp_path):
    write_scores(tmp_path / "a.txt", [("arch one", 1.0), ("arch two", 3.0)])
    assert read_scores(tmp_path / "a.txt") == {"arch one": 1.0, "arch two": 3.0}
    (tmp_path / "b.csv").write_text("arch,acc,other\narch one,5,0\narch two,7,0\n")
    assert read_scores(tmp_path / "b.csv", "acc") == {"arch one": 5.0, "arch two": 7.0}
    with pytest.raises(UserError, match="no column"):
        read_scores(tmp_path / "b.csv", "missing")
    (tmp_path / "c.txt").write_text("arch one abc\n")
    with pytest.raises(UserError, match="not a number"):
        read_scores(tmp_path / "c.txt")


def test_every_user_list_reads_comments_alike(tmp_path):
    """A score file and a seed pool file are read by one rule: '#' starts a comment
    anywhere on a line. A score file's end-of-line comment was read as its score."""
    from naonet.search.loop import read_architecture_file
    from naonet.spaces import get_space

    (tmp_path / "a.txt").write_text("# scores\narch one 1.5  # best\n\n  arch two 3\n")
    assert read_scores(tmp_path / "a.txt") == {"arch one": 1.5, "arch two": 3.0}
    first, second = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|", \
        "|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    (tmp_path / "pool.txt").write_text(f"# seeds\n{first}  # the first\n\n{second}\n")
    space = get_space("nb201")
    assert read_architecture_file(tmp_path / "pool.txt", space) == [space.parse(first),
                                                                    space.parse(second)]


def test_score_files_saved_with_a_byte_order_mark_are_read_whole(tmp_path):
    """A spreadsheet's or Windows editor's BOM was part of the first architecture (its
    line then matched nothing, silently) or of the first column's name."""
    bom = "\ufeff"
    (tmp_path / "a.txt").write_text(f"{bom}arch one 1.5\narch two 3\n", encoding="utf-8")
    assert read_scores(tmp_path / "a.txt") == {"arch one": 1.5, "arch two": 3.0}
    (tmp_path / "b.csv").write_text(f"{bom}score,arch\n5,arch one\n7,arch two\n",
                                    encoding="utf-8")
    assert read_scores(tmp_path / "b.csv") == {"arch one": 5.0, "arch two": 7.0}
    (tmp_path / "arch_pool").write_text(f"{bom}arch one\narch two\n", encoding="utf-8")
    (tmp_path / "arch_pool.perf").write_text(f"{bom}0.5\n0.25\n", encoding="utf-8")
    assert read_scores(tmp_path / "arch_pool") == {"arch one": 0.5, "arch two": 0.25}


def test_the_released_searchs_round_files_are_read_with_their_scores(tmp_path):
    """The released search writes arch_pool.N beside arch_pool.perf.N, its scores printed
    as tensors: each line was read as a 39-integer 'architecture' scored by its last op,
    and two rounds of different scores correlated at tau 1.0."""
    cells = [get_space("small").sample(random.Random(seed)).to_string() for seed in range(4)]
    for round_index, scores in ((2, (0.5, 0.6, 0.7, 0.8)), (3, (0.9, 0.8, 0.7, 0.6))):
        (tmp_path / f"arch_pool.{round_index}").write_text("".join(f"{c}\n" for c in cells))
        (tmp_path / f"arch_pool.perf.{round_index}").write_text("".join(
            f"tensor({score:.4f}, device='cuda:0')\n" for score in scores))
    assert read_scores(tmp_path / "arch_pool.2") == dict(zip(cells, (0.5, 0.6, 0.7, 0.8)))
    first, second = (read_scores(tmp_path / f"arch_pool.{index}") for index in (2, 3))
    assert kendall_tau(list(first.values()), [second[key] for key in first]) == -1.0
    (tmp_path / "copied.txt").write_text((tmp_path / "arch_pool.2").read_text())
    with pytest.raises(UserError, match=r"copied.txt:1: the line is an architecture without "
                                        r"a score; a search's list of architectures is read "
                                        r"with the scores beside it"):
        read_scores(tmp_path / "copied.txt")


def test_a_bad_csv_value_is_named_by_its_line_in_the_file(tmp_path):
    """Blank lines count (the row's number was named: line 3 for line 5), and the hint
    names the column, not 'each line must end with the score'."""
    (tmp_path / "a.csv").write_text("arch,score\n\n\narch one,1\nx,abc\n")
    with pytest.raises(UserError, match=r"a.csv:5: 'abc' is not a number; the 'score' "
                                        r"column holds the scores$"):
        read_scores(tmp_path / "a.csv")
    (tmp_path / "b.csv").write_text("arch,score\narch one,1\n\narch one,2\n")
    with pytest.raises(UserError, match=r"b.csv:4: arch one comes again with another "
                                        r"score \(2; line 2 gives 1\)"):
        read_scores(tmp_path / "b.csv")


def test_another_spelling_of_an_architecture_matches_it():
    """'nb201:|...|' names the cell the table writes '|...|' (nao info and the table
    evaluator took it; nao correlate matched nothing)."""
    from naonet.analysis.scores import matched

    cells = [get_space("nb201").sample(random.Random(seed)).to_qualified_string()
             for seed in range(3)]
    scores = {f"nb201:{cells[0]}": 1.0, cells[1]: 2.0, f"nb201:{cells[2]}": 3.0,
              "not an architecture": 4.0}
    reference = {cell: 10.0 * number for number, cell in enumerate(cells)}
    keys, a, b = matched(scores, reference)
    assert keys == [f"nb201:{cells[0]}", cells[1], f"nb201:{cells[2]}"]
    assert (a, b) == ([1.0, 2.0, 3.0], [0.0, 10.0, 20.0])
    with pytest.raises(UserError, match=r"^(\S+) and nb201:\1 are one architecture, written "
                                        r"two ways; keep one line per architecture$"):
        matched({cells[0]: 1.0, f"nb201:{cells[0]}": 1.0, cells[1]: 2.0}, reference)


def test_an_architecture_listed_twice_with_two_scores_is_refused(tmp_path):
    """The last line silently won: three cells and a repeat of the first with score 99
    gave tau -1.0 with no word."""
    (tmp_path / "a.txt").write_text("arch one 1.0\narch two 3\narch one 1\n")
    assert read_scores(tmp_path / "a.txt") == {"arch one": 1.0, "arch two": 3.0}
    (tmp_path / "b.txt").write_text("arch one 1.0\narch two 3\narch one 99\n")
    with pytest.raises(UserError, match=r"b.txt:3: arch one comes again with another score "
                                        r"\(99; line 1 gives 1\); keep one line per"):
        read_scores(tmp_path / "b.txt")
    (tmp_path / "c.csv").write_text("arch,acc\narch one,5\narch one,7\n")
    with pytest.raises(UserError, match=r"c.csv:3: arch one comes again"):
        read_scores(tmp_path / "c.csv", "acc")


def test_correlate_command_on_two_files(tmp_path, capsys):
    rng = np.random.default_rng(2)
    truth = rng.normal(size=30)
    noisy = truth + 0.5 * rng.normal(size=30)
    write_scores(tmp_path / "a.txt", [(f"a{i}", v) for i, v in enumerate(noisy)])
    rows = "\n".join(f"a{i},{v}" for i, v in enumerate(truth))
    (tmp_path / "b.csv").write_text(f"arch,score\n{rows}\n")
    status, out, err = nao_in_process(capsys, "correlate", str(tmp_path / "a.txt"),
                           str(tmp_path / "b.csv"), "--top-k", "5")
    assert status == 0, err
    tau = float(next(line for line in out.splitlines()
                     if line.startswith("kendall tau")).split()[-1])
    assert tau == pytest.approx(scipy_stats.kendalltau(noisy, truth).statistic, abs=1e-4)
    assert "precision@top-5" in out
    assert "left out" not in out  # every line of A is in B
    # a line of A that B lacks (a typo, another cell) was dropped without a word
    write_scores(tmp_path / "a2.txt", [*((f"a{i}", v) for i, v in enumerate(noisy)),
                                      ("a-typo", 0.5), ("zz", 0.1)])
    status, out, err = nao_in_process(capsys, "correlate", str(tmp_path / "a2.txt"),
                                      str(tmp_path / "b.csv"))
    assert status == 0, err
    assert "\nleft out: 2 architectures of A not in B (the first: a-typo)\narchitectures" \
           "      30\n" in out, out
    status, _, err = nao_in_process(capsys, "correlate", str(tmp_path / "a.txt"))
    assert status == 2 and "two score files" in err
    status, out, err = nao_in_process(capsys, "correlate", str(tmp_path / "a.txt"),
                                      str(tmp_path / "b.csv"), "--top-k", "5,40")
    assert status == 0, err
    assert "precision@top-40: skipped, the files share only 30 architectures" in out
    status, _, err = nao_in_process(capsys, "correlate", str(tmp_path), str(tmp_path / "b.csv"))
    assert status == 2 and f"{tmp_path} is a folder; pass a score file" in err


def image_folder(root, per_class: int = 40, classes: int = 10, seed: int = 0):
    """A tiny CIFAR-shaped image folder: class k is noise around a class colour."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, count in (("train", per_class), ("test", 2)):
        for label in range(classes):
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True)
            colour = rng.integers(0, 256, 3)
            for index in range(count):
                pixels = np.clip(colour + rng.normal(0, 40, (32, 32, 3)), 0, 255)
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{index}.png")
    return root


def run_small_experiment(capsys, data, tmp_path, *extra: str, output_in_file: bool = False):
    """The paper's experiment at a very small scale; returns (stdout rows, output dir).
    ``output_in_file``: the output folder comes from a --config file, not --output."""
    table = write_synthetic_table(tmp_path / "table.csv")  # scores only need a reference
    output = tmp_path / "out"
    where = ["--output", str(output)]
    if output_in_file:  # once ignored: only the flag wrote the folder
        (tmp_path / "options.yaml").write_text(f"output: {output}\n")
        where = ["--config", str(tmp_path / "options.yaml")]
    status, out, err = nao_in_process(capsys, "correlate", "--supernet", "--reference",
                                      f"table:{table}",
                           "--data", str(data), "--archs", "8", "--channels", "4",
                           "--layers", "1", "--batch-size", "64", "--device", "cpu",
                           "--top-k", "3", "--eval-batch-size", "64", "--eval-batches", "2",
                           "--score-every", "1", *where, *extra)
    assert status == 0, err
    rows = {" ".join(line.split()[:2]): line.split()[2:] for line in out.splitlines()
            if line.startswith(("supernet uniform", "supernet balanced", "parameter count"))}
    assert set(rows) == {"parameter count", "supernet uniform", "supernet balanced"}
    # Every printed tau, recomputed from the score files and the table itself (to the
    # printed 4 decimals): scored against the wrong column or sampling, it fails.
    nb201 = get_space("nb201")
    truth = BenchmarkTable.load(table)
    column = metric_column(DEFAULT_METRIC)
    config = nb201.network_config(*nb201.final_size)
    for sampling in ("uniform", "balanced"):
        scores = read_scores(output / f"scores_{sampling}.txt")
        assert len(scores) == 8 and all(0 <= s <= 1 for s in scores.values())  # fractions
        cells = [nb201.parse(name) for name in scores]
        reference = [truth.value(cell, column) for cell in cells]
        tau = kendall_tau(list(scores.values()), reference)
        assert float(rows[f"supernet {sampling}"][0]) == pytest.approx(tau, abs=5e-5)
        counts = [nb201.parameter_count(cell, config) for cell in cells]
        assert float(rows["parameter count"][0]) == pytest.approx(
            kendall_tau(counts, reference), abs=5e-5)
    summary = json.loads((output / "summary.json").read_text())
    assert set(summary["samplings"]) == {"uniform", "balanced"}
    assert summary["config"]["search"]["space"] == "nb201"
    assert "naonet" in summary["revision"] and summary["finished"] is True
    epochs = summary["config"]["search"]["supernet_epochs"]
    assert [point["epochs"] for point in summary["samplings"]["uniform"]["curve"]] == \
        list(range(1, epochs + 1))
    return rows, output


def test_each_experiment_flag_sets_its_field_and_is_refused_when_comparing_files(tmp_path):
    """The experiment's own flags are listed once (EXPERIMENT_FLAGS): each one the command
    line takes sets its RankingConfig field, and a comparison of two files refuses it."""
    import dataclasses

    from naonet.cli.correlate import ranking_config, refuse_experiment_flags
    from naonet.cli.main import build_parser
    from naonet.search.ranking import EXPERIMENT_FLAGS, RankingConfig

    fields = {field.name for field in dataclasses.fields(RankingConfig)}
    assert set(EXPERIMENT_FLAGS) == fields - {"search", "reference", "top_k"}
    values = {"sample_size": ("7", 7), "samplings": ("uniform", ("uniform",)),
              "metric": ("valid_12ep", "valid_12ep"), "train_on": ("sample", "sample"),
              "score_every": ("3", 3)}
    defaults = {field.name: field.default for field in dataclasses.fields(RankingConfig)}
    table = str(tmp_path / "t.csv")
    for field, flag in EXPERIMENT_FLAGS.items():
        typed, expected = values[field]
        option = "--" + flag.replace("_", "-")
        args = build_parser().parse_args(["correlate", "--supernet", "--reference",
                                          f"table:{table}", "--data", str(tmp_path),
                                          option, typed])
        config, _ = ranking_config(args)
        assert getattr(config, field) == expected != defaults[field]
        args = build_parser().parse_args(["correlate", "a.txt", "b.txt", option, typed])
        with pytest.raises(UserError, match=f"^{option} applies only to the supernet"):
            refuse_experiment_flags(args)


def test_supernet_experiment_runs_on_cpu_and_reports_tau_for_both_samplings(tmp_path, capsys):
    data = image_folder(tmp_path / "images")
    run_small_experiment(capsys, data, tmp_path, "--supernet-epochs", "1",
                         "--train-subset", "256", "--valid-size", "128", output_in_file=True)


def tiny_experiment(capsys, data, table, output, *extra: str):
    """A two-sampling ranking experiment small enough for a unit test; (status, out, err)."""
    return nao_in_process(
        capsys, "correlate", "--supernet", "--reference", f"table:{table}", "--data",
        str(data), "--archs", "6", "--channels", "4", "--layers", "1", "--batch-size", "32",
        "--device", "cpu", "--eval-batch-size", "32", "--eval-batches", "1",
        "--supernet-epochs", "4", "--score-every", "1", "--train-subset", "64",
        "--valid-size", "32", "--samplings", "uniform,balanced", "--score-metric", "loss",
        "--output", str(output), *extra)  # loss: accuracy on 32 images may tie them all


def without_timings(summary: dict) -> dict:
    """A summary without what differs between two runs of the same experiment."""
    summary = json.loads(json.dumps(summary))
    summary.pop("revision")
    summary["config"]["search"].pop("output")
    for sampling in summary["samplings"].values():
        sampling.pop("seconds")
        for point in sampling["curve"]:
            point.pop("seconds")
    return summary


@pytest.fixture
def trained_epochs(monkeypatch):
    """(sampling, epoch) of every supernet epoch trained; set ``stop_at`` to one of them
    to raise KeyboardInterrupt there (what SIGINT from `timeout` raises)."""
    from naonet.search import ranking

    train_epoch = ranking.SupernetTrainer.epoch
    trained = []

    def counted(trainer, epoch):
        if (trainer.search.sampling, epoch) == getattr(counted, "stop_at", None):
            raise KeyboardInterrupt
        trained.append((trainer.search.sampling, epoch))
        return train_epoch(trainer, epoch)

    monkeypatch.setattr(ranking.SupernetTrainer, "epoch", counted)
    return counted, trained


def test_an_experiment_resumes_only_on_the_classes_it_was_measured_on(tmp_path, capsys,
                                                                      trained_epochs):
    """Labels are class positions: a class folder renamed under a stopped experiment
    would shift them, so the resume is refused in one line."""
    interrupt, _ = trained_epochs
    data = image_folder(tmp_path / "images", per_class=12)
    table = write_synthetic_table(tmp_path / "table.csv")
    interrupt.stop_at = ("uniform", 1)
    status, _, err = tiny_experiment(capsys, data, table, tmp_path / "run")
    assert status == 130, err
    for split in ("train", "test"):
        (data / split / "class9").rename(data / split / "zebra")
    interrupt.stop_at = None
    status, _, err = tiny_experiment(capsys, data, table, tmp_path / "run")
    assert status == 2 and len(err.strip().splitlines()) == 1, err
    assert "was measured on other classes (only in the run: class9; only in --data: " \
           "zebra)" in err, err


# Without momentum SGD keeps no state: only the saved gradient holders tell which
# parameters off the sampled path still get weight decay after the resume.
# The second also trains on a partial last batch (64 images, batch 24): a curve point
# counts the images trained on, 64 an epoch (the count was steps x batch, 72).
@pytest.mark.parametrize("optimizer", [(), ("--momentum", "0", "--weight-decay", "0.01",
                                            "--batch-size", "24")],
                         ids=["momentum", "no-momentum"])
def test_an_experiment_stopped_mid_training_keeps_its_points_and_resumes_to_the_same_result(
        tmp_path, capsys, trained_epochs, optimizer):
    """A run stopped at a time limit (the GPU script's) leaves its summary so far, and
    the same command resumes it after its last epoch, to the uninterrupted run's scores."""
    interrupt, trained = trained_epochs
    data = image_folder(tmp_path / "images", per_class=12)
    table = write_synthetic_table(tmp_path / "table.csv")

    status, _, err = tiny_experiment(capsys, data, table, tmp_path / "straight", *optimizer)
    assert status == 0, err
    assert trained == [(s, e) for s in ("uniform", "balanced") for e in range(4)]

    output = tmp_path / "stopped"
    interrupt.stop_at = ("balanced", 2)
    trained.clear()
    status, _, err = tiny_experiment(capsys, data, table, output, *optimizer)
    assert status == 130 and "interrupted" in err
    summary = json.loads((output / "summary.json").read_text())
    assert summary["finished"] is False
    assert [(point["epochs"], point["images"]) for point in
            summary["samplings"]["uniform"]["curve"]] == [(e, 64 * e) for e in (1, 2, 3, 4)]
    curve = summary["samplings"]["balanced"]["curve"]
    assert [point["epochs"] for point in curve] == [1, 2]
    scores = read_scores(output / "scores_balanced.txt")  # the last point's, to 6 decimals
    assert list(scores.values()) == pytest.approx(curve[-1]["scores"], abs=5e-7)
    truth = BenchmarkTable.load(table)
    cells = [get_space("nb201").parse(name) for name in scores]
    reference = [truth.value(cell, metric_column(DEFAULT_METRIC)) for cell in cells]
    assert curve[-1]["kendall_tau"] == pytest.approx(
        kendall_tau(curve[-1]["scores"], reference), abs=1e-12)

    interrupt.stop_at = None
    trained.clear()
    status, out, err = tiny_experiment(capsys, data, table, output, *optimizer)
    assert status == 0, err
    assert "balanced: resumed after epoch 2/4" in err
    assert trained == [("balanced", 2), ("balanced", 3)]  # nothing trained twice
    straight = json.loads((tmp_path / "straight" / "summary.json").read_text())
    resumed = json.loads((output / "summary.json").read_text())
    assert resumed["finished"] is True
    assert without_timings(resumed) == without_timings(straight)
    assert [point["images"] for point in resumed["samplings"]["balanced"]["curve"]] == [
        64, 128, 192, 256]  # the epochs before the stop counted as they were
    for name in ("scores_uniform.txt", "scores_balanced.txt", "reference.txt"):
        assert (output / name).read_text() == (tmp_path / "straight" / name).read_text()

    trained.clear()  # a finished experiment reports what it saved, training nothing
    status, again, err = tiny_experiment(capsys, data, table, output, *optimizer)
    assert status == 0 and trained == [] and "every sampling finished" in err
    assert again == out  # the figures and seconds saved


# Every search option the experiment does not read, at another value than its default
UNREAD_VALUES = {
    "rounds": 9, "seed_pool_size": 7, "seed_pool_file": "pool.txt", "new_architectures": 5,
    "top_seeds": 3, "strategy": "evolution", "population_size": 9, "sample_size": 4,
    "score_transform": "rank", "fresh_controller": True, "fill": "random", "max_lambda": 7,
    "restart_schedule": False, "reinit_supernet": True, "few_shot_after": 2,
    "max_params": 100000, "max_macs": 10**7, "max_latency_ms": 5.0, "latency_batch": 2,
    "plot": False, "log_every": 3, "controller_augment": 2, "controller_batch_size": 8,
    "controller_decoder_layers": 2, "controller_embedding_size": 8,
    "controller_encoder_layers": 2, "controller_epochs": 3, "controller_grad_clip": 1.0,
    "controller_hidden_size": 16, "controller_lr": 0.01, "controller_mlp_dropout": 0.0,
    "controller_mlp_hidden_size": 20, "controller_mlp_layers": 1,
    "controller_trade_off": 0.5, "controller_valid_fraction": 0.2,
    "controller_weight_decay": 0.01, "rerank_aux_weight": 0.0, "rerank_channels": 8,
    "rerank_common_seeds": True, "rerank_drop_path_keep_prob": 0.9, "rerank_epochs": 2,
    "rerank_keep_prob": 0.9, "rerank_layers": 1, "rerank_processes": 2, "rerank_repeats": 2,
    "rerank_top": 2, "rerank_turns": 3}


def test_the_search_options_the_experiment_refuses_change_nothing_it_measures(
        tmp_path, capsys, trained_epochs):
    """The options nao correlate refuses as unread (--max-params was taken and dropped):
    a config file (a search's config.yaml) setting every one of them, and the two the
    experiment sets itself, measures what the defaults measure, and its folder resumes
    without the file."""
    import yaml

    from naonet.search.ranking import SET_BY_THE_EXPERIMENT, UNREAD_SEARCH_OPTIONS

    assert set(UNREAD_VALUES) == UNREAD_SEARCH_OPTIONS  # a new one gets a value here
    interrupt, trained = trained_epochs
    data = image_folder(tmp_path / "images", per_class=12)
    table = write_synthetic_table(tmp_path / "table.csv")
    options = tmp_path / "search.yaml"
    options.write_text(yaml.safe_dump({**UNREAD_VALUES, "sampling": "uniform",
                                       "supernet_pool": "all"}))
    (tmp_path / "pool.txt").write_text("")
    assert SET_BY_THE_EXPERIMENT == {"sampling", "supernet_pool"}
    status, _, err = tiny_experiment(capsys, data, table, tmp_path / "plain")
    assert status == 0, err
    interrupt.stop_at = ("uniform", 1)
    status, _, err = tiny_experiment(capsys, data, table, tmp_path / "out", "--config",
                                     str(options))
    assert status == 130, err
    interrupt.stop_at = None
    trained.clear()
    status, _, err = tiny_experiment(capsys, data, table, tmp_path / "out")
    assert status == 0, err
    assert "uniform: resumed after epoch 1/4" in err and trained[0] == ("uniform", 1)
    plain, resumed = (without_timings(json.loads((tmp_path / name / "summary.json")
                                                 .read_text())) for name in ("plain", "out"))
    assert resumed["samplings"] == plain["samplings"]
    for name in ("scores_uniform.txt", "scores_balanced.txt"):
        assert (tmp_path / "out" / name).read_text() == (tmp_path / "plain" / name).read_text()


def test_an_experiment_reports_the_images_it_scored_on(tmp_path, capsys):
    """3 batches of 32 asked of a 32-image split score on 32 (it said 96)."""
    data = image_folder(tmp_path / "images", per_class=12)
    table = write_synthetic_table(tmp_path / "table.csv")
    status, out, err = tiny_experiment(capsys, data, table, tmp_path / "out", "--eval-batches",
                                       "3", "--supernet-epochs", "1", "--samplings", "uniform")
    assert status == 0, err
    assert "6 architectures scored (loss) on the same 32 held-out images" in out, out
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["scoring_images"] == 32


def revise_metric(table, target, revise) -> dict[str, float]:
    """Copy ``table`` to ``target`` with ``revise`` applied to the compared metric; the
    revised values by architecture."""
    import csv

    column = metric_column(DEFAULT_METRIC)
    with open(table, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row[column] = f"{revise(float(row[column])):.4f}"
    with open(target, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return {row["arch"]: float(row[column]) for row in rows}


def test_an_experiment_folder_resumes_only_its_own_experiment(tmp_path, capsys,
                                                              trained_epochs):
    interrupt, _ = trained_epochs
    interrupt.stop_at = ("uniform", 1)
    data = image_folder(tmp_path / "images", per_class=12)
    table = write_synthetic_table(tmp_path / "table.csv")
    output = tmp_path / "out"
    assert tiny_experiment(capsys, data, table, output)[0] == 130
    state_file = output / "ranking_state.pt"
    saved_bytes = state_file.read_bytes()
    state = torch.load(state_file, weights_only=True)
    assert state["world_size"] == 1
    state["world_size"] = 2  # as if torchrun had run it with two processes
    torch.save(state, state_file)
    status, _, err = tiny_experiment(capsys, data, table, output)
    assert status == 2 and len(err.splitlines()) == 1
    assert ("is a ranking experiment of 2 processes, this one has 1: rerun it under torchrun "
            "with 2 processes") in err
    state_file.write_bytes(saved_bytes)
    status, _, err = tiny_experiment(capsys, data, table, output, "--lr", "0.2")
    assert status == 2
    assert err.strip().endswith("pass another --output, or delete the folder to start over")
    assert "belongs to a ranking experiment with --lr " in err and len(err.splitlines()) == 1
    other = write_synthetic_table(tmp_path / "other.csv", seed=1)  # another sample
    status, _, err = tiny_experiment(capsys, data, other, output)
    assert status == 2 and "scored another sample of the table" in err
    interrupt.stop_at = ("uniform", 2)
    # The table elsewhere, its values revised (the same cells, so the same sample):
    # resumed, and every statistic, the saved point's too, is against the new values.
    moved = tmp_path / "moved" / "table.csv"
    moved.parent.mkdir()
    revised = revise_metric(table, moved, lambda value: 100.0 - value)
    status, _, err = tiny_experiment(capsys, data, moved, output)
    assert status == 130 and "uniform: resumed after epoch 1/4" in err
    curve = json.loads((output / "summary.json").read_text())["samplings"]["uniform"]["curve"]
    assert [point["epochs"] for point in curve] == [1, 2]
    truth = [revised[name] for name in read_scores(output / "reference.txt")]
    for point in curve:
        assert point["kendall_tau"] == pytest.approx(kendall_tau(point["scores"], truth),
                                                     abs=1e-12)
    (output / "ranking_state.pt").write_bytes(b"not a checkpoint")
    status, _, err = tiny_experiment(capsys, data, table, output)
    assert status == 2 and "is corrupt or not a naonet checkpoint" in err
    assert err.strip().endswith("pass another --output, or delete the folder to start over")
    assert len(err.splitlines()) == 1


def test_trained_on_the_sample_the_supernet_samples_only_the_scored_cells(
        tmp_path, capsys, monkeypatch):
    from naonet.search import ranking

    pools = []
    make_trainer = ranking.SupernetTrainer.__init__

    def keep_pool(trainer, search, space, data, context, pool, paths):
        pools.append([cell.to_string() for cell in pool])
        make_trainer(trainer, search, space, data, context, pool, paths)

    monkeypatch.setattr(ranking.SupernetTrainer, "__init__", keep_pool)
    data = image_folder(tmp_path / "images", per_class=12)
    table = write_synthetic_table(tmp_path / "table.csv")
    runs = {}
    for train_on in ("space", "sample"):
        output = tmp_path / train_on
        status, out, err = nao_in_process(
            capsys, "correlate", "--supernet", "--reference", f"table:{table}", "--data",
            str(data), "--archs", "5", "--channels", "4", "--layers", "1", "--batch-size",
            "32", "--device", "cpu", "--eval-batch-size", "32", "--eval-batches", "1",
            "--supernet-epochs", "1", "--train-subset", "64", "--valid-size", "32",
            "--samplings", "uniform", "--train-on", train_on, "--output", str(output))
        assert status == 0, err
        assert f"sampled from {'every cell' if train_on == 'space' else 'the sample'}" in out
        runs[train_on] = (pools.pop(), read_scores(output / "scores_uniform.txt"),
                          json.loads((output / "summary.json").read_text()))
    space_pool, scored, summary = runs["space"]
    assert len(space_pool) == len(BenchmarkTable.load(table)) and summary["config"][
        "train_on"] == "space"
    sample_pool, scored_too, summary = runs["sample"]
    assert sorted(sample_pool) == sorted(scored) == sorted(scored_too)  # the same 5 cells
    assert summary["config"]["train_on"] == "sample"


@pytest.mark.slow
def test_supernet_experiment_on_real_cifar10(tmp_path, capsys, cifar_mini):
    run_small_experiment(capsys, cifar_mini, tmp_path, "--supernet-epochs", "3",
                         "--train-subset", "400", "--valid-size", "200")


def test_balanced_sampling_prefers_large_architectures():
    from naonet.models.nb201 import CostCounter
    from naonet.spaces import NB201
    from naonet.supernet import PoolSampler

    counter = CostCounter(NB201)
    pool = list(NB201.all_architectures())
    samples = {sampling: PoolSampler(pool, np.random.default_rng(0), sampling).sample_many(2000)
               for sampling in ("balanced", "uniform")}
    balanced = np.mean([counter.parameters(arch) for arch in samples["balanced"]])
    uniform = np.mean([counter.parameters(arch) for arch in samples["uniform"]])
    assert balanced > 1.2 * uniform


def test_correlate_reads_the_shared_table_as_a_csv_score_file(capsys):
    require(NB201_TABLE)
    status, out, err = nao_in_process(capsys, "correlate", str(NB201_TABLE), str(NB201_TABLE),
                           "--column-a", "valid_acc_12ep", "--column-b", "valid_acc_200ep",
                           "--top-k", "10,100")
    assert status == 0, err
    assert "architectures      15625" in out


def test_correlate_reads_a_searchs_arch_pool_with_its_scores(capsys, tmp_path):
    """arch_pool and the arch_pool.perf beside it are a score file as they are (no
    pasting); against the shared table their tau is scipy's on the same cells."""
    from naonet.nb201 import BenchmarkTable

    table = BenchmarkTable.load(require(NB201_TABLE))
    rows = range(0, 15625, 313)  # 50 cells
    cells = [table.architectures[row] for row in rows]
    early = [table.column("valid_acc_12ep")[row] for row in rows]
    final = [table.column("valid_acc_200ep")[row] for row in rows]
    run = tmp_path / "run"
    run.mkdir()
    (run / "arch_pool").write_text("".join(f"{cell.to_qualified_string()}\n" for cell in cells))
    (run / "arch_pool.perf").write_text("".join(f"{float(value)!r}\n" for value in early))
    status, out, err = nao_in_process(capsys, "correlate", str(run / "arch_pool"),
                                      str(NB201_TABLE), "--column-b", "valid_acc_200ep")
    assert status == 0, err
    assert "architectures      50" in out, out
    tau = float(next(line for line in out.splitlines()
                     if line.startswith("kendall tau")).split()[-1])
    assert tau == pytest.approx(scipy_stats.kendalltau(early, final).statistic, abs=1e-4)
    (run / "arch_pool.perf").write_text("0.5\n")
    status, _, err = nao_in_process(capsys, "correlate", str(run / "arch_pool"),
                                    str(NB201_TABLE), "--column-b", "valid_acc_200ep")
    assert status == 2 and "lists 50 architectures but" in err and "1 scores" in err, err
    (run / "arch_pool.perf").unlink()
    status, _, err = nao_in_process(capsys, "correlate", str(run / "arch_pool"),
                                    str(NB201_TABLE), "--column-b", "valid_acc_200ep")
    assert status == 2 and "arch_pool.perf is missing" in err, err
    small = [get_space("small").sample(random.Random(seed)) for seed in range(3)]
    (run / "arch_pool").write_text("".join(f"{arch.to_string()}\n" for arch in small))
    (run / "arch_pool.perf").write_text("0.5\n0.6\n0.7\n")
    status, _, err = nao_in_process(capsys, "correlate", str(run / "arch_pool"),
                                    str(NB201_TABLE), "--column-b", "valid_acc_200ep")
    assert status == 2 and "architectures of different spaces (small and nb201)" in err, err


def test_a_score_that_is_no_number_is_named_with_its_place():
    """It said only "scores contain nan or inf": which list, where, and what to do."""
    from naonet.analysis.correlation import kendall_tau

    with pytest.raises(UserError, match=re.escape(
            "the reference list holds a value that is no number (nan at position 2); drop the "
            "architectures without a score")):
        kendall_tau([0.1, 0.2, 0.3], [1.0, 2.0, math.nan])

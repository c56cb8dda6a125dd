"""Searching under a budget on the final network: every search draws, mutates and
generates only architectures within it, outputs carry the costs, and the Pareto front."""

from __future__ import annotations

import json
import random
import re

import numpy as np
import pytest
import torch

from naonet.constraints import Budget, CostMeter, FeasibleSpace, pareto_front
from naonet.errors import UserError
from naonet.models.complexity import count_multiply_adds
from naonet.spaces import get_space
from naonet.supernet import sample_architectures

from conftest import NB201_TABLE, require

SPACES = ("small", "middle", "nb201")


@pytest.mark.parametrize("space_name", SPACES)
def test_costs_are_those_of_the_built_final_network(space_name):
    space = get_space(space_name)
    meter = CostMeter(space, Budget(channels=8, layers=1))
    from naonet.models import count_parameters

    for architecture in [space.sample(random.Random(seed)) for seed in range(3)]:
        network = space.build_network(architecture, meter.config)
        assert meter.parameters(architecture) == count_parameters(network)
        assert meter.macs(architecture) == count_multiply_adds(network, (3, 32, 32))


def test_the_final_size_is_the_spaces_published_one():
    assert CostMeter(get_space("nb201"), Budget()).config.channels == 16
    config = CostMeter(get_space("small"), Budget()).config
    assert (config.channels, config.layers) == (36, 6)


@pytest.mark.parametrize("bad, fragment", [
    (dict(max_params=0), "--max-params must be a positive number, got 0"),
    (dict(max_macs=-5), "--max-macs must be a positive number, got -5"),
    (dict(max_latency_ms=float("nan")), "--max-latency-ms must be a positive number, got nan"),
    (dict(latency_batch=0), "--latency-batch must be >= 1, got 0")])
def test_a_zero_negative_or_nan_budget_is_refused(bad, fragment):
    with pytest.raises(UserError, match=re.escape(fragment)):
        Budget(**bad)


@pytest.mark.parametrize("space_name", SPACES)
def test_a_feasible_space_samples_and_mutates_within_the_budget(space_name):
    space = get_space(space_name)
    meter = CostMeter(space, Budget(channels=8, layers=1))
    counts = sorted(meter.parameters(space.sample(random.Random(seed))) for seed in range(40))
    limit = counts[len(counts) // 4]  # about a quarter of the space fits
    limited = FeasibleSpace(space, CostMeter(space, Budget(max_params=limit, channels=8,
                                                           layers=1)))
    rng = random.Random(1)
    drawn = [limited.sample(rng) for _ in range(20)]
    assert all(meter.parameters(a) <= limit for a in drawn)
    children = [limited.mutate(a, rng) for a in drawn]
    assert all(meter.parameters(a) <= limit for a in children)
    assert limited.rejected > 0  # it did turn some down
    # the pool sampler's draw of the integer coding would ignore the budget: refused
    with pytest.raises(UserError, match="limited to a budget; draw each with space.sample"):
        sample_architectures(limited, 20, np.random.default_rng(0))


def test_a_feasible_space_lists_only_the_architectures_within_the_budget():
    space = get_space("nb201")
    meter = CostMeter(space, Budget(channels=8, layers=1))
    limit = 50_000  # NB201 C 8 N 1 networks hold 18,738 to 91,986 parameters
    limited = FeasibleSpace(space, CostMeter(space, Budget(max_params=limit, channels=8,
                                                           layers=1)))
    listed = list(limited.all_architectures())
    everything = list(space.all_architectures())
    assert listed == [a for a in everything if meter.parameters(a) <= limit]
    assert 0 < len(listed) < len(everything)


def test_an_unmeetable_budget_names_the_smallest_possible_value():
    space = get_space("nb201")
    limited = FeasibleSpace(space, CostMeter(space, Budget(max_params=1000)))
    with pytest.raises(UserError, match=r"--max-params 1,000 \(below the smallest possible, "
                                        r"73,306\)"):
        limited.sample(random.Random(0))
    # multiply-adds too (they were the smallest of 1,000 random draws, said to be exact;
    # 7,783,040 is the smallest over all 15,625 cells, enumerated in a trial)
    limited = FeasibleSpace(space, CostMeter(space, Budget(max_macs=1000)))
    with pytest.raises(UserError, match=r"--max-macs 1,000 \(below the smallest possible, "
                                        r"7,783,040\)"):
        limited.sample(random.Random(0))


def test_latency_is_measured_once_per_device_and_cached(tmp_path):
    space = get_space("nb201")
    budget = Budget(max_latency_ms=1e6, latency_batch=4, channels=4, layers=1, image_size=16)
    cache = tmp_path / "latency.json"
    meter = CostMeter(space, budget, cache_file=cache)
    architecture = space.sample(random.Random(0))
    first = meter.latency_ms(architecture)
    assert set(first) == {"1", "4"} and all(value > 0 for value in first.values())
    again = CostMeter(space, budget, cache_file=cache)
    again._time = None  # a second measurement would fail: it must come from the cache
    assert again.latency_ms(architecture) == first
    assert len(json.loads(cache.read_text())) == 1  # one device


def test_pareto_front_keeps_the_non_dominated_points():
    points = [(0.9, 5.0), (0.8, 3.0), (0.85, 6.0), (0.7, 1.0), (0.7, 2.0), (0.9, 4.0)]
    assert pareto_front(points) == [5, 1, 3]
    # ties in both are non-dominated, each of them (a trial's front dropped five such)
    assert pareto_front([*points, (0.8, 3.0), (0.7, 1.0), (0.8, 3.5)]) == [5, 1, 6, 3, 7]


@pytest.mark.parametrize("strategy", ["random", "evolution", "nao"])
def test_table_searches_query_only_architectures_within_the_budget(strategy, tmp_path):
    from naonet.nb201 import BenchmarkTable, TableEvaluator
    from naonet.strategies import run_strategy

    from nb201_synthetic import write_synthetic_table

    table = BenchmarkTable.load(write_synthetic_table(tmp_path / "table.csv"))
    limits = Budget(max_params=157_306)
    meter = CostMeter(table.space, limits)
    space = FeasibleSpace(table.space, meter)
    evaluator = TableEvaluator(table, budget=30)
    run_strategy(strategy, space, evaluator, seed=0)
    queried = [architecture for architecture, _ in evaluator.history()]
    assert len(queried) == 30
    assert all(meter.parameters(a) <= limits.max_params for a in queried)


def test_a_one_shot_search_under_a_budget(cifar_mini, tmp_path, capsys):
    from test_search import tiny_config

    from naonet.search.loop import search

    space = get_space("nb201")
    meter = CostMeter(space, Budget())
    counts = sorted(meter.parameters(space.sample(random.Random(seed))) for seed in range(60))
    limit = counts[len(counts) // 3]
    output = tmp_path / "run"
    # searched at 16 px, the proxy size of the NB201 presets; budgets and costs are the
    # network's at 32 px, CIFAR's own, as the table search measures them (they were at 16)
    final = search(tiny_config(cifar_mini, output, space="nb201", max_params=limit,
                               max_macs=10**12, rerank_top=0, plot=True, image_size=16),
                   show_progress=False)
    # the start line says the budget (nothing on the console did)
    assert (f"; every architecture within parameters <= {limit:,}, multiply-adds <= "
            "1,000,000,000,000 (its final network, C 16, N 5, at 32 px)\n"
            ) in capsys.readouterr().out
    pool = json.loads((output / "pool.json").read_text())["architectures"]
    assert len(pool) > 6
    for record in pool + final:
        assert record["final_parameters"] <= limit
        assert record["final_macs"] == meter.macs(space.parse(record["arch"]))
    pareto = json.loads((output / "pareto.json").read_text())
    front = pareto["fronts"]["final_parameters"]
    points = [(r["supernet_score"], r["final_parameters"]) for r in pool]
    assert [r["arch"] for r in front] == [pool[i]["arch"] for i in pareto_front(points)]
    assert (output / "pareto.png").stat().st_size > 0
    assert torch.load(output / "search_state.pt", weights_only=True)


def test_a_latency_budget_needs_a_device_that_can_be_timed():
    with pytest.raises(UserError, match="needs a device that can be timed"):
        CostMeter(get_space("nb201"), Budget(max_latency_ms=5.0), device="meta")


def test_a_query_budget_above_the_feasible_architectures_is_one_line():
    """Only the smallest cells fit 73,306 parameters: 10,000 queries cannot all be new."""
    from naonet.evaluators import BudgetedEvaluator
    from naonet.strategies import run_strategy

    space = get_space("nb201")
    limited = FeasibleSpace(space, CostMeter(space, Budget(max_params=73_306)))
    evaluator = BudgetedEvaluator(lambda architecture: 1.0, budget=10_000)
    with pytest.raises(UserError, match="lower --budget"):
        run_strategy("random", limited, evaluator, seed=0)


@pytest.mark.slow
def test_nao_under_a_parameter_budget_beats_the_baselines_near_the_optimum():
    """Issue 10's figure on the shared table: 100 queries within the 25th percentile of
    parameters, 20 seeds the defaults were not chosen on (measured 91.02 against
    evolution's 90.85 and random's 90.66; the feasible optimum is 91.31). The last
    assertion is the requirement itself, met here with 0.01 to spare: another torch or
    CPU can send a seed down another path, and then this test says so."""
    from naonet.nb201 import BenchmarkTable
    from naonet.strategies.benchmark import benchmark_strategies, feasible_optimum

    table = BenchmarkTable.load(require(NB201_TABLE))
    limits = Budget(max_params=157_306)
    _, optimum = feasible_optimum(table, limits)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the thread count the figure was measured with
    try:
        runs = {runs.strategy: runs.mean() for runs in benchmark_strategies(
            table, ["random", "evolution", "nao"], range(200, 220), 100, limits=limits)}
    finally:
        torch.set_num_threads(threads)
    assert optimum == pytest.approx(0.9131, abs=0.0001)
    assert runs["nao"] > max(runs["evolution"], runs["random"])
    assert runs["nao"] >= optimum - 0.003


def test_none_leaves_a_budget_flag_unset_as_for_every_optional_option():
    from naonet.cli.main import build_parser

    parser = build_parser()
    args = parser.parse_args(["search", "--max-params", "none", "--max-latency-ms", "None",
                              "--max-macs", "5000"])
    assert (args.max_params, args.max_latency_ms, args.max_macs) == (None, None, 5000)
    with pytest.raises(SystemExit) as exit_:  # argparse: "invalid int value: 'lots'"
        parser.parse_args(["search", "--max-params", "lots"])
    assert exit_.value.code == 2


def test_a_size_limit_may_be_written_as_a_power_of_ten():
    """'--max-params 1e6' was refused as no int, and so was 'max_params: 1e6' in a config
    file; 1.5 parameters still is."""
    import argparse

    from naonet.cli.table_search import add_budget_arguments
    from naonet.options import coerce_options
    from naonet.search import SearchConfig

    assert coerce_options(SearchConfig, {"max_params": "1e6", "max_macs": 2.5e8},
                          "search") == {"max_params": 1_000_000, "max_macs": 250_000_000}
    with pytest.raises(UserError, match="option max_params must be an integer or none, got "
                                        "'1.5'"):
        coerce_options(SearchConfig, {"max_params": "1.5"}, "search")

    parser = argparse.ArgumentParser()
    add_budget_arguments(parser)
    parsed = parser.parse_args(["--max-params", "1e6", "--max-macs", "2.5e8"])
    assert (parsed.max_params, parsed.max_macs) == (1_000_000, 250_000_000)
    assert type(parsed.max_params) is int
    with pytest.raises(SystemExit):
        parser.parse_args(["--max-params", "1.5"])


def test_every_integer_flag_takes_a_power_of_ten_and_refuses_a_fraction():
    """Only --max-params and --max-macs took '1e3', while a config file took it for every
    integer option: one rule now, for every command's integer flags."""
    from naonet.cli.main import build_parser
    from naonet.cli.options import integer_flag
    from naonet.options import whole_number

    parser = build_parser()
    checked = []
    for name, command in parser.subcommand_parsers.items():
        for action in command._actions:
            caster = getattr(action.type, "__wrapped__", action.type)
            if action.type is int:
                checked.append(f"{name} {action.option_strings[0]} is plain int")
            elif caster in (whole_number, integer_flag):
                assert action.type("1e3") == 1000 and type(action.type("1e3")) is int
                with pytest.raises(ValueError):
                    action.type("1.5")
                checked.append(name)
    assert not [entry for entry in checked if "plain int" in entry]
    assert {"train", "search", "eval", "bench-search", "correlate"} <= set(checked)
    from naonet.cli.correlate import parse_top_k  # a list of integers: each by that rule

    assert parse_top_k("1e1,5") == (10, 5)
    with pytest.raises(UserError, match="must be comma-separated integers"):
        parse_top_k("1.5")


def test_a_seed_pool_no_draw_can_fill_is_refused_soon_and_by_its_smallest_value():
    """An impossible --max-latency-ms timed about 2,000 networks (12 minutes) before it
    was refused; an empty seed pool under --max-params said 'only 0 architectures'
    when a second draw, with another generator, found one."""
    from naonet.search import resolve_search_config
    from naonet.search.loop import seed_pool

    config = resolve_search_config(None, {}, {})  # the default pool: 1,000 architectures
    space = get_space("nb201")
    meter = CostMeter(space, Budget(max_latency_ms=1e-9, channels=4, layers=1, image_size=8))
    timed = []
    measure = meter.latency_ms
    meter.latency_ms = lambda architecture: timed.append(architecture) or measure(architecture)
    with pytest.raises(UserError, match=r"^no nb201 architecture found within --max-latency-ms "
                                        r"1e-09 \(fastest of 10 random draws: .* ms\) in 100 "
                                        r"random draws; raise the budget$"):
        seed_pool(FeasibleSpace(space, meter), config)
    assert len(timed) == 100 + 10  # the probes, and the report's fastest of 10
    timed.clear()  # random search's draws too (FeasibleSpace.sample timed 1,000)
    with pytest.raises(UserError, match=r"in 100 random draws; raise the budget$"):
        FeasibleSpace(space, meter).sample(random.Random(1))
    assert len(timed) == 100 + 10

    middle = get_space("middle")  # below what the descent reaches too
    limited = FeasibleSpace(middle, CostMeter(middle, Budget(max_params=20_000)))
    with pytest.raises(UserError, match=r"^no middle architecture found within --max-params "
                                        r"20,000 \(smallest found: [0-9,]+\) in 20,000 random "
                                        r"draws; raise the budget$"):
        seed_pool(limited, config)
    # a limit below the exact minimum is said so, alone (without random draws, and
    # without a note on another limit that draws would meet)
    limited = FeasibleSpace(space, CostMeter(space, Budget(max_params=1000,
                                                           max_macs=10**12)))
    with pytest.raises(UserError, match=r"^no nb201 architecture is within --max-params 1,000 "
                                        r"\(below the smallest possible, 73,306\); raise the "
                                        r"budget$"):
        seed_pool(limited, config)


def test_a_budget_random_draws_seldom_meet_fills_its_seed_pool_by_mutation():
    """--max-params 600000 in the small space (its smallest cell has 56,638 parameters)
    was refused: 'only 9 architectures within the budget in 20,000 random draws'. The
    pool is now filled with mutations of those found, within the budget, and says so."""
    from naonet.search import resolve_search_config
    from naonet.search.loop import seed_pool

    space = get_space("small")
    meter = CostMeter(space, Budget(max_params=600_000))
    config = resolve_search_config(None, {}, {"seed_pool_size": 40})
    said = []
    pool = seed_pool(FeasibleSpace(space, meter), config, said.append)
    assert len(pool) == len(set(pool)) == 40
    assert all(meter.parameters(architecture) <= 600_000 for architecture in pool)
    (line,) = said
    found = int(re.match(r"seed pool: ([0-9,]+) random architectures within the budget in "
                         r"20,000 draws, and ([0-9,]+) mutations of them \(random draws "
                         r"seldom meet the budget\)$", line).group(1))
    assert 0 < found < 40


def test_an_imagenet_search_budgets_the_network_its_training_command_trains():
    """On ImageNet a search prints --preset naonet-v2-imagenet (C 52, N 4) but measured
    its budget at CIFAR's C 36, N 6: every cell it kept under --max-params 1.5e6 trained
    with 1.7-2.3 M parameters. The budget's network is now the one the preset trains:
    NAONet-V2 there has its published 7,026,850 parameters."""
    from naonet.search.config import SearchConfig
    from naonet.spaces import named_architecture

    space = get_space("small")
    assert space.final_size_for("imagenet") == (52, 4)
    assert space.final_size_for("cifar10") == space.final_size == (36, 6)
    assert get_space("nb201").final_size_for("imagenet") == (16, 5)
    from types import SimpleNamespace

    from naonet.search.loop import search_budget

    config = SearchConfig(dataset="imagenet", max_params=8_000_000, image_size=64)
    limits = search_budget(config, SimpleNamespace(native_size=224), space)
    assert (limits.channels, limits.layers, limits.image_size) == (52, 4, 224)
    meter = CostMeter(space, limits, num_classes=1000, skeleton="imagenet")
    assert meter.parameters(named_architecture("naonet-v2")) == 7_026_850
    # a CIFAR-layout folder of 40 px images searched at a proxy 16 px: measured at 40
    limits = search_budget(SearchConfig(max_params=8_000_000, image_size=16),
                           SimpleNamespace(native_size=40), space)
    assert (limits.channels, limits.layers, limits.image_size) == (36, 6, 40)


def test_a_budget_random_draws_never_meet_starts_from_a_descent_to_it(capsys):
    """--max-params 150000 in the small space was refused ("smallest found: 56,638; raise
    the budget") though the descent that found 56,638 had met it: 20,000 random draws met
    none. The seed pool now starts from the descent's architecture, filled by mutation."""
    from naonet.search.config import SearchConfig
    from naonet.search.loop import seed_pool

    space = get_space("small")
    limited = FeasibleSpace(space, CostMeter(space, Budget(max_params=150_000)))
    pool = seed_pool(limited, SearchConfig(seed_pool_size=5, max_params=150_000), print)
    assert len(set(pool)) == 5
    assert all(limited.meter.parameters(architecture) <= 150_000 for architecture in pool)
    assert capsys.readouterr().out == (
        "seed pool: 1 architecture within the budget found by descent after 20,000 random "
        "draws met none, and 4 mutations of it (random draws seldom meet the budget)\n")
    # later rounds' random draws (random search, a random fill) walk from those: round 2
    # ended the search, "smallest found: 56,638 ... raise the budget"
    rng = random.Random(1)
    drawn = {limited.sample(rng) for _ in range(20)}
    assert len(drawn - set(pool)) >= 10
    assert all(limited.meter.parameters(architecture) <= 150_000 for architecture in drawn)


def test_the_best_possible_under_a_budget_is_where_a_perfect_search_by_validation_ends():
    """Under --max-params 157306 the table search said 'best possible 91.31 %', the best
    test accuracy of a feasible cell, an oracle; without a budget it named the best cell
    by validation. Both are now the cell a perfect search by validation ends with (the
    docs' 91.26, index 10720); the test optimum stays an upper bound under latency."""
    from naonet.nb201 import BenchmarkTable
    from naonet.strategies.benchmark import best_possible

    table = BenchmarkTable.load(require(NB201_TABLE))
    assert best_possible(table, Budget(max_params=157_306), "valid_acc_200ep") == (
        pytest.approx(0.9126), "best possible 91.26 % (index 10720)")
    assert best_possible(table, Budget(max_params=157_306, max_latency_ms=5.0),
                         "valid_acc_200ep")[1].endswith(
        "at most 91.31 %, the best test accuracy within the other limits alone)")


def test_a_rerun_reports_the_latencies_its_search_was_judged_by(cifar_mini, tmp_path,
                                                                monkeypatch):
    """With the latency cache deleted (the README says it may be), rerunning a finished
    search timed every network again and rewrote pool.json with the new figures (19 of
    150 then over the limit the search had held them to). The checkpoint keeps them."""
    from test_search import tiny_config

    from naonet.search.loop import search

    monkeypatch.setenv("NAONET_CACHE", str(tmp_path / "cache"))
    config = tiny_config(cifar_mini, tmp_path / "run", space="nb201", rounds=1,
                         rerank_top=0, max_latency_ms=1e6, image_size=16)
    search(config, show_progress=False)
    written = (tmp_path / "run" / "pool.json").read_text()
    (tmp_path / "cache" / "latency.json").unlink()
    timed = []
    original = CostMeter._time
    monkeypatch.setattr(CostMeter, "_time",
                        lambda meter, architecture: timed.append(1) or original(meter,
                                                                                architecture))
    # another torch (its version is in the cache's key) changes nothing either
    from naonet import constraints

    monkeypatch.setattr(constraints, "LATENCY_FORMAT", constraints.LATENCY_FORMAT + 1)
    search(config, show_progress=False)
    assert timed == [] and (tmp_path / "run" / "pool.json").read_text() == written
    # and the run's own figures go into no cache another device or torch would read
    assert not (tmp_path / "cache" / "latency.json").exists()


def test_a_latency_batch_without_a_latency_limit_is_refused_typed_and_resumes_saved(
        capsys, tmp_path):
    """--latency-batch 8 without --max-latency-ms was taken and read by nothing (then
    refused on resume as a difference): typed, it is refused; a folder that saved one
    resumes with or without it, since nothing reads it."""
    from naonet.search.config import SearchConfig
    from naonet.search.state import check_resumable

    from conftest import nao_in_process

    said = ("--latency-batch 8 is the batch a --max-latency-ms limit is timed at; give "
            "--max-latency-ms, or drop --latency-batch")
    for argv in (["search", "--max-params", "1000000", "--latency-batch", "8"],
                 ["search", "--evaluator", "table:t.csv", "--space", "nb201",
                  "--latency-batch", "8"],
                 ["bench-search", "--evaluator", "table:t.csv", "--latency-batch", "8"]):
        status, _, err = nao_in_process(capsys, *argv)
        assert status == 2 and err.strip().endswith(said), err
    saved = SearchConfig(latency_batch=8).to_dict()  # as a folder of before holds it
    for current in (SearchConfig(), SearchConfig(latency_batch=8)):
        check_resumable(saved, current.to_dict(), tmp_path)
    with pytest.raises(UserError, match="--max-latency-ms"):
        check_resumable(saved, SearchConfig(max_latency_ms=5.0).to_dict(), tmp_path)


def test_a_search_under_a_budget_random_draws_never_meet_resumes_to_the_same_outputs(
        cifar_mini, tmp_path):
    """Random search walks from the architectures within the budget once draws never
    meet it; a resumed search walked from none (its draws and descent took other random
    numbers), ending elsewhere. The checkpoint keeps where the walks start."""
    from test_search import Interrupted, interrupt_at, tiny_config

    from naonet.search.loop import search

    def config(name):
        return tiny_config(cifar_mini, tmp_path / name, strategy="random", rounds=3,
                           rerank_top=0, max_params=150_000)

    search(config("whole"), show_progress=False)
    with pytest.MonkeyPatch.context() as patch:  # in round 2: round 3's draws come after
        interrupt_at(patch, "supernet_epoch", lambda s: (s.round, s.epoch) == (1, 0))
        with pytest.raises(Interrupted):
            search(config("resumed"), show_progress=False)
    search(config("resumed"), show_progress=False)
    for name in ("arch_pool", "arch_pool.perf", "arch_pool.2"):
        assert (tmp_path / "resumed" / name).read_text() == (
            tmp_path / "whole" / name).read_text(), name

"""The supernet package: analytic parameter counts, sampling, weight sharing, scoring."""

from __future__ import annotations

import copy
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from naonet.errors import UserError
from naonet.models import NetworkConfig, build_network, count_parameters
from naonet.models.operations import OPERATIONS, build_operation
from naonet.spaces import get_space, named_architecture
from naonet.supernet import (
    OPERATION_COSTS,
    FewShotSupernet,
    LooseEndCombine,
    PerInputOperation,
    PoolSampler,
    Supernet,
    SupernetConfig,
    batch_statistics,
    count_network_parameters,
    sample_architectures,
    sampling_probabilities,
    score_architectures,
)
from naonet.supernet.counting import operation_cost

pytestmark = pytest.mark.threads(1)  # the thread count its figures were measured with

SPACES = ("small", "middle")
SKELETON_NAMES = ("cifar", "imagenet")
TINY = dict(channels=8, layers=1)  # C 8, N 1: five cells, fast on a CPU


def tiny_supernet(space: str, skeleton: str = "cifar", **overrides) -> Supernet:
    return Supernet(space, SupernetConfig(skeleton=skeleton, **{**TINY, **overrides}))


def fixed_batch(size: int = 8, resolution: int = 8, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(size, 3, resolution, resolution, generator=generator)
    labels = torch.randint(0, 10, (size,), generator=generator)
    return images, labels


# ----------------------------------------------------------------------- analytic counts
@pytest.mark.parametrize("name", sorted(OPERATIONS))
@pytest.mark.parametrize("stride", (1, 2))
def test_operation_formula_matches_built_operation(name, stride):
    for channels in (4, 10):
        built = sum(p.numel() for p in build_operation(name, channels, stride).parameters())
        assert operation_cost(name, channels, stride).parameters == built


def test_every_operation_has_a_formula():
    assert set(OPERATION_COSTS) >= set(OPERATIONS)
    with pytest.raises(UserError, match="no cost formula for operation 'conv_9x9'"):
        operation_cost("conv_9x9", 8, 1)


@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("skeleton", SKELETON_NAMES)
def test_analytic_count_equals_built_network(space, skeleton):
    architectures = sample_architectures(space, 6, np.random.default_rng(1))
    configs = [NetworkConfig(skeleton=skeleton, channels=8, layers=1, aux_head=True),
               NetworkConfig(skeleton=skeleton, channels=6, layers=2, aux_head=False,
                             num_classes=7)]
    for config in configs:
        for architecture in architectures:
            network = build_network(architecture, config)
            for include_aux in (False, True):
                expected = count_parameters(network, include_aux=include_aux)
                assert count_network_parameters(architecture, config, include_aux) == expected


def test_analytic_count_of_published_networks():
    architecture = named_architecture("naonet-v2")
    cifar = NetworkConfig(skeleton="cifar", channels=36, layers=6)
    imagenet = NetworkConfig(skeleton="imagenet", channels=52, layers=4, num_classes=1000)
    assert count_network_parameters(architecture, cifar) == 4_387_654  # 4.39 M (SPEC 2)
    assert count_network_parameters(architecture, imagenet) == 7_026_850  # 7.03 M


# ----------------------------------------------------------------------- random architectures
@pytest.mark.parametrize("make_rng", [lambda: np.random.default_rng(3),
                                      lambda: random.Random(3),
                                      lambda: torch.Generator().manual_seed(3)])
def test_sample_architectures_is_reproducible_valid_and_distinct(make_rng):
    for space in SPACES:
        first = sample_architectures(space, 50, make_rng())
        assert first == sample_architectures(space, 50, make_rng())
        assert len(set(first)) == 50
        assert all(arch.space == get_space(space) for arch in first)


def binomial_bound(probability, draws: int, sigmas: float = 5.0):
    """How far an observed frequency may stray from ``probability`` over ``draws``
    independent draws: ``sigmas`` standard deviations of the binomial proportion (the
    draws are seeded, so this bounds chance once, not on every run)."""
    probability = np.asarray(probability, dtype=float)
    return sigmas * np.sqrt(probability * (1 - probability) / draws)


def test_sampled_architectures_are_uniform():
    space = get_space("middle")
    architectures = sample_architectures(space, 2000, np.random.default_rng(4), unique=False)
    ops = np.array([node.op_a for arch in architectures for node in arch.normal.nodes])
    frequencies = np.bincount(ops, minlength=space.num_ops) / len(ops)
    assert np.abs(frequencies - 1 / space.num_ops).max() < binomial_bound(1 / space.num_ops,
                                                                          len(ops))
    last_inputs = np.array([arch.reduction.nodes[-1].input_b for arch in architectures])
    frequencies = np.bincount(last_inputs) / len(last_inputs)
    assert len(frequencies) == space.num_candidate_inputs(space.num_nodes - 1)
    share = 1 / len(frequencies)
    assert np.abs(frequencies - share).max() < binomial_bound(share, len(last_inputs))


def test_sample_architectures_rejects_bad_requests():
    with pytest.raises(UserError, match="cannot sample -1 architectures"):
        sample_architectures("small", -1, np.random.default_rng(0))
    with pytest.raises(TypeError):
        sample_architectures("small", 2, 42)


# ----------------------------------------------------------------------- pool sampling
def test_balanced_probabilities_are_proportional_to_parameter_counts():
    pool = sample_architectures("small", 30, np.random.default_rng(5))
    config = SupernetConfig().network_config()
    counts = np.array([count_network_parameters(arch, config) for arch in pool])
    np.testing.assert_allclose(sampling_probabilities(pool, "balanced"), counts / counts.sum())
    np.testing.assert_allclose(sampling_probabilities(pool, "uniform"), np.full(30, 1 / 30))


@pytest.mark.parametrize("make_rng", [lambda: np.random.default_rng(6),
                                      lambda: random.Random(6),
                                      lambda: torch.Generator().manual_seed(6)])
def test_balanced_sampling_frequencies_follow_parameter_counts(make_rng):
    pool = sample_architectures("small", 12, np.random.default_rng(7))
    sampler = PoolSampler(pool, make_rng(), sampling="balanced")
    draws = sampler.sample_many(20_000)
    index = {arch: i for i, arch in enumerate(pool)}
    frequencies = np.bincount([index[a] for a in draws], minlength=len(pool)) / len(draws)
    assert np.corrcoef(frequencies, sampler.probabilities)[0, 1] > 0.95
    assert (np.abs(frequencies - sampler.probabilities)
            < binomial_bound(sampler.probabilities, len(draws))).all()
    assert PoolSampler(pool, make_rng()).sample_many(50) == \
        PoolSampler(pool, make_rng()).sample_many(50)


def test_uniform_sampling_is_uniform():
    pool = sample_architectures("small", 10, np.random.default_rng(8))
    sampler = PoolSampler(pool, np.random.default_rng(9), sampling="uniform")
    index = {arch: i for i, arch in enumerate(pool)}
    draws = [index[sampler.sample()] for _ in range(5000)]
    frequencies = np.bincount(draws, minlength=len(pool)) / len(draws)
    assert np.abs(frequencies - 0.1).max() < binomial_bound(0.1, len(draws))


def test_sampling_rejects_bad_input():
    pool = sample_architectures("small", 3, np.random.default_rng(0))
    with pytest.raises(UserError, match="unknown sampling 'greedy'; use one of: balanced"):
        sampling_probabilities(pool, "greedy")
    with pytest.raises(UserError, match="cannot sample from an empty architecture pool"):
        sampling_probabilities([], "uniform")


# ----------------------------------------------------------------------- supernet
def test_supernet_defaults_are_the_released_search_defaults():
    config = SupernetConfig()
    assert (config.layers, config.channels, config.aux_head) == (3, 20, False)
    assert (config.keep_prob, config.drop_path_keep_prob) == (1.0, 0.9)
    assert config.network_config().aux_head is False
    with pytest.raises(UserError, match="--channels must be an even number >= 2, got 7"):
        SupernetConfig(channels=7)


@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("skeleton", SKELETON_NAMES)
def test_supernet_forward_shapes(space, skeleton):
    supernet = tiny_supernet(space, skeleton)
    images, _ = fixed_batch(size=2, resolution=16)
    for architecture in sample_architectures(space, 2, np.random.default_rng(10)):
        logits, aux_logits = supernet(images, architecture)
        assert logits.shape == (2, 10)
        assert aux_logits is None
    # Every cell outputs its C channels, whatever the number of loose ends.
    assert [cell.out_shape.channels for cell in supernet.cells] == [8, 16, 16, 32, 32]


def test_supernet_aux_head():
    supernet = tiny_supernet("small", aux_head=True, num_classes=5)
    images = torch.randn(2, 3, 32, 32)
    architecture = sample_architectures("small", 1, np.random.default_rng(11))[0]
    logits, aux_logits = supernet(images, architecture)
    assert logits.shape == aux_logits.shape == (2, 5)
    supernet.eval()
    assert supernet(images, architecture)[1] is None


def test_supernet_rejects_architecture_of_another_space():
    supernet = tiny_supernet("small")
    other = sample_architectures("middle", 1, np.random.default_rng(0))[0]
    with pytest.raises(UserError, match="the supernet takes architectures of the 'small' "
                                        "space, got one of the 'middle' space"):
        supernet(torch.randn(2, 3, 8, 8), other)


def _expected_to_have_gradient(name: str, supernet: Supernet, architecture) -> bool:
    """Whether parameter ``name`` lies on the path of ``architecture``."""
    parts = name.split(".")
    if parts[0] != "cells":
        return True  # stems and classifier
    cell = supernet.cells[int(parts[1])]
    cell_arch = architecture.reduction if cell.reduction else architecture.normal
    loose_ends = cell_arch.loose_ends()
    if parts[2] == "nodes":  # cells.i.nodes.j.branch_x.<op>.per_input.<input id>...
        node = cell_arch.nodes[int(parts[3])]
        state, op = ((node.input_a, node.op_a) if parts[4] == "branch_a"
                     else (node.input_b, node.op_b))
        return supernet.space.op_names[op] == parts[5] and state == int(parts[7])
    if parts[2] == "output_reducers":
        return int(parts[3]) in loose_ends
    if parts[2:4] == ["combine", "weights"]:
        return int(parts[4]) in loose_ends
    return True  # calibration, the combine's BN


@pytest.mark.parametrize("space", SPACES)
def test_only_the_sampled_path_receives_gradients(space):
    supernet = tiny_supernet(space)
    images, labels = fixed_batch()
    for architecture in sample_architectures(space, 2, np.random.default_rng(12)):
        supernet.zero_grad(set_to_none=True)
        logits, _ = supernet(images, architecture)
        F.cross_entropy(logits, labels).backward()
        checked_unused = 0
        for name, parameter in supernet.named_parameters():
            expected = _expected_to_have_gradient(name, supernet, architecture)
            assert (parameter.grad is not None) == expected, name
            checked_unused += not expected
        assert checked_unused > 0


def test_each_input_id_has_its_own_weights():
    torch.manual_seed(0)  # the same weights whatever ran before
    operation = PerInputOperation("sep_conv_3x3", 8, num_inputs=4, reduction=True)
    ids = [{id(p) for p in op.parameters()} for op in operation.per_input]
    assert all(not (ids[i] & ids[j]) for i in range(4) for j in range(i + 1, 4))
    x = torch.randn(2, 8, 8, 8)
    # Cell inputs (ids 0, 1) are reduced in a reduction cell, node outputs are not.
    assert operation(x, 0).shape == operation(x, 1).shape == (2, 8, 4, 4)
    assert operation(x, 2).shape == (2, 8, 8, 8)
    assert not torch.allclose(operation(x, 2), operation(x, 3))
    combine = LooseEndCombine(num_states=7, channels=8)
    assert not torch.allclose(combine([x], [2]), combine([x], [3]))
    assert combine([x, x], [2, 5]).shape == (2, 8, 8, 8)


def test_drop_path_follows_training_progress():
    supernet = tiny_supernet("small", drop_path_keep_prob=0.5)
    architecture = sample_architectures("small", 1, np.random.default_rng(13))[0]
    images, _ = fixed_batch()
    assert float(supernet.drop_path_rate) == 0.0
    supernet.set_training_progress(1.0)
    assert float(supernet.drop_path_rate) == pytest.approx(0.5)
    torch.manual_seed(0)
    first = supernet(images, architecture)[0]
    torch.manual_seed(1)
    assert not torch.allclose(first, supernet(images, architecture)[0])


def test_sgd_steps_on_a_fixed_batch_reduce_the_loss():
    torch.manual_seed(0)
    supernet = tiny_supernet("small", drop_path_keep_prob=1.0)
    architecture = sample_architectures("small", 1, np.random.default_rng(14))[0]
    images, labels = fixed_batch(size=16)
    optimizer = torch.optim.SGD(supernet.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(10):
        optimizer.zero_grad()
        loss = F.cross_entropy(supernet(images, architecture)[0], labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


# ----------------------------------------------------------------------- scoring
def _module_state(model: torch.nn.Module):
    flags = {name: (module.training, getattr(module, "track_running_stats", None))
             for name, module in model.named_modules()}
    tensors = {name: value.clone() for name, value in model.state_dict().items()}
    return flags, tensors


def test_scoring_restores_every_module_state_exactly():
    torch.manual_seed(0)  # the same weights whatever ran before
    supernet = tiny_supernet("small")
    architectures = sample_architectures("small", 3, np.random.default_rng(15))
    supernet(fixed_batch(seed=1)[0], architectures[0])  # non-trivial running statistics
    supernet.cells[1].eval()  # a mixed state must come back as it was
    supernet.cells[2].combine.bn.track_running_stats = False
    before_flags, before_tensors = _module_state(supernet)
    batches = [fixed_batch(seed=2), fixed_batch(seed=3)]
    scores = score_architectures(supernet, architectures, batches)
    after_flags, after_tensors = _module_state(supernet)
    assert after_flags == before_flags
    assert after_tensors.keys() == before_tensors.keys()
    for name, value in before_tensors.items():
        assert torch.equal(after_tensors[name], value), name
    assert len(scores) == 3 and all(0.0 <= score <= 1.0 for score in scores)
    # one architecture scored alone scores as it does among others
    assert score_architectures(supernet, [architectures[1]], batches) == [scores[1]]
    with pytest.raises(UserError, match="unknown score metric 'acc'; use one of: accuracy, "
                                        "loss"):
        score_architectures(supernet, architectures, batches, metric="acc")
    with pytest.raises(UserError, match="needs at least one .images, labels. batch"):
        score_architectures(supernet, architectures, [])


def test_scoring_normalises_with_batch_statistics():
    torch.manual_seed(0)  # the same weights whatever ran before
    supernet = tiny_supernet("small", drop_path_keep_prob=1.0)
    architecture = sample_architectures("small", 1, np.random.default_rng(16))[0]
    images, labels = fixed_batch()
    with torch.no_grad():
        reference = copy.deepcopy(supernet).train()(images, architecture)[0]
        with batch_statistics(supernet):
            assert not supernet.training
            scored = supernet(images, architecture)[0]
    torch.testing.assert_close(scored, reference)
    expected = (reference.argmax(1) == labels).float().mean().item()
    assert score_architectures(supernet, [architecture], [(images, labels)])[0] == \
        pytest.approx(expected)


def test_scoring_takes_float32_batches_for_a_supernet_of_another_dtype():
    """The batches follow the supernet's dtype as they follow its device: a float64
    supernet given float32 images failed with a dtype mismatch deep in a convolution."""
    torch.manual_seed(0)
    supernet = tiny_supernet("small")
    architectures = sample_architectures("small", 3, np.random.default_rng(17))
    batches = [fixed_batch(seed=4)]
    in_float32 = score_architectures(supernet, architectures, batches, metric="loss")
    in_float64 = score_architectures(copy.deepcopy(supernet).double(), architectures,
                                     batches, metric="loss")
    # float32 against float64 arithmetic on the same weights: a mean cross-entropy of a
    # few units agrees to float32's relative precision times the depth's growth
    assert in_float64 == pytest.approx(in_float32, rel=1e-4)


# ----------------------------------------------------------------------- few-shot
def test_group_shares_are_equal_and_keep_proportions_within_a_group():
    pool = sample_architectures("nb201", 40, np.random.default_rng(11))
    space = get_space("nb201")
    groups = [space.to_integers(arch)[3] for arch in pool]  # the op on edge 0 -> 3
    sampler = PoolSampler(pool, np.random.default_rng(0), "balanced",
                          group_of=lambda arch: space.to_integers(arch)[3])
    plain = sampling_probabilities(pool, "balanced")
    labels = sorted(set(groups))
    for label in labels:
        members = np.array(groups) == label
        assert sampler.probabilities[members].sum() == pytest.approx(1 / len(labels))
        np.testing.assert_allclose(sampler.probabilities[members],
                                   plain[members] / plain[members].sum() / len(labels))


def _nb201_few_shot(position: int = 3) -> FewShotSupernet:
    space = get_space("nb201")
    torch.manual_seed(0)
    return FewShotSupernet(lambda: space.build_supernet(8, 1), position,
                           space.integer_limits()[position])


def test_few_shot_supernet_runs_one_copy_until_split_then_one_per_choice():
    supernet = _nb201_few_shot()
    space = get_space("nb201")
    residual = space.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
                           "+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    convolutional = space.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
                                "+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    assert len(supernet.parts) == 5
    assert supernet.part_of(residual) == supernet.part_of(convolutional) == 0
    optimizer = torch.optim.SGD(supernet.parameters(), lr=0.1, momentum=0.9)
    images, labels = fixed_batch(resolution=16)
    F.cross_entropy(supernet(images, residual)[0], labels).backward()
    optimizer.step()  # momentum for the first copy only
    before = supernet(images, residual)[0].detach()
    supernet.split(optimizer)
    assert supernet.part_of(residual) == 1 and supernet.part_of(convolutional) == 3
    # the copies start as the one supernet, momentum included ...
    torch.testing.assert_close(supernet(images, residual)[0], before, rtol=0, atol=0)
    first, second = supernet.parts[0], supernet.parts[1]
    copied = 0
    for a, b in zip(first.parameters(), second.parameters()):
        assert a.data_ptr() != b.data_ptr()
        if a in optimizer.state:
            torch.testing.assert_close(optimizer.state[b]["momentum_buffer"],
                                       optimizer.state[a]["momentum_buffer"])
            copied += 1
    assert copied > 0  # the step above gave the first copy momentum to copy
    # ... and then train apart: a step on the residual cell leaves the others' copy alone
    untouched = [p.detach().clone() for p in supernet.parts[3].parameters()]
    optimizer.zero_grad(set_to_none=True)
    F.cross_entropy(supernet(images, residual)[0], labels).backward()
    assert all(p.grad is None for p in supernet.parts[3].parameters())
    assert any(p.grad is not None for p in supernet.parts[1].parameters())
    optimizer.step()
    assert all(torch.equal(p, q) for p, q in zip(supernet.parts[3].parameters(), untouched))


def test_few_shot_split_survives_a_state_dict_round_trip():
    supernet = _nb201_few_shot()
    supernet.split()
    restored = _nb201_few_shot()
    assert not restored.is_split
    holder = torch.nn.Sequential(restored)  # loaded as a child, as the search's wrapper does
    holder.load_state_dict(torch.nn.Sequential(supernet).state_dict())
    assert restored.is_split and bool(restored.split_done)


def test_the_memory_check_counts_a_few_shot_supernets_copies(monkeypatch):
    from naonet.models.nb201 import NB201NetworkConfig
    from naonet.training import run

    space = get_space("nb201")
    cell = space.sample(random.Random(0))
    config = NB201NetworkConfig(channels=16, cells_per_stage=1, num_classes=10)
    needed = 12 * space.parameter_count(cell, config)  # weights, gradients, momentum
    monkeypatch.setattr(run, "device_memory", lambda device: 3 * needed)
    run.check_network_fits(cell, config, torch.device("cpu"), copies=3)
    with pytest.raises(UserError, match="more than the"):
        run.check_network_fits(cell, config, torch.device("cpu"), copies=4)

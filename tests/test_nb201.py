"""The nb201 space, its controller encoding, the benchmark network and the supernet."""

from __future__ import annotations

import random
import re

import pytest
import torch

from naonet.controller.model import legal_token_mask
from naonet.errors import UserError
from naonet.models import count_parameters
from naonet.models.complexity import count_multiply_adds
from naonet.models.nb201 import CostCounter, NB201NetworkConfig, build_nb201_network
from naonet.nb201 import BenchmarkTable
from naonet.spaces import NB201, NB201_OPS, dead_nodes, encoding_for
from naonet.supernet import NB201Supernet

pytestmark = pytest.mark.threads(1)  # the thread count its figures were measured with

BEST_CELL = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+"
             "|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|")  # index 6111
TINY = NB201NetworkConfig(channels=4, cells_per_stage=1)


def test_space_is_derived_from_nodes_and_ops():
    assert NB201.op_names == NB201_OPS
    assert NB201.edges == ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
    assert NB201.size == 5 ** 6 == len(set(NB201.all_architectures()))


def test_string_form_round_trips_for_every_architecture():
    for arch in NB201.all_architectures():
        assert NB201.parse(arch.to_string()) == arch
    assert NB201.parse(BEST_CELL).edge_op(2, 3) == "nor_conv_1x1"


@pytest.mark.parametrize("text, fragment", [
    ("", "expected 3 '|...|' groups joined by '+'"),
    ("|none~0|+|none~0|none~1|", "expected 3 '|...|' groups joined by '+'"),
    ("|none~0|+|none~0|none~1|+|none~0|none~1|conv~2|",
     "operation 'conv' is not in the 'nb201' space; use one of: none, skip_connect"),
    ("|none~0|+|none~1|none~0|+|none~0|none~1|none~2|",
     "edge 'none~1' of node 2 must read node 0 ('none~0')")])
def test_bad_strings_are_user_errors(text, fragment):
    with pytest.raises(UserError, match=re.escape(fragment)):
        NB201.parse(text)


def test_mutation_changes_exactly_one_edge():
    rng = random.Random(0)
    for _ in range(100):
        arch = NB201.sample(rng)
        child = NB201.mutate(arch, rng)
        assert sum(a != b for a, b in zip(arch.ops, child.ops)) == 1


def test_encoding_layout_and_round_trip():
    encoding = encoding_for(NB201)
    assert (encoding.vocab_size, encoding.sequence_length, encoding.tokens_per_step) == (9, 12, 2)
    mask = legal_token_mask(encoding)  # what the controller's decoder may emit
    assert mask.shape == (12, 9) and not mask[:, 0].any()  # SOS never legal inside
    assert [encoding.legal_tokens(p) for p in (0, 2, 4)] == [(1,), (1,), (2,)]
    assert encoding.legal_tokens(1) == tuple(range(4, 9))
    for arch in NB201.all_architectures():
        tokens = encoding.encode(arch)
        assert all(mask[p, t] for p, t in enumerate(tokens))
        assert encoding.decode(tokens) == arch
    with pytest.raises(UserError, match=re.escape("token 2 is not legal at position 0 "
                                                  "(legal: [1])")):
        encoding.decode([2] + tokens[1:])  # wrong source token for edge 0 -> 1


def test_dead_nodes_and_equivalent_variants_compute_the_same_function():
    # node 1 feeds only 'none' edges: its incoming op does not matter.
    arch = NB201.parse("|nor_conv_3x3~0|+|skip_connect~0|none~1|+|skip_connect~0|none~1|"
                       "nor_conv_1x1~2|")
    assert dead_nodes(arch) == [1]
    assert dead_nodes(NB201.parse(BEST_CELL)) == []
    encoding = encoding_for(NB201)
    rng = random.Random(0)
    variants = {encoding.equivalent_variant(arch, rng) for _ in range(50)}
    assert len(variants) == 5  # every op on edge 0 -> 1, nothing else changed
    torch.manual_seed(0)
    supernet = NB201Supernet(TINY).eval()
    x = torch.randn(2, 3, 8, 8)
    outputs = [supernet(x, variant)[0] for variant in variants]
    for output in outputs[1:]:
        torch.testing.assert_close(output, outputs[0])


def test_best_cell_parameter_count_matches_the_benchmark():
    network = build_nb201_network(NB201.parse(BEST_CELL))
    assert count_parameters(network) == 1_073_466  # params_mb 1.073466 in the table


def test_parameter_counts_match_the_table(nb201_table):
    best = nb201_table.architecture(6111)
    assert best.to_string() == BEST_CELL
    params = count_parameters(build_nb201_network(best)) / 1e6
    assert abs(params - nb201_table.value(best, "params_mb")) <= 0.01 * params
    # Every row but 204 (1.3%) matches to the last digit; those 204 rows of the merged
    # shared table carry counts that are not any single cell's (seed-averaged sources).
    counter = CostCounter(NB201)
    exact = sum(abs(counter.parameters(arch) / 1e6 - nb201_table.value(arch, "params_mb")) < 1e-6
                for arch in nb201_table.architectures)
    assert exact == len(nb201_table) - 204


def test_parameter_counter_matches_built_networks():
    counter = CostCounter(NB201, TINY)
    for arch in random.Random(1).sample(list(NB201.all_architectures()), 20):
        assert counter.parameters(arch) == count_parameters(build_nb201_network(arch, TINY))


@pytest.mark.parametrize("image_size", (32, 16, 7))
def test_cost_counter_multiply_adds_match_built_networks(image_size):
    counter = CostCounter(NB201, TINY, image_size)
    for arch in random.Random(2).sample(list(NB201.all_architectures()), 10):
        network = build_nb201_network(arch, TINY)
        expected = count_multiply_adds(network, (3, image_size, image_size))
        assert counter.multiply_adds(arch) == expected
        assert NB201.multiply_adds(arch, TINY, image_size) == expected


def test_network_forward_and_all_none_cell():
    network = build_nb201_network(NB201.parse(BEST_CELL), TINY)
    logits, aux_logits = network(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 10) and aux_logits is None
    empty = build_nb201_network(NB201.example(), TINY)  # every edge 'none'
    assert empty(torch.randn(2, 3, 16, 16))[0].shape == (2, 10)
    assert len(list(network.modules())) > len(list(empty.modules()))


def test_supernet_trains_only_the_chosen_ops():
    torch.manual_seed(0)
    supernet = NB201Supernet(TINY)
    arch = NB201.parse(BEST_CELL)
    supernet(torch.randn(4, 3, 8, 8), arch)[0].sum().backward()
    cell = supernet.layers[0]
    for edge, name in enumerate(arch.op_names):
        for op_name, module in cell.edge_ops[edge].items():
            grads = [p.grad for p in module.parameters()]
            if grads:
                assert all(g is not None for g in grads) == (op_name == name)
    # batch statistics everywhere: no running buffers to mix architectures
    assert not any("running" in name for name, _ in supernet.named_buffers())


@pytest.fixture(scope="module")
def nb201_table():
    from conftest import NB201_TABLE, require

    return BenchmarkTable.load(require(NB201_TABLE))


def test_canonical_form_drops_the_edges_that_cannot_reach_the_output():
    def canonical(text: str) -> str:
        return NB201.canonical(NB201.parse(text)).to_string()

    # Node 2 feeds nothing (none on 2 -> 3): its incoming edges are dead.
    assert canonical("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|"
                     "+|nor_conv_3x3~0|skip_connect~1|none~2|") == \
        "|nor_conv_3x3~0|+|none~0|none~1|+|nor_conv_3x3~0|skip_connect~1|none~2|"
    # Node 1 gets nothing from the input: what it sends on is dead.
    assert canonical("|none~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
                     "+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|") == \
        "|none~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"
    # No path from input to output: every such cell is one (the zero cell).
    assert canonical("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|nor_conv_3x3~2|") == \
        "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    assert canonical(BEST_CELL) == BEST_CELL  # every edge on a path from input to output


def test_a_space_without_none_has_no_dead_edges():
    from naonet.spaces.nb201 import NB201Space

    space = NB201Space(name="nb201-no-none", op_names=("skip_connect", "nor_conv_3x3"))
    arch = space.sample(random.Random(0))
    assert space.canonical(arch) == arch


def test_a_variant_space_reads_the_benchmark_form_it_writes_too():
    """An unregistered variant writes NAS-Bench-201's string form as the built-in space
    does, so that form is its own; another space's prefix is still refused."""
    from naonet.spaces.nb201 import NB201Space

    space = NB201Space(name="nb201-5", num_nodes=5)
    arch = space.sample(random.Random(1))
    assert space.parse(arch.to_string()) == arch
    assert space.canonical(arch.to_string()) == space.canonical(arch)
    with pytest.raises(UserError, match="prefixed with the name of the 'nb201' space but the "
                                        "'nb201-5' space was asked for"):
        space.parse(f"nb201:{NB201.example().to_string()}")
    namesake = NB201Space(num_nodes=5)  # called nb201 too, but not the benchmark's space
    with pytest.raises(UserError, match="got one of another space object of that name"):
        NB201.canonical(namesake.example())
    assert NB201.canonical(NB201Space().example()) == NB201.example()  # an equal definition


def test_the_benchmark_network_and_its_supernet_refuse_large_images():
    """Training refused them and the one-shot search built the small-image network
    anyway; the space now says it once, for both."""
    with pytest.raises(UserError, match="built for small images .* --dataset folder with "
                                        "--image-size 64 or less"):
        NB201.network_config(4, 1, 10, "imagenet")
    with pytest.raises(UserError, match="built for small images"):
        NB201.build_supernet(4, 1, 10, "imagenet")
    assert NB201.network_config(4, 1, 10, "cifar") == TINY

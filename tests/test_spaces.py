"""Search spaces, architecture values and their text forms."""

import random

import pytest
import torch

from naonet.controller.model import legal_token_mask
from naonet.errors import UserError
from naonet.spaces import (
    MIDDLE,
    SMALL,
    Architecture,
    CellSpaceEncoding,
    named_architecture,
    resolve_architecture,
)

from conftest import FIXTURES, require

NAONET_V2 = "1 1 0 1 2 4 0 0 0 0 2 1 0 0 0 2 0 3 0 0 0 2 0 2 2 2 1 0 0 0 0 1 0 0 0 3 0 0 0 1"


def random_architecture(space, rng):
    values = []
    for _ in range(2):
        for node in range(space.num_nodes):
            for _ in range(2):
                values += [rng.randrange(node + 2), rng.randrange(space.num_ops)]
    return Architecture.from_integers(values, space)


def test_naonet_v2_round_trips_through_every_text_form():
    arch = named_architecture("naonet-v2")
    assert arch.to_string() == NAONET_V2
    assert Architecture.parse(arch.to_qualified_string()) == arch
    assert Architecture.parse(arch.to_readable()) == arch
    assert Architecture.parse(NAONET_V2, "small") == arch
    assert arch.normal.loose_ends() == (3, 4, 5, 6)
    assert arch.reduction.loose_ends() == (3, 4, 5, 6)


@pytest.mark.parametrize("space", [SMALL, MIDDLE])
def test_random_architectures_round_trip(space):
    rng = random.Random(0)
    for _ in range(50):
        arch = random_architecture(space, rng)
        assert Architecture.parse(arch.to_qualified_string()) == arch
        assert Architecture.parse(arch.to_readable()) == arch
        assert hash(arch) == hash(Architecture.parse(str(arch)))


@pytest.mark.parametrize("text, fragment", [
    ("1 2 3", "has 3 integers"),
    ("1 1 0 1 2 4 0 0 0 0 2 1 0 0 0 2 0 3 0 0 0 2 0 2 2 2 1 0 0 0 0 1 0 0 0 3 0 0 0 9",
     "op 9, which is not in the 'small' space"),
    ("5 1 0 1 2 4 0 0 0 0 2 1 0 0 0 2 0 3 0 0 0 2 0 2 2 2 1 0 0 0 0 1 0 0 0 3 0 0 0 1",
     "node 0 of the normal cell reads input 5"),
    ("1 x 0 1", "non-integer entry 'x'"),
    ("middle:" + NAONET_V2, "prefixed with the name of the 'middle' space"),
    ("small | normal: conv_9x9(0) + identity(1)", "lacks its reduction cell"),
    ("", "empty architecture"),
])
def test_malformed_architectures_give_one_line_errors(text, fragment):
    with pytest.raises(UserError) as error:
        Architecture.parse(text, "small")
    assert fragment in str(error.value)
    assert "\n" not in str(error.value)


def test_unknown_op_name_in_readable_form():
    text = named_architecture("naonet-v2").to_readable().replace("max_pool_3x3", "conv_9x9")
    with pytest.raises(UserError, match="'conv_9x9' is not in the 'small' space"):
        Architecture.parse(text)


def test_registry_resolves_names_and_rejects_unknown_ones():
    assert resolve_architecture("naonet-v2") == named_architecture("naonet-v2")
    with pytest.raises(UserError, match="unknown architecture name 'naonet-v3'"):
        resolve_architecture("naonet-v3")
    with pytest.raises(UserError, match="belongs to the 'small' space"):
        resolve_architecture("naonet-v2", "middle")


def test_encoding_matches_the_released_token_layout():
    fixture = torch.load(require(FIXTURES / "nao_controller_default.pt"), weights_only=True)
    encoding = CellSpaceEncoding("small")
    assert encoding.vocab_size == fixture["config"]["vocab_size"] == 12
    assert encoding.sequence_length == fixture["config"]["source_length"] == 40
    # The fixture's first encoder input is NAONet-V2.
    assert encoding.encode(named_architecture("naonet-v2")) == fixture["encoder_input"][0].tolist()
    for tokens in fixture["encoder_input"].tolist():
        assert encoding.encode(encoding.decode(tokens)) == tokens


@pytest.mark.parametrize("space", [SMALL, MIDDLE])
def test_encoding_legal_tokens_and_swap_augmentation(space):
    encoding = CellSpaceEncoding(space)
    rng = random.Random(1)
    mask = legal_token_mask(encoding)  # what the controller's decoder may emit
    for _ in range(20):
        arch = random_architecture(space, rng)
        tokens = encoding.encode(arch)
        assert all(mask[position, token] for position, token in enumerate(tokens))
        variant = encoding.equivalent_variant(arch, rng)
        for cell, twin in ((arch.normal, variant.normal), (arch.reduction, variant.reduction)):
            assert sorted(map(sorted_pair, cell.nodes)) == sorted(map(sorted_pair, twin.nodes))


def sorted_pair(node):
    return tuple(sorted([(node.input_a, node.op_a), (node.input_b, node.op_b)]))


def test_what_a_library_caller_writes_naturally_works_or_says_what_to_write():
    """From a trial as a library user: each of these once ended in an AttributeError, a
    ValueError from deep inside, or a silently replaced built-in space."""
    from dataclasses import replace

    from naonet.controller import Controller
    from naonet.spaces import get_space, register_space
    from naonet.spaces.nb201 import NB201

    # the space where its encoding goes
    for given in (NB201, "nb201"):
        assert Controller(given).encoding.sequence_length == Controller(
            NB201.encoding()).encoding.sequence_length
    # a text form where an architecture goes
    cell = NB201.sample(random.Random(0))
    for space in (NB201, get_space("small")):
        text = space.sample(random.Random(1)).to_string()
        assert space.encoding().equivalent_variant(text, random.Random(2)).space is space
    with pytest.raises(UserError, match="has no edge 3 -> 2"):
        cell.edge_op(3, 2)
    with pytest.raises(UserError, match="op index 9 is not in the nb201 space"):
        type(cell)(NB201, (9,) * 6)
    # a built-in name is not silently taken over
    with pytest.raises(UserError, match="a search space named 'small' is registered already"):
        register_space(replace(get_space("small"), final_size=(20, 3)))
    assert register_space(get_space("small")) is get_space("small")  # the same: a no-op


def test_a_space_without_every_member_of_the_protocol_is_refused_when_registered():
    """A search of it would otherwise fail at its very end (its training command)."""
    from naonet.spaces import get_space, register_space

    class WithoutARecipe:
        def __getattr__(self, name):
            if name == "training_options":
                raise AttributeError(name)
            return getattr(get_space("small"), name)

    with pytest.raises(UserError, match="lacks what the SearchSpace protocol asks for: "
                                        "training_options$"):
        register_space(WithoutARecipe())

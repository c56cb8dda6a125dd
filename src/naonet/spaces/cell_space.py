"""The NAO cell search spaces: one object from which every count and table derives."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from naonet.errors import UserError
from naonet.spaces.protocol import (
    IntegerCodedSpace,
    add_to_registry,
    config_from_fields,
    get_space,
    preset_options,
    preset_size,
)

NUM_CELL_INPUTS = 2  # h[k-2] (id 0) and h[k-1] (id 1)
BRANCHES_PER_NODE = 2  # a node sums two (input, op) branches
INTEGERS_PER_BRANCH = 2  # the released format writes a branch as "input op"
INPUT_SLOT = 0  # the input id comes first in a branch, the op second
CELLS_PER_ARCHITECTURE = 2  # a normal and a reduction cell
IMAGENET_PRESET = "naonet-v2-imagenet"  # the recipe a cell found on ImageNet trains with


def is_reduced(state: int, reduction: bool) -> bool:
    """Whether a cell reads ``state`` at twice its output resolution: a reduction cell's
    two inputs (node outputs are already at the cell's size)."""
    return reduction and state < NUM_CELL_INPUTS


def read_stride(state: int, reduction: bool) -> int:
    """The stride of an operation that reads ``state`` (2 where it must be reduced)."""
    return 2 if is_reduced(state, reduction) else 1


@dataclass(frozen=True)
class CellSearchSpace(IntegerCodedSpace):
    """A NAO cell space: `num_nodes` nodes, each summing two (input, operation) branches.

    Node `j` (0-based) may read any state with id `< j + NUM_CELL_INPUTS`: the two cell
    inputs and the outputs of the nodes before it. Operation indices are positions in
    `op_names`; the released 40-integer format writes them as integers.
    """

    name: str
    op_names: tuple[str, ...]
    num_nodes: int = 5
    # Parameter-free pass-throughs, which drop path leaves alone when a network asks for
    # it (``drop_path_exempts_pass_through``; the released HEAD drops every branch).
    drop_path_exempt: tuple[str, ...] = ("identity",)
    # (C, N) of the published CIFAR network (NAONet-V2-36): the size whose parameters,
    # multiply-adds and latency a search's budget limits
    final_size: tuple[int, int] = (36, 6)

    def __post_init__(self) -> None:
        """A UserError for a space no network can be built of (no node, an operation
        named twice or none); the operations' names are checked where they are built."""
        if self.num_nodes < 1:
            raise UserError(f"a cell space needs at least 1 node, got {self.num_nodes}")
        if not self.op_names or len(set(self.op_names)) != len(self.op_names):
            raise UserError(f"a cell space's op names must be distinct and non-empty, got "
                            f"{self.op_names}")

    @property
    def num_states(self) -> int:
        """Cell inputs plus node outputs."""
        return self.num_nodes + NUM_CELL_INPUTS

    @property
    def integers_per_cell(self) -> int:
        """Length of one cell's integer coding: (input, op) per branch, two branches a node."""
        return BRANCHES_PER_NODE * INTEGERS_PER_BRANCH * self.num_nodes

    @property
    def integers_per_architecture(self) -> int:
        """Length of an architecture's integer coding: the normal cell's, then the
        reduction cell's."""
        return CELLS_PER_ARCHITECTURE * self.integers_per_cell

    def num_candidate_inputs(self, node: int) -> int:
        """How many states node `node` (0-based) may read."""
        return node + NUM_CELL_INPUTS

    def describe_ops(self) -> str:
        """The operations with their indices, for messages: '0 sep_conv_3x3, 1 ...'."""
        return ", ".join(f"{i} {name}" for i, name in enumerate(self.op_names))

    # ----------------------------------------------------------------- the protocol
    def parse(self, text: str):
        """Any text form of an architecture of this space (see ``Architecture.parse``)."""
        from naonet.spaces.architecture import Architecture

        return Architecture.parse(text, self)

    def integer_limits(self) -> tuple[int, ...]:
        """(input, op, input, op) per node, normal cell then reduction cell."""
        cell = []
        for node in range(self.num_nodes):
            inputs = self.num_candidate_inputs(node)
            cell += [inputs, self.num_ops] * BRANCHES_PER_NODE
        return tuple(cell * CELLS_PER_ARCHITECTURE)

    def from_integers(self, values: Sequence[int]):
        """The architecture of an integer coding (validated: each entry within its limit)."""
        from naonet.spaces.architecture import Architecture

        return Architecture.from_integers(list(values), self)

    def to_integers(self, architecture) -> list[int]:
        """The integer coding of an architecture of this space."""
        return self.as_architecture(architecture, "to_integers").to_integers()

    def canonical(self, architecture):
        """The architecture itself: every node of a NAO cell feeds the cell's output (the
        unused ones are concatenated), so no choice is dead. Nodes whose two branches
        are swapped compute the same sum, but the released search lists such twins as
        they come, and so does this one."""
        return self.as_architecture(architecture, "canonical")

    def encoding(self):
        """The controller's token encoding of this space (``CellSpaceEncoding``)."""
        from naonet.spaces.encoding import CellSpaceEncoding

        return CellSpaceEncoding(self)

    def network_config(self, channels: int, layers: int, num_classes: int = 10,
                       skeleton: str = "cifar", **regularisation: Any):
        """A NAONet config (``regularisation``: aux_head, keep_prob, drop_path_keep_prob;
        unset ones take the published recipe's values: an auxiliary head, which
        ``parameter_count`` leaves out as published counts do, dropout 0.4, drop path
        0.2)."""
        from naonet.models import NetworkConfig

        return config_from_fields(NetworkConfig, dict(
            skeleton=skeleton, channels=channels, layers=layers, num_classes=num_classes,
            **regularisation), "NAONet")

    def network_config_from_dict(self, values: dict):
        """The ``NetworkConfig`` a checkpoint saved (its ``to_dict()``), read back; an
        unknown field is a UserError naming the known ones."""
        from naonet.models import NetworkConfig

        return config_from_fields(NetworkConfig, values, "NAONet")

    def network_config_from_weights(self, state_dict: dict, **overrides):
        """The ``NetworkConfig`` a bare NAONet state_dict (naonet's or the released code's
        names) was made with, read off its tensors; ``overrides`` not None win."""
        from naonet.compat.released import infer_network_config

        return infer_network_config(state_dict, **overrides)  # released names too

    def build_network(self, architecture, config):
        """The discrete NAONet of ``architecture`` (``forward(images)`` -> ``(logits,
        aux_logits or None)``)."""
        from naonet.models import build_network

        return build_network(self.as_architecture(architecture, "build_network"),
                             self.check_config(config))

    def parameter_count(self, architecture, config) -> int:
        """Trainable parameters of the NAONet ``config`` builds, without building it (the
        auxiliary head left out, as published counts do)."""
        from naonet.supernet.counting import count_network_parameters

        return count_network_parameters(self.as_architecture(architecture, "parameter_count"),
                                        self.check_config(config))

    def multiply_adds(self, architecture, config, image_size: int = 32) -> int:
        """Multiply-adds of one evaluation of the NAONet on one image of ``image_size``
        pixels a side, without building it."""
        from naonet.supernet.counting import count_network_multiply_adds

        return count_network_multiply_adds(self.as_architecture(architecture, "multiply_adds"),
                                           self.check_config(config), image_size)

    def training_options(self, dataset: str) -> str:
        """NAONet-V2's published recipe: its ImageNet network on ImageNet, else its
        CIFAR-10 recipe at ``final_size``."""
        if dataset == "imagenet":
            return f"--preset {IMAGENET_PRESET}"
        return preset_options("naonet-v2-cifar10", self.final_size)

    def final_size_for(self, dataset: str) -> tuple[int, int]:
        """The ImageNet preset's size on ImageNet (C 52, N 4), else ``final_size``."""
        return preset_size(IMAGENET_PRESET) if dataset == "imagenet" else self.final_size

    def build_supernet(self, channels: int, layers: int, num_classes: int = 10,
                       skeleton: str = "cifar", **regularisation: Any):
        """The NAO supernet (``regularisation``: keep_prob, drop_path_keep_prob)."""
        from naonet.supernet import Supernet, SupernetConfig

        return Supernet(self, config_from_fields(SupernetConfig, dict(
            skeleton=skeleton, channels=channels, layers=layers, num_classes=num_classes,
            **regularisation), "supernet"))


SMALL = CellSearchSpace(
    name="small",
    op_names=("sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3", "identity"),
)

MIDDLE = CellSearchSpace(
    name="middle",
    op_names=(
        "zero",
        "identity",
        "sep_conv_3x3",
        "sep_conv_5x5",
        "sep_conv_7x7",
        "dil_sep_conv_3x3",
        "dil_sep_conv_5x5",
        "dil_sep_conv_7x7",
        "avg_pool_3x3",
        "max_pool_3x3",
    ),
    drop_path_exempt=("zero", "identity"),
)

add_to_registry(SMALL)
add_to_registry(MIDDLE)


def get_cell_space(name: str | CellSearchSpace | None) -> CellSearchSpace:
    """A NAO cell space by name or object (None: the default space)."""
    space = get_space(name)
    if not isinstance(space, CellSearchSpace):
        raise UserError(f"the {space.name!r} space is not a NAO cell space; this needs "
                        "small or middle")
    return space

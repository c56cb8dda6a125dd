"""The NAS-Bench-201 search space and its architecture values.

A cell is a DAG over ``num_nodes`` nodes; node 0 is the cell input and node ``j`` sums
``op(edge i -> j)`` over every earlier node ``i``; the last node is the cell output. Each
edge holds one of the space's ops. The benchmark writes a cell as
``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``: one ``|...|`` group per node ``j >= 1``,
listing its incoming edges ``op~i`` for ``i = 0 .. j-1``. This module is the only place
that reads or writes that form.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

from naonet.errors import UserError
from naonet.spaces.protocol import (
    IntegerCodedSpace,
    add_to_registry,
    check_text_space,
    config_from_fields,
    plain_integers,
    preset_options,
    without_space_prefix,
)

ZERO_OP = "none"  # the op whose output is zero: the edge carries nothing
NB201_OPS = (ZERO_OP, "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NB201_SPACE_NAME = "nb201"  # the benchmark's own space: its cells are written unprefixed


@dataclass(frozen=True)
class NB201Space(IntegerCodedSpace):
    """A NAS-Bench-201-style cell space: every edge of a complete DAG picks one op."""

    name: str = NB201_SPACE_NAME
    op_names: tuple[str, ...] = NB201_OPS
    num_nodes: int = 4
    # (channels, cells per stage) of the benchmark's trained networks: the size whose
    # parameters, multiply-adds and latency a search's budget limits
    final_size: tuple[int, int] = (16, 5)

    def __post_init__(self) -> None:
        if self.num_nodes < 2:
            raise UserError(f"an nb201 cell needs at least 2 nodes, got {self.num_nodes}")
        if not self.op_names or len(set(self.op_names)) != len(self.op_names):
            raise UserError(f"op names must be distinct and non-empty: {self.op_names}")

    @cached_property
    def edges(self) -> tuple[tuple[int, int], ...]:
        """(source, target) of every edge, in the order of the string form."""
        return tuple((source, target) for target in range(1, self.num_nodes)
                     for source in range(target))

    @property
    def num_edges(self) -> int:
        """Edges of the cell (6 for NAS-Bench-201's four nodes): one operation each."""
        return len(self.edges)

    # ----------------------------------------------------------------- architectures
    def architecture(self, ops: tuple[int, ...] | list[int]) -> NB201Architecture:
        """The architecture with op index ``ops[e]`` on edge ``e`` (validated; integer
        values of any type, a tensor's included, are taken as op indices)."""
        return NB201Architecture(self, tuple(ops))

    def parse(self, text: str) -> NB201Architecture:
        """Read the benchmark's string form ``|op~0|+|op~0|op~1|+...`` (optionally
        prefixed ``nb201:`` or ``nb201 |``)."""
        text = text.strip()
        check_text_space(text, self)
        text = without_space_prefix(text, self.name)
        groups = text.strip().split("+")
        if len(groups) != self.num_nodes - 1:
            raise UserError(f"{text.strip()!r} is not an {self.name} architecture: expected "
                            f"{self.num_nodes - 1} '|...|' groups joined by '+', like "
                            f"{self.example().to_string()!r}")
        ops = []
        for target, group in enumerate(groups, start=1):
            terms = [term for term in group.strip().strip("|").split("|")]
            if len(terms) != target:
                form = "op~0" if target == 1 else f"op~0|...|op~{target - 1}"
                raise UserError(f"node {target} of {text.strip()!r} lists {len(terms)} edges; "
                                f"it must list {target} ('{form}')")
            for source, term in enumerate(terms):
                name, _, written_source = term.partition("~")
                if written_source != str(source):
                    raise UserError(f"edge {term!r} of node {target} must read node {source} "
                                    f"('{name}~{source}')")
                ops.append(self.op_index(name))
        return NB201Architecture(self, tuple(ops))

    def example(self) -> NB201Architecture:
        """The cell with the first operation on every edge (used in messages)."""
        return NB201Architecture(self, (0,) * self.num_edges)

    def encoding(self):
        """The controller's token encoding of this space."""
        from naonet.spaces.nb201_encoding import NB201Encoding

        return NB201Encoding(self)

    # ----------------------------------------------------------------- the protocol
    def claims(self, text: str) -> bool:
        """Whether unprefixed text is in the benchmark's form (no other space writes it)."""
        return text.startswith("|") and "~" in text

    def integer_limits(self) -> tuple[int, ...]:
        """One op index per edge."""
        return (self.num_ops,) * self.num_edges

    def from_integers(self, values: Sequence[int]) -> NB201Architecture:
        """The cell with op index ``values[e]`` on edge ``e`` (validated)."""
        return self.architecture(values)

    def to_integers(self, architecture: NB201Architecture) -> list[int]:
        """The op index of every edge of an architecture of this space."""
        return list(self.as_architecture(architecture, "to_integers").ops)

    def canonical(self, architecture: NB201Architecture) -> NB201Architecture:
        """The cell with ``none`` on every edge that cannot carry the input to the output:
        an edge out of a node no non-``none`` path reaches from the input (its input is
        all zeros), or into a node no such path leads from to the output (its sum is
        never used). What remains computes the same function: exactly in the supernet
        (BatchNorm without affine parameters maps zeros to zeros) and up to a constant
        bias from BatchNorm on zeros in the benchmark network. The benchmark trained each
        of the 15,625 cells separately, so its table gives such twins different
        accuracies; that spread is training noise, not a difference of the cells."""
        architecture = self.as_architecture(architecture, "canonical")
        if ZERO_OP not in self.op_names:  # every edge carries something
            return architecture
        from_input, to_output = self.reached_from_input(architecture), \
            self.reaches_output(architecture)
        none = self.op_index(ZERO_OP)
        return NB201Architecture(self, tuple(
            op if from_input[source] and to_output[target] else none
            for op, (source, target) in zip(architecture.ops, self.edges)))

    def reached_from_input(self, architecture: NB201Architecture) -> list[bool]:
        """Per node: whether a path of non-``none`` edges leads to it from the input."""
        reached = [True] + [False] * (self.num_nodes - 1)
        for edge, (source, target) in enumerate(self.edges):  # sources come first
            if reached[source] and self.op_names[architecture.ops[edge]] != ZERO_OP:
                reached[target] = True
        return reached

    def reaches_output(self, architecture: NB201Architecture) -> list[bool]:
        """Per node: whether a path of non-``none`` edges leads from it to the output."""
        reaches = [False] * (self.num_nodes - 1) + [True]
        for edge in reversed(range(self.num_edges)):  # targets come first
            source, target = self.edges[edge]
            if reaches[target] and self.op_names[architecture.ops[edge]] != ZERO_OP:
                reaches[source] = True
        return reaches

    def network_config(self, channels: int, layers: int, num_classes: int = 10,
                       skeleton: str = "cifar", **regularisation: Any):
        """The benchmark network's config: ``layers`` is cells per stage. The benchmark
        network has no dropout, drop path or auxiliary head, so ``regularisation`` is
        not used; it has only the small-image stem, so ``skeleton`` must be ``cifar``."""
        from naonet.models.nb201 import NB201NetworkConfig

        _check_regularisation_names(regularisation)
        if skeleton != "cifar":
            raise UserError(f"the {self.name} network is built for small images (CIFAR, "
                            "ImageNet16): use --dataset cifar10 or cifar100, or --dataset "
                            "folder with --image-size 64 or less (downsampled ImageNet too)")
        return NB201NetworkConfig(channels, layers, num_classes)

    def network_config_from_dict(self, values: dict):
        """The ``NB201NetworkConfig`` a checkpoint saved (its ``to_dict()``), read back."""
        from naonet.models.nb201 import NB201NetworkConfig

        return config_from_fields(NB201NetworkConfig, values, self.name)

    def network_config_from_weights(self, state_dict: dict, **overrides):
        """The ``NB201NetworkConfig`` a bare state_dict of the benchmark's network was made
        with, read off its tensors; ``overrides`` not None win."""
        from naonet.models.nb201 import infer_nb201_config

        return infer_nb201_config(state_dict, self.name, **overrides)

    def build_network(self, architecture: NB201Architecture, config):
        """The benchmark's network of the cell (``forward(images)`` -> ``(logits, None)``)."""
        from naonet.models.nb201 import build_nb201_network

        return build_nb201_network(self.as_architecture(architecture, "build_network"),
                                   self.check_config(config))

    def parameter_count(self, architecture: NB201Architecture, config) -> int:
        """Trainable parameters of the benchmark's network at ``config``'s size, without
        building it."""
        return _cost_counter(self, self.check_config(config), 32).parameters(
            self.as_architecture(architecture, "parameter_count"))

    def multiply_adds(self, architecture: NB201Architecture, config,
                      image_size: int = 32) -> int:
        """Multiply-adds of one evaluation of the benchmark's network on one image of
        ``image_size`` pixels a side, without building it."""
        return _cost_counter(self, self.check_config(config), image_size).multiply_adds(
            self.as_architecture(architecture, "multiply_adds"))

    def training_options(self, dataset: str) -> str:
        """The benchmark's recipe (``--preset nb201-cifar10``) at ``final_size``; the
        benchmark network takes small images only, whatever the data set."""
        return preset_options("nb201-cifar10", self.final_size)

    def final_size_for(self, dataset: str) -> tuple[int, int]:
        """``final_size``, on every data set (as :meth:`training_options` trains it)."""
        return self.final_size

    def build_supernet(self, channels: int, layers: int, num_classes: int = 10,
                       skeleton: str = "cifar", **regularisation: Any):
        """Every op on every edge (separate weights per edge), batch-statistics BN."""
        from naonet.supernet.nb201 import NB201Supernet

        return NB201Supernet(self.network_config(channels, layers, num_classes, skeleton,
                                                 **regularisation), self)


def _check_regularisation_names(regularisation: dict) -> None:
    """Refuse a name that is no NAONet regularisation option (a typo): the benchmark
    network takes those options from callers of every space and leaves them unused."""
    from dataclasses import fields

    from naonet.models import NetworkConfig

    size = {"skeleton", "channels", "layers", "num_classes"}
    known = [field.name for field in fields(NetworkConfig) if field.name not in size]
    unknown = sorted(set(regularisation) - set(known))
    if unknown:
        raise UserError(f"unknown network option(s) {', '.join(unknown)} for the nb201 "
                        f"network; it takes channels, layers, num_classes and skeleton "
                        f"(and leaves {', '.join(known)} unused)")


@dataclass(frozen=True)
class NB201Architecture:
    """One cell of an :class:`NB201Space`: ``ops[e]`` is the op index on edge ``e``."""

    space: NB201Space
    ops: tuple[int, ...]

    def __post_init__(self) -> None:
        # Made by the thousand (generation, the table, every cell of the space): a tuple
        # of plain ints, what the space's own methods pass, is only range-checked.
        ops, space = self.ops, self.space
        if type(ops) is not tuple or set(map(type, ops)) != {int}:
            ops = tuple(plain_integers(ops, f"an {space.name} architecture's ops",
                                       "pass op indices"))  # hashable, plain
            object.__setattr__(self, "ops", ops)
        if len(ops) != len(space.edges):
            raise UserError(f"an {space.name} architecture has {space.num_edges} edges, got "
                            f"{len(ops)} ops")
        num_ops = len(space.op_names)
        if ops and (min(ops) < 0 or max(ops) >= num_ops):
            bad = next(op for op in ops if not 0 <= op < num_ops)
            raise UserError(f"op index {bad} is not in the {space.name} space "
                            f"(0..{num_ops - 1})")

    @property
    def op_names(self) -> tuple[str, ...]:
        """The operation name on each edge, in edge order."""
        return tuple(self.space.op_names[op] for op in self.ops)

    def edge_op(self, source: int, target: int) -> str:
        """The op name on edge ``source -> target``."""
        if (source, target) not in self.space.edges:
            raise UserError(f"the {self.space.name} cell has no edge {source} -> {target}; "
                            f"its edges join node i to node j > i, nodes 0 to "
                            f"{self.space.num_nodes - 1}")
        return self.op_names[self.space.edges.index((source, target))]

    def incoming(self, target: int) -> list[tuple[int, str]]:
        """(source, op name) of every edge into node ``target``."""
        return [(source, self.op_names[edge])
                for edge, (source, to) in enumerate(self.space.edges) if to == target]

    def to_string(self) -> str:
        """The benchmark's string form."""
        groups = ["|" + "|".join(f"{name}~{source}" for source, name in self.incoming(target))
                  + "|" for target in range(1, self.space.num_nodes)]
        return "+".join(groups)

    def to_qualified_string(self) -> str:
        """The form naonet writes to files: the benchmark's own (no other space writes it),
        prefixed ``NAME:`` for a variant of the space registered under another name, which
        would otherwise be read back as a cell of NAS-Bench-201's."""
        if self.space.name == NB201_SPACE_NAME:
            return self.to_string()
        return f"{self.space.name}:{self.to_string()}"

    def __str__(self) -> str:
        return self.to_string()


@lru_cache(maxsize=16)
def _cost_counter(space: NB201Space, config, image_size: int):
    from naonet.models.nb201 import CostCounter

    return CostCounter(space, config, image_size)


NB201 = add_to_registry(NB201Space())

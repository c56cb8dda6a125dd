"""Search spaces a package offers naonet through the ``naonet.spaces`` entry points
(tests only; see docs/library.md, 'A space of your own').

``cell3`` registers itself when the module is imported (a module entry point); ``CHAIN``
is a space object naonet registers (an object entry point). The chain space is neither a
cell space nor NAS-Bench-201's: what the commands do with it is what the protocol gives.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from naonet.errors import UserError
from naonet.spaces import CellSearchSpace, register_space
from naonet.spaces.protocol import IntegerCodedSpace, without_space_prefix

CELL3 = register_space(CellSearchSpace(
    name="cell3", op_names=("sep_conv_3x3", "identity", "avg_pool_3x3"), num_nodes=3,
    final_size=(16, 2)))


@dataclass(frozen=True)
class ChainConfig:
    channels: int = 8
    layers: int = 3
    num_classes: int = 10

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        return f"C {self.channels}, {self.layers} layers"


@dataclass(frozen=True)
class ChainArchitecture:
    space: ChainSpace
    ops: tuple[int, ...]

    def to_string(self) -> str:
        return "-".join(self.space.op_names[op] for op in self.ops)

    def to_qualified_string(self) -> str:
        return f"{self.space.name}:{self.to_string()}"


class ChainSpace(IntegerCodedSpace):
    """A chain of ``length`` layers, each a 3x3 convolution or an identity, between a 3x3
    stem and a linear classifier."""

    name = "chain"
    op_names = ("conv3x3", "identity")
    final_size = (8, 3)
    length = 3

    def integer_limits(self) -> tuple[int, ...]:
        return (len(self.op_names),) * self.length

    def from_integers(self, values) -> ChainArchitecture:
        values = [int(value) for value in values]
        if len(values) != self.length or not all(0 <= value < len(self.op_names)
                                                 for value in values):
            raise UserError(f"a chain architecture is {self.length} op indices of "
                            f"0..{len(self.op_names) - 1}, got {values}")
        return ChainArchitecture(self, tuple(values))

    def to_integers(self, architecture) -> list[int]:
        return list(architecture.ops)

    def parse(self, text: str) -> ChainArchitecture:
        names = without_space_prefix(text.strip(), self.name).split("-")
        if len(names) != self.length:
            raise UserError(f"a chain architecture names {self.length} ops, got {text!r}")
        return self.from_integers([self.op_index(name) for name in names])

    def canonical(self, architecture) -> ChainArchitecture:
        return architecture

    def training_options(self, dataset: str) -> str:
        return "--epochs 10"

    def final_size_for(self, dataset: str) -> tuple[int, int]:
        return self.final_size

    def network_config(self, channels: int, layers: int, num_classes: int = 10,
                       skeleton: str = "cifar", **regularisation) -> ChainConfig:
        return ChainConfig(channels, layers, num_classes)

    def network_config_from_dict(self, values: dict) -> ChainConfig:
        return ChainConfig(**values)

    def parameter_count(self, architecture, config: ChainConfig) -> int:
        channels = config.channels
        convolutions = sum(op == 0 for op in architecture.ops)
        return (27 * channels + convolutions * (9 * channels * channels + channels)
                + channels * config.num_classes + config.num_classes)

    def multiply_adds(self, architecture, config: ChainConfig, image_size: int = 32) -> int:
        pixels, channels = image_size * image_size, config.channels
        convolutions = sum(op == 0 for op in architecture.ops)
        return (pixels * 27 * channels + convolutions * pixels * 9 * channels * channels
                + channels * config.num_classes)

    # what these tests do not reach
    def encoding(self):
        raise NotImplementedError

    def network_config_from_weights(self, state_dict: dict, **overrides):
        raise NotImplementedError

    def build_network(self, architecture, config):
        raise NotImplementedError

    def build_supernet(self, channels: int, layers: int, num_classes: int = 10,
                       skeleton: str = "cifar", **regularisation):
        raise NotImplementedError


CHAIN = ChainSpace()

"""Search spaces and architecture values: the protocol every space implements, the NAO
cell spaces (``small``, ``middle``) and NAS-Bench-201 (``nb201``)."""

from naonet.spaces.architecture import CELL_TYPES, Architecture, Cell, Node
from naonet.spaces.cell_space import MIDDLE, SMALL, CellSearchSpace, get_cell_space
from naonet.spaces.conformance import SpaceCheck, check_space
from naonet.spaces.encoding import (
    SOS_TOKEN,
    CellSpaceEncoding,
    SequenceEncoding,
    encoding_for,
)
from naonet.spaces.nb201 import NB201, NB201_OPS, NB201Architecture, NB201Space
from naonet.spaces.nb201_encoding import NB201Encoding, dead_nodes
from naonet.spaces.protocol import (
    DEFAULT_SPACE,
    IntegerCodedSpace,
    SearchSpace,
    get_space,
    parse_architecture,
    register_space,
    space_names,
)
from naonet.spaces.registry import (
    architecture_names,
    named_architecture,
    resolve_architecture,
)

__all__ = [
    "CELL_TYPES",
    "DEFAULT_SPACE",
    "MIDDLE",
    "NB201",
    "NB201_OPS",
    "SMALL",
    "SOS_TOKEN",
    "Architecture",
    "Cell",
    "CellSearchSpace",
    "CellSpaceEncoding",
    "IntegerCodedSpace",
    "NB201Architecture",
    "NB201Encoding",
    "NB201Space",
    "Node",
    "SearchSpace",
    "SequenceEncoding",
    "SpaceCheck",
    "architecture_names",
    "check_space",
    "dead_nodes",
    "encoding_for",
    "get_cell_space",
    "get_space",
    "named_architecture",
    "parse_architecture",
    "register_space",
    "resolve_architecture",
    "space_names",
]

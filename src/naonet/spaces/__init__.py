"""Search spaces and architecture values."""

from naonet.spaces.architecture import CELL_TYPES, Architecture, Cell, Node
from naonet.spaces.cell_space import (
    MIDDLE,
    SMALL,
    CellSearchSpace,
    get_space,
    register_space,
    space_names,
)
from naonet.spaces.encoding import (
    SOS_TOKEN,
    CellSpaceEncoding,
    SequenceEncoding,
    encoding_for,
)
from naonet.spaces.registry import (
    architecture_names,
    named_architecture,
    register_architecture,
    resolve_architecture,
)

__all__ = [
    "SOS_TOKEN",
    "CellSpaceEncoding",
    "SequenceEncoding",
    "encoding_for",
    "CELL_TYPES",
    "MIDDLE",
    "SMALL",
    "Architecture",
    "Cell",
    "CellSearchSpace",
    "Node",
    "architecture_names",
    "get_space",
    "named_architecture",
    "register_architecture",
    "register_space",
    "resolve_architecture",
    "space_names",
]

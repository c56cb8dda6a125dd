"""The NAO cell search spaces: one object from which every count and table derives."""

from __future__ import annotations

from dataclasses import dataclass

from naonet.errors import UserError

NUM_CELL_INPUTS = 2  # h[k-2] (id 0) and h[k-1] (id 1)


@dataclass(frozen=True)
class CellSearchSpace:
    """A NAO cell space: `num_nodes` nodes, each summing two (input, operation) branches.

    Node `j` (0-based) may read any state with id `< j + NUM_CELL_INPUTS`: the two cell
    inputs and the outputs of the nodes before it. Operation indices are positions in
    `op_names`; the released 40-integer format writes them as integers.
    """

    name: str
    op_names: tuple[str, ...]
    num_nodes: int = 5
    # Ops that the released code never drops with drop path (parameter-free pass-throughs).
    drop_path_exempt: tuple[str, ...] = ("identity",)

    @property
    def num_ops(self) -> int:
        return len(self.op_names)

    @property
    def num_states(self) -> int:
        """Cell inputs plus node outputs."""
        return self.num_nodes + NUM_CELL_INPUTS

    @property
    def integers_per_cell(self) -> int:
        return 4 * self.num_nodes

    @property
    def integers_per_architecture(self) -> int:
        return 2 * self.integers_per_cell

    def num_candidate_inputs(self, node: int) -> int:
        """How many states node `node` (0-based) may read."""
        return node + NUM_CELL_INPUTS

    def op_index(self, name: str) -> int:
        """The index of an operation name, or a UserError naming the valid ones."""
        try:
            return self.op_names.index(name)
        except ValueError:
            raise UserError(
                f"operation {name!r} is not in the {self.name!r} space; "
                f"use one of: {', '.join(self.op_names)}"
            ) from None

    def describe_ops(self) -> str:
        return ", ".join(f"{i} {name}" for i, name in enumerate(self.op_names))


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

_SPACES: dict[str, CellSearchSpace] = {space.name: space for space in (SMALL, MIDDLE)}


def register_space(space: CellSearchSpace) -> CellSearchSpace:
    """Add a cell space to the registry (for example the same ops with another node count)."""
    _SPACES[space.name] = space
    return space


def get_space(name: str | CellSearchSpace) -> CellSearchSpace:
    """Look a space up by name; a CellSearchSpace passes through."""
    if isinstance(name, CellSearchSpace):
        return name
    try:
        return _SPACES[name]
    except KeyError:
        raise UserError(
            f"unknown search space {name!r}; use one of: {', '.join(sorted(_SPACES))}"
        ) from None


def space_names() -> list[str]:
    return sorted(_SPACES)

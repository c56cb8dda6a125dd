"""Immutable architecture values: two cells of a NAO cell space, with the space attached.

Two text forms are parsed and printed, and this module is the only place that decodes them:

* the released 40-integer form (``"1 1 0 1 2 4 ..."``), optionally prefixed with the
  space (``"small:1 1 0 1 ..."``, which is how naonet writes architectures to files);
* a readable form, ``"small | normal: sep_conv_5x5(1) + sep_conv_5x5(0); ... |
  reduction: ..."``, one ``op(input) + op(input)`` term per node.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from naonet.errors import UserError
from naonet.spaces.cell_space import NUM_CELL_INPUTS, CellSearchSpace, get_cell_space
from naonet.spaces.protocol import get_space, named_space, plain_integers, space_mismatch

CELL_TYPES = ("normal", "reduction")


@dataclass(frozen=True)
class Node:
    """One node: ``op_a(state input_a) + op_b(state input_b)``; ops are indices."""

    input_a: int
    op_a: int
    input_b: int
    op_b: int

    @property
    def inputs(self) -> tuple[int, int]:
        """The states the node's two branches read (0, 1: the cell's inputs; 2 on: nodes)."""
        return (self.input_a, self.input_b)

    @property
    def ops(self) -> tuple[int, int]:
        """The operation index of each branch."""
        return (self.op_a, self.op_b)

    def swapped(self) -> Node:
        """The same node with its two branches exchanged (the sum is symmetric)."""
        return Node(self.input_b, self.op_b, self.input_a, self.op_a)


@dataclass(frozen=True)
class Cell:
    """A cell: its nodes in order; node ``j`` produces state ``j + 2``."""

    nodes: tuple[Node, ...]

    def loose_ends(self) -> tuple[int, ...]:
        """States no node reads; the cell outputs their channel concatenation."""
        used = {state for node in self.nodes for state in node.inputs}
        return tuple(s for s in range(len(self.nodes) + 2) if s not in used)

    def to_integers(self) -> list[int]:
        """(input, op, input, op) of every node, in node order."""
        return [value for node in self.nodes
                for value in (node.input_a, node.op_a, node.input_b, node.op_b)]


@dataclass(frozen=True)
class Architecture:
    """A normal and a reduction cell of one search space."""

    space: CellSearchSpace
    normal: Cell
    reduction: Cell

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_integers(cls, values: list[int], space: str | CellSearchSpace | None = None
                      ) -> Architecture:
        """Build from the released integer list, validating every entry."""
        space = get_cell_space(space)
        values = plain_integers(values, f"a {space.name!r}-space architecture's entries",
                                "pass state and op indices")
        expected = space.integers_per_architecture
        if len(values) != expected:
            raise UserError(
                f"architecture has {len(values)} integers; a {space.name!r}-space architecture "
                f"has {expected} ({space.integers_per_cell} per cell: input, op, input, op for "
                f"each of {space.num_nodes} nodes)"
            )
        cells = []
        for cell_index, cell_type in enumerate(CELL_TYPES):
            chunk = values[cell_index * space.integers_per_cell:
                           (cell_index + 1) * space.integers_per_cell]
            nodes = []
            for node_index in range(space.num_nodes):
                in_a, op_a, in_b, op_b = chunk[4 * node_index: 4 * node_index + 4]
                for state in (in_a, in_b):
                    _check_input(space, cell_type, node_index, state)
                for op in (op_a, op_b):
                    _check_op(space, cell_type, node_index, op)
                nodes.append(Node(in_a, op_a, in_b, op_b))
            cells.append(Cell(tuple(nodes)))
        return cls(space, cells[0], cells[1])

    @classmethod
    def parse(cls, text: str, space: str | CellSearchSpace | None = None) -> Architecture:
        """Parse any text form; ``space`` is the expected space (default ``small``).

        A space named inside the text must agree with ``space`` when both are given.
        """
        text = text.strip()
        if not text:
            raise UserError("empty architecture string; give a name (naonet-v2) or 40 integers")
        _check_cell_text(text, space)
        prefix_space, body = _split_space_prefix(text)
        # A space object parses its own text (registered or not, replaced or not); a name
        # is looked up in the registry.
        given = space if isinstance(space, CellSearchSpace) else None
        resolved = (given if given is not None and prefix_space in (None, given.name)
                    else get_cell_space(prefix_space or space))
        claimed, _ = named_space(body.strip())
        if claimed is not None and claimed != resolved.name:  # small:|nor_conv_3x3~0|+...
            raise UserError(f"{body.strip()!r} is written in the form of the {claimed!r} space "
                            f"but prefixed {resolved.name!r}; drop the prefix")
        if "normal:" in body or "(" in body:
            return cls._parse_readable(body, resolved)
        tokens = body.replace(",", " ").split()
        try:
            values = [int(token) for token in tokens]
        except ValueError:
            bad = next(t for t in tokens if not t.lstrip("-").isdigit())
            # text of a space of one's own, given bare, reaches the default space
            elsewhere = ("" if prefix_space is not None else
                         " (an architecture of another space: write it as NAME:..., or pass "
                         "--space NAME)")
            raise UserError(
                f"architecture string has a non-integer entry {bad!r}; write "
                f"{resolved.integers_per_architecture} integers separated by spaces, or a name"
                f"{elsewhere}") from None
        return cls.from_integers(values, resolved)

    @classmethod
    def _parse_readable(cls, body: str, space: CellSearchSpace) -> Architecture:
        parts = {}
        for section in body.split("|"):
            section = section.strip()
            if not section:
                continue
            label, _, content = section.partition(":")
            label = label.strip()
            if label not in CELL_TYPES:
                raise UserError(
                    f"readable architecture has a section {label!r}; expected 'normal: ...' "
                    "and 'reduction: ...' separated by '|'"
                )
            parts[label] = content
        missing = [c for c in CELL_TYPES if c not in parts]
        if missing:
            raise UserError(f"readable architecture lacks its {missing[0]} cell")
        values: list[int] = []
        term = re.compile(r"^\s*([A-Za-z0-9_]+)\s*\(\s*(-?\d+)\s*\)\s*$")
        for cell_type in CELL_TYPES:
            nodes = [n for n in parts[cell_type].split(";") if n.strip()]
            if len(nodes) != space.num_nodes:
                raise UserError(
                    f"{cell_type} cell has {len(nodes)} nodes; the {space.name!r} space has "
                    f"{space.num_nodes} (separate nodes with ';')"
                )
            for node in nodes:
                branches = node.split("+")
                if len(branches) != 2:
                    raise UserError(f"node {node.strip()!r} must be 'op(input) + op(input)'")
                for branch in branches:
                    match = term.match(branch)
                    if not match:
                        raise UserError(f"branch {branch.strip()!r} must be 'op(input)'")
                    values += [int(match.group(2)), space.op_index(match.group(1))]
        return cls.from_integers(values, space)

    # ----------------------------------------------------------------- printing
    def to_integers(self) -> list[int]:
        """The integer coding: the normal cell's, then the reduction cell's."""
        return self.normal.to_integers() + self.reduction.to_integers()

    def to_string(self) -> str:
        """The released 40-integer form (no space prefix)."""
        return " ".join(str(v) for v in self.to_integers())

    def to_qualified_string(self) -> str:
        """``space:integers``, the form naonet writes to files."""
        return f"{self.space.name}:{self.to_string()}"

    def to_readable(self) -> str:
        """Both cells in words: 'small | normal: sep_conv_3x3(0) + identity(1); ... |
        reduction: ...', which ``parse`` reads back."""
        def cell_text(cell: Cell) -> str:
            ops = self.space.op_names
            return "; ".join(
                f"{ops[n.op_a]}({n.input_a}) + {ops[n.op_b]}({n.input_b})" for n in cell.nodes
            )

        return (f"{self.space.name} | normal: {cell_text(self.normal)} | "
                f"reduction: {cell_text(self.reduction)}")

    def cells(self) -> dict[str, Cell]:
        """The two cells by type: ``{'normal': ..., 'reduction': ...}``."""
        return {"normal": self.normal, "reduction": self.reduction}

    def __str__(self) -> str:
        return self.to_qualified_string()


def _check_cell_text(text: str, space: str | CellSearchSpace | None) -> None:
    """A UserError if ``text`` names another space than ``space``; without ``space``, if
    it names a space that is not a NAO cell space."""
    said, prefixed = named_space(text)
    wanted = get_cell_space(space).name
    if said is None or said == wanted:
        return
    if space is not None or not isinstance(get_space(said), CellSearchSpace):
        raise space_mismatch(said, wanted, prefixed)


def _split_space_prefix(text: str) -> tuple[str | None, str]:
    """Split ``"small:1 2 ..."`` or ``"small | normal: ..."`` into (space, rest)."""
    head, sep, rest = text.partition("|")
    if sep and "normal:" not in head and "reduction:" not in head \
            and not head.strip().endswith(":"):  # "small:|...": the 'name:' form, below
        return head.strip(), rest
    match = re.match(r"^([A-Za-z][\w-]*)\s*:(.*)$", text, flags=re.S)
    if match and match.group(1) not in CELL_TYPES:
        return match.group(1), match.group(2)
    return None, text


def _check_input(space: CellSearchSpace, cell_type: str, node: int, state: int) -> None:
    limit = space.num_candidate_inputs(node)
    if not 0 <= state < limit:
        raise UserError(
            f"node {node} of the {cell_type} cell (state {node + NUM_CELL_INPUTS} in nao info) "
            f"reads input {state}, but node {node} can only read inputs 0..{limit - 1} (0, 1 "
            "are the cell inputs, 2+ earlier nodes)"
        )


def _check_op(space: CellSearchSpace, cell_type: str, node: int, op: int) -> None:
    if not 0 <= op < space.num_ops:
        raise UserError(
            f"node {node} of the {cell_type} cell (state {node + NUM_CELL_INPUTS} in nao info) "
            f"uses op {op}, which is not in the "
            f"{space.name!r} space (ops: {space.describe_ops()}); check --space"
        )

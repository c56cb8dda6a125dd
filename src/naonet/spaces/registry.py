"""Named architectures, so users can write ``--arch naonet-v2``."""

from __future__ import annotations

from naonet.errors import UserError
from naonet.spaces.architecture import Architecture
from naonet.spaces.cell_space import CellSearchSpace

# The cell NAO-V2 discovered on CIFAR-10 (released README / paper), small space.
_NAMED: dict[str, tuple[str, str]] = {
    "naonet-v2": ("small", "1 1 0 1 2 4 0 0 0 0 2 1 0 0 0 2 0 3 0 0 "
                           "0 2 0 2 2 2 1 0 0 0 0 1 0 0 0 3 0 0 0 1"),
}


def architecture_names() -> list[str]:
    """The registered architecture names (``naonet-v2``, ...), sorted; ``nao info
    NAME`` prints each."""
    return sorted(_NAMED)


def named_architecture(name: str) -> Architecture:
    """The architecture of a registered name, in any case (``NAONet-V2`` too)."""
    try:
        space, text = _NAMED[name.lower()]
    except KeyError:
        raise UserError(
            f"unknown architecture name {name!r}; use one of: {', '.join(architecture_names())}, "
            "or give the architecture as integers or in its readable form (nao info NAME "
            "prints both)"
        ) from None
    return Architecture.parse(text, space)


def resolve_architecture(text: str, space: str | CellSearchSpace | None = None):
    """A registered name or any text form of an architecture of any registered space."""
    from naonet.spaces.protocol import get_space, parse_architecture

    text = text.strip()
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) > 1 and all(_is_architecture(line, space) for line in lines):
        # "$(cat arch_pool.final)": a list where one is asked for (one architecture written
        # over several lines, a cell a line, reads as one)
        raise UserError(f"the architecture text holds {len(lines)} architectures, one a "
                        "line, as a search's arch_pool files list them; pass one of them, "
                        "for example \"$(head -n 1 arch_pool.final)\"")
    if isinstance(space, str):
        get_space(space)  # an unknown space is named as such, not as the wrong one
    if text.lower() in _NAMED:
        architecture = named_architecture(text)
        if space is not None and architecture.space.name != getattr(space, "name", space):
            raise UserError(
                f"architecture {text!r} belongs to the {architecture.space.name!r} space, "
                f"not {getattr(space, 'name', space)!r}; drop --space (in Python, space=) "
                f"or pick another"
            )
        return architecture
    looks_like_name = text.replace("-", "").replace("_", "").isalnum() and not text.isdigit()
    if looks_like_name and not any(ch.isdigit() for ch in text.split()[0][:1]):
        if " " not in text and ":" not in text:
            named_architecture(text)  # raises the unknown-name error
    return parse_architecture(text, space)


def _is_architecture(text: str, space) -> bool:
    """Whether ``text`` alone reads as an architecture (of ``space`` when given)."""
    try:
        resolve_architecture(text, space)
    except UserError:
        return False
    return True

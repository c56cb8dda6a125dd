"""Words for the lines naonet prints: counts with their nouns, lists in prose."""

from __future__ import annotations


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``count`` and ``noun``, plural unless one ('1 round', '2 rounds', '1,000 steps';
    ``plural`` where it is not noun + s: '2 processes')."""
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"


def joined(items: list[str]) -> str:
    """Items as prose: 'a', 'a and b', 'a, b and c'."""
    if len(items) < 2:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"

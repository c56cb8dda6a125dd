"""The lines naonet prints: where they go, counts with their nouns, lists in prose."""

from __future__ import annotations

from collections.abc import Callable


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``count`` and ``noun``, plural unless one ('1 round', '2 rounds', '1,000 steps';
    ``plural`` where it is not noun + s: '2 processes')."""
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"


def joined(items: list[str]) -> str:
    """Items as prose: 'a', 'a and b', 'a, b and c'."""
    if len(items) < 2:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


def print_line(text: str) -> None:
    """The default ``log`` of ``train`` and ``search``: one line to stdout, flushed at
    once (a run's output is often piped to a file that is read while it runs)."""
    print(text, flush=True)


def main_process_log(log: Callable[[str], None] | None, is_main: bool) -> Callable[[str], None]:
    """Where a run's lines go: ``log`` on the main process, nowhere on the others (every
    process runs the same code) or where ``log`` is None (the caller wants silence)."""
    return log if log is not None and is_main else _nowhere


def _nowhere(text: str) -> None:
    """A line no one asked for."""


def progress_bars_wanted(asked: bool) -> bool:
    """Whether to draw progress bars: where ``asked``, and stderr is a terminal or a
    notebook's output (a bar redrawn into a log file wrote hundreds of carriage-return
    lines: 27 KB for a 76-second search)."""
    import sys

    if not asked:
        return False
    if "ipykernel" in sys.modules:  # Jupyter: tqdm.auto draws a widget there
        return True
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())

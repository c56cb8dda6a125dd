"""Search spaces that installed packages offer under the ``naonet.spaces`` entry points.

The registry loads them on its first lookup, so every ``nao`` command (and every process
``torchrun`` starts) finds a package's spaces without a line of code. An entry point
names a module that registers its spaces when imported, a space, or a list of spaces.
One that fails to load is remembered, not raised: every other space still works, and
asking for a space it should have offered says why it is missing. Two offers of one
name are an error wherever that name is asked for: which one won would otherwise depend
on the order Python happens to list the packages in.
"""

from __future__ import annotations

import threading
import types

GROUP = "naonet.spaces"

_lock = threading.RLock()  # one thread loads; the others wait for the whole registry
_state = "unloaded"  # -> "loading" (a plugin's own lookups return at once) -> "loaded"
_loading: str | None = None  # the entry point being loaded, as entry_text writes it
_failures: dict[str, str] = {}  # entry point -> why it did not load
_offered_by: dict[str, str] = {}  # space name -> the entry point that registered it
_clashes: dict[str, str] = {}  # space name -> the error a lookup of it raises


def loaded() -> bool:
    """Whether every entry point has been loaded (read without the lock: once true it
    stays true)."""
    return _state == "loaded"


def load_space_plugins() -> None:
    """Load every entry point of the group, once per process."""
    global _state
    with _lock:
        if _state != "unloaded":  # loaded, or being loaded further up this thread's stack
            return
        _state = "loading"
        try:
            from importlib.metadata import entry_points

            for entry in entry_points(group=GROUP):
                _load(entry)
        finally:
            _state = "loaded"


def retry_failed() -> None:
    """Load the failed entry points again. One whose module looked a space up while a
    program imported it failed for that alone (its module was half-made): it loads now."""
    with _lock:
        if _state != "loaded" or not _failures:
            return
        from importlib.metadata import entry_points

        for entry in entry_points(group=GROUP):
            if _failures.pop(entry_text(entry), None) is not None:
                _load(entry)


def _load(entry) -> None:
    global _loading
    from naonet.spaces.protocol import register_space

    _loading = entry_text(entry)
    try:
        offered = entry.load()
        if not isinstance(offered, types.ModuleType):  # a module registered its own
            for space in offered if isinstance(offered, list | tuple) else [offered]:
                register_space(space)
    except Exception as error:  # noqa: BLE001 - another package's code: any error
        from naonet.errors import error_in_brief

        _failures[_loading] = error_in_brief(error)
    finally:
        _loading = None


def entry_text(entry) -> str:
    return f"{entry.name} = {entry.value}"


def note_registered(name: str) -> None:
    """Remember which entry point (if one is loading) registered the space ``name``."""
    if _loading is not None:
        _offered_by[name] = _loading


def note_clash(name: str) -> None:
    """A space named ``name`` is registered already and the loading entry point offers
    another. Offered by another entry point before it, every lookup of the name is
    refused from now on (which one won would depend on the order Python lists the
    packages in). One of naonet's own names stays naonet's: every default names one,
    and the offer that takes it is a load failure, named where a space is not found."""
    if _loading is None:
        return  # a program's own registration: refused where it is made
    first = _offered_by.get(name)
    if first is None:  # naonet's own space (registered as naonet.spaces is imported)
        return
    by = f"the entry point {first}"
    _clashes[name] = (f"the search space {name!r} is offered twice: by {by}, and by the "
                      f"{GROUP} entry point {_loading}; uninstall one of the packages, or "
                      "rename one of the spaces")


def clash(name: str) -> str | None:
    """The error for a lookup of ``name`` if two offers of it clashed, else None."""
    return _clashes.get(name)


def failures_text() -> str:
    """``; the ... entry point X did not load (why)`` for every failed one."""
    return "".join(f"; the {GROUP} entry point {entry} did not load ({why})"
                   for entry, why in _failures.items())

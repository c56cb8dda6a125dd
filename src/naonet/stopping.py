"""A stop that a signal asked for, raised again at the next step if it was lost.

The command line stops a run on Ctrl-C (SIGINT) and SIGTERM by raising an exception
from the signal handler, which Python runs between two bytecodes of the main thread.
When those bytecodes belong to a weakref or garbage-collector callback, the exception
is printed as "Exception ignored in ..." and dropped, and the run went on to its end
(seen once in nine stops of a search). So the handlers also record the stop here, and
the long loops (training and evaluation steps, scoring, controller epochs) call
:func:`raise_if_stopped`, which raises a recorded stop again. A library caller that
installs no handler records nothing, and the calls cost one global lookup.
"""

from __future__ import annotations

_requested: type[BaseException] | None = None


def request(kind: type[BaseException]) -> None:
    """Record a stop (``KeyboardInterrupt`` or a subclass) for :func:`raise_if_stopped`."""
    global _requested
    _requested = kind


def requested() -> type[BaseException] | None:
    """The recorded stop, if any (None: no signal asked for one)."""
    return _requested


def clear() -> None:
    """Forget a recorded stop (the command that was stopped has reported it)."""
    global _requested
    _requested = None


def raise_if_stopped() -> None:
    """Raise the recorded stop, if any: a signal handler's exception that was lost."""
    if _requested is not None:
        raise _requested

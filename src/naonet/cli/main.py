"""The ``nao`` command: a thin dispatcher over one module per subcommand.

Each subcommand module offers ``add_parser(subparsers)`` and ``run(args) -> int``.
A :class:`~naonet.errors.UserError` anywhere becomes one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import signal
import sys
import threading

from naonet import stopping  # no imports of its own: nothing to load in a signal handler
from naonet.launcher import launch_position, several_torchrun_processes, under_torchrun

SUBCOMMANDS = ["train", "eval", "predict", "export", "info", "convert", "search", "show",
               "bench-search", "correlate", "check-space"]
# those with work to share among torchrun's processes (a table search and a correlation of
# two files, which have none, refuse several processes themselves)
TORCHRUN_COMMANDS = ("train", "search", "correlate")


class _Parser(argparse.ArgumentParser):
    """argparse with exit status 2 and a one-line message for bad flags, naming the
    subcommand whose flags they were (``nao train: error: ... see 'nao train --help'``).
    A flag is its whole name: ``--epoch`` is no ``--epochs`` (a config file's ``epoch:`` is
    refused too, and an abbreviation that worked would break when a flag is added)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        if not said_by_the_first_process():
            sys.stderr.write(f"{self.prog}: error: {message} (see '{self.prog} --help')\n")
        sys.exit(2)


def _load(name: str):
    module_name = "naonet.cli." + name.replace("-", "_")
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name == module_name:
            return None  # subcommand not part of this build
        raise


class _Version(argparse.Action):
    """``nao --version``: the version and the source's git commit (looked up only then)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from naonet.revision import code_revision

        print(code_revision())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nao", description="NAO-V2: search, train and evaluate NAONets.")
    parser.add_argument("--version", action=_Version,
                        help="print naonet's version and source commit, then exit")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    parser.subcommand_parsers = subparsers.choices  # each one's error() names it
    for name in SUBCOMMANDS:
        module = _load(name)
        if module is not None:
            module.add_parser(subparsers)
    return parser


def describe_os_error(error: OSError) -> str:
    """The system's words for a failed file operation, and the path it failed on."""
    path = error.filename
    if isinstance(error, FileExistsError | NotADirectoryError) and path and \
            os.path.exists(path) and not os.path.isdir(path):
        return f"{path} is a file, not a folder"  # makedirs below a file says 'File exists'
    return f"{error.strerror or error}" + (f" ({path})" if path else "")


def one_line(text: str) -> str:
    """A message on one line (a parser's or an archive reader's may span several)."""
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's stop, ``kill``): handled as Ctrl-C is, so a run stops the
    same way and says that rerunning resumes it."""


def _stop(signum, frame) -> None:
    """Stop the command: Ctrl-C raises KeyboardInterrupt, SIGTERM Terminated. The stop is
    recorded too, raised again at the next step if this exception is lost
    (:mod:`naonet.stopping`)."""
    kind = Terminated if signum == signal.SIGTERM else KeyboardInterrupt
    stopping.request(kind)
    raise kind


def _stop_signals() -> dict[int, object]:
    """The signals the command stops on through :func:`_stop`, each with the handler it
    finds and gives back: those that still have Python's default (a parent may have
    chosen otherwise), on the main thread only (only it may set handlers), and SIGTERM
    not under torchrun (its agent stops the ranks; a rank blocked in a collective could
    not run a Python handler)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    defaults = {signal.SIGINT: signal.default_int_handler}
    if not under_torchrun():
        defaults[signal.SIGTERM] = signal.SIG_DFL
    return {number: default for number, default in defaults.items()
            if signal.getsignal(number) is default}


PR_SET_PDEATHSIG = 1  # Linux's prctl option (<linux/prctl.h>)


def _end_with_the_launcher() -> None:
    """Under torchrun, on Linux: have the system send this process SIGTERM when torchrun
    ends. torchrun starts each process in a session of its own, so a SIGKILL to torchrun
    or to its process group (a timeout, a job scheduler) left the processes training, and
    holding the run folder, until they finished; ended so, a rerun resumes at once."""
    if not under_torchrun() or not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
            return
    except (OSError, AttributeError):  # no C library to ask
        return
    if os.getppid() == 1:  # torchrun ended before the request: end as it would have made us
        os.kill(os.getpid(), signal.SIGTERM)


def _other_rank() -> bool:
    """Whether this process is a torchrun process other than rank 0."""
    return under_torchrun() and launch_position()[0] != 0


def _comes_from_the_stop(error: BaseException) -> bool:
    """Whether ``error``, raised after a stop was recorded, is that stop's doing: the stop
    itself, an error raised while it unwound (a KeyboardInterrupt in its context chain),
    or the DataLoader's "worker ... killed by signal" when the process group's signal
    ended the workers too. Any other error is reported as itself."""
    if stopping.requested() is None:
        return False
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt) or (
                isinstance(seen, RuntimeError) and "DataLoader worker" in str(seen)):
            return True
        seen = seen.__context__
    return False


def _dropping_lost_stops(hook):
    """``sys.unraisablehook`` as ``hook`` but silent for what a recorded stop caused: a
    signal's exception raised inside a weakref or garbage-collector callback ("Exception
    ignored in ... KeyboardInterrupt" above the stop's one line; the stop is not lost: the
    handler recorded it, and the next step, or the command's end, raises it again), and
    the loader's "worker killed by signal" raised in its ``__del__``."""
    def hook_dropping_lost_stops(unraisable) -> None:
        if not _comes_from_the_stop(unraisable.exc_value):
            hook(unraisable)
    return hook_dropping_lost_stops


def _rerun_hint(args: argparse.Namespace) -> str:
    """What rerunning a stopped command does, for the commands that keep a checkpoint
    (they set ``args.resumes``); the others start over, which needs no saying."""
    return "; rerun the same command to resume" if getattr(args, "resumes", False) else ""


def _released_flags_hint(command: str | None, unknown: list[str],
                         owner: argparse.ArgumentParser) -> str:
    """'; --child_epochs is the released train_search.py's flag: pass --supernet-epochs'
    for each unknown argument that is a released script's flag, else ''."""
    from naonet.compat.released_flags import released_flag_hint

    known = set(owner._option_string_actions)
    hints = [released_flag_hint(command or "", argument, known) for argument in unknown]
    hints = list(dict.fromkeys(hint for hint in hints if hint is not None))  # once each
    if not hints:
        return ""
    return f"; {'; '.join(hints)} (docs/search.md maps every released flag)"


def parse_command_line(argv: list[str]) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    """The parser and the parsed ``argv``; an unknown flag ends the process (exit 2) with a
    line from the parser it came after, naming that one's help."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    command = args.command = getattr(args, "command", None)
    if unknown:  # the parser they came after reports them, naming its own help
        first_unknown = argv.index(unknown[0]) if unknown[0] in argv else len(argv)
        after_command = command and first_unknown > argv.index(command)
        owner = parser.subcommand_parsers[command] if after_command else parser
        owner.error(f"unrecognized arguments: {' '.join(unknown)}"
                    + _released_flags_hint(command if after_command else None, unknown,
                                           owner))
    return parser, args


def main(argv: list[str] | None = None) -> int:
    from naonet.cli.options import refuse_torchrun
    from naonet.errors import UserError
    from naonet.run_folder import releasing_new_claims

    argv = sys.argv[1:] if argv is None else list(argv)
    parser, args = parse_command_line(argv)
    if not args.command:
        parser.print_help()
        return 2
    _end_with_the_launcher()
    handled = _stop_signals()
    for number in handled:
        signal.signal(number, _stop)
    unraisable_hook = sys.unraisablehook
    if handled:
        sys.unraisablehook = _dropping_lost_stops(unraisable_hook)
    try:
        with releasing_new_claims():  # a refused run leaves its folder as it found it
            if args.command not in TORCHRUN_COMMANDS:
                refuse_torchrun(f"nao {args.command}")
            status = int(args.handler(args) or 0)
        stop = stopping.requested()
        if stop is not None:  # lost where no later step raised it again
            return _report_stop(stop, args)
        # A command that ran under torchrun ends its process group on success (on any
        # backend; after a failure the launcher stops the ranks); nothing otherwise.
        from naonet.distributed import close_distributed

        close_distributed()
        return status
    except UserError as error:
        if not said_by_the_first_process():
            _last_line(f"nao {args.command}: error: {one_line(error)}")
        return 2
    except BrokenPipeError as error:
        if not _stdout_closed():  # another pipe or socket: an error like any other
            return _report_os_error(args.command, error)
        _silence_stdout()  # the reader of the output went away (nao info | head)
        return 128 + signal.SIGPIPE
    except (MemoryError, RuntimeError, OSError) as error:
        if _comes_from_the_stop(error):
            return _report_stop(stopping.requested(), args)
        shortage = describe_memory_shortage(error)
        if shortage is not None:
            hint = memory_hint(parser.subcommand_parsers[args.command])
            _last_line(f"nao {args.command}: error: {shortage}; {hint}{_rerun_hint(args)}")
            return 2
        if isinstance(error, OSError):  # an unusable path or a full disk: the system's words
            return _report_os_error(args.command, error)
        lost = describe_lost_process(error)
        if lost is not None:
            _last_line(f"nao {args.command}: error: {lost}{_rerun_hint(args)}")
            return 1
        raise
    except KeyboardInterrupt as stop:  # Terminated too
        return _report_stop(type(stop), args)
    finally:
        for number, default in handled.items():
            signal.signal(number, default)
        sys.unraisablehook = unraisable_hook
        stopping.clear()


def _report_stop(kind: type[BaseException], args: argparse.Namespace) -> int:
    """The line and exit status of a command stopped by SIGTERM (``Terminated``) or
    Ctrl-C (``KeyboardInterrupt``); under torchrun, rank 0 alone says it (each rank was
    stopped, and the line came once per process)."""
    terminated = issubclass(kind, Terminated)
    if not _other_rank():
        _last_line(f"nao: {'terminated' if terminated else 'interrupted'}{_rerun_hint(args)}")
    return 128 + signal.SIGTERM if terminated else 130


# How allocators say that memory ran out: PyTorch's CPU allocator ("can't allocate
# memory"), CUDA's and MPS's ("out of memory"; torch's OutOfMemoryError says it too),
# cuBLAS's and cuDNN's ("..._STATUS_ALLOC_FAILED"), the system's ENOMEM in shared memory
# ("Cannot allocate memory").
MEMORY_SHORTAGE_MARKERS = ("can't allocate memory", "cannot allocate memory", "out of memory",
                           "alloc_failed")


def describe_memory_shortage(error: BaseException) -> str | None:
    """One line for an allocation that failed (the line of the message that says so: a
    DataLoader worker's re-raise puts the worker's words first), or None when ``error``
    is no such failure."""
    if isinstance(error, OSError) and error.errno == errno.ENOMEM:
        return f"out of memory ({error.strerror or error})"
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    # the system's out-of-memory killer ends a process with SIGKILL; torch reports a
    # loader worker's end so
    killed = [line for line in lines if "is killed by signal: Killed" in line]
    if killed:
        return f"out of memory, most likely ({killed[0][:200]})"
    said = [line for line in lines
            if any(marker in line.lower() for marker in MEMORY_SHORTAGE_MARKERS)]
    if not said and not isinstance(error, MemoryError):
        return None
    return f"out of memory ({said[0][:200] if said else 'no details'})"


def said_by_the_first_process() -> bool:
    """Whether this process, one of several torchrun started, stops on an error before
    the processes have met, which the first process of its machine (local rank 0) prints:
    each read the same command line and the same files, so each stops on the same error,
    and one line says it (torchrun's own report follows, as after any failure); a machine
    of its own may lack a file the others have, so each machine's first says it. After
    they have met, every process says its own error: one alone may fail (its device)."""
    from naonet.launcher import launch_position

    if not several_torchrun_processes() or launch_position()[2] == 0:
        return False
    distributed = sys.modules.get("torch.distributed")
    return distributed is None or not distributed.is_initialized()


def describe_lost_process(error: BaseException) -> str | None:
    """Under torchrun with several processes: one line for a collective that failed
    because another process ended (killed, out of memory), which raised gloo's or NCCL's
    error in this one (a traceback of 30 lines); None for any other error."""
    if not several_torchrun_processes():
        return None
    from torch.distributed import DistError

    text = str(error)
    # gloo's transport errors are plain RuntimeErrors ("[.../gloo/transport/tcp/pair.cc]")
    if not (isinstance(error, DistError) or "/gloo/" in text):
        return None
    said = next((line.strip() for line in text.splitlines() if line.strip()), "no details")
    return (f"a step shared with the other processes failed, most likely because one of "
            f"them ended: on an error it printed above (fix that first), or killed, out of "
            f"memory ({type(error).__name__}: {said[:300]})")


def memory_hint(command_parser: argparse.ArgumentParser) -> str:
    """What shrinks a command's memory: the size flags it has."""
    flags = [flag for flag in ("--batch-size", "--eval-batch-size", "--image-size")
             if flag in command_parser._option_string_actions]
    if not flags:
        return "free memory (other programs, or other processes on the device) and rerun"
    return "pass a smaller " + " or ".join(flags)


def _last_line(text: str) -> None:
    """A stopped or failed command's last line on stderr, after closing the progress bars
    it left open, so that the line starts a line of its own (it followed the bar:
    '...loss=1.944]nao: interrupted')."""
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", ())):
        bar.close()
    sys.stderr.write(f"{text}\n")


def _report_os_error(command: str, error: OSError) -> int:
    _last_line(f"nao {command}: error: {one_line(describe_os_error(error))}; check the "
               "paths you passed and the free disk space")
    return 2


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader went away (poll reports an error on the
    write end of such a pipe)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll, or stdout is not a file
        return False


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that Python's flush at exit does not fail again on
    the closed pipe (and print a second error)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a file descriptor (a test's capture)
        pass


def run() -> None:
    """The ``nao`` program: :func:`main`, then the process ends with its status (skipping
    the interpreter's finalization after a gloo run: :func:`naonet.distributed.exit_process`)."""
    try:
        status = main()
    except KeyboardInterrupt:  # before main's own handling: while torch loads (a second)
        _last_line("nao: interrupted")
        # torch may be half imported: nothing more of it (an import would fail), and no
        # finalization (its half-registered parts can fail there too)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    # only a run that used naonet.distributed needs its exit (and it may be half imported)
    exit_process = getattr(sys.modules.get("naonet.distributed"), "exit_process", sys.exit)
    exit_process(status)


if __name__ == "__main__":
    run()

"""The ``nao`` command: a thin dispatcher over one module per subcommand.

Each subcommand module offers ``add_parser(subparsers)`` and ``run(args) -> int``.
A :class:`~naonet.errors.UserError` anywhere becomes one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# OpenMP busy-waiting makes torch many times slower when another process computes at the
# same time (data workers, a second run); set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

SUBCOMMANDS = ["train", "eval", "predict", "export", "info", "convert", "search", "show",
               "bench-search", "correlate"]


class _Parser(argparse.ArgumentParser):
    """argparse with exit status 2 and a one-line message for bad flags."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"nao: error: {message} (see 'nao --help')\n")
        sys.exit(2)


def _load(name: str):
    module_name = "naonet.cli." + name.replace("-", "_")
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name == module_name:
            return None  # subcommand not part of this build
        raise


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nao", description="NAO-V2: search, train and evaluate NAONets.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
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


def main(argv: list[str] | None = None) -> int:
    from naonet.errors import UserError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except UserError as error:
        sys.stderr.write(f"nao {args.command}: error: {error}\n")
        return 2
    except OSError as error:  # an unusable path or a full disk: the system's own words
        sys.stderr.write(f"nao {args.command}: error: {describe_os_error(error)}; "
                         "check the paths you passed and the free disk space\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("nao: interrupted; rerun the same command to resume\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""``nao check-space SPACE``: check that a search space keeps the protocol naonet's
searches, controller, supernet and training rely on (see docs/library.md, 'A space of
your own'), on a few random architectures and tiny networks on the CPU.

SPACE is a registered space's name (naonet's, or one an installed package offers under
the ``naonet.spaces`` entry points) or ``MODULE:NAME``, a space object (or a class made
without arguments) in a module importable from the current folder: check a space before
packaging it. Exit status 0 when no check fails, 1 when one does."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from naonet.cli.options import integer_flag
from naonet.errors import UserError, error_in_brief


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "check-space", help="check that a search space of your own keeps the protocol",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("space", help="a registered space's name, or MODULE:NAME")
    parser.add_argument("--samples", type=integer_flag, default=8,
                        help="random architectures each check runs on (default: 8)")
    parser.add_argument("--seed", type=integer_flag, default=0,
                        help="seed of the random architectures (default: 0)")
    parser.add_argument("--no-networks", action="store_true",
                        help="leave out the checks that build networks (milliseconds)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from naonet.spaces.conformance import check_space

    if args.samples < 1:
        raise UserError(f"--samples must be at least 1, got {args.samples}")
    report = check_space(load_space(args.space), samples=args.samples, seed=args.seed,
                         networks=not args.no_networks)
    print(report.text())
    return 0 if report.ok else 1


def load_space(text: str):
    """The space ``text`` names: a registered name, or ``MODULE:NAME`` imported from the
    current folder (a class is made without arguments)."""
    from naonet.spaces import get_space, space_names

    module_name, colon, attribute = text.rpartition(":") if ":" in text else (text, "", "")
    if not colon:
        try:
            return get_space(text)
        except UserError as error:
            raise UserError(f"{error}; or name a space of your own as MODULE:NAME (a module "
                            "importable from this folder)") from None
    if not module_name or not attribute:
        raise UserError(f"{text!r} is not MODULE:NAME; write it as mymodule:MY_SPACE (or a "
                        f"registered space's name: {', '.join(space_names())})")
    if module_name.endswith(".py"):
        raise UserError(f"{text!r} names a file; name its module: "
                        f"{module_name[:-3].replace('/', '.')}:{attribute}")
    module = import_from_here(module_name)
    try:
        space = getattr(module, attribute)
    except AttributeError:
        raise UserError(f"the module {module_name} has no {attribute!r}; name a space "
                        "object (or its class) it defines") from None
    if isinstance(space, type):
        try:
            space = space()
        except Exception as error:  # noqa: BLE001 - the user's class: any error
            raise UserError(f"{text} is a class that could not be made without arguments "
                            f"({error_in_brief(error)}); name an instance of it") from None
    return space


def import_from_here(module_name: str):
    """Import ``module_name`` with the current folder first on the path (as ``python -m``
    finds it); a module that fails to import is a UserError naming why."""
    here = str(Path.cwd())
    if here not in sys.path:
        sys.path.insert(0, here)  # stays: the module may import its neighbours later
    try:
        return importlib.import_module(module_name)
    except ImportError as error:
        if getattr(error, "name", None) == module_name:
            raise UserError(f"no module named {module_name!r} in {here} or the installed "
                            "packages; run nao check-space from the folder that holds "
                            f"{module_name.replace('.', '/')}.py, or install its package") \
                from None
        raise UserError(f"the module {module_name} did not import "
                        f"({error_in_brief(error)})") from None
    except UserError:
        raise
    except Exception as error:  # noqa: BLE001 - the user's module: any error
        raise UserError(f"the module {module_name} did not import "
                        f"({error_in_brief(error)})") from None

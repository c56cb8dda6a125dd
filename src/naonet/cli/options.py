"""Command-line flags generated from the config dataclasses, so every option of a config
is a flag with the same name (underscores become dashes)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import MISSING, fields
from pathlib import Path

from naonet.options import IntegerTooLarge, flag_name, whole_number


def integer_flag(text: str) -> int:
    """:func:`naonet.options.whole_number` as an argparse type: a number beyond 64 bits
    is named as such (argparse says only "invalid int value" for a ValueError)."""
    try:
        return whole_number(text)
    except IntegerTooLarge as error:
        raise argparse.ArgumentTypeError(str(error)) from None


integer_flag.__name__ = "int"  # argparse names the type in its error message

# Help of the options nao train and nao search share word for word.
SHARED_HELP = {
    "data": "data folder or .tar.gz archive",
    "download": "download CIFAR into --data when it is missing (needs the internet)",
    "image_size": "resize the images to this size (0: the data set's own: 224 px for "
                  "imagenet, else 32 px, at which class folders of photos of any size are "
                  "read)",
    "pipeline": "device (data set on the device, batched augmentation), loader or auto",
    "drop_path_exempts_pass_through": "never drop identity (and zero) branches; the "
                                      "released HEAD drops every branch",
    "device": "auto, cpu, cuda, cuda:N or mps",
}


def add_dataclass_flags(parser: argparse.ArgumentParser, config_class, help_texts: dict,
                        skip: tuple[str, ...] = ()) -> list[str]:
    """Add ``--field`` for every field of ``config_class``; returns the field names.

    Defaults are None so that only flags the user typed override presets and files.
    """
    names = []
    for field in fields(config_class):
        if field.name in skip:
            continue
        flag = flag_name(field.name)
        default = field.default if field.default is not MISSING else None
        text = help_texts.get(field.name, "")
        # a text may state its own default (one a preset decides); a hidden flag has none
        if "(default" not in text and text != argparse.SUPPRESS:
            text = f"{text} (default: {default})" if text else f"default: {default}"
        kind = field.type if isinstance(field.type, str) else field.type.__name__
        optional = kind.endswith(" | None")
        kind = kind.removesuffix(" | None")  # optional numbers: the flag's absence is None
        if optional:  # the value is cast with the config ('none' unsets a preset's value)
            parser.add_argument(flag, dest=field.name, default=None, help=text,
                                metavar=field.name.upper())
        elif kind == "bool":
            parser.add_argument(flag, dest=field.name, default=None,
                                action=argparse.BooleanOptionalAction, help=text)
        else:
            caster = {"int": integer_flag, "float": float}.get(kind, str)
            parser.add_argument(flag, dest=field.name, default=None, type=caster, help=text,
                                metavar=field.name.upper())
        names.append(field.name)
    return names


def add_model_file_flags(parser: argparse.ArgumentParser) -> None:
    """--dataset, --arch and --space of the commands that read a trained network's file
    (eval, predict, export)."""
    parser.add_argument("--dataset", default=None,
                        help="cifar10, cifar100, imagenet or folder: the data set it was "
                             "trained on (default: from the file, which must not say another)")
    parser.add_argument("--arch", default=None,
                        help="architecture of a released file that records none (a file "
                             "that records one must hold it)")
    parser.add_argument("--space", default=None, help="search space of --arch")


def check_output_file(source: str | list[str], output: str,
                      written_by_this: Callable[[Path], bool] | None = None,
                      kind: str = "") -> None:
    """A UserError, before any work, when the file to write cannot be or must not be: an
    empty name, a folder, a file in a folder this process cannot write to, a ``source``
    (an input of the command: writing it would replace what is being read), or an
    existing file that ``written_by_this`` says is not one this command writes (a run's
    checkpoint, a benchmark table: replacing it would destroy another run's work; it is
    described as ``kind``)."""
    import os

    from naonet.errors import UserError

    if not output.strip():
        raise UserError("the output file name is empty; pass the file to write")
    if os.path.isdir(output) or output.endswith(("/", os.sep)):
        raise UserError(f"{output} is a folder; pass the file to write, a name in it or "
                        "elsewhere")
    check_can_create_in(os.path.dirname(os.path.abspath(output)))
    if not os.path.exists(output):
        return
    for read in [source] if isinstance(source, str) else source:
        # samefile: the same file under another path, a link or a hard link too
        if os.path.exists(read) and os.path.samefile(output, read):
            raise UserError(f"{output} is the file being read; pass another output file "
                            "(writing it would replace what is read)")
    if written_by_this is not None and not written_by_this(Path(output)):
        raise UserError(f"{output} exists and is not {kind}; pass another output file (or "
                        "delete it first: this command replaces only its own files)")


def check_can_create_in(folder: str) -> None:
    """A UserError when a file cannot be made in ``folder``, or in the nearest of its
    parents that exists (where the folders the write needs will be made): one of them is
    a file or a broken link, or the system refuses (permissions; /proc, which root may
    "write" by its mode bits). Found by making an unnamed empty file there, as the write
    itself would make one, not by the mode bits alone."""
    import os
    import tempfile

    from naonet.errors import UserError

    existing = folder
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        what = "a broken link" if not os.path.exists(existing) else "a file, not a folder"
        raise UserError(f"{existing} is {what}; pass an output file elsewhere")
    try:
        # unnamed where the system allows (Linux): a kill leaves nothing in the folder
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise UserError(f"cannot write in the folder {existing} ({error.strerror or error}); "
                        "pass an output file elsewhere") from None


def json_with_keys(*keys: str) -> Callable[[Path], bool]:
    """Whether a file is a JSON object holding ``keys`` (a result file a command wrote)."""
    import json

    def written(path: Path) -> bool:
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return False
        return isinstance(values, dict) and all(key in values for key in keys)

    return written


def refuse_flags(args: argparse.Namespace, names, applies_to: str, note: str = "",
                 listed_by: str = "nao search --help lists each search's options",
                 shown_as: dict[str, str] | None = None) -> None:
    """A UserError naming the first of ``names`` given on the command line (flags are
    None unless typed), for an option this command would otherwise take and drop.
    ``shown_as``: the flag of a name (an argparse dest) that is not its flag's."""
    from naonet.errors import UserError

    for name in names:
        if getattr(args, name, None) is not None:
            flag = flag_name((shown_as or {}).get(name, name))
            raise UserError(f"{flag} applies only to {applies_to}; drop it{note} "
                            f"({listed_by})")


def refuse_torchrun(what: str) -> None:
    """A UserError when ``what`` (a command that runs in one process) was launched by
    torchrun with several processes: each would do all of it, printing and writing its
    results once per process."""
    from naonet.errors import UserError
    from naonet.launcher import launch_position, several_torchrun_processes

    if several_torchrun_processes():
        raise UserError(f"{what} runs in one process, and torchrun started "
                        f"{launch_position()[1]}, "
                        "each of which would do all of it; run it without torchrun")


def add_told_apart(parser, add_arguments) -> dict:
    """Add options with ``add_arguments(parser)``, each defaulting to None, so that one
    given is told from one left out (an option a run would not read is refused, not
    dropped); returns each option's own default, for :func:`fill_defaults`."""
    probe = argparse.ArgumentParser(add_help=False)
    add_arguments(probe)
    defaults = vars(probe.parse_args([]))
    add_arguments(parser)
    parser.set_defaults(**{name: None for name in defaults})
    return defaults


def fill_defaults(args: argparse.Namespace, defaults: dict) -> None:
    """Give each option of ``defaults`` that was left out (None) its default."""
    for name, default in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, default)


def add_print_config_flag(parser: argparse.ArgumentParser) -> None:
    """``--print-config``: show the resolved options (a preset's recipe with the file's
    and the flags' values over it) and stop, before any work."""
    parser.add_argument("--print-config", action="store_true", default=None,
                        help="print the resolved options as the run folder's config.yaml "
                             "would hold them (a preset's values included) and exit")


def print_config(config) -> int:
    """Print ``config`` as its run folder's config.yaml; the exit status."""
    from naonet.run_folder import run_config_text

    print(run_config_text(config.to_dict()), end="")
    return 0


def default_output(flags: dict, file_values: dict, preset: str | None, command: str) -> None:
    """Give ``flags`` the run folder ``runs/PRESET`` (``runs/COMMAND`` without a preset)
    where neither the flags nor the config file name one."""
    if flags.get("output") is None and "output" not in file_values:
        flags["output"] = f"runs/{preset or command}"

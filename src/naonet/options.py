"""Resolving a config dataclass from a preset, a YAML/JSON file and flags, in that order.

Shared by ``nao train`` (TrainConfig) and ``nao search`` (SearchConfig): keys are the
dataclass's field names (dashes may stand for underscores) and values are cast to the
field types, with one-line errors for anything else.
"""

from __future__ import annotations

import json
from dataclasses import fields, replace
from pathlib import Path

from naonet.errors import UserError


def whole_number(value) -> int:
    """An integer from an int, a whole float, or the text of either: sizes are often
    written ``1e6`` (a ValueError for anything else, as ``int`` gives)."""
    text = value
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            value = float(value)
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(value)
    if not -INTEGER_LIMIT - 1 <= value <= INTEGER_LIMIT:  # torch and NumPy overflowed
        raise IntegerTooLarge(f"{str(text)[:30]} is not an integer from -2^63 to 2^63 - 1")
    return int(value)


INTEGER_LIMIT = 2**63 - 1  # the largest integer torch and NumPy hold


class IntegerTooLarge(ValueError):
    """A number beyond :data:`INTEGER_LIMIT` (the command line shows its message:
    ``naonet.cli.options.integer_flag``)."""

# The largest side an image is read, resized or built at: a larger one overflowed
# torch's element count, with a traceback (and no network trains at it).
IMAGE_SIZE_LIMIT = 4096


whole_number.__name__ = "int"  # argparse names the type in its error message
_CASTS = {"int": whole_number, "float": float, "bool": bool, "str": str}
_KIND_NAMES = {"int": "an integer", "float": "a number", "bool": "true or false",
               "str": "a string"}


def field_names(config_class) -> set[str]:
    return {field.name for field in fields(config_class)}


def load_option_file(path: str | Path, config_class, command: str) -> dict:
    """Option overrides from a YAML or JSON file, checked against ``config_class``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path} does not exist; check --config")
    try:
        if path.suffix == ".json":
            values = json.loads(path.read_text())
        else:
            import yaml

            values = yaml.safe_load(path.read_text())
    except Exception as error:  # noqa: BLE001 - yaml and json raise different types
        raise UserError(f"config file {path} is not valid YAML/JSON ({error})") from None
    if not isinstance(values, dict):
        raise UserError(f"config file {path} must hold a mapping of option: value")
    not_names = [key for key in values if not isinstance(key, str)]
    if not_names:
        raise UserError(f"config file {path} has option {not_names[0]!r}, which is not a "
                        "name; write each option as name: value")
    values = {key.replace("-", "_"): value for key, value in values.items()}
    unknown = sorted(set(values) - field_names(config_class))
    if unknown:
        raise UserError(f"config file {path} has unknown option {unknown[0]!r}; "
                        f"{unknown_option_advice(unknown[0], config_class, command)}")
    return values


def unknown_option_advice(key: str, config_class, command: str) -> str:
    """What to do about an unknown option: the option it is probably a typo of, the
    command-line-only options (``preset``, ``config``) by their flags, else the help."""
    import difflib

    if key in ("preset", "config"):
        return f"--{key} is given on the command line only (nao {command} --{key} ...)"
    close = difflib.get_close_matches(key, sorted(field_names(config_class)), n=1)
    if close:
        return f"did you mean {close[0]!r}? (see 'nao {command} --help')"
    return f"see 'nao {command} --help'"


def resolve_options(config_class, presets: dict[str, dict], preset: str | None,
                    file_values: dict | None, flag_values: dict | None, command: str):
    """``config_class`` from a preset, then file values, then flags (None: not given)."""
    if preset is not None and preset not in presets:
        raise UserError(f"unknown preset {preset!r}; use one of: {', '.join(presets)}")
    values = dict(presets.get(preset, {}))
    values.update(file_values or {})
    values.update({key: value for key, value in (flag_values or {}).items()
                   if value is not None})
    return replace(config_class(), **coerce_options(config_class, values, command))


def means_none(value) -> bool:
    """Whether a flag or file value unsets an optional option: None, or 'none' in any case."""
    return value is None or str(value).lower() == "none"


def coerce_options(config_class, values: dict, command: str) -> dict:
    """Cast values (from YAML or flags) to the field types of ``config_class``."""
    types = {field.name: field.type for field in fields(config_class)}
    out = {}
    for key, value in values.items():
        if key not in types:
            raise UserError(f"unknown option {key!r}; "
                            f"{unknown_option_advice(key, config_class, command)}")
        kind = types[key] if isinstance(types[key], str) else types[key].__name__
        base = kind.removesuffix(" | None")  # an optional value: None or 'none' unsets it
        try:
            if base != kind and means_none(value):
                value = None
            elif base == "bool" and isinstance(value, str):
                value = value.lower() in ("1", "true", "yes", "on")
            elif base in ("int", "float") and isinstance(value, bool):
                raise ValueError(value)  # YAML's no/off/false would read as 0 (use none)
            elif base == "int" and isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            elif base in _CASTS:
                value = _CASTS[base](value)
        except IntegerTooLarge:
            raise UserError(f"{flag_name(key)} must be an integer from -2^63 to 2^63 - 1, "
                            f"got {str(value)[:30]}") from None
        except (TypeError, ValueError):
            wanted = _KIND_NAMES.get(base, base) + (" or none" if base != kind else "")
            raise UserError(f"option {key} must be {wanted}, got {value!r}") from None
        out[key] = value
    return out


def check_field_types(config, finite: bool = True, as_flags: bool = False) -> None:
    """Every int, float, bool or str field of the dataclass ``config`` (optional ones may
    be None) holds a value of its type, and every float is finite (unless ``finite`` is
    False: the config checks that itself, in its own words): a library caller's
    ``epochs=2.5`` or ``grad_clip=inf`` is refused when the config is made, not deep
    inside a run (the CLI's values are cast by :func:`coerce_options` first). A path
    where a string goes (``output=Path(...)``) is taken as its string. Errors name the
    field as ``Config.field``, or as its flag (``--field``) with ``as_flags``."""
    import math
    import os
    from numbers import Integral, Real

    import numpy as np

    for field in fields(config):
        kind = field.type if isinstance(field.type, str) else getattr(
            field.type, "__name__", str(field.type))  # a class, or a union such as int | None
        base = kind.removesuffix(" | None")
        value = getattr(config, field.name)
        if base not in _KIND_NAMES or (value is None and base != kind):
            continue
        if base == "str" and isinstance(value, os.PathLike):
            value = os.fspath(value)
            object.__setattr__(config, field.name, value)  # frozen configs too
        if base == "bool":
            fits = isinstance(value, bool | np.bool_)
        elif base == "str":
            fits = isinstance(value, str)
        else:  # a bool is an int to Python, never a number of epochs
            fits = (isinstance(value, Integral if base == "int" else Real)
                    and not isinstance(value, bool))
        name = flag_name(field.name) if as_flags else \
            f"{type(config).__name__}.{field.name}"
        if not fits:
            wanted = _KIND_NAMES[base] + (" or None" if base != kind else "")
            raise UserError(f"{name} must be {wanted}, got {value!r}")
        if finite and base == "float" and not math.isfinite(value):
            raise UserError(f"{name} must be a finite number, got {value}")


def check_values(config, at_least: dict[str, float], above: dict[str, float],
                 below: dict[str, float] | None = None) -> None:
    """The numeric checks every config makes, so the CLI, config files and the library
    all get them: every float finite (a NaN or inf trains to NaN without a word), and
    the fields named in ``at_least`` / ``above`` / ``below`` within their bounds, and a
    ``seed`` field a seed every generator takes (and every field of its type:
    :func:`check_field_types`)."""
    check_field_types(config, as_flags=True)
    names = {field.name for field in fields(config)}
    if "seed" in names:
        check_seed(config.seed, "--seed")
    if "image_size" in names:
        check_image_size(config.image_size)
    for name, bound in at_least.items():
        if getattr(config, name) < bound:
            raise UserError(f"{flag_name(name)} must be >= {bound:g}, got "
                            f"{getattr(config, name)}")
    for name, bound in above.items():
        if not getattr(config, name) > bound:
            raise UserError(f"{flag_name(name)} must be > {bound:g}, got "
                            f"{getattr(config, name)}")
    for name, bound in (below or {}).items():
        if not getattr(config, name) < bound:
            raise UserError(f"{flag_name(name)} must be < {bound:g}, got "
                            f"{getattr(config, name)}")


# Seeds up to 2**32 (numpy's legacy limit): the data order draws from a generator seeded
# with naonet.data.pipelines.epoch_seed(seed, epoch), the augmentation from one seeded with
# augment_seed (epoch_seed * 16 + ...), both within torch's 64 bits.
SEED_LIMIT = 2**32


def check_image_size(size: int) -> None:
    """A UserError for an ``--image-size`` above :data:`IMAGE_SIZE_LIMIT`."""
    if size > IMAGE_SIZE_LIMIT:
        raise UserError(f"--image-size must be at most {IMAGE_SIZE_LIMIT:,} pixels a side, "
                        f"got {size:,}")


def check_seed(seed: int, flag: str, count: int = 1) -> None:
    """``count`` seeds from ``seed`` on are seeds every random generator takes."""
    if not 0 <= seed <= SEED_LIMIT - count:
        raise UserError(f"{flag} must be an integer from 0 to {SEED_LIMIT - count:,}, "
                        f"got {seed}")


def flag_name(field_name: str) -> str:
    """The command-line flag of a config field: ``max_params`` -> ``--max-params``."""
    return "--" + field_name.replace("_", "-")


def flag_text(field_name: str, value, flag: str | None = None) -> str:
    """A config value as the flag that sets it, quoted for a shell where it must be:
    ``--lr 0.05``, ``--no-nesterov``, ``--max-params none``, ``--top-k 5,10``. ``flag``:
    the flag's name where it is not the field's (``archs`` for ``sample_size``)."""
    import shlex

    flag = flag or field_name
    if isinstance(value, bool):
        return flag_name(flag if value else f"no_{flag}")
    if isinstance(value, list | tuple):  # a list flag takes its items comma-separated
        value = ",".join(map(str, value))
    return f"{flag_name(flag)} {shlex.quote('none' if value is None else str(value))}"


DEVICE_HELP = "--device must be auto, cpu, cuda, cuda:N or mps"


def valid_device(device: str) -> bool:
    return device in ("auto", "cpu", "cuda", "mps") or (
        device.startswith("cuda:") and device[len("cuda:"):].isdigit())


def check_names(names, known, flag: str) -> None:
    """A non-empty list option whose every entry is one of ``known``, each once (a repeat
    ran or trained the same thing twice)."""
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        said = f"unknown {unknown[0]!r}" if unknown else "empty"
        raise UserError(f"{flag}: {said}; use a comma-separated list of: {', '.join(known)}")
    repeated = next((name for index, name in enumerate(names) if name in names[:index]), None)
    if repeated is not None:
        raise UserError(f"{flag}: {repeated!r} comes twice; list each once")

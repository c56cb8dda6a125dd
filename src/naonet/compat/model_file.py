"""Load a trained network from any checkpoint: naonet's own, a converted one, or a file
of the released code (converted on the fly)."""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from naonet.compat.released import (
    convert_state_dict,
    extract_state_dict,
    read_checkpoint_payload,
    refuse_search_state,
    released_arguments,
)
from naonet.errors import UserError
from naonet.spaces import Architecture, get_space, resolve_architecture
from naonet.text import joined
from naonet.training.checkpoint import restoring


@dataclass
class LoadedModel:
    """A network read from a model file, with what the file says of it."""
    network: nn.Module  # a NAONet, or the network of another space (NAS-Bench-201)
    architecture: Architecture | Hashable
    dataset: str | None  # the data set it was trained on, when the file says
    released: bool  # whether the file came from the released code
    classes: list[str] | None = None  # class names by output index, when known
    image_size: int = 0  # the size it was trained at (0: the data set's own)
    training: str | None = None  # how far a nao train checkpoint had trained, in words


def trained_size(loaded: LoadedModel, dataset: str) -> int:
    """The side of the images ``loaded``'s network was trained at: its record, else the
    own size of ``dataset`` (the data set it is read as)."""
    from naonet.data.registry import get_dataset_spec

    return loaded.image_size or get_dataset_spec(dataset).image_size


def load_model(path: str | Path, arch=None, space: str | None = None,
               **network_overrides) -> LoadedModel:
    """Build the network a checkpoint describes and load its weights.

    naonet checkpoints carry their architecture and network config. A released file
    (or a plain state_dict) takes its architecture from its saved arguments, else from
    ``arch``, and its network config is read off the weights by the architecture's space
    (``network_overrides`` win). ``arch`` (text or value): the architecture the caller
    expects; a file that records another is refused, as loading it would mislabel the
    network (and weightless operations such as pooling would load without complaint).
    """
    payload = read_checkpoint_payload(path)
    state_dict = extract_state_dict(payload, path)
    is_ours = is_naonet_model_file(payload)
    if is_ours:  # a network of any space: the file names its architecture and config
        with restoring(Path(path), "pass a whole naonet checkpoint"):
            architecture = resolve_architecture(str(payload["arch"]), space)
            overrides = {k: v for k, v in network_overrides.items() if v is not None}
            check_overrides_fit(path, payload["network"], overrides)
            values = {**payload["network"], **overrides}
            config = architecture.space.network_config_from_dict(values)
            training = payload.get("config") or {}
            dataset = training.get("dataset")
            image_size = int(training.get("image_size") or 0)
            classes = payload.get("classes")
            progress = training_progress(payload)
    else:  # a released file or a bare state_dict: the config is read off the weights
        check_network_weights(state_dict, path)
        saved = released_arguments(payload)
        recorded = saved.get("arch")
        space = space or saved.get("search_space")
        if not (recorded or arch):
            raise UserError(f"{path} does not record its architecture; give it with --arch "
                            "(nao eval, predict, export and convert: a name such as "
                            "naonet-v2, or the architecture's text form in any space; in "
                            "Python, arch=)")
        architecture = (resolve_architecture(str(recorded), space) if recorded
                        else asked_architecture(arch, space))
        config = architecture.space.network_config_from_weights(state_dict,
                                                                **network_overrides)
        dataset, image_size, classes = saved.get("dataset"), 0, None
        progress = released_progress(payload, saved)
    if arch is not None and (is_ours or recorded):
        check_asked_architecture(path, architecture, arch, space)
    network = architecture.space.build_network(architecture, config)
    if isinstance(architecture, Architecture):  # NAONet names: the released ones renamed
        state_dict = convert_state_dict(state_dict, network.state_dict())
    try:
        network.load_state_dict(state_dict)
    except RuntimeError as error:  # another space's network: its own names, checked here
        raise UserError(f"{path} does not fit the {architecture.space.name} network of "
                        f"{config.describe()} ({load_error_summary(error)}); check the "
                        "architecture and the network options") from None
    classes = known_classes(classes, dataset, config.num_classes)
    return LoadedModel(network, architecture, dataset, released=not is_ours, classes=classes,
                       image_size=image_size, training=progress)


def training_progress(payload: dict) -> str | None:
    """'epoch 3 of 600, test top-1 12.00 %, by naonet 0.1.0 git abc123' for a nao train
    checkpoint (what it records of these, a validation top-1 too); None for a file that
    records no epoch."""
    if "epoch" not in payload:
        return None
    config = payload.get("config") or {}
    epochs = config.get("epochs")
    parts = [f"epoch {payload['epoch']}" + (f" of {epochs}" if epochs else "")]
    record = payload.get("record") or {}
    subset = config.get("test_subset")  # the figure is of these test images alone,
    # unless the subset asked for held the whole set (fewer images were evaluated)
    evaluated = record.get("test_images")
    of_subset = (f" (of {subset:,} test images: --test-subset)"
                 if subset and evaluated in (None, subset) else "")
    for key, label, said in (("test_top1", "test top-1", of_subset),
                             ("valid_top1", "valid top-1", "")):
        if isinstance(record.get(key), float):
            parts.append(f"{label} {100 * record[key]:.2f} %{said}")
    if payload.get("revision"):
        parts.append(f"by {payload['revision']}")
    return ", ".join(parts)


def released_progress(payload: object, saved: dict) -> str | None:
    """'epoch 600 of 600, best test top-1 97.43 % (the released code's record)' for a
    checkpoint the released training saved (``utils.save``: epoch and best_acc_top1, a
    percent, chosen on the test set); None for a file that records no epoch."""
    if not isinstance(payload, Mapping) or not _is_number(payload.get("epoch")):
        return None
    epochs = saved.get("epochs")
    text = f"epoch {int(payload['epoch'])}" + (f" of {epochs}" if _is_number(epochs) else "")
    if _is_number(payload.get("best_acc_top1")):
        text += f", best test top-1 {float(payload['best_acc_top1']):.2f} %"
    return text + " (the released code's record)"


def _is_number(value) -> bool:
    """An int, a float or a one-element tensor (the released code saved tensors too)."""
    if isinstance(value, torch.Tensor):
        return value.numel() == 1
    return isinstance(value, int | float) and not isinstance(value, bool)


# Network config fields that shape the weights: a file's own value is the only one that
# loads (drop rates and the like may be changed).
SHAPING_FIELDS = ("channels", "layers", "cells_per_stage", "stages", "num_classes",
                  "skeleton", "aux_head")


def check_overrides_fit(path, recorded: dict, overrides: dict) -> None:
    """A UserError naming every override of a weight-shaping field that contradicts the
    network config a naonet file records (its weights would not load; the error blamed
    the architecture)."""
    wrong = [name for name in SHAPING_FIELDS if name in overrides and name in recorded
             and overrides[name] != recorded[name]]
    if wrong:
        held = ", ".join(f"{name}={recorded[name]!r}" for name in wrong)
        given = ", ".join(f"{overrides[name]!r}" for name in wrong)
        raise UserError(f"{path} holds a network of {held}, not {given}; leave "
                        f"{joined(wrong)} out (the file's network config is used)")


def check_network_weights(state_dict: dict, path) -> None:
    """A UserError unless the weights start with a network's stem (every network of every
    space has one): a controller's or another model's weights would otherwise be asked
    for an architecture, then fail on their shapes."""
    tops = sorted({key.split(".")[0] for key in state_dict})  # wrappers' prefixes gone
    if not {"stem", "stem0", "stem1"} & set(tops):
        named = ", ".join(tops[:4]) + (", ..." if len(tops) > 4 else "")
        raise UserError(f"{path} holds no network's weights (no stem among {named}); pass "
                        "a network checkpoint: nao train's last.pt or best.pt, or a "
                        "released model file")


def asked_architecture(arch, space: str | None):
    """``arch`` (a name, a text form or an architecture value) as an architecture of
    ``space`` (any space when None)."""
    if isinstance(arch, str):
        return resolve_architecture(arch, space)
    arch_space = getattr(arch, "space", None)
    if arch_space is None:
        raise UserError("the architecture must be a name, a text form or an architecture, "
                        f"got an object of type {type(arch).__name__}")
    return get_space(space or arch_space).as_architecture(arch, "the space asked for")


def check_asked_architecture(path, recorded, arch, space: str | None) -> None:
    """A UserError if the file holds another architecture than ``arch``, which is read
    in ``space``, else in the recorded one's (a bare integer string of the middle space
    names the file's, not the default space's), else in its own (a prefixed form)."""
    try:
        asked = asked_architecture(arch, space or recorded.space.name)
    except UserError:
        if space is not None:
            raise
        asked = asked_architecture(arch, None)
    if asked != recorded:
        raise UserError(f"{path} holds {recorded.to_qualified_string()}, not "
                        f"{asked.to_qualified_string()}; leave the architecture out (--arch; "
                        "in Python, None) to take the file's, or load another file")


def load_error_summary(error: RuntimeError) -> str:
    """PyTorch's load_state_dict error in a few words: how many weights are missing,
    unexpected or of another shape, with the first of each."""
    markers = {"missing": "Missing key(s)", "unexpected": "Unexpected key(s)",
               "of another shape": "size mismatch for"}
    names: dict[str, list[str]] = {}
    for line in map(str.strip, str(error).splitlines()):
        for label, marker in markers.items():
            if line.startswith(marker):  # a list of quoted keys, or one key and its shapes
                names.setdefault(label, []).extend(
                    re.findall(r'"([^"]+)"', line) if '"' in line
                    else [line[len(marker):].split(":", 1)[0].strip()])
    if not names:
        return str(error).splitlines()[0][:200]
    return "; ".join(f"{len(keys)} weight{'' if len(keys) == 1 else 's'} {label}, such as "
                     f"{keys[0]}" for label, keys in names.items())


def names_a_file(text: str) -> bool:
    """Whether ``text`` is the path of a file (an architecture's readable form can be
    longer than a path may be)."""
    try:
        return Path(text).is_file()
    except OSError:
        return False


def is_naonet_model_file(payload: object) -> bool:
    """Whether a checkpoint's contents are naonet's own (they name the architecture and
    the network config)."""
    return isinstance(payload, dict) and "network" in payload and "arch" in payload


def recorded_architecture(path: str | Path) -> tuple[str, str | None]:
    """(architecture text, space) a checkpoint records: naonet's own file, or a released
    file's saved arguments (read without running pickled code)."""
    payload = read_checkpoint_payload(path)
    if is_naonet_model_file(payload):
        return str(payload["arch"]), None  # the qualified form names its space
    refuse_search_state(payload, path)
    saved = released_arguments(payload)
    if not saved.get("arch"):
        raise UserError(f"{path} does not record an architecture; pass the architecture "
                        "itself")
    return str(saved["arch"]), saved.get("search_space")


def known_classes(stored, dataset: str | None, num_classes: int) -> list[str] | None:
    """The class names a file stores, else those its data set fixes (CIFAR-10)."""
    from naonet.data.registry import DATASETS

    if isinstance(stored, list | tuple) and len(stored) == num_classes:
        return [str(name) for name in stored]
    fixed = DATASETS[dataset].classes if dataset in DATASETS else ()
    return list(fixed) if len(fixed) == num_classes else None


def model_file_payload(loaded: LoadedModel, dataset: str | None) -> dict:
    """What ``nao convert`` writes: weights plus what is needed to rebuild the network."""
    return {"format": 1, "model": loaded.network.state_dict(),
            "network": loaded.network.config.to_dict(),
            "arch": loaded.architecture.to_qualified_string(),
            "config": training_record(dataset, loaded.image_size),
            "classes": loaded.classes or known_classes(None, dataset,
                                                      loaded.network.config.num_classes)}


def training_record(dataset: str | None, image_size: int) -> dict:
    """The part of a training config a model file keeps: the data set and the image size
    it was trained at (what evaluation, prediction and export preprocess for)."""
    record = {"dataset": dataset} if dataset else {}
    return {**record, "image_size": image_size} if image_size else record

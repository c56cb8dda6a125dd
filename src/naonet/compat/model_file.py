"""Load a trained network from any checkpoint: naonet's own, a converted one, or a file
of the released code (converted on the fly)."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from naonet.compat.released import (
    convert_state_dict,
    extract_state_dict,
    infer_network_config,
    read_checkpoint_payload,
    refuse_search_state,
    released_arguments,
)
from naonet.errors import UserError
from naonet.spaces import Architecture, require_cell_architecture, resolve_architecture
from naonet.training.checkpoint import restoring


@dataclass
class LoadedModel:
    network: nn.Module  # a NAONet, or the network of another space (NAS-Bench-201)
    architecture: Architecture | Hashable
    dataset: str | None  # the data set it was trained on, when the file says
    released: bool  # whether the file came from the released code
    classes: list[str] | None = None  # class names by output index, when known
    image_size: int = 0  # the size it was trained at (0: the data set's own)


def load_model(path: str | Path, arch: str | None = None, space: str | None = None,
               unrecorded_arch: str | None = None, **network_overrides) -> LoadedModel:
    """Build the network a checkpoint describes and load its weights.

    naonet checkpoints carry their architecture and network config. For released files
    the architecture comes from ``arch``, the file's saved arguments or
    ``unrecorded_arch`` (in that order), and the network config is read off the tensor
    shapes (``network_overrides`` win).
    """
    payload = read_checkpoint_payload(path)
    state_dict = extract_state_dict(payload, path)
    is_ours = is_naonet_model_file(payload)
    if is_ours:  # a network of any space: the file names its architecture and config
        with restoring(Path(path), "pass a whole naonet checkpoint"):
            architecture = resolve_architecture(arch or str(payload["arch"]), space)
            values = {**payload["network"],
                      **{k: v for k, v in network_overrides.items() if v is not None}}
            config = architecture.space.network_config_from_dict(values)
            training = payload.get("config") or {}
            dataset = training.get("dataset")
            image_size = int(training.get("image_size") or 0)
            classes = payload.get("classes")
    else:
        saved = released_arguments(payload)
        arch_text = arch or saved.get("arch") or unrecorded_arch
        if not arch_text:
            raise UserError(f"{path} does not record its architecture; pass --arch (for "
                            "example --arch naonet-v2; in Python, the architecture)")
        architecture = require_cell_architecture(resolve_architecture(
            str(arch_text), space or saved.get("search_space")), "a released checkpoint")
        config = infer_network_config(state_dict, **network_overrides)
        dataset, image_size, classes = saved.get("dataset"), 0, None
    network = architecture.space.build_network(architecture, config)
    if isinstance(architecture, Architecture):  # NAONet names: the released ones renamed
        state_dict = convert_state_dict(state_dict, network.state_dict())
    try:
        network.load_state_dict(state_dict)
    except RuntimeError as error:  # another space's network: its own names, checked here
        reason = str(error).splitlines()[0]
        raise UserError(f"{path} does not fit its {architecture.space.name} network "
                        f"({reason}); check --arch and the network options") from None
    classes = known_classes(classes, dataset, config.num_classes)
    return LoadedModel(network, architecture, dataset, released=not is_ours, classes=classes,
                       image_size=image_size)


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
            "config": {"dataset": dataset} if dataset else {},
            "classes": loaded.classes or known_classes(None, dataset,
                                                      loaded.network.config.num_classes)}

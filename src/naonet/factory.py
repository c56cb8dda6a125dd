"""``create_model``: a NAONet by published name or architecture, with weights from a
naonet or released checkpoint, in one call (in the spirit of timm's ``create_model``)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from naonet.errors import UserError
from naonet.models import NAONet, NetworkConfig, build_network

# The published configurations are the training presets of the same names.
PUBLISHED_MODELS = ("naonet-v2-cifar10", "naonet-v2-imagenet")


def published_config(name: str) -> tuple[str, dict]:
    """(architecture, NetworkConfig fields) of a published configuration."""
    from naonet.data.registry import DATASETS
    from naonet.training.config import PRESETS

    preset = PRESETS[name]
    spec = DATASETS[preset["dataset"]]
    network_fields = {field.name for field in fields(NetworkConfig)}
    values = {key: value for key, value in preset.items() if key in network_fields}
    return preset["arch"], {**values, "skeleton": spec.skeleton,
                            "num_classes": spec.num_classes}


def create_model(name_or_arch: str, checkpoint: str | Path | None = None, *,
                 space: str | None = None, **config) -> NAONet:
    """A NAONet, ready to use.

    ``name_or_arch``: a published configuration (``naonet-v2-cifar10``: C 36, N 6, aux
    head, 10 classes; ``naonet-v2-imagenet``: C 52, N 4, 1,000 classes) or any
    architecture (a name such as ``naonet-v2``, or a cell string of ``space``).
    ``checkpoint``: a naonet file (``nao train`` / ``nao convert``) or a released NAO-V2
    file; its weights are loaded and its recorded network config used, and the
    architecture it holds must be the one asked for. ``config``: NetworkConfig fields
    (``channels``, ``layers``, ``num_classes``, ``aux_head``, ``skeleton``, drop rates)
    that override the published or default values.
    """
    from naonet.spaces import require_cell_architecture, resolve_architecture

    unknown = sorted(set(config) - {field.name for field in fields(NetworkConfig)})
    if unknown:
        raise UserError(f"unknown network option(s) {', '.join(unknown)}; use NetworkConfig "
                        "fields (channels, layers, num_classes, aux_head, skeleton, ...)")
    if name_or_arch in PUBLISHED_MODELS:
        arch_text, base = published_config(name_or_arch)
    else:
        arch_text, base = name_or_arch, {}
    architecture = require_cell_architecture(resolve_architecture(arch_text, space),
                                             "create_model")
    if checkpoint is None:
        return build_network(architecture, NetworkConfig(**{**base, **config}))
    from naonet.compat.model_file import load_model

    loaded = load_model(checkpoint, space=space, unrecorded_arch=arch_text, **config)
    if loaded.architecture != architecture:
        raise UserError(f"{checkpoint} holds {loaded.architecture.to_qualified_string()}, not "
                        f"{name_or_arch}; pass that architecture (or no checkpoint)")
    return loaded.network

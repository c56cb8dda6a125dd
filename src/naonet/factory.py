"""``create_model``: a network by published name, architecture or checkpoint (naonet's
own of any space, or a released one), in one call (in the spirit of timm's
``create_model``)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from torch import nn

from naonet.errors import UserError
from naonet.models import NetworkConfig
from naonet.text import joined

# The published configurations are the training presets of the same names.
PUBLISHED_MODELS = ("naonet-v2-cifar10", "naonet-v2-imagenet")


def published_config(name: str) -> tuple[str, dict, str]:
    """(architecture, NetworkConfig fields, data set) of a published configuration."""
    from naonet.data.registry import DATASETS
    from naonet.training.config import PRESETS

    preset = PRESETS[name]
    spec = DATASETS[preset["dataset"]]
    network_fields = {field.name for field in fields(NetworkConfig)}
    values = {key: value for key, value in preset.items() if key in network_fields}
    return preset["arch"], {**values, "skeleton": spec.skeleton,
                            "num_classes": spec.num_classes}, preset["dataset"]


def create_model(name_or_arch: str | None = None, checkpoint: str | Path | None = None, *,
                 space: str | None = None, **config) -> nn.Module:
    """A network of any search space, ready to use.

    ``name_or_arch``: a published configuration (``naonet-v2-cifar10``: C 36, N 6, aux
    head, 10 classes; ``naonet-v2-imagenet``: C 52, N 4, 1,000 classes) or any
    architecture (a name such as ``naonet-v2``, or the text form of an architecture of
    any space, a NAS-Bench-201 cell included); it may be left out when a checkpoint is
    given. ``checkpoint``: a naonet file (``nao train`` / ``nao convert``, any space) or a
    released NAO-V2 file; its weights are loaded and its recorded network config used,
    and an architecture asked for must be the one it holds. ``config``: fields of the
    space's network config that override the published or default values
    (``NetworkConfig``: ``channels``, ``layers``, ``num_classes``, ``aux_head``,
    ``skeleton``, drop rates; ``NB201NetworkConfig``: ``channels``, ``cells_per_stage``,
    ``num_classes``).

    The network's ``classes`` attribute names its outputs by index: the class names a
    checkpoint records (or its data set's), a published configuration's data set's, else
    ``None``. ``dataset`` and ``image_size`` say what it was trained on (the names
    ``prepare_image(file, net.dataset, net.image_size)`` takes): a checkpoint's record, a
    published configuration's data set, else None; ``image_size`` 0 is the data set's own
    size. A published configuration given another skeleton or number of classes is
    another network: its ``dataset`` and ``classes`` are None.
    """
    from naonet.compat.model_file import known_classes, load_model, names_a_file

    if name_or_arch is None and checkpoint is None:
        raise UserError("create_model needs an architecture (a published name such as "
                        "naonet-v2-cifar10, an architecture name or string) or a checkpoint")
    if isinstance(name_or_arch, str) and names_a_file(name_or_arch):
        raise UserError(f"{name_or_arch!r} is a file, not an architecture; pass it as "
                        f"create_model(checkpoint={name_or_arch!r})")
    base, dataset, published = {}, None, None
    if isinstance(name_or_arch, str) and name_or_arch in PUBLISHED_MODELS:
        published = name_or_arch
        name_or_arch, base, dataset = published_config(name_or_arch)
        if checkpoint is None and any(config.get(key, base[key]) != base[key]
                                      for key in ("skeleton", "num_classes")):
            dataset = None  # e.g. an ImageNet stem: CIFAR's 32-px input would be wrong
    architecture = (None if name_or_arch is None
                    else _asked_architecture(name_or_arch, space))
    if checkpoint is None:
        network_config = architecture.space.network_config_from_dict({**base, **config})
        network = architecture.space.build_network(architecture, network_config)
        network.classes = known_classes(None, dataset, network_config.num_classes)
        network.dataset, network.image_size = dataset, 0
        return network
    loaded = load_model(checkpoint, arch=architecture, space=space, **config)
    if published is not None:
        check_published_fit(published, loaded, {**base, **config}, dataset, checkpoint)
    # a file that records no class names takes the published configuration's data set's
    loaded.network.classes = loaded.classes or known_classes(
        None, dataset, loaded.network.config.num_classes)
    loaded.network.dataset = loaded.dataset or dataset
    loaded.network.image_size = loaded.image_size
    return loaded.network


def _asked_architecture(name_or_arch, space):
    """The architecture ``create_model`` is asked for; an unknown name's error also lists
    the published configurations, which only ``create_model`` takes."""
    from naonet.compat.model_file import asked_architecture

    try:
        return asked_architecture(name_or_arch, space)
    except UserError as error:
        if not str(error).startswith("unknown architecture name"):
            raise
        raise UserError(f"{error}; create_model also takes the published configurations "
                        f"{joined(list(PUBLISHED_MODELS))}") from None


def check_published_fit(name: str, loaded, expected: dict, dataset: str, checkpoint) -> None:
    """A UserError when a checkpoint loaded under a published name is not that network:
    the data set it records, its skeleton (CIFAR or ImageNet stem) or its number of
    classes is another (``expected``: the name's network fields, the caller's overrides
    applied)."""
    config = loaded.network.config
    differences = [text.format(held, wanted) for text, held, wanted in (
        ("trained on {} (not {})", loaded.dataset, dataset),
        ("the {} stem (not {}'s)", getattr(config, "skeleton", None), expected["skeleton"]),
        ("{} classes (not {})", config.num_classes, expected["num_classes"]))
        if held is not None and held != wanted]
    if differences:
        raise UserError(f"{checkpoint} is not a {name} network: {', '.join(differences)}; "
                        "load it by its architecture (create_model(checkpoint=...), which "
                        "takes the file's), or pass the published name that fits")

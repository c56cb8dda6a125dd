"""Compatibility with the authors' released NAO-V2 code: state_dict key conversion and
loading of released checkpoint files.

The released code names parameters after its own module layout (for example
``cells.0.ops.0.x_op.op.1.weight``); naonet keeps its own names. Conversion is a pure
renaming, checked against the network it is loaded into: every key must land on a
parameter or buffer of the same shape, with none left over on either side.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

from naonet.compat.renaming import KeyRenamer, without_wrappers
from naonet.errors import UserError
from naonet.training.checkpoint import require_checkpoint_file, torch_load_quietly

# (released pattern, naonet replacement), applied in order to every key.
NETWORK_KEYS = KeyRenamer([
    (r"^stem\.0\.", "stem.conv."),
    (r"^stem\.1\.", "stem.bn."),
    (r"^stem0\.0\.", "stem0.conv1."),
    (r"^stem0\.1\.", "stem0.bn1."),
    (r"^stem0\.3\.", "stem0.conv2."),
    (r"^stem0\.4\.", "stem0.bn2."),
    (r"^stem1\.1\.", "stem1.conv."),
    (r"^stem1\.2\.", "stem1.bn."),
    (r"^auxiliary_head\.", "aux_head."),
    (r"\.maybe_calibrate_size\.preprocess_x\.", ".calibrate.preprocess0."),
    (r"\.maybe_calibrate_size\.preprocess_y\.", ".calibrate.preprocess1."),
    (r"\.ops\.(\d+)\.x_op\.", r".nodes.\1.0.op."),
    (r"\.ops\.(\d+)\.y_op\.", r".nodes.\1.1.op."),
    (r"\.final_combine\.ops\.(\d+)\.", r".output_reducers.\1."),
    # Inside an operation: SepConv / DilSepConv sequential indices, FactorizedReduce paths.
    (r"\.op\.op\.1\.", ".op.depthwise1."),
    (r"\.op\.op\.2\.", ".op.pointwise1."),
    (r"\.op\.op\.3\.", ".op.bn1."),
    (r"\.op\.op\.5\.", ".op.depthwise2."),
    (r"\.op\.op\.6\.", ".op.pointwise2."),
    (r"\.op\.op\.7\.", ".op.bn2."),
    (r"\.path1\.1\.", ".conv1."),
    (r"\.path2\.1\.", ".conv2."),
], what="checkpoint",
    hint="check the architecture (--arch) and that the file holds a network of it")


def convert_key(key: str) -> str:
    """The naonet name of a released parameter or buffer name."""
    return NETWORK_KEYS.convert_key(key)


def convert_state_dict(released: Mapping[str, torch.Tensor],
                       target: Mapping[str, torch.Tensor] | None = None
                       ) -> dict[str, torch.Tensor]:
    """Rename a released network state_dict to naonet names; with ``target`` (our
    model's state_dict) a UserError lists the first mismatches."""
    return NETWORK_KEYS.convert_state_dict(released, target)


def load_released_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The model state_dict of a released checkpoint file (released or naonet naming)."""
    return extract_state_dict(read_checkpoint_payload(path), path)


def read_checkpoint_payload(path: str | Path) -> object:
    """Everything a checkpoint file holds, read without running pickled code.

    Released files hold ``{'model': state_dict, 'args': argparse.Namespace, ...}``. They
    are read with ``weights_only=True``: no pickled code runs. Namespace objects are not
    on torch's allow-list, so where they make the safe load fail, the file is read by a
    restricted unpickler that accepts tensors and plain containers and turns every
    other class into an inert placeholder (nothing is imported or executed).
    """
    path = Path(path)
    require_checkpoint_file(path)
    try:
        payload = torch_load_quietly(path)
    except UserError:  # a file that is no checkpoint at all, named for what it is
        raise
    except Exception:  # noqa: BLE001 - any failure falls back to the inert reader
        payload = _load_with_placeholders(path)
    return payload


def released_arguments(payload: object) -> dict:
    """The training arguments saved beside a released model (``args``), as a dict;
    empty when absent. They are read as data: the Namespace class is never built.

    The reference fixtures (the released networks saved by the fixtures' generator) keep
    them at the top level instead: an architecture string ``arch`` beside a ``config``
    dict. That form is read only when ``arch`` is an architecture naonet knows, since
    other projects' checkpoints (timm's, torchvision's examples') name their own
    ``arch`` there."""
    if not isinstance(payload, Mapping):
        return {}
    args = payload.get("args")
    state = getattr(args, "state", None)
    if isinstance(state, Mapping):
        return dict(state)
    if isinstance(args, Mapping):
        return dict(args)
    config = payload.get("config")
    if not isinstance(config, Mapping) or not isinstance(payload.get("arch"), str):
        return {}
    described = {key: config[key] for key in ("dataset", "search_space")
                 if isinstance(config.get(key), str)}
    return ({**described, "arch": payload["arch"]}
            if names_an_architecture(payload["arch"], described.get("search_space")) else {})


def names_an_architecture(text: str, space: str | None) -> bool:
    """Whether ``text`` is an architecture of ``space`` (any space when None)."""
    from naonet.spaces import resolve_architecture

    try:
        resolve_architecture(text, space)
    except UserError:
        return False
    return True


def infer_network_config(state_dict: Mapping[str, torch.Tensor], **overrides):
    """The NetworkConfig a released (or converted) state_dict was made with, read off
    its tensor shapes: skeleton, C, N, classes and whether it has an aux head."""
    from naonet.models import NetworkConfig
    from naonet.models.networks import STEM_MULTIPLIER, layers_of
    from naonet.spaces.protocol import config_from_fields

    converted = {convert_key(k): v for k, v in state_dict.items()}
    if "stem.conv.weight" in converted:
        skeleton, channels = "cifar", converted["stem.conv.weight"].shape[0] // STEM_MULTIPLIER
    elif "stem0.conv2.weight" in converted:
        skeleton, channels = "imagenet", converted["stem0.conv2.weight"].shape[0]
    else:
        raise UserError("state_dict has no stem (stem.0 / stem0.0): not a NAO network")
    cells = {k.split(".")[1] for k in converted if k.startswith("cells.")}
    numbered = bool(cells) and all(map(str.isdigit, cells))
    layers = layers_of(max(map(int, cells)) + 1) if numbered else None
    if layers is None or "classifier.weight" not in converted:
        raise UserError("state_dict has a stem but not the cells and classifier of a NAO "
                        "network (a partial or different model?); pass a whole checkpoint")
    values = dict(skeleton=skeleton, channels=int(channels), layers=layers,
                  num_classes=int(converted["classifier.weight"].shape[0]),
                  aux_head=any(k.startswith("aux_head.") for k in converted))
    values.update({k: v for k, v in overrides.items() if v is not None})
    return config_from_fields(NetworkConfig, values, "NAONet")


def refuse_search_state(payload: object, path: Path | str) -> None:
    """A UserError if ``payload`` is a search's saved state (``search_state.pt``): it
    holds a search's pool, random states and its supernet or controller, not one
    trained network."""
    if isinstance(payload, Mapping) and {"state", "rng", "config"} <= payload.keys():
        raise UserError(f"{path} is a search's state, not a trained network; train a line "
                        "of the arch_pool.final beside it with nao train --arch LINE")


# where a checkpoint keeps its network's weights: the released code's 'model', others'
STATE_DICT_KEYS = ("model", "state_dict", "model_state")


def extract_state_dict(payload: object, path: Path | str) -> dict[str, torch.Tensor]:
    """The network weights a checkpoint's ``payload`` holds (under one of
    ``STATE_DICT_KEYS``, or the payload itself), or a UserError naming ``path``."""
    refuse_search_state(payload, path)
    if isinstance(payload, Mapping):
        for key in STATE_DICT_KEYS:
            if key in payload and isinstance(payload[key], Mapping):
                payload = payload[key]
                break
    if not isinstance(payload, Mapping) or not payload or not all(
            torch.is_tensor(v) for v in payload.values()):
        looked = ", ".join(repr(key) for key in STATE_DICT_KEYS)
        raise UserError(f"{path} holds no model state_dict (looked for {looked} and for "
                        "tensors at the top); pass a released NAO checkpoint or a naonet one")
    return {without_wrappers(key): value for key, value in payload.items()}


class _Placeholder:
    """Stands in for any non-allow-listed class found in a pickle; holds its state."""

    def __init__(self, *args, **kwargs):
        self.args = args

    def __setstate__(self, state):
        self.state = state


class _InertUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if module.startswith("torch") and name in _TORCH_ALLOWED:
            return getattr(__import__(module, fromlist=[name]), name)
        if module == "collections" and name == "OrderedDict":
            import collections

            return collections.OrderedDict
        return _Placeholder


_TORCH_ALLOWED = {"_rebuild_tensor_v2", "_rebuild_parameter", "FloatStorage", "LongStorage",
                  "IntStorage", "HalfStorage", "DoubleStorage", "ByteStorage", "BoolStorage",
                  "BFloat16Storage", "_rebuild_parameter_with_state", "UntypedStorage",
                  "Size", "float32", "float16", "int64"}


def _is_legacy_checkpoint(path: Path) -> bool:
    """Whether the file is in PyTorch's pre-1.6 format (a sequence of pickles starting
    with torch's magic number), as the authors' 2019 checkpoints are. The first pickle
    is read by an unpickler that admits no class at all."""
    class _NoClasses(pickle.Unpickler):
        def find_class(self, module, name):
            raise pickle.UnpicklingError("not a legacy checkpoint")

    try:
        with open(path, "rb") as handle:
            return _NoClasses(handle).load() == torch.serialization.MAGIC_NUMBER
    except Exception:  # noqa: BLE001 - anything else is not that format
        return False


# the control characters text holds: tab, line feed, form feed, carriage return
TEXT_CONTROLS = frozenset(b"\t\n\f\r")
TEXT_HEAD = 4096  # the bytes read to tell text


def _is_text(path: Path) -> bool:
    """Whether the file starts as text does (UTF-8 without control characters but line
    breaks and tabs): a JSON file, a score list, a config, where a checkpoint was
    expected. A zip's or a pickle's first bytes are control characters."""
    with open(path, "rb") as handle:
        head = handle.read(TEXT_HEAD)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16's byte-order mark (Windows)
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:  # a character cut by the head's end is still text
        if len(head) < TEXT_HEAD or error.start < len(head) - 3:
            return False
    return bool(head) and all(byte >= 32 or byte in TEXT_CONTROLS for byte in head)


def _is_image(path: Path) -> bool:
    """Whether Pillow knows the file as an image (read from its header alone)."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path):
                return True
    except Image.DecompressionBombError:  # an image all the same, a large one
        return True
    except Exception:  # noqa: BLE001 - anything Pillow cannot open is no image
        return False


def _load_with_placeholders(path: Path) -> object:
    if not (zipfile.is_zipfile(path) or _is_legacy_checkpoint(path)):
        if _is_text(path):
            raise UserError(f"{path} is a text file, not a checkpoint; pass a PyTorch "
                            "checkpoint (the .pt files nao train and nao search write, or a "
                            "released one)")
        if _is_image(path):
            raise UserError(f"{path} is an image, not a checkpoint; pass a PyTorch "
                            "checkpoint (nao predict takes the checkpoint first, then the "
                            "images)")
        raise UserError(f"{path} is not a readable PyTorch checkpoint (corrupt or truncated); "
                        "pass an intact copy (download a released one again; rerun the "
                        "run that wrote one of ours)")
    try:
        # torch.load with a custom pickle module: only the unpickling of the record changes.
        return torch_load_quietly(path, restricted_pickle_module=_InertPickleModule)
    except zipfile.BadZipFile as error:  # its bytes were damaged after it was written
        raise UserError(f"{path} is damaged ({error}); pass an intact copy (download a "
                        "released one again; rerun the run that wrote one of ours)") from None
    except Exception as error:  # noqa: BLE001
        raise UserError(f"{path} could not be read as a checkpoint ({type(error).__name__}); "
                        "check the file") from None


class _InertPickleModule:
    Unpickler = _InertUnpickler
    __name__ = "naonet_inert_pickle"

    @staticmethod
    def load(file, **kwargs):
        return _InertUnpickler(file, **kwargs).load()

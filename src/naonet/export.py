"""A trained network as a standalone model file: ONNX (for ONNX Runtime and other
runtimes) or TorchScript (for C++/mobile PyTorch), without this package.

The exported model takes float32 images ``N x 3 x H x W``, already preprocessed as
``naonet.data.prepare_image`` does (scaled to [0, 1], then normalised with the data
set's mean and standard deviation, which the file records), and returns the class
logits ``N x classes`` (the evaluation-mode network: no auxiliary head, no drop path).
Each file records, as metadata, the architecture, the class names, the data set, the
input size and the preprocessing (an ONNX file its operator set too): ONNX in
``metadata_props``, TorchScript in the extra file ``naonet.json``.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from naonet.errors import UserError
from naonet.files import atomic_write_bytes
from naonet.runtime import evaluating

FORMATS = ("onnx", "torchscript")
# The suffixes each format's files are written with (the first: the one to suggest).
FORMAT_SUFFIXES = {"onnx": (".onnx",), "torchscript": (".pt", ".pth", ".ts", ".torchscript")}
METADATA_FILE = "naonet.json"  # TorchScript's extra file holding the metadata
ONNX_INPUT, ONNX_OUTPUT = "images", "logits"


@dataclass(frozen=True)
class ExportSpec:
    """What to export: the input size, the batch dimension (0: dynamic) and, for ONNX,
    the operator set (0: the exporter's default)."""

    image_size: int
    batch_size: int = 0
    channels: int = 3
    opset: int = 0

    def example(self) -> torch.Tensor:
        batch = self.batch_size or 2  # a dynamic batch is traced at 2, not specialised to 1
        return torch.randn(batch, self.channels, self.image_size, self.image_size)


class LogitsOnly(nn.Module):
    """The network's evaluation forward, returning only the logits."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(images)[0]


def export_model(network: nn.Module, path: str | Path, export_format: str, spec: ExportSpec,
                 metadata: dict) -> Path:
    """Write ``network`` (in evaluation mode) to ``path`` in ``export_format``;
    ``metadata`` (JSON-serialisable) goes into the file. Written atomically."""
    if export_format not in FORMATS:
        raise UserError(f"unknown export format {export_format!r}; use one of: "
                        f"{', '.join(FORMATS)}")
    writer = _onnx_bytes if export_format == "onnx" else _torchscript_bytes
    with evaluating(network):  # the caller's network comes back as it was
        content = writer(LogitsOnly(without_auxiliary_head(network)).eval(), spec, metadata)
    path = Path(path)
    atomic_write_bytes(path, lambda file: file.write(content))
    return path


def without_auxiliary_head(network: nn.Module) -> nn.Module:
    """``network``, or a copy without its auxiliary head: the evaluation forward never
    runs it, and a TorchScript file would carry its weights (a quarter of a small
    NAONet's) for nothing."""
    if not isinstance(getattr(network, "aux_head", None), nn.Module):
        return network
    import copy

    stripped = copy.deepcopy(network)
    del stripped.aux_head
    return stripped


def _torchscript_bytes(model: nn.Module, spec: ExportSpec, metadata: dict) -> bytes:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notice
        traced = torch.jit.trace(model, spec.example())
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer, _extra_files={METADATA_FILE: json.dumps(metadata)})
    return buffer.getvalue()


def _onnx_bytes(model: nn.Module, spec: ExportSpec, metadata: dict) -> bytes:
    try:
        import onnx
        import onnxscript  # noqa: F401 - the exporter needs it; fail here, in one line
    except ImportError:
        raise UserError("--format onnx needs the onnx packages; install them with "
                        "pip install 'naonet[export]'") from None
    newest = onnx.defs.onnx_opset_version()
    if spec.opset < 0:
        raise UserError(f"--opset must be >= 0 (0: the exporter's default), got {spec.opset}")
    if spec.opset > newest:  # an older set is tried: the exporter says below
        raise UserError(f"--opset {spec.opset} is not an ONNX operator set this onnx "
                        f"{onnx.__version__} knows (it knows up to {newest}); pick an older "
                        "one, or 0 for the exporter's default")
    dynamic = None if spec.batch_size else {"images": {0: torch.export.Dim("batch")}}
    chosen = {"opset_version": spec.opset} if spec.opset else {}
    with torch.no_grad(), warnings.catch_warnings(), _quiet_exporter_logs():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (spec.example(),), dynamo=True, verbose=False,
                                    input_names=[ONNX_INPUT], output_names=[ONNX_OUTPUT],
                                    dynamic_shapes=dynamic, **chosen)
    proto = program.model_proto
    written = onnx_opset(proto)
    if spec.opset and written != spec.opset:
        # the exporter writes its own lowest set when converting down fails, and says so
        # only in a log line: a runtime of the older set would then refuse the file
        raise UserError(f"torch's ONNX exporter could not write this network in opset "
                        f"{spec.opset} (it wrote {written}); pick --opset {written} or newer "
                        f"(up to {newest})")
    for key, value in {**metadata, "opset": written}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value if isinstance(value, str) else json.dumps(value)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def onnx_opset(proto) -> int:
    """The version of the standard ONNX operator set a model uses."""
    return next(entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx"))


@contextlib.contextmanager
def _quiet_exporter_logs():
    """Hold back the exporter's log lines and tracebacks for the duration (a failed
    down-conversion prints a traceback at WARNING and carries on); the outcome is
    checked instead."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def read_metadata(path: str | Path) -> dict:
    """The metadata an exported file carries (either format)."""
    path = Path(path)
    if path.suffix == ".onnx" or not _is_zip(path):
        import onnx

        proto = onnx.load(str(path), load_external_data=False)
        return {entry.key: _maybe_json(entry.value) for entry in proto.metadata_props}
    extra = {METADATA_FILE: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notice
        torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    return json.loads(extra[METADATA_FILE])


def _is_zip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == b"PK"


def _maybe_json(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text

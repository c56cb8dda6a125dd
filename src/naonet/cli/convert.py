"""``nao convert RELEASED OUT``: turn a released NAO-V2 checkpoint into a naonet model file.

The released files pickle argparse objects next to the weights. naonet reads them
without running any pickled code: tensors and plain containers are rebuilt, every other
class becomes an inert placeholder (only its saved attributes are read, as data). The
output loads with ``torch.load(OUT, weights_only=True)`` and works with ``nao eval``.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("convert", help="convert a released checkpoint to naonet's "
                                   "format", description=__doc__)
    parser.add_argument("source", help="released .pt file")
    parser.add_argument("output", help="naonet model file to write")
    parser.add_argument("--arch", default=None,
                        help="architecture, when the file does not record it (naonet-v2)")
    parser.add_argument("--space", default=None)
    parser.add_argument("--dataset", default=None, help="data set the network was trained on")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from naonet.cli.eval import check_recorded_dataset, dataset_from_network
    from naonet.cli.options import check_output_file
    from naonet.compat.model_file import load_model, model_file_payload
    from naonet.models import count_parameters
    from naonet.training.checkpoint import atomic_save

    check_output_file(args.source, args.output, is_model_file,
                      "a model file nao convert wrote")
    refuse_export_suffix(args.output)
    loaded = load_model(args.source, arch=args.arch, space=args.space)
    check_recorded_dataset(loaded, args.dataset, args.source)
    dataset = args.dataset or loaded.dataset or dataset_from_network(loaded)
    atomic_save(model_file_payload(loaded, dataset), args.output)
    config = loaded.network.config
    print(f"wrote {args.output}: {loaded.architecture.to_qualified_string()}, "
          f"{config.describe()}, {count_parameters(loaded.network):,} parameters "
          "(aux head excluded)")
    return 0


def is_model_file(path) -> bool:
    """Whether ``path`` holds what ``nao convert`` writes (a network's weights and
    config, no training state: a training's checkpoint keeps its optimizer, and
    replacing it would end that run's resumption)."""
    from naonet.training.checkpoint import torch_load_quietly

    try:
        saved = torch_load_quietly(path)
    except Exception:  # noqa: BLE001 - not a checkpoint at all, or damaged
        return False
    return (isinstance(saved, dict) and {"format", "model", "network", "arch"} <= set(saved)
            and "optimizer" not in saved)


def refuse_export_suffix(output: str) -> None:
    """A UserError when ``output``'s suffix names an export format: convert writes a
    PyTorch checkpoint, which an ONNX runtime or torch.jit.load cannot read."""
    from pathlib import Path

    from naonet.errors import UserError
    from naonet.export import FORMAT_SUFFIXES

    suffix = Path(output).suffix.lower()
    named = next((name for name, suffixes in FORMAT_SUFFIXES.items()
                  if suffix in suffixes and suffix not in (".pt", ".pth")), None)
    if named is not None:
        shown = {"onnx": "an ONNX", "torchscript": "a TorchScript"}[named]
        raise UserError(f"{output} names {shown} file, but nao convert writes a PyTorch "
                        "checkpoint: name it .pt, or export the network with nao export")

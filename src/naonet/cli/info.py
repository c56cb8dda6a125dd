"""``nao info ARCH``: an architecture's cells, parameter counts and multiply-adds; for a
NAS-Bench-201 cell with ``--reference table:CSV``, what the benchmark measured of it."""

from __future__ import annotations

import argparse
from pathlib import Path

from naonet.compat.model_file import names_a_file, recorded_architecture
from naonet.data.registry import DATASETS, some_names
from naonet.errors import UserError
from naonet.factory import PUBLISHED_MODELS, published_config
from naonet.models import NetworkConfig, build_network, count_parameters
from naonet.nb201.table import TABLE_SPACE
from naonet.spaces import (
    Architecture,
    NB201Architecture,
    architecture_names,
    get_space,
    resolve_architecture,
)
from naonet.spaces.protocol import DEFAULT_SPACE
from naonet.training.checkpoint import exported_format

# (label, classes, input size): the data sets NAS-Bench-201 trained its network on.
BENCHMARK_DATASETS = [("CIFAR-10", 10, 32), ("CIFAR-100", 100, 32), ("ImageNet16-120", 120, 16)]


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("info", help="show an architecture's cells, parameters "
                                   "and multiply-adds", description=__doc__)
    parser.add_argument("arch", help="architecture name (naonet-v2), string, a line of "
                        "arch_pool (NAS-Bench-201 cells too), a checkpoint file, or with "
                        "--reference a NAS-Bench-201 index")
    parser.add_argument("--space", default=None, help="search space of an integer string "
                        "(default: small)")
    parser.add_argument("--reference", default=None, metavar="table:CSV",
                        help="a NAS-Bench-201 cell's index, accuracies and rank in this table")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    exported = exported_format(args.arch) if names_a_file(args.arch) else None
    if exported is not None:
        print_exported(args.arch, exported)
        return 0
    architecture = read_architecture(args.arch, args.space, args.reference)
    is_naonet = isinstance(architecture, Architecture)
    is_benchmark_cell = isinstance(architecture, NB201Architecture)
    if not is_benchmark_cell and args.reference is not None:
        kind = "a NAONet" if is_naonet else "an architecture"
        raise UserError("--reference looks NAS-Bench-201 cells up in their table; "
                        f"{args.arch!r} is {kind} of the {architecture.space.name} space")
    table = None
    if args.reference is not None:  # read before printing: a bad table is the only line
        from naonet.search.reference import ReferenceTable

        table = ReferenceTable.load(args.reference, architecture.space,
                                    every_cell=False)  # a lookup
    print(f"architecture: {architecture.to_qualified_string()}")
    if is_naonet:
        print_naonet(architecture)
    elif is_benchmark_cell:
        print_benchmark_cell(architecture, table)
    else:  # a space of another shape (a package's own): the sizes the protocol gives
        print_network_sizes(architecture)
    if names_a_file(args.arch):
        print_checkpoint_network(args.arch, args.space)
    return 0


# what an exported file's metadata says, in the order shown
EXPORTED_FIELDS = {"arch": "architecture", "dataset": "trained on", "image_size": "image size",
                   "classes": "classes", "input": "input", "preprocessing": "preprocessing",
                   "output": "output", "opset": "ONNX operator set"}


def exported_metadata(path: str, exported: str) -> dict:
    """The metadata ``nao export`` recorded in an exported file (``exported``: its format),
    or a UserError for a file without it."""
    from naonet.export import read_metadata

    try:
        metadata = read_metadata(path)
    except ImportError:  # onnx, of the export extra
        raise UserError(f"{path} is an exported ONNX model; reading its metadata needs the "
                        "onnx package: pip install 'naonet[export]'") from None
    except Exception:  # noqa: BLE001 - another tool's file, or a damaged one
        metadata = None
    if not isinstance(metadata, dict) or "arch" not in metadata:
        raise UserError(f"{path} is a{'n' if exported == 'ONNX' else ''} {exported} model "
                        "without the metadata nao export writes (or a damaged one); nao info "
                        "reads naonet's checkpoints and exports")
    return metadata


def print_exported(path: str, exported: str) -> None:
    """What ``nao export`` recorded in an exported file: the network and how to feed it."""
    metadata = exported_metadata(path, exported)
    print(f"{path}: an exported {exported} model (nao export)")
    trained = metadata.get("trained_image_size")  # files of 2026-12-06 on record it
    if trained is not None and trained != metadata.get("image_size"):
        metadata = {**metadata, "image_size": f"{metadata['image_size']} (trained at {trained})"}
    for key, label in EXPORTED_FIELDS.items():
        if metadata.get(key) not in (None, "", []):
            value = metadata[key]
            print(f"{label}: {some_names(value) if key == 'classes' else value}")


def print_checkpoint_network(path: str, space: str | None) -> None:
    """The network a checkpoint holds: its size, parameters, classes and data set."""
    from naonet.cli.main import one_line
    from naonet.compat.model_file import load_model

    try:
        loaded = load_model(path, space=space)
    except UserError as error:  # the architecture it records is shown all the same
        print(f"this checkpoint: its weights do not load ({one_line(error)})")
        return
    config = loaded.network.config
    trained = f", trained on {loaded.dataset}" if loaded.dataset else ""
    if loaded.dataset in DATASETS:  # 0 is the data set's own size
        trained += f" at {loaded.image_size or DATASETS[loaded.dataset].image_size} px"
    if loaded.classes:
        trained += f"; classes: {some_names(list(loaded.classes))}"
    aux = ", aux head" if getattr(config, "aux_head", False) else ""
    origin = "the released code's" if loaded.released else "this"
    print(f"{origin} checkpoint: {loaded.architecture.space.name} network of "
          f"{config.describe()}{aux}, {count_parameters(loaded.network):,} parameters (no "
          f"aux){trained}")
    if loaded.training:
        print(f"trained to {loaded.training}")


def read_architecture(text: str, space: str | None, reference: str | None,
                      command: str = "info"):
    """The architecture ``text`` names: a checkpoint file's, a NAS-Bench-201 index in the
    ``reference`` table (``nao info`` only: ``command`` names the one asking), or any name
    or text form."""
    if names_a_file(text):
        refuse_an_architecture_list(text)
        exported = exported_format(text)
        if exported is not None:  # the architecture nao export recorded
            return resolve_architecture(exported_metadata(text, exported)["arch"], space)
        recorded, recorded_space = recorded_architecture(text)
        return resolve_architecture(recorded, space or recorded_space)
    if text in PUBLISHED_MODELS:  # create_model's names of the published networks
        return resolve_architecture(published_config(text)[0], space)
    if text.strip() in architecture_names():  # a name wins over a folder of that name
        return resolve_architecture(text, space)
    if names_a_folder(text):
        from naonet.training.checkpoint import require_checkpoint_file

        require_checkpoint_file(Path(text))  # names the checkpoints it holds
    if looks_like_a_path(text):
        raise UserError(f"{text} does not exist; check the path of the checkpoint (or "
                        "pass an architecture)")
    if text.strip().isdigit() and reference is None:
        integers = len(get_space(DEFAULT_SPACE).integer_limits())
        index = ("a NAS-Bench-201 index needs --reference table:CSV" if command == "info"
                 else f"nao info {text.strip()} --reference table:CSV names the NAS-Bench-201 "
                      "cell of that index")
        raise UserError(f"{text.strip()} is one integer: {index}; a NAONet takes {integers} "
                        "integers or a name")
    if text.strip().isdigit():
        from naonet.search.reference import ReferenceTable

        table = ReferenceTable.load(reference, get_space(space or TABLE_SPACE),
                                    every_cell=False)
        return table.table.architecture(int(text))
    return resolve_architecture(text, space)


def refuse_an_architecture_list(path: str) -> None:
    """A UserError for a search's list of architectures where one is asked for."""
    if Path(path).name.startswith("arch_pool"):
        raise UserError(f"{path} lists a search's architectures; pass one of its lines, for "
                        f"example \"$(head -n 1 {path})\"")


def check_architecture_argument(text: str | None, flag: str = "--arch") -> None:
    """A UserError naming the mistake when ``text``, given where an architecture (not a
    file) is asked for, is a path: a checkpoint, a search's list, a folder, or a path
    that does not exist."""
    if not isinstance(text, str) or text.strip() in architecture_names():
        return  # a name wins over a file of that name in the working folder
    if names_a_file(text):
        refuse_an_architecture_list(text)
        raise UserError(f"{text} is a file; {flag} takes an architecture (a name or a text "
                        f"form): nao info {text} prints the one it holds")
    if names_a_folder(text):
        raise UserError(f"{text} is a folder; {flag} takes an architecture (a name or a text "
                        "form), such as a line of a search's arch_pool.final")
    if looks_like_a_path(text):
        raise UserError(f"{text} does not exist; {flag} takes an architecture (a name or a "
                        "text form), or check the path")


def names_a_folder(text: str) -> bool:
    """Whether ``text`` is the path of a folder (an architecture's text form may be longer
    than a path may be). Blank text is none, not the working folder (Path('') is '.')."""
    if not text.strip():
        return False
    try:
        return Path(text).is_dir()
    except OSError:
        return False


def looks_like_a_path(text: str) -> bool:
    """Whether ``text`` is meant as a file: a checkpoint's suffix, or a folder in it (no
    architecture's text form holds a '/')."""
    return "/" in text or Path(text).suffix.lower() in {".pt", ".pth", ".ckpt", ".tar"}


def print_naonet(architecture: Architecture) -> None:
    """Both cells, then the sizes of the networks ``nao train`` trains from them: the
    published ones (NAONet-V2's CIFAR-10 and ImageNet sizes) for the NAO spaces, a space's
    own ``final_size_for`` each data set for another cell space."""
    for cell_type, cell in architecture.cells().items():
        print(f"{cell_type} cell (output = concat of states {list(cell.loose_ends())}):")
        for index, node in enumerate(cell.nodes):
            ops = architecture.space.op_names
            print(f"  node {index + 2} = {ops[node.op_a]}(state {node.input_a}) + "
                  f"{ops[node.op_b]}(state {node.input_b})")
    space = architecture.space
    print(f"{'trained size':<30}{'params (no aux)':>17}{'params (aux)':>15}{'mult-adds':>14}")
    for name in PUBLISHED_MODELS:  # the published recipes, as create_model builds them
        _, fields, dataset = published_config(name)
        channels, layers = space.final_size_for(dataset)
        config = NetworkConfig(**{**fields, "aux_head": True, "channels": channels,
                                  "layers": layers})
        network = build_network(architecture, config)
        macs = space.multiply_adds(architecture, config, DATASETS[dataset].image_size)
        label = f"{dataset}, C {config.channels}, N {config.layers}"
        print(f"{label:<30}{count_parameters(network):>17,}"
              f"{count_parameters(network, include_aux=True):>15,}{macs / 1e6:>12,.1f} M")


def print_network_sizes(architecture) -> None:
    """The network ``nao train`` trains from ``architecture`` on CIFAR-10 (its space's
    ``final_size_for``): parameters and multiply-adds, as the space counts them."""
    space = architecture.space
    dataset = DATASETS["cifar10"]
    channels, layers = space.final_size_for(dataset.name)
    config = space.network_config(channels, layers, dataset.num_classes)
    macs = space.multiply_adds(architecture, config, dataset.image_size)
    print(f"{'trained size':<30}{'params':>12}{'mult-adds':>14}")
    print(f"{f'{dataset.name}, C {channels}, N {layers}':<30}"
          f"{space.parameter_count(architecture, config):>12,}{macs / 1e6:>12,.1f} M")


def print_benchmark_cell(architecture, table) -> None:
    """The cell's edges, the benchmark network's sizes, and (given the ``ReferenceTable``)
    what the benchmark measured."""
    space = architecture.space
    print(f"cell (node 0 is the cell input, node {space.num_nodes - 1} its output):")
    for target in range(1, space.num_nodes):
        terms = " + ".join(f"{op}(node {source})" for source, op in architecture.incoming(target))
        print(f"  node {target} = {terms}")
    channels, cells = space.final_size  # the benchmark's network
    print(f"benchmark network, C {channels}, {cells} cells per stage:")
    print(f"{'data set':<22}{'params':>12}{'mult-adds':>14}")
    for label, classes, size in BENCHMARK_DATASETS:
        config = space.network_config(channels, cells, classes)
        macs = space.multiply_adds(architecture, config, size)
        print(f"{label:<22}{space.parameter_count(architecture, config):>12,}"
              f"{macs / 1e6:>12,.1f} M")
    if table is not None:
        from naonet.nb201 import DEFAULT_METRIC, metric_column

        truth = table.true_accuracy(architecture)
        validation = table.table.value(architecture, metric_column(DEFAULT_METRIC))
        print(f"in {table.table.source}: index {table.table.index(architecture)}, "
              f"validation {100 * validation:.2f} %, test {100 * truth.test_accuracy:.2f} % "
              f"(rank {truth.rank:,} of {truth.of:,})")

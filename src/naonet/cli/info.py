"""``nao info ARCH``: both cells, parameter counts and multiply-adds."""

from __future__ import annotations

import argparse

from naonet.models import NetworkConfig, build_network, count_multiply_adds, count_parameters
from naonet.spaces import resolve_architecture

# (label, skeleton, C, N, classes, input size): the published configurations.
PUBLISHED_CONFIGS = [
    ("CIFAR-10, C 36, N 6", "cifar", 36, 6, 10, 32),
    ("ImageNet, C 52, N 4", "imagenet", 52, 4, 1000, 224),
]


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("info", help="show an architecture's cells, parameters "
                                   "and multiply-adds", description=__doc__)
    parser.add_argument("arch", help="architecture name (naonet-v2) or string")
    parser.add_argument("--space", default=None, help="search space of an integer string "
                        "(default: small)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    architecture = resolve_architecture(args.arch, args.space)
    print(f"architecture: {architecture.to_qualified_string()}")
    for cell_type, cell in architecture.cells().items():
        print(f"{cell_type} cell (output = concat of states {list(cell.loose_ends())}):")
        for index, node in enumerate(cell.nodes):
            ops = architecture.space.op_names
            print(f"  node {index + 2} = {ops[node.op_a]}(state {node.input_a}) + "
                  f"{ops[node.op_b]}(state {node.input_b})")
    print(f"{'configuration':<22}{'params (no aux)':>17}{'params (aux)':>15}{'mult-adds':>14}")
    for label, skeleton, channels, layers, classes, size in PUBLISHED_CONFIGS:
        network = build_network(architecture, NetworkConfig(
            skeleton=skeleton, channels=channels, layers=layers, num_classes=classes))
        macs = count_multiply_adds(network, (3, size, size))
        print(f"{label:<22}{count_parameters(network):>17,}"
              f"{count_parameters(network, include_aux=True):>15,}{macs / 1e6:>12,.1f} M")
    return 0

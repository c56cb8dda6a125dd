"""``nao show ARCH``: draw the normal and the reduction cell of an architecture.

ARCH is a name (naonet-v2), a line of arch_pool / arch_pool.final ("small:1 1 0 ..."),
40 integers, the readable form, a NAS-Bench-201 cell ("|nor_conv_3x3~0|+..."; its one
cell is drawn), or a checkpoint file (the architecture it records). The picture format
follows the file name (.png, .svg or .pdf); the readable form is printed too.

  nao show naonet-v2 -o naonet-v2.png
  nao show "$(head -n 1 runs/search/arch_pool.final)" -o best.svg
  nao show runs/train/last.pt -o trained.png
"""

from __future__ import annotations

import argparse

from naonet.errors import UserError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "show", help="draw an architecture's cells (PNG, SVG or PDF)", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("arch", metavar="ARCH", help="architecture name or string, or a "
                        "checkpoint file")
    parser.add_argument("--space", default=None,
                        help="search space of an integer string without prefix (small, "
                             "middle); NAS-Bench-201 cells say their own")
    parser.add_argument("-o", "--output", default="cells.png",
                        help="picture file: .png, .svg or .pdf (default: cells.png)")
    parser.add_argument("--title", default=None, help="title (default: the architecture)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from naonet.cli.info import read_architecture
    from naonet.search.plots import draw_architecture, draw_benchmark_cell
    from naonet.spaces import Architecture, NB201Architecture

    # as nao info reads it: a checkpoint's, a name or a text form; a wrong path named
    architecture = read_architecture(args.arch, args.space, reference=None, command="show")
    if isinstance(architecture, Architecture):
        draw_architecture(architecture, args.output, args.title)
        print(architecture.to_readable())
        print(f"cells drawn in {args.output}")
    elif isinstance(architecture, NB201Architecture):  # one cell, the benchmark's network
        draw_benchmark_cell(architecture, args.output, args.title)
        print(architecture.to_qualified_string())
        print(f"cell drawn in {args.output}")
    else:
        raise UserError(f"nao show draws NAO cells and NAS-Bench-201 cells, not "
                        f"architectures of the {architecture.space.name!r} space; nao info "
                        f"{architecture.to_qualified_string()!r} prints it")
    return 0

"""``nao show ARCH``: draw the normal and the reduction cell of an architecture.

ARCH is a name (naonet-v2), a line of arch_pool / arch_pool.final ("small:1 1 0 ..."),
40 integers, or the readable form. The picture format follows the file name (.png,
.svg or .pdf); the readable form is printed too.

  nao show naonet-v2 -o naonet-v2.png
  nao show "$(head -n 1 runs/search/arch_pool.final)" -o best.svg
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "show", help="draw an architecture's cells (PNG, SVG or PDF)", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("arch", metavar="ARCH", help="architecture name or string")
    parser.add_argument("--space", default=None,
                        help="search space of an integer string without prefix (small, middle)")
    parser.add_argument("-o", "--output", default="cells.png",
                        help="picture file: .png, .svg or .pdf (default: cells.png)")
    parser.add_argument("--title", default=None, help="title (default: the architecture)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from naonet.search.plots import draw_architecture
    from naonet.spaces import resolve_architecture

    architecture = resolve_architecture(args.arch, args.space)
    draw_architecture(architecture, args.output, args.title)
    print(architecture.to_readable())
    print(f"cells drawn in {args.output}")
    return 0

"""Collect benchmark JSON reports into one markdown table, optionally into the docs.

    python benchmarks/report.py results/*.json                       # print the table
    python benchmarks/report.py results/*.json --docs docs/benchmarks.md --section gpu

With ``--docs`` the table replaces what stands between ``<!-- SECTION-table -->`` and
``<!-- /SECTION-table -->`` in that file.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from harness import Report, size_text, summary_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", help="JSON files written with --json")
    parser.add_argument("--docs", default=None, help="markdown file to update")
    parser.add_argument("--section", default="gpu", help="marker name in that file")
    args = parser.parse_args()
    reports = sorted((Report.from_json(Path(path).read_text()) for path in args.reports),
                     key=lambda report: report.key)
    details = "\n".join(
        f"- ({r.key}) {r.size_name}: {size_text(r.size)}; baseline: {r.labels['baseline']}; "
        f"naonet: {r.labels['naonet']}; torch {r.torch}; {r.rounds} runs each, {r.seconds:.0f} s"
        for r in reports)
    table = summary_table(reports) + "\n\n" + details
    if args.docs is None:
        print(table)
        return
    path = Path(args.docs)
    begin, end = f"<!-- {args.section}-table -->", f"<!-- /{args.section}-table -->"
    text = path.read_text()
    if begin not in text or end not in text:
        raise SystemExit(f"{path} has no {begin} ... {end} markers")
    text = re.sub(re.escape(begin) + ".*?" + re.escape(end),
                  lambda _: f"{begin}\n{table}\n{end}", text, flags=re.S)
    from naonet.files import atomic_write_text

    atomic_write_text(path, text)
    print(f"updated {path}")


if __name__ == "__main__":
    main()

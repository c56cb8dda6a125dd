"""The whole search, end to end: seconds per phase of the quick CIFAR-10 search and the
quick one-shot NB201 search, with naonet's defaults against the same search with every
fast path off and no data cache, run one after the other on this machine.

    OMP_NUM_THREADS=2 python benchmarks/search.py \\
        --data ../shared/data/cifar10/cifar10-jpg.tar.gz \\
        --json /tmp/search-bench.json

Each search runs as its own ``nao search`` process (start-up included) into a fresh
folder; the phases come from the run's ``timings.json`` and the wall time from this
script. ``baseline``: ``--no-channels-last --host-allocator system``, an empty
``NAONET_CACHE`` (the archive is extracted and every JPEG decoded) and
``NAONET_DECODED_CACHE=0``. ``naonet``: the defaults, with a cache warmed once before
the timed runs (what every run after a user's first one finds). The report says whether
the two variants wrote the same ``arch_pool``: NHWC and NCHW sum in other orders, so
scores may differ in their last bits and close scores may swap places.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SEARCHES = {
    "quick-cifar10": [],
    "quick-nb201": [],
}
VARIANTS = ("baseline", "naonet")
BASELINE_FLAGS = ["--no-channels-last", "--host-allocator", "system"]


def run_search(preset: str, variant: str, data: str, cache: Path, folder: Path,
               extra: list[str]) -> dict:
    env = {**os.environ, "NAONET_CACHE": str(cache), "OMP_WAIT_POLICY": "PASSIVE"}
    flags = list(extra)
    if variant == "baseline":
        env["NAONET_DECODED_CACHE"] = "0"
        flags += BASELINE_FLAGS
    command = [sys.executable, "-m", "naonet.cli.main", "search", "--preset", preset,
               "--data", data, "--output", str(folder), "--no-progress", "--device", "cpu",
               *flags]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{preset} ({variant}) failed:\n{result.stderr[-2000:]}")
    phases = json.loads((folder / "timings.json").read_text())["seconds"]
    phases["process start and the rest"] = wall - sum(phases.values())
    return {"wall": wall, "phases": phases,
            "arch_pool": (folder / "arch_pool").read_text()}


def warm_cache(data: str, cache: Path) -> None:
    """Extract the archive and decode its images once into ``cache``."""
    code = ("from naonet.data import DataConfig, build_data; import torch; "
            f"build_data(DataConfig(data={data!r}), torch.device('cpu'))")
    subprocess.run([sys.executable, "-c", code], check=True,
                   env={**os.environ, "NAONET_CACHE": str(cache)})


def table(results: dict) -> str:
    lines = []
    for preset, variants in results.items():
        names = sorted({name for v in variants.values() for name in v["phases"]},
                       key=lambda name: -variants["naonet"]["phases"].get(name, 0))
        lines += [f"**{preset}**", "", "| phase | baseline s | naonet s | ratio |",
                  "|---|---|---|---|"]
        for name in names:
            base = variants["baseline"]["phases"].get(name, 0.0)
            ours = variants["naonet"]["phases"].get(name, 0.0)
            ratio = f"{base / ours:.2f}x" if ours > 0.05 else "-"
            lines.append(f"| {name} | {base:.1f} | {ours:.1f} | {ratio} |")
        base, ours = variants["baseline"]["wall"], variants["naonet"]["wall"]
        same = variants["baseline"]["arch_pool"] == variants["naonet"]["arch_pool"]
        lines += [f"| **whole search (wall)** | **{base:.1f}** | **{ours:.1f}** | "
                  f"**{base / ours:.2f}x** |", "",
                  f"identical arch_pool: {'yes' if same else 'no'}", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the CIFAR-10 archive or folder")
    parser.add_argument("--reference", default=None,
                        help="table:CSV for the NB201 search's reports (optional)")
    parser.add_argument("--searches", default=",".join(SEARCHES))
    parser.add_argument("--json", default=None, help="write the measurements here")
    args = parser.parse_args()
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="naonet-search-bench-") as scratch:
        root = Path(scratch)
        warm = root / "warm-cache"
        warm_cache(args.data, warm)
        for preset in args.searches.split(","):
            extra = (["--reference", args.reference]
                     if preset == "quick-nb201" and args.reference else [])
            results[preset] = {}
            for variant in VARIANTS:
                cache = warm if variant == "naonet" else root / f"cold-{preset}"
                folder = root / f"{preset}-{variant}"
                results[preset][variant] = run_search(preset, variant, args.data, cache,
                                                      folder, extra)
                print(f"{preset} {variant}: {results[preset][variant]['wall']:.1f} s",
                      file=sys.stderr, flush=True)
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
               f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    print(f"device: cpu ({machine})\n")
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine, "results": {
            preset: {variant: {k: v for k, v in measured.items() if k != "arch_pool"}
                     for variant, measured in variants.items()}
            for preset, variants in results.items()}}, indent=1))


if __name__ == "__main__":
    main()

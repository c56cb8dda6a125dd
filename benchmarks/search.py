"""The whole search, end to end: seconds per phase of the quick CIFAR-10 search and the
quick one-shot NB201 search, with naonet's defaults against the same search with every
fast path off and no data cache, run one after the other on this machine.

    env -u OMP_NUM_THREADS python benchmarks/search.py \\
        --data ../shared/data/cifar10/cifar10-jpg.tar.gz \\
        --json /tmp/search-bench.json

Each search runs as its own ``nao search`` process (start-up included) into a fresh
folder; the phases come from the run's ``timings.json`` and the wall time from this
script. ``baseline``: ``--no-channels-last --host-allocator system --threads 0``
(torch's default thread count, where ``quick-nb201`` sets one), an empty
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from naonet.search.loop import TIMINGS_NAME  # noqa: E402

SEARCHES = {
    "quick-cifar10": [],
    "quick-nb201": [],
}
VARIANTS = ("baseline", "naonet")
BASELINE_FLAGS = ["--no-channels-last", "--host-allocator", "system", "--threads", "0"]


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
    phases = json.loads((folder / TIMINGS_NAME).read_text())["seconds"]
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


# ----------------------------------------------------------------------- cost model
def timed(work, repeats: int) -> float:
    """Median seconds of ``work()`` over ``repeats`` runs after one warm-up run."""
    import statistics

    work()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def estimate(device_name: str) -> str:
    """Predicted wall time of the ``nao-v2-cifar10`` search on this machine, phase by
    phase: per-unit costs measured here (a few steps each, naonet's defaults) times the
    preset's counts."""
    import dataclasses
    import random

    import torch

    from naonet.controller import Controller
    from naonet.controller.generation import generate_architectures
    from naonet.controller.training import train_controller
    from naonet.distributed import resolve_device
    from naonet.runtime import to_memory_format
    from naonet.search.config import resolve_search_config
    from naonet.search.supernet_training import search_fast_paths
    from naonet.spaces import get_space

    config = resolve_search_config("nao-v2-cifar10", {}, {})
    device = resolve_device(device_name)
    paths = search_fast_paths(config, device)  # as the search resolves them
    space, rng = get_space(config.space), random.Random(0)
    layout = torch.channels_last if paths.channels_last else torch.contiguous_format
    images = torch.randn(config.batch_size, 3, 32, 32, device=device).contiguous(
        memory_format=layout)
    labels = torch.randint(0, 10, (config.batch_size,), device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    supernet = to_memory_format(space.build_supernet(config.channels, config.layers).to(device),
                                paths.channels_last).train()
    optimizer = torch.optim.SGD(supernet.parameters(), lr=0.01, momentum=0.9)

    def supernet_step():
        optimizer.zero_grad()
        logits, _ = supernet(images, space.sample(rng))
        torch.nn.functional.cross_entropy(logits, labels).backward()
        optimizer.step()
        sync()

    scoring_images = torch.randn(config.eval_batch_size, 3, 32, 32, device=device).contiguous(
        memory_format=layout)

    @torch.no_grad()
    def score_one():
        supernet(scoring_images, space.sample(rng))
        sync()

    network = to_memory_format(space.build_network(space.sample(rng), space.network_config(
        config.rerank_channels, config.rerank_layers)).to(device), paths.channels_last).train()
    rerank_optimizer = torch.optim.SGD(network.parameters(), lr=0.01, momentum=0.9)

    def rerank_step():
        rerank_optimizer.zero_grad()
        logits, aux = network(images)
        loss = torch.nn.functional.cross_entropy(logits, labels)
        if aux is not None:
            loss = loss + config.rerank_aux_weight * torch.nn.functional.cross_entropy(aux, labels)
        loss.backward()
        rerank_optimizer.step()
        sync()

    pool = [space.sample(rng) for _ in range(200)]
    scores = [rng.random() for _ in pool]
    controller = Controller(space.encoding(), config.controller_config()).to(device)
    one_epoch = dataclasses.replace(config.controller_train_config(), epochs=1)
    controller_epoch = timed(lambda: train_controller(controller, pool, scores, one_epoch,
                                                      seed=0), 2) / len(pool)
    generation = timed(lambda: generate_architectures(
        controller, pool[:config.top_seeds], known=pool, count=config.new_architectures,
        max_lambda=config.max_lambda), 1)

    train_images = 50_000 - config.valid_size
    steps_per_epoch = train_images // config.batch_size
    pools = [config.seed_pool_size + r * config.new_architectures for r in range(config.rounds)]
    phases = {
        "supernet training": timed(supernet_step, 3) * steps_per_epoch
        * config.supernet_epochs * config.rounds,
        "scoring": timed(score_one, 3) * config.eval_batches * sum(pools),
        "controller training": controller_epoch * config.controller_epochs * sum(pools[:-1]),
        "generation": generation * (config.rounds - 1),
        "re-ranking": timed(rerank_step, 3) * steps_per_epoch * config.rerank_epochs
        * config.rerank_top,
    }
    lines = [f"predicted wall time of `nao search --preset nao-v2-cifar10` on {device} "
             f"({paths.describe()}; {torch.get_num_threads()} threads):", "",
             "| phase | counts | predicted |", "|---|---|---|"]
    counts = {
        "supernet training": f"{config.rounds} x {config.supernet_epochs} epochs x "
                             f"{steps_per_epoch} steps of {config.batch_size}",
        "scoring": f"{sum(pools):,} architectures x {config.eval_batch_size} images",
        "controller training": f"{config.controller_epochs} epochs x pools of "
                               f"{', '.join(map(str, pools[:-1]))} (x{config.controller_augment})",
        "generation": f"{config.rounds - 1} x {config.new_architectures} from the top "
                      f"{config.top_seeds}",
        "re-ranking": f"{config.rerank_top} x {config.rerank_epochs} epochs at C "
                      f"{config.rerank_channels}, N {config.rerank_layers}",
    }
    for name, seconds in phases.items():
        lines.append(f"| {name} | {counts[name]} | {seconds / 3600:,.1f} h |")
    lines.append(f"| **whole search** | | **{sum(phases.values()) / 3600:,.1f} h** |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--estimate", action="store_true",
                        help="predict the nao-v2-cifar10 search's wall time on this machine "
                             "instead (measures a few steps of every phase)")
    parser.add_argument("--device", default="cpu", help="for --estimate: cpu, cuda, ...")
    parser.add_argument("--data", default=None, help="the CIFAR-10 archive or folder")
    parser.add_argument("--reference", default=None,
                        help="table:CSV for the NB201 search's reports (optional)")
    parser.add_argument("--searches", default=",".join(SEARCHES))
    parser.add_argument("--json", default=None, help="write the measurements here")
    args = parser.parse_args()
    if args.estimate:
        print(estimate(args.device))
        return
    if not args.data:
        parser.error("--data is required (or pass --estimate)")
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
        from naonet.files import atomic_write_text

        atomic_write_text(args.json, json.dumps({"machine": machine, "results": {
            preset: {variant: {k: v for k, v in measured.items() if k != "arch_pool"}
                     for variant, measured in variants.items()}
            for preset, variants in results.items()}}, indent=1))


if __name__ == "__main__":
    main()

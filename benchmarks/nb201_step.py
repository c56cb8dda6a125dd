"""The NAS-Bench-201 supernet's training step at the paper's scale: milliseconds a step
with one process or several sharing the device, with and without bf16 autocast, and
which layout lets ``benchmarks/gpu_nb201.sh`` train soonest.

    python benchmarks/nb201_step.py --device cuda [--seconds 8] [--json FILE] [--env-file FILE]
    python benchmarks/nb201_step.py --device cpu --cells-per-stage 1 --image-size 8 --seconds 1

Every process trains the supernet as ``nao correlate --supernet --preset nb201-rank-gpu``
does (``SupernetTrainer``: its optimizer, off-path updates, clipping and fast paths; the
device pipeline's crop and flip; one cell of all 15,625 drawn uniformly a step) on random
images. For each layout (1 process, then ``--processes``) the processes start together,
warm up, then train for ``--seconds`` under each autocast setting, starting each setting
together. A GPU step of this small network is bound by the host launching kernels (stop
31 measured 31 ms a step with three processes at once on an H200), so how processes
share the device decides the script's time; this measures it instead of guessing.

The baseline is the layout ``gpu_nb201.sh`` used until now: three processes at once,
bf16. The table gives each layout's milliseconds a step per process, its steps a second
summed over its processes, the ratio to the baseline, and the seconds the script's
training steps would take laid out that way: the two 50-epoch rankings and the search's
3 x 8 epochs, 391 steps of 64 each, either all at once (the longest run decides) or one
after another. Start-up, loading CIFAR-10, scoring and the search's controller are not in
the estimate (one after another, they add up; at once, they overlap).
``--env-file`` writes the fastest layout as ``NAONET_GPU_AT_ONCE`` and ``NAONET_GPU_AMP``
for the script.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import queue
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # also in workers

WAIT_SECONDS = 180  # for a worker's start-up and warm-up before the layout gives up
BASELINE = (3, "bf16")  # (processes at once, autocast): gpu_nb201.sh until this figure
SEARCH_EPOCHS = 3 * 8  # gpu_nb201.sh's search: --rounds 3 --supernet-epochs 8
RANKINGS = 2  # uniform and balanced


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if _cuda() else "cpu")
    parser.add_argument("--processes", type=int, nargs="+", default=[3],
                        help="layouts besides one process: processes at once (default 3)")
    parser.add_argument("--amps", nargs="+", default=["bf16", "none"],
                        choices=["bf16", "none"])
    parser.add_argument("--seconds", type=float, default=8.0,
                        help="timed training per layout and autocast setting")
    parser.add_argument("--warmup", type=float, default=3.0,
                        help="untimed training first, per autocast setting (seconds)")
    parser.add_argument("--chunk", type=int, default=40,
                        help="steps between the host's waits for the device")
    parser.add_argument("--cells-per-stage", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads a process on the CPU (0: torch's default, as "
                             "nao leaves it)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--env-file", type=Path, default=None)
    return parser.parse_args(argv)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def search_config(args: argparse.Namespace):
    from naonet.search.config import resolve_search_config

    return resolve_search_config("nb201-rank-gpu", flag_values=dict(
        layers=args.cells_per_stage, sampling="uniform", amp=args.amps[0]))


def build_trainer(args: argparse.Namespace, seed: int):
    """A ``SupernetTrainer`` of the preset on ``--chunk`` batches of random images."""
    import torch

    from naonet.data.pipelines import BatchAugment, DeviceBatches
    from naonet.data.registry import CIFAR10_MEAN, CIFAR10_STD
    from naonet.data.sources import InMemorySplit
    from naonet.distributed import DistributedContext
    from naonet.search.ranking import SupernetTrainer
    from naonet.search.supernet_training import search_fast_paths
    from naonet.spaces import get_space

    device = torch.device(args.device)
    config = search_config(args)
    paths = search_fast_paths(config, device)
    count, size = args.chunk * config.batch_size, args.image_size
    generator = torch.Generator().manual_seed(seed)
    split = InMemorySplit(torch.randint(0, 256, (count, 3, size, size), dtype=torch.uint8,
                                        generator=generator),
                          torch.randint(0, 10, (count,), generator=generator),
                          [str(label) for label in range(10)])
    train = DeviceBatches(split, config.batch_size, device, CIFAR10_MEAN, CIFAR10_STD,
                          train=True, augment=BatchAugment(crop_padding=max(1, size // 8)),
                          seed=seed, channels_last=paths.channels_last)
    data = SimpleNamespace(train=train, num_classes=10, skeleton="cifar")
    space = get_space("nb201")
    context = DistributedContext(rank=0, world_size=1, local_rank=0, device=device)
    return SupernetTrainer(config, space, data, context, list(space.all_architectures()),
                           paths)


def worker(index: int, args: argparse.Namespace, start, results) -> None:
    """Train under every autocast setting; report (index, amp, steps, seconds) each."""
    import torch

    from naonet.runtime import use_cpu_threads
    from naonet.training import Precision

    use_cpu_threads(args.threads, torch.device(args.device))
    trainer = build_trainer(args, seed=index)
    epoch = 0
    for amp in args.amps:
        trainer.precision = Precision.from_name(amp, torch.device(args.device))
        began = time.perf_counter()
        while True:  # warm-up, one chunk at least: kernels chosen for every shape
            trainer.epoch(epoch)
            epoch += 1
            if time.perf_counter() - began >= args.warmup:
                break
        start.wait(timeout=WAIT_SECONDS)  # the layout's processes start timing together
        began, steps = time.perf_counter(), 0
        while time.perf_counter() - began < args.seconds:
            trainer.epoch(epoch)  # ends by reading the loss back: the device is done
            epoch += 1
            steps += args.chunk
        results.put((index, amp, steps, time.perf_counter() - began))


def measure_layout(args: argparse.Namespace, processes: int) -> dict[str, list[dict]]:
    """{amp: [{steps, seconds} of every process]} for ``processes`` at once."""
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(processes), context.Queue()
    workers = [context.Process(target=worker, args=(index, args, start, results))
               for index in range(processes)]
    for process in workers:
        process.start()
    measured: dict[str, list[dict]] = {amp: [] for amp in args.amps}
    try:
        for _ in range(processes * len(args.amps)):
            _, amp, steps, seconds = results.get(timeout=WAIT_SECONDS + args.seconds)
            measured[amp].append({"steps": steps, "seconds": seconds})
    except queue.Empty:
        raise SystemExit(f"nb201_step.py: a worker of {processes} at once reported nothing "
                         f"for {WAIT_SECONDS + args.seconds:.0f} s (its error is above)") from None
    finally:
        for process in workers:
            process.join(timeout=WAIT_SECONDS)
            if process.is_alive():
                process.kill()
    return measured


def summarise(measured: dict[int, dict[str, list[dict]]], steps_per_epoch: int,
              ranking_epochs: int) -> list[dict]:
    """One row per (processes, amp): ms a step per process, steps/s in all, the ratio to
    the baseline, and the estimated seconds of the script's training steps."""
    rows = []
    for processes, by_amp in measured.items():
        for amp, runs in by_amp.items():
            rates = [run["steps"] / run["seconds"] for run in runs]
            step_ms = 1000 * len(rates) / sum(rates)  # harmonic mean over processes
            rows.append({"processes": processes, "amp": amp, "step_ms": step_ms,
                         "steps_per_second": sum(rates)})
    baseline = next((row for row in rows if (row["processes"], row["amp"]) == BASELINE),
                    None)
    ranking_steps = ranking_epochs * steps_per_epoch
    search_steps = SEARCH_EPOCHS * steps_per_epoch
    for row in rows:
        row["ratio"] = (row["steps_per_second"] / baseline["steps_per_second"]
                        if baseline else math.nan)
        if row["processes"] == 1:  # one after another: every step at one process's pace
            row["layout"] = "one after another"
            steps = RANKINGS * ranking_steps + search_steps
        else:  # at once: the rankings, the longest runs, decide
            row["layout"] = f"{row['processes']} at once"
            steps = ranking_steps
        row["estimated_seconds"] = steps * row["step_ms"] / 1000
    return rows


def fastest(rows: list[dict]) -> dict:
    """The row whose layout would finish the script's training soonest (of the layouts
    the script has: one after another, or all three at once)."""
    usable = [row for row in rows if row["processes"] in (1, 3)]
    return min(usable, key=lambda row: row["estimated_seconds"])


def table(rows: list[dict], device: str) -> str:
    lines = [f"NB201 supernet training step, nb201-rank-gpu ({device})", "",
             "| processes | autocast | ms a step (each) | steps/s (all) | vs 3 at once, bf16 "
             "| script's training, laid out so |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['processes']} | {row['amp']} | {row['step_ms']:.1f} | "
                     f"{row['steps_per_second']:.1f} | {row['ratio']:.2f}x | "
                     f"{row['estimated_seconds']:.0f} s, {row['layout']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_arguments(argv)
    from harness import describe_device

    config = search_config(args)
    steps_per_epoch = math.ceil(config.train_subset / config.batch_size)
    layouts = [1] + [count for count in args.processes if count != 1]
    measured = {processes: measure_layout(args, processes) for processes in layouts}
    rows = summarise(measured, steps_per_epoch, config.supernet_epochs)
    device = describe_device(args.device)
    print(table(rows, device))
    best = fastest(rows) if any(row["processes"] in (1, 3) for row in rows) else None
    if best:
        at_once = 3 if best["processes"] == 3 else 1
        print(f"\nfastest: {best['layout']}, autocast {best['amp']} "
              f"(NAONET_GPU_AT_ONCE={at_once} NAONET_GPU_AMP={best['amp']})")
        if args.env_file:
            args.env_file.write_text(f"NAONET_GPU_AT_ONCE={at_once}\n"
                                     f"NAONET_GPU_AMP={best['amp']}\n")
    if args.json:
        args.json.write_text(json.dumps({"device": device, "rows": rows,
                                         "measured": {str(key): value for key, value
                                                      in measured.items()}}, indent=1))
    return rows


if __name__ == "__main__":
    main()

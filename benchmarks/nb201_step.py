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
summed over its processes, the ratio to the baseline, the seconds the script would take
laid out that way (the two 50-epoch rankings and the search's 3 x 8 epochs, 391 steps of
64 each, plus an allowance per run for start-up, scoring and the search's controller:
``--ranking-overhead``, ``--search-overhead``; one after another everything adds up, at
once the longest run decides), and whether every run would end within the time the
script gives it (``--budget``). It chooses the soonest layout whose runs all fit, else
the three at once, which stops every run at the deadline with the points it scored,
where one after another a late run might not start at all. ``--env-file`` writes the
choice as ``NAONET_GPU_AT_ONCE`` and ``NAONET_GPU_AMP`` for the script.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import queue
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # also in workers

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
    parser.add_argument("--budget", type=float, default=480.0,
                        help="gpu_nb201.sh's NAONET_GPU_SECONDS, for the estimate")
    # Allowances, not measurements: in the one device session so far the search's first
    # round spent about 66 s beside its 8 epochs (start-up, scoring 200 cells, its
    # controller) with three processes sharing the GPU; a ranking starts up and scores
    # 100 cells twice.
    parser.add_argument("--ranking-overhead", type=float, default=25.0,
                        help="seconds a ranking run spends beside training (estimate)")
    parser.add_argument("--search-overhead", type=float, default=90.0,
                        help="seconds the search spends beside training (estimate)")
    parser.add_argument("--start-timeout", type=_positive_seconds, default=60.0,
                        help="seconds a layout's workers may take to start (CUDA, the "
                             "supernet) and warm up before the probe gives up")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--env-file", type=Path, default=None)
    return parser.parse_args(argv)


def _positive_seconds(text: str) -> float:
    """A number of seconds above 0 (argparse reports the refusal in one line)."""
    seconds = float(text)
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, got {text}")
    return seconds


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


def worker(index: int, args: argparse.Namespace, start, finished, results) -> None:
    """Train under every autocast setting; report (index, amp, steps, seconds) each, or
    (index, 'error', text) and break the barrier so that the others stop waiting."""
    try:
        _train_and_time(index, args, start, finished, results)
    except BaseException as error:  # noqa: BLE001 - reported to the parent, then re-raised
        # reported before the barrier breaks: the others' broken-barrier errors come after
        results.put((index, "error", f"{type(error).__name__}: {error}"))
        start.abort()
        raise


def _train_and_time(index: int, args: argparse.Namespace, start, finished, results) -> None:
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
        start.wait(timeout=args.start_timeout)  # the layout's processes time together
        began, steps = time.perf_counter(), 0
        while time.perf_counter() - began < args.seconds:
            trainer.epoch(epoch)  # ends by reading the loss back: the device is done
            epoch += 1
            steps += args.chunk
        results.put((index, amp, steps, time.perf_counter() - began))
        with finished.get_lock():
            finished.value += 1
        # Untimed training until every process has timed its window, so that none of
        # them ends its window with the device to itself.
        while finished.value < start.parties * (args.amps.index(amp) + 1):
            trainer.epoch(epoch)
            epoch += 1


def measure_layout(args: argparse.Namespace, processes: int) -> dict[str, list[dict]]:
    """{amp: [{steps, seconds} of every process]} for ``processes`` at once; a worker
    that fails or hangs ends the probe at once with its error."""
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(processes), context.Queue()
    finished = context.Value("i", 0)
    workers = [context.Process(target=worker, args=(index, args, start, finished, results))
               for index in range(processes)]
    for process in workers:
        process.start()
    measured: dict[str, list[dict]] = {amp: [] for amp in args.amps}
    deadline = (time.monotonic() + args.start_timeout
                + len(args.amps) * (args.warmup + 2 * args.seconds))
    try:
        for _ in range(processes * len(args.amps)):
            report = _next_report(results, workers, deadline, args.start_timeout)
            if report[1] == "error":
                raise SystemExit(f"nb201_step.py: worker {report[0]} of {processes} at once "
                                 f"failed: {report[2]}")
            _, amp, steps, seconds = report
            measured[amp].append({"steps": steps, "seconds": seconds})
    finally:
        for process in workers:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    return measured


def _next_report(results, workers, deadline: float, start_timeout: float) -> tuple:
    """The next report, polled every second; a SystemExit when a worker died without one
    or the deadline passed."""
    while True:
        try:
            return results.get(timeout=1)
        except queue.Empty:
            dead = [process.exitcode for process in workers
                    if process.exitcode not in (None, 0)]
            if dead:
                raise SystemExit(f"nb201_step.py: a worker died (exit {dead[0]}) without "
                                 "a report; its error is above") from None
            if time.monotonic() > deadline:
                raise SystemExit("nb201_step.py: the workers reported nothing in time "
                                 f"({start_timeout:g} s for start-up and warm-up; "
                                 "--start-timeout gives more)") from None


@dataclass(frozen=True)
class Plan:
    """What the estimate needs of gpu_nb201.sh: its budget, its runs' training steps,
    and the seconds each run spends beside training."""

    budget: float  # NAONET_GPU_SECONDS; every run stops 20 s before it
    ranking_steps: int
    search_steps: int
    ranking_overhead: float
    search_overhead: float

    def runs(self) -> list[tuple[int, float]]:
        """(training steps, other seconds) of uniform, balanced, the search: the order in
        which the script runs them one after another."""
        return [(self.ranking_steps, self.ranking_overhead)] * RANKINGS + [
            (self.search_steps, self.search_overhead)]


def summarise(measured: dict[int, dict[str, list[dict]]], plan: Plan) -> list[dict]:
    """One row per (processes, amp): ms a step per process, steps/s in all, the ratio to
    the baseline, the estimated seconds of the script laid out so, and whether every
    run would finish in the time the script gives it."""
    rows = []
    for processes, by_amp in measured.items():
        for amp, runs in by_amp.items():
            rates = [run["steps"] / run["seconds"] for run in runs]
            step_ms = 1000 * len(rates) / sum(rates)  # harmonic mean over processes
            rows.append({"processes": processes, "amp": amp, "step_ms": step_ms,
                         "steps_per_second": sum(rates)})
    baseline = next((row for row in rows if (row["processes"], row["amp"]) == BASELINE),
                    None)
    for row in rows:
        row["ratio"] = (row["steps_per_second"] / baseline["steps_per_second"]
                        if baseline else math.nan)
        seconds = [steps * row["step_ms"] / 1000 + other for steps, other in plan.runs()]
        if row["processes"] == 1:  # one after another: everything adds up
            row["layout"] = "one after another"
            row["estimated_seconds"] = sum(seconds)
            row["fits"] = fits_one_after_another(seconds, plan.budget)
        else:  # at once, every step at the shared pace: the longest run decides
            row["layout"] = f"{row['processes']} at once"
            row["estimated_seconds"] = max(seconds)
            row["fits"] = max(seconds) <= plan.budget - 20
    return rows


def fits_one_after_another(seconds: list[float], budget: float) -> bool:
    """Whether each run ends within what gpu_nb201.sh's ``limit`` gives it: the time left
    before the deadline (20 s before the budget's end), less 60 % of the budget kept for
    the runs after uniform and 20 % for the search after balanced."""
    deadline, now = budget - 20, 0.0
    for run_seconds, kept in zip(seconds, (0.6, 0.2, 0.0), strict=True):
        if run_seconds > deadline - now - budget * kept:
            return False
        now += run_seconds
    return True


def choose(rows: list[dict]) -> dict:
    """The layout for gpu_nb201.sh (it has two: one after another, and the three at once):
    the soonest of those whose every run fits its time; where none fits, the soonest at
    once, which stops every run at the deadline with the points it scored (one after
    another, a late run may not start at all)."""
    usable = [row for row in rows if row["processes"] in (1, 3)]
    fitting = [row for row in usable if row["fits"]]
    at_once = [row for row in usable if row["processes"] == 3]
    return min(fitting or at_once or usable, key=lambda row: row["estimated_seconds"])


def table(rows: list[dict], device: str) -> str:
    lines = [f"NB201 supernet training step, nb201-rank-gpu ({device})", "",
             "| processes | autocast | ms a step (each) | steps/s (all) | vs 3 at once, bf16 "
             "| gpu_nb201.sh laid out so | every run in its time |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['processes']} | {row['amp']} | {row['step_ms']:.1f} | "
                     f"{row['steps_per_second']:.1f} | {row['ratio']:.2f}x | "
                     f"{row['estimated_seconds']:.0f} s, {row['layout']} | "
                     f"{'yes' if row['fits'] else 'no'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_arguments(argv)
    from harness import describe_device

    config = search_config(args)
    steps_per_epoch = math.ceil(config.train_subset / config.batch_size)
    plan = Plan(args.budget, config.supernet_epochs * steps_per_epoch,
                SEARCH_EPOCHS * steps_per_epoch, args.ranking_overhead, args.search_overhead)
    layouts = [1] + [count for count in args.processes if count != 1]
    measured = {processes: measure_layout(args, processes) for processes in layouts}
    rows = summarise(measured, plan)
    device = describe_device(args.device)
    print(table(rows, device))
    if any(row["processes"] in (1, 3) for row in rows):
        best = choose(rows)
        at_once = 3 if best["processes"] == 3 else 1
        ending = "every run in its time" if best["fits"] else "runs cut at the deadline"
        print(f"\nchosen: {best['layout']}, autocast {best['amp']}, about "
              f"{best['estimated_seconds']:.0f} s ({ending}; "
              f"NAONET_GPU_AT_ONCE={at_once} NAONET_GPU_AMP={best['amp']})")
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

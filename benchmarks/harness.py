"""Interleaved baseline-versus-naonet measurements, one worker process per variant.

Each figure script defines a :class:`Figure` and calls :func:`main`. The baseline and
naonet's default run in two worker processes started side by side (process-wide
settings such as the host allocator or compiled graphs cannot leak from one into the
other); the parent asks them for one timed run at a time, alternating A B, B A, A B, ...
so that load from other programs on the machine hits both alike. Every run reports
(work units, seconds) per part; the table shows the median throughput of each
variant, its range, and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

VARIANTS = ("baseline", "naonet")


@dataclass(frozen=True)
class Figure:
    """One benchmark figure: what is measured, at which sizes, and how to build it.

    ``build(variant, size, device)`` returns a workload with ``label`` (its settings in
    words), ``warmup()`` and ``run() -> {part: (units, seconds)}``.
    """

    key: str
    title: str
    unit: str
    sizes: dict[str, dict]  # 'small' (the CPU default) and 'full'
    build: Callable
    module: str  # the script's module name, imported again in each worker


@dataclass
class Row:
    """One measured part of a figure, both variants."""

    part: str
    unit: str
    baseline: list[float] = field(default_factory=list)  # throughput of every run
    naonet: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        if not self.naonet or not self.baseline:
            return float("nan")
        return statistics.median(self.naonet) / statistics.median(self.baseline)


@dataclass
class Report:
    """Everything a figure's table shows; also written as JSON for docs/benchmarks.md."""

    key: str
    title: str
    size_name: str
    size: dict
    device: str
    threads: int
    torch: str
    rounds: int
    labels: dict[str, str]
    rows: list[Row]
    seconds: float
    host: str = field(default_factory=platform.node)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> Report:
        values = json.loads(text)
        values["rows"] = [Row(**row) for row in values["rows"]]
        return cls(**values)


# --------------------------------------------------------------------------- workers
def _worker(module: str, variant: str, size: dict, device_name: str, threads: int,
            start_method: str, connection) -> None:
    """Build one variant's workload, warm it up, then serve 'run' requests."""
    try:
        import importlib

        # A spawned process defaults to spawning its own children; DataLoader workers
        # must start the way they do under a plain `python script.py` (fork on Linux).
        multiprocessing.set_start_method(start_method, force=True)

        import torch

        torch.set_num_threads(threads)
        figure: Figure = importlib.import_module(module).FIGURE
        workload = figure.build(variant, size, torch.device(device_name))
        workload.warmup()
        connection.send(("ready", workload.label))
        while connection.recv() == "run":
            connection.send(("result", workload.run()))
    except Exception:  # noqa: BLE001 - report any failure to the parent, then stop
        connection.send(("error", traceback.format_exc()))


class _Worker:
    def __init__(self, context, module: str, variant: str, size: dict, device: str,
                 threads: int):
        self.variant = variant
        self.connection, child = context.Pipe()
        # Not a daemon: workers start DataLoader processes of their own.
        self.process = context.Process(target=_worker,
                                       args=(module, variant, size, device, threads,
                                             multiprocessing.get_start_method(), child))
        self.process.start()

    def receive(self, expected: str):
        kind, payload = self.connection.recv()
        if kind == "error":
            raise RuntimeError(f"{self.variant} worker failed:\n{payload}")
        assert kind == expected, kind
        return payload

    def run(self) -> dict[str, tuple[float, float]]:
        self.connection.send("run")
        return self.receive("result")

    def stop(self, force: bool = False) -> None:
        """Let the worker finish (or, with ``force``, end it now: it may be mid-run)."""
        if force:
            self.process.terminate()
        else:
            try:
                self.connection.send("stop")
            except (BrokenPipeError, OSError):
                pass
        self.process.join(timeout=30)
        if self.process.is_alive():
            self.process.kill()


# --------------------------------------------------------------------------- main
def parse_arguments(figure: Figure, argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=f"({figure.key}) {figure.title}: the eager "
                                     "float32 baseline against naonet's defaults, interleaved.")
    parser.add_argument("--full", action="store_true",
                        help="the published sizes (default: sizes small enough for a CPU)")
    parser.add_argument("--device", default="auto", help="auto (cuda if present), cpu, cuda")
    parser.add_argument("--rounds", type=int, default=None,
                        help="timed runs per variant (default: the size's)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per worker (default: OMP_NUM_THREADS, else all)")
    parser.add_argument("--json", default=None, help="also write the report to this file "
                        "(rewritten after every round)")
    parser.add_argument("--time-limit", type=float, default=None,
                        help="seconds: start no round that would end after this (the report "
                        "then holds the rounds done)")
    return parser.parse_args(argv)


def resolve_device_name(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def describe_device(device_name: str) -> str:
    """The card's name on CUDA; the processor's model on the CPU."""
    import torch

    if device_name.startswith("cuda"):
        return f"cuda: {torch.cuda.get_device_name(torch.device(device_name))}"
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"cpu: {model}, {os.cpu_count()} cores"


def main(figure: Figure, argv: list[str] | None = None) -> Report:
    """Measure ``figure`` as the command line asks, print its table, return the report."""
    try:
        return _measure(figure, parse_arguments(figure, argv))
    except KeyboardInterrupt:  # what `timeout --signal=INT` sends: end quietly
        print(f"({figure.key}) interrupted; the report holds the rounds done",
              file=sys.stderr)
        raise SystemExit(130) from None


def _measure(figure: Figure, args: argparse.Namespace) -> Report:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle workers must not spin
    size_name = "full" if args.full else "small"
    size = dict(figure.sizes[size_name])
    rounds = args.rounds or size.get("rounds", 3)
    device = resolve_device_name(args.device)
    import torch

    threads = args.threads or int(os.environ.get("OMP_NUM_THREADS", 0)) or \
        torch.get_num_threads()
    start = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    workers = [_Worker(context, figure.module, variant, size, device, threads)
               for variant in VARIANTS]
    labels: dict[str, str] = {}
    rows: dict[str, Row] = {}
    done = 0

    def report() -> Report:
        return Report(figure.key, figure.title, size_name, size, describe_device(device),
                      threads, torch.__version__, done, labels, list(rows.values()),
                      time.perf_counter() - start)

    finished = False
    try:
        labels.update({worker.variant: worker.receive("ready") for worker in workers})
        for round_index in range(rounds):
            began = time.perf_counter()
            order = workers if round_index % 2 == 0 else workers[::-1]
            for worker in order:
                for part, (units, seconds) in worker.run().items():
                    row = rows.setdefault(part, Row(part, figure.unit))
                    getattr(row, worker.variant).append(units / seconds)
            done += 1
            if args.json:
                from naonet.files import atomic_write_text

                atomic_write_text(args.json, report().to_json())
            now = time.perf_counter()
            print(f"  round {done}/{rounds} done ({now - start:.0f} s)", file=sys.stderr,
                  flush=True)
            if args.time_limit and now - start + (now - began) > args.time_limit:
                print(f"  stopping after {done} rounds: --time-limit {args.time_limit:.0f} s",
                      file=sys.stderr, flush=True)
                break
        finished = True
    finally:
        for worker in workers:
            worker.stop(force=not finished)
        if rows:
            print(format_report(report()), flush=True)
    return report()


# --------------------------------------------------------------------------- tables
def _throughput(values: list[float]) -> str:
    if not values:
        return "-"
    median = statistics.median(values)
    if len(values) < 2:
        return _number(median)
    return f"{_number(median)} ({_number(min(values))}-{_number(max(values))})"


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def size_text(size: dict) -> str:
    return ", ".join(f"{key} {value}" for key, value in size.items() if key != "rounds")


def format_report(report: Report) -> str:
    """The figure's table (markdown), with the device, both settings and the ratio."""
    lines = [f"({report.key}) {report.title} - {report.size_name} size: "
             f"{size_text(report.size)}",
             f"device {report.device}; {report.threads} thread(s) per process; torch "
             f"{report.torch}; {report.rounds} interleaved run(s) per variant "
             f"({report.seconds:.0f} s)",
             f"baseline: {report.labels['baseline']}",
             f"naonet default: {report.labels['naonet']}",
             "",
             "| measured | unit | baseline | naonet default | ratio |",
             "|---|---|---|---|---|"]
    for row in report.rows:
        lines.append(f"| {row.part} | {row.unit} | {_throughput(row.baseline)} | "
                     f"{_throughput(row.naonet)} | {row.ratio:.2f}x |")
    return "\n".join(lines)


def summary_table(reports: list[Report]) -> str:
    """One markdown table of several figures (what docs/benchmarks.md shows)."""
    lines = ["| figure | size | device | threads | unit | baseline | naonet default | ratio |",
             "|---|---|---|---|---|---|---|---|"]
    for report in reports:
        for row in report.rows:
            name = f"({report.key}) {report.title}" + (f": {row.part}" if row.part != "all"
                                                        else "")
            lines.append(f"| {name} | {report.size_name} | {report.device} | "
                         f"{report.threads} | {row.unit} | {_throughput(row.baseline)} | "
                         f"{_throughput(row.naonet)} | **{row.ratio:.2f}x** |")
    return "\n".join(lines)

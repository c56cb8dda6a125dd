"""Operator calls (and, on CUDA, kernels) a step of the NB201 supernet at the paper's
scale launches, by phase, with the gradients cleared as the training engine clears them
and, as the baseline in the same run, by ``optimizer.zero_grad(set_to_none=False)``.

    python benchmarks/step_operators.py [--device cuda] [--steps 20]
    python benchmarks/step_operators.py --device cpu --image-size 8

Where a step is bound by the host launching kernels (the NB201 supernet on a GPU), every
call the host makes costs time whatever its arithmetic, so the count is the figure to
lower. It trains as ``benchmarks/nb201_step.py`` does (the preset ``nb201-rank-gpu``'s
``SupernetTrainer`` on random images, one uniformly drawn cell a step) and counts, with
PyTorch's profiler, the top-level ATen operator calls of each phase: clearing the
gradients, the optimizer's step, and everything else (forward, backward, clipping, the
device pipeline). On the CPU, SGD steps one parameter at a time unless asked for its
multi-tensor kernels, which CUDA uses by default; ``--foreach`` (the default) asks for
them, so that the CPU counts what a GPU step calls.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from naonet.training.engine import zero_gradients as ENGINE_ZERO_GRADIENTS  # noqa: E402

CLEAR_RANGE = "clear gradients"
PHASES = {CLEAR_RANGE: CLEAR_RANGE, "Optimizer.step": "optimizer step"}  # range: phase
WARMUP_EPOCHS = 20  # of --steps each, at most
REST = "forward, backward and the rest"
PHASE_NAMES = (CLEAR_RANGE, "optimizer step", REST)


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=20, help="profiled steps")
    parser.add_argument("--cells-per-stage", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--no-foreach", dest="foreach", action="store_false",
                        help="SGD's own choice of kernels (per parameter on the CPU)")
    return parser.parse_args(argv)


def build(args: argparse.Namespace, baseline: bool):
    """A trainer whose gradients are cleared by the optimizer (``baseline``) or as the
    engine clears them; either way inside a profiler range named "clear gradients"."""
    import nb201_step
    import torch

    from naonet.training import engine

    step_args = nb201_step.parse_arguments(
        ["--device", args.device, "--cells-per-stage", str(args.cells_per_stage),
         "--image-size", str(args.image_size), "--chunk", str(args.steps), "--amps", "none"])
    trainer = nb201_step.build_trainer(step_args, seed=0)
    if args.foreach:  # the step as on CUDA; zero_grad reads the defaults, left as SGD set them
        for group in trainer.optimizer.param_groups:
            group["foreach"] = True

    def clear(optimizer) -> None:
        with torch.profiler.record_function(CLEAR_RANGE):
            if baseline:
                optimizer.zero_grad(set_to_none=False)
            else:
                ENGINE_ZERO_GRADIENTS(optimizer)

    engine.zero_gradients = clear
    for epoch in range(WARMUP_EPOCHS):  # until every parameter holds a gradient, as
        trainer.epoch(epoch)           # it does a few steps into a search
        if all(parameter.grad is not None for parameter in trainer.supernet.parameters()):
            break
    return trainer


def count(trainer, args: argparse.Namespace) -> dict[str, float]:
    """Top-level operator calls a step, by phase (and CUDA kernels, on CUDA)."""
    from torch.profiler import ProfilerActivity, profile

    cuda = args.device.startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as profiler:
        trainer.epoch(WARMUP_EPOCHS)
    calls: collections.Counter = collections.Counter()
    kernels = 0
    for event in profiler.events():
        if cuda and str(event.device_type).endswith("CUDA"):
            kernels += 1
        elif event.name.startswith("aten::") and not _is_nested(event):
            calls[_phase(event)] += 1
    result = {phase: calls[phase] / args.steps for phase in PHASE_NAMES}
    result["all"] = sum(calls.values()) / args.steps
    if cuda:
        result["CUDA kernels"] = kernels / args.steps
    return result


def _is_nested(event) -> bool:
    return event.cpu_parent is not None and event.cpu_parent.name.startswith("aten::")


def _phase(event) -> str:
    parent = event.cpu_parent
    while parent is not None:
        for prefix, phase in PHASES.items():
            if parent.name.startswith(prefix):
                return phase
        parent = parent.cpu_parent
    return REST


def main(argv: list[str] | None = None) -> dict:
    import torch
    from harness import describe_device

    args = parse_arguments(argv)
    torch.set_num_threads(1)
    figures = {}
    for name, baseline in (("optimizer.zero_grad (baseline)", True),
                           ("the engine's zero_gradients", False)):
        figures[name] = count(build(args, baseline), args)
    print(f"NB201 supernet step, C 16, {args.cells_per_stage} cells per stage, "
          f"{args.image_size} px, batch 64; {describe_device(args.device)}")
    phases = list(next(iter(figures.values())))
    print("| gradients cleared by | " + " | ".join(phases) + " |")
    print("|---|" + "---|" * len(phases))
    for name, row in figures.items():
        print(f"| {name} | " + " | ".join(f"{row[phase]:.0f}" for phase in phases) + " |")
    base, ours = figures.values()
    print(f"\noperator calls a step: {ours['all']:.0f} against {base['all']:.0f}, "
          f"ratio {ours['all'] / base['all']:.2f}")
    return figures


if __name__ == "__main__":
    main()

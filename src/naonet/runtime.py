"""Fast paths of the execution, each a named option with a default per device.

* ``host_allocator``: ``retain`` keeps freed host memory in the process instead of
  returning it to the operating system (glibc ``mallopt``). glibc serves large
  blocks with ``mmap`` and unmaps them on free, so every large CPU tensor of a step is
  page-faulted in afresh; on virtual machines that is slow (measured: scoring with a
  batch of 500 images ran 2-2.5x faster on the CPU with ``retain``). Default: ``retain``
  on the CPU, ``system`` elsewhere.
* ``channels_last``: NHWC activations. oneDNN's depthwise convolutions are about 2x
  faster in NHWC on the CPU, and it is the layout tensor cores want on CUDA.
* ``amp``: ``auto`` is bfloat16 autocast on CUDA devices that support it (no loss
  scaling, so no host synchronisation per step) and float32 elsewhere.
* ``compile``: ``auto`` compiles the discrete networks with ``torch.compile`` on CUDA
  only; on the CPU compiling NAONet takes minutes, more than it saves in a short run.
  A compilation that fails falls back to eager execution with one warning.

:func:`configure_backends` enables cuDNN's autotuner (fixed shapes) on CUDA.
:func:`small_kernel_threads` runs the controller on one CPU thread while OpenMP's
threads sleep between kernels (``OMP_WAIT_POLICY=PASSIVE``, naonet's default);
:func:`use_cpu_threads` sets a run's thread count from its configuration and
:func:`keep_cpu_threads` restores the caller's afterwards.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from naonet.errors import UserError

HOST_ALLOCATORS = ("auto", "retain", "system")
COMPILE_MODES = ("auto", "on", "off")
AMP_MODES = ("auto", "none", "bf16", "fp16")

# glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_NEVER_TRIM = 2**31 - 1  # mallopt takes an int; this disables trimming in practice

_allocator_applied: str | None = None


@dataclass(frozen=True)
class FastPaths:
    """Resolved fast-path settings of one process (what 'auto' became on this device)."""

    channels_last: bool
    amp: str  # 'none' | 'bf16' | 'fp16'
    compile: bool
    host_allocator: str  # 'retain' | 'system'

    @classmethod
    def resolve(cls, device: torch.device, *, channels_last: bool = True, amp: str = "auto",
                compile: str = "auto", host_allocator: str = "auto") -> FastPaths:
        """The settings that ``auto`` stands for on ``device``; validates the names."""
        return cls(channels_last, resolve_amp(amp, device), resolve_compile(compile, device),
                   resolve_host_allocator(host_allocator, device))

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """One line for logs and benchmark tables."""
        parts = ["channels_last" if self.channels_last else "NCHW",
                 "fp32" if self.amp == "none" else self.amp,
                 "compiled" if self.compile else "eager"]
        if self.host_allocator == "retain":
            parts.append("retained host memory")
        return ", ".join(parts)


def _check(value: str, choices: tuple[str, ...], what: str) -> None:
    if value not in choices:
        raise UserError(f"{what} must be one of {', '.join(choices)}, got {value!r}")


# CPU instructions that compute in bfloat16 (x86's); without them bf16 autocast converts
# to float32 and back around every operation
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpuinfo_field(name: str) -> str | None:
    """A field of the first processor in ``/proc/cpuinfo`` (Linux's: ``model name``,
    x86's ``flags``), None where the system does not list it."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return None


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags (x86 Linux lists them), None where they are not listed."""
    flags = cpuinfo_field("flags")
    return None if flags is None else set(flags.split())


def slow_bf16_note(device: torch.device, amp: str, flags: set[str] | None = None) -> str | None:
    """A note for bf16 autocast on a CPU that lists its features and has no bf16 unit
    (``flags``: the CPU's, read when None), where it trains slower than float32
    (measured 1.4x to 7x a step on this project's 2-core machine); None elsewhere."""
    if amp != "bf16" or device.type != "cpu":
        return None
    flags = cpu_flags() if flags is None else flags
    if flags is None or any(flag in flags for flag in CPU_BF16_FLAGS):
        return None
    return ("note: this CPU has no bf16 instructions (avx512_bf16, amx_bf16), so bf16 "
            "autocast trains slower than float32 on it; drop --amp bf16 for speed")


def resolve_amp(amp: str, device: torch.device) -> str:
    """'auto': bf16 on CUDA devices with bfloat16 support, none (float32) elsewhere. A
    UserError for fp16 off CUDA (its gradient scaler and kernels are CUDA's)."""
    _check(amp, AMP_MODES, "amp")
    if amp == "fp16" and device.type != "cuda":
        raise UserError("--amp fp16 needs a CUDA device; use --amp bf16 on this device")
    if amp != "auto":
        return amp
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    return "none"


def resolve_compile(mode: str, device: torch.device) -> bool:
    """'auto': compile on CUDA when Triton is importable; never on other devices."""
    _check(mode, COMPILE_MODES, "compile")
    if mode != "auto":
        return mode == "on"
    return device.type == "cuda" and _has_triton()


def resolve_host_allocator(mode: str, device: torch.device) -> str:
    """'auto': retain host memory when the network runs on the CPU (and libc is glibc)."""
    _check(mode, HOST_ALLOCATORS, "host-allocator")
    if mode == "auto":
        mode = "retain" if device.type == "cpu" else "system"
    if mode == "retain" and not _is_glibc():
        return "system"
    return mode


def _has_triton() -> bool:
    try:
        from torch.utils._triton import has_triton
    except ImportError:
        return False
    return has_triton()


def _is_glibc() -> bool:
    return sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def apply_host_allocator(mode: str) -> str:
    """Apply a resolved host-allocator mode to this process; returns what is in effect.

    ``retain`` is process-wide and one-way (glibc offers no way back to its adaptive
    default), so ``system`` after ``retain`` leaves ``retain`` in place.
    """
    global _allocator_applied
    if mode != "retain" or _allocator_applied == "retain":
        return _allocator_applied or "system"
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    # Large blocks from the heap instead of fresh mmaps, and freed memory kept there:
    # the next step's tensors reuse pages that are already mapped.
    if libc.mallopt(_M_MMAP_MAX, 0) and libc.mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM):
        _allocator_applied = "retain"
    return _allocator_applied or "system"


def configure_backends(device: torch.device) -> None:
    """Backend switches that only help: cuDNN autotuning for the fixed shapes of CIFAR."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def apply(paths: FastPaths, device: torch.device) -> None:
    """Apply the process-wide parts of ``paths`` (allocator, backend switches)."""
    apply_host_allocator(paths.host_allocator)
    configure_backends(device)


def sum_dtype(device: torch.device) -> torch.dtype:
    """The dtype of running sums on ``device`` (losses, correct counts): float64, exact
    for any number of images, except on MPS, which has no float64 (float32 there)."""
    return torch.float32 if torch.device(device).type == "mps" else torch.float64


def to_memory_format(module: nn.Module, channels_last: bool) -> nn.Module:
    """``module`` with NHWC parameters when ``channels_last`` (in place; returned)."""
    return module.to(memory_format=torch.channels_last) if channels_last else module


def input_memory_format(module: nn.Module) -> torch.memory_format:
    """channels_last if the module's first 4-d weight is stored NHWC, else contiguous."""
    for parameter in module.parameters():
        if parameter.dim() == 4 and parameter.shape[1] > 1 and parameter.shape[2:].numel() > 1:
            if parameter.is_contiguous(memory_format=torch.channels_last) and \
                    not parameter.is_contiguous():
                return torch.channels_last
            return torch.contiguous_format
    return torch.contiguous_format


@contextmanager
def evaluating(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` in evaluation mode (no dropout, BatchNorm's running statistics) for the
    duration; afterwards each of its submodules is in the mode it was in."""
    modes = [(part, part.training) for part in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for part, training in modes:
            part.training = training


class CompiledNetwork(nn.Module):
    """A network run through ``torch.compile`` for its usual batch size.

    * The first batch size seen in each mode (train/eval) is compiled; other sizes (the
      last, partial batch of an epoch) run eagerly on the same parameters instead of
      triggering a second, dynamic-shape compilation.
    * If compilation fails, a warning is shown once and the network runs eagerly.

    ``state_dict`` keys are the network's own (the compiled wrapper is not a submodule);
    attribute access falls through to the network (``set_training_progress`` etc.).
    """

    def __init__(self, network: nn.Module, **compile_options):
        super().__init__()
        self.network = network
        # Not a registered submodule: it shares the network's parameters.
        object.__setattr__(self, "_compiled", torch.compile(network, **compile_options))
        self._batch_size: dict[bool, int] = {}  # per mode (training flag)
        self._compiled_modes: set[bool] = set()  # modes whose compilation succeeded
        self.fallen_back = False

    def forward(self, images: torch.Tensor, *args, **kwargs):
        expected = self._batch_size.setdefault(self.training, images.shape[0])
        if self.fallen_back or images.shape[0] != expected:
            return self.network(images, *args, **kwargs)
        if self.training in self._compiled_modes:
            return self._compiled(images, *args, **kwargs)
        try:  # the first call of a mode compiles
            outputs = self._compiled(images, *args, **kwargs)
        except Exception as error:  # noqa: BLE001 - any backend failure: run eagerly
            failure = error
        else:
            self._compiled_modes.add(self.training)
            return outputs
        # An error of the network itself (a wrong input, out of memory) fails the eager run
        # too and is raised as it is, not announced as the compiler's.
        outputs = self.network(images, *args, **kwargs)
        self.fallen_back = True
        warnings.warn(f"torch.compile failed ({type(failure).__name__}: "
                      f"{str(failure).splitlines()[0] if str(failure) else ''}); running "
                      "eagerly (pass --compile off to skip compiling)", stacklevel=2)
        return outputs

    def state_dict(self, *args, **kwargs):
        return self.network.state_dict(*args, **kwargs)

    def load_state_dict(self, *args, **kwargs):
        return self.network.load_state_dict(*args, **kwargs)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "network":  # not set yet: no fall-through
                raise
            return getattr(self.network, name)


def maybe_compile(network: nn.Module, enabled: bool, **compile_options) -> nn.Module:
    """``CompiledNetwork(network)`` when ``enabled``, else ``network`` itself."""
    return CompiledNetwork(network, **compile_options) if enabled else network


def usable_cores() -> int:
    """The CPU cores this process may run on (a container's or a job's share, where the
    system says; else the machine's)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


# Loader processes per core: decoding waits on the disk at times, so a few per core still
# help; far more only fill memory (--workers 100000 exhausted 24 GB before a line).
WORKERS_PER_CORE = 4


def check_worker_count(workers: int) -> None:
    """A UserError for more loader processes (per loader) than this machine can use."""
    cores = usable_cores()
    most = WORKERS_PER_CORE * cores
    if workers > most:
        raise UserError(f"--workers {workers:,} is more than {WORKERS_PER_CORE} per core "
                        f"({cores} cores here) for each of a run's loaders; pass at most "
                        f"{most} (0: load in the main process)")


def use_cpu_threads(threads: int, device: torch.device) -> None:
    """``threads`` intra-op threads for this process's CPU kernels when ``device`` is the
    CPU (0: leave torch's default, which follows ``OMP_NUM_THREADS``); an accelerator's
    run keeps its host threads for data loading and augmentation. Callers that return to
    other code wrap the run in :func:`keep_cpu_threads`."""
    if threads and device.type == "cpu":
        cores = usable_cores()
        if threads > cores:  # thousands hung torch, a hundred thousand crashed it
            raise UserError(f"--threads {threads} is more than the {cores} cores here; pass "
                            f"at most {cores} (0: torch's default)")
        torch.set_num_threads(threads)


@contextmanager
def keep_cpu_threads() -> Iterator[None]:
    """The process's intra-op thread count as it was before, once the block ends (a run
    inside may set its own with :func:`use_cpu_threads`)."""
    previous = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextmanager
def small_kernel_threads(device: torch.device) -> Iterator[int]:
    """One intra-op thread for the duration on the CPU under a passive OpenMP wait
    policy, then the previous count; nothing changes elsewhere. Yields the number of
    threads the caller may run side by side instead (the previous count there, else 1).

    With passive waiting every parallel kernel first wakes the sleeping threads; for
    the controller's kernels (batches of 100 rows, hidden size 64) the wake-up costs
    more than the second thread saves. Measured on 2 cores: an LSTM step's forward and
    backward 8.9 ms on one thread against 20.8 ms on two (3.5 ms on two busy-waiting
    threads, which stall any other process on the machine).
    """
    passive = os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"
    if device.type != "cpu" or not passive or torch.get_num_threads() == 1:
        yield 1
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield previous
    finally:
        torch.set_num_threads(previous)

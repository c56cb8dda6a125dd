"""Searching under a budget: limits on the parameters, multiply-adds and latency of the
network an architecture becomes, and a space that only yields architectures within them.

Costs are those of the discrete network at its final size (``space.final_size``: the
benchmark's C 16, N 5 for NB201; NAONet-V2-36's C 36, N 6 for the NAO cell spaces;
``Budget.channels`` / ``layers`` override, as a search sets them from
``space.final_size_for(dataset)``: the ImageNet preset's C 52, N 4 on ImageNet), never of
the supernet. Parameters and
multiply-adds come from the space's formulas (``parameter_count``, ``multiply_adds``:
well under a millisecond, so every output line carries both); latency from timing the
network on the given device, at
batch 1 and at ``latency_batch``, cached per device in ``$NAONET_CACHE/latency.json`` so
no search times an architecture twice.

:class:`FeasibleSpace` wraps any registered space: ``sample`` and ``mutate`` yield only
architectures within the budget, so random search, evolution and NAO's fills obey it
unchanged; ``feasible`` is what NAO's generation checks each decoded architecture
with (:func:`naonet.controller.generation.generate_architectures`, ``accept``).
"""

from __future__ import annotations

import json
import math
import platform
import random
import statistics
import time
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import torch

from naonet.errors import UserError
from naonet.options import check_field_types, flag_name
from naonet.spaces.protocol import ENUMERABLE_SIZE

MAX_SAMPLE_DRAWS = 20_000  # random draws before a budget is declared unmeetable
LATENCY_PROBES = 100  # timed random networks without one in the budget: none will be
MAX_MUTATION_TRIES = 100
WALK_STEPS = 10  # mutations tried per random walk from an architecture within the budget
# Bump when the networks compute differently, so cached latencies are measured again
# (2: FactorizedReduce subsamples and runs stride-1 convolutions).
LATENCY_FORMAT = 2
LATENCY_WARMUP, LATENCY_REPEATS = 2, 7
LATENCY_CACHE_NAME = "latency.json"
TIMED_DEVICES = ("cpu", "cuda", "mps")


@dataclass(frozen=True)
class Budget:
    """Limits on the final network (None: no limit); the size it is measured at."""

    max_params: int | None = None
    max_macs: int | None = None
    max_latency_ms: float | None = None
    latency_batch: int = 1  # latency is timed at batch 1 and at this batch; the limit
    # applies to this batch
    channels: int = 0  # 0: the space's final size
    layers: int = 0
    image_size: int = 32

    def __post_init__(self) -> None:
        check_field_types(self, finite=False)  # below: a limit is positive and finite
        for name in ("max_params", "max_macs", "max_latency_ms"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise UserError(f"{flag_name(name)} must be a positive number, got "
                                f"{value} (leave it out for no limit)")
        if self.latency_batch < 1:
            raise UserError(f"--latency-batch must be >= 1, got {self.latency_batch}")
        if self.image_size < 1:
            raise UserError(f"the image size of a budget must be >= 1, got {self.image_size}")

    @property
    def active(self) -> bool:
        return any(value is not None for value in (self.max_params, self.max_macs,
                                                   self.max_latency_ms))

    def text(self) -> str:
        """' within parameters <= 157,306, ...' for a budget; '' for none."""
        named = {"max_params": "parameters", "max_macs": "multiply-adds",
                 "max_latency_ms": f"latency ms at batch {self.latency_batch}"}
        limited = [f"{named[key]} <= {getattr(self, key):,}" for key in named
                   if getattr(self, key) is not None]
        return " within " + ", ".join(limited) if limited else ""

    def sizes_allow(self, meter, architecture) -> bool:
        """Whether ``architecture``'s parameters and multiply-adds, as ``meter`` counts
        them, are within the limits (the counted costs; latency is timed)."""
        return ((self.max_params is None or meter.parameters(architecture) <= self.max_params)
                and (self.max_macs is None or meter.macs(architecture) <= self.max_macs))

    def to_dict(self) -> dict:
        return asdict(self)


def device_name(device: torch.device) -> str:
    """What latency measurements are keyed by: the processor and the thread count."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    if device.type == "cpu":
        from naonet.runtime import cpuinfo_field

        model = cpuinfo_field("model name") or platform.processor() or platform.machine()
        return f"cpu:{model}:{torch.get_num_threads()} threads"
    return device.type


def _name(architecture) -> str:
    """An architecture's text, as latencies are known by."""
    if hasattr(architecture, "to_qualified_string"):
        return architecture.to_qualified_string()
    return str(architecture)


def check_latency_batch_read(typed: int | None, max_latency_ms: float | None) -> None:
    """A UserError for a ``--latency-batch`` typed (``typed``; None: not given) without a
    latency limit, which nothing else reads (a saved config holding one resumes: see
    :func:`latency_batch_as_saved`)."""
    if typed is not None and typed != 1 and max_latency_ms is None:
        raise UserError(f"--latency-batch {typed} is the batch a --max-latency-ms limit is "
                        "timed at; give --max-latency-ms, or drop --latency-batch")


def latency_batch_as_saved(saved: dict, current: dict) -> dict:
    """``current`` (a search's options) with the ``saved`` run's latency batch where
    neither limits latency: the batch is then read by nothing (a run from before it was
    refused alone may hold one)."""
    if saved.get("max_latency_ms") is None and current.get("max_latency_ms") is None \
            and "latency_batch" in saved:
        return {**current, "latency_batch": saved["latency_batch"]}
    return current


class CostMeter:
    """Parameters, multiply-adds and latency of an architecture's final network."""

    def __init__(self, space, budget: Budget, num_classes: int = 10,
                 device: str | torch.device = "cpu", cache_file: Path | None = None,
                 skeleton: str = "cifar"):
        channels, layers = space.final_size
        self.space, self.budget = space, budget
        # (channels, layers) of the network measured
        self.final_size = (budget.channels or channels, budget.layers or layers)
        self.config = space.network_config(*self.final_size, num_classes, skeleton)
        self.device = torch.device(device)
        if budget.max_latency_ms is not None and self.device.type not in TIMED_DEVICES:
            raise UserError(f"--max-latency-ms needs a device that can be timed ("
                            f"{', '.join(TIMED_DEVICES)}), not {self.device}; pass --device")
        self.cache_file = cache_file
        self._latency: dict[str, dict] = {}
        self._remembered: dict[str, dict] = {}  # a resumed run's own, by architecture

    def parameters(self, architecture) -> int:
        return self.space.parameter_count(architecture, self.config)

    def macs(self, architecture) -> int:
        return self.space.multiply_adds(architecture, self.config, self.budget.image_size)

    def latency_ms(self, architecture) -> dict[str, float]:
        """Median milliseconds of one forward pass at batch 1 and at the budget's batch
        (as :meth:`remember` was told, where it was)."""
        remembered = self._remembered.get(_name(architecture))
        if remembered is not None:
            return remembered
        key = self._latency_key(architecture)
        if not self._latency:
            self._latency = self._read_cache()
        if key not in self._latency:
            self._latency[key] = self._time(architecture)
            self._write_cache()
        return self._latency[key]

    def timed(self, architectures) -> dict[str, dict]:
        """The latencies known so far of ``architectures``, by architecture (for a
        checkpoint: the run's network, input and batch are its config's)."""
        found = {}
        for architecture in architectures:
            name, key = _name(architecture), self._latency_key(architecture)
            if name in self._remembered:
                found[name] = self._remembered[name]
            elif key in self._latency:
                found[name] = self._latency[key]
        return found

    def remember(self, latencies: dict[str, dict]) -> None:
        """Take ``latencies`` (:meth:`timed`'s) as the architectures' own: they win over
        a timing and the cache, and go into no cache (another device or torch may read
        that)."""
        self._remembered.update(latencies)

    def costs(self, architecture, latency: bool | None = None) -> dict:
        """``parameters``, ``macs`` and ``latency_ms`` (when ``latency``; default: when
        it is limited)."""
        found = {"parameters": self.parameters(architecture),
                 "macs": self.macs(architecture)}
        if latency if latency is not None else self.budget.max_latency_ms is not None:
            found["latency_ms"] = self.latency_ms(architecture)
        return found

    # ------------------------------------------------------------------ latency
    def _latency_key(self, architecture) -> str:
        """A cached latency is reused only for the same network, input, torch and
        naonet's way of computing the network (``LATENCY_FORMAT``)."""
        return json.dumps([_name(architecture), asdict(self.config),
                           self.budget.image_size, self.budget.latency_batch,
                           torch.__version__, LATENCY_FORMAT])

    @torch.no_grad()
    def _time(self, architecture) -> dict[str, float]:
        network = self.space.build_network(architecture, self.config).to(self.device).eval()
        size = self.budget.image_size
        result = {}
        for batch in sorted({1, self.budget.latency_batch}):
            images = torch.randn(batch, 3, size, size, device=self.device)
            times = []
            for repeat in range(LATENCY_WARMUP + LATENCY_REPEATS):
                self._synchronize()
                start = time.perf_counter()
                network(images)
                self._synchronize()
                if repeat >= LATENCY_WARMUP:
                    times.append(1000 * (time.perf_counter() - start))
            result[str(batch)] = statistics.median(times)
        return result

    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elif self.device.type == "mps":
            torch.mps.synchronize()

    def _cache_path(self) -> Path:
        if self.cache_file is not None:
            return Path(self.cache_file)
        from naonet.data.sources import cache_dir

        return cache_dir() / LATENCY_CACHE_NAME

    def _read_cache(self) -> dict:
        path = self._cache_path()
        try:
            whole = json.loads(path.read_text()) if path.exists() else {}
        except (OSError, ValueError):
            whole = {}  # a damaged cache is re-measured, never trusted
        entries = whole.get(device_name(self.device), {}) if isinstance(whole, dict) else {}
        return dict(entries) if isinstance(entries, dict) else {}

    def _write_cache(self) -> None:
        from naonet.files import atomic_write_text

        path = self._cache_path()
        try:
            whole = json.loads(path.read_text()) if path.exists() else {}
        except (OSError, ValueError):
            whole = {}
        whole = whole if isinstance(whole, dict) else {}
        whole.setdefault(device_name(self.device), {}).update(self._latency)
        try:
            atomic_write_text(path, json.dumps(whole))
        except OSError:
            pass  # an unwritable cache costs re-measuring next time, nothing else


class FeasibleSpace:
    """A search space that yields only architectures within ``budget`` (every other
    attribute is the wrapped space's)."""

    def __init__(self, space, meter: CostMeter):
        self.space, self.meter, self.budget = space, meter, meter.budget
        self.rejected = 0  # architectures proposed and found over budget
        self.found_one = False  # whether any architecture was within the budget
        # architectures found within the budget after random draws met none: sample
        # walks from them (random draws would not reach the budget again)
        self.footholds: list = []

    def __getattr__(self, name):
        if name.startswith("__") or name == "space":  # copy and pickle probe before init
            raise AttributeError(name)
        return getattr(self.space, name)

    @property
    def counts_its_size(self) -> bool:
        """Whether ``size`` is the count of architectures within the budget: the space
        can be listed, and the budget needs no timing (latency times a network each)."""
        return self.space.size <= ENUMERABLE_SIZE and self.budget.max_latency_ms is None

    @cached_property
    def size(self) -> int:
        """How many architectures are within the budget where ``counts_its_size`` (counted
        once: a benchmark's searches share one FeasibleSpace), else the whole space's
        count, an upper bound."""
        if not self.counts_its_size:
            return self.space.size
        rejected = self.rejected
        counted = sum(1 for _ in self.all_architectures())
        self.rejected = rejected  # counting proposed nothing
        return counted

    def feasible(self, architecture) -> bool:
        """Cheapest check first: parameters, then multiply-adds, then latency."""
        budget, meter = self.budget, self.meter
        within = (budget.sizes_allow(meter, architecture)
                  and (budget.max_latency_ms is None or
                       meter.latency_ms(architecture)[str(budget.latency_batch)]
                       <= budget.max_latency_ms))
        if not within:
            self.rejected += 1
        self.found_one = self.found_one or within
        return within

    def sample(self, rng: random.Random):
        """A random architecture within the budget: a uniform draw; where draws seldom
        meet the budget (none in ``max_draws``), a random walk of mutations within it from
        an architecture a descent found (:meth:`descended_into`)."""
        if self.footholds:
            return self._walk(rng)
        draws = 0
        while draws < self.max_draws():
            architecture = self.space.sample(rng)
            draws += 1
            if self.feasible(architecture):
                return architecture
            if self.hopeless(draws):
                break
        if self.foothold(rng) is None:
            raise UserError(self.unmeetable(rng, draws))
        return self._walk(rng)

    def foothold(self, rng: random.Random):
        """Where random draws that never meet the budget walk from: an architecture
        within it found by descent (:meth:`descended_into`), kept in ``footholds``; None
        where the descent does not reach the budget either."""
        found = self.descended_into(rng)
        if found is not None:
            self.footholds.append(found)
        return found

    def _walk(self, rng: random.Random):
        """The end of a few mutations within the budget from a random foothold (each new
        end becomes one too)."""
        architecture = rng.choice(self.footholds)
        for _ in range(WALK_STEPS):
            child = self.space.mutate(architecture, rng)
            if self.feasible(child):
                architecture = child
        self.footholds.append(architecture)
        return architecture

    def all_architectures(self):
        """Every architecture of the wrapped space within the budget."""
        return (arch for arch in self.space.all_architectures() if self.feasible(arch))

    def mutate(self, architecture, rng: random.Random):
        for _ in range(MAX_MUTATION_TRIES):
            child = self.space.mutate(architecture, rng)
            if self.feasible(child):
                return child
        return self.sample(rng)

    def max_draws(self) -> int:
        # Parameters and multiply-adds cost microseconds; latency a timed network each.
        cheap = self.budget.max_latency_ms is None
        return MAX_SAMPLE_DRAWS if cheap else MAX_SAMPLE_DRAWS // 20

    def hopeless(self, draws: int) -> bool:
        """Whether ``draws`` random draws without one within the budget, none ever found,
        mean none will be: under a latency limit after 100 timed networks (an impossible
        limit timed 2,000 networks, 12 minutes, before it was refused); otherwise only
        after ``max_draws``, which cost microseconds each."""
        timed = self.budget.max_latency_ms is not None
        return not self.found_one and draws >= (LATENCY_PROBES if timed else self.max_draws())

    def descended_into(self, rng: random.Random):
        """An architecture within a parameter and multiply-add budget that random draws
        seldom meet, found by descent from the draws nearest it (the largest fraction of
        a limit a cost takes is lowered), or None (also under a latency limit, which is
        timed, not counted)."""
        budget = self.budget
        if budget.max_latency_ms is not None:
            return None
        limited = [(limit, cost) for limit, cost in ((budget.max_params, self.meter.parameters),
                                                      (budget.max_macs, self.meter.macs))
                   if limit is not None]

        def share(architecture) -> float:  # <= 1: within every limit
            return max(cost(architecture) / limit for limit, cost in limited)

        draws = [self.space.sample(rng) for _ in range(min(self.max_draws(), 1000))]
        found = descend(self.space, share, draws, low_enough=1.0)
        return found if self.feasible(found) else None

    def unmeetable(self, rng: random.Random, draws_made: int) -> str:
        """Name the smallest value of each limited cost (exact where the space can be
        listed), or the fastest of a few random draws under a latency limit; the limits
        below their exact minimum alone where there are such."""
        draws = [self.space.sample(rng) for _ in range(min(self.max_draws(), 1000))]
        parts, impossible = [], []
        for flag, limit, cost in (("--max-params", self.budget.max_params,
                                   self.meter.parameters),
                                  ("--max-macs", self.budget.max_macs, self.meter.macs)):
            if limit is None:
                continue
            smallest, exact = smallest_cost(self.space, cost, draws)
            if exact and smallest > limit:
                impossible.append(f"{flag} {limit:,} (below the smallest possible, "
                                  f"{smallest:,})")
            if not exact:
                note = f"smallest found: {smallest:,}"
            elif smallest > limit:
                note = f"below the smallest possible, {smallest:,}"
            else:  # it exists, but sampling seldom reaches it
                note = f"the smallest possible is {smallest:,}, but random draws come that " \
                       "low too seldom"
            parts.append(f"{flag} {limit:,} ({note})")
        if self.budget.max_latency_ms is not None:
            batch = str(self.budget.latency_batch)
            fastest = min(self.meter.latency_ms(a)[batch] for a in draws[:10])
            parts.append(f"--max-latency-ms {self.budget.max_latency_ms:g} (fastest of 10 "
                         f"random draws: {fastest:.3g} ms)")
        if impossible:  # a limit below its exact minimum: no draw was needed to know
            return (f"no {self.space.name} architecture is within {'; '.join(impossible)}; "
                    "raise the budget")
        return (f"no {self.space.name} architecture found within {'; '.join(parts)} in "
                f"{draws_made:,} random draws; raise the budget")


def smallest_cost(space, cost, draws: list) -> tuple[int, bool]:
    """The smallest ``cost`` (parameters or multiply-adds of an architecture) in
    ``space``, and whether that is exact: every architecture of a space small enough to
    enumerate, else a descent from the cheapest random draw (:func:`descend`)."""
    if space.size <= ENUMERABLE_SIZE:
        return min(cost(architecture) for architecture in space.all_architectures()), True
    return cost(descend(space, cost, draws)), False


def descend(space, cost, draws: list, low_enough: float | None = None):
    """From the cheapest of ``draws``, the architecture reached by changing one entry of
    the coding at a time while that lowers ``cost``: to a minimum, or to the first whose
    cost is ``low_enough`` (a budget is met nearest where random draws end)."""
    best = min(draws, key=cost)
    values, count = space.to_integers(best), cost(best)
    improved = True
    while improved and not (low_enough is not None and count <= low_enough):
        improved = False
        for position, limit in enumerate(space.integer_limits()):
            for value in range(limit):
                trial = list(values)
                trial[position] = value
                try:
                    candidate = cost(space.from_integers(trial))
                except UserError:
                    continue  # not a valid coding
                if candidate < count:
                    values, count, improved = trial, candidate, True
                    if low_enough is not None and count <= low_enough:
                        return space.from_integers(values)
    return space.from_integers(values)


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated points of (score, cost): no other point has a score
    at least as high and a cost at least as low, one of them strictly. Best score first.
    Points equal in both (architectures that tie) are all on the front: none dominates
    the other."""
    order = sorted(range(len(points)), key=lambda i: (-points[i][0], points[i][1]))
    front, lowest = [], math.inf
    for index in order:
        if points[index][1] < lowest or (front and points[index] == points[front[-1]]):
            front.append(index)
            lowest = points[index][1]
    return front

"""(h) Parameter counts of discrete networks: architectures counted per second, at the
sizes the search counts them (balanced sampling weighs every architecture of its pool
by the parameter count of the supernet's discrete network; ``--max-params`` and the
ranking experiment's parameter-count baseline count thousands more).

    python benchmarks/counting.py           # 20 architectures per part and run
    python benchmarks/counting.py --full    # 200

Baseline: build the network (``space.build_network``) and sum its parameters
(``naonet.models.count_parameters``), the count a user of PyTorch would write.
naonet: ``space.parameter_count``, the analytic count (``naonet.supernet.counting``
for the NAO cell spaces, the per-op cost table for NAS-Bench-201), which
``tests/test_supernet.py`` and ``tests/test_space_protocol.py`` check equals the built
network's count. Runs on the CPU whatever ``--device`` says: nothing is computed on a
device.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from harness import Figure, main

from naonet.models import count_parameters
from naonet.spaces import get_space
from naonet.supernet import SupernetConfig, sample_architectures

SIZES = {"small": dict(architectures=20, rounds=5), "full": dict(architectures=200, rounds=5)}


def parts() -> dict[str, tuple]:
    """part name -> (space, network config): the networks the search counts."""
    small, nb201 = get_space("small"), get_space("nb201")
    return {
        "small space, supernet's network (C 20, N 3)": (small, SupernetConfig().network_config()),
        "small space, final network (C 36, N 6)": (small, small.network_config(36, 6)),
        "nb201, benchmark network (C 16, N 5)": (nb201, nb201.network_config(16, 5)),
    }


class Counting:
    def __init__(self, variant: str, size: dict, device: torch.device):
        del device  # counting runs on the CPU
        self.size = size
        self.parts = parts()
        rng = np.random.default_rng(0)
        self.architectures = {name: sample_architectures(space, size["architectures"], rng)
                              for name, (space, _) in self.parts.items()}
        if variant == "baseline":
            self.count = lambda space, arch, config: count_parameters(
                space.build_network(arch, config))
            self.label = "build the network, sum its parameters"
        else:
            self.count = lambda space, arch, config: space.parameter_count(arch, config)
            self.label = "space.parameter_count (analytic)"

    def _count_all(self, name: str) -> list[int]:
        space, config = self.parts[name]
        return [self.count(space, arch, config) for arch in self.architectures[name]]

    def warmup(self) -> None:
        for name in self.parts:
            self._count_all(name)

    def run(self) -> dict:
        results = {}
        for name in self.parts:
            start = time.perf_counter()
            self._count_all(name)
            results[name] = (len(self.architectures[name]), time.perf_counter() - start)
        return results


FIGURE = Figure("h", "parameter counts of discrete networks", "architectures/s", SIZES,
                Counting, "counting")

if __name__ == "__main__":
    main(FIGURE)

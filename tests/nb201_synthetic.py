"""A synthetic NAS-Bench-201 table in the documented CSV format, for tests that must
run without the shared benchmark: every architecture of the space, with made-up but
structured accuracies (convolutions help, 'none' everywhere breaks the cell)."""

from __future__ import annotations

import csv
import random
from pathlib import Path

from naonet.models.nb201 import CostCounter
from naonet.spaces import NB201

COLUMNS = ("index", "arch", "params_mb", "valid_acc_200ep", "valid_split_test_acc_200ep",
           "test_acc_200ep", "valid_acc_12ep", "test_acc_12ep")
OP_GAIN = {"none": 0.0, "skip_connect": 1.0, "nor_conv_1x1": 1.5, "nor_conv_3x3": 2.5,
           "avg_pool_3x3": 0.5}


def write_synthetic_table(path: Path, seed: int = 0) -> Path:
    """Write the table; its index order is a seeded shuffle, like the benchmark's."""
    rng = random.Random(seed)
    counter = CostCounter(NB201)
    architectures = list(NB201.all_architectures())
    rng.shuffle(architectures)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for index, arch in enumerate(architectures):
            valid = 70.0 + sum(OP_GAIN[name] for name in arch.op_names) + rng.gauss(0, 1.0)
            test = valid + 2.0 + rng.gauss(0, 0.3)
            writer.writerow([index, arch.to_string(), f"{counter.parameters(arch) / 1e6:.6f}",
                             f"{valid:.4f}", f"{valid - 0.5:.4f}", f"{test:.4f}",
                             f"{valid - 10:.4f}", f"{test - 8:.4f}"])
    return path

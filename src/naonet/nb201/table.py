"""A NAS-Bench-201 results table: every architecture's metrics, read from a CSV file.

The documented format has one row per architecture with the columns ``index`` (the
benchmark's own index), ``arch`` (the string form), ``params_mb``, ``valid_acc_200ep``,
``valid_split_test_acc_200ep``, ``test_acc_200ep``, ``valid_acc_12ep`` and
``test_acc_12ep``. Validation columns are what a search may see; test columns are for
reporting (see :mod:`naonet.nb201.evaluator`). The file holds accuracies in percent, as
the benchmark publishes them; the table holds them as fractions, as the rest of naonet
does (a percent only when printed).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np

from naonet.analysis.scores import complete_rows
from naonet.errors import UserError
from naonet.spaces.nb201 import NB201, NB201Architecture, NB201Space

TABLE_SPACE = NB201.name  # the space a NAS-Bench-201 table measures every cell of

# Metric names a search may use, and the column each reads.
VALIDATION_METRICS = {"valid_200ep": "valid_acc_200ep", "valid_12ep": "valid_acc_12ep"}
DEFAULT_METRIC = "valid_200ep"
TEST_COLUMN = "test_acc_200ep"
REQUIRED_COLUMNS = ("index", "arch", *VALIDATION_METRICS.values(), TEST_COLUMN)
OPTIONAL_COLUMNS = ("params_mb", "valid_split_test_acc_200ep", "test_acc_12ep")
PERCENT_COLUMNS = (*VALIDATION_METRICS.values(), TEST_COLUMN, "valid_split_test_acc_200ep",
                   "test_acc_12ep")  # accuracies: percent in the file, fractions here


def percent_to_fraction(text: str) -> float:
    """The float nearest the fraction that a percent written in decimal denotes: the
    file's 93.743333 is 0.93743333, where ``93.743333 / 100`` gives 0.9374333300000001
    (two roundings), which then shows in every JSON file a search writes."""
    try:
        return float(Decimal(text).scaleb(-2))
    except InvalidOperation:
        raise ValueError(f"could not convert string to float: {text!r}") from None


def _read_only(values, dtype) -> np.ndarray:
    """A copy of ``values`` that cannot be written to."""
    array = np.array(values, dtype=dtype)
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class BenchmarkTable:
    """Metrics of every architecture of a space, by benchmark index and by architecture."""

    space: NB201Space
    architectures: tuple[NB201Architecture, ...]  # row order
    indices: np.ndarray  # int64 [rows], the benchmark's index of each row
    columns: dict[str, np.ndarray]  # float64 [rows] per numeric column
    source: str = ""

    def __post_init__(self) -> None:
        # Read-only copies: ``column()`` hands these out, and an in-place change by a
        # caller (``accuracy *= 100``) would otherwise alter every later lookup.
        object.__setattr__(self, "indices", _read_only(self.indices, np.int64))
        object.__setattr__(self, "columns", {name: _read_only(values, np.float64)
                                             for name, values in self.columns.items()})
        object.__setattr__(self, "_row_of_arch",
                           {arch: row for row, arch in enumerate(self.architectures)})
        object.__setattr__(self, "_row_of_index",
                           {int(index): row for row, index in enumerate(self.indices)})

    @classmethod
    def load(cls, path: str | Path, space: NB201Space = NB201) -> BenchmarkTable:
        """Read a table in the documented CSV format."""
        path = Path(path).expanduser()
        if not path.is_file():
            raise UserError(f"benchmark table {path} does not exist; pass the NAS-Bench-201 "
                            "CSV (columns: " + ", ".join(REQUIRED_COLUMNS) + ")")
        try:
            with open(path, newline="") as handle:
                reader = csv.DictReader(handle)
                missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
                if missing:
                    raise UserError(f"benchmark table {path} lacks the column(s) "
                                    f"{', '.join(missing)}; expected at least "
                                    f"{', '.join(REQUIRED_COLUMNS)}")
                rows = [row for _, row in complete_rows(reader, path)]
        except (UnicodeDecodeError, csv.Error) as error:
            raise UserError(f"benchmark table {path} is not a text CSV ({error}); pass the "
                            "NAS-Bench-201 CSV") from None
        if not rows:
            raise UserError(f"benchmark table {path} has no rows")
        numeric = [c for c in (*REQUIRED_COLUMNS[2:], *OPTIONAL_COLUMNS)
                   if c in rows[0]]
        try:
            architectures = tuple(space.parse(row["arch"]) for row in rows)
            indices = np.array([int(row["index"]) for row in rows], dtype=np.int64)
            columns = {c: np.array([percent_to_fraction(row[c]) if c in PERCENT_COLUMNS
                                    else float(row[c]) for row in rows]) for c in numeric}
        except (ValueError, TypeError, OverflowError, UserError) as error:
            # TypeError: a short row; OverflowError: an index beyond 64 bits
            raise UserError(f"benchmark table {path} has a bad row: {error}") from None
        for column, values in columns.items():
            if not np.isfinite(values).all():
                row = int(np.flatnonzero(~np.isfinite(values))[0])
                raise UserError(f"benchmark table {path} has {values[row]} in {column} of "
                                f"row {row + 2}; every value must be a number")
        if len(set(architectures)) != len(architectures):
            raise UserError(f"benchmark table {path} lists an architecture twice")
        return cls(space, architectures, indices, columns, str(path))

    def __len__(self) -> int:
        return len(self.architectures)

    def __contains__(self, architecture: NB201Architecture) -> bool:
        """Whether the table has a row of ``architecture`` (or of its text form); False
        for anything else, as ``in`` is for a set."""
        try:
            return self.space.as_architecture(architecture, "the benchmark table") \
                in self._row_of_arch
        except UserError:
            return False

    def row(self, architecture: NB201Architecture) -> int:
        """The table row of ``architecture`` (or of its text form)."""
        architecture = self.space.as_architecture(architecture, "the benchmark table")
        try:
            return self._row_of_arch[architecture]
        except KeyError:
            raise UserError(f"architecture {architecture} is not in the benchmark table "
                            f"{self.source}") from None

    def index(self, architecture: NB201Architecture) -> int:
        """The benchmark's index of ``architecture``."""
        return int(self.indices[self.row(architecture)])

    def architecture(self, index: int) -> NB201Architecture:
        """The architecture with benchmark index ``index``."""
        try:
            return self.architectures[self._row_of_index[int(index)]]
        except KeyError:
            raise UserError(f"no architecture with index {index} in the benchmark table "
                            f"{self.source}") from None

    def resolve(self, text: str) -> NB201Architecture:
        """An architecture given as a benchmark index or in string form."""
        text = text.strip()
        return self.architecture(int(text)) if text.isdigit() else self.space.parse(text)

    def value(self, architecture: NB201Architecture, column: str) -> float:
        return float(self.column(column)[self.row(architecture)])

    def column(self, column: str) -> np.ndarray:
        """The values of ``column`` in row order (read-only; copy to change them)."""
        if column not in self.columns:
            raise UserError(f"the benchmark table has no column {column!r}; it has "
                            f"{', '.join(self.columns)}")
        return self.columns[column]

    def test_accuracy(self, architecture: NB201Architecture) -> float:
        """Test accuracy for reports; a search must never see it."""
        return self.value(architecture, TEST_COLUMN)

    def best(self, column: str) -> NB201Architecture:
        """The architecture with the highest value of ``column``."""
        return self.architectures[int(np.argmax(self.column(column)))]


def metric_column(metric: str) -> str:
    """The table column of a validation metric name (``valid_200ep`` or ``valid_12ep``)."""
    if metric in VALIDATION_METRICS.values():
        return metric
    try:
        return VALIDATION_METRICS[metric]
    except KeyError:
        raise UserError(f"unknown validation metric {metric!r}; use one of: "
                        f"{', '.join(VALIDATION_METRICS)}") from None

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
import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np

from naonet.analysis.scores import complete_rows, open_text
from naonet.errors import UserError
from naonet.spaces.nb201 import NB201, NB201Architecture, NB201Space

TABLE_SPACE = NB201.name  # the space a NAS-Bench-201 table measures every cell of
TABLE_PREFIX = "table:"  # how an option names a table: --reference table:CSV

# Metric names a search may use, and the column each reads.
VALIDATION_METRICS = {"valid_200ep": "valid_acc_200ep", "valid_12ep": "valid_acc_12ep"}
METRIC_OF_COLUMN = {column: name for name, column in VALIDATION_METRICS.items()}
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


def _cell(space: NB201Space, text: str, path: Path, line: int) -> NB201Architecture:
    """The cell a row's ``arch`` names, or a UserError naming the row."""
    try:
        return space.parse(text)
    except UserError as error:
        reason = str(error).split(";")[0]  # what is wrong, without the parser's fix
        raise UserError(f"benchmark table {path}:{line}: arch {text!r} is not a cell of the "
                        f"{space.name} space ({reason}); write it in the benchmark's form, "
                        f"like {space.example().to_string()!r}") from None


def _row_index(text: str, path: Path, line: int) -> int:
    """A row's index: a whole number that fits 64 bits (the table keeps them so)."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not 0 <= value < 2**63:
        raise UserError(f"benchmark table {path}:{line}: index {text!r} is not a whole "
                        "number from 0 that fits 64 bits; write the benchmark's index of the "
                        "cell")
    return value


def _value(text: str, column: str, path: Path, line: int) -> float:
    """A row's number in ``column`` (a percent as a fraction), or a UserError naming the
    row and the column."""
    try:
        value = percent_to_fraction(text) if column in PERCENT_COLUMNS else float(text)
    except (ValueError, OverflowError):
        value = math.nan
    if not math.isfinite(value):
        raise UserError(f"benchmark table {path}:{line}: {column} is {text.strip()!r}; every "
                        "value must be a finite number (fill in the row or remove it)")
    if column in PERCENT_COLUMNS and not 0 <= value <= 1:
        raise UserError(f"benchmark table {path}:{line}: {column} is {text.strip()!r}; an "
                        "accuracy is a percent from 0 to 100")
    return value


def _check_percents(columns: dict[str, np.ndarray], path: Path) -> None:
    """Accuracies of at most 1 everywhere are fractions where percents belong: read as
    percents they would make every cell below 1 % accurate, without a word."""
    for column in PERCENT_COLUMNS:
        if column in columns and 0 < columns[column].max() <= 0.01:
            raise UserError(f"benchmark table {path}: every {column} is at most 1, so they "
                            "look like fractions; the table holds accuracies in percent, as "
                            "the benchmark publishes them (93.76, not 0.9376): multiply them "
                            "by 100")


def _check_columns_once(names: list[str], path: Path) -> None:
    """A column the table is read by named twice: the reader would keep the last,
    silently (others, blank ones of a spreadsheet too, are not read)."""
    seen = set()
    for name in names:
        if name in seen and name in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS):
            raise UserError(f"benchmark table {path} has the column {name} twice; keep one")
        seen.add(name)


def _check_each_index_once(indices: list[int], lines: list[int], path: Path) -> None:
    """An index in two rows: looking it up would find one of them, silently."""
    first: dict[int, int] = {}
    for index, line in zip(indices, lines, strict=True):
        if index in first:
            raise UserError(f"benchmark table {path} gives index {index} to two rows (rows "
                            f"{first[index]} and {line}); each cell has its own index")
        first[index] = line


def _check_each_cell_once(architectures: list, lines: list[int], path: Path,
                          space: NB201Space, every_cell: bool) -> None:
    """Each cell in one row, and with ``every_cell`` every cell of ``space``: a search may
    ask for any cell, and a cell missing or listed twice would fail or mislead it in the
    middle."""
    first: dict = {}
    for architecture, line in zip(architectures, lines, strict=True):
        if architecture in first:
            raise UserError(f"benchmark table {path} lists {architecture.to_string()} twice "
                            f"(rows {first[architecture]} and {line}); keep one row a cell")
        first[architecture] = line
    if every_cell and len(first) != space.size:
        raise UserError(f"benchmark table {path} has {len(first):,} cells of the {space.size:,} "
                        f"of the {space.name} space; pass the whole table (a search may ask "
                        "for any cell)")


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
    def load(cls, path: str | Path, space: NB201Space = NB201,
             every_cell: bool = True) -> BenchmarkTable:
        """Read a table in the documented CSV format (gzipped or not), accuracies in
        percent: with ``every_cell`` (for a search, which may ask for any cell) a row for
        every cell of ``space``; without, any cells (looking cells up, sampling from
        them), each once."""
        path = existing_table_file(path)
        try:
            with open_text(path) as handle:  # a BOM or none, gzipped or not
                reader = csv.DictReader(handle)
                _check_columns_once(reader.fieldnames or [], path)
                missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
                if missing:
                    raise UserError(f"benchmark table {path} lacks the column(s) "
                                    f"{', '.join(missing)}; expected at least "
                                    f"{', '.join(REQUIRED_COLUMNS)}, separated by commas")
                rows = list(complete_rows(reader, path))
        except (UnicodeDecodeError, csv.Error) as error:
            raise UserError(f"benchmark table {path} is not a text CSV ({error}); pass the "
                            "NAS-Bench-201 CSV") from None
        if not rows:
            raise UserError(f"benchmark table {path} has no rows")
        numeric = [c for c in (*REQUIRED_COLUMNS[2:], *OPTIONAL_COLUMNS) if c in rows[0][1]]
        architectures, indices = [], []
        values: dict[str, list[float]] = {column: [] for column in numeric}
        for line, row in rows:
            architectures.append(_cell(space, row["arch"], path, line))
            indices.append(_row_index(row["index"], path, line))
            for column in numeric:
                values[column].append(_value(row[column], column, path, line))
        columns = {column: np.array(values[column]) for column in numeric}
        _check_percents(columns, path)
        _check_each_cell_once(architectures, [line for line, _ in rows], path, space,
                              every_cell)
        _check_each_index_once(indices, [line for line, _ in rows], path)
        return cls(space, tuple(architectures), np.array(indices, dtype=np.int64), columns,
                   str(path))

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
        """The table's ``column`` of ``architecture`` (an accuracy as a fraction)."""
        return float(self.column(column)[self.row(architecture)])

    def column(self, column: str) -> np.ndarray:
        """The values of ``column`` in row order (read-only; copy to change them). A
        validation metric's name (``valid_200ep``) names its column too."""
        column = VALIDATION_METRICS.get(column, column)
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
    """The table column of a validation metric (its name, ``valid_200ep`` or
    ``valid_12ep``, or its column, ``valid_acc_200ep`` or ``valid_acc_12ep``)."""
    return VALIDATION_METRICS[metric_name(metric)]


def metric_flag(text: str) -> str:
    """``--metric``'s value as a metric name where it is a column (``valid_acc_200ep``:
    ``valid_200ep``), else as given, for argparse's choices to check."""
    return METRIC_OF_COLUMN.get(text, text)


def metric_name(metric: str) -> str:
    """A validation metric's name (``valid_200ep``) from its name or its column
    (``valid_acc_200ep``): the form configs save, so either form resumes a run."""
    name = metric_flag(metric)
    if name in VALIDATION_METRICS:
        return name
    raise UserError(f"unknown validation metric {metric!r}; use one of: "
                    f"{', '.join(VALIDATION_METRICS)} (or their columns, "
                    f"{', '.join(VALIDATION_METRICS.values())})")


def existing_table_file(path: str | Path) -> Path:
    """``path`` (``~`` expanded) if it is a file, else a UserError naming the format a
    benchmark table has: checked by every process of a search before they meet."""
    path = Path(path).expanduser()
    expected = ("CSV (columns: " + ", ".join(REQUIRED_COLUMNS) + "; optional: "
                + ", ".join(OPTIONAL_COLUMNS) + ")")
    if path.is_dir():
        raise UserError(f"benchmark table {path} is a folder; pass the NAS-Bench-201 "
                        f"{expected}")
    if not path.is_file():
        raise UserError(f"benchmark table {path} does not exist; pass the NAS-Bench-201 "
                        f"{expected}")
    return path

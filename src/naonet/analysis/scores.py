"""Score files: architectures with one number each, as ``nao correlate`` reads them.

Three formats:

* text: one ``ARCHITECTURE SCORE`` per line, the score being the last whitespace-
  separated field (so an architecture written with spaces is fine); blank lines and
  lines starting with ``#`` are skipped;
* CSV (``.csv``, or ``.csv.gz`` gzipped): a header row; the architecture is in the
  ``arch`` column (or the first column) and the score in the column named by the
  caller (default ``score``);
* a search's ``arch_pool`` or ``arch_pool.final``: the scores are the lines of the
  ``arch_pool.perf`` or ``arch_pool.perf.final`` beside it, in the same order; and so
  for the released search's round files, ``arch_pool.N`` beside ``arch_pool.perf.N``
  (their scores printed as tensors, ``tensor(0.8560, device='cuda:0')``, are read).

Any of them may be gzipped (told by the file's first bytes, not by its name).
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import re
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO

from naonet.errors import UserError
from naonet.files import atomic_write_text

KEY_COLUMN = "arch"
SCORE_COLUMN = "score"
# a search's architecture lists and the files of their scores, line for line
POOL_SCORE_FILES = {"arch_pool": "arch_pool.perf", "arch_pool.final": "arch_pool.perf.final"}
# the released search's list of round N and its scores: arch_pool.N, arch_pool.perf.N
ROUND_POOL = re.compile(r"arch_pool\.(\d+)")
# a score the released search wrote as the tensor it was: "tensor(0.8560, device='cuda:0')"
TENSOR_TEXT = re.compile(r"tensor\(\s*([^,)\s]+)\s*(,[^)]*)?\)")


def pool_scores_file(path: Path) -> Path | None:
    """The file of scores beside a search's list of architectures, or None for a file
    that is no such list."""
    if path.name in POOL_SCORE_FILES:
        return path.with_name(POOL_SCORE_FILES[path.name])
    round_pool = ROUND_POOL.fullmatch(path.name)
    return path.with_name(f"arch_pool.perf.{round_pool[1]}") if round_pool else None


# UTF-8, with or without the byte-order mark a spreadsheet or Windows editor writes
# first (it was read as part of the first architecture, or of the first column's name)
ENCODING = "utf-8-sig"
# the first two bytes of every gzip stream (RFC 1952)
GZIP_MAGIC = b"\x1f\x8b"
# what reading a damaged gzip stream raises: a bad header or CRC, a cut-off end, bad data
GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)


def open_text(path: Path) -> TextIO:
    """A text file opened for reading (``newline=""``, as ``csv`` wants), gzipped or not:
    a gzip stream is told by its first bytes, so a table gzipped under any name is read."""
    with open(path, "rb") as probe:
        gzipped = probe.read(len(GZIP_MAGIC)) == GZIP_MAGIC
    if not gzipped:
        return open(path, newline="", encoding=ENCODING)
    # Decompressed whole before a line is parsed: damaged data decodes to garbage rows
    # long before the stream's CRC, at its end, names the damage.
    try:
        with gzip.open(path, "rb") as stream:
            data = stream.read()
    except GZIP_ERRORS as error:
        raise UserError(f"{path} is a damaged gzip file ({error or type(error).__name__}); "
                        "compress it again, or pass it uncompressed") from None
    return io.StringIO(data.decode(ENCODING), newline="")


def read_text(path: Path) -> str:
    """The text of a file a user writes (a score file, a seed pool), gzipped or not."""
    with open_text(path) as handle:
        return handle.read()


def content_lines(text: str) -> list[tuple[int, str]]:
    """(line number, content) of each line of a list of one item a line that holds
    anything: ``#`` starts a comment anywhere on a line (no architecture's text holds
    one), surrounding whitespace is dropped and blank lines are skipped. Every list a user
    writes (score files, a search's seed pool) is read by this one rule."""
    lines = ((number, line.split("#", 1)[0].strip())
             for number, line in enumerate(text.splitlines(), start=1))
    return [(number, content) for number, content in lines if content]


def is_csv(path: Path) -> bool:
    """Whether a score file is named as a CSV (``.csv``, or ``.csv.gz`` gzipped)."""
    return path.name.lower().endswith((".csv", ".csv.gz"))


def normalise_key(key: str) -> str:
    """One spelling per architecture: surrounding and repeated whitespace removed."""
    return " ".join(key.split())


def read_scores(path: str | Path, column: str | None = None) -> dict[str, float]:
    """Architecture -> score from a text or CSV score file."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise UserError(f"{path} is a folder; pass a score file (of a search's folder: "
                        f"{path / 'arch_pool.final'} or {path / 'arch_pool'})")
    if not path.is_file():
        raise UserError(f"score file {path} does not exist")
    beside = pool_scores_file(path)
    try:
        if is_csv(path):
            scores = _read_csv(path, column or SCORE_COLUMN)
        elif column is not None:
            raise UserError(f"a score column ({column!r}) was named for {path}, which is not "
                            "a CSV by its name (.csv or .csv.gz); drop the column (it applies "
                            "to CSV files only), or rename the file if it is a CSV")
        elif beside is not None:
            scores = _read_pool(path, beside)
        else:
            scores = _read_text(path)
    except (UnicodeDecodeError, csv.Error) as error:
        raise UserError(f"score file {path} is not text ({error}); pass 'ARCH SCORE' lines "
                        "or a CSV") from None
    if not scores:
        raise UserError(f"score file {path} holds no scores")
    return scores


def _read_text(path: Path) -> dict[str, float]:
    entries = []
    for number, line in content_lines(read_text(path)):
        parts = line.rsplit(None, 1)
        if len(parts) != 2:
            raise UserError(f"{path}:{number}: expected 'ARCHITECTURE SCORE', got {line!r}")
        if not entries and space_of(line) is not None:  # its last integer is no score
            raise UserError(f"{path}:{number}: the line is an architecture without a score; "
                            "a search's list of architectures is read with the scores beside "
                            "it (arch_pool with arch_pool.perf, arch_pool.N with "
                            "arch_pool.perf.N): keep its name, or add each line's score")
        entries.append((number, normalise_key(parts[0]), _number(parts[1], path, number)))
    return one_score_each(entries, path)


def one_score_each(entries: Iterable[tuple[int, str, float]], path: Path) -> dict[str, float]:
    """{architecture: score} of (line number, architecture, score) entries; a UserError
    when an architecture comes again with another score (the last line silently won:
    which of the two a file means is the user's to say). A repeat of the same score is
    taken once."""
    scores: dict[str, float] = {}
    first_line: dict[str, int] = {}
    for number, key, value in entries:
        if key in scores and scores[key] != value:  # scores are finite numbers
            raise UserError(f"{path}:{number}: {key} comes again with another score "
                            f"({value:g}; line {first_line[key]} gives {scores[key]:g}); keep "
                            "one line per architecture")
        scores[key] = value
        first_line.setdefault(key, number)
    return scores


def _read_pool(path: Path, perf_path: Path) -> dict[str, float]:
    if not perf_path.is_file():
        raise UserError(f"{path} is a search's list without its scores: {perf_path} is "
                        "missing; pass a score file or the run folder's own arch_pool")
    architectures = [line.strip() for line in read_text(path).splitlines() if line.strip()]
    values = [(number, line) for number, line in
              enumerate(read_text(perf_path).splitlines(), start=1) if line.strip()]
    if len(values) != len(architectures):
        raise UserError(f"{path} lists {len(architectures)} architectures but {perf_path} "
                        f"{len(values)} scores; pass the two files of one run folder")
    # a pool written before its newest members were scored holds nan for them
    return one_score_each([(number, normalise_key(architecture), _number(text, perf_path,
                                                                          number))
                           for architecture, (number, text) in zip(architectures, values)
                           if text.strip().lower() != "nan"], perf_path)


def _read_csv(path: Path, column: str) -> dict[str, float]:
    with open_text(path) as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        if column not in fields:
            raise UserError(f"{path} has no column {column!r}; its columns: {', '.join(fields)} "
                            "(choose one with --column-a / --column-b)")
        key_column = KEY_COLUMN if KEY_COLUMN in fields else fields[0]
        hint = f"the {column!r} column holds the scores"
        return one_score_each([(number, normalise_key(row[key_column]),
                                 _number(row[column], path, number, hint))
                                for number, row in complete_rows(reader, path)], path)


def complete_rows(reader: csv.DictReader, path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, row) of a CSV, each row as long as the header (a truncated file's
    last row is not: csv fills the missing fields with None). The number is the file's
    line (the reader skips blank lines; a quoted line break makes a row end further on)."""
    for row in reader:
        number = reader.line_num
        if None in row.values() or None in row:
            given = sum(value is not None for key, value in row.items() if key is not None)
            given += len(row.get(None, []))  # fields beyond the header's
            raise UserError(f"{path}:{number}: the row has {given} field(s) where the header "
                            f"has {len(reader.fieldnames or [])} (a truncated or edited "
                            "file?); each row needs one value per column")
        yield number, row


def _number(text: str, path: Path, line: int,
            hint: str = "each line must end with the score") -> float:
    printed_tensor = TENSOR_TEXT.fullmatch(text.strip())
    if printed_tensor:
        text = printed_tensor[1]
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"{path}:{line}: {text.strip()!r} is not a number; {hint}") from None
    if not math.isfinite(value):
        raise UserError(f"{path}:{line}: score {text.strip()} is not finite")
    return value


def space_of(key: str) -> str | None:
    """The name of the space whose text form ``key`` is; None for other keys (a score
    file may name its architectures any way)."""
    from naonet.spaces.protocol import parse_architecture

    try:
        return parse_architecture(key).space.name
    except UserError:
        return None


def write_scores(path: str | Path, scores: Iterable[tuple[str, float]]) -> None:
    """Write a text score file (atomically)."""
    lines = [f"{normalise_key(key)} {value:.6f}" for key, value in scores]
    atomic_write_text(path, "\n".join(lines) + "\n")


def matched(scores: dict[str, float], reference: dict[str, float]
            ) -> tuple[list[str], list[float], list[float]]:
    """Architectures present in both, with their two scores (in ``scores``' order). An
    architecture is matched by its written form, else by the architecture that form
    names, so that another spelling of it ('nb201:|...|' for '|...|') matches too."""
    reference_key = {key: key for key in scores if key in reference}
    if len(reference_key) < len(scores):  # parsed only where the spellings differ
        by_architecture: dict[str, str] = {}
        for key in reference:
            by_architecture.setdefault(_architecture_form(key), key)
        for key in scores:
            if key not in reference_key:
                found = by_architecture.get(_architecture_form(key))
                if found is not None:
                    reference_key[key] = found
        _refuse_two_spellings(reference_key)
    keys = [key for key in scores if key in reference_key]
    if not keys:  # say why, where the files name their architectures in two spaces
        spaces = [space_of(next(iter(scoring), "")) for scoring in (scores, reference)]
        if None not in spaces and spaces[0] != spaces[1]:
            raise UserError(f"the two score files hold architectures of different spaces "
                            f"({spaces[0]} and {spaces[1]}); compare files of one space")
    if len(keys) < 2:
        raise UserError(f"the two score files share {len(keys)} architecture(s); at least 2 "
                        "are needed (are both written in the same form?)")
    return keys, [scores[k] for k in keys], [reference[reference_key[k]] for k in keys]


def _refuse_two_spellings(reference_key: dict[str, str]) -> None:
    """A UserError when two lines of a score file name one architecture of the reference
    (written two ways: '|...|' and 'nb201:|...|'); it would be counted twice."""
    named: dict[str, str] = {}
    for key, found in reference_key.items():
        if found in named:
            raise UserError(f"{named[found]} and {key} are one architecture, written two ways; "
                            "keep one line per architecture")
        named[found] = key


def _architecture_form(key: str) -> str:
    """The text form naonet writes of the architecture ``key`` names; ``key`` itself
    where it names none (a score file may name its architectures any way)."""
    from naonet.spaces.protocol import parse_architecture

    try:
        return parse_architecture(key).to_qualified_string()
    except UserError:
        return key

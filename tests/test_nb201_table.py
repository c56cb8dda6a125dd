"""The benchmark table and the budgeted table evaluator."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from naonet.errors import UserError
from naonet.nb201 import BenchmarkTable, BudgetExhausted, TableEvaluator, summarize
from naonet.nb201.evaluator import SearchSummary
from naonet.spaces import NB201, named_architecture

from conftest import NB201_TABLE, require
from nb201_synthetic import write_synthetic_table


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> BenchmarkTable:
    return BenchmarkTable.load(write_synthetic_table(tmp_path_factory.mktemp("t") / "t.csv"))


def test_table_lookups_by_index_and_architecture(synthetic):
    assert len(synthetic) == NB201.size
    arch = synthetic.architecture(123)
    assert synthetic.index(arch) == 123
    assert synthetic.resolve("123") == arch == synthetic.resolve(arch.to_string())
    with pytest.raises(UserError, match="no architecture with index"):
        synthetic.architecture(10 ** 6)
    # what the table hands out cannot change its later answers
    accuracy, before = synthetic.column("test_acc_200ep"), synthetic.test_accuracy(arch)
    with pytest.raises(ValueError, match="read-only"):
        accuracy *= 100
    assert synthetic.test_accuracy(arch) == before


def test_the_files_percents_are_read_as_fractions_and_the_rest_as_written(synthetic):
    """The benchmark publishes accuracies in percent; naonet holds fractions everywhere."""
    import csv

    with open(synthetic.source, newline="") as handle:
        rows = [row for _, row in zip(range(50), csv.DictReader(handle))]
    for row in rows:
        arch = synthetic.architecture(int(row["index"]))
        # correctly rounded: the decimal text with its point moved, not float / 100
        assert synthetic.test_accuracy(arch) == float(row["test_acc_200ep"] + "e-2")
        for column in ("valid_acc_200ep", "valid_acc_12ep"):
            assert synthetic.value(arch, column) == float(row[column] + "e-2")
        assert synthetic.value(arch, "params_mb") == float(row["params_mb"])


def test_missing_columns_and_files_are_user_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("index,arch,valid_acc_200ep\n0,|none~0|+|none~0|none~1|+|none~0|none~1|"
                   "none~2|,10.0\n")
    with pytest.raises(UserError, match="lacks the column"):
        BenchmarkTable.load(bad)
    with pytest.raises(UserError, match="does not exist"):
        BenchmarkTable.load(tmp_path / "absent.csv")
    header = "index,arch,valid_acc_200ep,valid_acc_12ep,test_acc_200ep\n"
    cell = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    for accuracy, problem in (("n/a", f"{bad}:2: valid_acc_200ep is 'n/a'; every value must "
                                      "be a finite number"),
                              ("nan", f"{bad}:2: valid_acc_200ep is 'nan'; every value")):
        bad.write_text(f"{header}0,{cell},{accuracy},10.0,10.0\n")
        with pytest.raises(UserError, match=re.escape(problem)):
            BenchmarkTable.load(bad)


def test_a_table_a_search_would_fail_on_is_refused_when_read(synthetic, tmp_path):
    """From a researcher's trial: a table of 1,000 rows failed a search in its middle
    (and its run folder with it); accuracies written as fractions, a spreadsheet's
    byte-order mark, a folder and rows in the wrong form were read silently or named
    wrongly."""
    lines = Path(synthetic.source).read_text().splitlines()
    header, rows = lines[0], lines[1:]
    columns = header.split(",")

    def table(name: str, body: list[str], head: str = header, prefix: str = "") -> Path:
        path = tmp_path / name
        path.write_text(prefix + "\n".join([head, *body]) + "\n", encoding="utf-8")
        return path

    def as_fractions(row: str) -> str:
        fields = row.split(",")
        for column in ("valid_acc_200ep", "valid_acc_12ep", "test_acc_200ep",
                       "valid_split_test_acc_200ep", "test_acc_12ep"):
            position = columns.index(column)
            fields[position] = f"{float(fields[position]) / 100:.6f}"
        return ",".join(fields)

    prefixed = rows[0].split(",")
    prefixed[1] = "small:" + prefixed[1]
    cases = {
        table("part.csv", rows[:1000]): "has 1,000 cells of the 15,625 of the nb201 space; "
                                        "pass the whole table",
        table("twice.csv", [*rows, rows[5]]): f"lists {rows[5].split(',')[1]} twice (rows 7 "
                                              "and 15627); keep one row a cell",
        table("fractions.csv", [as_fractions(row) for row in rows]):
            "every valid_acc_200ep is at most 1, so they look like fractions",
        table("prefixed.csv", [",".join(prefixed), *rows[1:]]):
            "prefixed.csv:2: arch 'small:|",
        tmp_path: "is a folder; pass the NAS-Bench-201 CSV",
        table("semicolons.csv", [row.replace(",", ";") for row in rows[:3]],
              head=header.replace(",", ";")): "separated by commas",
    }
    for path, fragment in cases.items():
        with pytest.raises(UserError, match=re.escape(fragment)) as error:
            BenchmarkTable.load(path)
        assert "--space" not in str(error.value)  # a table search takes no other space
    marked = BenchmarkTable.load(table("excel.csv", rows, prefix="\ufeff"))
    assert marked.architecture(0) == synthetic.architecture(0)
    # looking cells up or sampling from them needs no whole table (nao info, correlate)
    part = BenchmarkTable.load(tmp_path / "part.csv", every_cell=False)
    assert len(part) == 1000 and part.architecture(0) == synthetic.architecture(0)


def test_evaluator_counts_distinct_queries_and_enforces_the_budget(synthetic):
    evaluator = TableEvaluator(synthetic, "valid_200ep", budget=2)
    a, b, c = (synthetic.architecture(i) for i in range(3))
    assert evaluator.query(a) == synthetic.value(a, "valid_acc_200ep")
    evaluator.query(a.to_string())  # repeated query, in text form: free
    assert evaluator.queries == 1 and evaluator.remaining == 1
    evaluator.query(b)
    assert evaluator.exhausted
    with pytest.raises(BudgetExhausted):
        evaluator.query(c)
    assert [arch for arch, _ in evaluator.history()] == [a, b]
    assert synthetic.index(c.to_string()) == synthetic.index(c)
    assert c.to_string() in synthetic and evaluator.known(a.to_string())
    # membership, as a set's: anything that is no row of the table is not in it
    assert "garbage" not in synthetic and named_architecture("naonet-v2") not in synthetic
    assert not evaluator.known(c.to_string())
    small = named_architecture("naonet-v2")
    with pytest.raises(UserError, match="the table evaluator takes architectures of the "
                                        "'nb201' space, got one of the 'small' space"):
        TableEvaluator(synthetic).query(small)


def test_evaluator_answers_the_chosen_validation_metric_only(synthetic):
    arch = synthetic.architecture(7)
    assert TableEvaluator(synthetic, "valid_12ep").query(arch) == \
        synthetic.value(arch, "valid_acc_12ep")
    with pytest.raises(UserError, match="unknown validation metric"):
        TableEvaluator(synthetic, "test_acc_200ep")
    assert not hasattr(TableEvaluator(synthetic), "test_accuracy")


def test_summary_reports_test_accuracy_of_the_best_by_validation(synthetic):
    evaluator = TableEvaluator(synthetic, budget=50)
    for index in range(50):
        evaluator.query(synthetic.architecture(index))
    summary = summarize(evaluator, synthetic)
    best = max(evaluator.history(), key=lambda pair: pair[1])[0]
    assert summary.best == best and summary.best_index == synthetic.index(best)
    assert summary.test_accuracy == synthetic.test_accuracy(best)
    assert len(summary.test_curve) == 50 and summary.test_curve[-1] == summary.test_accuracy
    assert list(summary.validation_curve) == sorted(summary.validation_curve)
    assert summary.queried == tuple(range(50))  # indices, in query order
    # kept as JSON and read back; a summary written before the queried cells were kept
    # (a stopped bench-search's progress file) reads as not knowing them (null, not [])
    values = json.loads(json.dumps(summary.to_dict()))
    assert SearchSummary.from_dict(values, NB201) == summary
    del values["queried"]
    unknown = SearchSummary.from_dict(values, NB201)
    assert unknown == replace(summary, queried=None)
    assert unknown.to_dict()["queried"] is None


def test_shared_table_holds_the_whole_space_and_its_optimum():
    table = BenchmarkTable.load(require(NB201_TABLE))
    assert len(table) == NB201.size
    best = table.best("valid_acc_200ep")
    assert table.index(best) == 6111
    assert table.test_accuracy(best) == pytest.approx(0.94373333)  # the file's 94.373333 %
    # the shortest form, as JSON files show it: no trace of a second rounding
    assert repr(table.value(table.architecture(0), "valid_acc_200ep")) == "0.81982667"


def test_a_gzipped_table_reads_as_the_plain_one_under_any_name(tmp_path):
    """The shared table compressed (``gzip -k``, or renamed): the same cells, indices and
    values; and the compressed CSV is a score file for ``nao correlate`` as well."""
    import gzip

    from naonet.analysis.scores import read_scores

    plain = require(NB201_TABLE)
    table = BenchmarkTable.load(plain)
    for name in ("nb201.csv.gz", "nb201.csv"):  # told by its content, not its name
        packed = tmp_path / name
        packed.write_bytes(gzip.compress(plain.read_bytes()))
        read = BenchmarkTable.load(packed)
        assert read.architectures == table.architectures
        assert (read.indices == table.indices).all()
        assert read.columns.keys() == table.columns.keys()
        assert all((read.columns[c] == table.columns[c]).all() for c in table.columns)
    column = "valid_acc_200ep"
    assert read_scores(tmp_path / "nb201.csv.gz", column) == read_scores(plain, column)


def test_a_damaged_gzipped_table_or_score_file_is_one_line(capsys, tmp_path):
    import gzip

    from naonet.cli.main import main

    whole = gzip.compress(write_synthetic_table(tmp_path / "t.csv").read_bytes())
    cut = tmp_path / "cut.csv.gz"  # a download that stopped half way
    cut.write_bytes(whole[: len(whole) // 2])
    flipped = bytearray(whole)  # a bit flipped in the compressed data
    flipped[len(whole) // 3] ^= 0xFF
    (tmp_path / "flipped.csv.gz").write_bytes(bytes(flipped))
    for name in ("cut.csv.gz", "flipped.csv.gz"):
        table = tmp_path / name
        for command in (["search", "--space", "nb201", "--evaluator", f"table:{table}",
                         "--budget", "5"], ["correlate", str(table), str(table),
                                            "--column-a", "valid_acc_200ep",
                                            "--column-b", "test_acc_200ep"]):
            status = main(command)
            err = capsys.readouterr().err
            assert status == 2 and f"{table} is a damaged gzip file" in err, err
            assert "compress it again" in err and len(err.strip().splitlines()) == 1, err
    # a search's list read with the (damaged, gzipped) scores beside it: the scores named
    pool, perf = tmp_path / "arch_pool", tmp_path / "arch_pool.perf"
    pool.write_text("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|\n")
    perf.write_bytes(gzip.compress(b"0.5\n")[:-4])  # its size field cut off
    assert main(["correlate", str(pool), str(pool)]) == 2
    err = capsys.readouterr().err
    assert f"{perf} is a damaged gzip file" in err and f"{pool} is" not in err, err

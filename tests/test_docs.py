"""The Python examples of the docs run as they are written."""

from __future__ import annotations

import re

import pytest

from conftest import NB201_TABLE, REPO, require

pytestmark = pytest.mark.threads(1)


def python_blocks(path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


@pytest.mark.parametrize("space_name", ["nb201", "small"])
def test_the_library_example_runs_one_nao_round_by_hand(capsys, space_name):
    """docs/library.md: sample a pool, train the supernet with balanced sampling, score,
    train the controller and generate new architectures (up to five: the decoder may
    find fewer new ones); it prints each with its parameter count. The docs say the
    same lines serve every space: the NAO cell space is run too."""
    blocks = python_blocks(REPO / "docs" / "library.md")
    assert len(blocks) == 1 and 'get_space("nb201")' in blocks[0]
    code = blocks[0].replace('get_space("nb201")', f'get_space("{space_name}")')
    names: dict = {"__name__": "docs_example"}
    exec(compile(code, "docs/library.md", "exec"), names)
    pool, new, space = names["pool"], names["new"], names["space"]
    assert space.name == space_name
    assert len(pool) == 20 and all(0 <= score <= 1 for score in names["scores"])
    assert 1 <= len(new) <= 5 and len(set(new)) == len(new)
    assert not set(new) & set(pool)
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"{cell.to_qualified_string()} "
                     f"{space.parameter_count(cell, space.network_config(16, 5))}"
                     for cell in new]
    if space_name == "nb201":  # it seeds everything it draws from: a rerun repeats it
        exec(compile(code, "docs/library.md", "exec"), {"__name__": "docs_example"})
        assert capsys.readouterr().out.splitlines() == lines


def test_the_benchmark_tables_example_prints_what_its_comments_say(capsys):
    """docs/nas-bench-201.md's example read TABLE, a shell variable of the block above
    it, and printed nothing: it failed as written."""
    require(NB201_TABLE)
    blocks = python_blocks(REPO / "docs" / "nas-bench-201.md")
    assert len(blocks) == 1
    code = blocks[0].replace('"../shared/data/nasbench201/nb201_cifar10.csv"',
                             repr(str(NB201_TABLE)))
    exec(compile(code, "docs/nas-bench-201.md", "exec"), {"__name__": "docs_example"})
    said = [line.split("# ", 1)[1].split(" (")[0] for line in code.splitlines()
            if line.startswith("print(")]
    assert capsys.readouterr().out.splitlines() == said


def released_flag_rows() -> list[tuple[str, list[str], list[str]]]:
    """docs/search.md's map of the released flags: (naonet command, the row's released
    flags, the flags it names in their place)."""
    text = (REPO / "docs" / "search.md").read_text()
    table = text.split("## From the released code's flags", 1)[1].split("\n\n", 3)[2]
    rows = []
    for line in table.splitlines()[2:]:
        released, ours = line.strip("|").split(" | ", 1)
        command = "train" if released.strip().lstrip("`").startswith("train_") else "search"
        flags = [flag for flag in re.findall(r"`(--[\w*]+)", released) if "*" not in flag]
        named = re.findall(r"--[a-z][a-z-]*", ours)
        if "the same names, with dashes" in ours:
            named = [flag.replace("_", "-") for flag in flags]
        rows.append((command, flags, named))
    return rows


def test_every_released_flag_the_docs_map_is_answered_by_nao_in_their_words():
    """A released flag given to nao was refused as unknown, without the replacement the
    docs name: each one the docs map gets a hint naming a flag of that row (or saying it
    is not offered, where the docs say so), and each flag a hint names exists."""
    from naonet.cli.main import build_parser
    from naonet.compat.released_flags import released_flag_hint

    parser = build_parser()
    checked = 0
    for command, flags, ours in released_flag_rows():
        known = set(parser.subcommand_parsers[command]._option_string_actions)
        for flag in flags:
            if flag in known:  # the same name in naonet
                continue
            hint = released_flag_hint(command, flag, known)
            assert hint is not None, (command, flag)
            advice = hint.split(": ", 1)[1]  # after the released flag's name
            named = re.findall(r"--[a-z][a-z-]*", advice)
            if "not offered" in hint:
                assert not named or set(named) <= known, hint
            else:
                assert named and named[0] in ours and set(named) <= known, (flag, hint, ours)
            checked += 1
    assert checked >= 40  # the table's rows were all read

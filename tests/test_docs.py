"""The Python examples of the docs run as they are written."""

from __future__ import annotations

import re

import pytest

from conftest import REPO

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

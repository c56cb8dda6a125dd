"""The command line as a user meets it."""

import pytest

from conftest import nao_in_process


def test_help_lists_the_subcommands(capsys):
    with pytest.raises(SystemExit) as exit_:
        nao_in_process(capsys, "--help")
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for command in ("train", "eval", "predict", "export", "info", "convert", "search"):
        assert command in out


def test_info_prints_the_published_parameter_counts(capsys):
    status, out, err = nao_in_process(capsys, "info", "naonet-v2")
    assert status == 0, err
    assert "4,387,654" in out and "7,026,850" in out
    assert "node 2 = sep_conv_5x5(state 1) + sep_conv_5x5(state 0)" in out

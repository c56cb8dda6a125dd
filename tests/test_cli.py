"""The command line as a user meets it."""

from conftest import nao_in_process, run_nao


def test_help_lists_the_subcommands():
    result = run_nao("--help")
    assert result.returncode == 0
    for command in ("train", "eval", "info", "convert"):
        assert command in result.stdout


def test_info_prints_the_published_parameter_counts(capsys):
    status, out, err = nao_in_process(capsys, "info", "naonet-v2")
    assert status == 0, err
    assert "4,387,654" in out and "7,026,850" in out
    assert "node 2 = sep_conv_5x5(state 1) + sep_conv_5x5(state 0)" in out

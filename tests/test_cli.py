"""The command line as a user meets it."""

from conftest import run_nao


def test_help_lists_the_subcommands():
    result = run_nao("--help")
    assert result.returncode == 0
    for command in ("train", "eval", "info", "convert"):
        assert command in result.stdout


def test_info_prints_the_published_parameter_counts():
    result = run_nao("info", "naonet-v2")
    assert result.returncode == 0, result.stderr
    assert "4,387,654" in result.stdout and "7,026,850" in result.stdout
    assert "node 2 = sep_conv_5x5(state 1) + sep_conv_5x5(state 0)" in result.stdout

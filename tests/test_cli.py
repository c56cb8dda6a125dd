"""The command line as a user meets it."""

import pytest

import naonet

from conftest import nao_in_process


def test_help_lists_the_subcommands(capsys):
    with pytest.raises(SystemExit) as exit_:
        nao_in_process(capsys, "--help")
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    # each listed as a line of the COMMAND group (a command whose module fails to import
    # would be left out silently); the description's "search, train and evaluate" is not
    listed = {line.split()[0] for line in out.split("COMMAND\n", 1)[1].splitlines()
              if line.startswith("    ") and not line.startswith("     ")}
    assert listed == {"train", "eval", "predict", "export", "info", "convert", "search",
                      "show", "bench-search", "correlate", "check-space"}


def test_info_prints_the_published_parameter_counts(capsys, tmp_path):
    status, out, err = nao_in_process(capsys, "info", "naonet-v2")
    assert status == 0, err
    assert "4,387,654" in out and "7,026,850" in out
    assert "node 2 = sep_conv_5x5(state 1) + sep_conv_5x5(state 0)" in out
    # the readable form nao show prints is longer than a file name may be
    readable = naonet.named_architecture("naonet-v2").to_readable()
    assert len(readable) > 255
    status, same, err = nao_in_process(capsys, "info", readable)
    assert status == 0 and same == out, err
    (tmp_path / "arch_pool").write_text(f"{readable}\n")
    status, _, err = nao_in_process(capsys, "info", str(tmp_path / "arch_pool"))
    assert status == 2 and "lists a search's architectures; pass one of its lines" in err, err


def test_a_nas_bench_201_line_of_arch_pool_is_shown_and_looked_up(capsys, tmp_path):
    """What a one-shot NB201 search writes is read by nao info and nao show, plain or
    with its space's prefix; the table's own numbers (its best cell's parameter count and
    accuracy) come back."""
    from naonet.nb201 import TEST_COLUMN, BenchmarkTable

    from conftest import NB201_TABLE, require

    table = BenchmarkTable.load(require(NB201_TABLE))
    best_row = int(table.column(TEST_COLUMN).argmax())
    best = table.architectures[best_row]
    test_accuracy = table.column(TEST_COLUMN)[best_row]
    parameters = round(table.column("params_mb")[best_row] * 1e6)  # the table's CIFAR-10 net
    from naonet.training.config import PRESETS

    assert PRESETS["nb201-cifar10"]["arch"] == best.to_string()  # the preset's own cell
    for line in (best.to_string(), f"nb201:{best.to_string()}", str(table.index(best))):
        status, out, err = nao_in_process(capsys, "info", line, "--reference",
                                          f"table:{NB201_TABLE}")
        assert status == 0, err
        assert f"{'CIFAR-10':<22}{parameters:>12,}" in out
        assert f"test {100 * test_accuracy:.2f} % (rank 1 of 15,625)" in out
        assert f"index {table.index(best)}," in out
    status, out, err = nao_in_process(capsys, "show", best.to_string(), "-o",
                                      str(tmp_path / "cell.png"))
    assert status == 0, err
    assert (tmp_path / "cell.png").read_bytes()[:4] == b"\x89PNG"
    for command, fragment in [
            (["info", best.to_string(), "--space", "small"], "written in the form of the "
                                                             "'nb201' space"),
            (["info", f"nb201:{best.to_string()}", "--space", "small"],
             "prefixed with the name of the 'nb201'"),
            (["info", "42"], "a NAS-Bench-201 index needs --reference table:CSV")]:
        status, _, err = nao_in_process(capsys, *command)
        assert status == 2 and len(err.strip().splitlines()) == 1, err
        assert fragment in err, err


def test_every_search_preset_is_described_in_the_help():
    from naonet.cli.search import PRESET_HELP
    from naonet.search.config import PRESETS

    assert set(PRESET_HELP) == set(PRESETS)


def test_search_help_gives_the_one_shot_default_of_each_option_shared_with_the_table(capsys):
    """--score-transform said '(default rank)': the table search's; the one-shot search's
    is raw."""
    import re

    from naonet.cli.main import main
    from naonet.search.config import SearchConfig

    with pytest.raises(SystemExit):
        main(["search", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    one_shot = SearchConfig()
    for flag, field in [("--score-transform", "score_transform"), ("--max-lambda", "max_lambda"),
                        ("--fill", "fill"), ("--population-size", "population_size"),
                        ("--sample-size", "sample_size")]:
        # the option's help, up to the next option
        entry = re.search(rf"(?<!\[){flag} (?:(?! --[a-z]).)*", text).group(0)
        assert f"one-shot: {getattr(one_shot, field)})" in entry, entry


def test_a_preset_of_another_space_is_noted_with_the_recipe_that_fits(capsys):
    """--preset nb201-cifar10 with a NAONet cell trained a C 16 N 5 NAONet without a word
    (a trial user got chance accuracy); it still runs, but says which recipe fits."""
    status, _, err = nao_in_process(capsys, "train", "--preset", "nb201-cifar10", "--arch",
                                    "naonet-v2", "--data", "/no/such/folder")
    assert status == 2  # the missing data, after the note
    assert err.splitlines()[0] == ("nao train: note: --preset nb201-cifar10 is the recipe of "
                                   "nb201 networks; a small architecture's is --preset "
                                   "naonet-v2-cifar10")
    status, _, err = nao_in_process(capsys, "train", "--preset", "naonet-v2-cifar10",
                                    "--data", "/no/such/folder")
    assert status == 2 and "note:" not in err
    # a middle cell's recipe is that preset too: it was noted as 'is the recipe of small
    # networks; a middle architecture's is --preset naonet-v2-cifar10'
    middle = "middle:" + " ".join(["0"] * 40)
    status, _, err = nao_in_process(capsys, "train", "--preset", "naonet-v2-cifar10",
                                    "--arch", middle, "--data", "/no/such/folder")
    assert status == 2 and "note:" not in err, err


def test_a_preset_of_another_skeleton_on_folder_images_is_noted(capsys):
    """--preset naonet-v2-imagenet --dataset folder trained the CIFAR network at 32 px
    without a word (a trial user's surprise): it still runs, but says how to get the
    ImageNet one."""
    status, _, err = nao_in_process(capsys, "train", "--preset", "naonet-v2-imagenet",
                                    "--dataset", "folder", "--data", "/no/such/folder")
    assert status == 2  # the missing data, after the note
    assert err.splitlines()[0] == (
        "nao train: note: --preset naonet-v2-imagenet is the recipe of the imagenet network; "
        "folder images at 32 px train the cifar network (--image-size 65 or more (224 as "
        "published) for the imagenet one)")
    for flags in (["--image-size", "224"], ["--dataset", "imagenet"]):
        status, _, err = nao_in_process(capsys, "train", "--preset", "naonet-v2-imagenet",
                                        "--dataset", "folder", *flags, "--data",
                                        "/no/such/folder")
        assert status == 2 and "note:" not in err


def test_progress_bars_are_drawn_on_a_terminal_alone(monkeypatch):
    """Redirected to a log, a 76-second search's bars wrote 349 carriage-return lines."""
    import io
    import sys

    from naonet.training.engine import step_progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)  # not in a notebook
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a file or a pipe
    assert step_progress(10, "epoch 1/3", enabled=True) is None
    monkeypatch.setattr(sys, "stderr", Terminal())
    assert step_progress(10, "epoch 1/3", enabled=False) is None  # --no-progress
    bar = step_progress(10, "epoch 1/3", enabled=True)
    assert bar is not None
    bar.close()


def test_the_package_lists_its_public_names_alone():
    """dir(naonet) listed the modules its own code imported (importlib, os)."""
    import types

    listed = [name for name in dir(naonet) if not name.startswith("_")]
    assert set(naonet.__all__) <= set(listed)
    others = [name for name in listed if name not in naonet.__all__]
    # beside the public names, the package's own sub-modules that were imported, alone
    assert all(isinstance(getattr(naonet, name), types.ModuleType)
               and getattr(naonet, name).__name__ == f"naonet.{name}" for name in others), others


def test_ctrl_c_while_nao_starts_is_one_line():
    """The command imports torch only once it runs (a second or two): a Ctrl-C then was
    a traceback and status -2, before main's handling began."""
    import subprocess
    import sys

    probe = "import sys, naonet.cli.main; print('torch' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=600)
    assert loaded.stdout.strip() == "False", loaded.stderr
    interrupted = ("import naonet.cli.main as cli\n"
                   "def interrupt():\n    raise KeyboardInterrupt\n"
                   "cli.build_parser = interrupt  # the parser imports the subcommands\n"
                   "cli.run()\n")
    result = subprocess.run([sys.executable, "-c", interrupted], capture_output=True,
                            text=True, timeout=600)
    assert (result.returncode, result.stderr) == (130, "nao: interrupted\n")


def test_print_config_shows_a_presets_recipe_and_does_nothing_else(capsys, tmp_path,
                                                                    monkeypatch):
    """--help lists the defaults without a preset: a preset's recipe could be seen only
    in a run folder's config.yaml, after starting the run. --print-config prints the
    options a run would be given, as its config.yaml holds them, and starts nothing."""
    import yaml

    from naonet.search.config import PRESETS as SEARCH_PRESETS
    from naonet.training.config import PRESETS as TRAIN_PRESETS

    monkeypatch.chdir(tmp_path)
    status, out, err = nao_in_process(capsys, "train", "--preset", "naonet-v2-imagenet",
                                      "--lr", "0.2", "--print-config")
    assert status == 0, err
    shown = yaml.safe_load(out)
    recipe = TRAIN_PRESETS["naonet-v2-imagenet"]
    assert {name: shown[name] for name in recipe if name != "lr"} == {
        name: value for name, value in recipe.items() if name != "lr"}
    assert shown["lr"] == 0.2 and shown["output"] == str(tmp_path / "runs" /
                                                         "naonet-v2-imagenet")
    (tmp_path / "printed.yaml").write_text(out)  # it reads back as the same run
    status, again, err = nao_in_process(capsys, "train", "--config", "printed.yaml",
                                        "--print-config")
    assert status == 0 and again == out, err
    status, out, err = nao_in_process(capsys, "search", "--preset", "quick-nb201",
                                      "--print-config")
    assert status == 0, err
    shown = yaml.safe_load(out)
    assert all(shown[name] == value for name, value in SEARCH_PRESETS["quick-nb201"].items()
               if name not in ("data", "output", "reference", "seed_pool_file"))
    assert list(tmp_path.iterdir()) == [tmp_path / "printed.yaml"]  # no run folder
    status, _, err = nao_in_process(capsys, "search", "--evaluator", "table:x.csv",
                                    "--print-config")
    assert status == 2 and "--print-config applies only to the one-shot search" in err


def refused_flag(capsys, *argv: str) -> str:
    """The one line nao prints for an unknown argument (argparse exits with status 2)."""
    with pytest.raises(SystemExit) as exit_:
        nao_in_process(capsys, *argv)
    assert exit_.value.code == 2
    return capsys.readouterr().err


def test_a_released_flag_is_answered_with_its_replacement(capsys):
    """The released train_search.py's flags were refused as unknown, no more."""
    assert refused_flag(capsys, "search", "--child_epochs", "10") == (
        "nao search: error: unrecognized arguments: --child_epochs 10; --child_epochs is a "
        "flag of the released train_search.py: pass --supernet-epochs (per round; --rounds "
        "counts the rounds) (docs/search.md maps every released flag) (see 'nao search "
        "--help')\n")
    assert "pass --label-smoothing" in refused_flag(capsys, "train", "--label_smooth", "0.1")
    assert "released" not in refused_flag(capsys, "train", "--no-such-flag")
    # every released flag of a command is answered (only the first was)
    err = refused_flag(capsys, "train", "--cutout_size=16", "--output_dir=exp/x",
                       "--keep_prob", "0.6", "--no-such-flag")
    assert ("--cutout_size is a flag of the released train_cifar.py and train_imagenet.py: "
            "pass --cutout; --output_dir is a flag of the released train_cifar.py and "
            "train_imagenet.py: pass --output; naonet's flags are written with dashes: pass "
            "--keep-prob (docs/search.md maps") in err
    assert len(err.strip().splitlines()) == 1, err

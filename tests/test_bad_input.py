"""Bad input ends with exit status 2 and one line that names the problem, never a
traceback, and nothing is written. One table, run in this process (``main()``), so a
new case costs milliseconds, not a Python start-up."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from naonet.cli.main import main

from conftest import FIXTURES, REPO, nao_in_process, require

TRAIN = ["train", "--arch", "naonet-v2", "--device", "cpu"]
SEARCH = ["search", "--device", "cpu"]
CORRELATE = ["correlate", "--supernet", "--reference", "table:t.csv", "--data", "d"]

CASES = [
    # a subcommand's bad flags name its help (they named nao's)
    (["train", "--preset", "nope"], "nao train: error: argument --preset: invalid choice"),
    (["train", "--image-size", "abc"], "(see 'nao train --help')"),
    (["train", "--bogus", "1"], "nao train: error: unrecognized arguments: --bogus 1 (see "
                                "'nao train --help')"),
    (["predict", "x.pt"], "nao predict: error: the following arguments are required: images"),
    (["--bogus", "train"], "nao: error: unrecognized arguments: --bogus (see 'nao --help')"),
    # architectures, data, presets and choices
    (TRAIN + ["--arch", "1 2 3"], "has 3 integers"),
    (TRAIN + ["--arch", "naonet-v9"], "unknown architecture name"),
    # once "'naonet-v2' belongs to the 'small' space, not 'bogus'"
    (TRAIN + ["--space", "bogus"], "unknown search space 'bogus'; use one of: middle, nb201"),
    (TRAIN + ["--data", "/no/such/folder", "--epochs", "1"], "does not exist; pass --data with "
     "the folder (or archive) of the data set, or add --download to fetch cifar10 there"),
    (SEARCH + ["--dataset", "folder", "--data", "/no/such/folder"], "of the data set"),
    (TRAIN + ["--epochs", "many"], "invalid int value"),
    (TRAIN + ["--preset", "nope"], "invalid choice"),
    (TRAIN + ["--amp", "fp8"], "--amp must be auto, none, bf16, fp16, got 'fp8'"),
    # field names once ('epochs must be >= 1', 'keep_prob must be in (0, 1]'), now flags
    (TRAIN + ["--epochs", "0"], "--epochs must be >= 1, got 0"),
    (TRAIN + ["--keep-prob", "2"], "--keep-prob must be in (0, 1], got 2.0"),
    (TRAIN + ["--lr-schedule", "step"], "--lr-schedule must be 'cosine' or 'exponential'"),
    (TRAIN + ["--cutout", "-1"], "--cutout must be >= 0, got -1"),
    (SEARCH + ["--cutout", "-1"], "--cutout must be >= 0, got -1"),
    # the re-rank network's options under their own names, not as --channels or --keep-prob
    (SEARCH + ["--rerank-channels", "3"], "--rerank-channels must be an even number >= 2"),
    (SEARCH + ["--rerank-keep-prob", "0"], "--rerank-keep-prob must be in (0, 1], got 0.0"),
    (SEARCH + ["--rerank-drop-path-keep-prob", "2"], "--rerank-drop-path-keep-prob must be"),
    (SEARCH + ["--rerank-layers", "0"], "--rerank-layers (cells per stage, N) must be >= 1"),
    (SEARCH + ["--channels", "3"], "--channels must be an even number >= 2, got 3"),
    (["eval", str(REPO / "pyproject.toml"), "--dataset", "cifar10"],
     "pyproject.toml is a text file, not a checkpoint"),
    # the arguments of nao predict swapped: it said "corrupt or truncated"
    (["predict", str(REPO / "docs" / "images" / "nas-bench-201-constrained.png"), "x.jpg"],
     "nas-bench-201-constrained.png is an image, not a checkpoint; pass a PyTorch "
     "checkpoint (nao predict takes the checkpoint first, then the images)"),
    (["info", "small:1 1 0 1"], "has 4 integers"),
    # once "architecture string has a non-integer entry 'nonexistent.pt'"
    (["info", "nonexistent.pt"], "nonexistent.pt does not exist; check the path"),
    (["info", "runs/x/last"], "runs/x/last does not exist; check the path"),
    # once TorchScript written into a .onnx file, or into a .txt one
    (["export", str(FIXTURES / "naonet_v2_cifar_c8_l1.pt"), "m.onnx", "--format",
      "torchscript"], "--format torchscript does not fit m.onnx (.onnx is the suffix of onnx "
                      "files); name it .pt, or drop --format"),
    (["export", str(FIXTURES / "naonet_v2_cifar_c8_l1.pt"), "m.txt"],
     "cannot tell the format from m.txt's suffix; name it .onnx or .pt"),
    (["info", "naonet-v2", "--reference", "table:t.csv"], "looks NAS-Bench-201 cells up"),
    # numbers that would train to NaN or silently do nothing
    (TRAIN + ["--lr", "inf"], "--lr must be a finite number"),
    (TRAIN + ["--momentum", "nan"], "--momentum must be a finite number"),
    (TRAIN + ["--weight-decay", "nan"], "--weight-decay must be a finite number"),
    (TRAIN + ["--grad-clip", "nan"], "--grad-clip must be a finite number"),
    (TRAIN + ["--grad-clip", "-1"], "--grad-clip must be >= 0"),
    (SEARCH + ["--grad-clip", "-1"], "--grad-clip must be >= 0"),
    (TRAIN + ["--nesterov", "--momentum", "0"], "--nesterov needs --momentum above 0"),
    (TRAIN + ["--lr-gamma", "0"], "--lr-gamma must be > 0"),
    (TRAIN + ["--momentum", "-1"], "--momentum must be >= 0"),
    (TRAIN + ["--weight-decay", "-1"], "--weight-decay must be >= 0"),
    (TRAIN + ["--test-subset", "-1"], "--test-subset must be >= 0"),
    (TRAIN + ["--eval-batch-size", "0"], "--eval-batch-size must be >= 1"),
    (TRAIN + ["--eval-batch-size", "-5"], "--eval-batch-size must be >= 1"),
    (TRAIN + ["--workers", "-1"], "--workers must be >= 0"),
    (TRAIN + ["--output", ""], "--output must name the run folder"),
    (SEARCH + ["--lr", "nan"], "--lr must be a finite number"),
    (SEARCH + ["--workers", "-1"], "--workers must be >= 0"),
    (SEARCH + ["--weight-decay", "-1"], "--weight-decay must be >= 0"),
    (["search", "--device", "foo"], "--device must be auto, cpu, cuda, cuda:N or mps"),
    (SEARCH + ["--output", ""], "--output must name the run folder"),
    (CORRELATE + ["--valid-size", "0"], "--valid-size must be >= 1"),
    (CORRELATE + ["--eval-batches", "-1"], "--eval-batches must be >= 1"),
    (CORRELATE + ["--batch-size", "0"], "--batch-size must be >= 1"),
    (CORRELATE + ["--lr", "-1"], "--lr > 0"),
    (CORRELATE + ["--few-shot-split", "3"], "the ranking experiment trains one supernet"),
    (SEARCH + ["--few-shot-split", "3.5"], "few_shot_split must be an integer or none"),
    # budgets on the final network
    (SEARCH + ["--max-params", "0"], "--max-params must be a positive number"),
    (SEARCH + ["--max-latency-ms", "nan"], "--max-latency-ms must be a finite number"),
    (["search", "--space", "nb201", "--evaluator", "table:t.csv", "--max-params", "-5"],
     "--max-params must be a positive number"),
    (["bench-search", "--evaluator", "table:t.csv", "--max-macs", "-1"],
     "--max-macs must be a positive number"),
    (["eval", str(FIXTURES / "naonet_v2_cifar_c8_l1.pt"), "--arch", "naonet-v2", "--dataset",
      "cifar10", "--device", "foo"], "--device must be auto, cpu"),
    (["show", "naonet-v2", "-o", "cells.png", "--title", "$$"], "cannot typeset the title"),
    (["bench-search", "--evaluator", "table:t.csv", "--max-latency-ms", "5", "--device",
      "foo"], "--device must be auto, cpu"),
    (["bench-search", "--evaluator", "table:t.csv", "--plot", "curves.jpg"],
     "give a file ending in .png"),
    # the result files' places, before the searches (found after them, all was lost)
    (["bench-search", "--evaluator", "table:t.csv", "--output", f"{REPO / 'README.md'}/x.json"],
     f"{REPO / 'README.md'} is a file, not a folder; pass an output file elsewhere"),
    (["bench-search", "--evaluator", "table:t.csv", "--plot", f"{REPO / 'README.md'}/a/x.png"],
     f"{REPO / 'README.md'} is a file, not a folder; pass an output file elsewhere"),
    (["bench-search", "--evaluator", "table:t.csv", "--output", "/proc/x.json"],
     "cannot write in the folder /proc ("),
    (["search", "--space", "nb201", "--evaluator", "table:t.csv", "--result-json",
      f"{REPO / 'README.md'}/x.json"], "README.md is a file, not a folder; pass an output file"),
    (["bench-search", "--evaluator", "table:t.csv", "--max-lambda", "0"],
     "--max-lambda must be >= 1, got 0"),
    # named by the flag (the library's configs said 'seed count', 'candidates_per_round')
    (["search", "--evaluator", "table:t.csv", "--space", "nb201", "--seed-count", "0"],
     "--seed-count must be >= 1, got 0"),
    (["search", "--evaluator", "table:t.csv", "--space", "nb201", "--candidates-per-round",
      "0"], "--candidates-per-round must be >= 1, got 0"),
    # another strategy's option was dropped silently
    (["search", "--evaluator", "table:t.csv", "--space", "nb201", "--strategy", "random",
      "--controller-epochs", "5"], "--controller-epochs applies only to --strategy nao"),
    (["search", "--evaluator", "table:t.csv", "--space", "nb201", "--population-size", "5"],
     "--population-size applies only to --strategy evolution; drop it or pass --strategy "
     "evolution (this search runs nao)"),
    (["bench-search", "--evaluator", "table:t.csv", "--fill", "none"],
     "--fill none does not complete a round"),
    (["show", "naonet-v2", "-o", "cells.png", "--title", "$\\foo$"], "Unknown symbol"),
    (["show", "naonet-v2", "-o", "cells.jpg"], "cannot write cells.jpg: give a file ending in"),
    (TRAIN + ["--momentum", "5"], "--momentum must be < 1"),
    # a flag that did nothing, silently (ImageNet, or a folder, cannot be downloaded)
    (["train", "--preset", "naonet-v2-imagenet", "--data", "nowhere", "--download"],
     "--download fetches cifar10 and cifar100 only; imagenet is not downloaded: put it at "
     "--data nowhere yourself and drop --download"),
    (SEARCH + ["--dataset", "folder", "--download"], "a folder data set is not downloaded"),
    (SEARCH + ["--momentum", "1"], "--momentum must be < 1"),
    # a checkpoint's folder, and options of the other kind of search
    (["eval", str(FIXTURES), "--dataset", "cifar10"], "is a folder; pass one of its checkpoints"),
    (["export", str(FIXTURES / "naonet_v2_cifar_c8_l1.pt"), "m.pt", "--image-size", "-2"],
     "--image-size must be >= 0 (0: the trained size), got -2"),
    (["export", str(FIXTURES / "naonet_v2_cifar_c8_l1.pt"), "m.pt", "--batch-size", "4"],
     "a TorchScript file takes any batch"),
    (SEARCH + ["--budget", "5"], "--budget applies only to a table search"),
    (["search", "--space", "nb201", "--evaluator", "table:t.csv", "--output", "out"],
     "a table search writes no run folder, --result-json FILE keeps its result"),
    (["search", "--space", "nb201", "--evaluator", "table:t.csv", "--supernet-epochs", "3"],
     "--supernet-epochs applies only to the one-shot search"),
    # seeds every random generator takes (once a traceback after the folder was claimed)
    (SEARCH + ["--seed", "-1"], "--seed must be an integer from 0 to"),
    (TRAIN + ["--seed", str(2**70)], "--seed: 1180591620717411303424 is not an integer from "
     "-2^63 to 2^63 - 1"),
    (TRAIN + ["--epochs", "1" + "0" * 400], "--epochs: 100000000000000000000000000000 is not "
     "an integer from -2^63"),  # an OverflowError once, from the message itself
    (["search", "--space", "nb201", "--evaluator", "table:t.csv", "--seed", "-3"],
     "--seed must be an integer from 0 to"),
    (["bench-search", "--evaluator", "table:t.csv", "--first-seed", str(2**32 - 2)],
     "--first-seed must be an integer from 0 to"),
    # sizes and counts of the other commands
    (["eval", str(FIXTURES / "naonet_v2_cifar_c8_l1.pt"), "--arch", "naonet-v2", "--dataset",
      "cifar10", "--batch-size", "0"], "--batch-size must be >= 1, got 0"),
    (["predict", str(FIXTURES / "naonet_v2_cifar_c8_l1.pt"), "x.jpg", "--arch", "naonet-v2",
      "--top-k", "0"], "--top-k must be >= 1, got 0"),
    (["predict", str(FIXTURES / "naonet_v2_cifar_c8_l1.pt"), "x.jpg", "--arch", "naonet-v2",
      "--image-size", "-1"], "--image-size must be >= 0, got -1"),
    (["export", str(FIXTURES / "naonet_v2_cifar_c8_l1.pt"), "m.onnx", "--arch", "naonet-v2",
      "--batch-size", "-1"], "--batch-size must be >= 0 (0: dynamic), got -1"),
    (["convert", str(FIXTURES / "naonet_v2_cifar_c8_l1.pt"), ""],
     "the output file name is empty"),
    # the target checked before the work (a folder was found after a 13 s export)
    (["convert", str(FIXTURES / "naonet_v2_cifar_c8_l1.pt"), str(REPO / "src")],
     "/src is a folder; pass the file to write, a name in it or elsewhere"),
    (["export", str(FIXTURES / "naonet_v2_cifar_c8_l1.pt"), "out/"],
     "out/ is a folder; pass the file to write"),
    (["convert", str(FIXTURES / "naonet_v2_cifar_c8_l1.pt"), "model.onnx"],
     "model.onnx names an ONNX file, but nao convert writes a PyTorch checkpoint: name it "
     ".pt, or export the network with nao export"),
    (["correlate", "--supernet", "a.txt", "b.txt"], "--supernet takes no score files"),
    (["correlate", "--supernet"], "--supernet needs --reference table:PATH"),
    (CORRELATE + ["--archs", "1"], "--archs must be >= 2 to rank anything"),
    (CORRELATE + ["--evaluator", "table:u.csv"], "--reference table:t.csv and --evaluator "
     "table:u.csv name two tables (--evaluator is another name for --reference); pass one"),
    (CORRELATE + ["--score-every", "-1"], "--score-every must be >= 0"),
    (CORRELATE + ["--train-on", "pool"], "argument --train-on: invalid choice: 'pool'"),
    (CORRELATE + ["--supernet-pool", "all"], "unrecognized arguments: --supernet-pool"),
    # search options the experiment never reads (they were taken and dropped silently)
    (CORRELATE + ["--max-params", "100000"], "--max-params applies only to nao search; "
     "drop it (the ranking experiment trains one supernet once and scores a sample of the "
     "table; nao correlate --help lists its options)"),
    (CORRELATE + ["--rerank-top", "9"], "--rerank-top applies only to nao search"),
    # a repeat ran or trained the same thing twice
    (CORRELATE + ["--samplings", "balanced,uniform,balanced"],
     "--samplings: 'balanced' comes twice; list each once"),
    (["bench-search", "--evaluator", "table:t.csv", "--strategies", "random,random"],
     "--strategies: 'random' comes twice; list each once"),
    (["bench-search", "--evaluator", "table:t.csv", "--strategies="],  # 'empty list' once
     "--strategies: empty; use a comma-separated list of: nao, random, evolution"),
    (["bench-search", "--evaluator", "table:t.csv", "--population-size", "0"],
     "evolution needs 1 <= --sample-size (3) <= --population-size (0)"),
    (["search", "--evaluator", "table:t.csv", "--fill", "rnd"],  # it offered none, refused
     "unknown fill 'rnd'; a search with a query budget takes random or mutation or "
     "predicted"),
    (CORRELATE + ["--no-plot"], "--plot applies only to nao search"),
    (["bench-search", "--evaluator", "table:t.csv", "--budget", "0"], "--budget must be >= 1"),
    (["bench-search", "--evaluator", "table:t.csv", "--seeds", "0"],
     "--seeds must be from 1 to 4,294,967,296, got 0"),
    (TRAIN + ["--amp", "fp16"], "--amp fp16 needs a CUDA device; use --amp bf16"),
    # another strategy's option on a one-shot search (it was dropped without a word)
    (["search", "--strategy", "random", "--controller-epochs", "5"],
     "--controller-epochs applies only to --strategy nao; drop it or pass --strategy nao "
     "(this search runs random)"),
    (["search", "--max-lambda", "3", "--strategy", "evolution"],
     "--max-lambda applies only to --strategy nao"),
    (["search", "--population-size", "10"], "--population-size applies only to --strategy "
     "evolution; drop it or pass --strategy evolution (this search runs nao)"),
    (["eval", str(FIXTURES / "naonet_v2_cifar_c8_l1.pt"), "--arch", "naonet-v2", "--dataset",
      "cifar10", "--device", "cpu", "--amp", "fp16"],
     "--amp fp16 needs a CUDA device; use --amp bf16"),  # eval took it
    # a flag is its whole name (argparse took --epoch for --epochs)
    (TRAIN + ["--epoch", "1"], "unrecognized arguments: --epoch 1"),
    # paths where an architecture goes (once "non-integer entry 'out/nonexist.pt'")
    (TRAIN + ["--arch", "out/missing.pt"], "out/missing.pt does not exist; --arch takes an "
     "architecture (a name or a text form), or check the path"),
    (["info", ""], "empty architecture string; give a name"),  # was '. is a folder'
    (["show", "out/missing.pt"], "out/missing.pt does not exist; check the path of the "
     "checkpoint"),
    (["show", "6111"], "6111 is one integer: nao info 6111 --reference table:CSV names the "
     "NAS-Bench-201 cell of that index"),  # it named --reference, which show has not
    (TRAIN + ["--arch", "small:1 1 0 1 2 4 0 0 0 0 2 1 0 0 0 2 0 3 0 0 0 2 0 2 2 2 1 0 0 0 0 "
              "1 0 0 0 3 0 0 0 1\nsmall:0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 "
              "0 0 0 0 0 0 0 0 0 0 0 0 0 0 0"],
     "the architecture text holds 2 architectures, one a line, as a search's arch_pool "
     "files list them; pass one of them"),
    (["info", "small:|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|"
              "nor_conv_3x3~1|nor_conv_3x3~2|"],  # once "unknown search space 'small:'"
     "is written in the form of the 'nb201' space but prefixed 'small'; drop the prefix"),
    (SEARCH + ["--amp", "fp16"], "--amp fp16 is not supported by the search"),
    # from a fuzzing of every command: tracebacks of overflows, options silently dropped
    (TRAIN + ["--lr", "0.025", "--lr-min", "1.5"], "--lr-min 1.5 is above --lr 0.025"),
    (TRAIN + ["--log-every", "0"], "--log-every must be >= 1, got 0"),
    (SEARCH + ["--supernet-epochs", "1e30"], "--supernet-epochs: 1e30 is not an integer "
     "from -2^63 to 2^63 - 1"),
    (["bench-search", "--evaluator", "table:t.csv", "--seeds", "99999999999999999999"],
     "--seeds: 99999999999999999999 is not an integer from -2^63"),
    (TRAIN + ["--image-size", "4294967296"], "--image-size must be at most 4,096 pixels a "
     "side, got 4,294,967,296"),
    (SEARCH + ["--space", "nb201", "--seed-pool-size", "20000"], "--seed-pool-size 20,000 is "
     "more than the 15,625 architectures of the nb201 space"),
    (["correlate", "a.txt", "b.txt", "--archs", "5"], "--archs applies only to the supernet "
     "experiment (--supernet); drop it to compare two files"),
    (["correlate", "a.txt", "b.txt", "--output", "x"], "--output applies only to the "
     "supernet experiment"),
    (["correlate", "a.txt", "b.txt", "--evaluator", "table:t.csv"], "--evaluator applies "
     "only to the supernet experiment"),
    # a strategy's option with that strategy left out of the comparison (it was dropped)
    (["bench-search", "--evaluator", "table:t.csv", "--strategies", "random,evolution",
      "--max-lambda", "5"], "--max-lambda applies only to --strategies with nao; drop it or "
     "add nao to --strategies (this comparison runs random,evolution)"),
    (["bench-search", "--evaluator", "table:t.csv", "--strategies", "nao",
      "--sample-size", "5"], "--sample-size applies only to --strategies with evolution"),
]


UNUSABLE_OUTPUTS = ["/proc/naonet-cannot-write", "/dev/null/below", str(REPO / "README.md")]


def commands_writing_to(output: str, cifar_mini, table) -> dict[str, list[str]]:
    """Every command that writes files, pointed at ``output``."""
    from conftest import FIXTURES

    data = ["--data", str(cifar_mini)]
    return {
        "train": [*TRAIN, *data, "--epochs", "1", "--output", output],
        "search": [*SEARCH, "--preset", "quick-cifar10", "--train-subset", "0", *data,
                   "--output", output],
        "bench-search": ["bench-search", "--evaluator", f"table:{table}", "--strategies",
                         "random", "--seeds", "1", "--budget", "5", "--plot", "", "--quiet",
                         "--output", output + ".json"],
        "correlate": ["correlate", "--supernet", "--preset", "quick-nb201", "--reference",
                      f"table:{table}", *data, "--archs", "4", "--valid-size", "100",
                      "--output", output],
        "show": ["show", "naonet-v2", "-o", output + ".png"],
        "convert": ["convert", str(require(FIXTURES / "naonet_v2_cifar_c8_l1.pt")),
                    output + ".pt", "--arch", "naonet-v2"],
        "export": ["export", str(require(FIXTURES / "naonet_v2_cifar_c8_l1.pt")),
                   output + ".pt", "--arch", "naonet-v2", "--dataset", "cifar10"],
    }


@pytest.mark.parametrize("command", ["train", "search", "bench-search", "correlate", "show",
                                     "convert", "export"])
@pytest.mark.parametrize("output", UNUSABLE_OUTPUTS, ids=["proc", "below-a-device",
                                                          "below-a-file"])
def test_an_unusable_output_path_is_one_line(capsys, cifar_mini, tmp_path, command, output):
    from nb201_synthetic import write_synthetic_table

    table = write_synthetic_table(tmp_path / "table.csv")
    target = output if output.startswith("/proc") else f"{output}/run"
    status = main(commands_writing_to(target, cifar_mini, table)[command])
    err = capsys.readouterr().err
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert any(part in lines[0] for part in ("/proc", "/dev/null", "README.md")), err
    assert any(fix in lines[0] for fix in ("pass another --output", "check the paths",
                                           "pass an output file elsewhere")), err


def bad_tables(folder):
    """A binary file, a table with a NaN, a row cut short, a file cut off early in its
    last row (its arch field missing) and a row too long, each as a table."""
    from nb201_synthetic import write_synthetic_table

    table = write_synthetic_table(folder / "good.csv")
    lines = table.read_text().splitlines()
    header = lines[0].split(",")
    with_nan = lines[1].split(",")
    with_nan[header.index("valid_acc_200ep")] = "nan"
    cases = {"binary.csv": bytes(range(256)) * 8,
             "nan.csv": "\n".join([lines[0], ",".join(with_nan), *lines[2:]]).encode(),
             # a blank line counts: the row is named by its line in the file
             "blank.csv": "\n".join([lines[0], "", ",".join(with_nan), *lines[2:]]).encode(),
             "short.csv": "\n".join([lines[0], ",".join(with_nan[:3]), *lines[2:]]).encode(),
             "truncated.csv": "\n".join([*lines[:5], lines[5].split(",")[0]]).encode(),
             "long.csv": "\n".join([*lines[:3], lines[3] + ",1", *lines[4:]]).encode()}
    for name, content in cases.items():
        (folder / name).write_bytes(content)
    return folder


@pytest.mark.parametrize("name, fragment", [("binary.csv", "is not a text CSV"),
                                            ("nan.csv", "nan.csv:2: valid_acc_200ep is 'nan'"),
                                            ("blank.csv", "blank.csv:3: valid_acc_200ep is"),
                                            ("short.csv", ":2: the row has 3 field(s)"),
                                            ("truncated.csv", ":6: the row has 1 field(s)"),
                                            ("long.csv", ":4: the row has")])
def test_a_bad_table_is_one_line(capsys, tmp_path, name, fragment):
    table = bad_tables(tmp_path) / name
    status = main(["search", "--space", "nb201", "--evaluator", f"table:{table}",
                   "--budget", "5"])
    err = capsys.readouterr().err
    assert status == 2 and fragment in err, err
    assert len(err.strip().splitlines()) == 1
    status = main(["correlate", str(table), str(table)])
    err = capsys.readouterr().err
    assert status == 2 and len(err.strip().splitlines()) == 1, err


def test_a_column_named_for_a_text_score_file_is_refused_naming_it(capsys, tmp_path):
    scores = tmp_path / "scores.txt"
    scores.write_text("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2| 0.5\n")
    status = main(["correlate", str(scores), str(scores), "--column-a", "acc"])
    err = capsys.readouterr().err
    assert status == 2 and "score column ('acc') was named for" in err
    assert "--column " not in err and len(err.strip().splitlines()) == 1, err


def test_a_fifo_among_the_images_is_skipped_not_read(cifar_mini, tmp_path):
    import os
    import shutil

    from naonet.data.sources import list_image_folder

    root = tmp_path / "data"
    shutil.copytree(cifar_mini / "train", root)
    os.mkfifo(root / "cat" / "x.jpg")  # reading it would block forever
    samples, _ = list_image_folder(root)
    assert len(samples) == 600 and all(path.name != "x.jpg" for path, _ in samples)


def test_images_in_sub_folders_of_a_class_count_and_hidden_entries_do_not(cifar_mini,
                                                                           tmp_path):
    """A class folder's sub-folders hold its images too (torchvision's ImageFolder reads
    them; they were skipped without a word); what a system or a notebook hides there
    (``.ipynb_checkpoints/``, macOS's ``._photo.jpg``) is neither a class nor an image."""
    import shutil

    import torch

    from naonet.data import DataConfig, build_data
    from naonet.data.sources import list_image_folder

    shutil.copytree(cifar_mini, tmp_path / "data")
    root = tmp_path / "data" / "train"
    cats = sorted((root / "cat").iterdir())
    (root / "cat" / "2023").mkdir()
    for image in cats[:20]:
        image.rename(root / "cat" / "2023" / image.name)
    (root / ".ipynb_checkpoints").mkdir()
    (root / "dog" / ".thumbnails").mkdir()
    shutil.copy(cats[30], root / "dog" / ".thumbnails" / "x.jpg")
    (root / "dog" / "._photo.jpg").write_bytes(b"\x00\x05\x16\x07")  # AppleDouble
    elsewhere = tmp_path / "more-dogs"  # a linked folder is followed, as ImageFolder does
    elsewhere.mkdir()
    shutil.copy(cats[30], elsewhere / "y.jpg")
    (root / "dog" / "linked").symlink_to(elsewhere, target_is_directory=True)
    samples, classes = list_image_folder(root)
    assert ".ipynb_checkpoints" not in classes and len(classes) == 10
    assert len(samples) == 601
    assert sum(path.parent.name == "2023" for path, _ in samples) == 20
    cat = classes.index("cat")
    assert {path.name for path, label in samples if label == cat} == {p.name for p in cats}
    in_cat = [path for path, label in samples if label == cat]  # ImageFolder's order
    assert in_cat == sorted(cats[20:]) + sorted(root / "cat" / "2023" / p.name
                                                for p in cats[:20])
    # images too large to decode at once are read from the same listing (96 px: the
    # loader pipeline, once torchvision's ImageFolder, which took hidden folders as classes)
    large = build_data(DataConfig(dataset="folder", data=str(tmp_path / "data"),
                                  image_size=96, workers=0, batch_size=100,
                                  eval_batch_size=100), torch.device("cpu"))
    # 601 images in batches of 100: six, the image a seventh would hold alone left out
    assert large.classes == classes and len(large.train) == 6
    images, labels = next(iter(large.train))
    assert images.shape == (100, 3, 96, 96) and int(labels.max()) < 10
    # train/ alone, with held-out validation images: no test split, no error
    shutil.rmtree(tmp_path / "data" / "test")
    alone = build_data(DataConfig(dataset="folder", data=str(tmp_path / "data"),
                                  image_size=96, workers=0, valid_size=50), torch.device("cpu"))
    assert alone.test is None and alone.valid is not None


def test_an_unreadable_image_read_in_a_worker_process_is_one_line(cifar_mini, tmp_path):
    """PyTorch re-raises a worker's error with the worker's traceback in its message."""
    import shutil

    import torch

    from naonet.data import DataConfig, build_data
    from naonet.errors import UserError

    shutil.copytree(cifar_mini, tmp_path / "data")
    (tmp_path / "data" / "train" / "cat" / "0000.jpg").write_bytes(b"not a jpeg")
    data = build_data(DataConfig(dataset="folder", data=str(tmp_path / "data"), image_size=96,
                                 workers=1, batch_size=700), torch.device("cpu"))
    with pytest.raises(UserError) as error:
        next(iter(data.train))
    assert str(error.value).startswith("cannot read image ") and "\n" not in str(error.value)
    assert "0000.jpg" in str(error.value)


@pytest.mark.parametrize("command, size", [
    ("train", ["--layers", "100000"]), ("train", ["--channels", "100000"]),
    ("search", ["--layers", "100000"]), ("correlate", ["--channels", "100000"])])
def test_a_network_too_large_for_memory_is_refused_before_allocation(capsys, cifar_mini,
                                                                     tmp_path, size, command):
    """Once a traceback (channels) or minutes of building without a word (layers)."""
    from nb201_synthetic import write_synthetic_table

    table = write_synthetic_table(tmp_path / "table.csv")
    output = ["--data", str(cifar_mini), "--output", str(tmp_path / "run")]
    args = {"train": [*TRAIN, *output, "--epochs", "1"],
            "search": [*SEARCH, "--preset", "quick-cifar10", "--train-subset", "0", *output],
            "correlate": ["correlate", "--supernet", "--preset", "quick-nb201", "--reference",
                          f"table:{table}", "--archs", "4", "--valid-size", "100",
                          "--train-subset", "0", *output]}
    status = main([*args[command], *size])
    err = capsys.readouterr().err
    assert status == 2 and ("pass smaller --channels / --layers" in err
                            or "pass a smaller --layers" in err), err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["train", "search"])
def test_a_training_subset_larger_than_the_data_is_refused(capsys, cifar_mini, tmp_path,
                                                           command):
    """It silently trained on fewer images than asked (600 - 100 here, not 1,000)."""
    args = {"train": [*TRAIN, "--epochs", "1"], "search": [*SEARCH, "--preset", "quick-cifar10"]}
    status = main([*args[command], "--data", str(cifar_mini), "--valid-size", "100",
                   "--train-subset", "1000", "--output", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert status == 2 and len(err.strip().splitlines()) == 1, err
    assert ("--train-subset 1000 asks for more images than the 500 the training set has "
            "left after --valid-size 100") in err and "--train-subset 0" in err, err
    assert not (tmp_path / "run").exists()  # the refused run's folder is gone again


@pytest.mark.parametrize("command", ["train", "search"])
def test_a_folder_of_one_class_is_refused(capsys, cifar_mini, tmp_path, command):
    """With one class the loss is 0 from the first step: it trained and searched nothing."""
    for split in ("train", "test"):
        (tmp_path / "one" / split).mkdir(parents=True)
        (tmp_path / "one" / split / "cat").symlink_to(cifar_mini / split / "cat")
    args = {"train": [*TRAIN, "--epochs", "1"], "search": [*SEARCH, "--preset", "quick-cifar10"]}
    status = main([*args[command], "--dataset", "folder", "--data", str(tmp_path / "one"),
                   "--output", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert status == 2 and len(err.strip().splitlines()) == 1, err
    assert "are all of one class (cat); training a classifier needs at least 2" in err, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args, fragment", CASES, ids=[" ".join(args[-2:]) + f" ({args[0]})"
                                                        for args, _ in CASES])
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, monkeypatch, args, fragment):
    monkeypatch.chdir(tmp_path)  # anything written by mistake would land here
    try:
        status = main(list(args))
    except SystemExit as exit_:  # argparse's own errors exit
        status = exit_.code
    captured = capsys.readouterr()
    assert status == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], captured.err
    assert "Traceback" not in captured.err
    assert list(tmp_path.iterdir()) == []


def test_errors_that_span_lines_elsewhere_are_one_line_here(capsys, tmp_path):
    """A YAML parser's message and tarfile's list of every compression it tried."""
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("{bad: [")
    not_an_archive = tmp_path / "data.tar.gz"
    not_an_archive.write_text("hello\n")
    checkpoint = str(FIXTURES / "naonet_v2_cifar_c8_l1.pt")
    for args, fragment in [
            (["train", "--config", str(bad_yaml)], "is not valid YAML/JSON"),
            (["eval", checkpoint, "--arch", "naonet-v2", "--dataset", "cifar10",
              "--data", str(not_an_archive), "--device", "cpu"], "pass an intact tar archive")]:
        status = main(args)
        err = capsys.readouterr().err
        assert status == 2 and fragment in err and len(err.strip().splitlines()) == 1, err


def test_a_missing_image_is_named_as_missing(tmp_path):
    from naonet.data.sources import read_image
    from naonet.errors import UserError

    with pytest.raises(UserError, match="does not exist"):
        read_image(tmp_path / "no-such.jpg")
    with pytest.raises(UserError, match="is not an image file"):
        read_image(tmp_path)  # a folder named where an image was expected


def test_sigterm_stops_a_command_as_ctrl_c_does_and_the_handler_is_restored(capsys,
                                                                            monkeypatch):
    import os
    import signal
    import time

    from naonet.cli import info

    def killed(args):
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            return 99  # no handler: the signal would end pytest itself
        os.kill(os.getpid(), signal.SIGTERM)  # a scheduler's stop
        time.sleep(10)  # the handler raises before this ends
        return 0

    monkeypatch.setattr(info, "run", killed)
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    before = signal.getsignal(signal.SIGTERM)
    assert before is signal.SIG_DFL  # as a process starts
    assert main(["info", "naonet-v2"]) == 128 + signal.SIGTERM
    assert capsys.readouterr().err == "nao: terminated\n"  # info keeps nothing to resume
    assert signal.getsignal(signal.SIGTERM) is before


def test_an_error_raised_while_a_stop_unwinds_reports_the_stop(capsys, monkeypatch):
    """SIGTERM to a process group ends the DataLoader's workers too, and the loader's
    "worker ... killed by signal" RuntimeError replaced the stop: a traceback."""
    from naonet import stopping
    from naonet.cli import info
    from naonet.cli.main import Terminated

    def stopped(args):
        stopping.request(Terminated)  # as the handler records it
        raise RuntimeError("DataLoader worker (pid 1) is killed by signal: Terminated.")

    monkeypatch.setattr(info, "run", stopped)
    assert main(["info", "naonet-v2"]) == 143
    assert capsys.readouterr().err == "nao: terminated\n"

    def failed(args):  # an error of its own, raised after a stop: reported as itself
        stopping.request(Terminated)
        raise RuntimeError("a real bug")

    monkeypatch.setattr(info, "run", failed)
    with pytest.raises(RuntimeError, match="a real bug"):
        main(["info", "naonet-v2"])


def test_sigterm_to_the_process_group_stops_a_loader_run_in_one_line(cifar_mini, tmp_path):
    """A scheduler's stop reaches the loader's workers as well as the command."""
    import os
    import signal
    import subprocess
    import sys
    import time

    run = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "naonet.cli.main", *TRAIN, "--data", str(cifar_mini),
         "--pipeline", "loader", "--workers", "2", "--channels", "4", "--layers", "1",
         "--epochs", "200", "--batch-size", "50", "--test-subset", "20", "--no-progress",
         "--output", str(run)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 300
        metrics = run / "metrics.jsonl"
        while not (metrics.exists() and metrics.read_text().strip()):  # an epoch done:
            assert process.poll() is None and time.monotonic() < deadline  # workers live
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGTERM)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert "Traceback" not in err, err[-3000:]
    assert err.strip().splitlines()[-1] == "nao: terminated; rerun the same command to resume"
    assert process.returncode == 128 + signal.SIGTERM


def test_a_stop_python_loses_in_a_callback_prints_only_the_stops_line(capsys, monkeypatch):
    """Ctrl-C landing in a weakref callback printed Python's "Exception ignored in ...
    KeyboardInterrupt" block before the one line; the recorded stop still ends the run."""
    import signal
    import sys
    import weakref

    from naonet import stopping
    from naonet.cli import info

    class Anything:
        pass

    def signalled(raise_again: bool):
        def run(args):
            def callback(_):
                # the handler, run between two bytecodes of this callback
                signal.getsignal(signal.SIGINT)(signal.SIGINT, None)
            thing = Anything()
            reference = weakref.ref(thing, callback)
            del thing  # the callback runs; Python reports its exception as unraisable
            assert reference() is None
            if raise_again:
                stopping.raise_if_stopped()  # the next step raises the recorded stop
            return 0
        return run

    printed = []  # what Python's hook would print
    monkeypatch.setattr(sys, "unraisablehook", printed.append)
    for raise_again in (True, False):  # without a step after it, the command's end does
        monkeypatch.setattr(info, "run", signalled(raise_again))
        assert main(["info", "naonet-v2"]) == 130
        assert capsys.readouterr().err == "nao: interrupted\n"
        assert printed == []
    assert sys.unraisablehook == printed.append  # given back

    def failing(args):
        def callback(_):
            raise ValueError("a real bug")
        thing = Anything()
        reference = weakref.ref(thing, callback)
        del thing
        return 0 if reference() is None else 1

    monkeypatch.setattr(info, "run", failing)
    assert main(["info", "naonet-v2"]) == 0
    assert [type(item.exc_value) for item in printed] == [ValueError]


def test_ctrl_c_stops_a_command_with_130(capsys, monkeypatch):
    from naonet.cli import info

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(info, "run", interrupted)
    assert main(["info", "naonet-v2"]) == 130
    assert capsys.readouterr().err == "nao: interrupted\n"  # a rerun starts over

    # a real SIGINT goes through naonet's handler (which records the stop, for a loop to
    # raise again where Python lost the exception), and Python's is back afterwards
    import os
    import signal
    import time

    def signalled(args):
        assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(10)  # the handler raises before this ends
        return 0

    monkeypatch.setattr(info, "run", signalled)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert main(["info", "naonet-v2"]) == 130
    assert capsys.readouterr().err == "nao: interrupted\n"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    from naonet import stopping

    stopping.raise_if_stopped()  # the stop was forgotten once reported


def test_a_stopped_table_search_starts_over(capsys, monkeypatch):
    from naonet.cli import search

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(search, "_run_table_search", interrupted)
    assert main(["search", "--space", "nb201", "--evaluator", "table:t.csv"]) == 130
    assert capsys.readouterr().err == "nao: interrupted\n"  # seconds long, no checkpoint


def test_a_stopped_command_that_keeps_a_checkpoint_says_a_rerun_resumes(capsys, monkeypatch,
                                                                          tmp_path):
    from naonet.cli import train

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "run", interrupted)
    assert main(["train", "--output", str(tmp_path / "run")]) == 130
    assert capsys.readouterr().err == "nao: interrupted; rerun the same command to resume\n"


def test_nao_without_a_command_prints_the_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_a_closed_output_pipe_ends_quietly():
    """nao info | head -1: the reader closes the pipe before nao writes."""
    import signal
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-m", "naonet.cli.main", "info", "naonet-v2"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # before the interpreter has even started writing
    _, err = process.communicate(timeout=600)
    assert process.returncode == 128 + signal.SIGPIPE and err == b"", err


@pytest.mark.parametrize("command, failure, said, hint, resumes", [
    ("predict", RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. "
                             "DefaultCPUAllocator: can't allocate memory: you tried to "
                             "allocate 120000000000 bytes.\nmore lines"),
     "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
     "memory: you tried to allocate 120000000000 bytes.", "pass a smaller --image-size",
     False),
    ("train", torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB."),
     "CUDA out of memory. Tried to allocate 2.00 GiB.",
     "pass a smaller --batch-size or --eval-batch-size or --image-size", True),
    # a DataLoader worker's re-raise: the worker's words come first
    ("eval", RuntimeError("Caught RuntimeError in DataLoader worker process 0.\nOriginal "
                          "Traceback (most recent call last):\nRuntimeError: "
                          "DefaultCPUAllocator: can't allocate memory: you tried to "
                          "allocate 5 bytes."),
     "RuntimeError: DefaultCPUAllocator: can't allocate memory: you tried to allocate 5 "
     "bytes.", "pass a smaller --batch-size or --image-size", False),
    # the system's out-of-memory killer took a loader worker (--image-size 100000)
    ("train", RuntimeError("DataLoader worker (pid 7703) is killed by signal: Killed. "),
     "DataLoader worker (pid 7703) is killed by signal: Killed.",
     "pass a smaller --batch-size or --eval-batch-size or --image-size", True),
    ("info", MemoryError(), "no details",
     "free memory (other programs, or other processes on the device) and rerun", False),
    ("train", OSError(12, "Cannot allocate memory"), "Cannot allocate memory",
     "pass a smaller --batch-size or --eval-batch-size or --image-size", True)])
def test_running_out_of_memory_is_one_line_naming_the_sizes(capsys, monkeypatch, command,
                                                            failure, said, hint, resumes):
    """nao predict --image-size 100000 ended in a 29-line traceback of the allocator. The
    hint names the size flags the command has."""
    import importlib

    module = importlib.import_module(f"naonet.cli.{command}")

    def allocate(args):
        raise failure

    monkeypatch.setattr(module, "run", allocate)
    from naonet.cli.main import build_parser

    argv = {"predict": ["predict", "x.pt", "x.jpg"], "train": ["train"],
            "eval": ["eval", "x.pt"], "info": ["info", "naonet-v2"]}[command]
    build_parser().parse_args(argv)  # the flags are real: only the handler is replaced
    assert main(argv) == 2
    err = capsys.readouterr().err
    rerun = "; rerun the same command to resume" if resumes else ""
    likely = ", most likely" if "killed by signal" in said else ""
    assert err == f"nao {command}: error: out of memory{likely} ({said}); {hint}{rerun}\n"


def test_a_runtime_error_that_is_no_memory_shortage_is_not_dressed_as_one(monkeypatch):
    from naonet.cli import info

    def fails(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(info, "run", fails)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["info", "naonet-v2"])


def test_a_broken_pipe_that_is_not_the_output_is_an_error(capsys, monkeypatch):
    from naonet.cli import info

    def lost_a_worker(args):
        raise BrokenPipeError(32, "Broken pipe")  # a pipe to a worker, not stdout

    monkeypatch.setattr(info, "run", lost_a_worker)
    assert main(["info", "naonet-v2"]) == 2
    assert "Broken pipe" in capsys.readouterr().err


def test_version_names_the_package_and_its_revision(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    import re
    import subprocess
    from importlib import metadata

    out = capsys.readouterr().out.strip()
    version = re.escape(metadata.version("naonet"))
    import naonet

    source = Path(naonet.__file__).parent
    commit = subprocess.run(["git", "-C", str(source), "rev-parse", "--short=12", "HEAD"],
                            capture_output=True, text=True)
    if commit.returncode == 0:  # run from a checkout (CI's clone): its commit, marked if edited
        assert re.fullmatch(rf"naonet {version} git {commit.stdout.strip()}(\+dirty)?",
                            out), out
    else:
        assert re.fullmatch(rf"naonet {version}", out), out


def damaged_files(folder, table) -> dict[str, tuple[list[str], str]]:
    """Files that load but do not hold what they should: each with the command that
    reads it and the words its one line must have."""
    import torch

    from naonet.compat.model_file import LoadedModel, model_file_payload
    from naonet.spaces import NB201

    options = folder / "options.yaml"
    options.write_text("1: 2\n")  # a key that is not an option's name
    released = torch.load(FIXTURES / "naonet_v2_cifar_c8_l1.pt", weights_only=True)
    stem_only = {k: v for k, v in released["state_dict"].items() if k.startswith("stem")}
    torch.save({"model": stem_only}, folder / "stem.pt")
    cell = NB201.parse(NB201_CELL)
    payload = model_file_payload(LoadedModel(NB201.build_network(
        cell, NB201.network_config(8, 1, 10)), cell, "cifar10", False), "cifar10")
    torch.save({**payload, "network": [8, 1]}, folder / "network-list.pt")
    lines = table.read_text().splitlines()
    huge = lines[1].split(",")
    huge[0] = str(10**30)
    (folder / "huge-index.csv").write_text("\n".join([lines[0], ",".join(huge), *lines[2:]]))
    return {
        "option-key": (["train", "--config", str(options)], "option 1, which is not a name"),
        "stem-only": (["eval", str(folder / "stem.pt"), "--arch", "naonet-v2", "--dataset",
                       "cifar10"], "has a stem but not the cells and classifier"),
        "network-list": (["eval", str(folder / "network-list.pt"), "--dataset", "cifar10"],
                         "does not hold what it should (TypeError"),
        "huge-index": (["search", "--space", "nb201", "--evaluator",
                        f"table:{folder / 'huge-index.csv'}", "--budget", "5"],
                       f"huge-index.csv:2: index '{10**30}' is not a whole number from 0 "
                       "that fits 64 bits"),
    }


NB201_CELL = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+"
              "|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|")
DAMAGED = ["option-key", "stem-only", "network-list", "huge-index"]


@pytest.mark.parametrize("name", DAMAGED)
def test_a_file_that_loads_but_is_damaged_is_one_line(capsys, tmp_path, name):
    """Once an AttributeError, a ValueError, a TypeError and an OverflowError."""
    from nb201_synthetic import write_synthetic_table

    require(FIXTURES / "naonet_v2_cifar_c8_l1.pt")
    table = write_synthetic_table(tmp_path / "table.csv")
    args, fragment = damaged_files(tmp_path, table)[name]
    status = main(args)
    err = capsys.readouterr().err
    assert status == 2 and fragment in err and len(err.strip().splitlines()) == 1, err


def test_a_damaged_run_folder_is_one_line_that_says_how_to_start_over(tmp_path):
    """A checkpoint or metrics file that loads but lacks an entry, or one another
    version wrote: a line naming the file and the fix, not a KeyError."""
    import torch

    from naonet.errors import UserError
    from naonet.models import NetworkConfig, build_network
    from naonet.search.config import SearchConfig
    from naonet.search.state import load_search_checkpoint
    from naonet.spaces import named_architecture
    from naonet.training.config import TrainConfig
    from naonet.training.run import build_optimizer_and_schedule, log_epoch, try_resume

    config = TrainConfig(epochs=2)
    network = build_network(named_architecture("naonet-v2"),
                            NetworkConfig(channels=8, layers=1))
    optimizer, scheduler = build_optimizer_and_schedule(network, config, 1)
    torch.save({"format": 1, "config": config.to_dict(), "model": {}}, tmp_path / "last.pt")
    with pytest.raises(UserError, match=r"last.pt does not hold what it should .*"
                                         r"pass another --output, or delete the folder"):
        try_resume(tmp_path, config, network, optimizer, scheduler, None)
    torch.save({"format": 1, "config": config.to_dict(), "classes": ["cat", "dog"]},
               tmp_path / "last.pt")
    with pytest.raises(UserError, match=r"trained on other classes \(only in the run: dog; "
                                         r"only in --data: kitten\)"):
        try_resume(tmp_path, config, network, optimizer, scheduler, None, ["cat", "kitten"])
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1}\nnot json\n')
    with pytest.raises(UserError, match="metrics.jsonl has a line that is not an epoch's"):
        log_epoch(tmp_path, {"epoch": 2})
    with pytest.raises(UserError, match="metrics.jsonl has a line"):  # before any training
        try_resume(tmp_path, config, network, optimizer, scheduler, None)
    torch.save({"format": 1, "state": {}, "config": ["not", "a", "mapping"]},
               tmp_path / "search.pt")
    with pytest.raises(UserError, match="search.pt does not hold what it should"):
        load_search_checkpoint(tmp_path / "search.pt", SearchConfig().to_dict())


def test_a_binary_seed_pool_file_is_one_line(tmp_path):
    from naonet.errors import UserError
    from naonet.search.loop import read_architecture_file
    from naonet.spaces import get_space

    (tmp_path / "pool.txt").write_bytes(bytes(range(128, 256)) * 8)
    with pytest.raises(UserError, match="pool.txt is not text"):
        read_architecture_file(tmp_path / "pool.txt", get_space("small"))


def test_restoring_blames_the_file_only_for_what_reading_it_raises(tmp_path):
    """A device running out of memory while a run resumes is not a damaged file: it
    passes through (the advice to delete the folder would throw a day's search away).
    A mismatch keeps every line of torch's message (the first only names the module)."""
    import torch

    from naonet.errors import UserError
    from naonet.training.checkpoint import restoring

    with pytest.raises(torch.OutOfMemoryError):
        with restoring(tmp_path / "search_state.pt"):
            raise torch.OutOfMemoryError("CUDA out of memory")
    with pytest.raises(UserError, match=r"Error\(s\) in loading state_dict for Linear:; "
                                        r"Missing key\(s\)"):
        with restoring(tmp_path / "last.pt"):
            torch.nn.Linear(2, 2).load_state_dict({})


@pytest.mark.parametrize("command", ["search", "bench-search"])
def test_a_missing_matplotlib_is_named_before_the_work_not_after(capsys, monkeypatch,
                                                                 cifar_mini, tmp_path,
                                                                 command):
    """The search drew its first picture after the first round's training, bench-search
    after every seed's search; both stop at the start now, naming the way round."""
    import sys

    from nb201_synthetic import write_synthetic_table

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    table = write_synthetic_table(tmp_path / "table.csv")
    args = {"search": [*SEARCH, "--preset", "quick-cifar10", "--train-subset", "0", "--data",
                       str(cifar_mini), "--output", str(tmp_path / "run")],
            "bench-search": ["bench-search", "--evaluator", f"table:{table}", "--strategies",
                             "random", "--seeds", "1", "--budget", "5", "--quiet",
                             "--output", str(tmp_path / "bench.json")]}[command]
    status = main(args)
    err = capsys.readouterr().err
    assert status == 2 and len(err.strip().splitlines()) == 1, err
    assert "pictures need matplotlib: pip install 'naonet[plot]'" in err, err
    assert ("--no-plot" if command == "search" else "--plot ''") in err, err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["table.csv"]


def test_a_file_or_folder_where_an_architecture_goes_is_named_for_what_it_is(capsys,
                                                                          tmp_path):
    """From a user's trial: a run folder given to nao info was said not to exist, and a
    checkpoint, a search's list or a folder given as --arch or to nao show met a parser's
    'non-integer entry'."""
    import shutil

    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(require(FIXTURES / "naonet_v2_cifar_c8_l1.pt"), run / "best.pt")
    (run / "arch_pool.final").write_text("naonet-v2\n")
    cases = {
        ("info", str(run)): f"{run} is a folder; pass one of its checkpoints (best.pt)",
        ("show", str(run)): f"{run} is a folder; pass one of its checkpoints (best.pt)",
        ("show", str(run / "arch_pool.final")): "lists a search's architectures; pass one of "
                                                "its lines",
        ("train", "--arch", str(run / "best.pt")): f"{run / 'best.pt'} is a file; --arch takes "
                                                   "an architecture (a name or a text form): "
                                                   f"nao info {run / 'best.pt'} prints the one "
                                                   "it holds",
        ("train", "--arch", str(run / "arch_pool.final")): "lists a search's architectures",
        ("train", "--arch", str(run)): f"{run} is a folder; --arch takes an architecture",
    }
    for args, fragment in cases.items():
        status, _, err = nao_in_process(capsys, *args, "--output", str(tmp_path / "out")) \
            if args[0] == "train" else nao_in_process(capsys, *args)
        assert status == 2 and err.strip().splitlines() == [err.strip()], err
        assert fragment in err, (args, err)
    assert not (tmp_path / "out").exists()


def test_an_exported_model_where_a_checkpoint_goes_is_named_as_such(capsys, tmp_path):
    """torch.load hands a TorchScript archive to torch.jit.load: it printed three of
    torch's warnings, then that the file held no state_dict; an ONNX file was called
    corrupt."""
    import warnings

    import torch

    from naonet.errors import UserError
    from naonet.training.checkpoint import load_checkpoint

    exported = tmp_path / "model.ts"
    with warnings.catch_warnings():  # torch 2.9+ says TorchScript is deprecated
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(exported))
    onnx = tmp_path / "model.bin"  # an ONNX model's first bytes: ir_version 8, producer
    onnx.write_bytes(b"\x08\x08\x12\x07pytorch" + bytes(64))
    for command, extra in (("eval", ["--data", str(tmp_path)]),
                           ("predict", ["x.png"]), ("export", [str(tmp_path / "m.onnx")])):
        for path, kind, runner in ((exported, "TorchScript", "torch.jit.load"),
                                   (onnx, "ONNX", "ONNX Runtime")):
            status, _, err = nao_in_process(capsys, command, str(path), *extra)
            assert status == 2, err
            assert err.strip() == f"nao {command}: error: {path} is an exported {kind} model " \
                                  "(nao export), not a checkpoint; pass the .pt file nao " \
                                  f"train wrote (run it with {runner})", err
    with pytest.raises(UserError, match="exported TorchScript model"):  # as a run's last.pt
        load_checkpoint(exported)
    # nao info shows what nao export records; another tool's export has none of it
    for path, kind in ((exported, "a TorchScript"), (onnx, "an ONNX")):
        status, _, err = nao_in_process(capsys, "info", str(path))
        assert status == 2 and err.strip() == (
            f"nao info: error: {path} is {kind} model without the metadata nao export "
            "writes (or a damaged one); nao info reads naonet's checkpoints and exports"), err


@pytest.mark.parametrize("command", ["info", "eval", "export"])
def test_a_search_state_is_named_where_a_trained_network_is_expected(capsys, tmp_path,
                                                                     command):
    """search_state.pt sits beside a search's arch_pool; given to a command that reads a
    trained network it is named as what it is, with the way to a trained network."""
    import torch

    from naonet.search.state import SearchState, save_checkpoint

    path = tmp_path / "search_state.pt"
    save_checkpoint(path, SearchState(), {"space": "small"},
                    {"controller": torch.nn.Linear(2, 2)}, ["cat", "dog"])
    extra = {"eval": ["--data", str(tmp_path)], "export": [str(tmp_path / "net.pt")]}
    status, _, err = nao_in_process(capsys, command, str(path), *extra.get(command, []))
    assert status == 2 and len(err.strip().splitlines()) == 1, err
    assert "is a search's state, not a trained network; train a line of the " \
           "arch_pool.final beside it with nao train --arch LINE" in err, err


def test_a_corrupt_pickle_is_one_line_without_torchs_warning_above_it(capsys, tmp_path,
                                                                     cifar_mini):
    """Bytes that start like a pickle made torch warn about an unexpected protocol before
    our line (two lines of a library's path and advice on stderr)."""
    import warnings

    path = tmp_path / "p.pt"
    path.write_bytes(b"\x80\x70" + b"garbage" * 100)
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(path.read_bytes())
    for args, fragment in [
            (["info", str(path)], "is not a readable PyTorch checkpoint"),
            (["eval", str(path), "--dataset", "cifar10"], "is not a readable PyTorch checkpoint"),
            (TRAIN + ["--output", str(run), "--data", str(cifar_mini)],
             "is corrupt or not a naonet checkpoint")]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            status = main(args)
        err = capsys.readouterr().err
        assert status == 2 and fragment in err and len(err.strip().splitlines()) == 1, err
        assert not [warning for warning in caught
                    if "pickle protocol" in str(warning.message)], args


def test_a_text_file_where_a_checkpoint_goes_is_named_text(capsys, tmp_path):
    """A run's summary.json or a score list was called a corrupt or truncated
    checkpoint; a checkpoint cut short (binary) still is."""
    files = {"summary.json": b'{"finished": true}\n',
             "scores.txt": b"|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2| 0.5\n",
             "accents.txt": "caf\u00e9 ".encode() * 1500,  # a character cut at 4 KiB
             "windows.txt": "arch 0.5\r\n".encode("utf-16")}  # PowerShell's > writes it
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
        for command in (["info"], ["eval", "--dataset", "cifar10"]):
            status = main([command[0], str(tmp_path / name), *command[1:]])
            err = capsys.readouterr().err
            assert status == 2 and len(err.strip().splitlines()) == 1, err
            assert f"{name} is a text file, not a checkpoint; pass a PyTorch checkpoint" in err
    checkpoint = tmp_path / "cut.pt"
    torch.save({"weights": torch.zeros(100)}, checkpoint)
    checkpoint.write_bytes(checkpoint.read_bytes()[:300])
    assert main(["info", str(checkpoint)]) == 2
    assert "is not a readable PyTorch checkpoint (corrupt or truncated)" in \
        capsys.readouterr().err
    empty = tmp_path / "no-weights.pt"  # a checkpoint of a training's bookkeeping only
    torch.save({"epoch": 3, "state_dict": {}}, empty)
    assert main(["eval", str(empty), "--dataset", "cifar10", "--arch", "naonet-v2"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert ("holds no model state_dict (looked for 'model', 'state_dict', 'model_state' and "
            "for tensors at the top)") in err


def test_info_with_a_missing_table_prints_nothing_before_its_error(capsys, tmp_path):
    """It printed the whole cell report, then the error."""
    status = main(["info", NB201_CELL, "--reference", f"table:{tmp_path / 'none.csv'}"])
    captured = capsys.readouterr()
    assert status == 2 and captured.out == ""
    assert "none.csv does not exist" in captured.err


def test_a_controller_checkpoint_passed_as_a_network_is_named_as_no_network(capsys):
    """It asked for --arch, and with --arch said 'state_dict has no stem', naming neither
    the file nor a fix."""
    controller = str(require(FIXTURES / "nao_controller_default.pt"))
    for extra in ([], ["--arch", "naonet-v2"]):
        status = main(["eval", controller, "--dataset", "cifar10", *extra])
        err = capsys.readouterr().err
        assert status == 2 and len(err.strip().splitlines()) == 1, err
        assert (f"{controller} holds no network's weights (no stem among decoder, encoder); "
                "pass a network checkpoint") in err


def test_a_stopped_command_clears_its_progress_bar_before_its_last_line(capsys, monkeypatch):
    """The line once followed the bar: '...loss=1.944]nao: interrupted'."""
    import sys

    from tqdm.auto import tqdm

    from naonet.cli import info

    def interrupted_mid_bar(args):
        bar = tqdm(total=10, desc="epoch 1/3", leave=False, file=sys.stderr)
        bar.update(3)
        raise KeyboardInterrupt

    monkeypatch.setattr(info, "run", interrupted_mid_bar)
    assert main(["info", "naonet-v2"]) == 130
    err = capsys.readouterr().err
    assert "epoch 1/3" in err  # the bar was drawn, then cleared: the line starts afresh
    assert err.endswith("\rnao: interrupted\n"), repr(err[-80:])


def _library_mistakes():
    """What a library caller gets wrong, and the words of the error it must get."""
    import math

    from naonet.controller import ControllerTrainConfig
    from naonet.models import NetworkConfig
    from naonet.spaces import get_space
    from naonet.strategies.evolution import EvolutionConfig
    from naonet.strategies.nao import NAOConfig

    return [
        (lambda: ControllerTrainConfig(epochs=2.5), "epochs must be an integer, got 2.5"),
        (lambda: ControllerTrainConfig(grad_clip=math.inf), "grad_clip must be a finite"),
        (lambda: ControllerTrainConfig(epochs=True), "epochs must be an integer, got True"),
        (lambda: EvolutionConfig(population_size=4.5), "population_size must be an integer"),
        (lambda: NetworkConfig(num_classes=0), "num_classes must be >= 1, got 0"),
        (lambda: NAOConfig(device="banana"), "--device must be auto, cpu, cuda"),
        (lambda: get_space("nb201").network_config(8, 1, chanels=4),
         "unknown network option(s) chanels"),
        (lambda: get_space("nb201").build_supernet(8, 1, chanels=4),
         "unknown network option(s) chanels"),
        (lambda: get_space("small").network_config(8, 1, chanels=4),
         "unknown network option(s) chanels"),
        (lambda: get_space("small").build_supernet(8, 1, chanels=4),
         "unknown network option(s) chanels"),
    ]


@pytest.mark.parametrize("case", range(len(_library_mistakes())))
def test_a_library_callers_mistake_is_refused_where_the_config_is_made(case):
    """Library configs check what the CLI's casts check: a float where an integer goes,
    inf, a bool for a count, an unknown device or network option is a UserError when
    the config is made, not a TypeError (or a NaN, or a silent default) deep in a run."""
    from naonet.errors import UserError

    make, words = _library_mistakes()[case]
    with pytest.raises(UserError) as error:
        make()
    assert words in str(error.value)


def test_what_a_library_caller_naturally_passes_is_taken():
    """A path where a string goes, NumPy's scalars where numbers and flags go."""
    import numpy as np

    from naonet.controller import ControllerTrainConfig
    from naonet.evaluators import BudgetedEvaluator
    from naonet.models import NetworkConfig
    from naonet.training.config import TrainConfig

    config = TrainConfig(output=Path("runs") / "x", data=Path("data"))
    assert (config.output, config.data) == (str(Path("runs") / "x"), "data")
    assert NetworkConfig(aux_head=np.bool_(False), channels=np.int64(8)).channels == 8
    assert ControllerTrainConfig(learning_rate=np.float32(0.01)).epochs == 1000
    assert BudgetedEvaluator(lambda architecture: 0.0, budget=np.int64(5)).budget == 5


def test_a_query_budget_that_is_no_whole_number_is_refused():
    from naonet.errors import UserError
    from naonet.evaluators import BudgetedEvaluator

    for budget in (2.5, True, 0):
        with pytest.raises(UserError, match="the query budget must be an integer >= 1"):
            BudgetedEvaluator(lambda architecture: 0.0, budget=budget)


def test_an_output_file_never_replaces_an_input_or_another_commands_file(capsys, tmp_path):
    """bench-search --output onto its own table replaced the table with JSON; convert onto
    a run's last.pt ended that run's resumption; both exited 0."""
    from nb201_synthetic import write_synthetic_table

    table = write_synthetic_table(tmp_path / "table.csv")
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text('{"epoch": 1}\n')
    bench = ["bench-search", "--evaluator", f"table:{table}", "--strategies", "random",
             "--seeds", "1", "--budget", "5", "--plot", "", "--quiet", "--output"]
    for target, fragment in ((table, "is the file being read"),
                             (metrics, "exists and is not a nao bench-search result")):
        before = target.read_bytes()
        status, _, err = nao_in_process(capsys, *bench, str(target))
        assert status == 2 and fragment in err and len(err.splitlines()) == 1, err
        assert target.read_bytes() == before
    for _ in range(2):  # its own result it replaces
        status, _, err = nao_in_process(capsys, *bench, str(tmp_path / "bench.json"))
        assert status == 0, err
    status, _, err = nao_in_process(capsys, "search", "--space", "nb201", "--evaluator",
                                    f"table:{table}", "--budget", "25", "--strategy",
                                    "random", "--result-json", str(metrics))
    assert status == 2 and "exists and is not a result of nao search --evaluator" in err
    # a training's checkpoint (it keeps its optimizer) is no model file of nao convert's
    checkpoint = tmp_path / "last.pt"
    torch.save({"format": 1, "model": {}, "network": {}, "arch": "small:0",
                "optimizer": {}}, checkpoint)
    released = str(require(FIXTURES / "naonet_v2_cifar_c8_l1.pt"))
    for command in (["convert", released, str(checkpoint)],
                    ["export", released, str(checkpoint), "--format", "torchscript"]):
        before = checkpoint.read_bytes()
        status, _, err = nao_in_process(capsys, *command)
        assert status == 2 and "exists and is not a" in err, err
        assert checkpoint.read_bytes() == before
    converted = tmp_path / "converted.pt"
    for _ in range(2):
        status, _, err = nao_in_process(capsys, "convert", released, str(converted))
        assert status == 0, err


def test_damaged_bytes_in_a_checkpoint_are_found(tmp_path):
    """torch.load read a checkpoint whose tensor bytes were damaged, and the network then
    evaluated to other figures without a word; the zip's CRC-32 says so."""
    import zipfile

    from naonet.errors import UserError
    from naonet.training.checkpoint import load_checkpoint

    path = tmp_path / "damaged.pt"
    torch.save({"weights": torch.zeros(4096)}, path)
    with zipfile.ZipFile(path) as archive:
        record = next(info for info in archive.infolist() if "/data/" in info.filename)
    data = bytearray(path.read_bytes())
    data[record.header_offset + 512] ^= 0xFF  # inside the tensor's bytes (16 KiB of them)
    path.write_bytes(bytes(data))
    assert torch.load(path, weights_only=True)["weights"].abs().sum() > 0  # read silently
    with pytest.raises(UserError, match=f"checkpoint {path} is corrupt or not a naonet "
                                        "checkpoint \\(.*fails its CRC check"):
        load_checkpoint(path)
    # a file saved without CRCs (they are 0) is not taken for a damaged one
    without = tmp_path / "without-crc.pt"
    torch.serialization.set_crc32_options(False)
    try:
        torch.save({"weights": torch.ones(4096)}, without)
    finally:
        torch.serialization.set_crc32_options(True)
    assert load_checkpoint(without)["weights"].sum() == 4096


def test_a_damaged_archive_is_refused_not_extracted_in_part(tmp_path):
    """A .tar.gz with damaged bytes was extracted up to its damage and trained on (182 of
    200 images); a tar whose member header was damaged likewise."""
    import gzip
    import io
    import tarfile

    from naonet.data.sources import extract_into
    from naonet.errors import UserError

    plain = io.BytesIO()
    with tarfile.open(fileobj=plain, mode="w") as tar:
        for index in range(40):
            payload = bytes(range(256)) * 8
            info = tarfile.TarInfo(f"data/train/cat/{index:04d}.bin")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    whole = plain.getvalue()
    header = bytearray(whole)
    header[20 * (512 + 2048) + 100] ^= 0xFF  # member 21's header fails its checksum
    compressed = bytearray(gzip.compress(whole))
    compressed[len(compressed) // 2] ^= 0xFF
    for name, data, fragment in (
            ("header.tar", bytes(header), "data follows the end of its listing"),
            ("bytes.tar.gz", bytes(compressed), "could not extract")):
        archive = tmp_path / name
        archive.write_bytes(data)
        staging = tmp_path / f"into-{name}"
        staging.mkdir()
        with pytest.raises(UserError, match=fragment):
            extract_into(archive, staging)
    intact = tmp_path / "intact.tar"
    intact.write_bytes(whole)
    (tmp_path / "into-intact").mkdir()
    extract_into(intact, tmp_path / "into-intact")
    assert len(list((tmp_path / "into-intact" / "data/train/cat").iterdir())) == 40


def test_a_diverged_training_stops_instead_of_reporting_done(capsys, cifar_mini, tmp_path):
    """--lr 1e30 trained to NaN weights, logged 'train loss nan', then 'done', exit 0."""
    status, out, err = nao_in_process(
        capsys, "train", "--arch", "naonet-v2", "--device", "cpu", "--data", str(cifar_mini),
        "--channels", "8", "--layers", "1", "--epochs", "1", "--train-subset", "64",
        "--batch-size", "32", "--lr", "1e30", "--no-progress", "--output",
        str(tmp_path / "run"))
    assert status == 2 and "done" not in out
    assert err.strip().splitlines() == [
        "nao train: error: the training diverged: weights became NaN or infinite (mean loss "
        "nan this epoch); lower --lr or --weight-decay, or clip gradients (--grad-clip), and "
        "start again with another --output"]
    assert not (tmp_path / "run" / "last.pt").exists()


@pytest.mark.parametrize("change, fragment", [
    (lambda rows: [rows[0] + ",valid_acc_200ep", *rows[1:]],
     "has the column valid_acc_200ep twice; keep one"),
    (lambda rows: [rows[0], rows[1].replace(rows[1].split(",")[3], "150", 1), *rows[2:]],
     ":2: valid_acc_200ep is '150'; an accuracy is a percent from 0 to 100"),
    (lambda rows: [rows[0], "-7" + rows[1][rows[1].index(","):], *rows[2:]],
     ":2: index '-7' is not a whole number from 0"),
    (lambda rows: [rows[0], rows[1], rows[1].split(",")[0] + rows[2][rows[2].index(","):],
                   *rows[3:]], "gives index"),
])
def test_a_benchmark_table_that_would_mislead_is_refused(tmp_path, change, fragment):
    """A column twice (the last silently won), accuracies outside 0-100 %, negative or
    repeated indices: each was read without a word."""
    from naonet.errors import UserError
    from naonet.nb201 import BenchmarkTable

    from nb201_synthetic import write_synthetic_table

    table = write_synthetic_table(tmp_path / "table.csv")
    rows = table.read_text().splitlines()
    table.write_text("\n".join(change(rows)) + "\n")
    with pytest.raises(UserError, match=re.escape(fragment)):
        BenchmarkTable.load(table)


def test_more_threads_than_cores_and_a_constant_score_file_are_refused(capsys, tmp_path,
                                                                       cifar_mini):
    """--threads 5000 hung the search and 100000 crashed it; --workers 100000 hung a
    loader run until memory ran out; a file of equal scores gave tau nan and an
    arbitrary precision@k, exit 0."""
    import random

    from naonet.errors import UserError
    from naonet.runtime import usable_cores, use_cpu_threads
    from naonet.search.loop import read_architecture_file
    from naonet.spaces import get_space

    with pytest.raises(UserError, match="is a folder; pass a file of architectures one a "
                                        "line"):  # it said the folder "does not exist"
        read_architecture_file(tmp_path, get_space("small"))
    cores = usable_cores()
    with pytest.raises(UserError, match=f"--threads {cores + 1} is more than the {cores} "
                                        "cores here"):
        use_cpu_threads(cores + 1, torch.device("cpu"))
    status, _, err = nao_in_process(capsys, *TRAIN, "--data", str(cifar_mini), "--pipeline",
                                    "loader", "--workers", "100000", "--output",
                                    str(tmp_path / "run"))
    assert status == 2 and (f"--workers 100,000 is more than 4 per core ({cores} cores "
                            f"here) for each of a run's loaders; pass at most {4 * cores}"
                            ) in err, err
    assert not (tmp_path / "run").exists()  # refused before the folder or the data
    rng = random.Random(0)
    cells = [get_space("small").sample(rng).to_qualified_string() for _ in range(4)]
    scores, constant = tmp_path / "a.txt", tmp_path / "b.txt"
    scores.write_text("".join(f"{cell} {i}\n" for i, cell in enumerate(cells)))
    constant.write_text("".join(f"{cell} 5\n" for cell in cells))
    status, _, err = nao_in_process(capsys, "correlate", str(scores), str(constant))
    assert status == 2 and f"every score of {constant} is 5: there is no ranking" in err, err


@pytest.mark.parametrize("command, what", [
    (["info", "naonet-v2"], "nao info"),
    (["eval", str(FIXTURES / "naonet_v2_cifar_c8_l1.pt"), "--dataset", "cifar10"], "nao eval"),
    (["show", "naonet-v2", "-o", "cells.png"], "nao show"),
    (["search", "--space", "nb201", "--evaluator", "table:t.csv"], "a table search"),
    (["correlate", "a.txt", "b.txt"], "nao correlate A B (without --supernet)")])
def test_a_one_process_command_under_torchrun_with_several_is_refused(capsys, monkeypatch,
                                                                      command, what):
    """nao eval under torchrun ran whole in each process: its result printed twice, each
    process taking as long as one alone (a trial user)."""
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "trial")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(command) == 2
    err = capsys.readouterr().err
    assert (f"{what} runs in one process, and torchrun started 2, each of which would do "
            "all of it; run it without torchrun") in err and len(err.splitlines()) == 1, err
    monkeypatch.setenv("WORLD_SIZE", "1")  # one process: as without torchrun
    if command[0] == "info":
        assert main(command) == 0

"""One run per output folder: a lock held for the life of the process, and a folder of
another command refused before anything is written."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from naonet.errors import UserError
from naonet.run_folder import LOCK_NAME, claim_run_folder, release_run_folder

from conftest import nao_in_process

HOLDER = """
import sys, time
from naonet.run_folder import claim_run_folder
claim_run_folder(sys.argv[1], "train")
print("claimed", flush=True)
time.sleep(600)
"""


def test_a_second_process_is_refused_until_the_holder_dies(tmp_path):
    folder = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "claimed"
        with pytest.raises(UserError, match=rf"in use by nao train \(process {holder.pid}\)"):
            claim_run_folder(folder, "train")
    finally:
        holder.send_signal(signal.SIGKILL)  # a crash: the lock must not outlive it
        holder.wait(timeout=60)
    # the kernel closes a dying process's files before its parent can reap it, and the
    # lock goes with the last descriptor: free as soon as wait() returns
    claim_run_folder(folder, "train")
    assert (folder / LOCK_NAME).exists()
    release_run_folder(folder)


FORKING_HOLDER = """
import os, sys, time
from naonet.run_folder import claim_run_folder
claim_run_folder(sys.argv[1], "train")
child = os.fork()  # as a DataLoader worker is: it outlives a killed parent for seconds
if child == 0:
    # the fork's hooks have run once fork() returns here: the test may kill the parent
    print(os.getpid(), flush=True)
    time.sleep(600)
    os._exit(0)
time.sleep(600)
"""


def test_a_killed_runs_forked_children_do_not_keep_its_folder_locked(tmp_path):
    import os

    folder = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", FORKING_HOLDER, str(folder)],
                              stdout=subprocess.PIPE, text=True)
    child = int(holder.stdout.readline())
    try:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=60)
        claim_run_folder(folder, "train")  # at once, the child still alive
        release_run_folder(folder)
    finally:
        os.kill(child, signal.SIGKILL)


def finished_run(folder, command):
    """A folder a run of ``command`` has written to and released."""
    claim_run_folder(folder, command)
    (folder / "config.yaml").write_text("seed: 0\n")
    release_run_folder(folder)


def test_a_claim_removes_the_temporaries_a_killed_run_left_and_nothing_else(tmp_path):
    from naonet.files import atomic_write_text

    folder = tmp_path / "run"
    finished_run(folder, "train")
    atomic_write_text(folder / "result.json", "{}")  # what a finished write leaves
    left = ".last.pt.4242.k3x_9q0a"  # a write killed before its rename (".NAME.PID.")
    kept = [".last.pt.notmine", ".hidden", "last.pt.4242.k3x_9q0a", "result.json",
            "config.yaml", ".metrics.jsonl.backup01"]
    for name in (left, *kept):
        (folder / name).write_text("")
    claim_run_folder(folder, "train")
    assert sorted(p.name for p in folder.iterdir()) == sorted([LOCK_NAME, *kept])
    release_run_folder(folder)
    mine = tmp_path / "mine"  # a folder no run made: nothing in it is touched
    mine.mkdir()
    (mine / left).write_text("")
    claim_run_folder(mine, "train")
    assert (mine / left).exists()
    release_run_folder(mine)


def test_a_folder_of_another_command_is_refused(tmp_path):
    folder = tmp_path / "search-run"
    finished_run(folder, "search")
    assert (folder / LOCK_NAME).read_text().startswith("nao search (process ")
    with pytest.raises(UserError, match="holds a `nao search` run"):
        claim_run_folder(folder, "train")
    older = tmp_path / "older-train-run"  # made before the marker: known by its checkpoint
    older.mkdir()
    (older / "last.pt").write_bytes(b"")
    with pytest.raises(UserError, match="holds a `nao train` run"):
        claim_run_folder(older, "search")
    held = tmp_path / "held-by-this-process"  # library use: two runs in one process
    claim_run_folder(held, "train")
    assert claim_run_folder(held, "train") == held  # the same command may claim it again
    with pytest.raises(UserError, match="holds a `nao train` run"):
        claim_run_folder(held, "search")
    release_run_folder(held)


@pytest.mark.parametrize("make, fragment", [
    (lambda tmp: tmp / "file", "is a file"),
    (lambda tmp: tmp / "file" / "below", "cannot create the output folder"),
])
def test_unusable_output_paths_are_one_line_errors(tmp_path, make, fragment):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(UserError, match=fragment):
        claim_run_folder(make(tmp_path), "train")


def test_a_folder_a_run_was_killed_in_while_starting_takes_another_command(tmp_path):
    """A kill between the claim and the first file leaves the lock alone: no run to
    overwrite, so another command may have the folder (and its leftovers go)."""
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / LOCK_NAME).write_text("nao train (process 1234)\n")
    (folder / ".config.yaml.1234.ab12cd34").write_text("partial")
    claim_run_folder(folder, "search")
    assert sorted(path.name for path in folder.iterdir()) == [LOCK_NAME]
    release_run_folder(folder)
    (folder / LOCK_NAME).write_text("nao train (process 1234)\n")
    (folder / "config.yaml").write_text("seed: 0\n")
    with pytest.raises(UserError, match="holds a `nao train` run"):
        claim_run_folder(folder, "search")


def test_nao_train_into_a_search_folder_exits_2_and_writes_nothing(capsys, tmp_path):
    folder = tmp_path / "search-run"
    finished_run(folder, "search")
    before = sorted(path.name for path in folder.iterdir())
    (tmp_path / "no-data").mkdir()  # exists: the folder check is what refuses
    status, _, err = nao_in_process(capsys, "train", "--arch", "naonet-v2", "--output",
                                    str(folder), "--data", str(tmp_path / "no-data"),
                                    "--device", "cpu")
    assert status == 2
    assert "holds a `nao search` run" in err and len(err.strip().splitlines()) == 1
    assert sorted(path.name for path in folder.iterdir()) == before


def test_a_run_refused_before_writing_leaves_its_folder_as_it_found_it(tmp_path):
    """Releasing a folder that holds only the lock tidies it; a run's files are kept."""
    made = tmp_path / "made-by-the-claim"
    claim_run_folder(made, "train")
    release_run_folder(made)
    assert not made.exists()
    existing = tmp_path / "made-by-the-user"
    existing.mkdir()
    claim_run_folder(existing, "search")
    release_run_folder(existing)
    assert existing.is_dir() and list(existing.iterdir()) == []
    written = tmp_path / "written-to"
    finished_run(written, "train")
    assert sorted(path.name for path in written.iterdir()) == [LOCK_NAME, "config.yaml"]


def test_the_folders_a_refused_claim_made_go_and_the_others_stay(tmp_path):
    (tmp_path / "kept").mkdir()
    deep = tmp_path / "kept" / "runs" / "preset"  # runs/ is made too, as for runs/PRESET
    claim_run_folder(deep, "search")
    release_run_folder(deep)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["kept"]
    assert list((tmp_path / "kept").iterdir()) == []


def test_a_lock_file_deleted_between_open_and_lock_is_not_trusted(tmp_path, monkeypatch):
    """A releasing run deletes the lock file while a second process has it open: the
    second then gets the lock on a file no third process will ever see. It must lock the
    file at the path instead, or two runs would share the folder."""
    import os

    from naonet import run_folder

    folder = tmp_path / "run"
    claim_run_folder(folder, "train")
    stale = open(folder / LOCK_NAME, "a+")  # noqa: SIM115 - opened before the release
    release_run_folder(folder)  # deletes the file (and the folder the claim made)
    assert not folder.exists()
    real = run_folder._locked_file
    opened = []

    def open_stale_first(path, where):
        if not opened:
            import fcntl

            fcntl.flock(stale, fcntl.LOCK_EX | fcntl.LOCK_NB)  # succeeds: no one holds it
            opened.append(stale)
            return stale
        opened.append(real(path, where))
        return opened[-1]

    monkeypatch.setattr(run_folder, "_locked_file", open_stale_first)
    claim_run_folder(folder, "search")
    assert len(opened) == 2 and stale.closed
    assert os.path.samestat(os.fstat(opened[1].fileno()), os.stat(folder / LOCK_NAME))
    (folder / "config.yaml").write_text("seed: 0\n")
    release_run_folder(folder)


def test_a_command_releases_only_the_folders_it_claimed(capsys, tmp_path):
    """A library caller's claim outlives a `nao` command run in the same process."""
    from naonet import run_folder

    mine = tmp_path / "library-run"
    claim_run_folder(mine, "train")
    status, _, _ = nao_in_process(capsys, "train", "--arch", "naonet-v2", "--device", "cpu",
                                  "--output", str(tmp_path / "refused"), "--data",
                                  str(tmp_path / "no-such-data"))
    assert status == 2 and not (tmp_path / "refused").exists()
    assert mine.resolve() in run_folder._held
    release_run_folder(mine)


def test_a_claim_that_fails_after_locking_removes_the_folder_it_made(tmp_path, monkeypatch):
    """E.g. a full disk while writing the lock's text: the made folder and its lock go."""
    from naonet import run_folder

    def disk_full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(run_folder, "check_command", disk_full)
    with pytest.raises(OSError, match="No space left"):
        claim_run_folder(tmp_path / "new" / "run", "train")
    assert list(tmp_path.iterdir()) == []


def test_a_write_removes_the_temporaries_killed_writes_of_its_file_left(tmp_path):
    """Outside a run folder (a cache, an export) a killed write's temporary was never
    removed; the next write of the same file removes those whose process is gone and
    that nothing has touched for a minute, and no others."""
    import os
    import time

    from naonet.files import STALE_AFTER_SECONDS, atomic_write_text

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(timeout=60)
    old = time.time() - STALE_AFTER_SECONDS - 5
    target = tmp_path / "model.ts"
    temporaries = {
        "abandoned": tmp_path / f".model.ts.{gone.pid}.ab12cd34",
        "still being written": tmp_path / f".model.ts.{os.getppid()}.ab12cd34",
        "just left": tmp_path / f".model.ts.{gone.pid}.zz99yy88",
        "another file's": tmp_path / f".other.ts.{gone.pid}.ab12cd34",
    }
    for name, path in temporaries.items():
        path.write_bytes(b"partial")
        if name != "just left":
            os.utime(path, (old, old))
    atomic_write_text(target, "done")
    assert target.read_text() == "done"
    left = {name for name, path in temporaries.items() if path.exists()}
    assert left == {"still being written", "just left", "another file's"}
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".model")) == \
        sorted(temporaries[name].name for name in ("still being written", "just left"))


def test_a_write_that_fails_names_the_file_being_written(tmp_path, monkeypatch):
    """The error named the temporary beside it ('.model.onnx.1507.f3cmdae7'), which
    means nothing to the user, and a folder in the way was found only by the rename,
    after all the work of the write."""
    import os
    import tempfile

    from naonet.files import atomic_write_text

    (tmp_path / "folder.txt").mkdir()
    with pytest.raises(IsADirectoryError) as caught:
        atomic_write_text(tmp_path / "folder.txt", "x")
    assert caught.value.filename == str(tmp_path / "folder.txt")

    def refused(dir, prefix):  # noqa: A002 - mkstemp's own keyword
        raise PermissionError(13, "Permission denied", os.path.join(dir, prefix + "abcdefgh"))

    with monkeypatch.context() as patch:
        patch.setattr(tempfile, "mkstemp", refused)
        with pytest.raises(PermissionError) as caught:
            atomic_write_text(tmp_path / "model.txt", "x")
    assert caught.value.filename == str(tmp_path / "model.txt")

    def full(descriptor):  # as a write to a full disk: no file named
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as caught:
        atomic_write_text(tmp_path / "model.txt", "x")
    assert (caught.value.errno, caught.value.filename) == (28, str(tmp_path / "model.txt"))
    assert list(tmp_path.iterdir()) == [tmp_path / "folder.txt"]  # no temporary left

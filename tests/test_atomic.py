"""pipeline.atomic: a failed write leaves the old file (or folder) and no temporary; a good
one replaces it whole."""
import json
import os
import stat

import pytest

from pipeline.atomic import atomic_open, replace_dir, write_json_atomic, write_text_atomic


def test_write_replaces_the_whole_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "a.json"
    write_text_atomic(str(path), "old")
    write_json_atomic(str(path), {"b": 2, "a": 1}, sort_keys=True)
    assert path.read_text() == '{\n  "a": 1,\n  "b": 2\n}\n'
    assert os.listdir(tmp_path) == ["a.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "a.txt"
    write_text_atomic(str(path), "old")
    with pytest.raises(RuntimeError):
        with atomic_open(str(path)) as f:
            f.write("half of the new")
            raise RuntimeError("killed")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_replace_dir_swaps_whole_folders(tmp_path):
    old, new = tmp_path / "out", tmp_path / "staged"
    old.mkdir()
    (old / "stale.txt").write_text("x")
    new.mkdir()
    (new / "fresh.txt").write_text("y")
    replace_dir(str(new), str(old))
    assert os.listdir(old) == ["fresh.txt"] and not new.exists()
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_json_is_readable_back(tmp_path):
    path = str(tmp_path / "m.json")
    write_json_atomic(path, {"tiou": 0.25}, indent=1)
    assert json.load(open(path)) == {"tiou": 0.25}


# --- move_into_place: the callers that write their temporary themselves -------------------

def test_move_into_place_fsyncs_the_file_then_renames_then_fsyncs_the_folder(tmp_path,
                                                                           monkeypatch):
    from pipeline import atomic
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (calls.append(
        ("fsync", stat.S_ISDIR(os.fstat(fd).st_mode))), real_fsync(fd)))
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: (calls.append(("replace", b)),
                                                            real_replace(a, b)))
    staged, path = tmp_path / "f.part", tmp_path / "f"
    path.write_text("old")
    staged.write_text("new")
    atomic.move_into_place(str(staged), str(path))
    assert calls == [("fsync", False), ("replace", str(path)), ("fsync", True)]
    assert path.read_text() == "new" and os.listdir(tmp_path) == ["f"]


def test_a_failed_move_keeps_the_old_file_and_leaves_the_temporary_to_the_caller(
        tmp_path, monkeypatch):
    from pipeline import atomic

    def no_rename(a, b):
        raise OSError("disk gone")

    staged, path = tmp_path / "f.part", tmp_path / "f"
    path.write_text("old")
    staged.write_text("new")
    monkeypatch.setattr(atomic.os, "replace", no_rename)
    with pytest.raises(OSError, match="disk gone"):
        atomic.move_into_place(str(staged), str(path))
    assert path.read_text() == "old" and staged.read_text() == "new"


def test_move_into_place_swaps_a_folder_for_a_file_and_back(tmp_path):
    from pipeline.atomic import move_into_place
    path = tmp_path / "entry"
    path.mkdir()
    (path / "stale.txt").write_text("x")
    staged = tmp_path / "staged"
    staged.write_text("a file now")
    move_into_place(str(staged), str(path))
    assert path.read_text() == "a file now"
    staged.mkdir()
    (staged / "fresh.txt").write_text("y")
    move_into_place(str(staged), str(path))
    assert os.listdir(path) == ["fresh.txt"]
    assert sorted(os.listdir(tmp_path)) == ["entry"]


def test_edit_outputs_are_all_or_nothing_when_a_write_fails(tmp_path):
    from stages.edit import write_all
    out = tmp_path / "edited"
    write_all(str(out), {"labels.png": b"old labels", "colour.png": b"old colour"})
    with pytest.raises(TypeError):        # the second file cannot be written
        write_all(str(out), {"labels.png": b"new labels", "colour.png": object()})
    assert sorted(os.listdir(out)) == ["colour.png", "labels.png"]
    assert (out / "labels.png").read_bytes() == b"old labels"


def test_edit_outputs_are_all_or_nothing_when_an_fsync_fails(tmp_path, monkeypatch):
    """Every temporary is on disk before the first rename: a failing fsync of the last one
    leaves every earlier output as it was."""
    from stages import edit
    out = tmp_path / "edited"
    edit.write_all(str(out), {"labels.png": b"old labels", "colour.png": b"old colour"})
    real = edit.fsync_file

    def failing(path):
        if "colour" in path:
            raise OSError("I/O error")
        real(path)

    monkeypatch.setattr(edit, "fsync_file", failing)
    with pytest.raises(OSError):
        edit.write_all(str(out), {"labels.png": b"new labels", "colour.png": b"new colour"})
    assert sorted(os.listdir(out)) == ["colour.png", "labels.png"]
    assert (out / "labels.png").read_bytes() == b"old labels"


def test_extraction_replaces_an_earlier_extraction_whole(tmp_path):
    import zipfile
    from pipeline.data.raw_files import extract_zip
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("top/new.txt", "new")
        z.writestr("readme.txt", "r2")
    dest = tmp_path / "out"
    (dest / "top").mkdir(parents=True)
    (dest / "top" / "old.txt").write_text("old")
    (dest / "readme.txt").write_text("r1")
    assert extract_zip(str(archive), str(dest), lambda name: name) == 2
    assert sorted(os.listdir(dest)) == ["readme.txt", "top"]
    assert os.listdir(dest / "top") == ["new.txt"] and (dest / "readme.txt").read_text() == "r2"


def test_a_truncated_archive_leaves_the_earlier_extraction(tmp_path):
    import zipfile
    from pipeline.data.raw_files import extract_zip
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("top/new.txt", os.urandom(200_000))
    data = bytearray(archive.read_bytes())
    data[60_000] ^= 0xFF                      # inside the member's data: a bad CRC
    archive.write_bytes(bytes(data))
    dest = tmp_path / "out"
    (dest / "top").mkdir(parents=True)
    (dest / "top" / "old.txt").write_text("old")
    with pytest.raises(ValueError, match="corrupt or truncated"):
        extract_zip(str(archive), str(dest), lambda name: name)
    assert os.listdir(dest) == ["top"] and os.listdir(dest / "top") == ["old.txt"]


def test_a_checkpoint_that_fails_to_save_leaves_the_previous_one(tmp_path):
    import torch
    from pipeline.training.checkpoints import save_atomic
    path, previous = tmp_path / "checkpoint.pt", tmp_path / "checkpoint.prev.pt"
    save_atomic({"step": 3}, str(path))
    save_atomic({"step": 7}, str(path), keep_previous=str(previous))
    assert torch.load(path)["step"] == 7 and torch.load(previous)["step"] == 3
    with pytest.raises(Exception):
        save_atomic({"step": 9, "bad": lambda: None}, str(path), keep_previous=str(previous))
    assert torch.load(path)["step"] == 7 and torch.load(previous)["step"] == 3
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.prev.pt", "checkpoint.pt"]

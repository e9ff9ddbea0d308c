"""pipeline.atomic: a failed write leaves the old file (or folder) and no temporary; a good
one replaces it whole."""
import json
import os

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

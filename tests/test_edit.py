"""Semantic editing of a user's map (pipeline/apps/editing.py, `python -m stages.edit`): on a tiny
Pix2PixHD row and G_I trained here (seconds), only the boxes change, at any input size; the ids
written match the colour map written; every bad input exits non-zero with one `error:` line
and writes nothing; model files carry their metadata and older / foreign ones are refused."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.config.validation import parse_params
from pipeline.data.datasets import read_split
from pipeline.data.sets import SPECS
from pipeline.apps.editing import Edit, EditError, load_editor
from pipeline.apps.editing_maps import read_label_map
from pipeline.models.map_edits import nearest_index, scale_box
from pipeline.kinds import load_generator
from pipeline.models.model_files import MODEL_FORMAT, ModelFileError
from pipeline.kinds import TRANSLATOR, train_row
from tiny_project import REPO, prepare_tiny_cityscapes, tiny_params, write_params

ROW = "pix2pixhd-cityscapes"
PALETTE = SPECS["cityscapes"].palette


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A tiny project: prepared synthetic Cityscapes (32x16), a trained Pix2PixHD row and G_I,
    and a params file that also names an untrained MExGAN row."""
    root = tmp_path_factory.mktemp("edit")
    params = tiny_params(baselines={ROW: {"dataset": "cityscapes", "loss": "pix2pixhd"}},
                         mex_rows={"mexgan-cityscapes": {"dataset": "cityscapes", "loss": "mex",
                                                         "q_from": "q"}},
                         twosm_rows={}, q_sweep={})
    write_params(root / "params.yaml", params)
    data = prepare_tiny_cityscapes(params, str(root / "artifacts/data/cityscapes"))
    parsed = parse_params(params)
    train_row(parsed, ROW, data, str(root / f"artifacts/models/{ROW}/seed0"),
              str(root / f"reports/train/{ROW}/seed0"), progress=False)
    TRANSLATOR.train(parsed, "cityscapes", data_dir=data,
                     out_dir=str(root / "artifacts/models/translator-cityscapes"),
                     live_dir=str(root / "reports/train/translator-cityscapes"), progress=False)
    test = read_split(os.path.join(data, "test.h5"))
    inputs = root / "inputs"
    inputs.mkdir()
    Image.fromarray(test.labels[0].astype(np.uint8)).save(inputs / "ids.png")
    Image.fromarray(test.instances[0].astype(np.uint16)).save(inputs / "instances.png")
    Image.fromarray(PALETTE[test.labels[1]]).save(inputs / "colour.png")
    return {"root": root, "params": str(root / "params.yaml"), "test": test,
            "model": str(root / f"artifacts/models/{ROW}/seed0/generator.pt"),
            "translator": str(root / "artifacts/models/translator-cityscapes/generator.pt")}


@pytest.fixture(scope="module")
def editor(project):
    return load_editor(ROW, params_path=project["params"])


def changed_outside(before, after, boxes) -> int:
    outside = np.ones(before.shape, dtype=bool)
    for x1, y1, x2, y2 in boxes:
        outside[y1:y2, x1:x2] = False
    return int((before != after)[outside].sum())


#---------------------------------------------------------------------------------------------
# The command, end to end (a real process)


def test_command_end_to_end(project, tmp_path):
    """`python -m stages.edit ROW MAP --edit ... --edit ...`: only the boxes change, labels.png
    is the ids of colour.png, G_I's photo and the side-by-side are written."""
    out = tmp_path / "out"
    boxes = [(4, 3, 20, 13), (18, 1, 30, 9)]
    result = subprocess.run(
        [sys.executable, "-m", "stages.edit", ROW, str(project["root"] / "inputs/ids.png"),
         "--edit", ",".join(map(str, boxes[0])), "car", "--edit", ",".join(map(str, boxes[1])),
         "24", "--instances", str(project["root"] / "inputs/instances.png"),
         "--params", project["params"], "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    before = project["test"].labels[0]
    labels = np.asarray(Image.open(out / "labels.png")).astype(np.int64)
    colour = np.asarray(Image.open(out / "colour.png"))
    assert labels.shape == before.shape
    assert changed_outside(before, labels, boxes) == 0
    assert np.array_equal(PALETTE[labels], colour)
    assert np.asarray(Image.open(out / "photo.png")).shape == (*before.shape, 3)
    picture = np.asarray(Image.open(out / "side_by_side.png"))
    assert picture.shape[0] > before.shape[0] and picture.shape[1] > 4 * before.shape[1]
    record = json.loads((out / "edit.json").read_text())
    assert [e["label_name"] for e in record["edits"]] == ["car", "person"]
    assert record["row"] == ROW and record["dataset"] == "cityscapes"


#---------------------------------------------------------------------------------------------
# Errors: one line, non-zero exit, nothing written (in-process: the same `run` wrapper)


def run_command(argv, capsys):
    from stages.common import run
    from stages.edit import main
    with pytest.raises(SystemExit) as exit_info:
        run(lambda: main(argv))
    err = capsys.readouterr().err.strip().splitlines()
    return exit_info.value.code, err


def png_declaring(size) -> bytes:
    """A tiny 8-bit greyscale PNG whose header declares `size` (width, height): decoding it
    would take width x height bytes, reading its header takes nothing."""
    import io
    import struct
    import zlib
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((1, 1), dtype=np.uint8)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    header = struct.pack(">II", *size) + bytes(data[24:29])  # IHDR: width, height, the rest
    data[16:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + header))
    return bytes(data)


def copy_model(project, tmp_path, change):
    state = torch.load(project["translator"] if change == "dataset" else project["model"],
                       weights_only=False)
    if change == "older":
        del state["meta"]
    else:
        state["meta"]["dataset"] = "helen"
    path = tmp_path / f"{change}.pt"
    torch.save(state, path)
    return str(path)


@pytest.mark.parametrize("case, expected", [
    ("unknown label", "unknown label 'cat' for cityscapes; valid: unlabeled"),
    ("box outside", "is outside the 32x16 map"),
    ("empty box", "is empty"),
    ("bad box text", "expected x1,y1,x2,y2"),
    ("ids outside palette", "outside the cityscapes palette"),
    ("colour outside palette", "colours outside the cityscapes palette"),
    ("translator of another dataset", "a model of dataset 'helen'"),
    ("missing model", "dvc repro train_mex@mexgan-cityscapes-0"),
    ("unknown model", "not a row of"),
    ("older layout", "older layout"),
    ("instances of another size", "instance map: shape"),
    ("missing map", "no such file"),
    ("decompression bomb", "20000x20000 pixels, more than a map may have (at most 4096 a "
                           "side and 16777216 pixels in all)"),
    ("too many pixels", "5000x4000 pixels, more than a map may have"),
])
def test_errors_exit_with_one_line_and_write_nothing(project, tmp_path, capsys, case, expected):
    inputs = project["root"] / "inputs"
    ids, model = str(inputs / "ids.png"), ROW
    edit = ["--edit", "2,2,10,10", "car"]
    extra = []
    if case == "unknown label":
        edit = ["--edit", "2,2,10,10", "cat"]
    elif case == "box outside":
        edit = ["--edit", "2,2,40,10", "car"]
    elif case == "empty box":
        edit = ["--edit", "5,2,5,10", "car"]
    elif case == "bad box text":
        edit = ["--edit", "2,2,10", "car"]
    elif case == "ids outside palette":
        ids = str(tmp_path / "bad_ids.png")
        Image.fromarray(np.full((16, 32), 200, dtype=np.uint8)).save(ids)
    elif case == "colour outside palette":
        ids = str(tmp_path / "bad_colour.png")
        colour = PALETTE[project["test"].labels[0]].copy()
        colour[3, 5] = (1, 2, 3)
        Image.fromarray(colour).save(ids)
    elif case == "translator of another dataset":
        extra = ["--translator", copy_model(project, tmp_path, "dataset")]
    elif case == "missing model":
        model = "mexgan-cityscapes"
    elif case == "unknown model":
        model = "no-such-row"
    elif case == "older layout":
        model = copy_model(project, tmp_path, "older")
    elif case == "instances of another size":
        extra = ["--instances", str(tmp_path / "small.png")]
        Image.fromarray(np.zeros((8, 8), dtype=np.uint16)).save(extra[1])
    elif case == "missing map":
        ids = str(tmp_path / "nothing.png")
    elif case in ("decompression bomb", "too many pixels"):
        ids = str(tmp_path / "huge.png")
        size = (20000, 20000) if case == "decompression bomb" else (5000, 4000)
        with open(ids, "wb") as f:
            f.write(png_declaring(size))
    out = tmp_path / "out"
    code, err = run_command([model, ids, *edit, *extra, "--params", project["params"],
                             "--out", str(out)], capsys)
    assert code != 0
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert expected in err[0], err[0]
    assert not out.exists()


def test_help_and_info(project, capsys):
    from stages.edit import main
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "--edit X1,Y1,X2,Y2 LABEL" in capsys.readouterr().out
    main([ROW, "--info", "--params", project["params"]])
    out = capsys.readouterr().out
    assert "dataset: cityscapes" in out and "input size: 32x16" in out and "26 car" in out


#---------------------------------------------------------------------------------------------
# The API


def test_any_size_only_boxes_change(editor, project):
    """A map at another, non-multiple size (and no instance map): the model runs at 32x16, but
    pixels outside the boxes are the input's own, and the colour map is the ids' palette."""
    small = project["test"].labels[2]
    big = small[nearest_index(37, 16)][:, nearest_index(75, 32)]  # 75x37
    boxes = [(10, 5, 40, 30), (35, 0, 75, 12)]
    result = editor.apply(big, [Edit(boxes[0], "car"), Edit(boxes[1], "bus")])
    assert result.labels.shape == big.shape and changed_outside(big, result.labels, boxes) == 0
    assert np.array_equal(editor.palette[result.labels], result.colour)
    expected_incomplete = big.copy()
    for (x1, y1, x2, y2), label in zip(boxes, (26, 28)):
        expected_incomplete[y1:y2, x1:x2] = label
    assert np.array_equal(result.incomplete, editor.palette[expected_incomplete])
    assert result.photo.shape == (*big.shape, 3) and result.photo.dtype == np.uint8


def test_same_size_edit_is_the_models_fused_output(editor, project):
    """At the model's own size the editor is the evaluation's redraw: the labels in the box are
    the nearest palette colours of G's output for (Su, B)."""
    from pipeline.data.datasets import colour_to_labels
    from pipeline.data.inputs import EditBox, edit_batch, from_unit_range
    split = project["test"]
    box = (6, 4, 22, 14)
    result = editor.apply(split.labels[3], [Edit(box, 26)], split.instances[3])
    batch = edit_batch(split, SPECS["cityscapes"], [3], [EditBox("x", 26, box)], [False], "cpu")
    with torch.no_grad():
        fused = from_unit_range(batch.fuse(editor.generator(batch.condition)))[0]
    assert np.array_equal(result.labels, colour_to_labels(fused, PALETTE))


def test_scale_box_and_nearest_index():
    assert scale_box((3, 2, 9, 7), (32, 16), (32, 16)) == (3, 2, 9, 7)
    assert scale_box((10, 5, 40, 30), (75, 37), (32, 16)) == (4, 2, 18, 13)
    assert scale_box((74, 36, 75, 37), (75, 37), (32, 16)) == (31, 15, 32, 16)
    assert nearest_index(4, 4).tolist() == [0, 1, 2, 3]
    assert nearest_index(4, 2).tolist() == [0, 0, 1, 1]


def test_read_label_map_formats(editor, project, tmp_path):
    labels = project["test"].labels[0]
    Image.fromarray(labels.astype(np.uint16)).save(tmp_path / "ids16.png")
    assert np.array_equal(read_label_map(str(tmp_path / "ids16.png"), editor), labels)
    assert np.array_equal(read_label_map(str(project["root"] / "inputs/colour.png"), editor),
                          project["test"].labels[1])
    indexed = Image.fromarray(labels.astype(np.uint8), "P")
    indexed.putpalette(PALETTE.flatten().tolist())
    indexed.save(tmp_path / "indexed.png")
    assert np.array_equal(read_label_map(str(tmp_path / "indexed.png"), editor), labels)
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(EditError, match="text.png: not a PNG file"):
        read_label_map(str(tmp_path / "text.png"), editor)


def test_label_names_and_ids(editor):
    assert editor.label_id("car") == editor.label_id("Car") == editor.label_id(26) == 26
    assert editor.label_id("traffic_light") == 19 and editor.label_id("33") == 33
    with pytest.raises(ValueError, match=r"outside the cityscapes labels \(0..34\)"):
        editor.label_id(35)
    with pytest.raises(ValueError, match="no edit given"):
        editor.apply(np.zeros((4, 4), dtype=int), [])


#---------------------------------------------------------------------------------------------
# Self-describing model files


def test_model_files_carry_their_metadata(project):
    meta = torch.load(project["model"], weights_only=False)["meta"]
    assert meta["format"] == MODEL_FORMAT and meta["kind"] == "structure"
    assert meta["row"] == ROW and meta["dataset"] == "cityscapes"
    assert (meta["width"], meta["height"]) == (32, 16) and meta["in_channels"] == 37
    assert meta["label_names"][26] == "car" and meta["palette"] == PALETTE.tolist()
    assert len(meta["params_hash"]) == 16 and meta["commit"]
    translator = torch.load(project["translator"], weights_only=False)["meta"]
    assert translator["kind"] == "translator" and translator["in_channels"] == 3


def test_load_generator_refuses_older_and_foreign_files(project, tmp_path):
    older = copy_model(project, tmp_path, "older")
    with pytest.raises(ModelFileError, match="older layout.*dvc repro"):
        load_generator(older, "cpu")
    with pytest.raises(ModelFileError, match="dataset 'cityscapes'.*not 'helen'"):
        load_generator(project["model"], "cpu", dataset="helen")
    with pytest.raises(ModelFileError, match="a translator model"):
        load_generator(project["translator"], "cpu", kinds=("structure",))
    shutil.copy(project["model"], tmp_path / "generator.pt")
    assert load_generator(str(tmp_path), "cpu").meta["row"] == ROW


def test_older_file_converted_once_with_the_tool(project, tmp_path, capsys):
    """tools/add_model_metadata.py gives an older-layout file the metadata (weights unchanged)
    and refuses a file of another dataset's shape."""
    from tools.add_model_metadata import main as convert
    older = copy_model(project, tmp_path, "older")
    new = str(tmp_path / "converted" / "generator.pt")
    assert convert([older, "--row", ROW, "--dataset", "cityscapes", "--size", "32x16",
                    "--out", new]) == 0
    state, original = torch.load(new, weights_only=False), torch.load(older, weights_only=False)
    assert state["meta"]["row"] == ROW and state["meta"]["params_hash"] == "unknown (converted)"
    assert all(torch.equal(state["generator"][k], v) for k, v in original["generator"].items())
    assert load_editor(new, translator="none").width == 32
    assert convert([older, "--row", ROW, "--dataset", "helen", "--size", "24x24",
                    "--out", str(tmp_path / "no.pt")]) == 1
    assert "wrong --dataset" in capsys.readouterr().err and not (tmp_path / "no.pt").exists()


def test_twosm_row_edits_through_its_context_stream(project, tmp_path):
    """A TwoSM row (Table 2) edits too: its labels come from the context stream, only the box
    changes, and its file says it is a twosm model."""
    from tiny_project import tiny_params
    row = "twosm-full-cityscapes"
    params = parse_params(tiny_params(twosm_rows={row: {
        "dataset": "cityscapes", "loss": "twosm", "observation": "full", "size_threshold": 0.01}},
        twosm={"crop_size": 16}))
    model_dir = str(tmp_path / row)
    train_row(params, row, str(project["root"] / "artifacts/data/cityscapes"), model_dir,
              str(tmp_path / "live"), progress=False)
    editor = load_editor(model_dir, translator=project["translator"])
    assert editor.meta["kind"] == "twosm"
    labels = project["test"].labels[1]
    big = labels[nearest_index(40, 16)][:, nearest_index(50, 32)]
    box = (5, 10, 30, 35)
    result = editor.apply(big, [Edit(box, "car")])
    assert changed_outside(big, result.labels, [box]) == 0
    assert np.array_equal(editor.palette[result.labels], result.colour)


@pytest.mark.slow
def test_models_shared_through_a_dvc_remote(tmp_path):
    """The README's sharing recipe with a local-directory remote: train two stages, `dvc push`,
    clone, `dvc pull` only those stages' outputs, edit with the pulled row."""
    dvc = [sys.executable, "-m", "dvc"]
    lab, remote, clone = tmp_path / "lab", tmp_path / "remote", tmp_path / "clone"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if os.path.isfile(os.path.join(REPO, name)) and not name.startswith(".venv"):
            os.makedirs(lab / os.path.dirname(name), exist_ok=True)
            shutil.copy(os.path.join(REPO, name), lab / name)
    write_params(lab / "params.yaml", tiny_params())

    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}

    def sh(*command, cwd=lab):
        done = subprocess.run(list(command), cwd=cwd, capture_output=True, text=True,
                              timeout=600, env=env)
        assert done.returncode == 0, f"{command}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
        return done.stdout

    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    sh("git", "init", "-q")
    sh("git", "add", "-A")
    sh(*git, "commit", "-qm", "code")   # dvclive needs a commit
    sh(*dvc, "repro", "-s", "code_hashes", "raw_manifest", "prepare@cityscapes",
       "translator@cityscapes", f"train_baseline@{ROW}-0")
    sh(*dvc, "remote", "add", "-d", "lab", str(remote))
    sh("git", "add", "-A")
    sh(*git, "commit", "-qm", "trained")
    sh(*dvc, "push", f"train_baseline@{ROW}-0", "translator@cityscapes", "prepare@cityscapes")
    sh("git", "clone", "-q", str(lab), str(clone), cwd=tmp_path)
    sh(*dvc, "pull", f"train_baseline@{ROW}-0", "translator@cityscapes", cwd=clone)
    assert (clone / f"artifacts/models/{ROW}/seed0/generator.pt").is_file()
    labels = np.zeros((16, 32), dtype=np.uint8) + 7
    Image.fromarray(labels).save(clone / "map.png")
    sh(sys.executable, "-m", "stages.edit", ROW, "map.png", "--edit", "2,2,12,10", "car",
       "--out", "edited", cwd=clone)
    assert (clone / "edited/photo.png").is_file()

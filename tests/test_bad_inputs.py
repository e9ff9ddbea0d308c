"""A catalogue of bad inputs, run through the real stage CLIs in a temporary project. Every case
must end with one clear line on stderr (`error: ...` naming the file or key; the download stage
writes `download <dataset>: ...`), no traceback, a non-zero exit status, and no new output that
a later stage or `dvc repro` could take for good (prepared data, generator.pt,
train_summary.json, reports/*.json, artifacts/eval).

The fast suite runs the whole catalogue in one Python process (each case through runpy, as
`python -m` does, with stdout/stderr captured at the file-descriptor level), so torch is imported
once; the slow suite runs every case as its own `python -m stages.<name>` process."""
import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from dataclasses import dataclass, field

import numpy as np
import pytest
import yaml
from PIL import Image

from pipeline.training.checkpoints import save_atomic
from pipeline.data.preparation import prepare_dataset
from pipeline.data.synthetic import generate_split
from tiny_project import REPO, tiny_params, write_params

BASELINE = "pix2pixhd-cityscapes"
MODEL = f"artifacts/models/{BASELINE}/seed0"    # the first (only) training seed
MEX = "mexgan-cityscapes"
DATA = "artifacts/data/cityscapes"


@dataclass
class Case:
    name: str
    module: str                     # stages.<name>
    args: list
    setup: object                   # fn(project: Path) -> None: makes the input bad
    expect: list                    # substrings of the last stderr line (file / key names)
    data: bool = True               # start from a project with prepared data and models
    env: dict = field(default_factory=dict)


#---------------------------------------------------------------------------------------------
# Building blocks of the bad inputs


def edit_params(change):
    """Setup: load params.yaml, apply change(dict), write it back."""
    def setup(project):
        with open(project / "params.yaml") as f:
            params = yaml.safe_load(f)
        change(params)
        write_params(project / "params.yaml", params)
    return setup


def set_key(dotted, value):
    def change(params):
        node = params
        *parents, last = dotted.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    return edit_params(change)


def write_text(relative, text):
    def setup(project):
        path = project / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return setup


def truncate(relative, keep=0.5):
    def setup(project):
        path = project / relative
        data = path.read_bytes()
        path.write_bytes(data[:int(len(data) * keep)])
    return setup


def remove(relative):
    def setup(project):
        path = project / relative
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return setup


def both(*setups):
    def setup(project):
        for step in setups:
            step(project)
    return setup


def city_tree(size=(64, 32), photo_size=None, label_value=7, then=None):
    """A raw Cityscapes folder (raw/) with one image per split, as in test_raw_datasets."""
    def setup(project):
        raw = project / "raw"
        width, height = size
        for split in ("train", "val"):
            for top in ("gtFine", "leftImg8bit"):
                (raw / top / split / "city").mkdir(parents=True, exist_ok=True)
            labels = np.full((height, width), label_value, np.uint8)
            labels[8:20, 10:30] = 26
            instances = labels.astype(np.int32)
            instances[8:20, 10:30] = 26001
            base = raw / "gtFine" / split / "city" / "city_000000_000001"
            Image.fromarray(labels).save(f"{base}_gtFine_labelIds.png")
            Image.fromarray(instances.astype(np.uint16)).save(f"{base}_gtFine_instanceIds.png")
            pw, ph = photo_size or size
            Image.fromarray(np.full((ph, pw, 3), 90, np.uint8)).save(
                raw / "leftImg8bit" / split / "city" / "city_000000_000001_leftImg8bit.png")
        if then:
            then(project)
    return setup


VAL = "raw/gtFine/val/city/city_000000_000001"
PREPARE = ["cityscapes", "--out", DATA]
EVALUATE = ["--rows", BASELINE]


def duplicate_key(project):
    text = (project / "params.yaml").read_text()
    (project / "params.yaml").write_text(text + "q: 3\n")


#---------------------------------------------------------------------------------------------
# The catalogue

CASES = [
    # params.yaml, checked before any work (prepare is the first stage)
    Case("params_file_missing", "stages.prepare", PREPARE + ["--params", "nope.yaml"],
         None, ["nope.yaml", "no such file"], data=False),
    Case("params_not_yaml", "stages.prepare", PREPARE, write_text("params.yaml", "q: [1,\n"),
         ["params.yaml", "not valid YAML"], data=False),
    Case("params_unknown_key", "stages.prepare", PREPARE, edit_params(lambda p: p.update(qq=3)),
         ["qq", "unknown key"], data=False),
    Case("params_unknown_nested_key", "stages.prepare", PREPARE,
         edit_params(lambda p: p["train"].update(epoch=3)), ["train.epoch", "unknown key"],
         data=False),
    Case("params_duplicate_key", "stages.prepare", PREPARE, duplicate_key, ["q", "twice"],
         data=False),
    Case("params_wrong_type", "stages.prepare", PREPARE,
         set_key("datasets.cityscapes.width", "32"),
         ["datasets.cityscapes.width", "not an integer"], data=False),
    Case("params_size_not_multiple_of_downsampling", "stages.prepare", PREPARE,
         set_key("datasets.cityscapes.width", 30), ["datasets.cityscapes.width", "multiple"],
         data=False),
    Case("params_threshold_outside_0_1", "stages.prepare", PREPARE,
         set_key("datasets.cityscapes.size_threshold", 1.5),
         ["datasets.cityscapes.size_threshold"], data=False),
    Case("params_unknown_dataset", "stages.prepare", PREPARE,
         edit_params(lambda p: p["datasets"].update(kitti=p["datasets"]["nyu"])),
         ["datasets.kitti", "known datasets"], data=False),
    Case("params_negative_q", "stages.train", [MEX], set_key("q", -1), ["q: -1"]),
    Case("params_alpha_not_integer", "stages.train", [MEX], set_key("alpha", 1.5),
         ["alpha", "not an integer"]),
    Case("params_lambda_infinite", "stages.train", [MEX],
         set_key("profiles.paper.lambda_feat", float("inf")),
         ["profiles.paper.lambda_feat", "finite"]),
    Case("params_bad_q_from", "stages.train", [MEX],
         set_key(f"mex_rows.{MEX}.q_from", "q_sweep.nope"), [f"mex_rows.{MEX}.q_from"]),
    Case("params_row_dataset_unknown", "stages.train", [BASELINE],
         set_key(f"baselines.{BASELINE}.dataset", "kitti"), [f"baselines.{BASELINE}.dataset"]),
    Case("params_bad_source", "stages.raw_manifest", ["--out", "artifacts/raw_manifest.json"],
         set_key("data.source", "kaggle"), ["data.source", "kaggle"]),
    # prepare: command line, synthetic and real data
    Case("prepare_unknown_dataset", "stages.prepare", ["kitti", "--out", "artifacts/data/kitti"],
         None, ["kitti", "invalid choice"], data=False),
    Case("prepare_no_eligible_box", "stages.prepare", PREPARE,
         set_key("datasets.cityscapes.size_threshold", 0.99), ["size_threshold 0.99"],
         data=False),
    Case("prepare_real_raw_dir_missing", "stages.prepare", PREPARE,
         both(set_key("data.source", "real"), set_key("data.raw_dir", "data/raw")),
         ["gtFine_trainvaltest.zip and leftImg8bit_trainvaltest.zip missing: put them in "
          "data/raw/"], data=False),
    Case("prepare_raw_truncated_png", "stages.prepare", PREPARE + ["--raw", "raw"],
         city_tree(then=truncate(f"{VAL}_gtFine_instanceIds.png")),
         ["city_000000_000001_gtFine_instanceIds.png", "truncated"], data=False),
    Case("prepare_raw_label_outside_palette", "stages.prepare", PREPARE + ["--raw", "raw"],
         city_tree(label_value=40), ["gtFine_labelIds.png", "label value 40"], data=False),
    Case("prepare_raw_image_label_size_mismatch", "stages.prepare", PREPARE + ["--raw", "raw"],
         city_tree(photo_size=(60, 32)), ["gtFine_labelIds.png", "differs"], data=False),
    Case("prepare_raw_photo_missing", "stages.prepare", PREPARE + ["--raw", "raw"],
         city_tree(then=remove("raw/leftImg8bit/val/city/city_000000_000001_leftImg8bit.png")),
         ["city_000000_000001_leftImg8bit.png", "missing"], data=False),
    Case("prepare_raw_bad_mat", "stages.prepare",
         ["nyu", "--out", "artifacts/data/nyu", "--raw", "raw"],
         write_text("raw/nyu_depth_v2_labeled.mat", "MATLAB 5.0 MAT-file, not HDF5"),
         ["nyu_depth_v2_labeled.mat", "not a readable"], data=False),
    Case("prepare_raw_corrupt_zip", "stages.prepare",
         ["helen", "--out", "artifacts/data/helen", "--raw", "raw"],
         write_text("raw/helenstar_release.zip", "PK\x03\x04 truncated"),
         ["helenstar_release.zip", "corrupt"], data=False),
    # train
    Case("train_unknown_row", "stages.train", ["mexgan-kitti"], None,
         ["mexgan-kitti", "unknown row"]),
    Case("train_unknown_option", "stages.train", [MEX, "--epochs", "3"], None,
         ["unrecognized arguments: --epochs 3"]),
    Case("train_missing_prepared_split", "stages.train", [BASELINE], remove(DATA),
         [f"{DATA}/train.h5", "does not exist"]),
    Case("train_corrupt_train_h5", "stages.train", [BASELINE],
         write_text(f"{DATA}/train.h5", "not hdf5"), [f"{DATA}/train.h5", "not a prepared split"]),
    Case("train_boxes_header_only", "stages.train", [BASELINE],
         write_text(f"{DATA}/boxes.csv", "split,image,label,x1,y1,x2,y2,area_fraction\n"),
         [f"{DATA}/boxes.csv", "no train box"]),
    Case("train_boxes_missing", "stages.train", [BASELINE], remove(f"{DATA}/boxes.csv"),
         [f"{DATA}/boxes.csv", "does not exist"]),
    Case("train_boxes_malformed_row", "stages.train", [BASELINE],
         write_text(f"{DATA}/boxes.csv", "split,image,label,x1,y1,x2,y2,area_fraction\n"
                                         "train,syn_0,26,a,b,c,d,0.1\n"),
         [f"{DATA}/boxes.csv:2", "malformed"]),
    Case("train_box_outside_image", "stages.train", [BASELINE], None,  # setup: see below
         [f"{DATA}/boxes.csv", "outside the 32x16 image"]),
    Case("train_vgg_weights_missing", "stages.train", [BASELINE],
         set_key("loss.vgg_weights_path", "weights/missing.pth"), ["weights/missing.pth"]),
    Case("train_non_finite_loss", "stages.train", [BASELINE],
         set_key("loss.lambda_adv", 1e39), ["non-finite loss G_adv", "at step 1",
                                             "last good checkpoint: none"]),
    Case("translator_unknown_dataset", "stages.train_translator", ["kitti"], None,
         ["datasets.kitti"]),
    Case("translator_missing_prepared_split", "stages.train_translator", ["cityscapes"],
         remove(DATA), [f"{DATA}/train.h5"]),
    # evaluate
    Case("evaluate_unknown_row", "stages.evaluate", ["--rows", "nope"], None, ["nope"]),
    Case("evaluate_truncated_generator", "stages.evaluate", EVALUATE,
         truncate(f"{MODEL}/generator.pt"),
         [f"{MODEL}/generator.pt", "unreadable"]),
    Case("evaluate_truncated_translator", "stages.evaluate", EVALUATE,
         truncate("artifacts/models/translator-cityscapes/generator.pt", 0.9),
         ["artifacts/models/translator-cityscapes/generator.pt", "unreadable"]),
    Case("evaluate_generator_missing", "stages.evaluate", EVALUATE,
         remove(f"{MODEL}/generator.pt"),
         [f"{MODEL}/generator.pt", "does not exist"]),
    Case("evaluate_summary_missing", "stages.evaluate", EVALUATE,
         remove(f"{MODEL}/train_summary.json"),
         [f"{MODEL}/train_summary.json", "does not exist"]),
    Case("evaluate_corrupt_test_h5", "stages.evaluate", EVALUATE,
         truncate(f"{DATA}/test.h5", 0.3), [f"{DATA}/test.h5", "not a prepared split"]),
    Case("evaluate_missing_test_boxes", "stages.evaluate", EVALUATE,
         remove(f"{DATA}/test_boxes.csv"), [f"{DATA}/test_boxes.csv", "does not exist"]),
    Case("evaluate_test_box_of_unknown_image", "stages.evaluate", EVALUATE,
         write_text(f"{DATA}/test_boxes.csv", "image,label,x1,y1,x2,y2,area_fraction\n"
                                              "not_an_image,26,1,1,4,4,0.1\n"),
         [f"{DATA}/test_boxes.csv", "not_an_image"]),
    # inpainting (Table 3)
    Case("params_facade_under_datasets", "stages.prepare", PREPARE,
         edit_params(lambda p: p["datasets"].update(facade=p["datasets"]["helen"])),
         ["datasets.facade", "under `inpainting`"], data=False),
    Case("params_inpainting_patch_smaller_than_hole", "stages.train", ["gl-facade"],
         set_key("inpainting.local_fraction", 0.3), ["inpainting.local_fraction"]),
    Case("params_inpainting_bad_loss", "stages.train", ["gl-facade"],
         set_key("inpainting_rows.gl-facade.loss", "mex"), ["inpainting_rows.gl-facade.loss"]),
    Case("train_inpainting_unknown_row", "stages.train", ["gl-kitti"], None,
         ["gl-kitti", "unknown row"]),
    Case("train_inpainting_missing_prepared_split", "stages.train", ["gl-facade"],
         None, ["artifacts/inpainting/data/train.h5", "does not exist"]),
    Case("evaluate_inpainting_missing_test_split", "stages.evaluate", ["--table", "inpainting"],
         None,
         ["artifacts/inpainting/data/test.h5", "does not exist"]),
    # report and download
    Case("report_without_metrics", "stages.report", [], None, ["reports/metrics.json"]),
    Case("download_helen_not_placed", "stages.download", ["helen", "--raw", "raw"], None,
         ["download helen:", "helenstar_release"], data=False),
    Case("download_raw_is_a_file", "stages.download", ["nyu", "--raw", "raw"],
         write_text("raw", "a file, not a folder"), ["download nyu:", "raw"], data=False),
]


def _box_outside_image(project):
    path = project / DATA / "boxes.csv"
    lines = path.read_text().splitlines()
    first = lines[1].split(",")
    first[5] = "999"   # x2 far outside the 32-px-wide map
    path.write_text("\n".join([lines[0], ",".join(first)] + lines[2:]) + "\n")


next(c for c in CASES if c.name == "train_box_outside_image").setup = _box_outside_image


#---------------------------------------------------------------------------------------------
# The project the cases start from


def tiny_model_files(model_dir, in_channels, params):
    from pipeline.models.model_files import model_metadata
    from pipeline.kinds.parts import build_generator
    from pipeline.config.loading import to_dict
    from pipeline.config.validation import parse_params
    parsed = parse_params(params)
    os.makedirs(model_dir)
    kind = "translator" if in_channels == 3 else "structure"
    size = params["datasets"]["cityscapes"]
    save_atomic({"generator": build_generator(in_channels, parsed).state_dict(),
                 "in_channels": in_channels, "model": to_dict(parsed.model),
                 "meta": model_metadata(kind, "cityscapes", size["width"], size["height"],
                                        os.path.basename(model_dir), in_channels, "test",
                                        "test")},
                os.path.join(model_dir, "generator.pt"))
    with open(os.path.join(model_dir, "train_summary.json"), "w") as f:
        json.dump({"q": -1, "seed": 0, "vgg_source": "test", "steps": 1}, f)


@pytest.fixture(scope="module")
def bases(tmp_path_factory, vgg_weights):
    """Two starting projects: `bare` (params only) and `full` (prepared Cityscapes data,
    tiny generator.pt of the baseline row and of the translator); the session's VGG19 file."""
    root = tmp_path_factory.mktemp("bad_inputs")
    params = tiny_params(loss={"vgg_weights_path": vgg_weights})
    bare = root / "bare"
    bare.mkdir()
    write_params(bare / "params.yaml", params)
    full = root / "full"
    shutil.copytree(bare, full)
    settings = params["datasets"]["cityscapes"]
    splits = {split: generate_split("cityscapes", split, settings[f"synthetic_{split}"],
                                    settings["height"], settings["width"],
                                    params["data"]["seed"])
              for split in ("train", "test")}
    prepare_dataset("cityscapes", splits, str(full / DATA), width=settings["width"],
                    height=settings["height"], threshold=settings["size_threshold"],
                    box_rule="authors", source="synthetic")
    tiny_model_files(str(full / MODEL), 37, params)
    tiny_model_files(str(full / "artifacts/models/translator-cityscapes"), 3, params)
    return {"bare": bare, "full": full, "root": root}


def make_project(bases, case, suffix=""):
    project = bases["root"] / "cases" / f"{case.name}{suffix}"
    shutil.copytree(bases["full" if case.data else "bare"], project)
    if case.setup:
        case.setup(project)
    return project


def listing(project):
    """path -> (size, mtime_ns) of every file."""
    files = {}
    for root, _dirs, names in os.walk(project):
        for name in names:
            path = os.path.join(root, name)
            stat = os.stat(path)
            files[os.path.relpath(path, project)] = (stat.st_size, stat.st_mtime_ns)
    return files


# New files a failed stage may leave: its dvclive log and checkpoints (never accepted as a
# result: evaluate reads generator.pt, which is written last).
ALLOWED_NEW = ("reports/train/",)
ALLOWED_NAMES = ("checkpoint.pt", "checkpoint.prev.pt")


def check_result(case, project, before, code, stderr):
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines, f"{case.name}: nothing on stderr"
    last = lines[-1]
    prefix = "download " if case.module == "stages.download" else "error: "
    assert last.startswith(prefix), f"{case.name}: last stderr line {last!r}\n{stderr}"
    for expected in case.expect:
        assert expected in last, f"{case.name}: {expected!r} not in {last!r}"
    assert "Traceback" not in stderr, f"{case.name}:\n{stderr}"
    assert isinstance(code, int) and code != 0, f"{case.name}: exit status {code!r}"
    after = listing(project)
    changed = [path for path, meta in after.items() if before.get(path) != meta]
    bad = [path for path in changed if not path.startswith(ALLOWED_NEW)
           and os.path.basename(path) not in ALLOWED_NAMES]
    assert not bad, f"{case.name}: left {bad}"
    if case.module == "stages.prepare":
        out = project / case.args[case.args.index("--out") + 1]
        assert not out.exists() and not os.path.exists(f"{out}.tmp"), case.name


#---------------------------------------------------------------------------------------------
# Fast: every case in one process

DRIVER = textwrap.dedent("""
    import json, os, runpy, sys, tempfile, time, traceback
    cases, out_path = json.load(open(sys.argv[1])), sys.argv[2]
    results = {}
    base_env = dict(os.environ)
    for case in cases:
        os.chdir(case["cwd"])
        os.environ.clear()
        os.environ.update(base_env, **case["env"])
        for key in case["unset"]:
            os.environ.pop(key, None)
        captured = [tempfile.TemporaryFile(), tempfile.TemporaryFile()]
        sys.stdout.flush(), sys.stderr.flush()
        saved = [os.dup(1), os.dup(2)]
        os.dup2(captured[0].fileno(), 1), os.dup2(captured[1].fileno(), 2)
        sys.argv = [case["module"]] + case["args"]
        code, started = 0, time.time()
        try:
            runpy.run_module(case["module"], run_name="__main__", alter_sys=True)
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) or stop.code is None else 1
            code = 0 if code is None else code
        except BaseException:
            traceback.print_exc()
            code = "uncaught exception"
        sys.stdout.flush(), sys.stderr.flush()
        os.dup2(saved[0], 1), os.dup2(saved[1], 2)
        texts = []
        for handle in captured:
            handle.seek(0)
            texts.append(handle.read().decode("utf-8", "replace"))
        results[case["name"]] = {"code": code, "stdout": texts[0], "stderr": texts[1],
                                 "seconds": time.time() - started}
    json.dump(results, open(out_path, "w"))
""")

UNSET = ["CITYSCAPES_USERNAME", "CITYSCAPES_PASSWORD", "MEXGAN_DEBUG"]


@pytest.fixture(scope="module")
def in_process_results(bases):
    projects, befores, spec = {}, {}, []
    for case in CASES:
        project = make_project(bases, case)
        projects[case.name], befores[case.name] = project, listing(project)
        spec.append({"name": case.name, "module": case.module, "args": case.args,
                     "cwd": str(project), "env": case.env, "unset": UNSET})
    root = bases["root"]
    (root / "driver.py").write_text(DRIVER)
    (root / "cases.json").write_text(json.dumps(spec))
    env = dict(os.environ, PYTHONPATH=REPO)
    done = subprocess.run([sys.executable, str(root / "driver.py"), str(root / "cases.json"),
                           str(root / "results.json")], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((root / "results.json").read_text())
    return {name: (projects[name], befores[name], result) for name, result in results.items()}


def test_catalogue_is_large():
    assert len(CASES) >= 20 and len({c.name for c in CASES}) == len(CASES)
    assert len({c.module for c in CASES}) == 7


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_input_gives_one_line_and_no_output(case, in_process_results):
    project, before, result = in_process_results[case.name]
    check_result(case, project, before, result["code"], result["stderr"])


#---------------------------------------------------------------------------------------------
# Slow: every case as its own `python -m stages.<name>` process


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_input_as_separate_process(case, bases):
    project = make_project(bases, case, ".proc")
    before = listing(project)
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env.update(case.env, PYTHONPATH=REPO)
    done = subprocess.run([sys.executable, "-m", case.module, *case.args], cwd=project, env=env,
                          capture_output=True, text=True, timeout=300)
    check_result(case, project, before, done.returncode, done.stderr)

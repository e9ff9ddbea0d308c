"""Real data for the datasets one has: data.sources.<dataset> overrides data.source per dataset
(the segmentation datasets and the inpainting dataset alike), the prepare stage records each
dataset's resolved source, and a missing archive is one line naming that very archive and the
folder it goes in (e.g. only CMP_facade_DB_base.zip: CMP_facade_DB_extended.zip is missing)."""
import copy
import json
import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import yaml
from PIL import Image

from pipeline.config.loading import load_params
from pipeline.config.sections import ParamsError, data_sources
from pipeline.config.validation import parse_params
from pipeline.data.raw_datasets import load_raw
from pipeline.data.raw_files import MissingRawData
from shared_data import shared_path
from tiny_project import REPO, tiny_params, write_params


def _raw_params(**data) -> dict:
    with open(os.path.join(REPO, "params.yaml")) as f:
        raw = yaml.safe_load(f)
    raw["data"].update(data)
    return raw


CITYSCAPES_ONLY = {"source": "synthetic", "sources": {"cityscapes": "real"}}


#---------------------------------------------------------------------------------------------
# Validation and resolution


@pytest.mark.parametrize("sources, key, shown", [
    ({"cityscapes": "kaggle"}, "data.sources.cityscapes", "kaggle"),
    ({"facade": "Real"}, "data.sources.facade", "Real"),
    ({"kitti": "real"}, "data.sources.kitti", "cityscapes, nyu, helen, facade"),
    ("real", "data.sources", "a mapping"),
    (["cityscapes"], "data.sources", "a mapping"),
])
def test_bad_sources_name_the_key(sources, key, shown):
    with pytest.raises(ParamsError) as err:
        parse_params(_raw_params(sources=sources))
    message = str(err.value)
    assert message.startswith(f"{key}: ") and shown in message and "\n" not in message


def test_raw_dir_needed_as_soon_as_one_dataset_is_real():
    assert data_sources(parse_params(_raw_params(raw_dir=""))) == {
        "cityscapes": "synthetic", "nyu": "synthetic", "helen": "synthetic",
        "facade": "synthetic"}                      # all synthetic: no raw folder needed
    with pytest.raises(ParamsError, match=r"^data\.raw_dir: .*real data of cityscapes"):
        parse_params(_raw_params(raw_dir="", **CITYSCAPES_ONLY))
    with pytest.raises(ParamsError, match=r"^data\.raw_dir: .*real data of facade"):
        parse_params(_raw_params(raw_dir="", sources={"facade": "real"}))


def test_default_params_are_synthetic_everywhere():
    for name in ("params.yaml", "params_study.yaml"):
        params = load_params(os.path.join(REPO, name))
        assert params.data.sources == {}
        assert set(data_sources(params).values()) == {"synthetic"}
        assert params.data.label(data_sources(params)) == "synthetic"
    paper = load_params(os.path.join(REPO, "params_paper.yaml"))
    assert set(data_sources(paper).values()) == {"real"} and paper.data.label(["nyu"]) == "real"


def test_cityscapes_real_others_synthetic_resolves_as_intended():
    params = parse_params(_raw_params(**CITYSCAPES_ONLY))
    assert data_sources(params) == {"cityscapes": "real", "nyu": "synthetic",
                                    "helen": "synthetic", "facade": "synthetic"}
    assert params.data.label(params.datasets) == "cityscapes real, nyu synthetic, helen synthetic"
    assert params.data.label([params.inpainting.dataset]) == "synthetic"
    assert params.data.label(["cityscapes"]) == "real"
    # the same from the paper's settings: real by default, the rest overridden to synthetic
    paper = load_params(os.path.join(REPO, "params_paper.yaml"), [
        "data.sources={nyu: synthetic, helen: synthetic, facade: synthetic}"])
    assert data_sources(paper) == data_sources(params)


#---------------------------------------------------------------------------------------------
# Missing archives: one line naming the archive that is missing


def _facade_zips(raw, parts=("base", "extended"), folder="facade"):
    """CMP_facade_DB_<part>.zip of the real samples: cmp_b0001..3 base, cmp_b0004 as the
    extended cmp_x0001."""
    os.makedirs(os.path.join(raw, folder), exist_ok=True)
    members = {"base": [(f"cmp_b000{i}", f"cmp_b000{i}") for i in (1, 2, 3)],
               "extended": [("cmp_b0004", "cmp_x0001")]}
    for part in parts:
        with zipfile.ZipFile(os.path.join(raw, folder, f"CMP_facade_DB_{part}.zip"), "w") as z:
            for source, target in members[part]:
                for ext in ("jpg", "png"):
                    z.write(shared_path("facade", f"{source}.{ext}"), f"{part}/{target}.{ext}")


@pytest.mark.parametrize("folder", ["facade", ""])
def test_only_the_base_facade_archive_names_the_extended_one(tmp_path, folder):
    raw, extracted = str(tmp_path / "raw"), str(tmp_path / "x")
    _facade_zips(raw, parts=("base",), folder=folder)
    with pytest.raises(MissingRawData) as err:
        load_raw("facade", raw, facade_test=1, progress=False, extract_dir=extracted)
    message = str(err.value)
    assert message.startswith("CMP Facade: CMP_facade_DB_extended.zip missing: put it in "
                              f"{os.path.join(raw, 'facade')}/ ")
    assert "CMP_facade_DB_base.zip" not in message and "facade/base" not in message
    assert "\n" not in message and isinstance(err.value, FileNotFoundError)
    # base was extracted (once), outside the raw folder
    assert sorted(os.listdir(os.path.join(extracted, "facade", "base")))[0] == "cmp_b0001.jpg"
    # with the extended archive added, the same call reads both
    _facade_zips(raw, parts=("extended",))
    data = load_raw("facade", raw, facade_test=1, progress=False, extract_dir=extracted)
    assert data["train"].names == ["cmp_b0001", "cmp_b0002", "cmp_x0001"]


def test_no_facade_archive_names_both(tmp_path):
    with pytest.raises(MissingRawData, match=r"^CMP Facade: CMP_facade_DB_base\.zip and "
                       r"CMP_facade_DB_extended\.zip missing: put them in "):
        load_raw("facade", str(tmp_path), progress=False, extract_dir=str(tmp_path / "x"))


def _city_tree(root, splits=("train", "val")):
    for split in splits:
        for top in ("gtFine", "leftImg8bit"):
            os.makedirs(os.path.join(root, top, split, "city"), exist_ok=True)
        labels = np.full((32, 64), 7, np.uint8)
        labels[8:20, 10:30] = 26
        instances = labels.astype(np.uint16)
        instances[8:20, 10:30] = 26001
        base = os.path.join(root, "gtFine", split, "city", "city_000000_000001")
        Image.fromarray(labels).save(base + "_gtFine_labelIds.png")
        Image.fromarray(instances).save(base + "_gtFine_instanceIds.png")
        Image.fromarray(np.full((32, 64, 3), 90, np.uint8)).save(os.path.join(
            root, "leftImg8bit", split, "city", "city_000000_000001_leftImg8bit.png"))


def test_missing_archive_of_each_dataset_is_named(tmp_path):
    raw = str(tmp_path / "raw")
    _city_tree(raw)
    shutil.rmtree(os.path.join(raw, "leftImg8bit"))      # gtFine extracted, photos missing
    cases = {"cityscapes": "Cityscapes: leftImg8bit_trainvaltest.zip missing: put it in "
                           f"{raw}/ (",
             "nyu": f"NYU Depth v2: nyu_depth_v2_labeled.mat missing: put it in {raw}/ (",
             "helen": f"Helen: helenstar_release.zip missing: put it in {raw}/ ("}
    for dataset, start in cases.items():
        with pytest.raises(MissingRawData) as err:
            load_raw(dataset, raw, progress=False, extract_dir=str(tmp_path / "x"))
        assert str(err.value).startswith(start) and "\n" not in str(err.value), dataset


#---------------------------------------------------------------------------------------------
# The stages


def _stage(project, *args):
    """A stage CLI in a subprocess (its one-line error contract, stages.common.run)."""
    return subprocess.run([sys.executable, "-m", *args], cwd=project, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": REPO})


def _main(monkeypatch, project, module, *args):
    """A stage's main() in this process (one torch import for the whole test)."""
    import importlib
    monkeypatch.chdir(project)
    monkeypatch.setattr(sys, "argv", [module, *args])
    importlib.import_module(module).main()


def _project(tmp_path, **data):
    project = tmp_path / "project"
    project.mkdir()
    params = tiny_params()
    params["data"] = {**copy.deepcopy(params["data"]), "raw_dir": str(tmp_path / "raw"), **data}
    write_params(project / "params.yaml", params)
    return project


def test_prepare_stage_missing_extended_archive_is_one_line(tmp_path):
    project = _project(tmp_path, sources={"facade": "real"})
    _facade_zips(str(tmp_path / "raw"), parts=("base",))
    result = _stage(project, "stages.prepare", "facade", "--out", "artifacts/inpainting/data",
                    "--extract", "artifacts/raw/facade")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: CMP Facade: CMP_facade_DB_extended.zip missing: put it in "
                           f"{tmp_path / 'raw' / 'facade'}/ ")
    assert line.endswith("or use synthetic facade data: data.sources: {facade: synthetic} in "
                         "params.yaml")
    assert not (project / "artifacts" / "inpainting" / "data").exists()


def test_cityscapes_real_others_synthetic_through_the_stages(tmp_path, monkeypatch):
    project = _project(tmp_path, **CITYSCAPES_ONLY)
    _city_tree(str(tmp_path / "raw"))
    for dataset, out in (("cityscapes", "artifacts/data/cityscapes"),
                         ("nyu", "artifacts/data/nyu"), ("facade", "artifacts/inpainting/data")):
        _main(monkeypatch, project, "stages.prepare", dataset, "--out", out,
              "--extract", f"artifacts/raw/{dataset}")
        with open(project / out / "stats.json") as f:
            stats = json.load(f)
        assert stats["source"] == ("real" if dataset == "cityscapes" else "synthetic"), dataset
    with open(project / "artifacts" / "data" / "cityscapes" / "stats.json") as f:
        assert json.load(f)["train"]["images"] == 1          # the one real train image
    # the raw folder is listed (prepare reruns when archives change): one dataset is real
    _main(monkeypatch, project, "stages.raw_manifest", "--out", "artifacts/raw_manifest.json")
    with open(project / "artifacts" / "raw_manifest.json") as f:
        manifest = json.load(f)
    assert manifest["source"] == "synthetic" and manifest["raw_dir"] == str(tmp_path / "raw")
    assert ["gtFine/train/city/city_000000_000001_gtFine_labelIds.png"] == [
        entry[0] for entry in manifest["files"] if entry[0].endswith("_labelIds.png")
        and "/train/" in entry[0]]


def test_raw_manifest_of_the_synthetic_default_ignores_the_folder(tmp_path, monkeypatch):
    project = _project(tmp_path)
    _city_tree(str(tmp_path / "raw"))
    _main(monkeypatch, project, "stages.raw_manifest", "--out", "artifacts/raw_manifest.json")
    with open(project / "artifacts" / "raw_manifest.json") as f:
        assert json.load(f) == {"source": "synthetic"}

"""dvc.yaml and the params files agree with each other and with the code."""
import hashlib
import json
import os
import re
import subprocess
import sys

import yaml

from pipeline.config.loading import load_params
from pipeline.config.sections import lookup
from tools import stage_deps

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(name):
    with open(os.path.join(REPO, name)) as f:
        return yaml.safe_load(f)


def stage_definitions():
    """(name, definition, item values) for every stage, foreach and matrix groups expanded."""
    params = load("params.yaml")
    for name, stage in load("dvc.yaml")["stages"].items():
        if "matrix" in stage:
            axes = {axis: params[values.strip("${}")] if isinstance(values, str) else values
                    for axis, values in stage["matrix"].items()}
            assert set(axes) == {"row", "seed"}, name
            for row in axes["row"]:
                for seed in axes["seed"]:
                    yield f"{name}@{row}-{seed}", stage, ("matrix", {"row": row, "seed": seed})
            continue
        if "foreach" not in stage:
            yield name, stage, None
            continue
        items = stage["foreach"]
        if isinstance(items, str):  # ${datasets}
            items = params[items.strip("${}")]
        for key in items:
            yield f"{name}@{key}", stage["do"], (key, items[key] if isinstance(items, dict)
                                                 else key)


def resolve(text, item):
    if item is None:
        return text
    key, value = item
    text = text.replace("${key}", str(key)).replace("${item}", str(value))
    return re.sub(r"\$\{item\.(\w+)\}", lambda m: str(value[m.group(1)]), text)


def test_every_stage_script_and_dependency_exists():
    for name, stage, item in stage_definitions():
        module = re.search(r"python -m (stages\.\w+)", stage["cmd"]).group(1)
        assert os.path.exists(os.path.join(REPO, module.replace(".", "/") + ".py")), name
        for dep in stage.get("deps", []):
            path = resolve(dep, item)
            if path.startswith(("stages/", "pipeline/")):
                assert os.path.exists(os.path.join(REPO, path)), f"{name}: {path}"


def test_every_tracked_param_resolves_in_params_yaml():
    params = load_params(os.path.join(REPO, "params.yaml"))
    raw = load("params.yaml")
    for name, stage, item in stage_definitions():
        for key in stage.get("params", []):
            key = resolve(key, item)
            assert lookup(params, key) is not None, f"{name}: param {key} missing"
            node = raw  # DVC reads the file itself: a default of pipeline.config is not enough
            for part in key.split("."):
                assert isinstance(node, dict) and part in node, f"{name}: {key} not in the file"
                node = node[part]


def test_no_stage_output_lands_in_the_dvc_added_data_folder():
    tracked = load("data.dvc")["outs"][0]["path"]
    for name, stage, item in stage_definitions():
        for out in stage.get("outs", []) + stage.get("metrics", []):
            path = resolve(next(iter(out)) if isinstance(out, dict) else out, item)
            assert not path.startswith(tracked + "/"), f"{name}: {path} inside {tracked}/"


def test_q_is_top_level_and_drives_the_mex_rows():
    raw = load("params.yaml")
    assert isinstance(raw["q"], int)
    driven = [name for name, row in raw["mex_rows"].items() if row["q_from"] == "q"]
    assert {"mexgan-cityscapes", "mexgan-helen", "amexgan-cityscapes"} <= set(driven)
    expansion = load("dvc.yaml")["stages"]["row_expansion"]
    assert {"q", "q_overrides", "q_sweep", "alpha", "beta"} <= set(expansion["params"])
    baseline_stage = load("dvc.yaml")["stages"]["train_baseline"]
    assert "q" not in baseline_stage["params"] and "alpha" not in baseline_stage["params"]


def test_a_row_stage_depends_on_its_own_q_only():
    """`dvc exp run -S q=8` retrains only the rows whose q follows q, `-S alpha=3` only the rows
    with an expansion loss: no training stage tracks q, q_overrides, q_sweep, alpha or beta
    itself; each MEx / TwoSM row depends on its resolved settings (stage row_expansion)."""
    stages = load("dvc.yaml")["stages"]
    assert "artifacts/row_expansion" in stages["row_expansion"]["outs"]
    for name, stage, item in stage_definitions():
        if name.startswith(("train_", "translator")):
            tracked = {resolve(key, item) for key in stage.get("params", [])}
            assert not {key.split(".")[0] for key in tracked} & {
                "q", "q_overrides", "q_sweep", "alpha", "beta"}, name
    assert "loss.lambda_mex" not in stages["train_twosm"]["params"]
    for group in ("train_mex", "train_twosm"):
        assert "artifacts/row_expansion/${item.row}.json" in stages[group]["deps"], group


def test_the_row_expansion_stage_writes_each_rows_own_settings(tmp_path):
    out = tmp_path / "row_expansion"
    subprocess.run([sys.executable, "-m", "stages.row_expansion", "--out", str(out)], cwd=REPO,
                   check=True, capture_output=True)
    params = load_params(os.path.join(REPO, "params.yaml"))
    rows = {**params.mex_rows, **params.twosm_rows}
    written = {name[:-len(".json")]: json.loads((out / name).read_text())
               for name in os.listdir(out)}
    assert set(written) == set(rows)
    raw = load("params.yaml")
    for name, row in rows.items():
        if row.loss in ("mex", "amex"):
            assert written[name] == {"q": lookup(raw, row.q_from), "alpha": raw["alpha"],
                                     "beta": raw["beta"],
                                     "lambda_mex": raw["loss"]["lambda_mex"]}, name
        else:
            assert written[name] == {"q": None}, name
    assert written["twosm-cityscapes"] == {"q": None} and written["mexgan-nyu"]["q"] == 5


def test_every_stage_depends_on_its_code_fingerprint_and_lists_no_code():
    """Each stage (as DVC expands dvc.yaml, stages added later included) depends on
    artifacts/code/<its group>.json and lists no code file or folder itself: the fingerprint
    holds exactly the files it imports (tools/stage_deps.py)."""
    problems = stage_deps.drift(REPO)
    report = "; ".join(f"{name}: add {missing or '-'}, drop {extra or '-'}"
                       for name, (missing, extra) in problems.items())
    assert not problems, f"dvc.yaml's code deps (python tools/stage_deps.py): {report}"


def test_the_fingerprint_stage_runs_first_every_time_and_covers_every_stage(tmp_path):
    """code_hashes reruns with every repro and writes one file per stage group, each naming
    exactly the files that group's command imports, with the SHA-256 of their bytes."""
    spec = load("dvc.yaml")["stages"]
    stage = spec[stage_deps.FINGERPRINT_STAGE]
    assert stage["always_changed"] is True and "deps" not in stage
    assert stage["outs"] == [{stage_deps.FINGERPRINTS: {"cache": False}}]
    subprocess.run([sys.executable, "-m", "stages.code_hashes", "--out", str(tmp_path / "code")],
                   cwd=REPO, check=True, capture_output=True)
    written = {name[:-len(".json")] for name in os.listdir(tmp_path / "code")}
    assert written == set(spec) - {stage_deps.FINGERPRINT_STAGE}
    with open(tmp_path / "code" / "train_mex.json") as f:
        train_mex = json.load(f)
    assert list(train_mex) == stage_deps.stage_code(spec["train_mex"]["cmd"], REPO)
    assert "stages/train.py" in train_mex and "pipeline/models/losses.py" in train_mex
    assert "pipeline/evaluation/reports/tables.py" not in train_mex  # a report module
    with open(os.path.join(REPO, "pipeline/models/losses.py"), "rb") as f:
        assert train_mex["pipeline/models/losses.py"] == hashlib.sha256(f.read()).hexdigest()


def test_the_committed_lock_records_the_code_of_this_checkout(tmp_path):
    """Each stage that dvc.lock records depends on artifacts/code/<stage>.json with the md5 of
    the fingerprint this checkout's code gives: a commit that changes a stage's code without
    `dvc repro` leaves its committed results from other code, and a user's `dvc repro` reruns
    it (28e44eb left the translator stages so)."""
    out = tmp_path / "code"
    subprocess.run([sys.executable, "-m", "stages.code_hashes", "--out", str(out)], cwd=REPO,
                   check=True, capture_output=True)
    stale, checked = [], 0
    for stage, entry in load("dvc.lock")["stages"].items():
        for dep in entry.get("deps", []):
            if dep["path"].startswith(stage_deps.FINGERPRINTS + "/"):
                checked += 1
                path = out / os.path.basename(dep["path"])
                if not path.exists() or hashlib.md5(path.read_bytes()).hexdigest() != dep["md5"]:
                    stale.append(stage)
    assert checked >= 10
    assert not stale, f"dvc.lock records other code for {stale}: run `dvc repro` and commit it"


def test_a_changed_import_changes_only_the_fingerprints_of_the_stages_that_import_it(tmp_path):
    files = {"dvc.yaml": "stages:\n  a:\n    cmd: python -m stages.a\n"
                         "  b:\n    cmd: python -m stages.b --x ${item}\n",
             "stages/a.py": "from lib import shared\n", "stages/b.py": "import lib.own\n",
             "lib/shared.py": "", "lib/own.py": "from . import shared\n"}
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    before = stage_deps.fingerprints(str(tmp_path))
    assert set(before["a"]) == {"lib/shared.py", "stages/a.py"}
    assert set(before["b"]) == {"lib/own.py", "lib/shared.py", "stages/b.py"}
    (tmp_path / "lib/own.py").write_text("from . import shared\nX = 2\n")
    after = stage_deps.fingerprints(str(tmp_path))
    assert after["a"] == before["a"] and after["b"] != before["b"]


def test_bytecode_caches_are_dvcignored():
    with open(os.path.join(REPO, ".dvcignore")) as f:
        patterns = set(f.read().split())
    assert {"__pycache__/", "*.pyc"} <= patterns


def test_stage_deps_counts_every_kind_of_import(tmp_path):
    """Relative imports, imports inside functions, `from pkg import module`, namespace packages,
    parents' __init__ files and the data files a module names; not the standard library."""
    files = {
        "stages/__init__.py": "from lib import base\n",
        "stages/run.py": "import os\nfrom . import helper\n"
                         "def main():\n    from lib.sub import late\n",
        "stages/helper.py": "",
        "stages/unused.py": "",
        "lib/base.py": "import json\nNAMES = 'names.tsv'\n",
        "lib/names.tsv": "",
        "lib/sub/__init__.py": "from .inner import x\n",
        "lib/sub/inner.py": "from ..base import NAMES\nx = 1\n",
        "lib/sub/late.py": "",
        "lib/other.py": "",
    }
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    assert stage_deps.stage_code("python -m stages.run --flag", str(tmp_path)) == [
        "lib/base.py", "lib/names.tsv", "lib/sub/__init__.py", "lib/sub/inner.py",
        "lib/sub/late.py", "stages/__init__.py", "stages/helper.py", "stages/run.py"]
    assert stage_deps.stage_code("python stages/helper.py", str(tmp_path)) == [
        "stages/helper.py"]
    assert stage_deps.is_code("lib/sub", str(tmp_path)) and stage_deps.is_code("x.py", str(tmp_path))
    assert not stage_deps.is_code("artifacts/data", str(tmp_path))


def test_every_structure_row_is_trained_once_per_seed():
    params = load("params.yaml")
    names = {name for name, _, _ in stage_definitions()}
    for row in params["baselines"]:
        for seed in params["seeds"]:
            assert f"train_baseline@{row}-{seed}" in names
    for row in params["mex_rows"]:
        for seed in params["seeds"]:
            assert f"train_mex@{row}-{seed}" in names
    for row in params["inpainting_rows"]:
        for seed in params["seeds"]:
            assert f"train_inpainting@{row}-{seed}" in names
    assert {"prepare_inpainting", "evaluate_inpainting"} <= names


def test_table3_outputs_stay_out_of_the_folders_the_segmentation_stages_depend_on():
    stages = load("dvc.yaml")["stages"]
    inpainting = [stages[n] for n in ("prepare_inpainting", "train_inpainting",
                                      "evaluate_inpainting")]
    outs = [next(iter(o)) if isinstance(o, dict) else o for s in inpainting
            for o in s.get("outs", [])]
    for name in ("train_baseline", "train_mex", "train_twosm", "evaluate"):
        for dep in stages[name]["deps"]:
            assert not any(out.startswith(dep + "/") or out == dep for out in outs), (name, dep)


def test_run_to_run_files_inside_dvc_outputs_are_dvcignored():
    with open(os.path.join(REPO, ".dvcignore")) as f:
        patterns = set(f.read().split())
    assert {"checkpoint.pt", "checkpoint.prev.pt", "resources.json"} <= patterns


def test_paper_params_file_loads_with_the_papers_settings():
    paper = load_params(os.path.join(REPO, "params_paper.yaml"))
    assert paper.data.source == "real"
    assert (paper.datasets["cityscapes"].width, paper.datasets["cityscapes"].height) == (256, 128)
    assert (paper.datasets["nyu"].width, paper.datasets["nyu"].height) == (192, 144)
    assert paper.model.ngf == 64 and paper.model.n_blocks == 9 and paper.train.epochs == 200
    assert paper.alpha == paper.beta == 5 and paper.q == 4 and paper.row_q("mexgan-nyu") == 5
    assert set(paper.rows) == set(load_params(os.path.join(REPO, "params.yaml")).rows)

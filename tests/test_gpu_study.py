"""The GPU study run's static parts (tools/gpu_study.sh, tools/gpu/, tools/unpack_gpu_study.py):
the documented `run` call fits the device tool, its params derivations load, the wheel list
covers what the pipeline needs on the device, the time guard ends inside the call, and packing
a fake run keeps within what comes back from $OUT and unpacks again. No GPU, no network, a few
seconds."""
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tarfile

import pytest
import torch
import yaml

from pipeline.config.loading import load_params

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools", "gpu"))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import calibrate  # noqa: E402
import pack  # noqa: E402
import params as gpu_params  # noqa: E402
import unpack_gpu_study  # noqa: E402

DOC = os.path.join(ROOT, "docs", "gpu-and-benchmark.md")
SCRIPT = os.path.join(ROOT, "tools", "gpu_study.sh")


def documented_run_call() -> dict:
    """The `run` call docs/gpu-and-benchmark.md gives, from its ```json block."""
    with open(DOC) as f:
        text = f.read()
    match = re.search(r"<!-- gpu-study-run-call -->\s*```json\n(.*?)```", text, re.S)
    assert match, "docs/gpu-and-benchmark.md lacks the marked ```json block of the run call"
    return json.loads(match.group(1))


def test_run_call_fits_the_device_tool():
    call = documented_run_call()
    assert set(call) <= {"command", "timeout_s", "carry"}
    assert len(call["command"]) <= 2000
    assert "tools/gpu_study.sh" in call["command"]
    assert 1 <= call["timeout_s"] <= 600
    assert len(call["carry"]) <= 8 and all(len(p) <= 200 for p in call["carry"])
    assert call["carry"] == [".whl"]
    with open(os.path.join(ROOT, "tools", "gpu", "wheels.sh")) as f:
        assert "/.whl/" in f.read()   # the carried folder is git-ignored (.git/info/exclude)


def test_the_deadline_and_packing_end_inside_the_call():
    with open(SCRIPT) as f:
        text = f.read()
    plan = [int(v) for v in re.findall(r"GPU_STUDY_PLAN:-(\d+)", text)]
    hard = [int(v) for v in re.findall(r"GPU_STUDY_DEADLINE:-(\d+)", text)]
    gpu_plan, gpu_hard = plan[-1], hard[-1]   # the GPU defaults (the smoke's come first)
    timeout = documented_run_call()["timeout_s"]
    assert gpu_plan <= 500 < gpu_hard < timeout - 30
    assert "590 - (SECONDS - T0)" in text   # packing stops before the call's limit
    subprocess.run(["bash", "-n", SCRIPT], check=True)
    subprocess.run(["bash", "-n", os.path.join(ROOT, "tools", "gpu", "paper_smoke.sh")],
                   check=True)


@pytest.mark.parametrize("command,source", [
    ("study-smoke", "params_study.yaml"), ("study-smoke", "params_study_twosm.yaml"),
    ("paper-smoke", "params_paper.yaml"), ("paper-cpu", "params_paper.yaml")])
def test_derived_params_load(tmp_path, command, source):
    out = str(tmp_path / "params.yaml")
    assert gpu_params.main([command, os.path.join(ROOT, source), out]) == 0
    params = load_params(out)
    assert params.seeds == (0,)
    if command == "paper-smoke":   # the paper's sizes and networks, synthetic, ~hundreds of steps
        paper = load_params(os.path.join(ROOT, "params_paper.yaml"))
        assert params.model == paper.model and params.data.source == "synthetic"
        assert set(params.rows) == set(paper.rows)
        for name, dataset in params.datasets.items():
            assert (dataset.width, dataset.height) == (paper.datasets[name].width,
                                                      paper.datasets[name].height)
            steps = dataset.synthetic_train * params.train.epochs
            assert 150 <= steps <= 600, (name, steps)
        assert (params.inpainting.width, params.inpainting.height) == (
            paper.inpainting.width, paper.inpainting.height)
        assert params.inpainting.epochs > (params.inpainting.completion_epochs
                                           + params.inpainting.discriminator_epochs)


def test_scaled_epochs(tmp_path):
    raw = gpu_params.read(os.path.join(ROOT, "params_study.yaml"))
    first_row = next(iter(raw["mex_rows"]))
    raw["mex_rows"][first_row]["epochs"] = 50
    out = gpu_params.scaled(raw, 0.3)
    assert out["train"]["epochs"] == int(raw["train"]["epochs"] * 0.3)
    assert out["mex_rows"][first_row]["epochs"] == 15
    assert gpu_params.scaled(raw, 0.001)["train"]["epochs"] == 1
    assert gpu_params.scaled(raw, 1.0)["train"]["epochs"] == raw["train"]["epochs"]
    with pytest.raises(ValueError):
        gpu_params.scaled(raw, 1.5)
    path = str(tmp_path / "p.yaml")
    gpu_params.write(gpu_params.with_profile(out, "authors"), path)
    assert load_params(path).profile == "authors"
    with open(path) as f:   # tools/study.sh sets the profile with sed on this line
        assert re.search(r"^profile: authors$", f.read(), re.M)


def test_calibration_estimate():
    records = [{"row": "a", "seed": 0, "epochs": 36, "steps_per_epoch": 255,
                "steps_per_second": 60.0},
               {"row": "b", "seed": 0, "epochs": 36, "steps_per_epoch": 255,
                "steps_per_second": 30.0},
               {"row": "c", "seed": 0, "epochs": 30, "steps_per_epoch": 288,
                "error": "failed"}]
    result = calibrate.estimate(records, budget=200.0)
    slowest = 36 * (255 / 30.0 + calibrate.EPOCH_OVERHEAD)
    assert result["longest_run"]["row"] == "b"
    assert result["fraction"] == pytest.approx((200 - calibrate.START_OVERHEAD) / slowest,
                                               abs=1e-3)
    assert [r["measured"] for r in result["runs"]] == [True, True, False]
    assert calibrate.estimate(records, budget=1e6)["fraction"] == 1.0
    assert calibrate.estimate([records[2]], budget=100)["fraction"] is None


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_wheels_cover_the_pipeline_on_the_device():
    def names(path):
        with open(path) as f:
            return [line.strip() for line in f if line.strip() and not line.startswith("#")]
    wheels = dict(line.split("==") for line in names(os.path.join(ROOT, "tools", "gpu",
                                                                  "wheels.txt")))
    assert len({_norm(n) for n in wheels}) == len(wheels)
    device = {_norm(n) for n in names(os.path.join(ROOT, "tools", "gpu",
                                                   "device_packages.txt"))}
    carried = {_norm(n) for n in wheels}
    assert not carried & {"torch", "torchvision", "numpy", "triton"}
    with open(os.path.join(ROOT, "requirements.txt")) as f:
        pins = dict(re.match(r"([A-Za-z0-9_.-]+)==([^\s#]+)", line).groups()
                    for line in f if re.match(r"[A-Za-z0-9_.-]+==", line))
    for top in ("dvc", "dvclive", "pytorch-fid"):
        assert wheels[top] == pins[top], top
    # every package the installed dvc, dvclive and pytorch-fid need, all the way down
    from packaging.requirements import Requirement
    missing, seen, todo = [], set(), ["dvc", "dvclive", "pytorch-fid"]
    while todo:
        name = _norm(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        if name not in carried | device:
            missing.append(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for line in requires:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    assert len(seen) > 30, "the walk did not reach dvc's requirements (is dvc installed?)"
    # and the pipeline's own requirements (the web app's and the tests' aside)
    for name in pins:
        if _norm(name) not in {"fastapi", "uvicorn", "httpx", "playwright", "pytest",
                               "hypothesis"} and _norm(name) not in carried | device:
            missing.append(name)
    assert not missing, f"neither carried (tools/gpu/wheels.txt) nor on the device: {missing}"


def _fake_model(path: str, floats: int) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.save({"generator": {"w": torch.ones(floats)}, "meta": {"row": "x"}}, path)
    with open(os.path.join(os.path.dirname(path), "train_summary.json"), "w") as f:
        json.dump({"seed": 0, "steps": 1}, f)


def _fake_run(tmp_path) -> tuple:
    """A run's STAGE and WORK: paper finished, authors stopped in training, twosm finished,
    the smoke finished; models at seed 0 of every row and the translators."""
    stage, work = tmp_path / "stage", tmp_path / "work"
    for profile, (folder, _) in pack.PROFILES.items():
        repo = work / "study" / profile / "repo"
        rows = {"pix2pixhd-cityscapes": {"dataset": "cityscapes", "loss": "pix2pixhd"},
                "mexgan-cityscapes": {"dataset": "cityscapes", "loss": "mex"}}
        (repo / "reports" / "train" / "mexgan-cityscapes" / "seed0" / "plots" / "metrics"
         / "eval").mkdir(parents=True)
        (repo / "reports" / "train" / "mexgan-cityscapes" / "seed0" / "plots" / "metrics"
         / "eval" / "tiou.tsv").write_text("timestamp\tstep\ttiou\n1\t255\t0.5\n")
        (repo / "reports" / "train" / "mexgan-cityscapes" / "seed0" / "metrics.json"
         ).write_text("{}")
        with open(repo / "params.yaml", "w") as f:
            yaml.safe_dump({"seeds": [0, 1], "train": {"epochs": 9}, "baselines": {},
                            "mex_rows": rows, "twosm_rows": {}}, f)
        (repo / ".dvc" / "tmp" / "repro_parallel").mkdir(parents=True)
        (repo / ".dvc" / "tmp" / "repro_parallel" / "train_mex@mexgan-cityscapes-0.log"
         ).write_text("x" * 400_000)   # cut to its last LOG_TAIL bytes
        for row in rows:
            _fake_model(str(repo / "artifacts" / "models" / row / "seed0" / "generator.pt"),
                        200_000)
        _fake_model(str(repo / "artifacts" / "models" / "translator-cityscapes"
                        / "generator.pt"), 70_000)
        if profile != "authors":
            results = stage / "reports" / folder
            (results / "figures").mkdir(parents=True)
            (results / "summary.md").write_text(
                f"# summary\n\n[{folder}/table1.md]({folder}/table1.md)\n"
                f"![curves]({folder}/figures/c.png)\n")
            (results / "figures" / "c.png").write_bytes(os.urandom(200_000))
    smoke = work / "paper256" / "repo"
    (smoke / "reports").mkdir(parents=True)
    (smoke / "reports" / "README.md").write_text("report")
    (smoke / "params.yaml").write_text("seeds: [0]\n")
    (work / "logs").mkdir(parents=True)
    (work / "logs" / "study_paper.log").write_text("log\n")
    (work / "run.env").write_text("gpu=GPU 0: fake\nmps=on\nfraction=0.5\nsmoke=0\n"
                                  "part.paper.rc=0\npart.authors.rc=124\npart.twosm.rc=0\n"
                                  "part.paper256.rc=0\n")
    return str(stage), str(work)


def test_pack_keeps_within_out_limits_and_unpacks(tmp_path, monkeypatch):
    # the device's limits scaled down 16x: the same decisions on small files
    monkeypatch.setattr(pack, "MAX_FILE_BYTES", pack.MAX_FILE_BYTES // 16)
    monkeypatch.setattr(pack, "MAX_TOTAL_BYTES", pack.MAX_TOTAL_BYTES // 16)
    monkeypatch.setattr(pack, "MARGIN", pack.MARGIN // 16)
    monkeypatch.setattr(pack, "LOG_RESERVE", pack.LOG_RESERVE // 16)
    stage, work = _fake_run(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / pack.LOG_NAME).write_text("the run's log\n")
    manifest = pack.pack(stage, work, str(out))
    assert pack.check_out(str(out)) == []
    files = sorted(os.listdir(out))
    assert len(files) <= pack.MAX_FILES
    assert {"study_gpu.tar.gz", "study_gpu_authors.tar.gz", "study_gpu_twosm.tar.gz",
            "gpu_paper_smoke.tar.gz", "gpu_models_1.tar", pack.MANIFEST} <= set(files)
    assert manifest["parts"]["paper"]["finished"] and not manifest["parts"]["authors"][
        "finished"]
    assert manifest["left_out"]   # 9 models of 400 KB do not all fit in 2 x 1 MiB
    with tarfile.open(out / "study_gpu_authors.tar.gz") as tar:
        names = tar.getnames()
    assert ("study_gpu_authors/run/train/mexgan-cityscapes/seed0/plots/metrics/eval/tiou.tsv"
            in names)   # an unfinished profile brings its curves so far
    with tarfile.open(out / "gpu_models_1.tar") as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("generator.pt"))
        assert member.name.startswith("models/paper/")
        state = torch.load(tar.extractfile(member), weights_only=False)
    assert state["generator"]["w"].dtype == torch.float16
    # back into a checkout's reports/ and artifacts/
    reports, models = tmp_path / "reports", tmp_path / "models"
    unpack_gpu_study.unpack(str(out), str(reports), str(models))
    summary = (reports / "study_gpu" / "summary.md").read_text()
    assert "**GPU run**" in summary and "(study_gpu/table1.md)" in summary
    assert "(study/" not in summary
    assert "not finished" in (reports / "study_gpu_authors" / "README.md").read_text()
    assert (models / "paper" / "pix2pixhd-cityscapes" / "seed0" / "generator.pt").exists()
    assert (reports / "study_gpu" / "run" / pack.MANIFEST).exists()
    with pytest.raises(unpack_gpu_study.UnpackError, match="--force"):
        unpack_gpu_study.unpack(str(out), str(reports), str(models))
    unpack_gpu_study.unpack(str(out), str(reports), str(models), force=True)
    (out / "study_gpu.tar.gz").write_bytes(b"damaged")
    with pytest.raises(unpack_gpu_study.UnpackError, match="sha256"):
        unpack_gpu_study.unpack(str(out), str(reports), str(models), force=True)

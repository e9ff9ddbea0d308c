"""Portable mode (pipeline.training.platform, docs/portability.md): results that travel across CPUs.

The test that can fail: the same short training (pipeline.training.trainer) of the pipeline's networks (GlobalGenerator +
Pix2PixHD loss + MEx loss, q=4, at the demo size), an eval-mode pass, the random-init VGG19 and
Inception stand-ins, a Fréchet distance and numpy/scipy filters, run in fresh processes whose *outer* environment asks
for different ISA levels (AVX-512 kernels vs AVX2 kernels for ATen, oneDNN, MKL and OpenBLAS).
Each process goes through stages/__init__.py, as every stage does. Portable mode on: bit-
identical. Portable mode off: different (so the first assertion means something).

Also: the switch (params file, MEXGAN_PORTABLE), describe(), and the README route from a shell
whose PATH lacks .venv/bin (stages/__init__.py re-executes under .venv/bin/python; make targets).

This file is also the child process: python tests/test_portable.py --params P [--steps N] [--fid]
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.abspath(__file__)

# What an AVX-512 machine's libraries pick by themselves vs what an AVX2 machine's pick.
AVX512_ENV = {"ATEN_CPU_CAPABILITY": "avx512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE",
              "MKL_ENABLE_INSTRUCTIONS": "AVX512", "OPENBLAS_CORETYPE": "SkylakeX"}
AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
            "MKL_ENABLE_INSTRUCTIONS": "AVX2", "OPENBLAS_CORETYPE": "Haswell",
            "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR"}
STEPS = 4
THREADS = 2  # train.cpu_threads of params.yaml: the parallel reductions are part of the test


#---------------------------------------------------------------------------------------------
# The child: a short training, digests of everything that feeds the metrics


def _digest(arrays) -> str:
    import hashlib

    import numpy as np
    h = hashlib.sha256()
    for a in arrays:
        a = a.detach().cpu().contiguous().numpy() if hasattr(a, "detach") else np.asarray(a)
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def child(steps: int, fid: bool) -> dict:
    import logging

    import numpy as np
    import torch

    from pipeline.training import platform, trainer
    from pipeline.apps.step_timing import TimedTask
    from pipeline.config.loading import load_params
    from pipeline.data.sets import get_spec
    from pipeline.data.inputs import EditBox, EditTask, condition_channels
    from pipeline.models.networks import VGG19Features
    from pipeline.data.preparation import box_rows
    from pipeline.kinds.parts import build_generator, build_losses
    from pipeline.data.synthetic import generate_split
    logging.disable(logging.WARNING)  # the stand-in warnings

    params = load_params(os.path.join(ROOT, "params.yaml"))
    spec = get_spec("cityscapes")
    split = generate_split("cityscapes", "train", 6, 32, 64, 0)
    boxes = {}
    for row in box_rows("train", split, spec, 0.02):
        boxes.setdefault(row[1], []).append(EditBox(row[1], row[2], tuple(row[3:7])))
    channels = condition_channels(spec)
    torch.manual_seed(0)
    generator = build_generator(channels, params)
    vgg = VGG19Features("")
    losses = build_losses("mex", channels, params, 4, vgg)
    task = EditTask(split, spec, boxes, batch_size=1, flip=True, seed=0)
    device = torch.device("cpu")
    # the trainer's own step (joint discriminator passes, fused Adam: its vectorised CPU kernel
    # is dispatched by ISA like the convolutions)
    with tempfile.TemporaryDirectory() as out_dir:
        summary = trainer.train(generator=generator, losses=losses, task=TimedTask(task, steps),
                                epochs=1, lr=2e-4, betas=(0.5, 0.999), device=device,
                                out_dir=out_dir, progress=False)
    terms = [v for k, v in sorted(summary.items()) if k.startswith("final_")]
    trained = [v for k, v in generator.state_dict().items()]
    trained += [v for loss in losses for k, v in loss.state_dict().items()
                if not k.startswith("vgg.")]
    result = {"weights": _digest(trained), "loss_terms": _digest([np.array(terms)])}
    generator.eval()
    with torch.no_grad():
        batch = next(iter(task.epoch(99, device)))
        result["eval_output"] = _digest([generator(batch.condition)])
        image = torch.linspace(-1, 1, 3 * 32 * 64).reshape(1, 3, 32, 64)
        result["vgg_features"] = _digest(vgg(image))
    if fid:
        from pipeline.evaluation.metrics import FIDScorer
        scorer = FIDScorer(2048, "")
        rng = np.random.default_rng(0)
        real = scorer.features(rng.integers(0, 256, (17, 32, 64, 3), dtype=np.uint8))
        fake = scorer.features(rng.integers(0, 256, (17, 32, 64, 3), dtype=np.uint8))
        result["fid_features"] = _digest([real, fake])
        result["fid"] = repr(scorer.distance(real, fake))
        # The Fréchet distance of well-spread features: OpenBLAS's kernels show in its bits.
        a = rng.standard_normal((40, 64)) @ rng.standard_normal((64, 64))
        b = rng.standard_normal((40, 64)) * 1.3 + 0.1
        result["frechet"] = repr(scorer.distance(a, b))
    # numpy's dispatched loops: a Gaussian kernel (np.exp) as in skimage's anti-aliased resize
    # of the floor rows (pipeline/evaluation/floors.py)
    from scipy import ndimage
    from skimage.transform import resize
    field = np.random.default_rng(1).random((48, 48))
    result["numpy_filters"] = _digest([ndimage.gaussian_filter(field, 1.3),
                                       resize(field, (13, 17), anti_aliasing=True)])
    result["platform"] = platform.describe()
    return result


#---------------------------------------------------------------------------------------------
# Running children

def _scrubbed_env(outer: dict) -> dict:
    """This process's environment without anything pipeline.training.platform sets (conftest.py ran it
    here), plus the outer ISA settings of the experiment."""
    from pipeline.training import platform
    env = {k: v for k, v in os.environ.items()
           if k not in platform.ALL_VARS and k not in platform.PORTABLE_UNSET
           and k != platform.ENV_SWITCH}
    env.update(outer, OMP_WAIT_POLICY="PASSIVE")  # no spin-waiting beside a busy test run
    return env


def run_children(tmp_path, portable: bool, outers: list, fid: bool = True,
                 steps: int = STEPS) -> list:
    """One child per outer environment, all at once (their results do not depend on the load:
    that is the point), in the order of `outers`."""
    params = tmp_path / f"params-{'on' if portable else 'off'}.yaml"
    params.write_text(f"train:\n  portable: {str(portable).lower()}\n  cpu_threads: {THREADS}\n")
    args = [sys.executable, HERE, "--params", str(params), "--steps", str(steps)]
    if fid:
        args.append("--fid")
    children = [subprocess.Popen(args, cwd=ROOT, env=_scrubbed_env(outer), text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                for outer in outers]
    records = []
    for child in children:
        stdout, stderr = child.communicate(timeout=600)
        assert child.returncode == 0, stderr[-3000:]
        records.append(json.loads(stdout.strip().splitlines()[-1]))
    return records


def _results(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "platform"}


def _has_avx512() -> bool:
    from pipeline.training import platform
    return bool(platform.cpu_info()["flags"].get("avx512f"))


def test_portable_training_is_identical_under_two_isa_levels(tmp_path):
    a, b = run_children(tmp_path, True, [AVX512_ENV, AVX2_ENV])
    assert _results(a) == _results(b)
    for record in (a, b):
        info = record["platform"]
        assert info["portable"] is True
        assert info["onednn_enabled"] is False and info["nnpack_enabled"] is False
        assert info["torch_threads"] == THREADS
        assert info["env"]["MKL_CBWR"] == "COMPATIBLE"
        if info["machine"]["cpu_flags"].get("avx2"):
            assert info["isa_used"] == "AVX2"
            assert info["numpy_simd"] in ("X86_V3", None)
    # the outer AVX-512 settings were there and were overridden
    assert a["platform"]["machine"]["overridden_env"]["ATEN_CPU_CAPABILITY"] == "avx512"


def test_without_portable_mode_the_isa_level_changes_the_results(tmp_path):
    if not _has_avx512():
        pytest.skip("this CPU has no AVX-512: both ISA levels are AVX2, nothing can differ")
    a, b = run_children(tmp_path, False, [AVX512_ENV, AVX2_ENV], fid=False)
    assert a["platform"]["portable"] is False and a["platform"]["onednn_enabled"] is True
    assert a["platform"]["isa_used"] == "AVX512" and b["platform"]["isa_used"] == "AVX2"
    assert a["weights"] != b["weights"]  # oneDNN's AVX-512 vs AVX2 kernels
    assert a["eval_output"] != b["eval_output"]
    assert a["numpy_filters"] != b["numpy_filters"]  # numpy's AVX-512 vs AVX2 loops


@pytest.mark.slow
def test_portable_training_is_identical_under_more_settings_and_steps(tmp_path):
    """More outer ISA settings (the machine's own choice, oneDNN capped, ATen without any
    vector ISA, MKL's own reproducibility branch, OpenBLAS's Zen kernels), 12 steps."""
    outers = [{}, AVX512_ENV, AVX2_ENV, {"ONEDNN_MAX_CPU_ISA": "AVX2"},
              {"ATEN_CPU_CAPABILITY": "default"},
              {"MKL_CBWR": "AUTO", "OPENBLAS_CORETYPE": "Zen", "NPY_ENABLE_CPU_FEATURES": "X86_V3"}]
    runs = [_results(run) for run in run_children(tmp_path, True, outers, steps=12)]
    assert all(run == runs[0] for run in runs[1:]), runs


#---------------------------------------------------------------------------------------------
# The switch


def test_params_path_from_a_stage_command_line():
    from pipeline.training.platform import params_path
    assert params_path([]) == "params.yaml"
    assert params_path(["cityscapes", "--params", "p.yaml", "--out", "x"]) == "p.yaml"
    assert params_path(["--params=q.yaml"]) == "q.yaml"
    assert params_path(["--params"]) == "params.yaml"


def test_train_section_of_a_missing_bad_or_odd_params_file(tmp_path):
    from pipeline.training.platform import read_train_section
    assert read_train_section(str(tmp_path / "nope.yaml")) == {}
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    assert read_train_section(str(bad)) == {}
    odd = tmp_path / "odd.yaml"
    odd.write_text("- a list\n")
    assert read_train_section(str(odd)) == {}
    odd.write_text("train: 3\n")
    assert read_train_section(str(odd)) == {}
    good = tmp_path / "good.yaml"
    good.write_text("train:\n  portable: false\n  cpu_threads: 3\n")
    assert read_train_section(str(good)) == {"portable": False, "cpu_threads": 3}


def test_portable_setting_params_defaults_and_env_override():
    from pipeline.training.platform import portable_setting
    assert portable_setting({}, {}) == (True, 2, "default")
    assert portable_setting({"portable": False, "cpu_threads": 3}, {}) == (
        False, 3, "train.portable")
    assert portable_setting({"portable": True}, {}) == (True, 2, "train.portable")
    # a value of the wrong type is left to the params loader to reject
    assert portable_setting({"portable": "sometimes", "cpu_threads": "x"}, {}) == (
        True, 2, "default")
    assert portable_setting({"cpu_threads": 0}, {})[1] == 2
    assert portable_setting({"cpu_threads": True}, {})[1] == 2
    for value, expected in (("0", False), ("1", True), ("false", False), ("On", True),
                            (" no ", False), ("yes", True)):
        assert portable_setting({"portable": not expected}, {"MEXGAN_PORTABLE": value}) == (
            expected, 2, "MEXGAN_PORTABLE")
    assert portable_setting({"portable": False}, {"MEXGAN_PORTABLE": ""})[0] is False
    with pytest.raises(ValueError, match="MEXGAN_PORTABLE"):
        portable_setting({}, {"MEXGAN_PORTABLE": "maybe"})


def test_settings_from_a_params_file(tmp_path):
    from pipeline.training.platform import settings_from_argv
    params = tmp_path / "params.yaml"
    params.write_text("train:\n  portable: false\n  cpu_threads: 4\n")
    assert settings_from_argv(["--params", str(params)], {}) == (False, 4, "train.portable")
    assert settings_from_argv(["--params", str(params)], {"MEXGAN_PORTABLE": "1"}) == (
        True, 4, "MEXGAN_PORTABLE")
    assert settings_from_argv(["--params", str(tmp_path / "none.yaml")], {}) == (
        True, 2, "default")


def test_repository_params_are_portable_by_default():
    from pipeline.training.platform import read_train_section
    train = read_train_section(os.path.join(ROOT, "params.yaml"))
    assert train.get("portable", True) is True


def test_environment_of_each_mode():
    from pipeline.training.platform import PORTABLE_ENV, environment
    on, off = environment(True, 3), environment(False, 3)
    assert on["OMP_NUM_THREADS"] == on["MKL_NUM_THREADS"] == "3" == off["OMP_NUM_THREADS"]
    assert on["OPENBLAS_NUM_THREADS"] == "1" == off["OPENBLAS_NUM_THREADS"]
    assert {k: on[k] for k in PORTABLE_ENV} == PORTABLE_ENV
    assert not set(PORTABLE_ENV) & set(off)
    assert on["MKL_CBWR"] == "COMPATIBLE" and on["ATEN_CPU_CAPABILITY"] == "avx2"


def test_configure_after_numpy_is_refused(tmp_path):
    code = ("import numpy\nfrom pipeline.training import platform\nplatform.configure(True, 1)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_scrubbed_env({}),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "must be configured before numpy is imported" in done.stderr


def test_cpu_info_from_a_cpuinfo_file(tmp_path):
    from pipeline.training.platform import cpu_info
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Some Xeon\n"
                    "flags\t\t: fpu sse2 avx2 fma avx512f amx_tile\n\nprocessor\t: 1\n")
    info = cpu_info(str(path))
    assert info["model"] == "Some Xeon" and info["vendor"] == "GenuineIntel"
    assert info["flags"]["avx2"] and info["flags"]["avx512f"] and info["flags"]["amx_tile"]
    assert not info["flags"]["amx_bf16"]
    assert cpu_info(str(tmp_path / "none"))["flags"] == {}


def test_describe_is_the_platform_record():
    import torch

    from pipeline.training import platform
    record = platform.describe()
    for key in ("portable", "isa_used", "torch", "onednn_version", "onednn_enabled",
                "nnpack_enabled", "mkl_available", "mkl_version", "torch_threads", "env",
                "numpy", "numpy_simd", "numpy_openblas_core", "machine"):
        assert key in record, key
    for key in ("cpu_model", "cpu_vendor", "arch", "cpu_flags", "logical_cpus",
                "torch_interop_threads", "python", "portable_source", "outer_env",
                "overridden_env"):
        assert key in record["machine"], key
    assert record["torch"] == torch.__version__
    assert record["torch_threads"] == torch.get_num_threads()
    assert record["isa_used"] == torch.backends.cpu.get_cpu_capability()
    json.dumps(record)  # goes into reports/run_conditions.json
    # conftest.py configured this process from params.yaml
    portable = platform.read_train_section(os.path.join(ROOT, "params.yaml")).get(
        "portable", True)
    if os.environ.get("MEXGAN_PORTABLE", "").strip():
        portable = platform.parse_switch(os.environ["MEXGAN_PORTABLE"])
    assert record["portable"] is portable
    if portable:
        assert record["onednn_enabled"] is False
        assert record["env"]["ATEN_CPU_CAPABILITY"] == "avx2"
        if record["machine"]["cpu_flags"].get("avx2"):
            assert record["isa_used"] == "AVX2"


#---------------------------------------------------------------------------------------------
# The README's commands from a fresh shell (PATH without .venv/bin)

VENV_PYTHON = os.path.join(ROOT, ".venv", "bin", "python")


def _clean_env() -> dict:
    path = os.pathsep.join(p for p in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep)
                           if p and not os.path.realpath(p).startswith(
                               os.path.realpath(os.path.join(ROOT, ".venv"))))
    env = _scrubbed_env({})
    env["PATH"] = path or "/usr/bin:/bin"
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    for name in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES"):  # run under `make test`
        env.pop(name, None)
    return env


def _metrics_file(tmp_path):
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"row": {"tiou": 0.5, "hamm": 0.25}}))
    return str(metrics)


def _skip_without_venv():
    if not os.access(VENV_PYTHON, os.X_OK):
        pytest.skip("no .venv here (make demo / make test create it)")


def test_a_stage_started_by_a_python_without_the_requirements_runs_under_venv(tmp_path):
    """What `.venv/bin/dvc exp run` does from a shell without .venv activated: its stage
    commands `python -m stages...` find the system python, which lacks h5py, torch, ..."""
    _skip_without_venv()
    env = _clean_env()
    candidates = [shutil.which(name, path=env["PATH"]) for name in ("python", "python3")]
    bare = [p for p in candidates if p and subprocess.run(
        [p, "-c", "import torch, h5py"], capture_output=True, env=env).returncode != 0]
    if not bare:
        pytest.skip("every python on this PATH has the requirements: nothing to re-execute")
    metrics = _metrics_file(tmp_path)
    done = subprocess.run([bare[0], "-m", "stages.check_metrics", "--committed", metrics,
                           "--reproduced", metrics], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "metrics reproduced: all 2 values" in done.stdout
    assert "running" in done.stderr and ".venv/bin/python" in done.stderr


def test_documented_activation_from_a_fresh_shell(tmp_path):
    _skip_without_venv()
    metrics = _metrics_file(tmp_path)
    done = subprocess.run(
        ["bash", "-c", f". .venv/bin/activate && command -v dvc && python -m "
                       f"stages.check_metrics --committed {metrics} --reproduced {metrics}"],
        cwd=ROOT, env=_clean_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert os.path.join(".venv", "bin", "dvc") in done.stdout
    assert "metrics reproduced" in done.stdout


def test_make_targets_run_dvc_from_the_venv():
    _skip_without_venv()
    if shutil.which("make") is None:
        pytest.skip("no make")
    env = _clean_env()
    dry = subprocess.run(["make", "-n", "exp", "ARGS=-S q=8"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    line = next((l for l in dry.stdout.splitlines() if "dvc exp run" in l), dry.stdout)
    assert ".venv/bin/dvc exp run -S q=8" in line and f"{ROOT}/.venv/bin:" in line
    if subprocess.run(["make", "-q", ".venv/.installed"], cwd=ROOT, env=env).returncode != 0:
        pytest.skip(".venv/.installed is out of date: make would reinstall the requirements")
    done = subprocess.run(["make", "-s", "dvc", "ARGS=--version"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()[0].isdigit()


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    import stages  # noqa: F401 - pipeline.training.platform.configure from --params, as every stage
    argv = sys.argv[1:]
    steps = int(argv[argv.index("--steps") + 1]) if "--steps" in argv else STEPS
    print(json.dumps(child(steps, "--fid" in argv)))

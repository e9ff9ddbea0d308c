"""Unpack what the GPU study run (tools/gpu_study.sh) brought back from the device into this
checkout, ready to commit.

  python tools/unpack_gpu_study.py DIR [--reports reports] [--models artifacts/gpu_study]
                                       [--force]

DIR: the folder the `run` reply names as files_at (gpu_study_run.json, gpu_study.log and the
archives tools/gpu/pack.py wrote). Each archive is checked against the manifest's size and
sha256, then:
  study_gpu*.tar.gz       -> reports/study_gpu/ (paper profile), reports/study_gpu_authors/,
                             reports/study_gpu_twosm/: tools/study.sh's folder (summary.md with
                             its links pointed at the new folder and a header saying what ran
                             where), and run/ (params, dvc.lock, logs, every run's metrics)
  gpu_paper_smoke.tar.gz  -> reports/gpu_paper_smoke/
  gpu_models_*.tar        -> artifacts/gpu_study/models/<profile>/<row>/seed0/ (git-ignored;
                             fp16; tools/release_model.py releases one)
The manifest and the log go to reports/study_gpu/run/. A folder that exists is replaced only
with --force. Errors: one line, exit status 1.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tarfile
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools", "gpu"))

from pack import (LOG_NAME, MANIFEST, PROFILES, SMOKE_FOLDER, code_digest,  # noqa: E402
                  sha256)

FOLDERS = {target: (profile, folder) for profile, (folder, target) in PROFILES.items()}


class UnpackError(Exception):
    pass


def safe_members(tar: tarfile.TarFile, allowed_tops: set) -> list:
    members = []
    for member in tar.getmembers():
        name = member.name
        parts = name.split("/")
        if (name.startswith("/") or ".." in parts or not (member.isfile() or member.isdir())
                or parts[0] not in allowed_tops):
            raise UnpackError(f"{tar.name}: unexpected member {name!r}")
        members.append(member)
    return members


def header(manifest: dict, profile: str | None, local_digest: str) -> str:
    run = manifest.get("run", {})
    part = manifest.get("parts", {}).get(profile or "", {})
    same = ("the code of this checkout" if manifest.get("code_digest") == local_digest
            else f"code digest {manifest.get('code_digest')}, not this checkout's "
                 f"({local_digest})")
    calibration = manifest.get("calibration") or {}
    gpu = run.get("gpu", "none")
    lines = [f"> **GPU run** ({'no GPU' if gpu == 'none' else gpu}; `tools/gpu_study.sh`, "
             f"started {run.get('started_utc', '?')}, unpacked by "
             f"`tools/unpack_gpu_study.py`): source {run.get('source', 'unknown')} ({same})."]
    if profile:
        how = {"measured": "the share that fitted the 10-minute device call, measured by "
                           f"`tools/gpu/calibrate.py` "
                           f"({calibration.get('aggregate_steps_per_second', '?')} steps/s "
                           f"over {calibration.get('processes', '?')} runs side by side)",
               "fallback": "a fallback: the speed measurement failed",
               "given": "given (GPU_STUDY_FRACTION)",
               "smoke": "the smoke's"}.get(run.get("fraction_from"), "")
        lines.append(f"> Every run trained {part.get('epochs')} epochs: fraction "
                     f"{run.get('fraction')} of the CPU study's length"
                     f"{', ' + how if how else ''}; all runs at "
                     f"once, CUDA MPS {run.get('mps', '?')}; this profile's wall time "
                     f"{part.get('seconds', '?')} s.")
    if run.get("smoke") == "1":
        lines.append("> **CPU SMOKE** (GPU_STUDY_SMOKE=1): seed 0, 1 epoch, small maps: it "
                     "checks the code path, its numbers mean nothing.")
    return "\n".join(lines) + "\n\n"


def relink(text: str, source_folder: str, target: str) -> str:
    """tools/study.sh's summary links its own folder (`study/table1.md`): the GPU folder's."""
    return re.sub(rf"(?<=[\[(]){re.escape(source_folder)}/", f"{target}/", text)


def unpack(src: str, reports: str, models: str, force: bool = False) -> list:
    path = os.path.join(src, MANIFEST)
    if not os.path.exists(path):
        raise UnpackError(f"{path} does not exist: not the files of a GPU study run "
                          "(tools/gpu_study.sh)")
    with open(path) as f:
        manifest = json.load(f)
    local_digest = code_digest(ROOT)
    done = []
    for record in manifest.get("archives", []):
        archive = os.path.join(src, record["file"])
        if not os.path.exists(archive):
            raise UnpackError(f"{archive} is missing (the manifest lists it)")
        if os.path.getsize(archive) != record["bytes"] or sha256(archive) != record["sha256"]:
            raise UnpackError(f"{archive}: size or sha256 differs from the manifest's")
    for record in manifest.get("archives", []):
        archive = os.path.join(src, record["file"])
        with tarfile.open(archive) as tar, tempfile.TemporaryDirectory() as tmp:
            is_models = record["file"].startswith("gpu_models_")
            tops = {"models"} if is_models else {*FOLDERS, SMOKE_FOLDER}
            members = safe_members(tar, tops)
            tar.extractall(tmp, members=members)
            if is_models:
                for profile in os.listdir(os.path.join(tmp, "models")):
                    for item in os.listdir(os.path.join(tmp, "models", profile)):
                        dest = os.path.join(models, profile, item)
                        if os.path.exists(dest):
                            shutil.rmtree(dest)
                        os.makedirs(os.path.dirname(dest), exist_ok=True)
                        shutil.move(os.path.join(tmp, "models", profile, item), dest)
                        done.append(dest)
                continue
            for top in os.listdir(tmp):
                dest = os.path.join(reports, top)
                if os.path.exists(dest):
                    if not force:
                        raise UnpackError(f"{dest} exists: give --force to replace it")
                    shutil.rmtree(dest)
                shutil.move(os.path.join(tmp, top), dest)
                profile = FOLDERS.get(top, (None, None))[0]
                summary = os.path.join(dest, "summary.md")
                if profile and os.path.exists(summary):
                    with open(summary) as f:
                        text = f.read()
                    text = relink(text, PROFILES[profile][0], top)
                    if text.startswith("## CPU study"):   # tools/study.sh's title
                        text = "## GPU study" + text[len("## CPU study"):]
                    with open(summary, "w") as f:
                        f.write(header(manifest, profile, local_digest) + text)
                elif profile:
                    with open(os.path.join(dest, "README.md"), "w") as f:
                        f.write(f"# {top}: not finished\n\n" + header(manifest, profile,
                                                                        local_digest)
                                + "This profile did not finish within the device call "
                                "(exit " + str(manifest["parts"][profile].get("exit"))
                                + "): run/ holds its params, logs, every run's metrics and "
                                "the learning curves so far (run/train/).\n")
                done.append(dest)
    run_dir = os.path.join(reports, "study_gpu", "run")
    os.makedirs(run_dir, exist_ok=True)
    shutil.copy(path, os.path.join(run_dir, MANIFEST))
    if os.path.exists(os.path.join(src, LOG_NAME)):
        shutil.copy(os.path.join(src, LOG_NAME), os.path.join(run_dir, LOG_NAME))
    return done


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src", help="the run's files (the reply's files_at folder)")
    parser.add_argument("--reports", default=os.path.join(ROOT, "reports"))
    parser.add_argument("--models", default=os.path.join(ROOT, "artifacts", "gpu_study",
                                                         "models"))
    parser.add_argument("--force", action="store_true", help="replace existing folders")
    args = parser.parse_args(argv)
    try:
        done = unpack(args.src, args.reports, args.models, args.force)
    except (OSError, ValueError, KeyError, tarfile.TarError, UnpackError) as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 1
    with open(os.path.join(args.src, MANIFEST)) as f:
        manifest = json.load(f)
    for name, part in manifest.get("parts", {}).items():
        print(f"{name}: {'finished' if part.get('finished') else 'NOT finished'} "
              f"(exit {part.get('exit')}, {part.get('seconds')} s, epochs {part.get('epochs')})"
              f" -> {os.path.join(args.reports, part.get('folder', ''))}")
    for path in done:
        print(f"  {path}")
    for item in manifest.get("left_out", []):
        print(f"  left out on the device: {item}")
    same = manifest.get("code_digest") == code_digest(ROOT)
    print(f"code: {'this checkout' if same else 'DIFFERS from this checkout'} "
          f"(source {manifest.get('run', {}).get('source')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

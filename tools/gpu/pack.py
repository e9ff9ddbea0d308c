"""Pack what the GPU study run (tools/gpu_study.sh) leaves into the device's $OUT, within what
comes back from it: at most 8 files, each under 16 MiB, 64 MiB together, no folders.

  python tools/gpu/pack.py --stage STAGE --work WORK --out OUT

$OUT gets (gpu_study.log is already there, written as the run goes):
  gpu_study_run.json           the manifest: code, device, calibration, every part's status and
                               epochs, each archive's members, size and sha256, what was left out
  study_gpu.tar.gz             a study profile's results under study_gpu/ (paper profile),
  study_gpu_authors.tar.gz     study_gpu_authors/, study_gpu_twosm/: tools/study.sh's folder
  study_gpu_twosm.tar.gz       (summary.md, tables, curves, figures) when the profile finished,
                               and always run/: its params, dvc.lock, logs, every run's
                               metrics and train summary (and the learning curves so far and
                               whatever reports exist when it did not finish)
  gpu_paper_smoke.tar.gz       the paper-size smoke's reports/, params, dvc.lock, logs
  gpu_models_1.tar, _2.tar     seed 0 of every study row and the translators, fp16 weights
                               (models/<profile>/<row>/seed0/generator.pt, train_summary.json),
                               as many as fit

Priority when something does not fit: manifest, studies, smoke, then models (paper first).
tools/unpack_gpu_study.py puts it all back into reports/ and artifacts/.
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import io
import json
import os
import sys
import tarfile
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

MiB = 1024 * 1024
MAX_FILES = 8             # what comes back from $OUT (the device notes' limits)
MAX_FILE_BYTES = 16 * MiB
MAX_TOTAL_BYTES = 64 * MiB
MARGIN = MiB // 2         # kept free under each limit (tar headers, the log still growing)
LOG_NAME = "gpu_study.log"
MANIFEST = "gpu_study_run.json"
LOG_RESERVE = 2 * MiB     # room left for gpu_study.log in the total
LOG_TAIL = 256 * 1024     # a run's log kept: its last 256 KiB

# study profile -> (tools/study.sh's reports folder, the folder name the GPU results get)
PROFILES = {"paper": ("study", "study_gpu"),
            "authors": ("study_authors", "study_gpu_authors"),
            "twosm": ("study_twosm", "study_gpu_twosm")}
SMOKE_FOLDER = "gpu_paper_smoke"

# the files whose content is "the code that ran" (tools/unpack_gpu_study.py compares)
CODE_PATTERNS = ("pipeline/*.py", "pipeline/*/*.py", "stages/*.py", "dvc.yaml", "params_study.yaml",
                 "params_study_twosm.yaml", "params_paper.yaml", "tools/study.sh",
                 "tools/repro_parallel.py", "tools/stage_inputs.py", "tools/stage_deps.py",
                 "tools/gpu_study.sh",
                 "tools/gpu/*.py", "tools/gpu/*.sh")


def code_digest(root: str) -> str:
    digest = hashlib.sha256()
    for pattern in CODE_PATTERNS:
        for path in sorted(glob.glob(os.path.join(root, pattern))):
            digest.update(os.path.relpath(path, root).encode() + b"\0")
            with open(path, "rb") as f:
                digest.update(hashlib.sha256(f.read()).digest())
    return digest.hexdigest()[:16]


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_env(path: str) -> dict:
    """key=value lines (tools/gpu_study.sh's record of the run)."""
    found = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if "=" in line:
                    key, value = line.rstrip("\n").split("=", 1)
                    found[key.strip()] = value
    return found


def files_under(folder: str, patterns=("**/*",)) -> list:
    out = []
    for pattern in patterns:
        out += [p for p in glob.glob(os.path.join(folder, pattern), recursive=True)
                if os.path.isfile(p)]
    return sorted(set(out))


def tail_bytes(path: str, limit: int = LOG_TAIL) -> bytes:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - limit))
        data = f.read()
    return (b"[... the first %d bytes left out ...]\n" % (size - limit) + data
            if size > limit else data)


class Archive:
    """A tar(.gz) in OUT that stops taking members before it would pass `cap` bytes (each
    member counted at its full size: PNGs and weights do not compress)."""

    def __init__(self, path: str, cap: int, compress: bool):
        self.path, self.cap = path, cap
        self.raw = open(path, "wb")
        self.tar = tarfile.open(fileobj=self.raw, mode="w:gz" if compress else "w",
                                **({"compresslevel": 6} if compress else {}))
        self.members, self.skipped, self.planned = [], [], 0

    def fits(self, size: int) -> bool:
        return self.planned + size + 1024 <= self.cap

    def add_bytes(self, name: str, data: bytes) -> bool:
        if not self.fits(len(data)):
            self.skipped.append(name)
            return False
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
        self.tar.addfile(info, io.BytesIO(data))
        self.members.append(name)
        self.planned += len(data) + 1024
        return True

    def add_file(self, name: str, path: str, log: bool = False) -> bool:
        if log:
            return self.add_bytes(name, tail_bytes(path))
        size = os.path.getsize(path)
        if not self.fits(size):
            self.skipped.append(name)
            return False
        self.tar.add(path, arcname=name, recursive=False)
        self.members.append(name)
        self.planned += size + 1024
        return True

    def close(self) -> dict:
        self.tar.close()
        self.raw.close()
        return {"file": os.path.basename(self.path), "bytes": os.path.getsize(self.path),
                "sha256": sha256(self.path), "members": len(self.members),
                "skipped": self.skipped}


def study_members(profile: str, stage: str, work: str, env: dict) -> list:
    """(archive name, path, is_log) of one study profile, in priority order."""
    folder, target = PROFILES[profile]
    repo = os.path.join(work, "study", profile, "repo")
    results = os.path.join(stage, "reports", folder)
    finished = os.path.exists(os.path.join(results, "summary.md"))
    members = []
    if finished:
        members += [(f"{target}/{os.path.relpath(p, results)}", p, False)
                    for p in files_under(results)]
    run = f"{target}/run"
    members += run_members(run, repo, os.path.join(work, "logs", f"study_{profile}.log"),
                           "study.log")
    reports = os.path.join(repo, "reports")
    for path in files_under(os.path.join(reports, "train"), ("**/metrics.json",
                                                             "**/resources.json")):
        members.append((f"{run}/{os.path.relpath(path, reports)}", path, False))
    models = os.path.join(repo, "artifacts", "models")
    for path in files_under(models, ("*/train_summary.json", "*/*/train_summary.json")):
        members.append((f"{run}/models/{os.path.relpath(path, models)}", path, False))
    if not finished:   # what there is: the learning curves so far, the reports written
        for path in files_under(os.path.join(reports, "train"), ("**/*.tsv",)):
            members.append((f"{run}/{os.path.relpath(path, reports)}", path, False))
        for path in files_under(reports, ("*.md", "*.csv", "*.json")):
            members.append((f"{run}/reports/{os.path.basename(path)}", path, False))
        for path in files_under(reports, ("figures/*.png",)):
            members.append((f"{run}/reports/figures/{os.path.basename(path)}", path, False))
    return members


def run_members(prefix: str, repo: str, log: str, log_name: str) -> list:
    """(archive name, path, is_log) of a run's own record under `prefix`: its log (as
    `log_name`), its params.yaml and dvc.lock, and each training run's log
    (tools/repro_parallel.py)."""
    members = []
    if os.path.exists(log):
        members.append((f"{prefix}/{log_name}", log, True))
    for name in ("params.yaml", "dvc.lock"):
        if os.path.exists(os.path.join(repo, name)):
            members.append((f"{prefix}/{name}", os.path.join(repo, name), False))
    for path in files_under(os.path.join(repo, ".dvc", "tmp", "repro_parallel"), ("*.log",)):
        members.append((f"{prefix}/logs/{os.path.basename(path)}", path, True))
    return members


def smoke_members(work: str) -> list:
    repo = os.path.join(work, "paper256", "repo")
    members = run_members(SMOKE_FOLDER, repo, os.path.join(work, "logs", "paper256.log"),
                          "smoke.log")
    models = os.path.join(repo, "artifacts", "models")
    for path in files_under(models, ("*/train_summary.json", "*/*/train_summary.json")):
        members.append((f"{SMOKE_FOLDER}/models/{os.path.relpath(path, models)}", path, False))
    reports = os.path.join(repo, "reports")
    own = [p for p in files_under(reports)   # not the inputs paper_smoke.sh put there
           if not os.path.relpath(p, reports).startswith("study")
           and os.path.basename(p) != "real_eligible_boxes.json"]
    text = [p for p in own if not p.endswith(".png")]
    pictures = [p for p in own if p.endswith(".png")]
    members += [(f"{SMOKE_FOLDER}/reports/{os.path.relpath(p, reports)}", p, False)
                for p in text + pictures]
    return members


def model_files(work: str) -> list:
    """(archive name, generator.pt, its folder) of seed 0 of every study row, then the
    translators, the paper profile first."""
    import yaml
    found, translators = [], []
    for profile in PROFILES:
        repo = os.path.join(work, "study", profile, "repo")
        try:
            with open(os.path.join(repo, "params.yaml")) as f:
                raw = yaml.safe_load(f)
        except OSError:
            continue
        seed = raw["seeds"][0]
        rows = [name for group in ("baselines", "mex_rows", "twosm_rows")
                for name in (raw.get(group) or {})]
        for row in rows:
            folder = os.path.join(repo, "artifacts", "models", row, f"seed{seed}")
            if os.path.exists(os.path.join(folder, "generator.pt")):
                found.append((f"models/{profile}/{row}/seed{seed}", folder))
        for folder in sorted(glob.glob(os.path.join(repo, "artifacts", "models",
                                                    "translator-*"))):
            if os.path.exists(os.path.join(folder, "generator.pt")):
                translators.append((f"models/{profile}/{os.path.basename(folder)}", folder))
    # the paper profile's translator right after its rows: it is the one users edit with
    paper = [x for x in found if x[0].startswith("models/paper/")]
    rest = [x for x in found if not x[0].startswith("models/paper/")]
    return paper + translators[:1] + rest + translators[1:]


def half_model(path: str, dest: str) -> None:
    """The model file with its generator's floating-point weights in fp16 (as
    tools/release_model.py releases them; load_generator copies them into the fp32 network)."""
    import torch
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("generator"), dict):
        state = {**state, "generator": {k: v.half() if torch.is_floating_point(v) else v
                                        for k, v in state["generator"].items()}}
    torch.save(state, dest)


def pack(stage: str, work: str, out: str) -> dict:
    started = time.time()
    env = read_env(os.path.join(work, "run.env"))
    manifest = {"format": 1, "written_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "code_digest": code_digest(stage), "run": env, "archives": [],
                "left_out": [],
                "limits": {"files": MAX_FILES, "file_bytes": MAX_FILE_BYTES,
                           "total_bytes": MAX_TOTAL_BYTES}}
    calibration = os.path.join(work, "calibration.json")
    if os.path.exists(calibration):
        with open(calibration) as f:
            manifest["calibration"] = json.load(f)
    parts = {}
    for profile, (folder, target) in PROFILES.items():
        repo = os.path.join(work, "study", profile, "repo")
        epochs = None
        try:
            import yaml
            with open(os.path.join(repo, "params.yaml")) as f:
                epochs = yaml.safe_load(f)["train"]["epochs"]
        except (OSError, KeyError, TypeError):
            pass
        parts[profile] = {"folder": target, "epochs": epochs,
                          "finished": os.path.exists(os.path.join(stage, "reports", folder,
                                                                  "summary.md")),
                          "exit": env.get(f"part.{profile}.rc"),
                          "seconds": env.get(f"part.{profile}.seconds")}
    smoke_repo = os.path.join(work, "paper256", "repo")
    parts["paper256"] = {"folder": SMOKE_FOLDER, "exit": env.get("part.paper256.rc"),
                         "seconds": env.get("part.paper256.seconds"),
                         "finished": os.path.exists(os.path.join(smoke_repo, "reports",
                                                                 "README.md"))
                         and env.get("part.paper256.rc") == "0"}
    manifest["parts"] = parts

    def write_manifest():
        tmp = os.path.join(out, MANIFEST + ".tmp")
        with open(tmp, "w") as f:
            json.dump(manifest, f, indent=1)
        os.replace(tmp, os.path.join(out, MANIFEST))
    write_manifest()   # first: whatever happens next, the record is there

    log_path = os.path.join(out, LOG_NAME)
    used_files = 2     # the log and the manifest
    used_bytes = LOG_RESERVE + 256 * 1024
    cap = MAX_FILE_BYTES - MARGIN

    def room() -> int:
        return min(cap, MAX_TOTAL_BYTES - MARGIN - used_bytes)

    groups = [(f"{target}.tar.gz", study_members(profile, stage, work, env))
              for profile, (_, target) in PROFILES.items()]
    groups.append((f"{SMOKE_FOLDER}.tar.gz", smoke_members(work)))
    for name, members in groups:
        if not members:
            continue
        if used_files >= MAX_FILES or room() < 64 * 1024:
            manifest["left_out"].append(name)
            continue
        archive = Archive(os.path.join(out, name), room(), compress=True)
        for member, path, is_log in members:
            try:
                archive.add_file(member, path, log=is_log)
            except OSError as err:
                archive.skipped.append(f"{member} ({err})")
        record = archive.close()
        used_files += 1
        used_bytes += record["bytes"]
        manifest["archives"].append(record)
        write_manifest()

    # models: fp16 copies, first fit into the files left
    models = model_files(work)
    bins = []
    with tempfile.TemporaryDirectory() as tmp:
        for member, folder in models:
            half = os.path.join(tmp, member.replace("/", "_") + ".pt")
            try:
                half_model(os.path.join(folder, "generator.pt"), half)
            except Exception as err:  # noqa: BLE001 - one bad file leaves the others
                manifest["left_out"].append(f"{member} ({type(err).__name__}: {err})")
                continue
            extra = [os.path.join(folder, n) for n in ("train_summary.json", "origin.json")
                     if os.path.exists(os.path.join(folder, n))]
            size = os.path.getsize(half) + sum(os.path.getsize(p) for p in extra) + 4096
            target = next((b for b in bins if b.fits(size)), None)
            if target is None and used_files < MAX_FILES and room() >= size + 4096:
                target = Archive(os.path.join(out, f"gpu_models_{len(bins) + 1}.tar"),
                                 room(), compress=False)
                bins.append(target)
                used_files += 1
                used_bytes += target.cap   # reserved until closed
            if target is None:
                manifest["left_out"].append(member)
                continue
            target.add_file(f"{member}/generator.pt", half)
            for path in extra:
                target.add_file(f"{member}/{os.path.basename(path)}", path)
        for archive in bins:
            used_bytes -= archive.cap
            record = archive.close()
            used_bytes += record["bytes"]
            manifest["archives"].append(record)
    manifest["pack_seconds"] = round(time.time() - started, 1)
    if os.path.exists(log_path) and os.path.getsize(log_path) > LOG_RESERVE:
        manifest["left_out"].append(f"{LOG_NAME}: over {LOG_RESERVE} bytes, cut to its end")
        data = tail_bytes(log_path, LOG_RESERVE - 4096)
        with open(log_path, "wb") as f:
            f.write(data)
    write_manifest()
    return manifest


def check_out(out: str) -> list:
    """What in OUT breaks the limits on what comes back (an empty list: nothing)."""
    problems, total = [], 0
    entries = []
    for dirpath, dirnames, filenames in os.walk(out):
        depth = os.path.relpath(dirpath, out).count(os.sep) + (dirpath != out)
        for name in filenames:
            entries.append((os.path.join(dirpath, name), depth))
    if len(entries) > MAX_FILES:
        problems.append(f"{len(entries)} files (at most {MAX_FILES})")
    for path, depth in entries:
        size = os.path.getsize(path)
        total += size
        if size > MAX_FILE_BYTES:
            problems.append(f"{path}: {size} bytes (at most {MAX_FILE_BYTES})")
        if depth > 2:
            problems.append(f"{path}: more than 2 folders down")
        if not all(c.isalnum() or c in "._-" for c in os.path.basename(path)):
            problems.append(f"{path}: a name with other characters than letters, digits, ._-")
    if total > MAX_TOTAL_BYTES:
        problems.append(f"{total} bytes in all (at most {MAX_TOTAL_BYTES})")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", required=True, help="the run's staging checkout")
    parser.add_argument("--work", required=True, help="the run's work folder")
    parser.add_argument("--out", required=True, help="the device's $OUT")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    manifest = pack(args.stage, args.work, args.out)
    for record in manifest["archives"]:
        print(f"  {record['file']}: {record['bytes'] / MiB:.1f} MiB, {record['members']} "
              f"files" + (f", {len(record['skipped'])} left out" if record["skipped"] else ""))
    for item in manifest["left_out"]:
        print(f"  left out: {item}")
    problems = check_out(args.out)
    for problem in problems:
        print(f"error: $OUT: {problem}", file=sys.stderr)
    print(f"== packed in {manifest['pack_seconds']} s")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

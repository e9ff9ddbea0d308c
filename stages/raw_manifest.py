"""Record what is in the raw-data folder (name, size, mtime) so that `prepare` reruns when the
user adds or replaces archives, while the synthetic default never needs the folder.

  python -m stages.raw_manifest --out artifacts/raw_manifest.json
"""
import argparse
import os

from pipeline.atomic import write_json_atomic
from pipeline.config.loading import load_params
from pipeline.config.sections import data_sources
from stages.common import run


def manifest(raw_dir: str) -> list:
    entries = []
    for root, _dirs, files in os.walk(raw_dir):
        for name in files:
            path = os.path.join(root, name)
            stat = os.stat(path)
            entries.append([os.path.relpath(path, raw_dir), stat.st_size, int(stat.st_mtime)])
    return sorted(entries)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    params = load_params(args.params)
    data = {"source": params.data.source}
    # Synthetic runs must not depend on the folder at all; it is listed when any dataset's
    # source (data.sources.<name>, else data.source) is real. Which dataset is real is the
    # prepare stages' own param (data), not part of this file.
    if "real" in data_sources(params).values():
        data["raw_dir"] = params.data.raw_dir
        data["files"] = manifest(params.data.raw_dir) if os.path.isdir(params.data.raw_dir) else []
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    write_json_atomic(args.out, data, indent=1)


if __name__ == "__main__":
    run(main)

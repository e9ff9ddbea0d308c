"""Fingerprint the code every stage of dvc.yaml runs: the repository files its command imports,
transitively (read with `ast`, tools/stage_deps.py), each with its SHA-256, one file per stage
(artifacts/code/<stage>.json). Each stage depends on its own file, so it reruns exactly when a
file it imports changes. Reruns with every `dvc repro`; costs about a second.

  python -m stages.code_hashes --out artifacts/code
"""
import os

from pipeline.atomic import write_json_atomic
from stages.common import ArgumentParser, run
from tools.stage_deps import fingerprints


def main():
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    found = fingerprints(os.getcwd())
    os.makedirs(args.out, exist_ok=True)
    for group, files in found.items():
        write_json_atomic(os.path.join(args.out, f"{group}.json"), files, indent=1)
    for name in os.listdir(args.out):  # a stage removed from dvc.yaml leaves no stale file
        if name.endswith(".json") and name[:-len(".json")] not in found:
            os.remove(os.path.join(args.out, name))
    print(f"the code of {len(found)} stages -> {args.out}")


if __name__ == "__main__":
    run(main)

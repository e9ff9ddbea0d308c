"""What `dvc repro` in a repository would miss, found before it starts (DVC itself reports a
missing param or input only when it reaches that stage). Used by tools/study.sh on its scratch
copy: python tools/stage_inputs.py LABEL  (exit 1 and one `error:` line per missing input)."""
import os
import sys


def missing_stage_inputs(repo_dir: str = ".") -> list:
    """`stage: key` for every param that a stage of dvc.yaml declares and params.yaml lacks,
    and `stage: path (no stage writes it)` for every dependency that neither exists nor is (in)
    an output of a stage."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo
    with Repo(repo_dir) as repo:
        stages = list(repo.index.stages)
        outputs = [out.fs_path for stage in stages for out in stage.outs]
        missing = []
        for stage in stages:
            for dep in stage.deps:
                if isinstance(dep, ParamsDependency):
                    found = dep.read_params()
                    missing += [f"{stage.addressing}: {key}" for key in dep.params
                                if key not in found]
                elif not os.path.exists(dep.fs_path) and not any(
                        dep.fs_path == out or dep.fs_path.startswith(out + os.sep)
                        or out.startswith(dep.fs_path + os.sep) for out in outputs):
                    missing.append(f"{stage.addressing}: "
                                   f"{os.path.relpath(dep.fs_path, repo.root_dir)} "
                                   "(no stage writes it)")
        return missing


if __name__ == "__main__":
    label = sys.argv[1] if len(sys.argv) > 1 else "params.yaml"
    problems = missing_stage_inputs(".")
    for problem in problems:
        print(f"error: the study ({label}) lacks an input of a stage: {problem}",
              file=sys.stderr)
    sys.exit(1 if problems else 0)

#!/usr/bin/env bash
# The paper-size smoke of tools/gpu_study.sh: the whole pipeline, every stage, on a params file
# derived from params_paper.yaml (tools/gpu/params.py paper-smoke: the paper's sizes and
# networks, synthetic data, seed 0, a few hundred steps per training stage), in a scratch copy
# of ROOT's tree as tools/study.sh makes one; the training runs JOBS at a time
# (tools/repro_parallel.py), then `dvc repro` for the rest.
#   tools/gpu/paper_smoke.sh ROOT PARAMS WORK [JOBS]
# ROOT: a git checkout (tools/gpu_study.sh's staging copy); PARAMS: relative to ROOT; the copy
# is WORK/repo. Resumable like the study: run it again on the same WORK to continue.
set -euo pipefail
ROOT=$(cd "$1" && pwd); PARAMS=$2; WORK=$3; JOBS=${4:-2}
REPO=$WORK/repo
mkdir -p "$REPO"
(cd "$ROOT" && git ls-files -co --exclude-standard -z | grep -zv '^reports/' | \
  xargs -0 cp --parents -t "$REPO")
cp "$ROOT/$PARAMS" "$REPO/params.yaml"
cd "$REPO"
if [ ! -d .git ]; then
  git init -q && git config user.email smoke@localhost && git config user.name smoke
fi
# the reports a stage reads and no stage writes: the studies' summaries (placeholders, as
# tools/study.sh writes them) and the others from ROOT (real_eligible_boxes.json)
python - "$ROOT" <<'EOF'
import fnmatch, os, shutil, sys
sys.path.insert(0, os.path.join(sys.argv[1], "tools"))
from stage_inputs import missing_stage_inputs
for problem in missing_stage_inputs("."):
    path = problem.split(": ", 1)[1].replace(" (no stage writes it)", "")
    if not path.startswith("reports/"):
        continue
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if fnmatch.fnmatch(path, "reports/study*/summary.md"):
        with open(path, "w") as f:
            f.write("## GPU smoke\n\nA placeholder: the paper-size smoke runs no study.\n")
    elif os.path.isfile(os.path.join(sys.argv[1], path)):
        shutil.copy(os.path.join(sys.argv[1], path), path)
EOF
git add -A && git commit -qm "paper-size smoke" --allow-empty
python "$ROOT/tools/stage_inputs.py" "$PARAMS"
echo "== paper-size smoke: dvc repro in $REPO ($PARAMS, $JOBS training run(s) at a time)"
started=$SECONDS
python "$ROOT/tools/repro_parallel.py" --jobs "$JOBS"
echo "== paper-size smoke done in $((SECONDS - started)) s"

#!/usr/bin/env bash
# `make study`: the CPU study profile. Runs the real pipeline (`dvc repro`) with
# params_study.yaml in a scratch copy of this working tree (tracked and untracked, not ignored
# files), then copies its results to reports/study/ and writes reports/study/summary.md, the
# section the main report shows. Nothing is committed; the checkout's artifacts are untouched.
#   make study              the full study (about an hour on 2 CPU cores)
#   make study DRY=1        validate params_study.yaml (every param a stage reads) and list the
#                           stages it would run (seconds)
#   STUDY_WORK=DIR          keep the scratch copy in DIR (resumable: rerun to continue)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PARAMS=${STUDY_PARAMS:-params_study.yaml}
export PATH="$ROOT/.venv/bin:$PATH"
[ -f "$PARAMS" ] || { echo "error: $PARAMS does not exist" >&2; exit 1; }
python -c "import sys; from pipeline.config import load_params; load_params(sys.argv[1])" \
  "$PARAMS" || exit 1

WORK=${STUDY_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/mexgan-study.XXXXXX")}
mkdir -p "$WORK/repo"
# the tree without its reports, except the one a stage reads (the real data's eligible boxes)
git ls-files -co --exclude-standard -z | grep -zv '^reports/' | \
  (cd "$ROOT" && xargs -0 cp --parents -t "$WORK/repo")
[ -f reports/real_eligible_boxes.json ] && cp --parents reports/real_eligible_boxes.json "$WORK/repo"
cp "$PARAMS" "$WORK/repo/params.yaml"
cd "$WORK/repo"
if [ ! -d .git ]; then
  git init -q && git config user.email study@localhost && git config user.name study
fi
mkdir -p reports/study
printf '## CPU study\n\nThis report is the study run itself; its answer is summary.md.\n' \
  > reports/study/summary.md
git add -A && git commit -qm "study" --allow-empty
python "$ROOT/tools/stage_inputs.py" "$PARAMS" || exit 1
if [ "${DRY:-0}" = 1 ]; then
  echo "== dry run of the study in $WORK/repo ($PARAMS)"
  dvc stage list --name-only | sed "s/^/would run /"
  [ -z "${STUDY_WORK:-}" ] && rm -rf "$WORK"
  exit 0
fi
echo "== study: dvc repro in $WORK/repo ($PARAMS)"
started=$SECONDS
dvc repro
seconds=$((SECONDS - started))
OUT="$ROOT/reports/study"
rm -rf "$OUT.tmp" && mkdir -p "$OUT.tmp/figures"
cp reports/metrics.json reports/scores.csv reports/run_conditions.json reports/table1.md \
  reports/table1.csv reports/differences.md reports/differences.csv "$OUT.tmp/"
cp reports/figures/metric_curves_*.png "$OUT.tmp/figures/"
cp params.yaml "$OUT.tmp/params.yaml"
source="$(git -C "$ROOT" rev-parse --short HEAD)"
[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no)" ] && source="$source + uncommitted changes"
python -m stages.study_summary --reports reports --out "$OUT.tmp" --wall-seconds "$seconds" \
  --source "$source"
rm -rf "$OUT" && mv "$OUT.tmp" "$OUT"
echo "== study done in $((seconds / 60)) min: $OUT/summary.md"
[ -z "${STUDY_WORK:-}" ] && rm -rf "$WORK"
exit 0

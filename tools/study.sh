#!/usr/bin/env bash
# `make study`: the CPU convergence study. Runs the real pipeline (`dvc repro`) with
# params_study.yaml, once per training profile (`paper`, `authors`: the top-level `profile`
# set in the copy), each in a scratch copy of this working tree (tracked and untracked, not
# ignored files) under .study/<profile>, the two profiles side by side (one run per CPU core).
# Then copies each one's results to reports/study/ (paper) or reports/study_authors/ and writes
# its summary.md. Nothing is committed; the checkout's artifacts are untouched.
#   make study              paper and authors side by side (about 110 min on 2 CPU cores), then
#                           twosm (Table 2, params_study_twosm.yaml) and gl (Table 3,
#                           params_study_gl.yaml), two runs at a time
#   make study PROFILE=paper   one profile (study.sh paper | authors | twosm | gl | real |
#                           real_mex: the real study's +MEx/+A-MEx rows | real_colour: its
#                           Pix2PixHD and MExGAN rows); JOBS=N runs
#                           N of its training runs at a time (default: 2 for twosm and gl, else 1)
#   make study DRY=1        validate params_study.yaml (every param a stage reads) and list the
#                           stages it would run (seconds)
#   make study FINISH=1     only the last step on finished scratch copies: copy the results and
#                           rewrite summary.md with this checkout's code (no training);
#                           STUDY_SOURCE="..." says which code trained them; PREVIOUS=DIR
#                           (PREVIOUS_NAME="...") sets an earlier run's answers beside these;
#                           several runs: PREVIOUS=DIR1:DIR2 PREVIOUS_NAME="NAME1;NAME2"
#   make study STATUS=1     how far the study's scratch copies have got: each training run done,
#                           at which epoch of how many, or not started (reads files only)
#   resumable: stop it anywhere (Ctrl-C, a lost session) and rerun the same command; finished
#   runs are kept and an unfinished one continues from its last epoch's checkpoint, as long as
#   the code and params are unchanged. STUDY_WORK=DIR puts the scratch copies elsewhere.
set -euo pipefail
cd "${STUDY_ROOT:-$(dirname "$0")/..}"
ROOT=$PWD
PARAMS=${STUDY_PARAMS:-params_study.yaml}
export PATH="$ROOT/.venv/bin:$PATH"
PROFILE=${1:-all}
if [ -z "${STUDY_SCRIPT_COPY:-}" ]; then
  # bash reads a script as it runs it: run a private copy, so the checkout's study.sh can be
  # edited (or checked out at another commit) while a study runs
  SCRIPT=$(mktemp "${TMPDIR:-/tmp}/mexgan-study-script.XXXXXX")
  cp "$0" "$SCRIPT"
  status=0
  STUDY_SCRIPT_COPY=$SCRIPT STUDY_ROOT=$ROOT bash "$SCRIPT" "$@" || status=$?
  rm -f "$SCRIPT"
  exit $status
fi
SCRIPT=$STUDY_SCRIPT_COPY
if [ "$PROFILE" = all ] && [ "${STATUS:-0}" = 1 ]; then
  for one in paper authors twosm gl; do bash "$SCRIPT" "$one" || true; done
  exit 0
fi
if [ "$PROFILE" = all ]; then
  # paper and authors side by side, each in its own process (one training run per core), then
  # twosm with two runs at a time
  pids=()
  for one in paper authors; do
    # a copy of this script runs: editing study.sh during a study cannot derail it
    bash "$SCRIPT" "$one" > >(sed -u "s/^/[$one] /") 2>&1 &
    pids+=($!)
  done
  status=0
  for pid in "${pids[@]}"; do wait "$pid" || status=1; done
  for one in twosm gl; do
    bash "$SCRIPT" "$one" > >(sed -u "s/^/[$one] /") 2>&1 || status=1
  done
  exit $status
fi
REFERENCE=""
TARGETS=""   # the stages a profile reproduces (default: every stage)
# a study profile: its params file, the training profile set in it, its reports folder
# and how many of its training runs run at a time (JOBS=N overrides; tools/repro_parallel.py)
case "$PROFILE" in
  paper) OUT="$ROOT/reports/study"; TRAINING=paper; JOBS=${JOBS:-1} ;;
  authors) OUT="$ROOT/reports/study_authors"; TRAINING=authors; JOBS=${JOBS:-1} ;;
  gl) OUT="$ROOT/reports/study_gl"; TRAINING=paper; JOBS=${JOBS:-2}
    PARAMS=${STUDY_GL_PARAMS:-params_study_gl.yaml}
    TARGETS=evaluate_inpainting ;;   # Table 3 only: no segmentation row in this study
  twosm) OUT="$ROOT/reports/study_twosm"; TRAINING=paper; JOBS=${JOBS:-2}
    PARAMS=${STUDY_TWOSM_PARAMS:-params_study_twosm.yaml}
    # the colour rows of the paper profile, on the same test boxes, beside the TwoSM rows
    [ -f "$ROOT/reports/study/scores.csv" ] && REFERENCE="$ROOT/reports/study" ;;
  real) OUT="$ROOT/reports/study_real"; TRAINING=paper; JOBS=${JOBS:-2}
    # Table 2's rows on real Cityscapes label maps (the video frames of ../shared/data)
    PARAMS=${STUDY_REAL_PARAMS:-params_study_real.yaml} ;;
  real_mex) OUT="$ROOT/reports/study_real_mex"; TRAINING=paper; JOBS=${JOBS:-2}
    # the real study's +MEx / +A-MEx rows, beside the first sitting's rows on the same boxes
    PARAMS=${STUDY_REAL_MEX_PARAMS:-params_study_real_mex.yaml}
    [ -f "$ROOT/reports/study_real/scores.csv" ] && REFERENCE="$ROOT/reports/study_real" ;;
  real_colour) OUT="$ROOT/reports/study_real_colour"; TRAINING=paper; JOBS=${JOBS:-2}
    # the real study's colour rows (Pix2PixHD, MExGAN): Table 1's question on real maps
    PARAMS=${STUDY_REAL_COLOUR_PARAMS:-params_study_real_colour.yaml} ;;
  *) echo "error: study profile $PROFILE: paper, authors, twosm, gl, real, real_mex, real_colour or all" >&2
    exit 1 ;;
esac
[ -f "$PARAMS" ] || { echo "error: $PARAMS does not exist" >&2; exit 1; }
if [ -n "${PREVIOUS:-}" ]; then   # checked before any training: the summary is written last
  study_files="differences.csv metrics.json scores.csv params.yaml"
  [ "$PROFILE" = gl ] && study_files="inpainting_metrics.json inpainting_scores.csv params.yaml"
  IFS=: read -ra earlier <<< "$PREVIOUS"
  for folder in "${earlier[@]}"; do
    for file in $study_files; do
      [ -f "$folder/$file" ] || { echo "error: PREVIOUS: $folder/$file does not exist" >&2; exit 1; }
    done
  done
fi
python -c "import sys; from pipeline.config.loading import load_params; load_params(sys.argv[1])" \
  "$PARAMS" || exit 1
if [ -z "$TARGETS" ]; then  # the huev stage runs too: its rows must be rows the study trains
  python -c "import sys; from pipeline.config.loading import load_params
from pipeline.config.validation import check_huev_rows
try: check_huev_rows(load_params(sys.argv[1]))
except ValueError as err: sys.exit(f'error: {sys.argv[1]}: {err}')" "$PARAMS" || exit 1
fi

if [ "${DRY:-0}" = 1 ] && [ -z "${STUDY_WORK:-}" ]; then
  # a dry run never touches the scratch copies a running or stopped study resumes from
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/mexgan-study-dry.XXXXXX")/$PROFILE
  trap 'rm -rf "$(dirname "$WORK")"' EXIT
else
  WORK=${STUDY_WORK:-$ROOT/.study}/$PROFILE
fi
if [ "${STATUS:-0}" = 1 ]; then   # files only: safe beside the running study
  [ -f "$WORK/repo/params.yaml" ] || { echo "error: $WORK/repo/params.yaml does not exist: no" \
    "$PROFILE study has started there (STUDY_WORK=DIR names another place)" >&2; exit 1; }
  echo "== study $PROFILE in $WORK/repo"
  python "$ROOT/tools/study_status.py" "$WORK/repo"
  exit $?
fi
finish() {  # copy a finished study's results to $OUT and write its summary (in $WORK/repo)
  local seconds=$1
  rm -rf "$OUT.tmp" && mkdir -p "$OUT.tmp/figures"
  if [ "$PROFILE" = gl ]; then   # Table 3's files (no report stage: the summary has the table)
    cp reports/inpainting_metrics.json reports/inpainting_scores.csv \
      reports/inpainting_run_conditions.json "$OUT.tmp/"
  else
    cp reports/metrics.json reports/scores.csv reports/run_conditions.json reports/table1.md \
      reports/table1.csv reports/differences.md reports/differences.csv "$OUT.tmp/"
    case "$PROFILE" in twosm|real|real_mex) cp reports/table2.md reports/table2.csv "$OUT.tmp/" ;; esac
    cp reports/figures/metric_curves_*.png "$OUT.tmp/figures/"
    # picture grids of real maps stay out of the repository (Cityscapes' terms)
    case "$PROFILE" in real|real_mex|real_colour) ;; *) cp reports/figures/grid_*.png "$OUT.tmp/figures/" ;; esac
  fi
  # the learning curves (dvclive's eval/ and loss series) of every run, for the flatness check
  (cd reports && find train -path '*/plots/metrics/*' -name '*.tsv' -print0 | \
    xargs -0 cp --parents -t "$OUT.tmp/")
  cp params.yaml "$OUT.tmp/params.yaml"
  local previous=() dirs=() names=() i
  if [ -n "${PREVIOUS:-}" ]; then   # earlier runs, ':'-separated; their names ';'-separated
    IFS=: read -ra dirs <<< "$PREVIOUS"
    IFS=';' read -ra names <<< "${PREVIOUS_NAME:-}"
    for i in "${!dirs[@]}"; do
      previous+=(--previous "${dirs[$i]}" --previous-name "${names[$i]:-${dirs[$i]}}")
    done
  fi
  local source=${STUDY_SOURCE:-}  # FINISH=1 after a code change: say which code trained
  if [ -z "$source" ]; then
    source="$(git -C "$ROOT" rev-parse --short HEAD)"
    [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no)" ] && \
      source="$source + uncommitted changes"
  fi
  # this checkout's summary code, on the study's own reports, params and models
  (cd "$ROOT" && python -m stages.study_summary --reports "$WORK/repo/reports" \
    --params "$WORK/repo/params.yaml" --out "$OUT.tmp" --wall-seconds "$seconds" \
    --source "$source" --folder "$(basename "$OUT")" --models "$WORK/repo/artifacts/models" \
    --data "$WORK/repo/artifacts/data" --params-file "$(basename "$PARAMS")" \
    ${REFERENCE:+--reference "$REFERENCE"} \
    ${previous[@]+"${previous[@]}"})
  rm -rf "$OUT" && mv "$OUT.tmp" "$OUT"
  echo "== study results: $OUT/summary.md"
}
if [ "${FINISH:-0}" = 1 ]; then
  done_file=reports/metrics.json
  [ "$PROFILE" = gl ] && done_file=reports/inpainting_metrics.json
  [ -f "$WORK/repo/$done_file" ] || {
    echo "error: $WORK/repo/$done_file does not exist: run the study first" >&2
    exit 1; }
  cd "$WORK/repo"
  finish "$(cat reports/study_wall_seconds 2>/dev/null || echo 0)"
  exit 0
fi
mkdir -p "$WORK/repo"
# params name real data as ../shared/...: the copy sees the checkout's ../shared there
[ -e "$ROOT/../shared" ] && [ ! -e "$WORK/shared" ] && ln -s "$(cd "$ROOT/../shared" && pwd)" "$WORK/shared"
# the tree without its reports, except those a stage reads (real data's eligible boxes, map
# statistics, the committed real-map scores)
git ls-files -co --exclude-standard -z | grep -zv '^reports/' | \
  (cd "$ROOT" && xargs -0 cp --parents -t "$WORK/repo")
for input in reports/real_eligible_boxes.json reports/world_statistics.json \
    reports/real_maps.md; do
  [ -f "$input" ] && cp --parents "$input" "$WORK/repo"
done
sed -E "s/^profile: [A-Za-z0-9_-]+/profile: $TRAINING/" "$PARAMS" > "$WORK/repo/params.yaml"
python -c "import sys; from pipeline.config.loading import load_params
assert load_params(sys.argv[1]).profile == sys.argv[2], 'profile not set'" \
  "$WORK/repo/params.yaml" "$TRAINING" || exit 1
cd "$WORK/repo"
if [ ! -d .git ]; then
  git init -q && git config user.email study@localhost && git config user.name study
fi
mkdir -p reports/study reports/study_authors reports/study_twosm reports/study_gl \
  reports/study_real reports/study_real_mex reports/study_real_colour
for summary in reports/study/summary.md reports/study_authors/summary.md \
    reports/study_twosm/summary.md reports/study_gl/summary.md reports/study_real/summary.md; do
  printf '## CPU study\n\nThis report is the study run itself; its answer is summary.md.\n' \
    > "$summary"
done
git add -A && git commit -qm "study" --allow-empty
python "$ROOT/tools/stage_inputs.py" "$PARAMS" || exit 1
if [ "${DRY:-0}" = 1 ]; then
  echo "== dry run of the study in $WORK/repo ($PARAMS)"
  dvc stage list --name-only | sed "s/^/would run /"
  exit 0
fi
echo "== study: dvc repro in $WORK/repo ($PARAMS, $JOBS training run(s) at a time)"
started=$SECONDS
if [ "$JOBS" -gt 1 ]; then
  python "$ROOT/tools/repro_parallel.py" --jobs "$JOBS" $TARGETS
else
  dvc repro $TARGETS
fi
seconds=$((SECONDS - started))
echo "$seconds" > reports/study_wall_seconds
finish "$seconds"
echo "== study done in $((seconds / 60)) min"
exit 0

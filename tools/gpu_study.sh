#!/usr/bin/env bash
# The convergence study on one GPU machine in one call (issue 22's GPU route; docs/study.md
# "On a GPU", docs/gpu-and-benchmark.md "The study on a GPU"): the real pipeline (tools/study.sh)
# for its three profiles -- paper, authors (params_study.yaml) and twosm
# (params_study_twosm.yaml), every row x 3 seeds at 64x32, all 30 training runs at once on the
# GPU, one CPU thread each (tools/repro_parallel.py) -- and beside it a paper-size smoke:
# params_paper.yaml at 256x128 (and NYU, Helen, Facade at theirs) through every stage, a few
# hundred steps per training stage (tools/gpu/paper_smoke.sh). Everything is packed into $OUT
# within what comes back from the device (tools/gpu/pack.py); tools/unpack_gpu_study.py puts it
# into reports/study_gpu*/ and reports/gpu_paper_smoke/ here.
#
#   make gpu-study-wheels            here, once: the wheels the device lacks, into .whl/
#   bash tools/gpu_study.sh          on the device: the `run` call (carry .whl); see the docs
#   GPU_STUDY_SMOKE=1 bash tools/gpu_study.sh   on a CPU: the same code path in minutes (seed 0,
#                                    1 epoch, small maps and networks; OUT defaults to
#                                    /tmp/mexgan-gpu-study-out)
#
# Time. One call may run 10 minutes. After setup the script measures, for a few seconds, how
# fast all 30 runs train side by side (tools/gpu/calibrate.py) and scales every run's epochs by
# the fraction that ends by GPU_STUDY_PLAN seconds (default 490, evaluation and summaries
# included; GPU_STUDY_FRACTION=F skips the measurement, 1 = the CPU study's full length). Every
# part runs under `timeout`: at GPU_STUDY_DEADLINE seconds (default 550) whatever still runs is
# stopped (the training runs are resumable) and what exists is packed.
#
# Other settings: GPU_STUDY_MPS=auto|0|1 (CUDA MPS: the runs' kernels share the GPU instead of
# taking turns; auto uses it when its daemon starts and a CUDA program runs under it),
# GPU_STUDY_POST (s kept for evaluation and summaries after training, default 150),
# GPU_STUDY_JOBS (training runs at a time per profile), GPU_STUDY_WORK (scratch, default
# /tmp/mexgan-gpu-study, emptied first), GPU_STUDY_PYTHON.
{   # the whole script is read before it runs: editing this file cannot derail a run
set -uo pipefail
T0=$SECONDS
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SMOKE=${GPU_STUDY_SMOKE:-0}
OUT=${OUT:-/tmp/mexgan-gpu-study-out}
WORK=${GPU_STUDY_WORK:-/tmp/mexgan-gpu-study}
if [ "$SMOKE" = 1 ]; then
  PLAN=${GPU_STUDY_PLAN:-2400}; HARD=${GPU_STUDY_DEADLINE:-2700}
else
  PLAN=${GPU_STUDY_PLAN:-490}; HARD=${GPU_STUDY_DEADLINE:-550}
fi
POST=${GPU_STUDY_POST:-150}
PRE=35          # s from a profile's start to its training runs' start (copy, checks, data)
PROFILES="paper authors twosm"
mkdir -p "$OUT"
rm -f "$OUT/gpu_study.log" "$OUT/gpu_study_run.json" "$OUT"/study_gpu*.tar.gz \
  "$OUT/gpu_paper_smoke.tar.gz" "$OUT"/gpu_models_*.tar

say() { printf '[%4ds] %s\n' "$((SECONDS - T0))" "$*"; }
left() { local s=$((HARD - (SECONDS - T0))); [ "$s" -gt 1 ] && echo "$s" || echo 1; }
record() { echo "$1=$2" >> "$WORK/run.env"; }

main() {
  say "== GPU study run, $(date -u +%Y-%m-%dT%H:%M:%SZ), smoke=$SMOKE, plan ${PLAN} s, deadline ${HARD} s"
  rm -rf "$WORK" && mkdir -p "$WORK/bin" "$WORK/logs" "$WORK/calib" || return 1
  record started_utc "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  record smoke "$SMOKE"

  # -- python: the one with torch; the pipeline's other packages from .whl when it lacks them
  local py=${GPU_STUDY_PYTHON:-}
  if [ -z "$py" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then py=$ROOT/.venv/bin/python; else py=$(command -v python3); fi
  fi
  PY=$py
  local site=$WORK/site pip_pid=""
  if ! "$PY" -c 'import dvc.repo, dvclive, pytorch_fid' 2>/dev/null; then
    if ls "$ROOT"/.whl/*.whl >/dev/null 2>&1; then
      say "installing $(ls "$ROOT"/.whl/*.whl | wc -l) wheels from .whl into $site (background)"
      ("$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
         --target "$site" "$ROOT"/.whl/*.whl > "$WORK/logs/pip.log" 2>&1; echo $? > "$WORK/pip.rc") &
      pip_pid=$!
    else
      say "error: $PY lacks dvc/dvclive/pytorch-fid and there is no .whl/ (make gpu-study-wheels; carry .whl)"
      return 1
    fi
  fi
  # `python` and `dvc` as the stages and study.sh call them
  printf '#!/bin/sh\nexec "%s" "$@"\n' "$PY" > "$WORK/bin/python"
  cp "$WORK/bin/python" "$WORK/bin/python3"
  printf '#!/bin/sh\nexec "%s" -m dvc "$@"\n' "$PY" > "$WORK/bin/dvc"
  chmod +x "$WORK/bin/"*
  export PATH="$WORK/bin:$PATH" DVC_NO_ANALYTICS=1 DVC_STUDIO_OFFLINE=1 PYTHONUNBUFFERED=1 \
    MPLBACKEND=Agg
  unset PYTHONDONTWRITEBYTECODE
  # -- git (study.sh needs it): a carried Debian package when the machine has none
  if ! command -v git >/dev/null 2>&1; then
    local deb
    deb=$(ls "$ROOT"/.whl/git/*.deb 2>/dev/null | head -1)
    if [ -n "$deb" ] && dpkg-deb -x "$deb" "$WORK/git"; then
      export PATH="$WORK/git/usr/bin:$PATH" GIT_EXEC_PATH="$WORK/git/usr/lib/git-core" \
        GIT_TEMPLATE_DIR="$WORK/git/usr/share/git-core/templates"
      say "git: the carried $(basename "$deb")"
    fi
    command -v git >/dev/null 2>&1 || { say "error: no git"; return 1; }
  fi
  local source=""
  if [ -f "$ROOT/.whl/SOURCE" ]; then
    source=$(head -1 "$ROOT/.whl/SOURCE")
  elif git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
    source=$(git -C "$ROOT" rev-parse --short HEAD)
    [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no)" ] && \
      source="$source + uncommitted changes"
  fi
  record source "${source:-unknown}"

  # -- the GPU, and MPS so that the runs' small kernels share it rather than take turns
  local gpu="" mps=off
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L > "$WORK/logs/nvidia-smi-L.txt" 2>&1; then
    gpu=$(head -1 "$WORK/logs/nvidia-smi-L.txt")
    nvidia-smi > "$WORK/logs/nvidia-smi.txt" 2>&1
  fi
  record gpu "${gpu:-none}"
  if [ -z "$gpu" ] && [ "$SMOKE" != 1 ]; then
    say "error: no GPU (nvidia-smi): this run is for the GPU machine; on a CPU run GPU_STUDY_SMOKE=1"
    return 1
  fi
  if [ -n "$gpu" ] && [ "${GPU_STUDY_MPS:-auto}" != 0 ] && command -v nvidia-cuda-mps-control >/dev/null 2>&1; then
    export CUDA_MPS_PIPE_DIRECTORY=$WORK/mps/pipe CUDA_MPS_LOG_DIRECTORY=$WORK/mps/log
    mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
    if nvidia-cuda-mps-control -d > /dev/null 2>&1 < /dev/null && timeout 60 "$PY" -c \
        'import torch; x = torch.ones(8, device="cuda"); assert float((x * 2).sum()) == 16.0' \
        > "$WORK/logs/mps-probe.log" 2>&1; then
      mps=on
    else
      echo quit | nvidia-cuda-mps-control >/dev/null 2>&1
      unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
      [ "${GPU_STUDY_MPS:-auto}" = 1 ] && { say "error: MPS did not start (GPU_STUDY_MPS=1)"; return 1; }
    fi
  fi
  record mps "$mps"
  say "python $PY; GPU: ${gpu:-none}; MPS: $mps; source: ${source:-unknown}"
  "$PY" -c 'import torch, sys; print("torch", torch.__version__, "cuda", torch.version.cuda,
    "available", torch.cuda.is_available(), "python", sys.version.split()[0])' \
    2>&1 | tee -a "$WORK/logs/environment.txt"

  # -- a git checkout of this tree to run from (tools/study.sh copies its tracked files)
  STAGE=$WORK/stage
  mkdir -p "$STAGE"
  if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
    (cd "$ROOT" && git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$STAGE" 2>/dev/null)
  else   # the device's copy of the working tree: no .git
    (cd "$ROOT" && tar --exclude=./.whl --exclude=./.git --exclude=./.venv -cf - .) | tar -xf - -C "$STAGE"
  fi
  # the studies' result folders of this checkout are not this run's: tools/study.sh writes them
  # (and the twosm profile then sets no CPU-study rows beside its own)
  rm -rf "$STAGE"/reports/study*
  # -- the params: the study's own files (each profile for the measurement), or their smoke
  if [ "$SMOKE" = 1 ]; then
    "$PY" "$ROOT/tools/gpu/params.py" study-smoke "$ROOT/params_study.yaml" "$WORK/calib/base.yaml" &&
    "$PY" "$ROOT/tools/gpu/params.py" study-smoke "$ROOT/params_study_twosm.yaml" "$WORK/calib/base_twosm.yaml" &&
    "$PY" "$ROOT/tools/gpu/params.py" paper-cpu "$ROOT/params_paper.yaml" "$STAGE/params_gpu_paper_smoke.yaml" || return 1
  else
    cp "$ROOT/params_study.yaml" "$WORK/calib/base.yaml" &&
    cp "$ROOT/params_study_twosm.yaml" "$WORK/calib/base_twosm.yaml" &&
    "$PY" "$ROOT/tools/gpu/params.py" paper-smoke "$ROOT/params_paper.yaml" "$STAGE/params_gpu_paper_smoke.yaml" || return 1
  fi
  "$PY" "$ROOT/tools/gpu/params.py" profile "$WORK/calib/base.yaml" "$WORK/calib/paper.yaml" paper &&
  "$PY" "$ROOT/tools/gpu/params.py" profile "$WORK/calib/base.yaml" "$WORK/calib/authors.yaml" authors || return 1
  cp "$WORK/calib/base_twosm.yaml" "$WORK/calib/twosm.yaml"

  # -- how much of the study fits: all its runs side by side for a few seconds
  local fraction=${GPU_STUDY_FRACTION:-} how=given
  if [ -z "$fraction" ]; then
    how=measured
    # 45 s: this measurement; 85 %: the paper-size smoke shares the machine, unmeasured
    local budget=$(((PLAN - POST - (SECONDS - T0) - 45 - PRE) * 85 / 100))
    local extra=() limit=180
    [ "$SMOKE" = 1 ] && extra=(--max-runs 2 --window 4 --warmup 1 --ready-timeout 240) && limit=400
    say "measuring the training speed of every run side by side (budget ${budget} s for training)"
    if timeout "$limit" "$PY" "$ROOT/tools/gpu/calibrate.py" --run "$WORK/calib/paper.yaml" \
        --run "$WORK/calib/authors.yaml" --run "$WORK/calib/twosm.yaml" --budget "$budget" \
        --out "$WORK/calibration.json" "${extra[@]}" 2> "$WORK/logs/calibrate.log"; then
      fraction=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["fraction"])' "$WORK/calibration.json")
    else
      fraction=${GPU_STUDY_FALLBACK_FRACTION:-0.25}
      how=fallback
      say "the measurement failed (logs/calibrate.log): fraction $fraction"
    fi
    [ "$SMOKE" = 1 ] && fraction=1 && how=smoke
  fi
  record fraction "$fraction"; record fraction_from "$how"
  "$PY" "$ROOT/tools/gpu/params.py" scale "$WORK/calib/base.yaml" "$STAGE/params_gpu_study.yaml" "$fraction" &&
  "$PY" "$ROOT/tools/gpu/params.py" scale "$WORK/calib/base_twosm.yaml" "$STAGE/params_gpu_study_twosm.yaml" "$fraction" || return 1
  local epochs epochs_twosm
  epochs=$(grep -A2000 '^train:' "$STAGE/params_gpu_study.yaml" | grep -m1 '^  epochs:' | awk '{print $2}')
  epochs_twosm=$(grep -A2000 '^train:' "$STAGE/params_gpu_study_twosm.yaml" | grep -m1 '^  epochs:' | awk '{print $2}')
  record epochs "$epochs"; record epochs_twosm "$epochs_twosm"
  say "fraction $fraction of the study's epochs: $epochs (paper, authors), $epochs_twosm (twosm)"
  (cd "$STAGE" && git init -q && git config user.email gpu-study@localhost &&
   git config user.name gpu-study && git add -A && git commit -qm "GPU study staging" ) || return 1

  # -- the wheels
  if [ -n "$pip_pid" ]; then
    wait "$pip_pid"
    say "wheels installed (exit $(cat "$WORK/pip.rc" 2>/dev/null))"
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
  fi
  if ! "$PY" -c 'import dvc.repo, dvclive, pytorch_fid.fid_score' 2> "$WORK/logs/imports.log"; then
    say "error: the pipeline's packages do not import (logs/imports.log)"; cat "$WORK/logs/imports.log"
    return 1
  fi

  # -- the runs: three study profiles and the paper-size smoke, side by side, each with the
  # deadline; a profile's training runs all at once (JOBS = its runs) unless GPU_STUDY_JOBS
  local note="GPU run: ${gpu:-CPU smoke}, tools/gpu_study.sh, fraction $fraction, MPS $mps"
  local names=() pids=() starts=()
  for profile in $PROFILES; do
    local file=params_gpu_study.yaml jobs
    [ "$profile" = twosm ] && file=params_gpu_study_twosm.yaml
    jobs=${GPU_STUDY_JOBS:-$("$PY" "$ROOT/tools/gpu/params.py" runs "$STAGE/$file")}
    [ "$SMOKE" = 1 ] && jobs=${GPU_STUDY_JOBS:-2}
    STUDY_ROOT=$STAGE STUDY_WORK=$WORK/study STUDY_PARAMS=params_gpu_study.yaml \
      STUDY_TWOSM_PARAMS=params_gpu_study_twosm.yaml STUDY_SOURCE="${source:-unknown} ($note)" \
      JOBS=$jobs timeout -k 10 "$(left)" bash "$STAGE/tools/study.sh" "$profile" \
      > "$WORK/logs/study_$profile.log" 2>&1 &
    names+=("$profile"); pids+=($!); starts+=("$SECONDS")
    say "started study profile $profile ($jobs runs at a time)"
  done
  timeout -k 10 "$(left)" bash "$STAGE/tools/gpu/paper_smoke.sh" "$STAGE" \
    params_gpu_paper_smoke.yaml "$WORK/paper256" "${GPU_STUDY_SMOKE_JOBS:-2}" \
    > "$WORK/logs/paper256.log" 2>&1 &
  names+=(paper256); pids+=($!); starts+=("$SECONDS")
  say "started the paper-size smoke"
  local running=1 last=0
  while [ "$running" = 1 ]; do
    sleep 5
    running=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && running=1; done
    if [ "$running" = 1 ] && [ $((SECONDS - last)) -ge 30 ]; then
      last=$SECONDS
      local line="" name
      for name in $PROFILES; do
        line="$line $name $(grep -c '^== \[' "$WORK/logs/study_$name.log" 2>/dev/null)"
      done
      line="$line paper256 $(grep -c '^== \[' "$WORK/logs/paper256.log" 2>/dev/null)"
      [ -n "$gpu" ] && line="$line | GPU $(nvidia-smi --query-gpu=utilization.gpu,memory.used \
        --format=csv,noheader 2>/dev/null | head -1)"
      say "runs done:$line | load $(cut -d' ' -f1-3 /proc/loadavg)"
    fi
  done
  local i rc
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}"; rc=$?
    # `timeout` led its own process group: end what of it outlived it (none, normally)
    kill -KILL -- "-${pids[$i]}" 2>/dev/null
    record "part.${names[$i]}.rc" "$rc"
    record "part.${names[$i]}.seconds" "$((SECONDS - starts[$i]))"
    say "${names[$i]}: exit $rc$([ "$rc" = 124 ] && echo ' (stopped at the deadline)')"
    local log="$WORK/logs/study_${names[$i]}.log"
    [ "${names[$i]}" = paper256 ] && log="$WORK/logs/paper256.log"
    tail -n 12 "$log" | sed "s/^/    [${names[$i]}] /"
  done
  record wall_seconds_before_pack "$((SECONDS - T0))"
  return 0
}

finish() {
  say "== packing into $OUT"
  # the call ends at 600 s: packing gets what is left before 590 s (at least 15 s)
  local limit=$((590 - (SECONDS - T0)))
  [ "$SMOKE" = 1 ] && limit=300
  [ "$limit" -lt 15 ] && limit=15
  if [ -n "${STAGE:-}" ] && [ -d "${STAGE:-}" ]; then
    timeout "$limit" "${PY:-python3}" "$ROOT/tools/gpu/pack.py" --stage "$STAGE" --work "$WORK" --out "$OUT" ||
      say "packing failed or left a problem (above)"
  fi
  if [ -n "${CUDA_MPS_PIPE_DIRECTORY:-}" ]; then
    echo quit | nvidia-cuda-mps-control >/dev/null 2>&1
  fi
  ls -l "$OUT"
  say "== done"
}

{ main; status=$?; finish; exit $status; } 2>&1 | tee -a "$OUT/gpu_study.log"
exit "${PIPESTATUS[0]}"
}

#!/usr/bin/env bash
# `make gpu-study-wheels`: what tools/gpu_study.sh needs on the GPU machine and its image lacks,
# into .whl/ (git-ignored through .git/info/exclude; the `run` call carries it):
#   .whl/*.whl       tools/gpu/wheels.txt as CPython 3.12 manylinux x86-64 wheels (the device
#                    notes' recipe; antlr4-python3-runtime has no wheel: built from its sdist)
#   .whl/git/*.deb   Debian's git, unpacked there only if the machine has no git
#   .whl/SOURCE      the commit this checkout is at (+ "uncommitted changes"): the GPU run's
#                    summaries name it
# Then it checks the size that travels: the working tree and .whl under 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
mkdir -p .whl/git
if [ -d .git ] && ! grep -qx '/.whl/' .git/info/exclude 2>/dev/null; then
  mkdir -p .git/info && echo '/.whl/' >> .git/info/exclude
fi
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_26_x86_64 \
    manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
grep -v '^#' tools/gpu/wheels.txt | grep . | while read -r spec; do
  name=${spec%%==*}; version=${spec##*==}
  key=$(echo "$name-$version-" | tr 'A-Z.-' 'a-z__')
  if ls .whl/ 2>/dev/null | tr 'A-Z.-' 'a-z__' | grep -q "^$key"; then
    continue   # already there
  fi
  if ! "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
      --implementation cp "${platforms[@]}" -d .whl "$spec" 2>/dev/null; then
    echo "  $spec: no wheel, building one from its sdist"
    "$PYTHON" -m pip wheel -q --no-deps -w .whl "$spec"
  fi
done
if ! ls .whl/git/*.deb >/dev/null 2>&1; then
  (cd .whl/git && apt-get download git >/dev/null 2>&1) || echo "  (no git package: apt-get download git failed; the device must have git)"
fi
source="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && source="$source + uncommitted changes"
echo "$source" > .whl/SOURCE
# one version of each package: two stop the whole install on the device
dupes=$(ls .whl/*.whl | xargs -n1 basename | cut -d- -f1 | tr 'A-Z.-' 'a-z__' | sort | uniq -d)
[ -z "$dupes" ] || { echo "error: .whl/ holds two versions of: $dupes (delete the old ones)" >&2; exit 1; }
tree=$(git ls-files -co --exclude-standard -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
wheels=$(du -sb .whl | cut -f1)
echo "== .whl: $(ls .whl/*.whl | wc -l) wheels, $((wheels / 1024 / 1024)) MiB; working tree" \
  "$((tree / 1024 / 1024)) MiB; together $(((tree + wheels) / 1024 / 1024)) MiB of the 64 MiB a call carries"
echo "   source: $source"
[ $((tree + wheels)) -lt $((62 * 1024 * 1024)) ] || { echo "error: over 62 MiB" >&2; exit 1; }

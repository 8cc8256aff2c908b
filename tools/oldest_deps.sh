#!/usr/bin/env bash
# The oldest allowed dependency set (constraints/oldest.txt, the lower bounds of pyproject.toml) installed into a fresh
# virtual environment, then the quick tests that need no development tools. Usage: bash tools/oldest_deps.sh [VENV_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-/tmp/asc-oldest-venv}
rm -rf "$venv"; python -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
echo "== install with constraints/oldest.txt"
log=$(mktemp)
if ! "$venv/bin/python" -m pip install -q -c constraints/oldest.txt -e . pytest > "$log" 2>&1; then
  grep -v -E "^WARNING: " "$log" | tail -30; echo "pip could not install the oldest allowed set"; exit 1
fi
"$venv/bin/python" - <<'PY'
import importlib.metadata as md
for line in open('constraints/oldest.txt'):
    if '==' not in line or line.startswith('#'): continue
    name, want = line.split('==')[0].strip(), line.split('==')[1].strip()
    got = md.version(name)
    print(f"{name} {got}" + ('' if got == want else f" (constraint {want}: NOT the oldest)"))
PY
echo "== quick tests on the oldest set"
export OMP_NUM_THREADS=1 MPLBACKEND=Agg PATH="$venv/bin:$PATH"
"$venv/bin/python" -m pytest -q -p no:cacheprovider tests/test_meta.py tests/test_models.py tests/test_synth.py tests/test_locks.py \
    "tests/test_audio_first.py::test_unseen_cities_get_the_metadata_off_runs_prediction[li2025]" tests/test_teacher_stage.py

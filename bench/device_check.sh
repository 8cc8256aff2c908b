#!/usr/bin/env bash
# The GPU checks of issue 17, as run on a lent device machine (no internet there): run from the repository root as
#   bash bench/device_check.sh            # OUT=folder for the outputs (default ./device_out)
# where .whl/ holds the wheels the device image lacks (fastai, fastcore, fasttransform, plum-dispatch, beartype,
# fastprogress==1.0.3 (1.1 needs python-fasthtml), fastdownload, librosa, soundfile, cffi, pycparser, soxr, audioread,
# pooch, decorator, platformdirs, IPython and ipywidgets with their pure-Python dependencies), downloaded here with
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 ... -d .whl NAME==VERSION
# It runs bench/gpu.py (written to OUT/gpu.md) with the parts of issue 29 by default (GPU_PARTS: features against the
# decoding floor, bf16 against fp32 on 8 seeds, the full-size rehearsal eager and compiled; about 10 minutes on an H100),
# and with ALL=1 also a whole `asc-train --demo --compile` run and the end-to-end tests on the GPU (issue 17).
set -u
OUT=${OUT:-$PWD/device_out}; mkdir -p "$OUT"
if [ -d .whl ]; then python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1; fi
export PYTHONPATH=/tmp/site:$PWD MPLBACKEND=Agg PATH=/tmp/bin:$PATH
mkdir -p /tmp/bin
python3 - <<'PY'
import tomllib, os   # console-script shims, as pip install would make them
for name, target in tomllib.load(open('pyproject.toml', 'rb'))['project']['scripts'].items():
    mod, fn = target.split(':'); p = f'/tmp/bin/{name}'
    open(p, 'w').write(f'#!/usr/bin/env python3\nimport sys\nfrom {mod} import {fn}\nsys.exit({fn}())\n'); os.chmod(p, 0o755)
PY
nvidia-smi -L
timeout ${GPU_T:-540} python3 bench/gpu.py --parts ${GPU_PARTS:-features,accuracy,rehearsal} --out "$OUT/gpu.md" > "$OUT/gpu.log" 2>&1; echo "gpu.py rc $?"
cp bench/rehearsal_gpu*.md "$OUT"/ 2>/dev/null
[ "${ALL:-0}" = 1 ] || exit 0
( time timeout 150 asc-train --demo --n-clips 240 --epochs 4 --rounds 1 --compile --out /tmp/run-compile ) > "$OUT/compile.log" 2>&1; echo "compile run rc $?"
timeout ${TEST_T:-230} python3 -m pytest -q -p no:cacheprovider -n 8 tests/test_recipes_e2e.py tests/test_models.py tests/test_pipeline.py tests/test_training.py -k "not kill" > "$OUT/pytest.log" 2>&1; echo "pytest rc $?"
tail -5 "$OUT/pytest.log"

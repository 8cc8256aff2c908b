"""Colab, as far as it can be checked here: a wheel built from the project (not the editable checkout) holds the CAS CSVs
and every module the notebooks import; the tutorial's own install cell installs it into a fresh virtual environment
(as on Colab, where `google.colab` is imported), and the tutorial's first cells (data, features and loaders) run there."""
import ast, json, os, re, shutil, subprocess, sys, zipfile
from pathlib import Path
import pytest
from conftest import ROOT

# modules of the optional extras (export, log, distributed, wandb, passt; dev: nbdev's show_doc in each notebook's hidden
# first cell): a plain `pip install asc-nbdev` does not bring them
OPTIONAL = {'nbdev', 'onnx', 'onnxscript', 'onnxruntime', 'tensorboard', 'accelerate', 'wandb', 'hear21passt'}
NBS = sorted(p for p in (ROOT/'nbs').glob('*.ipynb') if not p.name.startswith('_'))

@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    out, src = tmp_path_factory.mktemp('wheel'), tmp_path_factory.mktemp('src')
    for f in ('pyproject.toml', 'README.md'): shutil.copy(ROOT/f, src)       # a copy: no build/ left over from an earlier build,
    shutil.copytree(ROOT/'asc_nbdev', src/'asc_nbdev', ignore=shutil.ignore_patterns('__pycache__'))   # nothing written here
    r = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '-q', '-w', str(out), str(src)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    whl = list(out.glob('asc_nbdev-*.whl'))
    assert len(whl) == 1, list(out.iterdir())
    return whl[0]

def notebook_imports() -> dict:
    "Module -> notebooks importing it, over the code cells of every notebook (magics and shell lines skipped)"
    mods = {}
    for p in NBS:
        for c in json.loads(p.read_text())['cells']:
            if c['cell_type'] != 'code': continue
            src = '\n'.join(l for l in ''.join(c['source']).splitlines() if not l.lstrip().startswith(('%', '!')))
            for node in ast.walk(ast.parse(src)):
                if isinstance(node, ast.Import): names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0: names = [node.module]
                else: continue
                for n in names: mods.setdefault(n, set()).add(p.name)
    return mods

def test_wheel_contents(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    csvs = {n for n in names if n.startswith('asc_nbdev/data/cas2023/')}
    assert {'asc_nbdev/data/cas2023/APSIPA2025_GC_ASC_dev_metadata.csv.gz',
            'asc_nbdev/data/cas2023/APSIPA2025_GC_ASC_eval_metadata.csv.gz'} <= csvs, csvs
    assert any(n.endswith('.md') for n in csvs), f'the CSVs ship without their license note: {csvs}'
    ours = {m for m in notebook_imports() if m.split('.')[0] == 'asc_nbdev'}
    assert len(ours) > 20, ours
    missing = [m for m in ours if f"{m.replace('.', '/')}.py" not in names and f"{m.replace('.', '/')}/__init__.py" not in names]
    assert not missing, f'the notebooks import modules the wheel lacks: {missing}'
    src = {str(p.relative_to(ROOT)) for p in (ROOT/'asc_nbdev').rglob('*.py')}
    assert src <= names, f'package files not in the wheel: {sorted(src - names)}'

def _tutorial_head() -> tuple[str, int]:
    "The tutorial's code cells before its training section, as one script (and how many cells)"
    cells = json.loads((ROOT/'nbs'/'90_tutorial.ipynb').read_text())['cells']
    end = next(i for i, c in enumerate(cells) if c['cell_type'] == 'markdown' and ''.join(c['source']).startswith('## 3.'))
    code = [''.join(c['source']) for c in cells[:end] if c['cell_type'] == 'code']
    assert any('pip' in c and 'install' in c for c in code), "the tutorial's install cell was not found"
    return '\n\n'.join(code), len(code)

def test_tutorial_head_on_a_fresh_environment(wheel, tmp_path):
    """A fresh venv (no packages), the tutorial's install cell pip-installing the wheel as on Colab, then the cells up to
    training; the library comes from the venv's site-packages, never from the checkout"""
    venv = tmp_path/'venv'
    subprocess.run([sys.executable, '-m', 'venv', str(venv)], check=True, timeout=300)
    py = venv/'bin'/'python'
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'VIRTUAL_ENV')}
    env.update(ASC_NBDEV_SPEC=str(wheel), MPLBACKEND='Agg', PIP_DISABLE_PIP_VERSION_CHECK='1', PIP_NO_COMPILE='1', OMP_NUM_THREADS='1',
               TMPDIR=str(tmp_path))                        # the tutorial's working folder lands here, removed with it
    before = subprocess.run([str(py), '-c', 'import asc_nbdev'], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert before.returncode != 0, 'the fresh environment already imports asc_nbdev'
    code, n = _tutorial_head()
    script = tmp_path/'tutorial_head.py'
    script.write_text('import sys, types\nsys.modules["google.colab"] = types.ModuleType("google.colab")   # as on Colab\n'
                      'def display(*a, **k):   # a notebook\'s display; IPython comes with the install\n'
                      '    from IPython.display import display; display(*a, **k)\n\n' + code +
                      '\n\nimport asc_nbdev, importlib.metadata as md\nprint("ASC_NBDEV_FROM", asc_nbdev.__file__)\n'
                      'print("ASC_NBDEV_URL", md.distribution("asc-nbdev").read_text("direct_url.json"))\n')
    r = subprocess.run([str(py), str(script)], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=1200)
    assert r.returncode == 0, f'the tutorial\'s first {n} cells failed:\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}'
    where = re.search(r'ASC_NBDEV_FROM (\S+)', r.stdout).group(1)
    assert Path(where).is_relative_to(venv) and 'site-packages' in where, where
    assert re.search(r'device: \w+', r.stdout), r.stdout[-2000:]
    assert wheel.name in re.search(r'ASC_NBDEV_URL (.*)', r.stdout).group(1), 'the install cell did not install the wheel given it'   # (pip's record)
    # every library the notebooks import is installed with the wheel, but those of the optional extras (pyproject.toml)
    third = sorted({m.split('.')[0] for m in notebook_imports()} - set(sys.stdlib_module_names) - {'asc_nbdev'} - OPTIONAL)
    r = subprocess.run([str(py), '-c', f'import {", ".join(third)}'], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert r.returncode == 0, f'the notebooks import modules the wheel does not install ({third}):\n{r.stderr[-2000:]}'
    print(f"the tutorial's first {n} code cells ran in a fresh venv from {wheel.name}; asc_nbdev from {where}")
